"""Loading Stable Diffusion: the embedded tiny model, a local folder, or a model hub id.

Every lesson calls :func:`load_pipeline`. With no argument it reads ``$SDLEARN_MODEL``, and
without that it loads the tiny model that ships inside sdlearn. Whatever it loads is a plain
diffusers ``StableDiffusionPipeline``, so the lessons read every number from its components.

The tiny model has a family, made from it as Stability made theirs (:data:`TASKS`):
``load_pipeline(task="inpainting")`` loads its 9-channel inpainting sibling as a
``StableDiffusionInpaintPipeline``, or the model ``$SDLEARN_INPAINTING_MODEL`` names;
``load_pipeline(task="depth")`` its depth-to-image sibling (a 5-channel UNet and a depth
estimator) as a ``StableDiffusionDepth2ImgPipeline``, or ``$SDLEARN_DEPTH_MODEL``.

>>> pipe = load_pipeline()
>>> type(pipe).__name__, pipe.vae_scale_factor
('StableDiffusionPipeline', 8)
>>> inpainter = load_pipeline(task="inpainting")
>>> type(inpainter).__name__, inpainter.unet.config.in_channels
('StableDiffusionInpaintPipeline', 9)
>>> depth = load_pipeline(task="depth")
>>> type(depth).__name__, depth.unet.config.in_channels, type(depth.depth_estimator).__name__
('StableDiffusionDepth2ImgPipeline', 5, 'DPTForDepthEstimation')
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .device import check_device, get_device
from .paths import data_path
from .quiet import quiet_loading
from .schedulers import SCHEDULERS, check_scheduler_name, make_scheduler
from .sizes import default_size

# SCHEDULERS, make_scheduler and quiet_loading live in schedulers.py and quiet.py; they are
# named here too because lessons and learners reach for them beside load_pipeline.
__all__ = ["ENV_VAR", "DTYPE_VAR", "DTYPES", "INFO_FILE", "ModelNotFoundError", "SCHEDULERS",
           "TASKS", "Task", "describe", "embedded_model_path", "is_shapes_model", "load_pipeline",
           "make_scheduler", "model_folder", "model_info", "quiet_loading", "save_pipeline",
           "with_scheduler"]

ENV_VAR = "SDLEARN_MODEL"
DTYPE_VAR = "SDLEARN_DTYPE"
DTYPES = ("float32", "float16", "bfloat16")
INFO_FILE = "sdlearn.json"  # sdlearn's own record inside a model folder; diffusers ignores it


@dataclass(frozen=True)
class Task:
    """A member of the model family: its pipeline class, its UNet's input channels, the
    embedded tiny model's folder, the variable naming a real one, and the real siblings of
    well-known base models (used when only ``$SDLEARN_MODEL`` is set)."""

    pipeline: str
    unet_in_channels: int | None  # None: the VAE's latent channels
    folder: str
    env_var: str
    siblings: tuple[tuple[str, str], ...] = ()


TASKS = {
    "text2img": Task("StableDiffusionPipeline", None, "tiny-sd", "SDLEARN_MODEL"),
    "inpainting": Task(
        "StableDiffusionInpaintPipeline", 9, "tiny-sd-inpainting", "SDLEARN_INPAINTING_MODEL",
        siblings=(("stable-diffusion-v1-5/stable-diffusion-v1-5",
                   "stable-diffusion-v1-5/stable-diffusion-inpainting"),
                  ("runwayml/stable-diffusion-v1-5", "runwayml/stable-diffusion-inpainting"),
                  ("stabilityai/stable-diffusion-2-base",
                   "stabilityai/stable-diffusion-2-inpainting"),
                  ("stabilityai/stable-diffusion-2-1-base",
                   "stabilityai/stable-diffusion-2-inpainting"))),
    "depth": Task(
        "StableDiffusionDepth2ImgPipeline", 5, "tiny-sd-depth", "SDLEARN_DEPTH_MODEL",
        siblings=(("stabilityai/stable-diffusion-2-base", "stabilityai/stable-diffusion-2-depth"),
                  ("stabilityai/stable-diffusion-2-1-base",
                   "stabilityai/stable-diffusion-2-depth"))),
}

class ModelNotFoundError(OSError):
    """The model asked for is neither a usable local folder (missing, damaged, or with pickle
    weights only) nor reachable on a model hub. The message names the file or folder at fault."""


def with_scheduler(pipe, name: str, pipeline_class=None):
    """The same pipeline with another scheduler (by short name), sharing every other component.

    ``pipeline_class`` (default: ``type(pipe)``) may be another pipeline, such as
    ``StableDiffusionImg2ImgPipeline``. Nothing is loaded twice, and the precision is kept:
    diffusers' ``from_pipe`` casts the shared weights to float32 unless it is given a dtype,
    which on a GPU would double their memory and change ``pipe`` too.

    >>> pipe = load_pipeline()
    >>> euler = with_scheduler(pipe, "euler")
    >>> euler.unet is pipe.unet, euler.scheduler.__class__.__name__
    (True, 'EulerDiscreteScheduler')
    """
    cls = pipeline_class or type(pipe)
    with quiet_loading():
        return cls.from_pipe(pipe, scheduler=make_scheduler(name, pipe.scheduler.config),
                             dtype=pipe.dtype)


def save_pipeline(pipe, folder: str | Path, *, info: dict | None = None,
                  half: bool = False) -> Path:
    """Write ``pipe`` as a diffusers folder (safetensors), with sdlearn's ``sdlearn.json``.

    ``half=True`` stores the weights in float16 (half the size); they load back as float32.
    """
    import copy

    import torch

    folder = Path(folder)
    with quiet_loading():
        if half:  # a float16 copy: the caller's pipeline keeps its precision
            pipe = copy.deepcopy(pipe).to(device="cpu", dtype=torch.float16)
        pipe.save_pretrained(folder, safe_serialization=True)
    (folder / INFO_FILE).write_text(json.dumps(info or {}, indent=2) + "\n")
    return folder


def embedded_model_path(task: str = "text2img") -> Path:
    """The folder of the tiny model that ships with sdlearn (or of its sibling for ``task``)."""
    return data_path(_task(task).folder)


def _task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task={name!r} is not a task sdlearn has a model for; use one of "
                         f"{', '.join(map(repr, TASKS))}")
    return TASKS[name]


def _default_model(task: str) -> str:
    """The model ``load_pipeline(task=task)`` loads when given none (see :func:`load_pipeline`)."""
    spec = _task(task)
    chosen = os.environ.get(spec.env_var, "").strip()
    if chosen:
        return chosen
    base = os.environ.get(ENV_VAR, "").strip()
    if spec.env_var == ENV_VAR or not base:
        return str(embedded_model_path(task))
    sibling = dict(spec.siblings).get(base.rstrip("/"))
    if sibling is None:
        # the tiny sibling beside a real base model would mix two worlds and two sizes
        known, real = spec.siblings[0]
        raise ModelNotFoundError(
            f"${ENV_VAR} is {base!r}, and sdlearn knows no {task} model made from it: set "
            f"${spec.env_var} to one (for {known}: {real!r}), or unset ${ENV_VAR} to use the "
            "tiny model's family")
    return sibling


def model_info(pipe) -> dict:
    """sdlearn's record of a model (``sdlearn.json``): what world it learned, how it was made.

    Empty for models sdlearn did not make, such as real Stable Diffusion.
    """
    folder = model_folder(pipe)
    try:
        return json.loads((folder / INFO_FILE).read_text()) if folder else {}
    except (OSError, ValueError):
        return {}


def is_shapes_model(pipe) -> bool:
    """True if ``pipe`` was trained on the shapes world, so shapes-world measurements apply."""
    return model_info(pipe).get("world") == "shapes"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _not_found(model: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"Cannot load model {model!r}: {why}. To use the embedded tiny model, give no model "
        f"(no --model in the shell, load_pipeline() in Python) and unset ${ENV_VAR}; to use "
        "another model offline, pass a local folder in diffusers layout (model_index.json, "
        "unet/, vae/, ...), or download the model once while online so it is in the Hugging "
        "Face cache."
    )


def _damaged(model: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"Cannot load model {model!r}: {why}")


AGAIN = "copy or download the model again"
PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # weights that only a pickle loader reads


def _components(index: dict) -> list[str]:
    """The components ``model_index.json`` lists that load_pipeline loads (not the checker)."""
    return [name for name, entry in index.items()
            if not name.startswith("_") and name != "safety_checker"
            and isinstance(entry, list) and len(entry) == 2 and None not in entry]


def _read_json(file: Path, model: str):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:  # JSONDecodeError, UnicodeDecodeError, unreadable
        why = getattr(error, "msg", None) or getattr(error, "strerror", None) or error
        raise _damaged(model, f"{file} is not valid JSON ({why}); {AGAIN}, or mend the "
                              "file") from None


def _check_folder(path: Path, model: str) -> None:
    """What a diffusers folder needs before it is loaded: a valid model_index.json, each
    component's folder with valid JSON, and safetensors weights (never pickles only)."""
    index = _read_json(path / "model_index.json", model)
    if not isinstance(index, dict):
        raise _damaged(model, f"{path / 'model_index.json'} is not a JSON object; {AGAIN}")
    for name in _components(index):
        folder = path / name
        if not folder.is_dir():
            raise _damaged(model, f"model_index.json lists the component {name!r} "
                                  f"({index[name][1]}), but there is no folder {folder}; {AGAIN}")
        for file in sorted(folder.glob("*.json")):
            _read_json(file, model)
        pickles = sorted(f.name for f in folder.iterdir() if f.suffix in PICKLES)
        if pickles and not any(folder.glob("*.safetensors")):
            raise _damaged(model, f"{folder} has pickle weights only ({', '.join(pickles)}); "
                                  "sdlearn loads safetensors weights only, because unpickling "
                                  "a file can run any code in it. Get the model's .safetensors "
                                  "files, or convert the pickles once, in a session you trust "
                                  "(load with use_safetensors=False, then save_pretrained)")


