"""What a resumed run may change, and what it must keep.

A run resumes from the files in its ``out`` folder, with the settings of its ``config.json``,
but for these:

- ``RESUMABLE``: where the output goes, how often it is saved, the device and thread count,
  the exported scheduler, a longer or shorter UNet schedule (not below the steps done), and
- ``DECODER_SETTINGS``: nothing after the decoder phase depends on the decoder (the UNet learns
  the frozen encoder's latents), so new decoder settings redo that phase alone.
- ``SETTINGS_ADDED``: a setting added to an existing phase; a run saved before it existed ran
  with the value given here. A saved run that lacks any other setting predates the phase the
  setting belongs to, which has not run yet.
- An architecture field added since the run began (SD 2.x's conventions, say) was built with
  the field's default, which keeps the earlier behaviour: a saved ``arch`` lacking it has it.

Changes that shape what comes next are logged (``"settings"`` records) and go into the record,
so that the run can be repeated exactly. (Logs of old versions are read by
:func:`sdlearn.training.runlog.log_times`.)

>>> sorted(RESUMABLE - set(DECODER_SETTINGS))
['checkpoint_every', 'device', 'out', 'scheduler', 'threads', 'unet_steps']
"""

from __future__ import annotations

import json
from pathlib import Path

from ..architectures import TinyArchitecture, architecture_dict
from .checkpoints import checkpoint_meta
from .config import TrainConfig

DECODER_SETTINGS = ("decoder_steps", "decoder_lr", "empty_fraction", "decoder_margin")
SETTINGS_ADDED = {"caption_noise": 0.0, "captions": "full", "init_from": None,
                  "init_parts": "vae,text_encoder,unet", "task": "text2img",
                  "timesteps": "uniform"}
RESUMABLE = {"out", "unet_steps", "checkpoint_every", "device", "threads", "scheduler",
             *DECODER_SETTINGS}
# Changes to these alter nothing already computed, nor what comes next: resuming is exact.
UNLOGGED = {"out", "checkpoint_every"}


def unet_step(out: Path) -> int:
    """UNet steps done so far in ``out``: 0 before the phase, the final count after it."""
    for name in ("unet.safetensors", "unet-ckpt.safetensors"):
        if (out / name).exists():
            return checkpoint_meta(out / name)["step"]
    return 0


def check_resumable(cfg: TrainConfig, out: Path) -> tuple[dict, dict]:
    """The saved config of the run in ``out`` and what ``cfg`` changes in it (``[old, new]``).

    A new run gives ``({}, {})``. A ``ValueError`` says what may not change, and why.
    """
    saved = out / "config.json"
    if not saved.exists():
        return {}, {}
    old = {**SETTINGS_ADDED, **json.loads(saved.read_text())}
    if isinstance(old.get("arch"), dict):
        old["arch"] = {**architecture_dict(TinyArchitecture()), **old["arch"]}
    new = cfg.to_dict()
    changed = sorted(k for k in new if k not in RESUMABLE and k in old and old[k] != new[k])
    if changed:
        raise ValueError(f"{out} holds a run with other settings ({', '.join(changed)}"
                         " differ): resume it with its own settings, or use a new --out")
    if old.get("unet_steps", new["unet_steps"]) != new["unet_steps"]:
        done = out / "unet.safetensors"
        if done.exists():
            steps = checkpoint_meta(done)["step"]
            raise ValueError(f"the UNet in {out} finished at {steps} steps: its"
                             " unet_steps can no longer change; use a new --out")
        if unet_step(out) > new["unet_steps"]:
            raise ValueError(f"unet_steps={new['unet_steps']} is below the {unet_step(out)}"
                             f" steps {out} has already trained")
    moved = {k: [old[k], new[k]] for k in sorted(RESUMABLE - UNLOGGED)
             if k in old and old[k] != new[k]}
    return old, moved


def decoder_settings(cfg: TrainConfig) -> dict:
    """The decoder phase's settings, as its files record them."""
    return {k: getattr(cfg, k) for k in DECODER_SETTINGS}


def decoder_made_with(path: Path, saved_config: dict) -> dict:
    """The settings a decoder file was made with.

    Files from before settings were stored were made with the saved config's settings (and a
    config from before the phase existed has none: 0).
    """
    legacy = {k: saved_config.get(k, 0) for k in DECODER_SETTINGS}
    return checkpoint_meta(path).get("settings", legacy)
