"""Starting a run from a trained model instead of from random weights (``--init-from``).

A run with ``init_from`` set takes the VAE (its encoder, its fine-tuned decoder and its
scaling factor) from a trained pipeline folder as they are, so the VAE's phases are done before
they start, and it starts the text encoder and the UNet from that model's weights: the UNet
phase then fine-tunes them (on new captions, for example) instead of learning from nothing.
The architecture must be the folder's own.

With ``init_parts="vae"`` the run takes the VAE alone, and trains the text encoder and the UNet
from random weights, of the run's own sizes: a small model on the shipped latents, to compare
two recipes cheaply (lesson 10's run without caption dropout).

>>> from sdlearn.training.config import TrainConfig
>>> TrainConfig(init_from="/no/such/model").validate()
Traceback (most recent call last):
...
ValueError: init_from='/no/such/model' is not a trained pipeline folder (no model_index.json)...
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import torch

from ..models import load_pipeline, model_info
from .checkpoints import save_checkpoint
from .resume import decoder_settings

if TYPE_CHECKING:
    from .trainer import Trainer


@torch.no_grad()
def start_from(trainer: Trainer) -> dict:
    """Load ``cfg.init_from``'s weights into the run; write its VAE as the VAE phases' results.

    The weights are loaded on every start, resumed or not, so that a resumed run begins from
    the same state before its checkpoint is restored. Returns the folder's own record.
    """
    cfg, out, pipe = trainer.cfg, trainer.out, trainer.pipe
    source = load_pipeline(cfg.init_from, device="cpu", dtype=torch.float32)
    for name in cfg.init_parts.split(","):
        try:
            getattr(pipe, name).load_state_dict(getattr(source, name).state_dict())
        except RuntimeError as error:
            raise ValueError(f"init_from={cfg.init_from!r}: its {name} has another architecture "
                             f"than this run's ({str(error).splitlines()[0]}); train with the "
                             "folder's own architecture") from None
    factor = source.vae.config.scaling_factor
    pipe.vae.register_to_config(scaling_factor=factor)
    state = {k: v.contiguous() for k, v in pipe.vae.state_dict().items()}
    if not (out / "vae.safetensors").exists():
        save_checkpoint(out / "vae.safetensors", state,
                        {"step": cfg.vae_steps, "settings": None, "from": cfg.init_from})
    if not (out / "scaling_factor.json").exists():
        (out / "scaling_factor.json").write_text(json.dumps(
            {"scaling_factor": factor, "from": cfg.init_from}) + "\n")
    if cfg.decoder_steps > 0 and not (out / "decoder.safetensors").exists():
        save_checkpoint(out / "decoder.safetensors", state,
                        {"step": cfg.decoder_steps, "settings": decoder_settings(cfg),
                         "from": cfg.init_from})
    info = model_info(source)
    return {"folder": str(cfg.init_from), "command": info.get("command"),
            "unet_steps_done": info.get("unet_steps_done"), "parts": cfg.init_parts}
