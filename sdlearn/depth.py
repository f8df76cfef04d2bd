"""Depth-to-image: the depth a depth model reads beside its latents, made as diffusers makes it.

A depth model (``load_pipeline(task="depth")``, a ``StableDiffusionDepth2ImgPipeline``) carries
a depth estimator. :func:`estimate_depth` runs it on pictures: its answer is *inverse* depth,
large where things are near, as MiDaS and DPT predict. :func:`depth_channel` turns that into
the one channel the UNet reads after the latents: bicubic to the latents' size, then each map
scaled to [-1, 1] (its nearest point 1, its farthest −1). :func:`depth_input` does both, or
takes a depth map you give it (the pipeline's ``depth_map=``).

>>> import torch
>>> channel = depth_channel(torch.rand(2, 64, 64), 8)
>>> channel.shape, float(channel.min()), float(channel.max())
(torch.Size([2, 1, 8, 8]), -1.0, 1.0)
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .images import to_pil

__all__ = ["depth_channel", "depth_input", "estimate_depth", "is_depth_model"]


def is_depth_model(pipe) -> bool:
    """True if the UNet reads a depth channel after the latents (5 channels in all)."""
    return pipe.unet.config.in_channels == pipe.vae.config.latent_channels + 1


def _pil_list(image) -> list:
    """Pictures as the pipeline's feature extractor takes them: a list of PIL images.

    A tensor is read in sdlearn's convention ((B,) 3, H, W in [-1, 1]); a picture made of 8-bit
    pixels comes back exactly.
    """
    pictures = to_pil(image)
    return pictures if isinstance(pictures, list) else [pictures]


@torch.no_grad()
def estimate_depth(pipe, image) -> torch.Tensor:
    """The depth estimator's inverse depth of ``image`` (one picture or a list), ``(B, h, w)``.

    As ``StableDiffusionDepth2ImgPipeline`` runs it: the pipeline's ``feature_extractor``
    prepares the pictures (at the estimator's own size), and in half precision the estimator
    runs under autocast.
    """
    if getattr(pipe, "depth_estimator", None) is None:
        raise ValueError("this pipeline has no depth estimator: load a depth model with "
                         "sdlearn.load_pipeline(task='depth'), or pass depth_map=")
    estimator = pipe.depth_estimator
    pixels = pipe.feature_extractor(images=_pil_list(image), return_tensors="pt").pixel_values
    pixels = pixels.to(pipe.device, pipe.unet.dtype)
    half = pipe.unet.dtype in (torch.float16, torch.bfloat16)
    # the pipeline's autocast; in float32 it would do nothing but warn on a CPU
    cast = (torch.autocast(pipe.device.type, dtype=pipe.unet.dtype) if half
            else contextlib.nullcontext())
    with cast:
        return estimator(pixels).predicted_depth


def depth_channel(predicted: torch.Tensor, latent_size: int | tuple[int, int]) -> torch.Tensor:
    """The depth channel a depth UNet reads, from inverse depths ``(B, H, W)``, ``(B, 1, h, w)``.

    Bicubic to ``latent_size``, then each map on its own scaled to [-1, 1]: its largest value
    (the nearest point) 1, its smallest (the farthest) −1.
    """
    if predicted.dim() != 3:
        raise ValueError(f"predicted depth must be (batch, height, width); got shape "
                         f"{tuple(predicted.shape)} (a single map: predicted[None])")
    size = (latent_size, latent_size) if isinstance(latent_size, int) else tuple(latent_size)
    small = F.interpolate(predicted.unsqueeze(1), size=size, mode="bicubic", align_corners=False)
    low = torch.amin(small, dim=[1, 2, 3], keepdim=True)
    high = torch.amax(small, dim=[1, 2, 3], keepdim=True)
    return 2.0 * (small - low) / (high - low) - 1.0


def depth_input(pipe, image, depth_map: torch.Tensor | None = None) -> torch.Tensor:
    """The channel ``pipe``'s UNet reads beside the latents of ``image``: ``(B, 1, h, w)``.

    Equal to the pipeline's ``prepare_depth_map`` (without the copy for guidance): the
    estimator's depth of ``image`` (:func:`estimate_depth`), or ``depth_map`` ``(B, H, W)``
    when given, through :func:`depth_channel` at the latents' size, in the UNet's dtype.
    """
    pictures = _pil_list(image)
    f = pipe.vae_scale_factor
    size = (pictures[0].height // f, pictures[0].width // f)
    if depth_map is None:
        depth_map = estimate_depth(pipe, pictures)
    else:
        if depth_map.dim() != 3 or len(depth_map) != len(pictures):
            raise ValueError(f"depth_map must be (batch, height, width) with one map per "
                             f"picture ({len(pictures)}); got shape {tuple(depth_map.shape)}")
        depth_map = depth_map.to(pipe.device, pipe.unet.dtype)
    return depth_channel(depth_map, size).to(pipe.unet.dtype)