def _damaged_weights(path: Path) -> str | None:
    """The first weights file in the folder that is not a whole safetensors file, and why."""
    from safetensors import safe_open

    index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    for name in _components(index):
        for file in sorted((path / name).glob("*.safetensors")):
            try:
                with safe_open(file, "pt"):
                    pass
            except Exception as error:  # SafetensorError: the header is cut short or garbled
                with open(file, "rb") as f:
                    head = f.read(4)
                if not head:
                    why = "it is empty (0 bytes)"
                elif head[:1] == b"\x80" or head == b"PK\x03\x04":
                    why = ("it is a pickle (or a torch zip file) under a .safetensors name; "
                           "sdlearn loads safetensors weights only, and did not unpickle it")
                else:
                    why = f"it is cut short or garbled ({error})"
                return f"the weights file {file} is damaged: {why}; {AGAIN}"
    return None


def _load_folder(path: Path, model: str, kwargs: dict, cls):
    from safetensors import SafetensorError

    _check_folder(path, model)
    try:
        return cls.from_pretrained(str(path), **kwargs)
    except (OSError, SafetensorError, UnicodeDecodeError) as error:
        # diffusers names a damaged file only sometimes (a damaged text encoder: never)
        damaged = _damaged_weights(path)
        if damaged:  # the file and why are named: diffusers' traceback would only bury that
            raise _damaged(model, damaged) from None
        raise _damaged(model, f"diffusers could not load it ({type(error).__name__}: "
                              f"{_short(error)}); sdlearn loads safetensors weights only; "
                              f"{AGAIN}") from error


