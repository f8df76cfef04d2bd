"""Training the tiny Stable Diffusion on the shapes world, from scratch, in five phases.

1. ``vae``: an ``AutoencoderKL`` learns to squeeze 64×64×3 images into 4×8×8 latents and back.
   Pixels that differ from the background weigh more in the loss, or the small shapes get
   blurred into the background.
2. ``scale``: the scaling factor is 1/std of the latents over a sample of images, as Stable
   Diffusion's authors computed 0.18215; it goes into the VAE's config.
3. ``latents``: every training image is encoded once, and kept.
3b. ``decoder``: the decoder alone is fine-tuned on the frozen encoder's latents, with empty
   scenes mixed in (phase 1 sees only scenes with objects); the latents stay valid.
4. ``unet``: the ``CLIPTextModel`` and the ``UNet2DConditionModel`` learn together to predict the
   noise added to the latents (Stable Diffusion's schedule), reading the caption through
   cross-attention. The caption is replaced by ``""`` for ``caption_dropout`` of the examples,
   so the model also learns the unconditional prediction that guidance needs; with
   ``caption_noise`` (0.5), that share of the captions gets one detail wrong (see
   :func:`training_captions`), so that the unguided model is unsure and guidance matters.
   The UNet's and text encoder's weights are averaged (EMA) for the final model.

The exported pipeline samples with DDIM (``scheduler``), not Stable Diffusion's PNDM: on this
model PNDM's fourth-order multistep update is unstable at guidance 7.5 (the latents oscillate
and grow from the middle of the schedule; on the first model, one-object prompts followed fell
to 0.03, against 1.0 with DDIM, on 40 validation scenes; lesson 04 measures it on this one), the
instability that DPM-Solver++ (Lu et al. 2022) describes for high-order solvers under large
guidance. Every scheduler still runs: ``load_pipeline(scheduler="pndm")``.

Each phase writes checkpoints (safetensors) into ``out``; running again resumes where it
stopped. The result is ``out/pipeline``, a diffusers folder that ``load_pipeline`` reads.

    sdlearn train --out runs/tiny-sd                      # the shipped model's recipe (*)
    sdlearn train --out runs/smoke --n-train 64 --vae-steps 4 --unet-steps 4   # a quick check

(*) The shipped run copied its VAE phases (1–3b) from an earlier run with the same settings
and trained its UNet with these defaults. With exact captions (``caption_noise=0``) the
unguided model already followed its prompts (1.00 / 0.96 of one- / two-object prompts at
guidance 1) and guidance changed almost nothing; with 0.5 it follows 0.50 / 0.28 at guidance 1
and 0.975 / 0.855 at 7.5 (``benchmarks/quality.py``). The VAE's channels, ``(32, 64, 64, 64)``,
are twice the first model's in the two outer blocks: with ``(16, 32, 64, 64)`` the scorer read
0.961 of 1000 validation two-object reconstructions fully right, against 0.995 now.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .architectures import TinyArchitecture, architecture_dict, build_pipeline
from .device import get_device
from .models import save_pipeline
from .schedulers import SCHEDULERS, SD_SCHEDULER_CONFIG, make_scheduler
from .shapes import caption, perturb, random_scene, render
from .shapes.captions import PLACE_PHRASES, SCENE_TEMPLATES, SIZE_WORDS
from .shapes.world import COLORS, SHAPES

# Scenes for training come from seeds [TRAIN_SEED0, TRAIN_SEED0 + n_train); evaluation scenes
# (benchmarks/quality.py) from EVAL_SEED0 on, so the two never share a scene. Watching a run
# and choosing its settings uses VALID_SEED0 on, so that the evaluation set stays unseen.
TRAIN_SEED0 = 0
EVAL_SEED0 = 10_000_000
VALID_SEED0 = 20_000_000


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
    decoder_steps: int = 4_000
    decoder_lr: float = 2e-4
    empty_fraction: float = 0.25   # share of each batch replaced by an empty scene
    decoder_margin: int = 0        # pixels around each object weighted like the object
    # text encoder + UNet
    unet_steps: int = 8_000
    unet_batch: int = 64
    unet_lr: float = 5e-4
    caption_dropout: float = 0.1
    caption_noise: float = 0.5     # share of captions with one detail wrong (see training_captions)
    min_snr_gamma: float = 5.0     # Min-SNR loss weighting (Hang et al. 2023)
    ema_decay: float = 0.999
    warmup_steps: int = 200
    # the scheduler the exported pipeline samples with (training uses SD's DDPM schedule
    # either way); see the module docstring for why it is not SD's PNDM
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
                if value.vae_channels != default.arch.vae_channels:
                    words += ["--vae-channels", ",".join(map(str, value.vae_channels))]
                optioned = {"image_size": 0, "vae_channels": ()}
                if {**architecture_dict(value), **optioned} != {
                        **architecture_dict(default.arch), **optioned}:
                    note = "  # and the architecture in config.arch (no option sets it)"
            elif f.name == "out" or value != getattr(default, f.name):
                words += ["--" + f.name.replace("_", "-"), shlex.quote(str(value))]
        return " ".join(words) + note

    def validate(self) -> None:
        """Refuse settings that would fail late, or leave a bad config.json behind."""
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler={self.scheduler!r} is unknown; choose one of "
                             f"{', '.join(SCHEDULERS)}")
        for name in ("caption_dropout", "caption_noise"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 0 and below 1")
        if self.decoder_margin < 0:
            raise ValueError(f"decoder_margin={self.decoder_margin} must be 0 or more")
        groups = self.arch.norm_groups
        if not self.arch.vae_channels or any(c < 1 or c % groups
                                             for c in self.arch.vae_channels):
            raise ValueError(f"vae_channels={self.arch.vae_channels}: each block's channels "
                             f"must be a positive multiple of norm_groups ({groups})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = architecture_dict(self.arch)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        arch = d.pop("arch", {})
        arch = TinyArchitecture(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in arch.items()})
        return cls(arch=arch, **d)


# ----------------------------------------------------------------------------- captions

def training_captions(scenes, rng: random.Random, dropout: float, noise: float = 0.0) -> list[str]:
    """The prompts of one UNet batch: varied captions, ``""`` for ``dropout`` of them.

    With ``noise`` > 0, that share of the captions describes the scene with one detail wrong
    (:func:`sdlearn.shapes.perturb`), as captions scraped from the web often do. The model then
    learns that a caption is likely, not certain, and guidance has something to sharpen.

    >>> scene = random_scene(1, n_objects=1)  # a big blue circle at the top, yellow background
    >>> training_captions([scene], random.Random(0), dropout=0.0)
    ['at the top a large blue circle, yellow background']
    >>> training_captions([scene], random.Random(0), dropout=0.0, noise=0.99)
    ['on a yellow background, a large green circle at the top center']
    """
    prompts = []
    for scene in scenes:
        if rng.random() < dropout:
            prompts.append("")
            continue
        if noise and rng.random() < noise:  # no draw at 0: older runs resume exactly
            scene = perturb(scene, rng)
        prompts.append(caption(scene, rng))
    return prompts


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Tensors and JSON metadata in one safetensors file, written atomically."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
              metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def checkpoint_meta(path: Path) -> dict:
    """The JSON metadata of a checkpoint, without reading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["meta"])


