"""Sampling by hand: the classifier-free-guidance loop that ``StableDiffusionPipeline`` runs.

Lesson 05 writes this loop step by step; later lessons (img2img, inpainting) import it from
here. Every step is visible: encode the prompts, draw the starting noise, and for each
timestep scale the input, run the UNet on ``[uncond, cond]``, combine with the guidance
formula, and let the scheduler step.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> latents = sample(pipe, "a big red circle", steps=5, generator=sdlearn.make_generator(0))
>>> theirs = pipe("a big red circle", num_inference_steps=5, output_type="latent",
...               generator=sdlearn.make_generator(0)).images
>>> bool((latents == theirs).all())
True
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch

from .device import randn
from .sizes import check_size, default_size
from .text import tokenize


@torch.no_grad()
def encode_prompts(pipe, prompt: str | list[str], negative_prompt: str | list[str] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(uncond, cond)`` text embeddings: the negative (or empty) prompt's, and the prompt's.

    The order is the one guidance stacks them in, ``torch.cat([uncond, cond])``. diffusers'
    ``pipe.encode_prompt`` returns the opposite, ``(prompt_embeds, negative_prompt_embeds)``.

    >>> import sdlearn
    >>> uncond, cond = encode_prompts(sdlearn.load_pipeline(), "a big red circle")
    >>> uncond.shape == cond.shape, bool((uncond != cond).any())
    (True, True)
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    negatives = negative_prompt if negative_prompt is not None else ""
    negatives = [negatives] * len(prompts) if isinstance(negatives, str) else list(negatives)
    if len(negatives) != len(prompts):
        raise ValueError(f"negative_prompt has {len(negatives)} entries for {len(prompts)} "
                         "prompts: give one per prompt, or a single string")
    enc = pipe.text_encoder

    def embed(texts):
        ids = tokenize(pipe.tokenizer, texts).input_ids.to(enc.device)  # warns if cut at 77
        return enc(ids)[0].to(pipe.unet.dtype)

    return embed(negatives), embed(prompts)


def cfg_combine(noise_uncond: torch.Tensor, noise_cond: torch.Tensor,
                guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: start from the unconditional prediction, move towards the
    conditional one, ``guidance_scale`` times as far."""
    return noise_uncond + guidance_scale * (noise_cond - noise_uncond)


