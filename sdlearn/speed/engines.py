"""CPU inference engines for the UNet: ONNX Runtime and OpenVINO, used directly.

An engine takes the UNet's computation graph once (exported by ``torch.onnx.export``, or
converted by ``openvino.convert_model``) and runs it with its own fused CPU kernels. The
pipeline does not notice: :class:`EngineUNet` answers what ``StableDiffusionPipeline`` reads
off ``pipe.unet`` (``config``, ``dtype``, ``device``, ``in_channels``) and returns the noise
as the UNet does (``.sample``, or a tuple with ``return_dict=False``). In a lesson::

    pipe.unet = speed.onnx_unet(pipe)      # export once (tens of seconds), then run by ORT
    pipe.unet = speed.openvino_unet(pipe)  # or OpenVINO's

Only the UNet runs in the engine; the text encoder and the VAE stay PyTorch's (the UNet is
where the steps' time goes, see :func:`sdlearn.speed.breakdown`).

- Shapes: the batch is free (exported as a dynamic dimension: 2 with classifier-free
  guidance, 1 without, 2 × images for a batch of prompts); the latent size and the text length
  are the ones exported (the model's ``sample_size`` and the tokenizer's 77), and other
  shapes are refused with an error that says so.
- Precision: float32 in and out, as the PyTorch UNet on a CPU.
- Equality with PyTorch: not bit for bit (other kernels add in another order). One UNet
  call agrees within ``UNET_TOLERANCE`` = 1e-4 (largest absolute difference; the noise it
  predicts is of size about 1), and a whole 25-step DDIM picture within ``IMAGE_TOLERANCE`` =
  1 level of 255 (``output_type="np"``, before rounding to 8 bits): the tests hold both
  engines to these. Measured on the tiny model (float32, CPU with AVX2, batches of 1 to 100):
  one call differs by 1e-6 to 8e-6 (both engines); four 25-step pictures by at most 0.002
  levels of 255, so that as 8-bit pictures they are equal or, rarely, a level apart.
- Both back ends come with an optional extra: ``pip install "sdlearn[cpu-speed]"``. Without
  it the functions here raise an ``ImportError`` that says so; :func:`available_engines` says
  which are installed.

>>> sorted(available_engines())
['onnxruntime', 'openvino']

What the pipeline sees, with a stand-in engine that predicts no noise:

>>> from types import SimpleNamespace
>>> zeros = EngineUNet(lambda x, t, text: 0 * x, SimpleNamespace(in_channels=4), name="zeros",
...                    shapes={"sample": (4, 8, 8), "encoder_hidden_states": (77, 64)})
>>> zeros(torch.ones(2, 4, 8, 8), 500, encoder_hidden_states=torch.ones(2, 77, 64)).sample.shape
torch.Size([2, 4, 8, 8])
>>> zeros(torch.ones(2, 4, 16, 16), 500, torch.ones(2, 77, 64))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: sample of shape (2, 4, 16, 16): this zeros UNet was exported for (batch, 4, 8, 8)...
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

EXTRA = 'pip install "sdlearn[cpu-speed]"'
ENGINES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}  # module name: its name

UNET_TOLERANCE = 1e-4  # largest |engine - PyTorch| of one UNet call (measured ≤ 8e-6)
IMAGE_TOLERANCE = 1.0  # largest difference of a 25-step picture, in levels of 255, before the
# picture is rounded to 8 bits (measured ≤ 0.002; rounding can then make it one level)


def available_engines() -> dict[str, bool]:
    """Which CPU engines are installed: ``{"onnxruntime": bool, "openvino": bool}``.

    Looked up without importing them (importing OpenVINO takes seconds).
    """
    return {name: importlib.util.find_spec(name) is not None for name in ENGINES}


def require(module: str):
    """Import an engine's package, or raise an ``ImportError`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"the {ENGINES.get(module, module)} engine needs the package {module!r}, which is "
            f"not installed here. Install the CPU engines with: {EXTRA} (or just "
            f"pip install {module})") from error


# ----------------------------------------------------------------------------- the graph exported

class UNetCall(torch.nn.Module):
    """The UNet as an engine sees it: (latents, timesteps, text states) → predicted noise.

    The timesteps come as one float per batch row, so one graph serves every scheduler (DDIM's
    integer timesteps and Euler's fractional ones alike: the UNet turns them to float first).
    """

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         return_dict=False)[0]


INPUTS = ("sample", "timestep", "encoder_hidden_states")


