"""The VAE's phases: train it, measure its scaling factor, encode the latents, tune the decoder.

1. :func:`train_vae`: an ``AutoencoderKL`` learns to squeeze images into latents and back.
   Pixels that differ from the background weigh more in the loss (:func:`reconstruction_loss`),
   or the small shapes get blurred into the background.
2. :func:`measure_scaling_factor`: 1/std of the latents over a sample of images, as Stable
   Diffusion's authors computed 0.18215; it goes into the VAE's config.
3. :func:`encode_latents`: every training image is encoded once, and kept.
3b. :func:`finetune_decoder`: the decoder alone is fine-tuned on the frozen encoder's latents,
   with empty scenes mixed in (phase 1 sees only scenes with objects); the latents stay valid.

An error on an object's pixel costs ``object_weight`` times one on the background:

>>> import numpy as np, torch
>>> black = np.array([[0, 0, 0]], dtype=np.uint8)      # the background, -1 in the VAE's range
>>> x = -torch.ones(1, 3, 2, 2)
>>> x[..., 0, 0] = 1.0                                  # the object: one white pixel
>>> wrong_object, wrong_background = x.clone(), x.clone()
>>> wrong_object[..., 0, 0], wrong_background[..., 1, 1] = 0.0, 0.0
>>> float(reconstruction_loss(wrong_object, x, black, 10.0)
...       / reconstruction_loss(wrong_background, x, black, 10.0))
10.0
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..images import psnr
from ..shapes.world import COLORS
from .checkpoints import load_checkpoint, save_checkpoint
from .data import to_model
from .loop import Loop, step_generator
from .resume import decoder_made_with, decoder_settings

if TYPE_CHECKING:
    from .trainer import Trainer


def reconstruction_loss(recon, x, backgrounds: np.ndarray, object_weight: float,
                        margin: int = 0) -> torch.Tensor:
    """MSE with pixels that differ from the background weighted ``object_weight`` times.

    With a ``margin``, the background that many pixels around an object is weighted like
    the object: otherwise painting an object too large costs 1/``object_weight`` of
    painting it too small, and small circles come out square. (Measured: it rounds small
    squares instead; the shipped recipe keeps 0.)
    """
    bg = torch.from_numpy(backgrounds).to(x.device).float() / 127.5 - 1
    differs = ((x - bg[:, :, None, None]).abs().amax(dim=1, keepdim=True) > 0.02).float()
    if margin:
        differs = F.max_pool2d(differs, 2 * margin + 1, stride=1, padding=margin)
    weight = 1 + (object_weight - 1) * differs
    return (weight * (recon - x) ** 2).mean() / weight.mean()


# -- phase 1
def train_vae(trainer: Trainer) -> None:
    """Train the VAE on the training images, or load the one trained already."""
    cfg, vae = trainer.cfg, trainer.pipe.vae
    done = trainer.out / "vae.safetensors"
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
    # Its checkpoints' "settings" are None: only the decoder phase's have any.
    loop = Loop(trainer, "vae", opt, steps=cfg.vae_steps, lr=cfg.vae_lr,
                modules={"vae.": vae}, meta={"settings": None})
    _, images, backgrounds = trainer.data
    vae.train()
    for step in loop.steps():
        rng = np.random.default_rng(loop.seed(step))
        idx = rng.integers(0, len(images), cfg.vae_batch)
        x = to_model(images[idx], trainer.device)
        posterior = vae.encode(x).latent_dist
        z = posterior.sample(generator=loop.generator(step))
        recon = vae.decode(z).sample
        rec_loss = reconstruction_loss(recon, x, backgrounds[idx], cfg.object_weight)
        kl = posterior.kl().mean() / z[0].numel()
        loop.update(step, rec_loss + cfg.kl_weight * kl, loss=rec_loss.item(),
                    psnr=psnr(F.mse_loss(recon.detach(), x).item()))
    vae.eval()
    loop.finish(done, vae.state_dict(), {"step": cfg.vae_steps})


# -- phase 2
@torch.no_grad()
def measure_scaling_factor(trainer: Trainer) -> float:
    """1/std of the latents of ``scale_samples`` training images, set in the VAE's config."""
    path = trainer.out / "scaling_factor.json"
    vae = trainer.pipe.vae
    if path.exists():
        factor = json.loads(path.read_text())["scaling_factor"]
    else:
        _, images, _ = trainer.data
        n = min(trainer.cfg.scale_samples, len(images))
        latents = torch.cat([
            vae.encode(to_model(images[i:min(i + 256, n)], trainer.device)).latent_dist
            .sample(generator=step_generator(trainer.device, trainer.cfg.seed, "scale", i))
            for i in range(0, n, 256)])
        factor = float(1.0 / latents.std())
        path.write_text(json.dumps({"scaling_factor": factor, "std": float(latents.std()),
                                    "mean": float(latents.mean()), "images": n}) + "\n")
    vae.register_to_config(scaling_factor=factor)
    return factor