def _short(error: BaseException, width: int = 300) -> str:
    """An error's text on one line, cut at a word."""
    return textwrap.shorten(" ".join(str(error).split()), width, placeholder=" ...")


def load_pipeline(model: str | os.PathLike | None = None, *, device: str | None = None,
                  dtype=None, scheduler: str | None = None, task: str = "text2img"):
    """Load a Stable Diffusion pipeline, with the safety checker off.

    - ``model``: a local folder in diffusers layout, or a hub id such as
      ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``. Default: ``$SDLEARN_MODEL`` if set,
      else the embedded tiny model.
    - ``task``: ``"text2img"`` (a ``StableDiffusionPipeline``), ``"inpainting"`` (a
      ``StableDiffusionInpaintPipeline`` whose UNet reads 9 channels) or ``"depth"`` (a
      ``StableDiffusionDepth2ImgPipeline``, 5). For a sibling the default model is its
      variable (``$SDLEARN_INPAINTING_MODEL``, ``$SDLEARN_DEPTH_MODEL``) if set; else, if
      ``$SDLEARN_MODEL`` names a well-known base model, its sibling (Stable Diffusion 1.5's
      inpainting one is ``stable-diffusion-v1-5/stable-diffusion-inpainting``); else the tiny
      model's.
    - ``device``: default :func:`get_device`. ``dtype``: default ``$SDLEARN_DTYPE`` if set
      (``float32``, ``float16`` or ``bfloat16``), else float16 on CUDA and float32 elsewhere.
      ``scheduler``: a short name (``pndm ddim lms euler dpm unipc deis``) to swap it.

    Weights are read from safetensors files only. A folder that is damaged (a cut-short
    weights file, broken JSON, a missing component folder) or has pickle weights only raises
    :class:`ModelNotFoundError`, naming the file or folder.

    >>> pipe = load_pipeline(scheduler="euler")
    >>> pipe.scheduler.__class__.__name__
    'EulerDiscreteScheduler'
    """
    import diffusers
    import torch

    spec = _task(task)
    model = str(model or _default_model(task))
    if model == str(embedded_model_path(task)) and not Path(model).is_dir():
        raise ModelNotFoundError(
            f"sdlearn's tiny {task} model is not in this installation ({model}): make it with "
            f"`sdlearn train --task {task} --init-from {embedded_model_path()} ...` (see the "
            f"README), or set ${spec.env_var} to a {spec.pipeline} folder or hub id")
    if scheduler is not None:
        check_scheduler_name(scheduler)
    device = check_device(device or get_device())
    if dtype is None:
        dtype = _dtype_from_env() or (torch.float16 if device.type == "cuda" else torch.float32)
    elif not isinstance(dtype, torch.dtype):
        dtype = _parse_dtype(dtype, "dtype")
    kwargs = {"safety_checker": None, "requires_safety_checker": False, "use_safetensors": True,
              "dtype": dtype}
    path = Path(model).expanduser()
    with quiet_loading():
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise _not_found(model, f"the folder {path} has no model_index.json, so it is "
                                        "not a diffusers pipeline folder")
            pipe = _load_folder(path, model, kwargs, getattr(diffusers, spec.pipeline))
        elif path.exists():
            raise _not_found(model, f"{path} is a file; sdlearn loads a folder in diffusers "
                                    "layout, not a single checkpoint file")
        elif path.is_absolute() or model.startswith((".", "~")) or model.count("/") != 1:
            raise _not_found(model, "there is no such folder, and it is not a hub id of the "
                                    "form 'owner/name'")
        else:
            pipe = _from_hub(model, kwargs, getattr(diffusers, spec.pipeline))
    _check_task(pipe, model, task)
    # float16 on the CPU runs (more slowly); diffusers' warning that it will fail is wrong
    pipe = pipe.to(device, silence_dtype_warnings=True)
    if scheduler is not None:
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    return pipe


