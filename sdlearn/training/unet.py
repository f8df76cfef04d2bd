"""The UNet's phase: the text encoder and the UNet learn together to predict the added noise.

The noise follows Stable Diffusion's schedule (``DDPMScheduler`` with its config), and the UNet
reads the caption through cross-attention. The caption is ``""`` for ``caption_dropout`` of the
examples, so that the model also learns the unconditional prediction that guidance needs; with
``caption_noise``, that share of the captions gets one detail wrong
(:func:`~sdlearn.training.data.training_captions`), so that the unguided model is unsure and
guidance matters. The loss is weighted by Min-SNR (Hang et al. 2023), and the weights are
averaged (EMA) for the final model.

Min-SNR weights the loss of noisy steps fully, and of nearly clean ones less:

>>> import torch
>>> [round(w, 2) for w in min_snr_weight(torch.tensor([0.5, 5.0, 50.0]), gamma=5.0).tolist()]
[1.0, 1.0, 0.1]
>>> [round(w, 2) for w in min_snr_weight(torch.tensor([0.5, 50.0]), 5.0, "v_prediction").tolist()]
[0.33, 0.1]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..device import randn
from ..editing import inpainting_channels
from ..schedulers import SD_SCHEDULER_CONFIG
from ..shapes.captions import UNPLACED
from .checkpoints import EMA, load_checkpoint, prefixed, unprefixed
from .data import to_model, training_captions
from .export import export
from .inpainting import random_mask
from .loop import Loop, step_generator, step_seed
from .resume import unet_step
from .samples import write_samples

if TYPE_CHECKING:
    from .trainer import Trainer


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction_type: str = "epsilon"
                   ) -> torch.Tensor:
    """The loss weight of each example: ``min(snr, gamma) / snr`` for a noise prediction,
    ``min(snr, gamma) / (snr + 1)`` for a v-prediction (as diffusers' training scripts)."""
    clamped = torch.clamp(snr, max=gamma)
    return clamped / (snr + 1) if prediction_type == "v_prediction" else clamped / snr


def draw_timesteps(kind: str, n: int, total: int, generator, device) -> torch.Tensor:
    """``n`` training timesteps: ``"uniform"`` (each alike), or ``"cubic"``, ``(1 - u³)·T``
    for a uniform ``u`` (T2I-Adapter's), which draws the noisier half four times in five.

    >>> gen = torch.Generator().manual_seed(0)
    >>> t = draw_timesteps("cubic", 10_000, 1000, gen, "cpu")
    >>> round((t >= 500).float().mean().item(), 2), int(t.min()) >= 0, int(t.max()) <= 999
    (0.8, True, True)
    """
    if kind == "cubic":
        u = torch.rand(n, generator=generator, device=device)
        return ((1 - u ** 3) * total).long().clamp(0, total - 1)
    return torch.randint(0, total, (n,), generator=generator, device=device)


@dataclass
class UNetBatch:
    """What one UNet step draws: the examples, their prompts and token ids, the clean latents,
    the noise and the timesteps, and for a sibling the extra input channels (or None)."""

    idx: list[int]
    prompts: list[str]
    ids: torch.Tensor
    x0: torch.Tensor
    noise: torch.Tensor
    t: torch.Tensor
    extra: torch.Tensor | None = None


def unet_batch(trainer: Trainer, step: int, latents: torch.Tensor,
               depth: torch.Tensor | None = None) -> UNetBatch:
    """The batch of UNet step ``step``: the same at every call, resumed or not.

    Its random numbers come from generators seeded by (seed, ``"unet"``, step)
    (:func:`~sdlearn.training.loop.step_seed`): a Python one for the examples and their
    captions, a torch one for the noise, then the timesteps, then a sibling's masks' noise.
    """
    cfg, device, tokenizer = trainer.cfg, trainer.device, trainer.pipe.tokenizer
    scenes, images = trainer.data[:2]
    rng = random.Random(step_seed(cfg.seed, "unet", step))
    idx = [rng.randrange(len(scenes)) for _ in range(cfg.unet_batch)]
    prompts = training_captions([scenes[i] for i in idx], rng, cfg.caption_dropout,
                                cfg.caption_noise, loose=cfg.captions != "full",
                                shares=UNPLACED if cfg.captions == "unplaced" else None)
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(device)
    x0 = latents[idx]
    gen = step_generator(device, cfg.seed, "unet", step)
    noise = randn(x0.shape, gen, device=device)
    t = draw_timesteps(cfg.timesteps, len(idx), SD_SCHEDULER_CONFIG["num_train_timesteps"],
                       gen, device)
    extra = None
    if cfg.task == "inpainting":  # the mask and the masked picture's latents, as the pipeline
        masks = torch.from_numpy(np.stack([random_mask(rng, scenes[i], images.shape[1])
                                           for i in idx]))[:, None].to(device)
        extra = inpainting_channels(trainer.pipe, to_model(images[idx], device), masks, gen)
    elif depth is not None:  # the estimator's depth map, as the pipeline makes it
        extra = depth[idx].to(x0.dtype)
    return UNetBatch(idx, prompts, ids, x0, noise, t, extra)


def diffusion_loss(unet, noise_scheduler, x0: torch.Tensor, noise: torch.Tensor,
                   t: torch.Tensor, states: torch.Tensor, min_snr_gamma: float,
                   extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The objective of a batch, and each example's plain squared error.

    The latents ``x0`` noised to ``t`` (``add_noise``; a sibling's ``extra`` input channels
    appended), the UNet's prediction from them and the hidden ``states``, each example's mean
    squared error against the target the scheduler's ``prediction_type`` names (the noise, or
    ``v``, ``get_velocity``), weighted by Min-SNR, averaged.
    """
    noisy = noise_scheduler.add_noise(x0, noise, t)
    if extra is not None:
        noisy = torch.cat([noisy, extra], dim=1)
    pred = unet(noisy, t, encoder_hidden_states=states).sample
    kind = noise_scheduler.config.prediction_type
    target = noise_scheduler.get_velocity(x0, noise, t) if kind == "v_prediction" else noise
    per_example = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    alphas = noise_scheduler.alphas_cumprod.to(per_example.device)[t]
    loss = (min_snr_weight(alphas / (1 - alphas), min_snr_gamma, kind) * per_example).mean()
    return loss, per_example


def unet_loss(unet, text_encoder, batch: UNetBatch, noise_scheduler, min_snr_gamma: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The UNet phase's objective on ``batch`` (:func:`diffusion_loss`), the prompts read by
    ``text_encoder``."""
    return diffusion_loss(unet, noise_scheduler, batch.x0, batch.noise, batch.t,
                          text_encoder(batch.ids)[0], min_snr_gamma, batch.extra)


def train_unet(trainer: Trainer, latents: torch.Tensor, depth: torch.Tensor | None = None
               ) -> None:
    """Train the text encoder and the UNet on ``latents``, or load the ones trained already.

    ``depth``: for a depth model, each picture's depth channel (:mod:`.depth`)."""
    from diffusers import DDPMScheduler

    cfg, unet, text_encoder = trainer.cfg, trainer.pipe.unet, trainer.pipe.text_encoder
    if (trainer.out / "unet.safetensors").exists():
        return load_final_unet(trainer)
    noise_sched = DDPMScheduler.from_config(SD_SCHEDULER_CONFIG)
    frozen_text = cfg.task != "text2img"  # a sibling reads prompts as its base model does
    params = [*unet.parameters(), *([] if frozen_text else text_encoder.parameters())]
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
    ema = {"unet.": EMA(unet, cfg.ema_decay), "text.": EMA(text_encoder, cfg.ema_decay)}
    loop = Loop(trainer, "unet", opt, steps=cfg.unet_steps, lr=cfg.unet_lr,
                modules={"unet.": unet, "text.": text_encoder}, ema=ema,
                on_checkpoint=lambda step: export(trainer, ema["unet."].shadow,
                                                  ema["text."].shadow, steps_done=step))
    if cfg.task == "text2img" and unet_step(trainer.out) == 0:  # what it draws before training
        write_samples(trainer.pipe, trainer.out, 0)
    unet.train()
    text_encoder.train(not frozen_text)
    text_encoder.requires_grad_(not frozen_text)
    for step in loop.steps():
        batch = unet_batch(trainer, step, latents, depth)
        loss, per_example = unet_loss(unet, text_encoder, batch, noise_sched, cfg.min_snr_gamma)
        loop.update(step, loss, loss=loss.item(), mse=per_example.mean().item())
    # the final model is the average: the EMAs' weights, under the modules' own prefixes
    averaged = {k: v for prefix, e in ema.items() for k, v in prefixed(e.shadow, prefix).items()}
    loop.finish(trainer.out / "unet.safetensors", averaged, {"step": cfg.unet_steps})
    load_final_unet(trainer)


def load_final_unet(trainer: Trainer) -> None:
    """Load the finished phase's weights (the EMA ones) into the pipeline."""
    tensors, _ = load_checkpoint(trainer.out / "unet.safetensors")
    trainer.pipe.unet.load_state_dict(unprefixed(tensors, "unet."))
    trainer.pipe.text_encoder.load_state_dict(unprefixed(tensors, "text."))
