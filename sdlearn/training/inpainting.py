"""Making an inpainting model from a trained one, as Stability made theirs (``--task inpainting``).

The UNet's first convolution is widened from 4 input channels to 9, in diffusers' order: the
noisy latents, the mask at the latents' size, and the latents of the masked picture (the region
to repaint set to 0, mid-grey in the VAE's [-1, 1]). The five new channels' weights start at
zero, so the widened UNet starts out as the base model, and the UNet phase then fine-tunes it on
random masks (:func:`random_mask`), reading them as the pipeline gives them
(:func:`sdlearn.editing.inpainting_channels`). The text encoder stays the base model's.

>>> import torch
>>> from diffusers import UNet2DConditionModel
>>> base = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), norm_num_groups=8,
...     down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), cross_attention_dim=32,
...     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1)
>>> wide = widen_conv_in(base, 9)
>>> wide.config.in_channels, wide.conv_in.weight.shape
(9, torch.Size([32, 9, 3, 3]))
>>> x, extra = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 8, 8)
>>> text = torch.randn(1, 3, 32)
>>> torch.allclose(base(x, 10, text).sample, wide(torch.cat([x, extra], 1), 10, text).sample,
...                atol=1e-6)
True
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..shapes.render import object_coverage

# The kinds of random mask and their shares; "all" (everything repainted) keeps text-to-image.
MASK_KINDS = {"box": 0.3, "ellipse": 0.2, "object": 0.25, "strokes": 0.15, "all": 0.1}


@torch.no_grad()
def widen_conv_in(unet, in_channels: int):
    """A copy of ``unet`` reading ``in_channels`` input channels, the new ones with zero weights.

    Its output on ``cat([x, anything])`` is its output on ``x`` (up to the summation order).
    """
    from diffusers import UNet2DConditionModel

    old = unet.conv_in
    if in_channels < old.in_channels:
        raise ValueError(f"in_channels={in_channels}: the UNet already reads {old.in_channels}; "
                         "widening adds channels, it cannot drop them")
    wide = UNet2DConditionModel.from_config(unet.config, in_channels=in_channels)
    state = unet.state_dict()
    weight = torch.zeros(old.out_channels, in_channels, *old.kernel_size, dtype=old.weight.dtype)
    weight[:, :old.in_channels] = old.weight
    state["conv_in.weight"] = weight
    wide.load_state_dict(state)
    if wide.dtype != old.weight.dtype:
        wide = wide.to(dtype=old.weight.dtype)
    return wide.to(old.weight.device)


def random_mask(rng: random.Random, scene, size: int) -> np.ndarray:
    """One training mask for ``scene``, float ``(size, size)`` in {0, 1} (1 = repaint).

    A kind is drawn by :data:`MASK_KINDS`: a box or an ellipse of any size and place, one of the
    scene's objects (its shape, grown by a few pixels; a box where the scene has none), brush
    strokes, or everything.
    """
    kind = rng.choices(list(MASK_KINDS), weights=list(MASK_KINDS.values()))[0]
    if kind == "object" and not scene.objects:
        kind = "box"
    if kind == "all":
        return np.ones((size, size), np.float32)
    if kind == "object":
        obj = scene.objects[rng.randrange(len(scene.objects))]
        inside = torch.from_numpy(object_coverage(obj, size) > 0.5).float()[None, None]
        grow = rng.randint(1, max(1, size // 16))
        grown = F.max_pool2d(inside, 2 * grow + 1, stride=1, padding=grow)
        return grown[0, 0].numpy()
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if kind == "strokes":
        for _ in range(rng.randint(1, 3)):
            x, y = rng.uniform(0, size), rng.uniform(0, size)
            points = [(x, y)]
            for _ in range(rng.randint(2, 5)):
                angle, step = rng.uniform(0, 2 * math.pi), rng.uniform(size / 8, size / 3)
                x, y = x + step * math.cos(angle), y + step * math.sin(angle)
                points.append((x, y))
            draw.line(points, fill=255, width=rng.randint(max(2, size // 16), size // 5),
                      joint="curve")
    else:
        w, h = rng.uniform(0.15, 0.7) * size, rng.uniform(0.15, 0.7) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        shape = draw.rectangle if kind == "box" else draw.ellipse
        shape((x0, y0, x0 + w, y0 + h), fill=255)
    return (np.asarray(mask) > 127).astype(np.float32)


__all__ = ["MASK_KINDS", "random_mask", "widen_conv_in"]