def initial_latents(pipe, batch: int, height: int, width: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The starting noise, scaled by the scheduler's ``init_noise_sigma`` (as the pipeline).

    ``generator`` may be one generator or a list, one per image (as ``pipe(...)`` accepts).
    """
    f = pipe.vae_scale_factor
    check_size(height, width, f)
    shape = (1, pipe.unet.config.in_channels, height // f, width // f)
    generators = generator if isinstance(generator, list) else [generator] * batch
    if len(generators) != batch:
        raise ValueError(f"got {len(generators)} generators for a batch of {batch}: give one "
                         "per image, or a single generator")
    where = {"device": pipe.device, "dtype": pipe.unet.dtype}
    if isinstance(generator, list):
        noise = torch.cat([randn(shape, g, **where) for g in generators])
    else:
        noise = randn((batch, *shape[1:]), generator, **where)
    return noise * pipe.scheduler.init_noise_sigma


def step_kwargs(scheduler, generator=None) -> dict:
    """The keyword arguments of ``scheduler.step`` beyond the model output, timestep and sample.

    Stochastic schedulers (DDPM, DDIM with eta > 0, Euler ancestral) draw noise in ``step`` and
    take a ``generator`` for it; the others do not accept one.
    """
    return {"generator": generator} if "generator" in _step_parameters(type(scheduler)) else {}


@functools.cache
def _step_parameters(scheduler_class) -> frozenset[str]:
    return frozenset(inspect.signature(scheduler_class.step).parameters)


def guided_noise(pipe, latents: torch.Tensor, t, uncond: torch.Tensor, cond: torch.Tensor,
                 guidance_scale: float) -> torch.Tensor:
    """The UNet's noise prediction at ``t``, with classifier-free guidance.

    One UNet call on a batch of two, ``[uncond, cond]``, then :func:`cfg_combine`. At guidance
    1 or less, as in diffusers, it is one plain conditional pass on a batch of one.
    """
    guided = guidance_scale > 1
    model_input = torch.cat([latents] * 2) if guided else latents
    model_input = pipe.scheduler.scale_model_input(model_input, t)
    text = torch.cat([uncond, cond]) if guided else cond
    noise_pred = pipe.unet(model_input, t, encoder_hidden_states=text).sample
    if guided:
        noise_uncond, noise_cond = noise_pred.chunk(2)
        noise_pred = cfg_combine(noise_uncond, noise_cond, guidance_scale)
    return noise_pred


@torch.no_grad()
def denoise(pipe, latents: torch.Tensor, uncond: torch.Tensor, cond: torch.Tensor,
            timesteps, guidance_scale: float = 7.5, *, generator=None,
            on_step: Callable | None = None) -> torch.Tensor:
    """Run the guided loop over ``timesteps`` from ``latents``; returns the final latents.

    ``on_step(i, t, latents, noise_pred)`` is called after every step (for previews, or to
    put back the known region in inpainting) and may return replacement latents.
    """
    kwargs = step_kwargs(pipe.scheduler, generator)
    for i, t in enumerate(timesteps):
        noise_pred = guided_noise(pipe, latents, t, uncond, cond, guidance_scale)
        latents = pipe.scheduler.step(noise_pred, t, latents, **kwargs).prev_sample
        if on_step is not None:
            replaced = on_step(i, t, latents, noise_pred)
            latents = latents if replaced is None else replaced
    return latents


def sample(pipe, prompt: str | list[str], *, negative_prompt=None, steps: int = 25,
           guidance_scale: float = 7.5, generator: torch.Generator | None = None,
           height: int | None = None, width: int | None = None,
           on_step: Callable | None = None) -> torch.Tensor:
    """Text to latents by hand, step for step what ``pipe(..., output_type="latent")`` does."""
    size = default_size(pipe)
    height, width = height or size, width or size
    uncond, cond = encode_prompts(pipe, prompt, negative_prompt)
    pipe.scheduler.set_timesteps(steps, device=pipe.device)
    latents = initial_latents(pipe, len(cond), height, width, generator)
    return denoise(pipe, latents, uncond, cond, pipe.scheduler.timesteps, guidance_scale,
                   generator=generator, on_step=on_step)


@torch.no_grad()
def decode(pipe, latents: torch.Tensor):
    """Latents to PIL images: unscale, ``vae.decode``, and the pipeline's postprocessing."""
    images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(images, output_type="pil")


def _check_epsilon_ddpm(scheduler, what: str) -> None:
    if scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError(f"{what} is written for noise (epsilon) prediction; this scheduler "
                         f"predicts {scheduler.config.prediction_type!r}")
    if float(scheduler.init_noise_sigma) != 1.0:
        raise ValueError(f"{what} needs latents in the DDPM form (PNDM, DDIM, DPM); "
                         f"{type(scheduler).__name__} scales them by sigma — use "
                         "scheduler.step(...).pred_original_sample instead")


def predicted_x0(scheduler, latents: torch.Tensor, noise_pred: torch.Tensor, t) -> torch.Tensor:
    """The clean latents the model currently believes in: ``(x_t - √(1-ᾱ_t)·ε) / √ᾱ_t``."""
    _check_epsilon_ddpm(scheduler, "predicted_x0")
    alpha = scheduler.alphas_cumprod.to(latents.device)[int(t)]
    return (latents - (1 - alpha) ** 0.5 * noise_pred) / alpha ** 0.5


def ddim_step(scheduler, noise_pred: torch.Tensor, t, latents: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM update (eta = 0), written out.

    Estimate the clean latents from the noise prediction, then re-noise them to the previous
    timestep's level with that same noise: ``x_prev = √ᾱ_prev·x0 + √(1-ᾱ_prev)·ε``.
    """
    _check_epsilon_ddpm(scheduler, "ddim_step")
    if scheduler.config.get("timestep_spacing", "leading") != "leading":
        raise ValueError("ddim_step assumes timestep_spacing='leading' (Stable Diffusion's)")
    t = int(t)
    prev = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas = scheduler.alphas_cumprod.to(latents.device)
    alpha_prev = alphas[prev] if prev >= 0 else scheduler.final_alpha_cumprod.to(latents.device)
    x0 = predicted_x0(scheduler, latents, noise_pred, t)
    return alpha_prev ** 0.5 * x0 + (1 - alpha_prev) ** 0.5 * noise_pred
