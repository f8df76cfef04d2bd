"""Making a depth-to-image model from a trained one, as Stability made stable-diffusion-2-depth.

``--task depth`` adds two things to a trained model (``init_from``):

1. ``depth`` phase: a depth estimator, a tiny ``DPTForDepthEstimation`` (transformers' class,
   the architecture of the DPT models the real one uses, with its ``DPTImageProcessor``),
   learns the shapes world's inverse depth (:mod:`sdlearn.shapes.depth`) from the training
   pictures, with a squared error (an L1 loss, tried first, learned a flat backdrop);
2. the UNet widened to 5 input channels (the new one's weights zero, so it starts as the base
   model) and fine-tuned with the estimator's depth map of each training picture beside the
   noisy latents, made as ``StableDiffusionDepth2ImgPipeline`` makes it
   (:func:`sdlearn.depth.depth_channel`). As Stability's model read MiDaS's estimates, this
   one reads its estimator's, so that it is trained on what it will be given.

The text encoder stays the base model's. The result is a ``StableDiffusionDepth2ImgPipeline``
folder with ``depth_estimator`` and ``feature_extractor``.

>>> import torch
>>> estimator, processor = build_depth_estimator(64)
>>> estimator(torch.zeros(2, 3, 64, 64)).predicted_depth.shape
torch.Size([2, 64, 64])
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from ..depth import depth_channel
from ..shapes.depth import inverse_depth, render_depth
from .checkpoints import EMA, load_checkpoint, save_checkpoint
from .data import to_model
from .loop import Loop

if TYPE_CHECKING:
    from .trainer import Trainer

# The estimator: a ViT of 8x8 patches, 4 layers of width 64, and DPT's reassemble-and-fuse
# neck, whose four levels sit at 2, 1, 1/2 and 1/4 of the patch grid (the real DPT's
# factors, 4 2 1 0.5, are for 16-pixel patches of 384-pixel pictures).
DPT = {"patch_size": 8, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
       "intermediate_size": 128, "backbone_out_indices": [0, 1, 2, 3],
       "neck_hidden_sizes": [16, 32, 64, 64], "reassemble_factors": [2, 1, 0.5, 0.25],
       "fusion_hidden_size": 32, "head_in_index": -1, "is_hybrid": False,
       "use_batch_norm_in_fusion_residual": False}


def build_depth_estimator(image_size: int, seed: int = 0):
    """A new tiny depth estimator for ``image_size`` pictures, and its image processor.

    The processor scales pixels to [-1, 1], as the VAE's input, at the training size.
    """
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    estimator = DPTForDepthEstimation(DPTConfig(image_size=image_size, **DPT))
    processor = DPTImageProcessor(size={"height": image_size, "width": image_size},
                                  keep_aspect_ratio=False, ensure_multiple_of=1,
                                  image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return estimator, processor


def train_depth_estimator(trainer: Trainer) -> None:
    """The ``depth`` phase: train ``trainer.depth_estimator``, or load the one trained already."""
    cfg, estimator, device = trainer.cfg, trainer.depth_estimator, trainer.device
    done = trainer.out / "depth.safetensors"
    if done.exists():
        estimator.load_state_dict(load_checkpoint(done)[0])
        return
    scenes, images = trainer.data[:2]
    size = images.shape[1]
    opt = torch.optim.AdamW(estimator.parameters(), lr=cfg.depth_lr, weight_decay=0.01)
    ema = {"depth.": EMA(estimator, cfg.ema_decay)}
    loop = Loop(trainer, "depth", opt, steps=cfg.depth_steps, lr=cfg.depth_lr,
                modules={"depth.": estimator}, ema=ema)
    estimator.train()
    for step in loop.steps():
        rng = random.Random(loop.seed(step))
        idx = [rng.randrange(len(scenes)) for _ in range(cfg.depth_batch)]
        target = torch.from_numpy(np.stack([inverse_depth(render_depth(scenes[i], size))
                                            for i in idx])).to(device)
        predicted = estimator(to_model(images[idx], device)).predicted_depth
        # squared error: with L1 the estimator settles on the backdrop's depth everywhere
        # (the median pixel), which already passes δ < 1.25 on nine pixels in ten
        loss = ((predicted - target) ** 2).mean()
        loop.update(step, loss, loss=loss.item())
    estimator.load_state_dict(ema["depth."].shadow)
    estimator.eval()
    loop.finish(done, {k: v.contiguous() for k, v in estimator.state_dict().items()},
                {"step": cfg.depth_steps})


@torch.no_grad()
def depth_maps(trainer: Trainer) -> torch.Tensor:
    """The estimator's depth channel for every training picture, ``(N, 1, h, w)``, kept on disk."""
    path = trainer.out / "depth-maps.safetensors"
    if path.exists():
        return load_checkpoint(path)[0]["depth_maps"].to(trainer.device)
    images = trainer.data[1]
    latent = images.shape[1] // trainer.pipe.vae_scale_factor
    estimator = trainer.depth_estimator.eval()
    maps = [depth_channel(estimator(to_model(images[i:i + 256], trainer.device))
                               .predicted_depth, latent)
            for i in tqdm(range(0, len(images), 256), desc="depth maps")]
    maps = torch.cat(maps).contiguous()
    save_checkpoint(path, {"depth_maps": maps}, {"estimator": "depth.safetensors"})
    return maps


def depth_accuracy(predicted: np.ndarray, true: np.ndarray, where: np.ndarray | None = None
                   ) -> dict[str, float]:
    """How close predicted *inverse* depths are to true depths: the share of pixels with
    ``max(d / d*, d* / d) < 1.25`` (δ₁) and the mean relative error ``|d − d*| / d*``, over
    every pixel or over the pixels ``where`` is true.

    >>> true = np.full((1, 2, 2), 4.0)
    >>> depth_accuracy(np.full((1, 2, 2), 0.25), true)
    {'delta_1.25': 1.0, 'abs_rel': 0.0}
    >>> depth_accuracy(np.array([[[0.25, 0.5]]]), np.full((1, 1, 2), 4.0), where=[[[False, True]]])
    {'delta_1.25': 0.0, 'abs_rel': 0.5}
    """
    depth = 1.0 / np.maximum(np.asarray(predicted, np.float64), 1e-6)
    ratio = np.maximum(depth / true, true / depth)
    error = np.abs(depth - true) / true
    if where is not None:
        ratio, error = ratio[np.asarray(where, bool)], error[np.asarray(where, bool)]
    return {"delta_1.25": float((ratio < 1.25).mean()), "abs_rel": float(error.mean())}


__all__ = ["DPT", "build_depth_estimator", "depth_accuracy", "depth_maps", "train_depth_estimator"]
