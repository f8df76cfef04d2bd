"""Lesson 08's settings table: each way of running the pipeline, timed side by side.

A :class:`Setting` changes a deep copy of the pipeline (precision, attention, memory layout,
``torch.compile``, the memory savers); :func:`speed_table` times every setting on the same
prompt and seed, and compares each picture with the first setting's.

>>> [s.name for s in settings("cpu", compile=False, bf16_units=True)]
... # doctest: +NORMALIZE_WHITESPACE
["float32 (diffusers' defaults)", 'classic attention (no SDPA)', 'channels_last',
 'bfloat16 weights', 'autocast bfloat16']
>>> [s.name for s in settings("cpu", compile=False, bf16_units=False)][-1]
'bfloat16 weights'
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..quiet import quiet_loading
from .threads import bf16_instructions
from .timing import measure


@dataclass
class Setting:
    """One way to run the pipeline: a name, what it changes, and whether it can run here."""

    name: str
    apply: Callable  # (pipe) -> pipe: a changed deep copy
    autocast: torch.dtype | None = None
    note: str = ""


def _cast(dtype):
    def apply(pipe):
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


def settings(device="cpu", *, compile: bool = True, bf16_units: bool | None = None
             ) -> list[Setting]:
    """The settings lesson 08 compares, for ``device`` (float16 only on a GPU: CPUs rarely
    have float16 matrix units, and bfloat16 already shows what half precision does there).

    On a CPU without bfloat16 instructions (``bf16_units`` False; None: look at this CPU's,
    :func:`sdlearn.speed.bf16_instructions`) bfloat16 is emulated: one row shows what that
    costs, and autocast, emulated the same way, is left out.
    """
    cpu = torch.device(device).type == "cpu"
    half = torch.bfloat16 if cpu else torch.float16
    if bf16_units is None:
        bf16_units = not cpu or bool(bf16_instructions())
    rows = [
        Setting("float32 (diffusers' defaults)", lambda p: p),
        Setting("classic attention (no SDPA)", _plain_attention),
        Setting("channels_last", _channels_last),
        Setting("bfloat16 weights", _cast(torch.bfloat16)),
    ]
    if bf16_units:
        rows.append(Setting("autocast bfloat16", lambda p: p, autocast=torch.bfloat16))
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
    """The speed table as text, one setting per line.

    >>> print(format_table([
    ...     {"setting": "float32", "cold_s": 0.5, "median_s": 0.25, "spread_s": 0.02,
    ...      "speedup": 1.0},
    ...     {"setting": "float16 weights", "error": "RuntimeError: no GPU here"}]))
    setting                            first call   median  spread speed-up max px diff
    float32                                 0.50s   0.250s  0.020s    1.00×           —
    float16 weights                    could not run: RuntimeError: no GPU here
    """
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


def as_json(table: list[dict]) -> list[dict]:
    """The table without the pictures, ready for ``json.dump``.

    >>> as_json([{"setting": "float32", "median_s": 0.25, "images": "(pixels)"}])
    [{'setting': 'float32', 'median_s': 0.25}]
    """
    return [{k: v for k, v in row.items() if k != "images"} for row in table]


__all__ = ["Setting", "as_json", "format_table", "memory_settings", "run_setting", "settings",
           "speed_table"]