def _flatten_state(prefix: str, state: dict) -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat tensors (safetensors holds tensors only)."""
    out = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            out[f"{prefix}.{index}.{name}"] = torch.as_tensor(value)
    return out


def _optimizer_state(prefix: str, tensors: dict, template: dict) -> dict:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": template["param_groups"]}


class EMA:
    """An exponential moving average of a module's parameters."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm up: follow closely at first
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1 - d)
            else:
                self.shadow[k].copy_(v)


def _seed(*parts) -> int:
    """A seed derived from ``parts`` that is the same in every process (unlike ``hash``)."""
    return zlib.crc32(repr(parts).encode())


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


PHASES = ("vae", "decoder", "unet")  # the phases that log steps, in order


def log_times(log_path: Path, now: tuple[float, float] | None = None) -> dict:
    """Wall time of a run from its log, and how much of it the run sat idle.

    Each process counts from its start to its last record; the time between processes (the
    run stopped) is not counted, the time a process sat idle is. ``now`` adds the running
    process (start, time). Records of old versions carry no process start: a new process is
    seen where the (phase, step) stops increasing, and counts from its first record.
    Idle time is an estimate: the excess of every gap between two records of one phase over
    five times that phase's median gap (or 30 s, if more), for phases with at least 5 gaps
    (a run paused with SIGSTOP, or starved of CPU by other work).
    """
    records = ([json.loads(line) for line in log_path.read_text().splitlines()]
               if log_path.exists() else [])
    process, last_place, segment = [], None, 0
    for r in records:
        if "run" in r:
            process.append(r["run"])
            continue
        place = (PHASES.index(r["phase"]) if r.get("phase") in PHASES else -1, r.get("step", 0))
        if last_place is not None and place <= last_place:
            segment += 1  # an old record: a resumed process logs an earlier place again
        last_place = place
        process.append(f"old-{segment}")
    spans: dict = {}  # process -> [first time, last time]
    gaps: dict = {}
    for (a, pa), (b, pb) in zip(zip(records, process, strict=True),
                                zip(records[1:], process[1:], strict=True), strict=False):
        if pa == pb and a.get("phase") == b.get("phase"):
            gaps.setdefault(a.get("phase"), []).append(b["time"] - a["time"])
    for r, p in zip(records, process, strict=True):
        start = r.get("run", r["time"])
        span = spans.setdefault(p, [start, start])
        span[0], span[1] = min(span[0], start), max(span[1], r["time"])
    if now is not None:
        span = spans.setdefault(round(now[0], 1), [now[0], now[1]])
        span[1] = max(span[1], now[1])
    idle = 0.0
    for phase_gaps in gaps.values():
        if len(phase_gaps) >= 5:
            usual = max(5 * statistics.median(phase_gaps), 30.0)
            idle += sum(g - usual for g in phase_gaps if g > usual)
    return {"wall_time_s": round(sum(b - a for a, b in spans.values())),
            "idle_s": round(idle)}