def _check_task(pipe, model: str, task: str) -> None:
    """The UNet must read the channels ``task``'s pipeline gives it: say which task fits."""
    got = pipe.unet.config.in_channels
    want = {name: spec.unet_in_channels or pipe.vae.config.latent_channels
            for name, spec in TASKS.items()}
    if got != want[task]:
        fits = [name for name, n in want.items() if n == got]
        fix = (f"load it with task={fits[0]!r}" if fits else
               "sdlearn has no pipeline for such a UNet")
        raise ValueError(f"model {model!r} has a UNet reading {got} input channels, and "
                         f"task={task!r} needs {want[task]}: {fix}")


def _dtype_from_env():
    name = os.environ.get(DTYPE_VAR, "").strip()
    return _parse_dtype(name, f"${DTYPE_VAR}") if name else None


def _parse_dtype(name, what: str):
    import torch

    if str(name).removeprefix("torch.") not in DTYPES:
        raise ValueError(f"{what}={name!r} is not a precision sdlearn knows; use one of "
                         f"{', '.join(DTYPES)} (or torch.float16, ...), or leave it unset for "
                         "the default (float16 on a GPU, float32 on a CPU)")
    return getattr(torch, str(name).removeprefix("torch."))


def _from_hub(model: str, kwargs: dict, cls):
    from safetensors import SafetensorError

    # 'models/missing' may be a folder that is not there, or a hub id: say both
    where = (f"there is no folder {model!r} in {Path.cwd()}, and as a hub id it is not in the "
             "local Hugging Face cache")
    # Whether the hub's name resolves is found out meanwhile: even a look in the cache may
    # wait for the network (huggingface_hub fetches a registry for its user agent).
    lookup = None if _offline() else _in_background(_hub_unreachable)
    try:
        return cls.from_pretrained(model, local_files_only=True, **kwargs)
    except (OSError, ValueError, SafetensorError) as cached_error:
        if _offline():
            raise _not_found(model, f"{where} and HF_HUB_OFFLINE is set") from cached_error
    print(f"note: looking for {model!r} on the Hugging Face hub (it is not in the local "
          "cache; this needs the network)", file=sys.stderr, flush=True)
    unreachable = lookup()
    if unreachable is not None:  # the hub's client would retry for about 40 s without a word
        raise _no_network(model, where, unreachable) from None
    try:
        return cls.from_pretrained(model, **kwargs)
    except Exception as error:  # connection, HTTP and missing-file errors all end here
        offline = _network_error(error)
        if offline is not None:
            raise _no_network(model, where, offline) from error
        # The error's first lines say why: a model without safetensors weights reads
        # differently from a missing one.
        raise _not_found(model, f"{where}, and the hub could not provide it "
                                f"({type(error).__name__}: {_short(error)}); sdlearn loads "
                                "safetensors weights only") from error


