"""Graders of lesson 07, inpainting: ``check.latent_mask``, ``check.put_back``,
``check.inpaint_loop`` (which grades the lesson's ``inpaint_by_hand``) and ``check.widen_conv``.

The references are :func:`sdlearn.masks.latent_mask`, :func:`sdlearn.editing.blend` (after
``scheduler.add_noise``) and :func:`sdlearn.editing.inpaint`, which the tests prove equal to
diffusers' inpainting pipeline. The graders are named after the exercises, so the package's
functions are used by their module.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> graded = latent_mask(lambda mask, factor: 1 - masks.latent_mask(mask, factor), pipe)
... # doctest: +ELLIPSIS
✗ latent_mask: white (1) means repaint: don't invert the mask (The reference solution is ...)
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .. import editing, masks
from ..device import make_generator
from ..models import with_scheduler
from ..sampling import denoise, encode_prompts
from ..schedulers import make_scheduler
from ..shapes import Scene, ShapeObject, render_image
from ..sizes import default_size
from .common import grader, loop_tolerance, seeded_latents
from .grading import Check, Exercise, Marker, Mistake

NOT_A_CONV = Marker("not a torch.nn.Conv2d")


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

    # At factor 2, bilinear downsampling *is* the 2x2 average: one hint serves both.
    distinct_bilinear = [Mistake(bilinear, "bilinear gives fractions on the edges; use "
                                           "F.interpolate's default, nearest")] \
        if pipe.vae_scale_factor > 2 else []
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
            *distinct_bilinear,
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


def _inpaint(pipe, image, mask, prompt, strength=1.0, steps=25, guidance_scale=7.5, seed=0):
    """The reference: :func:`sdlearn.editing.inpaint` with the exercise's arguments."""
    return editing.inpaint(pipe, image, mask, prompt, strength=strength, steps=steps,
                           guidance_scale=guidance_scale, generator=make_generator(seed))


@torch.no_grad()
def _inpaint_wrongly(pipe, image, mask, prompt, strength, steps, guidance_scale, seed, *,
                     how: str):
    """:func:`sdlearn.editing.inpaint` with one typical mistake, named by ``how``."""
    generator = make_generator(seed)
    scheduler = pipe.scheduler
    timesteps = editing.img2img_timesteps(scheduler, steps, strength)
    x = editing.prepare_image(pipe, image)
    m = masks.latent_mask(masks.check_mask(mask, image), pipe.vae_scale_factor).to(x)
    uncond, cond = encode_prompts(pipe, prompt)
    init, noise = editing.encode_image(pipe, x, generator)
    init = init.contiguous()
    if strength == 1.0 and how != "add_noise_at_full_strength":
        latents = noise if how == "unscaled_noise" else noise * scheduler.init_noise_sigma
    else:
        latents = scheduler.add_noise(init, noise, timesteps[:1])

    def on_step(i, t, stepped, noise_pred):
        if how == "nothing_put_back":
            return stepped
        last = i == len(timesteps) - 1
        if how == "clean_original":
            known = init
        elif how == "current_level":
            known = scheduler.add_noise(init, noise, t.reshape(1))
        else:
            known = init if last else scheduler.add_noise(init, noise, timesteps[i + 1:i + 2])
        if how == "mask_swapped":
            return editing.blend(known, stepped, m)
        return editing.blend(stepped, known, m)

    return denoise(pipe, latents, uncond, cond, timesteps, guidance_scale, generator=generator,
                   on_step=on_step)


@grader
def inpaint_loop(pipe) -> Exercise:
    """Exercise: ``inpaint_by_hand(pipe, image, mask, prompt, strength, steps,
    guidance_scale, seed)`` → the final latents, as ``StableDiffusionInpaintPipeline`` makes
    them with a 4-channel UNet (blending)."""
    size = default_size(pipe)
    scene = Scene("white", [ShapeObject("circle", "red", "big", "left"),
                            ShapeObject("square", "blue", "small", "top right")])
    image = render_image(scene, size)
    mask = masks.object_box(scene, 0, size, margin=size / 16)
    prompt = "a big green triangle on the left and a small blue square at the top right"
    euler = with_scheduler(pipe, "euler")

    def wrong(how):
        def mistake(*args):
            return _inpaint_wrongly(*args, how=how)
        return mistake

    return Exercise(
        "inpaint_loop", _inpaint, [(pipe, image, mask, prompt, 1.0, 4, 7.5, 0),
                                   (euler, image, mask, prompt, 1.0, 4, 7.5, 1),
                                   (pipe, image, mask, prompt, 0.75, 4, 7.5, 2)],
        mistakes=[
            Mistake(wrong("nothing_put_back"), "after each step, put the kept region back "
                                               "with your put_back: without it this is plain "
                                               "text-to-image (or img2img) on the whole picture"),
            Mistake(wrong("clean_original"), "put back the original noised to the next "
                                             "timestep (pass next_t to put_back), not the clean "
                                             "one — clean only after the last step"),
            Mistake(wrong("current_level"), "after the step from t the latents are at the level "
                                            "of the *next* timestep: put_back(..., "
                                            "timesteps[i + 1], ...), None after the last"),
            Mistake(wrong("mask_swapped"), "the mask is 1 where we repaint: the new latents go "
                                           "there, the original everywhere else"),
            Mistake(wrong("add_noise_at_full_strength"),
                    "at strength 1 diffusers starts from pure noise, noise * "
                    "scheduler.init_noise_sigma, not from add_noise of the picture"),
            Mistake(wrong("unscaled_noise"), "multiply the starting noise by "
                                             "scheduler.init_noise_sigma (it is 1 for DDIM and "
                                             "PNDM, not for Euler)"),
        ], atol=loop_tolerance(pipe), rtol=loop_tolerance(pipe))