# ----------------------------------------------------------------------------- data

def make_dataset(n: int, size: int, seed0: int = TRAIN_SEED0):
    """Scenes and their renders, uint8 ``(n, size, size, 3)``, with a background mask."""
    scenes = [random_scene(seed0 + i) for i in range(n)]
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, scene in enumerate(tqdm(scenes, desc="rendering scenes", leave=False)):
        images[i] = render(scene, size)
    backgrounds = np.array([COLORS[s.background] for s in scenes], dtype=np.uint8)
    return scenes, images, backgrounds


def _to_model(images: np.ndarray, device) -> torch.Tensor:
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def world_token_ids(tokenizer) -> list[int]:
    """Every token id a shapes-world caption can use (and the special tokens)."""
    words = set()
    for phrases in [*PLACE_PHRASES.values(), *SIZE_WORDS.values(), SCENE_TEMPLATES,
                    list(COLORS), list(SHAPES), ["a an and , background plain"]]:
        for phrase in phrases:
            words.update(phrase.replace("{objects}", "").replace("{bg}", "")
                         .replace("{a_bg}", "a").replace(",", " , ").split())
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    for w in words:
        ids.update(tokenizer(w, add_special_tokens=False).input_ids)
    return sorted(ids)


# ----------------------------------------------------------------------------- phases

# The decoder phase's settings may change on resume: nothing after it depends on the decoder
# (the UNet learns the frozen encoder's latents), so the phase is redone and nothing else.
DECODER_SETTINGS = ("decoder_steps", "decoder_lr", "empty_fraction", "decoder_margin")
# Settings added to an existing phase after runs were saved, with the value those runs used.
SETTINGS_ADDED = {"caption_noise": 0.0}