def _no_network(model: str, where: str, error: BaseException) -> ModelNotFoundError:
    return _not_found(model, f"{where}, and the hub could not be reached "
                             f"({type(error).__name__}: {_short(error, 120)}); connect to the "
                             "network")


PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _in_background(fn):
    """Start ``fn()`` in a thread; the function returned waits for it and gives its result."""
    import threading

    result = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()

    def wait():
        thread.join()
        return result[0] if result else None

    return wait


def _hub_unreachable() -> BaseException | None:
    """The error of one look-up of the hub's host name when it fails (no network, no DNS), so
    that sdlearn can say so at once; None when the name resolves, or when a proxy (which
    resolves names itself) is set."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname
    if not host or any(os.environ.get(name) for name in PROXY_VARS):
        return None
    try:
        socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return error
    except Exception:  # anything else is left to the hub's client to report
        return None
    return None


def _network_error(error: BaseException) -> BaseException | None:
    """The innermost error in the chain that says the network could not be reached, if any."""
    import socket

    found, seen = None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        name = type(error).__name__
        if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)) or name in (
                "ConnectError", "ConnectTimeout", "ReadTimeout", "Timeout", "TimeoutException"):
            found = error
        error = error.__cause__ or error.__context__
    return found


def model_folder(pipe) -> Path | None:
    """The folder the pipeline was loaded from (a local folder or its hub cache), if known."""
    name = str(getattr(pipe, "name_or_path", "") or "")
    if name and Path(name).is_dir():
        return Path(name)
    if name.count("/") == 1:
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(name, local_files_only=True))
        except Exception:  # not cached: sizes are then unknown
            return None
    return None


def describe(pipe) -> dict:
    """The numbers a lesson reads from a pipeline's components, in one dict.

    >>> describe(load_pipeline())["vae_scale_factor"]
    8
    """
    folder = model_folder(pipe)
    components = {}
    for name, module in pipe.components.items():
        if module is None:
            continue
        entry = {"class": type(module).__name__}
        if hasattr(module, "parameters"):
            entry["parameters"] = sum(p.numel() for p in module.parameters())
        if folder is not None and (folder / name).is_dir():
            entry["bytes"] = sum(f.stat().st_size for f in (folder / name).rglob("*")
                                 if f.is_file() and f.suffix in (".safetensors", ".json",
                                                                 ".txt"))
        components[name] = entry
    vae, unet, text = pipe.vae.config, pipe.unet.config, pipe.text_encoder.config
    sched = pipe.scheduler.config
    return {
        "model": str(getattr(pipe, "name_or_path", "")),
        "world": model_info(pipe).get("world"),
        "components": components,
        "scaling_factor": vae.scaling_factor,
        "vae_scale_factor": pipe.vae_scale_factor,
        "latent_channels": vae.latent_channels,
        "unet_in_channels": unet.in_channels,
        "default_image_size": default_size(pipe),
        "latent_size": unet.sample_size,
        "max_length": pipe.tokenizer.model_max_length,
        "vocab_size": len(pipe.tokenizer),
        "hidden_size": text.hidden_size,
        "cross_attention_dim": unet.cross_attention_dim,
        "scheduler": type(pipe.scheduler).__name__,
        "num_train_timesteps": sched.num_train_timesteps,
        "beta_schedule": sched.beta_schedule,
        "beta_start": sched.beta_start,
        "beta_end": sched.beta_end,
        "prediction_type": sched.get("prediction_type", "epsilon"),
        "dtype": str(pipe.unet.dtype).replace("torch.", ""),
        "device": str(pipe.device),
    }