# -- phase 3
@torch.no_grad()
def encode_latents(trainer: Trainer) -> torch.Tensor:
    """The scaled latents of every training image (their posterior means), kept on disk."""
    path = trainer.out / "latents.safetensors"
    if path.exists():
        return load_checkpoint(path)[0]["latents"].to(trainer.device)
    _, images, _ = trainer.data
    vae, factor = trainer.pipe.vae, trainer.pipe.vae.config.scaling_factor
    chunks = [vae.encode(to_model(images[i:i + 256], trainer.device)).latent_dist.mean
              for i in tqdm(range(0, len(images), 256), desc="encoding latents")]
    # contiguous, as when loaded back: a different memory layout would change the rounding
    # of the UNet's convolutions, and a resumed run would drift from an uninterrupted one
    latents = (torch.cat(chunks) * factor).contiguous()
    save_checkpoint(path, {"latents": latents}, {"scaling_factor": factor})
    return latents


# -- phase 3b
def finetune_decoder(trainer: Trainer) -> None:
    """Fine-tune the decoder alone on the encoder's latents, with empty scenes mixed in.

    The encoder stays frozen, so the latents, the scaling factor and the UNet's training
    stay valid; only what the decoder paints from them improves (plain backgrounds, which
    phase 1 never saw: every training scene has 1 to 3 objects).
    """
    cfg, vae = trainer.cfg, trainer.pipe.vae
    done = trainer.out / "decoder.safetensors"
    settings = decoder_settings(cfg)
    for path in (done, trainer.out / "decoder-ckpt.safetensors"):
        if path.exists() and decoder_made_with(path, trainer.saved_config) != settings:
            path.unlink()  # made with other settings: redo the phase
    if cfg.decoder_steps <= 0:
        return
    if done.exists():
        vae.load_state_dict(load_checkpoint(done)[0])
        return
    params = list(vae.decoder.parameters())
    if getattr(vae, "post_quant_conv", None) is not None:
        params += list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.decoder_lr, weight_decay=0.0)
    loop = Loop(trainer, "decoder", opt, steps=cfg.decoder_steps, lr=cfg.decoder_lr,
                warmup=min(cfg.warmup_steps, cfg.decoder_steps // 10),
                modules={"vae.": vae}, meta={"settings": settings})
    _, images, backgrounds = trainer.data
    palette = np.array(list(COLORS.values()), dtype=np.uint8)
    vae.decoder.train()
    for step in loop.steps():
        rng = np.random.default_rng(loop.seed(step))
        idx = rng.integers(0, len(images), cfg.vae_batch)
        batch, bgs = images[idx].copy(), backgrounds[idx].copy()
        empty = rng.random(cfg.vae_batch) < cfg.empty_fraction
        colours = palette[rng.integers(0, len(palette), cfg.vae_batch)]
        batch[empty] = colours[empty][:, None, None, :]
        bgs[empty] = colours[empty]
        x = to_model(batch, trainer.device)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean  # what the UNet learns to produce
        recon = vae.decode(z).sample
        loss = reconstruction_loss(recon, x, bgs, cfg.object_weight, cfg.decoder_margin)
        loop.update(step, loss, loss=loss.item(),
                    psnr=psnr(F.mse_loss(recon.detach(), x).item()))
    vae.eval()
    loop.finish(done, vae.state_dict(), {"step": cfg.decoder_steps, "settings": settings})
