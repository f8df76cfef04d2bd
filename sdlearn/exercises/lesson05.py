"""Graders of lesson 05, the sampling loop: ``check.guidance``, ``check.sample_by_hand`` and
``check.guided_prediction`` (a buggy guided UNet call to repair).

The references are :func:`sdlearn.sampling.cfg_combine` and :func:`sdlearn.sampling.sample`,
which the tests prove equal to diffusers; the mistakes are the loop with one step done wrong.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> graded = guidance(lambda uncond, cond, scale: cond + scale * (uncond - cond), pipe)
... # doctest: +ELLIPSIS
✗ guidance: uncond and cond are swapped: start from the unconditional prediction and move ...
"""

from __future__ import annotations

import torch

from ..device import make_generator, randn
from ..models import with_scheduler
from ..sampling import (
    cfg_combine,
    denoise,
    encode_prompts,
    guided_noise,
    initial_latents,
    sample,
)
from ..sizes import default_size
from .common import grader, loop_tolerance, seeded_latents
from .grading import Exercise, Mistake


@grader
def guidance(pipe) -> Exercise:
    """Exercise: ``guidance(noise_uncond, noise_cond, scale)`` → the guided noise prediction."""
    u, c = seeded_latents(pipe, 12).float().cpu(), seeded_latents(pipe, 13).float().cpu()

    def swapped(u, c, s):
        return c + s * (u - c)

    def difference_only(u, c, s):
        return s * (c - u)

    def scaled_cond(u, c, s):
        return s * c

    return Exercise(
        "guidance", cfg_combine, [(u, c, 7.5), (u, c, 3.0)],
        mistakes=[
            Mistake(swapped, "uncond and cond are swapped: start from the unconditional "
                             "prediction and move towards the conditional one"),
            Mistake(difference_only, "add the unconditional prediction back: uncond + scale · "
                                     "(cond − uncond)"),
            Mistake(scaled_cond, "guidance is not a plain multiplication — it pushes along the "
                                 "difference: uncond + scale · (cond − uncond)"),
        ])


def _sample(pipe, prompt, seed, steps, guidance_scale):
    """The reference: :func:`sdlearn.sampling.sample` with the exercise's arguments."""
    return sample(pipe, prompt, steps=steps, guidance_scale=guidance_scale,
                  generator=make_generator(seed))


@torch.no_grad()
def _sample_wrongly(pipe, prompt, seed, steps, guidance_scale, *, scale_input=True,
                    init_sigma=True, cond_first=False):
    """:func:`sdlearn.sampling.sample` with one of the typical mistakes switched on."""
    uncond, cond = encode_prompts(pipe, prompt)
    if cond_first:  # the text as [cond, uncond], while the chunks are read as (uncond, cond)
        uncond, cond = cond, uncond
    s = pipe.scheduler
    s.set_timesteps(steps, device=pipe.device)
    size = default_size(pipe)
    latents = initial_latents(pipe, 1, size, size, make_generator(seed))
    if not init_sigma:
        latents = randn(latents.shape, make_generator(seed), device=pipe.device,
                        dtype=pipe.unet.dtype)
    if scale_input:
        return denoise(pipe, latents, uncond, cond, s.timesteps, guidance_scale)
    text = torch.cat([uncond, cond])
    for t in s.timesteps:  # the loop of sampling.denoise without scale_model_input
        noise_uncond, noise_cond = pipe.unet(torch.cat([latents] * 2), t,
                                             encoder_hidden_states=text).sample.chunk(2)
        latents = s.step(cfg_combine(noise_uncond, noise_cond, guidance_scale), t,
                         latents).prev_sample
    return latents


