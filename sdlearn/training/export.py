"""The result of a run: ``out/pipeline``, a diffusers folder with sdlearn's record of the run.

The record, ``sdlearn.json``, says how the model was made: the command, every setting, the
settings changed on resuming, the wall time, and the machine (:func:`sdlearn.records.machine`).
``data/tiny-sd/sdlearn.json`` is the shipped model's (written before the record's ``machine``
key replaced its ``hardware`` and ``versions``).

The pictures the run drew at its checkpoints (:mod:`.samples`) go into ``samples/``.

Rows of the token embedding that no shapes-world caption uses are zeroed: they were never
trained, and zeros compress.

>>> import torch
>>> table = torch.ones(5, 2)
>>> keep_rows(table, [0, 3])
>>> table[:, 0].tolist()
[1.0, 0.0, 0.0, 1.0, 0.0]
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..architectures import assemble_pipeline
from ..models import save_pipeline
from ..records import machine
from .data import world_token_ids
from .resume import unet_step
from .samples import sample_path, write_samples

if TYPE_CHECKING:
    from .trainer import Trainer


@torch.no_grad()
def keep_rows(table: torch.Tensor, keep) -> None:
    """Zero every row of ``table`` but those in ``keep``, in place."""
    unused = torch.ones(table.shape[0], dtype=torch.bool)
    unused[torch.tensor(keep)] = False
    table[unused] = 0


def export(trainer: Trainer, unet_state=None, text_state=None,
           steps_done: int | None = None) -> Path:
    """Write ``out/pipeline`` (float16 on disk) from the current or the given weights."""
    pipe = trainer.pipe
    if unet_state is not None:
        unet, text = copy.deepcopy(pipe.unet), copy.deepcopy(pipe.text_encoder)
        unet.load_state_dict(unet_state)
        text.load_state_dict(text_state)
        pipe = assemble_pipeline(pipe.vae, text, pipe.tokenizer, unet, pipe.scheduler)
    cfg = trainer.cfg
    if cfg.task == "inpainting":  # the same components, under the inpainting pipeline's name
        from diffusers import StableDiffusionInpaintPipeline

        pipe = StableDiffusionInpaintPipeline(**pipe.components, requires_safety_checker=False)
    elif cfg.task == "depth":  # and the depth estimator with its image processor
        from diffusers import StableDiffusionDepth2ImgPipeline

        parts = {k: pipe.components[k] for k in ("vae", "text_encoder", "tokenizer", "unet",
                                                  "scheduler")}
        pipe = StableDiffusionDepth2ImgPipeline(**parts,
                                                depth_estimator=trainer.depth_estimator,
                                                feature_extractor=trainer.depth_processor)
    step = steps_done if steps_done is not None else unet_step(trainer.out)
    if cfg.task == "text2img" and not sample_path(trainer.out, step).exists():
        write_samples(pipe, trainer.out, step)
    keep_rows(pipe.text_encoder.get_input_embeddings().weight,
              world_token_ids(pipe.tokenizer, loose=cfg.captions != "full"))
    info = {
        "world": "shapes",
        "trained": True,
        "task": cfg.task,
        "image_size": cfg.arch.image_size,
        "unet_steps_done": step,
        **trainer.runlog.times(),
        "command": cfg.command(),
        "settings_changed": trainer.runlog.settings_changes(),
        "config": cfg.to_dict(),
        **({"started_from": trainer.started_from} if trainer.started_from else {}),
        "scaling_factor": pipe.vae.config.scaling_factor,
        "machine": machine(trainer.device),
    }
    folder = save_pipeline(pipe, trainer.out / "pipeline", info=info, half=True)
    if trainer.runlog.path.exists():  # the loss curves and timings behind the record
        shutil.copyfile(trainer.runlog.path, folder / "training_log.jsonl")
    if (trainer.out / "samples").is_dir():  # the pictures drawn along the way
        shutil.copytree(trainer.out / "samples", folder / "samples", dirs_exist_ok=True)
    return folder
