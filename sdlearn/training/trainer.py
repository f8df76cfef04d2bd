"""The :class:`Trainer`: what a run's phases share, and the order they run in.

A phase is a function of the trainer, in a module of its own (:mod:`.vae`, :mod:`.unet`): it
reads the config, the folder, the device, the pipeline, the data and the log from the trainer,
and resumes from its files in ``out``, or skips itself when they say it is done.

>>> import tempfile
>>> trainer = Trainer(TrainConfig(out=tempfile.mkdtemp(), n_train=8, device="cpu"))
>>> [path.name for path in trainer.out.iterdir()]  # nothing trained or rendered yet
['config.json']
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..architectures import build_pipeline
from ..device import get_device
from ..schedulers import make_scheduler
from .config import TrainConfig
from .data import make_dataset
from .depth import build_depth_estimator, depth_maps, train_depth_estimator
from .export import export
from .init import start_from
from .inpainting import widen_conv_in
from .resume import check_resumable, unet_step
from .runlog import RunLog
from .unet import train_unet
from .vae import encode_latents, finetune_decoder, measure_scaling_factor, train_vae


class Trainer:
    """Runs the phases of a :class:`TrainConfig`, resuming from ``cfg.out``.

    The settings are checked (:meth:`TrainConfig.validate`) and compared with the saved run's
    (:func:`~sdlearn.training.resume.check_resumable`) before anything is written.
    """

    def __init__(self, cfg: TrainConfig):
        started = time.time()
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(cfg.device or get_device())
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.runlog = RunLog(self.out / "log.jsonl", started)
        # the saved run's config, as it ran ({} for a new run)
        self.saved_config, changed = check_resumable(cfg, self.out)
        if changed:
            self.runlog.write(phase="settings", changed=changed, unet_step=unet_step(self.out))
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        self.pipe = build_pipeline(cfg.arch, seed=cfg.seed)
        self.pipe.scheduler = make_scheduler(cfg.scheduler, self.pipe.scheduler.config)
        self.pipe.to(self.device)
        self._data = None
        self.started_from = None  # the record of the model init_from names, once loaded
        self.depth_estimator = self.depth_processor = None
        if cfg.task == "depth":
            self.depth_estimator, self.depth_processor = build_depth_estimator(
                cfg.arch.image_size, seed=cfg.seed)
            self.depth_estimator.to(self.device)

    @property
    def data(self):
        """The training scenes, their images and backgrounds, rendered on first use."""
        if self._data is None:
            self._data = make_dataset(self.cfg.n_train, self.cfg.arch.image_size)
        return self._data

    def prepare(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Everything before the UNet phase: the start (``init_from``), the VAE's phases, the
        latents, and a depth model's estimator and maps. Returns ``(latents, depth)``.

        After it, the pipeline holds the weights the UNet phase starts from (or resumes
        past): lesson 10 takes one step by hand from here and compares it with the run's.
        """
        if self.cfg.init_from:
            self.started_from = start_from(self)
        if self.cfg.task != "text2img":  # the new input channels, their weights at zero
            extra = {"inpainting": 5, "depth": 1}[self.cfg.task]
            self.pipe.unet = widen_conv_in(self.pipe.unet, self.pipe.unet.config.in_channels
                                           + extra)
        train_vae(self)
        print(f"scaling factor: {measure_scaling_factor(self):.5f}")
        latents = encode_latents(self)
        finetune_decoder(self)
        depth = None
        if self.cfg.task == "depth":
            train_depth_estimator(self)
            depth = depth_maps(self)
        return latents, depth

    def run(self) -> Path:
        """Run (or resume) every phase, and export; the folder of the trained pipeline."""
        start = time.time()
        latents, depth = self.prepare()
        train_unet(self, latents, depth)
        path = export(self)
        self.runlog.write(phase="done", seconds_this_run=round(time.time() - start, 1),
                          wall_time_s=round(self.runlog.times()["wall_time_s"]))
        return path
