"""Graders of lesson 06, img2img: ``check.start_step``, ``check.signal_kept``,
``check.noise_to_strength`` and ``check.img2img_loop`` (which grades the lesson's
``img2img_by_hand``).

The loop's reference is :func:`sdlearn.editing.img2img`, which the tests prove equal to
``StableDiffusionImg2ImgPipeline``; the mistakes are img2img with one step done wrong.

>>> graded = start_step(lambda steps, strength: int(steps * strength), pipe=None)
... # doctest: +ELLIPSIS
✗ start_step: that is the number of steps that *run* — the start is steps minus that ...
"""

from __future__ import annotations

import torch

from .. import editing
from ..device import make_generator, randn
from ..models import make_scheduler, with_scheduler
from ..sampling import denoise, encode_prompts
from ..shapes import Scene, ShapeObject, render_image
from ..sizes import default_size
from .common import as_number, ddim_inputs, grader, loop_tolerance
from .grading import Exercise, Mistake


@grader
def start_step(pipe) -> Exercise:
    """Exercise: ``start_step(steps, strength)`` → how many of the steps img2img skips."""

    def reference(steps, strength):
        return steps - min(int(steps * strength), steps)

    def steps_that_run(n, s):
        return min(int(n * s), n)

    def rounded(n, s):
        return n - min(round(n * s), n)

    def one_minus_strength(n, s):
        return int(n * (1 - s))

    return Exercise(
        "start_step", reference, [(50, 0.8), (10, 0.36), (25, 1.0), (20, 0.0)],
        mistakes=[
            Mistake(steps_that_run, "that is the number of steps that *run* — the start is "
                                    "steps minus that"),
            Mistake(rounded, "diffusers truncates: int(steps * strength), not round()"),
            Mistake(one_minus_strength, "compute the steps that run first, int(steps * "
                                        "strength), then subtract: int(steps * (1 - strength)) "
                                        "rounds differently"),
        ])


@grader
def signal_kept(pipe) -> Exercise:
    """Exercise (derive it): ``signal_kept(scheduler, steps, strength)`` → the factor √ᾱ_t on
    the picture's latents at the first timestep img2img runs, for any scheduler."""
    config = pipe.scheduler.config

    def cases():
        return [(make_scheduler(name, config), steps, strength)
                for name, steps, strength in (("pndm", 10, 0.3), ("ddim", 10, 0.3),
                                              ("pndm", 20, 1.0), ("euler", 25, 0.55))]

    def abar(s, t):
        return s.alphas_cumprod[t].float().item()

    def alpha_bar(s, n, strength):
        return abar(s, int(editing.img2img_timesteps(s, n, strength)[0]))

    def noise_share(s, n, strength):
        return (1 - alpha_bar(s, n, strength)) ** 0.5

    def from_a_formula(s, n, strength):
        run = min(int(n * strength), n)  # DDIM's leading spacing, without PNDM's repeat
        step = s.config.num_train_timesteps // n
        return abar(s, (run - 1) * step + s.config.steps_offset) ** 0.5

    def last_timestep(s, n, strength):
        s.set_timesteps(n)
        return abar(s, int(s.timesteps[-1])) ** 0.5

    def one_minus_strength(s, n, strength):
        return 1 - strength

    return Exercise(
        "signal_kept", editing.signal_kept, cases,
        mistakes=[
            Mistake(alpha_bar, "that is ᾱ_t itself; the picture's latents are multiplied by "
                               "its square root, √ᾱ_t (x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε)"),
            Mistake(noise_share, "that is the factor on the noise, √(1 − ᾱ_t); the picture's "
                                 "is √ᾱ_t"),
            Mistake(from_a_formula, "read the first timestep from the scheduler's own list "
                                    "(img2img_timesteps), not from a formula: PNDM lists one "
                                    "timestep twice, so at the same strength it starts one "
                                    "step earlier than DDIM"),
            Mistake(last_timestep, "read ᾱ at the *first* timestep that runs, the noisiest "
                                   "one, not the last"),
            Mistake(one_minus_strength, "strength is a share of the *steps*, not of the "
                                        "picture: find the first timestep that runs and read "
                                        "scheduler.alphas_cumprod there"),
        ], adapt=as_number)


