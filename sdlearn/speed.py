"""Measuring speed honestly, and the speed settings of lesson 08.

Timing GPU or CPU work needs a warm-up (the first call pays for allocation, kernel selection,
compilation), a synchronisation (a GPU runs asynchronously: stop the clock only when it is
done), and several runs summarised by their median and spread.

>>> t = measure(lambda: sum(range(10_000)), repeats=5)
>>> len(t.runs), t.median <= max(t.runs)
(5, True)
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from .architectures import (  # noqa: F401  (lesson 08 builds SD 1.5 through speed)
    sd15_sized_pipeline,
    sd15_text_config,
    sd15_unet_config,
    sd15_vae_config,
)


def synchronize(device=None) -> None:
    """Wait until the device has finished its queued work (a no-op on the CPU)."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is not None and device.type == "mps":
        torch.mps.synchronize()


@dataclass
class Timing:
    """Seconds: ``cold`` (the first, warm-up call), ``runs`` (the timed calls after it)."""

    cold: float
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> float:
        """Largest minus smallest timed run."""
        return max(self.runs) - min(self.runs)

    def __str__(self) -> str:
        return (f"{self.median:.3f} s median of {len(self.runs)} (spread {self.spread:.3f} s), "
                f"first call {self.cold:.3f} s")


def measure(fn: Callable[[], object], *, repeats: int = 5, device=None) -> Timing:
    """Time ``fn()``: one warm-up call (timed apart as ``cold``), then ``repeats`` timed calls,
    each ended by a synchronisation of ``device``."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: time at least one run")

    def once() -> float:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        return time.perf_counter() - start

    cold = once()
    return Timing(cold, [once() for _ in range(repeats)])


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of ``fn()`` counted by torch's FLOP counter (a multiply-add
    is 2 FLOPs; matmuls, convolutions and attention are counted, element-wise ops are not)."""
    from contextlib import ExitStack

    from torch.utils.flop_counter import FlopCounterMode

    with ExitStack() as stack:
        try:  # the counter sees attention's matmuls only in the plain (math) SDPA kernel
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        except ImportError:  # torch < 2.3
            pass
        counter = stack.enter_context(FlopCounterMode(display=False))
        fn()
    return counter.get_total_flops()