def _widened(conv: torch.nn.Conv2d, in_channels: int, *, old_at: int = 0, bias: bool = True,
             new: str = "zero") -> torch.nn.Conv2d:
    """``conv`` widened to ``in_channels`` inputs: the reference, or a typical mistake (the old
    weights at channel ``old_at``, the bias left out, the new weights random)."""
    wide = torch.nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                           padding=conv.padding, bias=conv.bias is not None).to(conv.weight)
    with torch.no_grad():
        if new == "zero":
            wide.weight.zero_()
        wide.weight[:, old_at:old_at + conv.in_channels] = conv.weight
        if wide.bias is not None:
            wide.bias.copy_(conv.bias if bias else torch.zeros_like(conv.bias))
    return wide


def _conv_cases(pipe):
    gen = make_generator(5)
    small = torch.nn.Conv2d(3, 6, 1)
    with torch.no_grad():
        for param in small.parameters():
            param.copy_(torch.randn(param.shape, generator=gen))
    conv_in = copy.deepcopy(pipe.unet.conv_in).float().cpu()
    return [(conv_in, 2 * conv_in.in_channels + 1), (small, 5)]


def _as_layer(fn):
    """What a widening gives, as values: its weight, its bias and its output on a fixed input
    (the function gets its own copy of the layer, which it may change)."""

    def compared(conv, in_channels):
        wide = fn(copy.deepcopy(conv), in_channels)
        if not isinstance(wide, torch.nn.Conv2d):
            return NOT_A_CONV
        bias = None if wide.bias is None else wide.bias.detach()
        if tuple(wide.weight.shape[:2]) != (conv.out_channels, in_channels):
            return {"weight": wide.weight.detach(), "bias": bias, "output": None}
        x = torch.randn(2, in_channels, 8, 8, generator=make_generator(6)).to(wide.weight)
        with torch.no_grad():
            out = wide(x)
        return {"weight": wide.weight.detach(), "bias": bias, "output": out}

    return compared


@grader
def widen_conv(pipe) -> Exercise:
    """Exercise: ``widen_conv(conv, in_channels)`` → a new ``torch.nn.Conv2d`` that reads
    ``in_channels`` channels: the old weights on the first ``conv.in_channels``, zeros on the
    new ones, the same bias, so that on ``cat([x, anything])`` it gives ``conv(x)``."""

    def new_channels_first(conv, n):
        return _widened(conv, n, old_at=n - conv.in_channels)

    def bias_left_out(conv, n):
        return _widened(conv, n, bias=False)

    def a_conv(got, expected, args) -> bool:
        return got is not NOT_A_CONV

    def widened_inputs(got, expected, args) -> bool:
        return tuple(got["weight"].shape) == tuple(expected["weight"].shape)

    def new_weights_zero(got, expected, args) -> bool:
        return not got["weight"][:, args[0].in_channels:].any()

    return Exercise(
        "widen_conv", _widened, lambda: _conv_cases(pipe),
        mistakes=[
            Mistake(new_channels_first,
                    "the old channels come first: the UNet reads the latents in channels "
                    "0–3, then the mask and the masked picture (weight[:, :conv.in_channels])"),
            Mistake(bias_left_out,
                    "copy the bias too (wide.bias.copy_(conv.bias)): without it every output "
                    "channel shifts"),
        ],
        checks=[Check(a_conv, "return the new layer, a torch.nn.Conv2d(in_channels, "
                              "conv.out_channels, conv.kernel_size, padding=conv.padding)"),
                Check(widened_inputs, "a Conv2d's weight is (out_channels, in_channels, kh, kw): "
                                      "widen dimension 1, keep the output channels"),
                Check(new_weights_zero, "the new channels' weights must be zero "
                                        "(wide.weight.zero_() before copying the old ones): "
                                        "nn.Conv2d starts them random, and then the widened "
                                        "layer no longer gives conv(x)")],
        adapt=_as_layer)