@grader
def noise_to_strength(pipe) -> Exercise:
    """Exercise: ``noise_to_strength(init_latents, noise, timesteps, scheduler)`` → x_t to start."""
    sched, init, noise = ddim_inputs(pipe, (14, 15))
    cases = [(init, noise, sched.timesteps[k:], sched) for k in (2, 7)]

    def reference(x, n, ts, s):
        return s.add_noise(x, n, ts[:1])

    def last_timestep(x, n, ts, s):
        return s.add_noise(x, n, ts[-1:])

    def noise_only(x, n, ts, s):
        return n

    def plain_sum(x, n, ts, s):
        return x + n

    return Exercise(
        "noise_to_strength", reference, cases,
        mistakes=[
            Mistake(last_timestep, "noise to the level of the *first* timestep that will run, "
                                   "timesteps[:1], not the last"),
            Mistake(noise_only, "img2img keeps part of the picture: mix it with the noise with "
                                "scheduler.add_noise(init_latents, noise, t)"),
            Mistake(plain_sum, "the mix is weighted: √ᾱ_t · x0 + √(1 − ᾱ_t) · noise — "
                               "scheduler.add_noise does it"),
        ])


def _img2img(pipe, image, prompt, strength, seed, steps=25, guidance_scale=7.5):
    """The reference: :func:`sdlearn.editing.img2img` with the exercise's arguments."""
    return editing.img2img(pipe, image, prompt, strength=strength, steps=steps,
                           guidance_scale=guidance_scale, generator=make_generator(seed))


@torch.no_grad()
def _img2img_wrongly(pipe, image, prompt, strength, seed, steps=25, guidance_scale=7.5, *,
                     all_steps=False, pure_noise=False, unscaled=False, mode=False):
    """:func:`sdlearn.editing.img2img` with one of the typical mistakes switched on."""
    generator = make_generator(seed)
    timesteps = editing.img2img_timesteps(pipe.scheduler, steps, strength)
    uncond, cond = encode_prompts(pipe, prompt)
    dist = pipe.vae.encode(editing.prepare_image(pipe, image)).latent_dist
    init = dist.mode() if mode else dist.sample(generator)
    init = init if unscaled else init * pipe.vae.config.scaling_factor
    noise = randn(init.shape, generator, device=init.device, dtype=init.dtype)
    latents = noise if pure_noise else pipe.scheduler.add_noise(init, noise, timesteps[:1])
    if all_steps:
        pipe.scheduler.set_timesteps(steps)
        timesteps = pipe.scheduler.timesteps
        if hasattr(pipe.scheduler, "set_begin_index"):
            pipe.scheduler.set_begin_index(0)
    return denoise(pipe, latents, uncond, cond, timesteps, guidance_scale, generator=generator)


@grader
def img2img_loop(pipe) -> Exercise:
    """Exercise: ``img2img_by_hand(pipe, image, prompt, strength, seed, steps, guidance_scale)``
    → the final latents, as ``StableDiffusionImg2ImgPipeline`` makes them."""
    euler = with_scheduler(pipe, "euler")
    image = render_image(Scene("white", [ShapeObject("circle", "red", "big", "center")]),
                         default_size(pipe))
    prompt = "a big blue square in the center on a white background"

    def pure_noise(*args):
        return _img2img_wrongly(*args, pure_noise=True)

    def all_steps(*args):
        return _img2img_wrongly(*args, all_steps=True)

    def unscaled(*args):
        return _img2img_wrongly(*args, unscaled=True)

    def mode(*args):
        return _img2img_wrongly(*args, mode=True)

    return Exercise(
        "img2img_loop", _img2img, [(pipe, image, prompt, 0.6, 0, 5, 7.5),
                                   (euler, image, prompt, 0.5, 1, 4, 7.5)],
        mistakes=[
            Mistake(pure_noise, "start from the picture: noise its latents with "
                                "scheduler.add_noise(init, noise, timesteps[:1]) instead of "
                                "starting from the noise alone"),
            Mistake(all_steps, "run only the timesteps from the start step on (img2img_timesteps "
                               "or scheduler.timesteps[start * scheduler.order:]), not the whole "
                               "schedule"),
            Mistake(unscaled, "multiply the encoded latents by vae.config.scaling_factor before "
                              "adding noise"),
            Mistake(mode, "diffusers samples the latents, latent_dist.sample(generator), before "
                          "drawing the noise from the same generator; .mode() changes both"),
        ], atol=loop_tolerance(pipe), rtol=loop_tolerance(pipe))
