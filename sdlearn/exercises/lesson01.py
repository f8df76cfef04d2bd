"""Graders of lesson 01, the VAE: ``check.scale_latents``, ``check.unscale_and_decode``,
``check.scaling_factor_from`` and ``check.round_trip_sizes``.

>>> graded = scaling_factor_from(lambda latents: float(1 / latents.std()), pipe=None)
✓ scaling_factor_from: correct (2 checks).
"""

from __future__ import annotations

import torch

from ..device import make_generator, randn
from .common import grader, seeded_latents
from .grading import Exercise, Mistake

SD_SCALING_FACTOR = 0.18215  # Stable Diffusion 1/2's value, for spotting a hard-coded copy


@grader
def scale_latents(pipe) -> Exercise:
    """Exercise: ``scale_latents(latents, vae)`` → what the UNet expects from ``encode``."""
    vae = pipe.vae
    sf = vae.config.scaling_factor

    def reference(latents, vae):
        return latents * vae.config.scaling_factor

    def unchanged(latents, vae):
        return latents

    def divided(latents, vae):
        return latents / vae.config.scaling_factor

    def stable_diffusions_factor(latents, vae):
        return latents * SD_SCALING_FACTOR

    mistakes = [
        Mistake(unchanged, "your latents are unchanged — multiply them by "
                           "vae.config.scaling_factor"),
        Mistake(divided, "you divided — encoding multiplies by vae.config.scaling_factor, "
                         "decoding divides"),
    ]
    if abs(sf - SD_SCALING_FACTOR) > 1e-6:
        mistakes.append(Mistake(stable_diffusions_factor, f"you used Stable Diffusion's 0.18215,"
                                f" but this VAE's factor is {sf:.5f} — read "
                                "vae.config.scaling_factor"))
    return Exercise(
        "scale_latents", reference,
        [(seeded_latents(pipe, 0, scale=5.0), vae), (seeded_latents(pipe, 1, 2, scale=3.0), vae)],
        mistakes=mistakes)


@grader
def unscale_and_decode(pipe) -> Exercise:
    """Exercise: ``unscale_and_decode(latents, vae)`` → the image tensor in [-1, 1]."""
    vae = pipe.vae

    @torch.no_grad()
    def reference(latents, vae):
        return vae.decode(latents / vae.config.scaling_factor).sample

    @torch.no_grad()
    def unscaled(latents, vae):
        return vae.decode(latents).sample

    @torch.no_grad()
    def multiplied(latents, vae):
        return vae.decode(latents * vae.config.scaling_factor).sample

    @torch.no_grad()
    def output_object(latents, vae):
        return vae.decode(latents / vae.config.scaling_factor)

    return Exercise(
        "unscale_and_decode", reference, [(seeded_latents(pipe, 2), vae)],
        mistakes=[
            Mistake(unscaled, "decode(latents) skips the scaling — divide by "
                              "vae.config.scaling_factor first"),
            Mistake(multiplied, "you multiplied — decoding divides by vae.config.scaling_factor"),
            Mistake(output_object, "vae.decode returns an output object — take its .sample"),
        ], atol=1e-3)


@grader
def scaling_factor_from(pipe) -> Exercise:
    """Exercise: ``scaling_factor_from(latents)`` → the factor that makes their std 1."""
    cases = [(randn((8, 4, 8, 8), make_generator(3)) * 5.4 + 0.3,),
             (randn((2, 4, 16, 16), make_generator(4)) * 0.7,)]

    def reference(latents):
        return float(1 / latents.std())

    def the_std(latents):
        return float(latents.std())

    def mean_absolute(latents):
        return float(1 / latents.abs().mean())

    def the_variance(latents):
        return float(1 / latents.var())

    return Exercise(
        "scaling_factor_from", reference, cases,
        mistakes=[
            Mistake(the_std, "that is the std itself — the factor is 1 / std, so that std × "
                             "factor = 1"),
            Mistake(mean_absolute, "use the standard deviation (latents.std()), not the mean "
                                   "absolute value"),
            Mistake(the_variance, "use the standard deviation, not the variance"),
        ], atol=1e-3, rtol=1e-3, adapt=_as_float)


@grader
def round_trip_sizes(pipe) -> Exercise:
    """Exercise (predict, then measure): ``round_trip_sizes(side, factor)`` → the side of the
    latents and of the decoded picture, for a square picture of ``side`` pixels.

    The reference is the VAE itself: it encodes and decodes a blank picture of that side.
    """
    vae, f = pipe.vae, pipe.vae_scale_factor
    size = pipe.unet.config.sample_size * f

    @torch.no_grad()
    def reference(side, factor):
        x = torch.zeros(1, 3, side, side, device=pipe.device, dtype=vae.dtype)
        latents = vae.encode(x).latent_dist.mean
        return (int(latents.shape[-1]), int(vae.decode(latents).sample.shape[-1]))

    def exact(side, factor):
        return (side / factor, float(side))

    def rounded_up(side, factor):
        return (-(-side // factor), -(-side // factor) * factor)

    def same_side_back(side, factor):
        return (side // factor, side)

    return Exercise(
        "round_trip_sizes", reference,
        [(size - f // 2, f), (size + 1, f), (size - 1, f)],
        mistakes=[
            Mistake(exact, "latents come in whole numbers: each of the encoder's halvings is a "
                           "strided convolution, which makes one output per whole 2×2 step"),
            Mistake(rounded_up, "a strided convolution makes no output from half a block: the "
                                "leftover rows are dropped, not rounded into one more latent "
                                "row — integer division (//)"),
            Mistake(same_side_back, "the decoder only sees the latents: it paints factor × "
                                    "factor pixels for each of them, whatever the input was"),
        ], adapt=_as_ints)


def _as_ints(fn):
    """The answer as a pair of numbers (a tuple of ints or floats, or a list)."""

    def as_ints(*args):
        answer = fn(*args)
        try:
            return tuple(float(v) for v in answer)
        except TypeError:
            return answer

    return as_ints


def _as_float(fn):
    """The answer as a Python float, whether the learner returns a tensor or a number."""

    def as_float(*args):
        return float(fn(*args))

    return as_float