class Trainer:
    """Runs the phases of a :class:`TrainConfig`, resuming from ``cfg.out``."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(cfg.device or get_device())
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.log_path = self.out / "log.jsonl"
        self.run_started = time.time()
        cfg.validate()
        self._check_resumable()
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        self.pipe = build_pipeline(cfg.arch, seed=cfg.seed)
        self.pipe.scheduler = make_scheduler(cfg.scheduler, self.pipe.scheduler.config)
        self.pipe.to(self.device)
        self._data = None

    # -- helpers
    # Settings a resumed run may change: they do not alter what was already computed.
    RESUMABLE = {"out", "unet_steps", "checkpoint_every", "device", "threads", "scheduler",
                 *DECODER_SETTINGS}

    def _check_resumable(self) -> None:
        saved = self.out / "config.json"
        self._saved_config: dict = {}
        if not saved.exists():
            return
        # A saved run without a setting added since ran with its old default (SETTINGS_ADDED);
        # any other setting it lacks is a phase added since: that phase has not run yet.
        old = {**SETTINGS_ADDED, **json.loads(saved.read_text())}
        new = self.cfg.to_dict()
        self._saved_config = old
        changed = sorted(k for k in new if k not in self.RESUMABLE and k in old
                         and old[k] != new[k])
        if changed:
            raise ValueError(f"{self.out} holds a run with other settings ({', '.join(changed)}"
                             " differ): resume it with its own settings, or use a new --out")
        if old.get("unet_steps", new["unet_steps"]) != new["unet_steps"]:
            done = self.out / "unet.safetensors"
            if done.exists():
                steps = checkpoint_meta(done)["step"]
                raise ValueError(f"the UNet in {self.out} finished at {steps} steps: its"
                                 " unet_steps can no longer change; use a new --out")
            if self.unet_step() > new["unet_steps"]:
                raise ValueError(f"unet_steps={new['unet_steps']} is below the {self.unet_step()}"
                                 f" steps {self.out} has already trained")
        # Changes that shape what comes next (a longer or shorter UNet schedule, a redone
        # decoder, another device or thread count, which round differently) go in the log and
        # the record, so that the run can be repeated exactly. Where the output goes and how
        # often it is saved change nothing: resuming is exact.
        moved = {k: [old[k], new[k]] for k in sorted(self.RESUMABLE - {"out", "checkpoint_every"})
                 if k in old and old[k] != new[k]}
        if moved:
            self.log(phase="settings", changed=moved, unet_step=self.unet_step())

    def unet_step(self) -> int:
        """UNet steps done so far: 0 before the phase, the final count after it."""
        for name in ("unet.safetensors", "unet-ckpt.safetensors"):
            if (self.out / name).exists():
                return checkpoint_meta(self.out / name)["step"]
        return 0

    def log(self, **record) -> None:
        now = time.time()
        record = {"time": round(now, 1), "run": round(self.run_started, 1),
                  "elapsed": round(now - self.run_started, 1), **record}
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def settings_changes(self) -> list[dict]:
        """Settings changed when the run was resumed, with the UNet step they took effect at."""
        if not self.log_path.exists():
            return []
        records = [json.loads(line) for line in self.log_path.read_text().splitlines()]
        return [{"changed": r["changed"], "unet_step": r["unet_step"]}
                for r in records if r.get("phase") == "settings"]

    def wall_seconds(self) -> int:
        """Training time over every (resumed) run so far; see :func:`log_times`."""
        return log_times(self.log_path, now=(self.run_started, time.time()))["wall_time_s"]

    @property
    def data(self):
        if self._data is None:
            self._data = make_dataset(self.cfg.n_train, self.cfg.arch.image_size)
        return self._data

    def _generator(self, phase: str, step: int) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(_seed(self.cfg.seed, phase, step))

    # -- phase 1
    def train_vae(self) -> None:
        cfg, vae = self.cfg, self.pipe.vae
        done = self.out / "vae.safetensors"
        if done.exists():
            vae.load_state_dict(load_checkpoint(done)[0])
            vae.eval()  # as a run that trained it leaves it
            return
        # Start with a small posterior std (logvar -6): sampling noise as large as the signal
        # would hide the image from the decoder. Training may still change it.
        with torch.no_grad():
            if getattr(vae, "quant_conv", None) is not None:
                c = vae.config.latent_channels
                vae.quant_conv.weight[c:] = 0.0
                vae.quant_conv.bias[c:] = -6.0
        opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
        ckpt = self.out / "vae-ckpt.safetensors"
        start = self._vae_resume(ckpt, opt)
        _, images, backgrounds = self.data
        vae.train()
        bar = tqdm(range(start, cfg.vae_steps), desc="vae", initial=start, total=cfg.vae_steps)
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = cfg.vae_lr * _lr_factor(step, cfg.vae_steps, cfg.warmup_steps)
            rng = np.random.default_rng(_seed(cfg.seed, "vae", step))  # per step: exact resume
            idx = rng.integers(0, len(images), cfg.vae_batch)
            x = _to_model(images[idx], self.device)
            posterior = vae.encode(x).latent_dist
            z = posterior.sample(generator=self._generator("vae", step))
            recon = vae.decode(z).sample
            rec_loss = self._reconstruction_loss(recon, x, backgrounds[idx])
            kl = posterior.kl().mean() / z[0].numel()
            self._vae_update("vae", step, cfg.vae_steps, opt, list(vae.parameters()), bar, ckpt,
                             rec_loss + cfg.kl_weight * kl, rec_loss, recon, x)
        vae.eval()
        save_checkpoint(done, vae.state_dict(), {"step": cfg.vae_steps})
        ckpt.unlink(missing_ok=True)

    def _reconstruction_loss(self, recon, x, backgrounds, margin: int = 0) -> torch.Tensor:
        """MSE with pixels that differ from the background weighted ``object_weight`` times.

        With a ``margin``, the background that many pixels around an object is weighted like
        the object: otherwise painting an object too large costs 1/``object_weight`` of
        painting it too small, and small circles come out square. (Measured: it rounds small
        squares instead; the shipped recipe keeps 0.)
        """
        bg = torch.from_numpy(backgrounds).to(self.device).float() / 127.5 - 1
        differs = ((x - bg[:, :, None, None]).abs().amax(dim=1, keepdim=True) > 0.02).float()
        if margin:
            differs = F.max_pool2d(differs, 2 * margin + 1, stride=1, padding=margin)
        weight = 1 + (self.cfg.object_weight - 1) * differs
        return (weight * (recon - x) ** 2).mean() / weight.mean()

    def _vae_resume(self, ckpt, opt) -> int:
        """Load a VAE phase's checkpoint (weights and optimiser) if there is one; its step."""
        if not ckpt.exists():
            return 0
        tensors, meta = load_checkpoint(ckpt)
        self.pipe.vae.load_state_dict({k[4:]: v for k, v in tensors.items()
                                       if k.startswith("vae.")})
        opt.load_state_dict(_optimizer_state("opt", tensors, opt.state_dict()))
        return meta["step"]

    def _vae_update(self, phase, step, total, opt, params, bar, ckpt, loss, shown, recon, x,
                    settings=None):
        """One optimiser step of a VAE phase, with its progress, log and checkpoint."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        psnr = 10 * math.log10(4 / max(F.mse_loss(recon, x).item(), 1e-10))
        bar.set_postfix(loss=f"{shown.item():.4f}", psnr=f"{psnr:.1f}")
        if (step + 1) % 50 == 0 or step + 1 == total:
            self.log(phase=phase, step=step + 1, loss=shown.item(), psnr=psnr)
        if (step + 1) % self.cfg.checkpoint_every == 0 and step + 1 < total:
            vae = self.pipe.vae
            save_checkpoint(ckpt, {**{f"vae.{k}": v for k, v in vae.state_dict().items()},
                                   **_flatten_state("opt", opt.state_dict())},
                            {"step": step + 1, "settings": settings})

    # -- phase 2
    @torch.no_grad()
    def measure_scaling_factor(self) -> float:
        path = self.out / "scaling_factor.json"
        if path.exists():
            factor = json.loads(path.read_text())["scaling_factor"]
        else:
            _, images, _ = self.data
            n = min(self.cfg.scale_samples, len(images))
            latents = torch.cat([
                self.pipe.vae.encode(_to_model(images[i:min(i + 256, n)], self.device))
                .latent_dist.sample(generator=self._generator("scale", i))
                for i in range(0, n, 256)])
            factor = float(1.0 / latents.std())
            path.write_text(json.dumps({"scaling_factor": factor, "std": float(latents.std()),
                                        "mean": float(latents.mean()), "images": n}) + "\n")
        self.pipe.vae.register_to_config(scaling_factor=factor)
        return factor

    # -- phase 3
    @torch.no_grad()
    def encode_latents(self) -> torch.Tensor:
        path = self.out / "latents.safetensors"
        if path.exists():
            return load_checkpoint(path)[0]["latents"].to(self.device)
        _, images, _ = self.data
        vae, factor = self.pipe.vae, self.pipe.vae.config.scaling_factor
        chunks = [vae.encode(_to_model(images[i:i + 256], self.device)).latent_dist.mean
                  for i in tqdm(range(0, len(images), 256), desc="encoding latents")]
        # contiguous, as when loaded back: a different memory layout would change the rounding
        # of the UNet's convolutions, and a resumed run would drift from an uninterrupted one
        latents = (torch.cat(chunks) * factor).contiguous()
        save_checkpoint(path, {"latents": latents}, {"scaling_factor": factor})
        return latents

    # -- phase 3b
    def finetune_decoder(self) -> None:
        """Fine-tune the decoder alone on the encoder's latents, with empty scenes mixed in.

        The encoder stays frozen, so the latents, the scaling factor and the UNet's training
        stay valid; only what the decoder paints from them improves (plain backgrounds, which
        phase 1 never saw: every training scene has 1 to 3 objects).
        """
        cfg, vae = self.cfg, self.pipe.vae
        done = self.out / "decoder.safetensors"
        ckpt = self.out / "decoder-ckpt.safetensors"
        settings = {k: getattr(cfg, k) for k in DECODER_SETTINGS}
        # Files from before settings were stored were made with the saved config's settings.
        legacy = {k: self._saved_config.get(k, 0) for k in DECODER_SETTINGS}
        for path in (done, ckpt):  # made with other settings: redo the phase
            if path.exists() and checkpoint_meta(path).get("settings", legacy) != settings:
                path.unlink()
        if cfg.decoder_steps <= 0:
            return
        if done.exists():
            vae.load_state_dict(load_checkpoint(done)[0])
            return
        params = list(vae.decoder.parameters())
        if getattr(vae, "post_quant_conv", None) is not None:
            params += list(vae.post_quant_conv.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.decoder_lr, weight_decay=0.0)
        start = self._vae_resume(ckpt, opt)
        _, images, backgrounds = self.data
        palette = np.array(list(COLORS.values()), dtype=np.uint8)
        vae.decoder.train()
        warmup = min(cfg.warmup_steps, cfg.decoder_steps // 10)
        bar = tqdm(range(start, cfg.decoder_steps), desc="decoder", initial=start,
                   total=cfg.decoder_steps)
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = cfg.decoder_lr * _lr_factor(step, cfg.decoder_steps, warmup)
            rng = np.random.default_rng(_seed(cfg.seed, "decoder", step))
            idx = rng.integers(0, len(images), cfg.vae_batch)
            batch, bgs = images[idx].copy(), backgrounds[idx].copy()
            empty = rng.random(cfg.vae_batch) < cfg.empty_fraction
            colours = palette[rng.integers(0, len(palette), cfg.vae_batch)]
            batch[empty] = colours[empty][:, None, None, :]
            bgs[empty] = colours[empty]
            x = _to_model(batch, self.device)
            with torch.no_grad():
                z = vae.encode(x).latent_dist.mean  # what the UNet learns to produce
            recon = vae.decode(z).sample
            loss = self._reconstruction_loss(recon, x, bgs, cfg.decoder_margin)
            self._vae_update("decoder", step, cfg.decoder_steps, opt, params, bar, ckpt,
                             loss, loss, recon, x, settings)
        vae.eval()
        save_checkpoint(done, vae.state_dict(), {"step": cfg.decoder_steps, "settings": settings})
        ckpt.unlink(missing_ok=True)

    # -- phase 4
    def train_unet(self, latents: torch.Tensor) -> None:
        from diffusers import DDPMScheduler

        cfg, unet, text_encoder = self.cfg, self.pipe.unet, self.pipe.text_encoder
        tokenizer = self.pipe.tokenizer
        if (self.out / "unet.safetensors").exists():
            return self._load_final_unet()
        noise_sched = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
        alphas = noise_sched.alphas_cumprod.to(self.device)
        params = [*unet.parameters(), *text_encoder.parameters()]
        opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
        ema_unet, ema_text = EMA(unet, cfg.ema_decay), EMA(text_encoder, cfg.ema_decay)
        ckpt, start = self.out / "unet-ckpt.safetensors", 0
        if ckpt.exists():
            tensors, meta = load_checkpoint(ckpt)
            for prefix, module in (("unet.", unet), ("text.", text_encoder)):
                module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                                        if k.startswith(prefix)})
            for prefix, ema in (("ema_unet.", ema_unet), ("ema_text.", ema_text)):
                ema.shadow = {k[len(prefix):]: v.to(self.device) for k, v in tensors.items()
                              if k.startswith(prefix)}
            opt.load_state_dict(_optimizer_state("opt", tensors, opt.state_dict()))
            start = meta["step"]
        scenes = self.data[0]
        unet.train()
        text_encoder.train()
        bar = tqdm(range(start, cfg.unet_steps), desc="unet", initial=start,
                   total=cfg.unet_steps)
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = cfg.unet_lr * _lr_factor(step, cfg.unet_steps, cfg.warmup_steps)
            rng = random.Random(_seed(cfg.seed, "unet", step))  # per step: exact resume
            idx = [rng.randrange(len(scenes)) for _ in range(cfg.unet_batch)]
            prompts = training_captions([scenes[i] for i in idx], rng, cfg.caption_dropout,
                                        cfg.caption_noise)
            ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids.to(self.device)
            x0 = latents[idx]
            gen = self._generator("unet", step)
            noise = torch.randn(x0.shape, generator=gen, device=self.device)
            t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(idx),),
                              generator=gen, device=self.device)
            noisy = noise_sched.add_noise(x0, noise, t)
            states = text_encoder(ids)[0]
            pred = unet(noisy, t, encoder_hidden_states=states).sample
            snr = alphas[t] / (1 - alphas[t])
            weight = torch.clamp(snr, max=cfg.min_snr_gamma) / snr
            per_example = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
            loss = (weight * per_example).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            ema_unet.update(unet, step)
            ema_text.update(text_encoder, step)
            mse = per_example.mean().item()
            bar.set_postfix(loss=f"{loss.item():.4f}", mse=f"{mse:.4f}")
            if (step + 1) % 50 == 0 or step + 1 == cfg.unet_steps:
                self.log(phase="unet", step=step + 1, loss=loss.item(), mse=mse)
            if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.unet_steps:
                save_checkpoint(ckpt, {
                    **{f"unet.{k}": v for k, v in unet.state_dict().items()},
                    **{f"text.{k}": v for k, v in text_encoder.state_dict().items()},
                    **{f"ema_unet.{k}": v for k, v in ema_unet.shadow.items()},
                    **{f"ema_text.{k}": v for k, v in ema_text.shadow.items()},
                    **_flatten_state("opt", opt.state_dict())}, {"step": step + 1})
                self.export(ema_unet.shadow, ema_text.shadow, steps_done=step + 1)
        save_checkpoint(self.out / "unet.safetensors", {
            **{f"unet.{k}": v for k, v in ema_unet.shadow.items()},
            **{f"text.{k}": v for k, v in ema_text.shadow.items()}}, {"step": cfg.unet_steps})
        ckpt.unlink(missing_ok=True)
        self._load_final_unet()

    def _load_final_unet(self) -> None:
        tensors, _ = load_checkpoint(self.out / "unet.safetensors")
        self.pipe.unet.load_state_dict({k[5:]: v for k, v in tensors.items()
                                        if k.startswith("unet.")})
        self.pipe.text_encoder.load_state_dict({k[5:]: v for k, v in tensors.items()
                                                if k.startswith("text.")})

    # -- result
    def export(self, unet_state=None, text_state=None, steps_done: int | None = None) -> Path:
        """Write ``out/pipeline`` (float16 on disk) from the current or the given weights."""
        import copy

        from diffusers import StableDiffusionPipeline

        pipe = self.pipe
        if unet_state is not None:
            unet, text = copy.deepcopy(pipe.unet), copy.deepcopy(pipe.text_encoder)
            unet.load_state_dict(unet_state)
            text.load_state_dict(text_state)
            pipe = StableDiffusionPipeline(
                vae=pipe.vae, text_encoder=text, tokenizer=pipe.tokenizer, unet=unet,
                scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)
        # Rows of the token embedding that no shapes-world caption uses are zeroed: they were
        # never trained, and zeros compress.
        keep = torch.tensor(world_token_ids(pipe.tokenizer))
        with torch.no_grad():
            table = pipe.text_encoder.get_input_embeddings().weight
            unused = torch.ones(table.shape[0], dtype=torch.bool)
            unused[keep] = False
            table[unused] = 0
        info = {
            "world": "shapes",
            "trained": True,
            "image_size": self.cfg.arch.image_size,
            "unet_steps_done": steps_done if steps_done is not None else self.unet_step(),
            **log_times(self.log_path, now=(self.run_started, time.time())),
            "command": self.cfg.command(),
            "settings_changed": self.settings_changes(),
            "config": self.cfg.to_dict(),
            "scaling_factor": pipe.vae.config.scaling_factor,
            "hardware": {"device": str(self.device), "platform": platform.platform(),
                         "processor": platform.processor() or platform.machine(),
                         "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                         "cuda": torch.cuda.get_device_name() if torch.cuda.is_available()
                         else None},
            "versions": _versions(),
        }
        folder = save_pipeline(pipe, self.out / "pipeline", info=info, half=True)
        if self.log_path.exists():  # the loss curves and timings behind the record
            shutil.copyfile(self.log_path, folder / "training_log.jsonl")
        return folder

    def run(self) -> Path:
        start = time.time()
        self.train_vae()
        factor = self.measure_scaling_factor()
        print(f"scaling factor: {factor:.5f}")
        latents = self.encode_latents()
        self.finetune_decoder()
        self.train_unet(latents)
        path = self.export()
        self.log(phase="done", seconds_this_run=round(time.time() - start, 1),
                 wall_time_s=round(self.wall_seconds()))
        return path


def _versions() -> dict:
    import diffusers
    import transformers

    return {"torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


def train(cfg: TrainConfig | None = None, **overrides) -> Path:
    """Run (or resume) training; returns the folder of the trained pipeline.

    >>> cfg = TrainConfig(out="runs/smoke", n_train=64, vae_steps=2, unet_steps=2)
    >>> folder = train(cfg)  # doctest: +SKIP
    """
    cfg = cfg or TrainConfig()
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return Trainer(cfg).run()


def add_arguments(parser) -> None:
    """The ``sdlearn train`` options: every scalar field of :class:`TrainConfig`."""
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name == "arch":
            continue
        value = getattr(defaults, f.name)
        kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
        choices = sorted(SCHEDULERS) if f.name == "scheduler" else None
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=value,
                            choices=choices, help=f"(default: {value})")
    parser.add_argument("--image-size", type=int, default=defaults.arch.image_size,
                        help="training image size; latents are 8× smaller (default: 64)")
    channels = ",".join(map(str, defaults.arch.vae_channels))
    parser.add_argument("--vae-channels", type=_channel_list, default=defaults.arch.vae_channels,
                        help="the VAE's channels per block, comma-separated; each block after "
                             f"the first halves the size (default: {channels})")


def _channel_list(text: str) -> tuple[int, ...]:
    """``"16,32,64,64"`` → ``(16, 32, 64, 64)``, for ``--vae-channels``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of whole numbers such as 16,32,64,64") from None


def config_from_args(args) -> TrainConfig:
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                         if f.name != "arch"})
    cfg.arch.image_size = args.image_size
    cfg.arch.vae_channels = tuple(args.vae_channels)
    return cfg