def matmul_rate(device="cpu", dtype=torch.float32, n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of a large square matmul: a practical peak rate for this device and dtype."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = measure(lambda: a @ b, repeats=repeats, device=device)
    return 2 * n ** 3 / t.median


def weights_bytes(module: torch.nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes the parameters take, in their own dtype or as if cast to ``dtype``.

    >>> layer = torch.nn.Linear(10, 10)
    >>> weights_bytes(layer), weights_bytes(layer, torch.float16)
    (440, 220)
    """
    return sum(p.numel() * (dtype or p.dtype).itemsize for p in module.parameters())


# ----------------------------------------------------------------------------- settings

@dataclass
class Setting:
    """One way to run the pipeline: a name, what it changes, and whether it can run here."""

    name: str
    apply: Callable  # (pipe) -> pipe: a changed deep copy
    autocast: torch.dtype | None = None
    note: str = ""


def _cast(dtype):
    def apply(pipe):
        from .models import quiet_loading

        with quiet_loading():  # diffusers warns about casting loaded models; ours are whole
            return pipe.to(dtype=dtype)
    return apply


def _plain_attention(pipe):
    from diffusers.models.attention_processor import AttnProcessor

    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.set_attn_processor(AttnProcessor())
    return pipe


def _channels_last(pipe):
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    return pipe


def _compiled(pipe):
    pipe.unet = torch.compile(pipe.unet)
    return pipe


def _chain(*steps):
    def apply(pipe):
        for step in steps:
            pipe = step(pipe)
        return pipe
    return apply


def settings(device="cpu", *, compile: bool = True) -> list[Setting]:
    """The settings lesson 08 compares, for ``device`` (float16 only on a GPU: CPUs rarely
    have float16 matrix units, and bfloat16 already shows what half precision does there)."""
    half = torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16
    rows = [
        Setting("float32 (diffusers' defaults)", lambda p: p),
        Setting("classic attention (no SDPA)", _plain_attention),
        Setting("channels_last", _channels_last),
        Setting("bfloat16 weights", _cast(torch.bfloat16)),
        Setting("autocast bfloat16", lambda p: p, autocast=torch.bfloat16),
    ]
    if torch.device(device).type == "cuda":
        rows.append(Setting("float16 weights", _cast(torch.float16)))
    if compile:
        rows.append(Setting("torch.compile (UNet)", _compiled))
        rows.append(Setting(f"{str(half)[6:]} + channels_last + compile",
                            _chain(_cast(half), _channels_last, _compiled)))
    return rows


def _attention_slicing(pipe):
    pipe.enable_attention_slicing()
    return pipe


def _vae_slicing(pipe):
    pipe.vae.enable_slicing()
    return pipe


def _vae_tiling(pipe):
    pipe.vae.enable_tiling()
    return pipe


def memory_settings() -> list[Setting]:
    """Settings meant to save memory (GPU peak memory is where they show), not time.

    Attention slicing computes attention a slice at a time: it saves memory with the classic
    attention, little with SDPA (which already avoids the big attention matrix) and can be
    slower. VAE slicing decodes a batch one picture at a time. VAE tiling decodes in
    overlapping tiles, and only for pictures larger than the VAE's tile (512² for SD 1.5).
    """
    return [Setting("attention slicing", _attention_slicing),
            Setting("VAE slicing", _vae_slicing),
            Setting("VAE tiling", _vae_tiling)]


def run_setting(pipe, setting: Setting, *, prompt: str, images: int, steps: int,
                repeats: int = 3, seed: int = 0, reference=None) -> dict:
    """Time one setting on a deep copy of ``pipe``; returns a row of the speed table."""
    import numpy as np

    device = pipe.device
    if device.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)  # the original pipeline and anything else
    p = setting.apply(copy.deepcopy(pipe))
    out = {}

    def call():
        gen = torch.Generator("cpu").manual_seed(seed)
        ctx = (torch.autocast(device.type, dtype=setting.autocast) if setting.autocast
               else nullcontext())
        with torch.inference_mode(), ctx:
            out["images"] = p([prompt] * images, num_inference_steps=steps, generator=gen,
                              output_type="np").images

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timing = measure(call, repeats=repeats, device=device)
    row = {"setting": setting.name, "cold_s": timing.cold, "median_s": timing.median,
           "spread_s": timing.spread, "runs_s": timing.runs,
           "images_per_s": images / timing.median}
    if device.type == "cuda":
        # This setting's copy of the weights plus its working memory, at the peak.
        row["peak_memory_gb"] = (torch.cuda.max_memory_allocated(device) - before) / 1e9
    if reference is not None:
        diff = np.abs(out["images"].astype(np.float64) - reference) * 255
        row["max_pixel_diff"], row["mean_pixel_diff"] = float(diff.max()), float(diff.mean())
    row["images"] = out["images"]
    return row


def speed_table(pipe, rows: list[Setting], *, prompt: str = "a big red circle in the center",
                images: int = 1, steps: int = 10, repeats: int = 3,
                progress: bool = True) -> list[dict]:
    """Every setting timed in one run; speed-ups over the first row; pictures compared with it."""
    from tqdm.auto import tqdm

    table, reference = [], None
    for setting in tqdm(rows, desc="settings", disable=not progress):
        try:
            row = run_setting(pipe, setting, prompt=prompt, images=images, steps=steps,
                              repeats=repeats, reference=reference)
        except Exception as error:  # a setting this machine cannot run: say so, go on
            table.append({"setting": setting.name, "error": f"{type(error).__name__}: {error}"})
            continue
        if reference is None:
            reference = row["images"].astype("float64")
        table.append(row)
    timed = [row for row in table if "median_s" in row]
    for row in timed:  # against the first setting that ran (normally the unchanged pipeline)
        row["speedup"] = timed[0]["median_s"] / row["median_s"]
    return table


def format_table(table: list[dict]) -> str:
    """The speed table as text, one setting per line."""
    lines = [f"{'setting':34} {'first call':>10} {'median':>8} {'spread':>7} {'speed-up':>8}"
             f" {'max px diff':>11}"]
    for row in table:
        if "error" in row:
            lines.append(f"{row['setting']:34} could not run: {row['error'][:60]}")
            continue
        diff = f"{row['max_pixel_diff']:.1f}" if "max_pixel_diff" in row else "—"
        mem = f"  {row['peak_memory_gb']:.2f} GB" if "peak_memory_gb" in row else ""
        lines.append(f"{row['setting']:34} {row['cold_s']:9.2f}s {row['median_s']:7.3f}s "
                     f"{row['spread_s']:6.3f}s {row['speedup']:7.2f}× {diff:>11}{mem}")
    return "\n".join(lines)


def unet_inputs(pipe, images: int = 1, guided: bool = True):
    """Latents, a timestep and text states of the right shapes for one UNet call."""
    unet = pipe.unet
    batch = images * (2 if guided else 1)
    size = unet.config.sample_size
    gen = torch.Generator("cpu").manual_seed(0)
    latents = torch.randn((batch, unet.config.in_channels, size, size), generator=gen)
    text = torch.randn((batch, pipe.tokenizer.model_max_length,
                        unet.config.cross_attention_dim), generator=gen)
    return (latents.to(pipe.device, unet.dtype), torch.tensor(500, device=pipe.device),
            text.to(pipe.device, unet.dtype))


OVERLAP_TOLERANCE = 0.05  # the share of the whole by which the parts may outgrow it (noise)


def outgrown(parts: dict[str, float]) -> bool:
    """Whether :func:`breakdown`'s parts add up to more than the whole call, beyond
    ``OVERLAP_TOLERANCE`` of it (then "the rest" is negative by more than noise)."""
    return parts["the rest"] < -OVERLAP_TOLERANCE * sum(parts.values())


def breakdown(pipe, *, prompt: str = "a big red circle in the center", steps: int = 10,
              repeats: int = 3) -> dict[str, float]:
    """Where one picture's time goes (seconds, medians): text encoder, UNet steps, VAE decode,
    each timed alone, and the rest: the whole call's median minus those (scheduler, pre- and
    post-processing, Python). Medians do not add up exactly, so the rest can come out slightly
    negative; when the parts outgrow the whole by more than ``OVERLAP_TOLERANCE`` of it, the
    machine was busier while they were timed, and a warning says so.

    >>> from sdlearn import load_pipeline
    >>> parts = breakdown(load_pipeline(), steps=5)  # doctest: +SKIP
    >>> max(parts, key=parts.get)  # doctest: +SKIP
    'UNet steps'
    """
    device = pipe.device
    latents, t, text = unet_inputs(pipe)
    one = latents[:1]
    pipe.scheduler.set_timesteps(steps)
    calls = len(pipe.scheduler.timesteps)  # PNDM adds one call (its warm-up step)

    def whole():
        pipe(prompt, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(0),
             output_type="np")

    with torch.inference_mode():
        parts = {
            "text encoder": measure(lambda: pipe.encode_prompt(prompt, device, 1, True),
                                    repeats=repeats, device=device).median,
            "UNet steps": calls * measure(lambda: pipe.unet(latents, t, text),
                                          repeats=repeats, device=device).median,
            "VAE decode": measure(lambda: pipe.vae.decode(one), repeats=repeats,
                                  device=device).median,
        }
        total = measure(whole, repeats=repeats, device=device).median
    parts["the rest"] = total - sum(parts.values())
    if outgrown(parts):
        warnings.warn(
            f"the parts, each timed alone, add up to {(total - parts['the rest']) * 1000:.0f} "
            f"ms, more than the whole call's {total * 1000:.0f} ms, so 'the rest' is negative: "
            f"the machine was busier while the parts were timed. Time it again with nothing "
            f"else running, or with more repeats (repeats={repeats}).", stacklevel=2)
    return parts


def machine() -> dict:
    """The hardware and library versions a timing was made on."""
    import os
    import platform

    import diffusers
    import transformers

    info = {"platform": platform.platform(), "processor": platform.processor() or
            platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            # passive OpenMP waiting (set for long training runs) made the tiny UNet 2.5× slower
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def write_record(path, result: dict):
    """Write a benchmark's ``result`` as JSON to ``path``, dated and with :func:`machine`.

    The README's figures cite such records, so that every number has its source. Returns the
    path.
    """
    import json
    import time
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"recorded": time.strftime("%Y-%m-%d"), **result,
                                "machine": machine()}, indent=2) + "\n")
    return path


def as_json(table: list[dict]) -> list[dict]:
    """The table without the pictures, ready for ``json.dump``."""
    return [{k: v for k, v in row.items() if k != "images"} for row in table]


__all__ = ["Timing", "measure", "synchronize", "count_flops", "matmul_rate", "weights_bytes",
           "sd15_sized_pipeline", "settings", "speed_table", "format_table", "machine",
           "as_json", "outgrown"]
