"""What defines a training run: :class:`TrainConfig`, its checks, and the ``sdlearn train`` options.

Nothing here imports torch, so the command line's parser is built without it.

>>> cfg = TrainConfig(out="runs/smoke", n_train=64, vae_steps=4, unet_steps=4)
>>> cfg.command()
'sdlearn train --out runs/smoke --n-train 64 --vae-steps 4 --unet-steps 4'
>>> cfg.arch.image_size = 60
>>> cfg.validate()
Traceback (most recent call last):
...
ValueError: image_size=60 is not a multiple of the VAE factor 8; use 56 or 64 (4 VAE blocks: ...)
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..architectures import TinyArchitecture, architecture_dict
from ..schedulers import SCHEDULERS, check_scheduler_name
from ..sizes import check_size

CAPTIONS = ("full", "loose", "unplaced")  # how training captions describe their pictures
# what the UNet phase trains (training/inpainting.py, training/depth.py)
TASKS = ("text2img", "inpainting", "depth")
# how the UNet phase draws its timesteps: every one alike, or the noisy ones more often
TIMESTEPS = ("uniform", "cubic")
# what a run may take from init_from: the VAE always (its phases are then done), the text
# encoder and the UNet unless it trains them from random weights (an ablation, say)
PARTS = ("vae", "text_encoder", "unet")

# the architecture's fields that have an option of their own (besides --image-size)
ARCH_OPTIONS = ("vae_channels", "unet_channels", "text_layers")

# Settings that count something: 0 would fail late, or train nothing.
COUNTS = ("n_train", "vae_steps", "unet_steps", "vae_batch", "unet_batch", "scale_samples",
          "depth_steps", "depth_batch", "checkpoint_every")


@dataclass
class TrainConfig:
    """Everything that defines a training run. Saved next to the result."""

    out: str = "runs/tiny-sd"
    seed: int = 0
    arch: TinyArchitecture = field(default_factory=TinyArchitecture)
    n_train: int = 60_000          # training scenes (images are rendered once)
    # VAE
    vae_steps: int = 5_000
    vae_batch: int = 16
    vae_lr: float = 1e-3
    object_weight: float = 10.0    # loss weight of pixels that differ from the background
    kl_weight: float = 1e-8
    scale_samples: int = 4_096     # images used to measure the latents' std
    # decoder fine-tune (encoder frozen), with plain backgrounds the first phase never saw
    decoder_steps: int = 4_000     # 0 skips the phase
    decoder_lr: float = 2e-4
    empty_fraction: float = 0.25   # share of each batch replaced by an empty scene
    decoder_margin: int = 0        # pixels around each object weighted like the object
    # text encoder + UNet
    unet_steps: int = 8_000
    unet_batch: int = 64
    unet_lr: float = 5e-4
    caption_dropout: float = 0.1
    caption_noise: float = 0.5     # share of captions with one detail wrong (see training_captions)
    # "full": every caption describes the whole picture; "loose": captions say less, as
    # people's do (sdlearn.shapes.loose_caption), so the seed decides what they leave open;
    # "unplaced": loose captions that never say where an object is or how big, for a depth
    # model, whose layout must come from its depth map (sdlearn.shapes.captions.UNPLACED)
    captions: str = "full"
    init_from: str | None = None   # a trained pipeline folder to start from (training/init.py)
    # the components taken from init_from, comma-separated; "vae" alone trains the text encoder
    # and the UNet from random weights, of this run's own architecture, on that VAE's latents
    init_parts: str = "vae,text_encoder,unet"
    # "inpainting": the UNet widened to 9 input channels and fine-tuned on random masks, the
    # text encoder kept (needs init_from); the result is a StableDiffusionInpaintPipeline folder.
    # "depth": a depth estimator trained first, then the UNet widened to 5 input channels and
    # fine-tuned on its depth maps; the result is a StableDiffusionDepth2ImgPipeline folder.
    task: str = "text2img"
    depth_steps: int = 3_000       # the depth estimator's phase (task "depth")
    depth_batch: int = 32
    depth_lr: float = 1e-3
    # "cubic": t = (1 - u**3) * T for a uniform u, so that the noisy steps, where a picture's
    # layout is decided, come more often (T2I-Adapter's sampling, for a depth model's channel)
    timesteps: str = "uniform"
    min_snr_gamma: float = 5.0     # Min-SNR loss weighting (Hang et al. 2023)
    ema_decay: float = 0.999
    warmup_steps: int = 200
    # the scheduler the exported pipeline samples with (training uses SD's DDPM schedule either
    # way); not SD's PNDM, which follows few prompts on this model at guidance 7.5 (lesson 04)
    scheduler: str = "ddim"
    # bookkeeping
    checkpoint_every: int = 500
    device: str | None = None
    threads: int | None = None

    def command(self) -> str:
        """The ``sdlearn train`` command line that gives this config (its non-defaults).

        For a run resumed with other settings, this is the last command; the record's
        ``settings_changed`` says what changed and from which UNet step.
        """
        default = TrainConfig()
        words, note = ["sdlearn", "train"], ""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "arch":
                if value.image_size != default.arch.image_size:
                    words += ["--image-size", str(value.image_size)]
                for key in ARCH_OPTIONS:
                    if getattr(value, key) != getattr(default.arch, key):
                        shown = getattr(value, key)
                        words += ["--" + key.replace("_", "-"),
                                  ",".join(map(str, shown)) if isinstance(shown, tuple)
                                  else str(shown)]
                # the architecture's fields that options set, blanked to compare the rest
                optioned = {"image_size": 0, **{key: None for key in ARCH_OPTIONS}}
                if {**architecture_dict(value), **optioned} != {
                        **architecture_dict(default.arch), **optioned}:
                    note = "  # and the architecture in config.arch (no option sets it)"
            elif f.name == "out" or value != getattr(default, f.name):
                words += ["--" + f.name.replace("_", "-"), shlex.quote(str(value))]
        return " ".join(words) + note

    def validate(self, *, as_options: bool = False) -> None:
        """Refuse settings that would fail late, or leave a bad config.json behind.

        Every check of a config is here. With ``as_options``, errors name the command line's
        options (``--vae-steps=0 must be 1 or more``) instead of the fields.
        """
        def name(key: str) -> str:
            return "--" + key.replace("_", "-") if as_options else key

        for key in COUNTS:
            if getattr(self, key) < 1:
                raise ValueError(f"{name(key)}={getattr(self, key)} must be 1 or more")
        if check_scheduler_name(self.scheduler) != self.scheduler:
            raise ValueError(f"scheduler={self.scheduler!r}: write it in lower case, "
                             f"{self.scheduler.lower()!r}")
        if self.captions not in CAPTIONS:
            raise ValueError(f"{name('captions')}={self.captions!r}: use one of "
                             f"{', '.join(CAPTIONS)}")
        if self.timesteps not in TIMESTEPS:
            raise ValueError(f"{name('timesteps')}={self.timesteps!r}: use one of "
                             f"{', '.join(TIMESTEPS)}")
        if self.task not in TASKS:
            raise ValueError(f"{name('task')}={self.task!r}: use one of {', '.join(TASKS)}")
        parts = self.init_parts.split(",")
        if "vae" not in parts or not set(parts) <= set(PARTS) or len(set(parts)) < len(parts):
            raise ValueError(f"{name('init_parts')}={self.init_parts!r}: name the components "
                             f"taken from {name('init_from')}, comma-separated, from "
                             f"{', '.join(PARTS)}; the VAE always (for example vae or "
                             "vae,text_encoder,unet)")
        if self.init_parts != TrainConfig.init_parts and (self.init_from is None
                                                            or self.task != "text2img"):
            raise ValueError(f"{name('init_parts')}={self.init_parts} takes parts of a trained "
                             f"model: give {name('init_from')}, and train the text2img task "
                             "(a sibling starts from all of its base model)")
        if self.task != "text2img" and self.init_from is None:
            raise ValueError(f"{name('task')}={self.task} fine-tunes a trained model: give "
                             f"{name('init_from')} (for example sdlearn/data/tiny-sd)")
        if self.init_from is not None and not (Path(self.init_from) / "model_index.json").is_file():
            raise ValueError(f"{name('init_from')}={self.init_from!r} is not a trained pipeline "
                             "folder (no model_index.json): give a folder written by sdlearn "
                             "train (out/pipeline) or the shipped one, sdlearn/data/tiny-sd")
        for key in ("caption_dropout", "caption_noise"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"{name(key)}={getattr(self, key)} must be at least 0 and below 1")
        for key in ("decoder_steps", "decoder_margin"):
            if getattr(self, key) < 0:
                raise ValueError(f"{name(key)}={getattr(self, key)} must be 0 or more")
        arch, groups = self.arch, self.arch.norm_groups
        if not arch.vae_channels or any(c < 1 or c % groups for c in arch.vae_channels):
            raise ValueError(f"{name('vae_channels')}={arch.vae_channels}: each block's channels "
                             f"must be a positive multiple of norm_groups ({groups})")
        if not arch.unet_channels or any(c < 1 or c % groups for c in arch.unet_channels):
            raise ValueError(f"{name('unet_channels')}={arch.unet_channels}: each block's "
                             f"channels must be a positive multiple of norm_groups ({groups})")
        if arch.text_layers < 1:
            raise ValueError(f"{name('text_layers')}={arch.text_layers} must be 1 or more")
        if arch.image_size < 1:
            raise ValueError(f"{name('image_size')}={arch.image_size} must be 1 or more")
        blocks = len(arch.vae_channels)
        check_size(arch.image_size, arch.image_size, arch.vae_factor,
                   names=(name("image_size"),) * 2,
                   fix=f" ({blocks} VAE blocks: it is halved {blocks - 1} times)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = architecture_dict(self.arch)
        return d


# ----------------------------------------------------------------------------- the command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sdlearn train`` options: every scalar field of :class:`TrainConfig`."""
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name == "arch":
            continue
        value = getattr(defaults, f.name)
        kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
        choices = {"scheduler": sorted(SCHEDULERS), "captions": list(CAPTIONS),
                   "task": list(TASKS), "timesteps": list(TIMESTEPS)}.get(f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=value,
                            choices=choices, help=f"(default: {value})")
    parser.add_argument("--image-size", type=int, default=defaults.arch.image_size,
                        help="training image size, a multiple of the VAE factor: each "
                             "--vae-channels block after the first halves it, so 2 ** (blocks "
                             f"- 1), 8 for the default 4 (default: {defaults.arch.image_size})")
    channels = ",".join(map(str, defaults.arch.vae_channels))
    parser.add_argument("--vae-channels", type=_channel_list, default=defaults.arch.vae_channels,
                        help="the VAE's channels per block, comma-separated; each block after "
                             f"the first halves the size (default: {channels})")
    channels = ",".join(map(str, defaults.arch.unet_channels))
    parser.add_argument("--unet-channels", type=_channel_list,
                        default=defaults.arch.unet_channels,
                        help="the UNet's channels per block, comma-separated; each block after "
                             f"the first halves the latents (default: {channels})")
    parser.add_argument("--text-layers", type=int, default=defaults.arch.text_layers,
                        help="the text encoder's transformer layers "
                             f"(default: {defaults.arch.text_layers})")


def _channel_list(text: str) -> tuple[int, ...]:
    """``"16,32,64,64"`` → ``(16, 32, 64, 64)``, for ``--vae-channels``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of whole numbers such as 16,32,64,64") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` that ``sdlearn train``'s parsed options ask for (unchecked)."""
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                         if f.name != "arch"})
    cfg.arch.image_size = args.image_size
    for key in ARCH_OPTIONS:
        value = getattr(args, key)
        setattr(cfg.arch, key, tuple(value) if isinstance(value, (list, tuple)) else value)
    return cfg