def example_inputs(pipe, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents, timesteps and text states of the shapes the pipeline's UNet calls use (seeded)."""
    unet = _torch_unet(pipe)
    size = unet.config.sample_size
    gen = torch.Generator("cpu").manual_seed(0)
    latents = torch.randn((batch, unet.config.in_channels, size, size), generator=gen)
    text = torch.randn((batch, pipe.tokenizer.model_max_length,
                        unet.config.cross_attention_dim), generator=gen)
    return latents, torch.full((batch,), 500.0), text


def _torch_unet(pipe):
    unet = pipe.unet
    if isinstance(unet, EngineUNet):
        raise ValueError(f"pipe.unet is already an engine ({unet.name}): pass a pipeline whose "
                         "UNet is PyTorch's (load it again, or keep the original pipe.unet)")
    if not isinstance(unet, torch.nn.Module):
        raise TypeError(f"pipe.unet is a {type(unet).__name__}, not a PyTorch module: pass a "
                        "pipeline with its UNet2DConditionModel")
    unet = getattr(unet, "_orig_mod", unet)  # torch.compile's wrapper: export the module itself
    if unet.device.type != "cpu":
        raise ValueError(f"pipe.unet is on {unet.device}: the CPU engines export and run on the "
                         "CPU; load the pipeline with device='cpu' (or pipe.to('cpu'))")
    if unet.dtype != torch.float32:
        raise ValueError(f"pipe.unet is in {unet.dtype}: the engines are exported in float32; "
                         "load the pipeline with dtype=torch.float32 (or pipe.to(torch.float32))")
    return unet


def export_onnx(pipe, path, *, optimize: bool = False) -> Path:
    """Export the pipeline's UNet to an ONNX file at ``path`` (``torch.onnx.export``, with a
    dynamic batch); returns the path. Takes seconds to a minute on a CPU.

    ``optimize``: run onnxscript's graph optimiser on the export. ONNX Runtime optimises the
    graph itself when it loads it; on the tiny model the optimiser added ten seconds to the
    export and nothing measurable to the speed, so it is off by default.
    """
    require("onnx")
    require("onnxscript")  # torch.onnx.export's exporter is written with it
    unet = _torch_unet(pipe)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = example_inputs(pipe)
    batch = torch.export.Dim.AUTO  # the exporter keeps the batch symbolic
    with torch.no_grad(), warnings.catch_warnings(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")  # the exporter's notes on torchvision and tree specs
        torch.onnx.export(UNetCall(unet).eval(), inputs, str(path), dynamo=True,
                          input_names=list(INPUTS), output_names=["noise"],
                          dynamic_shapes={name: {0: batch} for name in INPUTS},
                          optimize=optimize, verbose=False, report=False)
    return path


@contextmanager
def _quiet_logger(name: str):
    """Errors only from the logger ``name`` (the exporter logs, as warnings, that torchvision's
    operators are not there: this UNet has none)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# ----------------------------------------------------------------------------- the stand-in UNet

class EngineUNet:
    """Stands in for ``pipe.unet``: the UNet's config, float32 on the CPU, the engine's call.

    ``run(sample, timestep, text)`` takes and returns NumPy arrays (float32): the engine.
    ``shapes`` maps each input to its exported shape after the batch (``None`` for a free
    dimension); a call with other shapes is refused before it reaches the engine.
    """

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, run, config, *, name: str, shapes: dict[str, tuple]):
        self.run, self.name, self.shapes = run, name, shapes
        self.config = config  # the UNet's, read by the pipeline: sample_size, in_channels, ...

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    def __repr__(self) -> str:
        return f"EngineUNet({self.name}, exported for {self.shapes})"

    def __deepcopy__(self, memo):
        return self  # the engine keeps no state between calls: copies of a pipeline share it

    def _check(self, name: str, tensor: torch.Tensor) -> None:
        want = self.shapes[name]
        got = tuple(tensor.shape[1:])
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got,
                                                                                  strict=True)):
            raise ValueError(
                f"{name} of shape {tuple(tensor.shape)}: this {self.name} UNet was exported for "
                f"(batch, {', '.join('any' if w is None else str(w) for w in want)}). "
                "Make pictures at the model's own size (the default height and width), or "
                "export again at the size you need")
        if tensor.dtype != torch.float32:
            raise ValueError(f"{name} is {tensor.dtype}: the {self.name} UNet runs in float32; "
                             "keep the pipeline in float32")

    def __call__(self, sample, timestep, encoder_hidden_states=None, timestep_cond=None,
                 cross_attention_kwargs=None, added_cond_kwargs=None, return_dict: bool = True,
                 **unsupported):
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        extras = {"timestep_cond": timestep_cond, "cross_attention_kwargs":
                  cross_attention_kwargs, "added_cond_kwargs": added_cond_kwargs, **unsupported}
        given = [k for k, v in extras.items() if v is not None]
        if given or encoder_hidden_states is None:
            raise TypeError(f"the {self.name} UNet takes latents, a timestep and "
                            f"encoder_hidden_states only, not {given or 'no text states'}: "
                            "use the PyTorch UNet for adapters, LoRA scales or extra "
                            "conditioning")
        self._check("sample", sample)
        self._check("encoder_hidden_states", encoder_hidden_states)
        batch = sample.shape[0]
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        if timestep.numel() == 1:
            timestep = timestep.expand(batch)
        elif timestep.numel() != batch:
            raise ValueError(f"timestep has {timestep.numel()} values for a batch of {batch}: "
                             "give one timestep, or one per latent")
        arrays = [t.detach().cpu().contiguous().numpy()
                  for t in (sample, timestep, encoder_hidden_states)]
        noise = torch.from_numpy(self.run(*arrays).copy()).to(sample.device)
        return UNet2DConditionOutput(sample=noise) if return_dict else (noise,)


def _exported_shapes(inputs) -> dict[str, tuple]:
    return {name: tuple(x.shape[1:]) for name, x in zip(INPUTS, inputs, strict=True)}


def onnx_unet(pipe, path=None, *, threads: int | None = None) -> EngineUNet:
    """The pipeline's UNet exported to ONNX and run by ONNX Runtime, to set as ``pipe.unet``.

    ``path``: where the ``.onnx`` file is written, a file or a folder (default: a temporary
    folder, removed once the file is read in).
    ``threads``: ONNX Runtime's intra-op threads (default: its own choice, the physical cores);
    ``torch.set_num_threads`` does not reach it.
    """
    ort = require("onnxruntime")
    unet = _torch_unet(pipe)
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = _check_threads(threads)
    if path is None:  # ONNX Runtime reads the whole file in when it makes the session
        with tempfile.TemporaryDirectory(prefix="sdlearn-onnx-") as folder:
            session = ort.InferenceSession(str(export_onnx(pipe, Path(folder) / "unet.onnx")),
                                           options, providers=["CPUExecutionProvider"])
    else:
        path = Path(path)
        if path.suffix != ".onnx":
            path = path / "unet.onnx"
        session = ort.InferenceSession(str(export_onnx(pipe, path)), options,
                                       providers=["CPUExecutionProvider"])

    def run(sample, timestep, text):
        return session.run(None, {"sample": sample, "timestep": timestep,
                                  "encoder_hidden_states": text})[0]

    engine = EngineUNet(run, unet.config, name="ONNX Runtime",
                        shapes=_exported_shapes(example_inputs(pipe)))
    engine.session, engine.path = session, path
    return engine


def openvino_unet(pipe, *, threads: int | None = None) -> EngineUNet:
    """The pipeline's UNet converted by ``openvino.convert_model`` and compiled for the CPU,
    to set as ``pipe.unet``.

    ``threads``: OpenVINO's inference threads (default: its own choice); ``torch`` settings do
    not reach it.
    """
    ov = require("openvino")
    unet = _torch_unet(pipe)
    inputs = example_inputs(pipe)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing's notes on Python values it records
        model = ov.convert_model(UNetCall(unet).eval(), example_input=inputs)
    # float32 as PyTorch: on CPUs with bfloat16 units OpenVINO would otherwise compute in bf16
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = _check_threads(threads)
    compiled = ov.compile_model(model, "CPU", config)

    def run(sample, timestep, text):
        return compiled((sample, timestep, text))[0]

    engine = EngineUNet(run, unet.config, name="OpenVINO", shapes=_exported_shapes(inputs))
    engine.compiled = compiled
    return engine


def _check_threads(threads) -> int:
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r}: give a whole number of threads, 1 or more "
                         "(or None for the engine's own choice)")
    return threads


def engine_unet(pipe, engine: str, *, threads: int | None = None) -> EngineUNet:
    """:func:`onnx_unet` or :func:`openvino_unet` by the package's name (``"onnxruntime"``,
    ``"openvino"``)."""
    makers = {"onnxruntime": onnx_unet, "openvino": openvino_unet}
    if engine not in makers:
        raise ValueError(f"engine={engine!r} is unknown; choose one of {', '.join(makers)}")
    return makers[engine](pipe, threads=threads)


def unet_difference(unet, engine: EngineUNet, batch: int = 2) -> float:
    """Largest absolute difference between one call of the PyTorch ``unet`` and one of the
    engine made from it, on the same seeded inputs (compare it with ``UNET_TOLERANCE``)::

        unet = pipe.unet
        pipe.unet = speed.onnx_unet(pipe)
        speed.unet_difference(unet, pipe.unet)  # about 1e-6
    """
    size = engine.shapes["sample"]
    text = engine.shapes["encoder_hidden_states"]
    gen = torch.Generator("cpu").manual_seed(0)
    latents = torch.randn((batch, *size), generator=gen)
    states = torch.randn((batch, *text), generator=gen)
    t = torch.full((batch,), 500.0)
    with torch.inference_mode():
        ours = unet(latents, t, encoder_hidden_states=states).sample
        theirs = engine(latents, t, encoder_hidden_states=states).sample
    return float((ours - theirs).abs().max())


__all__ = ["ENGINES", "EXTRA", "IMAGE_TOLERANCE", "UNET_TOLERANCE", "EngineUNet", "UNetCall",
           "available_engines", "engine_unet", "example_inputs", "export_onnx", "onnx_unet",
           "openvino_unet", "require", "unet_difference"]
