"""What every training phase's loop shares: the steps, the update, the log and the checkpoints.

A phase writes its own step (draw a batch, compute a loss) and hands the loss to
:meth:`Loop.update`. The loop does the rest, the same way for every phase:

- each step sets the learning rate (a linear warm-up, then a cosine down to a tenth),
- ``zero_grad``, ``backward``, gradient clipping at norm 1, the optimizer's step, the EMAs,
- the progress bar, a log record every 50 steps, and a checkpoint every ``checkpoint_every``
  steps, from which the phase resumes exactly: every step draws its random numbers from
  generators seeded by (seed, phase, step), never from a stream that runs on.

>>> [round(lr_factor(step, total=100, warmup=10), 2) for step in (0, 9, 10, 55, 99)]
[0.1, 1.0, 1.0, 0.55, 0.1]
>>> step_seed(0, "vae", 7) == step_seed(0, "vae", 7) != step_seed(0, "vae", 8)
True
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from .checkpoints import (
    EMA,
    load_checkpoint,
    load_optimizer,
    optimizer_tensors,
    prefixed,
    save_checkpoint,
    unprefixed,
)

if TYPE_CHECKING:
    from .trainer import Trainer

LOG_EVERY = 50


def step_seed(*parts) -> int:
    """A seed derived from ``parts`` that is the same in every process (unlike ``hash``)."""
    return zlib.crc32(repr(parts).encode())


def step_generator(device, *parts) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`step_seed` of ``parts``."""
    return torch.Generator(device).manual_seed(step_seed(*parts))


def lr_factor(step: int, total: int, warmup: int) -> float:
    """The learning rate's share at ``step``: a linear warm-up, then a cosine to 0.1."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Loop:
    """The steps of one phase of ``trainer``'s run, with ``opt`` updating ``modules``.

    - ``modules``: what the checkpoint holds, by key prefix (``{"vae.": vae}``);
    - ``ema``: averages of some of them, by the same prefix (saved as ``"ema_" + prefix``);
    - ``meta``: added to each checkpoint's metadata, besides the step;
    - ``on_checkpoint(step)``: called after each checkpoint (the UNet phase exports).

    The checkpoint is ``out/{phase}-ckpt.safetensors``. A phase (a new one too) reads::

        loop = Loop(trainer, "vae", opt, steps=cfg.vae_steps, lr=cfg.vae_lr,
                    modules={"vae.": vae})
        for step in loop.steps():             # resumes; sets the learning rate
            rng = np.random.default_rng(loop.seed(step))
            loss = ...                        # the phase's own step
            loop.update(step, loss, loss=loss.item())
        loop.finish(out / "vae.safetensors", vae.state_dict(), {"step": cfg.vae_steps})
    """

    def __init__(self, trainer: Trainer, phase: str, opt: torch.optim.Optimizer, *,
                 steps: int, lr: float, warmup: int | None = None,
                 modules: dict[str, torch.nn.Module], ema: dict[str, EMA] | None = None,
                 meta: dict | None = None, on_checkpoint: Callable[[int], None] | None = None):
        self.trainer, self.phase, self.opt = trainer, phase, opt
        self.total, self.lr = steps, lr
        self.warmup = trainer.cfg.warmup_steps if warmup is None else warmup
        self.modules, self.ema = modules, ema or {}
        self.meta, self.on_checkpoint = meta or {}, on_checkpoint
        self.params = [p for group in opt.param_groups for p in group["params"]]
        self.ckpt: Path = trainer.out / f"{phase}-ckpt.safetensors"
        self.bar = None

    def seed(self, step: int) -> int:
        """The seed of this phase's ``step``, for its NumPy or Python random generator."""
        return step_seed(self.trainer.cfg.seed, self.phase, step)

    def generator(self, step: int) -> torch.Generator:
        """A ``torch.Generator`` for this phase's ``step``, on the training device."""
        return step_generator(self.trainer.device, self.trainer.cfg.seed, self.phase, step)

    def resume(self) -> int:
        """Load the checkpoint (modules, EMAs, optimizer), if there is one; the step it holds."""
        if not self.ckpt.exists():
            return 0
        tensors, meta = load_checkpoint(self.ckpt)
        for prefix, module in self.modules.items():
            module.load_state_dict(unprefixed(tensors, prefix))
        for prefix, ema in self.ema.items():
            ema.shadow = {k: v.to(self.trainer.device)
                          for k, v in unprefixed(tensors, "ema_" + prefix).items()}
        load_optimizer(self.opt, tensors)
        return meta["step"]

    def steps(self) -> Iterator[int]:
        """Resume, then the steps left, each with its learning rate set."""
        start = self.resume()
        self.bar = tqdm(range(start, self.total), desc=self.phase, initial=start,
                        total=self.total)
        for step in self.bar:
            for group in self.opt.param_groups:
                group["lr"] = self.lr * lr_factor(step, self.total, self.warmup)
            yield step

    def update(self, step: int, objective: torch.Tensor, **shown: float) -> None:
        """One optimizer step on ``objective``; ``shown`` goes to the progress bar and the log."""
        self.opt.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        for prefix, ema in self.ema.items():
            ema.update(self.modules[prefix], step)
        self.bar.set_postfix({k: f"{v:.1f}" if k == "psnr" else f"{v:.4f}"
                              for k, v in shown.items()})
        done = step + 1
        if done % LOG_EVERY == 0 or done == self.total:
            self.trainer.runlog.write(phase=self.phase, step=done, **shown)
        if done % self.trainer.cfg.checkpoint_every == 0 and done < self.total:
            save_checkpoint(self.ckpt, self.state(), {"step": done, **self.meta})
            if self.on_checkpoint is not None:
                self.on_checkpoint(done)

    def state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: the modules, the EMAs and the optimizer's state."""
        tensors = {}
        for prefix, module in self.modules.items():
            tensors.update(prefixed(module.state_dict(), prefix))
        for prefix, ema in self.ema.items():
            tensors.update(prefixed(ema.shadow, "ema_" + prefix))
        return {**tensors, **optimizer_tensors(self.opt)}

    def finish(self, path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Save the phase's result to ``path``, and drop its checkpoint."""
        save_checkpoint(path, tensors, meta)
        self.ckpt.unlink(missing_ok=True)
