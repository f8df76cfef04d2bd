"""Graders of lesson 09, depth-to-image: ``check.depth_channel`` and ``check.delta_accuracy``.

The references are :func:`sdlearn.depth.depth_channel`, which the tests prove equal to the
depth pipeline's ``prepare_depth_map``, and :func:`sdlearn.training.depth.depth_accuracy`, the
figure the depth benchmark reports. The inputs are made here, so the graders need no depth
model: ``pipe`` gives only the sizes.

>>> import numpy as np
>>> def ratio_of(predicted, true):
...     return np.mean(np.maximum(predicted / true, true / predicted) < 1.25)
>>> graded = delta_accuracy(ratio_of, pipe=None)  # doctest: +ELLIPSIS
✗ delta_accuracy: the estimator's answer is *inverse* depth ...
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import depth
from ..device import make_generator
from ..sizes import default_size
from ..training.depth import depth_accuracy
from .common import as_number, grader
from .grading import Check, Exercise, Mistake


def _inverse_depths(pipe) -> list[tuple]:
    """Two batches of inverse depths at the picture size, of unlike ranges, and the latent size."""
    size = default_size(pipe) if pipe is not None else 64
    f = pipe.vae_scale_factor if pipe is not None else 8
    gen = make_generator(9)
    near = 0.1 + torch.rand(2, size, size, generator=gen)
    far = 0.02 + 0.05 * torch.rand(3, size, size, generator=gen)
    return [(near, size // f), (torch.cat([near[:1], far]), size // f)]


def _scaled(small, low, high):
    return 2.0 * (small - low) / (high - low) - 1.0


def _each(x, reduce):
    return reduce(x, dim=[1, 2, 3], keepdim=True)


@grader
def depth_channel(pipe) -> Exercise:
    """Exercise: ``depth_channel(predicted, latent_size)`` → the depth channel a depth UNet
    reads, ``(B, 1, latent_size, latent_size)``: inverse depths ``(B, H, W)`` made bicubic to
    the latents' size, then each map on its own scaled to [-1, 1]."""

    def resized(d, n, mode="bicubic"):
        return F.interpolate(d.unsqueeze(1), size=(n, n), mode=mode,
                             align_corners=False if mode != "nearest" else None)

    def not_scaled(d, n):
        return resized(d, n)

    def zero_to_one(d, n):
        small = resized(d, n)
        low, high = _each(small, torch.amin), _each(small, torch.amax)
        return (small - low) / (high - low)

    def whole_batch(d, n):
        small = resized(d, n)
        return _scaled(small, small.min(), small.max())

    def near_is_minus_one(d, n):
        return -depth.depth_channel(d, n)

    def scaled_before_resizing(d, n):
        x = d.unsqueeze(1)
        x = _scaled(x, _each(x, torch.amin), _each(x, torch.amax))
        return F.interpolate(x, size=(n, n), mode="bicubic", align_corners=False)

    def bilinear(d, n):
        small = resized(d, n, "bilinear")
        return _scaled(small, _each(small, torch.amin), _each(small, torch.amax))

    def nearest(d, n):
        small = resized(d, n, "nearest")
        return _scaled(small, _each(small, torch.amin), _each(small, torch.amax))

    def one_channel(got, expected, args) -> bool:
        return tuple(got.shape) == tuple(expected.shape)

    return Exercise(
        "depth_channel", depth.depth_channel, lambda: _inverse_depths(pipe),
        mistakes=[
            Mistake(not_scaled, "the size is right; now scale each map to [-1, 1]: "
                                "2 * (d - min) / (max - min) - 1, with the min and max of that "
                                "map alone"),
            Mistake(zero_to_one, "that spans [0, 1]; the UNet was trained on [-1, 1]: "
                                 "2 * (d - min) / (max - min) - 1"),
            Mistake(whole_batch, "each picture's map is scaled on its own: take the min and max "
                                 "over dimensions 1, 2 and 3 (torch.amin(x, dim=[1, 2, 3], "
                                 "keepdim=True)), not over the whole batch"),
            Mistake(near_is_minus_one, "upside down: the estimator's value is inverse depth, "
                                       "largest where things are near, and the nearest point "
                                       "becomes 1"),
            Mistake(scaled_before_resizing, "resize first, then scale: bicubic overshoots a "
                                            "little, and the pipeline scales the small map so "
                                            "that it spans exactly [-1, 1]"),
            Mistake(bilinear, "the pipeline resizes with mode='bicubic' (align_corners=False), "
                              "not bilinear"),
            Mistake(nearest, "the pipeline resizes with mode='bicubic' (align_corners=False), not "
                             "nearest: a depth map is smooth, unlike a mask"),
        ],
        checks=[Check(one_channel, "return (batch, 1, latent_size, latent_size): "
                                   "F.interpolate(predicted.unsqueeze(1), size=(latent_size, "
                                   "latent_size), mode='bicubic') keeps the channel dimension")])


def _depth_pairs(pipe) -> list[tuple]:
    """True depths (units of the world, 3 to 8) and predicted inverse depths, some far off."""
    rng = np.random.default_rng(4)
    cases = []
    for spread in (0.15, 0.4):
        true = rng.uniform(3.0, 8.0, size=(2, 16, 16))
        off = np.exp(rng.normal(0.0, spread, size=true.shape))
        cases.append((1.0 / (true * off), true))
    return cases


@grader
def delta_accuracy(pipe) -> Exercise:
    """Exercise (derive it): ``delta_accuracy(predicted, true)`` → the share of pixels whose
    depth, ``1 / predicted`` (the estimator gives inverse depth), is within a factor 1.25 of the
    true depth either way: the δ < 1.25 accuracy of depth estimation papers."""

    def reference(predicted, true):
        return depth_accuracy(predicted, true)["delta_1.25"]

    def compared_inverse(p, t):
        return float(np.mean(np.maximum(p / t, t / p) < 1.25))

    def one_sided(p, t):
        return float(np.mean((1.0 / p) / t < 1.25))

    def a_difference(p, t):
        return float(np.mean(np.abs(1.0 / p - t) < 1.25))

    def a_count(p, t):
        d = 1.0 / p
        return float(np.sum(np.maximum(d / t, t / d) < 1.25))

    def a_share(got, expected, args) -> bool:
        return isinstance(got, float) and 0.0 <= got <= 1.0

    return Exercise(
        "delta_accuracy", reference, lambda: _depth_pairs(pipe),
        mistakes=[
            Mistake(compared_inverse, "the estimator's answer is *inverse* depth (large when "
                                      "near): compare 1 / predicted with the true depth"),
            Mistake(one_sided, "within a factor 1.25 *either way*: max(d / true, true / d) < "
                               "1.25, or an estimate 10 times too near would count"),
            Mistake(a_difference, "a factor, not a difference: the ratio d / true, so that an "
                                  "error of 1 unit counts more near the camera than far away"),
            Mistake(a_count, "the share of the pixels (the mean of the test), not their count"),
        ],
        checks=[Check(a_share, "return one number, the share of pixels that pass, between 0 "
                               "and 1 (float(np.mean(...)))")],
        adapt=as_number)