@grader
def sample_by_hand(pipe) -> Exercise:
    """Exercise: ``sample_by_hand(pipe, prompt, seed, steps, guidance_scale)`` → final latents.

    Graded with the pipeline's own scheduler and with Euler, whose ``init_noise_sigma`` and
    ``scale_model_input`` are not trivial.
    """
    euler = with_scheduler(pipe, "euler")
    prompt = "a big green triangle at the bottom left on a white background"

    def unscaled_input(*args):
        return _sample_wrongly(*args, scale_input=False)

    def unscaled_noise(*args):
        return _sample_wrongly(*args, init_sigma=False)

    def cond_first(*args):
        return _sample_wrongly(*args, cond_first=True)

    return Exercise(
        "sample_by_hand", _sample, [(pipe, prompt, 0, 4, 7.5), (euler, prompt, 1, 4, 7.5)],
        mistakes=[
            Mistake(unscaled_input, "call scheduler.scale_model_input(latent_model_input, t) "
                                    "before the UNet — a no-op for PNDM and DDIM, essential for "
                                    "Euler and LMS"),
            Mistake(unscaled_noise, "multiply the starting noise by scheduler.init_noise_sigma (1 "
                                    "for PNDM and DDIM; for Euler √(σ_max² + 1) with Stable "
                                    "Diffusion's \"leading\" spacing, the spread of its first, "
                                    "noisiest latents)"),
            Mistake(cond_first, "the embeddings' order must match the chunks: [uncond, cond], "
                                "then noise_pred.chunk(2) gives (uncond, cond)"),
        ], atol=loop_tolerance(pipe), rtol=loop_tolerance(pipe))


def buggy_guided_prediction(pipe, latents, t, uncond, cond, guidance_scale):
    """One guided noise prediction, with two bugs in it (lesson 05's fix-the-bug exercise)."""
    model_input = torch.cat([latents] * 2)
    text = torch.cat([cond, uncond])
    with torch.no_grad():
        prediction = pipe.unet(model_input, t, encoder_hidden_states=text).sample
    noise_uncond, noise_cond = prediction.chunk(2)
    return noise_uncond + guidance_scale * (noise_cond - noise_uncond)


@grader
def guided_prediction(pipe) -> Exercise:
    """Exercise (fix the bug): ``guided_prediction(pipe, latents, t, uncond, cond,
    guidance_scale)`` → :func:`buggy_guided_prediction` repaired, equal to
    :func:`sdlearn.sampling.guided_noise`. Graded with DDIM and with Euler, whose
    ``scale_model_input`` is not a no-op; neither touches the learner's own pipeline."""
    uncond, cond = encode_prompts(pipe, "a big green triangle at the bottom left on a white "
                                        "background")

    def case(name, seed, index):
        p = with_scheduler(pipe, name)
        p.scheduler.set_timesteps(10, device=pipe.device)
        latents = seeded_latents(pipe, seed) * p.scheduler.init_noise_sigma
        return (p, latents, p.scheduler.timesteps[index], uncond, cond, 7.5)

    @torch.no_grad()
    def reference(p, latents, t, uncond, cond, scale):
        return guided_noise(p, latents, t, uncond, cond, scale)

    @torch.no_grad()
    def order_only(p, latents, t, uncond, cond, scale):
        text = torch.cat([uncond, cond])
        prediction = p.unet(torch.cat([latents] * 2), t, encoder_hidden_states=text).sample
        noise_uncond, noise_cond = prediction.chunk(2)
        return cfg_combine(noise_uncond, noise_cond, scale)

    def scaling_only(p, latents, t, uncond, cond, scale):
        return reference(p, latents, t, cond, uncond, scale)

    return Exercise(
        "guided_prediction", reference, [case("euler", 22, 0), case("ddim", 21, 2)],
        mistakes=[
            Mistake(buggy_guided_prediction, "this is still the version with both bugs: the "
                                             "order of the two embeddings, and a scheduler call "
                                             "missing before the UNet"),
            Mistake(order_only, "the order is right now; still missing: "
                                "pipe.scheduler.scale_model_input(model_input, t) before the "
                                "UNet (a no-op for DDIM, a division by √(σ² + 1) for Euler)"),
            Mistake(scaling_only, "the input is scaled now; still wrong: the text is stacked "
                                  "[cond, uncond] but the chunks are read as (uncond, cond), so "
                                  "guidance pushes away from the prompt"),
        ], atol=loop_tolerance(pipe), rtol=loop_tolerance(pipe))
