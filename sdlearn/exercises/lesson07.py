"""Graders of lesson 07, inpainting: ``check.latent_mask`` and ``check.put_back``.

The references are :func:`sdlearn.masks.latent_mask` and :func:`sdlearn.editing.blend` (after
``scheduler.add_noise``), which the tests prove equal to diffusers' inpainting pipeline. The
graders are named after the exercises, so the package's functions are used by their module.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> graded = latent_mask(lambda mask, factor: 1 - masks.latent_mask(mask, factor), pipe)
... # doctest: +ELLIPSIS
✗ latent_mask: white (1) means repaint: don't invert the mask (The reference solution is ...)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import editing, masks
from ..schedulers import make_scheduler
from ..sizes import default_size
from .common import grader, seeded_latents
from .grading import Check, Exercise, Mistake


def _mask_cases(pipe) -> list[tuple]:
    f = pipe.vae_scale_factor
    size = default_size(pipe)
    return [(masks.rectangle(size, f + 1, size // 2 + 3, f // 2, size - f), f),
            (masks.ellipse(size, 0, size * 3 // 4, size // 4, size), f),
            (masks.rectangle((size, size // 2), 0, size // 2, 0, size // 2), f)]


@grader
def latent_mask(pipe) -> Exercise:
    """Exercise: ``latent_mask(mask, factor)`` → the pixel mask at the latents' size, as
    diffusers makes it: a float tensor ``(1, 1, H/factor, W/factor)`` of 0s and 1s."""

    def reference(mask, factor):
        return masks.latent_mask(mask, factor)

    def pixel_mask(m, f):
        return masks.mask_tensor(m)

    def not_scaled(m, f):
        return masks.latent_mask(m, f) * 255

    def inverted(m, f):
        return 1 - masks.latent_mask(m, f)

    def max_pooled(m, f):
        return masks.latent_mask(m, f, mode="any")

    def averaged(m, f):
        return F.avg_pool2d(masks.mask_tensor(m), f)

    def bilinear(m, f):
        return F.interpolate(masks.mask_tensor(m), scale_factor=1 / f, mode="bilinear")

    def latent_shaped(got, expected, args) -> bool:
        return tuple(got.shape) == tuple(expected.shape)

    return Exercise(
        "latent_mask", reference, lambda: _mask_cases(pipe),
        mistakes=[
            Mistake(pixel_mask, "that is still the pixel mask: the latent mask is factor times "
                                "smaller in each direction"),
            Mistake(not_scaled, "scale the mask to 0 and 1 (divide by 255): it multiplies the "
                                "latents"),
            Mistake(inverted, "white (1) means repaint: don't invert the mask"),
            Mistake(max_pooled, "that is a max-pool (a cell is repainted if any pixel is white); "
                                "diffusers uses F.interpolate's default, nearest"),
            Mistake(averaged, "an average gives fractions on the edges; use F.interpolate "
                              "(nearest) so it stays 0 or 1"),
            Mistake(bilinear, "bilinear gives fractions on the edges; use F.interpolate's "
                              "default, nearest"),
        ],
        checks=[Check(latent_shaped, "the latent mask has shape (1, 1, height // factor, "
                                     "width // factor)")])


@grader
def put_back(pipe) -> Exercise:
    """Exercise: ``put_back(latents, init_latents, noise, mask, next_t, scheduler)`` → the
    latents after a step with the kept region restored (noised to ``next_t``; clean if None)."""
    f = pipe.vae_scale_factor
    size = default_size(pipe)
    sched = make_scheduler("ddim", pipe.scheduler.config)
    sched.set_timesteps(10)
    ts = sched.timesteps

    def cases():
        mask = masks.latent_mask(masks.rectangle(size, 0, size // 2, f, size), f)
        lat, init, noise = (seeded_latents(pipe, s).float().cpu() for s in (21, 22, 23))
        return [(lat, init, noise, mask, ts[3], sched), (lat, init, noise, mask, ts[8], sched),
                (lat, init, noise, mask, None, sched)]

    def known(init, noise, t, scheduler) -> torch.Tensor:
        """The kept region's latents at the level of ``t`` (clean if None)."""
        return init if t is None else scheduler.add_noise(init, noise, t.reshape(1))

    def reference(latents, init, noise, mask, next_t, scheduler):
        return editing.blend(latents, known(init, noise, next_t, scheduler), mask)

    def mask_swapped(latents, init, noise, mask, next_t, scheduler):
        return editing.blend(known(init, noise, next_t, scheduler), latents, mask)

    def clean_original(latents, init, noise, mask, next_t, scheduler):
        return editing.blend(latents, init, mask)

    def nothing_put_back(latents, *args):
        return latents

    def level_of_the_step_done(latents, init, noise, mask, next_t, scheduler):
        if next_t is None:
            return None
        earlier = ts[max(0, list(ts).index(next_t) - 1)]
        return editing.blend(latents, known(init, noise, earlier, scheduler), mask)

    def everything_replaced(latents, init, noise, mask, next_t, scheduler):
        return known(init, noise, next_t, scheduler)

    return Exercise(
        "put_back", reference, cases,
        mistakes=[
            Mistake(mask_swapped, "the mask is 1 where we repaint: the new latents go there, "
                                  "the original elsewhere"),
            Mistake(clean_original, "the latents are still noisy after this step: noise the "
                                    "original to next_t with scheduler.add_noise before putting "
                                    "it back"),
            Mistake(nothing_put_back, "put back the kept region: (1 − mask) · known + mask · "
                                      "latents"),
            Mistake(level_of_the_step_done, "after the step the latents are at the level of "
                                            "next_t, not of the step just done"),
            Mistake(everything_replaced, "that replaces everything: keep the new latents where "
                                         "the mask is 1"),
        ])
