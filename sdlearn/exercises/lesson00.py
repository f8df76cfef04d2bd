"""Graders of lesson 00, the quick start: ``check.latent_shape``, ``check.unet_batch_size``
and ``check.seeded_image``.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> def mine(pipe, height, width):
...     return (1, pipe.unet.config.in_channels, height, width)
>>> graded = latent_shape(mine, pipe)  # doctest: +ELLIPSIS
✗ latent_shape: the latents are smaller than the image — divide height and width by ...
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..calls import unet_calls
from ..device import make_generator
from ..sizes import default_size
from .common import grader
from .grading import Check, Exercise, Marker, Mistake

NOT_REPEATABLE = Marker("two calls gave different results")
OUTPUT_OBJECT = Marker("the pipeline's output object, not a picture")


@grader
def latent_shape(pipe) -> Exercise:
    """Exercise: ``latent_shape(pipe, height, width)`` → the shape of the latents for one image."""
    f = pipe.vae_scale_factor
    size = default_size(pipe)

    def reference(pipe, height, width):
        return (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor,
                width // pipe.vae_scale_factor)

    def image_size(p, h, w):
        return (1, p.unet.config.in_channels, h, w)

    def colour_channels(p, h, w):
        return (1, 3, h // p.vae_scale_factor, w // p.vae_scale_factor)

    def no_batch(p, h, w):
        return (p.unet.config.in_channels, h // p.vae_scale_factor, w // p.vae_scale_factor)

    def width_first(p, h, w):
        return (1, p.unet.config.in_channels, w // p.vae_scale_factor, h // p.vae_scale_factor)

    def stable_diffusions_factor(p, h, w):
        return (1, p.unet.config.in_channels, h // 8, w // 8)

    hard_coded = [] if f == 8 else [Mistake(
        stable_diffusions_factor, f"this model's VAE factor is {f}, not Stable Diffusion's 8 — "
        "read pipe.vae_scale_factor")]
    return Exercise(
        "latent_shape", reference, [(pipe, size, size), (pipe, size, 2 * size),
                                    (pipe, size - f, size + f)],
        mistakes=[
            Mistake(image_size, "the latents are smaller than the image — divide height and "
                                "width by pipe.vae_scale_factor"),
            Mistake(colour_channels, "latents do not have 3 colour channels — read "
                                     "pipe.unet.config.in_channels"),
            Mistake(no_batch, "keep the batch dimension in front: (1, channels, height, width)"),
            Mistake(width_first, "height comes before width: (1, channels, height // f, "
                                 "width // f)"),
            *hard_coded,
        ])


@grader
def seeded_image(pipe, steps: int = 4) -> Exercise:
    """Exercise: ``seeded_image(pipe, prompt, seed, steps)`` → a PIL image, the same per seed."""

    def reference(pipe, prompt, seed, steps):
        return pipe(prompt, num_inference_steps=steps, generator=make_generator(seed)).images[0]

    def another_seed(p, prompt, seed, steps):
        return p(prompt, num_inference_steps=steps, generator=make_generator(seed + 1)).images[0]

    def default_steps(p, prompt, seed, steps):
        return p(prompt, generator=make_generator(seed)).images[0]

    def repeatable(got, expected, args) -> bool:
        return got is not NOT_REPEATABLE

    def a_picture(got, expected, args) -> bool:
        return got is not OUTPUT_OBJECT

    return Exercise(
        "seeded_image", reference,
        [(pipe, "a big red circle in the center", 1, steps),
         (pipe, "a small blue square at the top left", 2, steps)],
        mistakes=[
            Mistake(another_seed, "the image belongs to another seed — use generator=torch."
                                  "Generator('cpu').manual_seed(seed) with the seed you were "
                                  "given"),
            Mistake(default_steps, "pass num_inference_steps=steps: the default is a different "
                                   "number of steps"),
        ],
        checks=[Check(repeatable, "two calls with the same seed gave different images — pass "
                                  "generator=torch.Generator('cpu').manual_seed(seed)"),
                Check(a_picture, "pipe(...) returns an output object — take its .images[0]")],
        adapt=_repeatable_array)


def _repeatable_array(fn):
    """Call twice: the result as an array, or NOT_REPEATABLE if the two calls differ. What is
    not a picture (None, the pipeline's output object) is handed on after one call, for the
    grader to name."""

    def twice(*args):
        first = fn(*args)
        if hasattr(first, "images"):
            return OUTPUT_OBJECT
        if not isinstance(first, Image.Image | np.ndarray) and not hasattr(first, "shape"):
            return first
        first, second = np.asarray(first), np.asarray(fn(*args))
        return first if np.array_equal(first, second) else NOT_REPEATABLE

    return twice


@grader
def unet_batch_size(pipe) -> Exercise:
    """Exercise: ``unet_batch_size(num_prompts, images_per_prompt, guidance_scale)`` → the batch
    the UNet gets at each step — predicted, then compared with a hook on the real UNet."""
    size = default_size(pipe)

    def reference(num_prompts, images_per_prompt, guidance_scale):
        calls = unet_calls(pipe, ["a red circle"] * num_prompts, num_inference_steps=1,
                           num_images_per_prompt=images_per_prompt, height=size, width=size,
                           guidance_scale=guidance_scale, generator=make_generator(0))
        return calls[0].batch

    def two_calls_not_a_batch(n, k, g):
        return n * k

    def always_doubled(n, k, g):
        return 2 * n * k

    def images_forgotten(n, k, g):
        return 2 * n if g > 1 else n

    def scaled_by_guidance(n, k, g):
        return round(n * k * g)

    return Exercise(
        "unet_batch_size", reference, [(1, 1, 7.5), (2, 3, 7.5), (3, 1, 1.0), (1, 4, 1.0),
                                       (2, 2, 3.0)],
        mistakes=[
            Mistake(two_calls_not_a_batch, "with guidance the prompt and the empty prompt go "
                                           "through the UNet together: one call, two latents "
                                           "per image"),
            Mistake(always_doubled, "at guidance_scale=1 (or below) diffusers skips guidance "
                                    "and the empty prompt: one latent per image"),
            Mistake(images_forgotten, "each prompt makes images_per_prompt pictures, and each "
                                      "picture has its own latents in the batch"),
            Mistake(scaled_by_guidance, "guidance_scale weighs the two predictions; it does not "
                                        "change how many latents the UNet gets"),
        ])
