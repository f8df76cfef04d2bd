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
import math
import numbers
import warnings
from collections.abc import Callable

import torch

from .device import randn
from .sizes import check_large, request_size
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
    prompts = _texts("prompt", prompt)
    if not prompts:
        raise ValueError("prompt is an empty list: give at least one prompt (a string)")
    negatives = negative_prompt if negative_prompt is not None else ""
    negatives = [negatives] * len(prompts) if isinstance(negatives, str) else \
        _texts("negative_prompt", negatives)
    if len(negatives) != len(prompts):
        raise ValueError(f"negative_prompt has {len(negatives)} entries for {len(prompts)} "
                         "prompts: give one per prompt, or a single string")
    enc = pipe.text_encoder

    def embed(texts):
        ids = tokenize(pipe.tokenizer, texts).input_ids.to(enc.device)  # warns if cut at 77
        return enc(ids)[0].to(pipe.unet.dtype)

    return embed(negatives), embed(prompts)


def _a(value) -> str:
    """What ``value`` is, for a message: ``None``, ``a str``, ``an int``."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"


def _texts(name: str, value) -> list[str]:
    """``value`` as a list of strings: one string, or a list or tuple of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        bad = [v for v in value if not isinstance(v, str)]
        if not bad:
            return list(value)
        raise TypeError(f"{name} holds {_a(bad[0])} ({bad[0]!r}): give a string, or a list of "
                        "strings (one per picture)")
    raise TypeError(f"{name} is {_a(value)}: give a string, or a list of strings (one per "
                    "picture)")


def check_number(name: str, value) -> float:
    """``value`` as a float, or a ``TypeError`` that names the argument (a string is no number).

    >>> check_number("guidance_scale", 7)
    7.0
    >>> check_number("strength", "0.5")
    Traceback (most recent call last):
    ...
    TypeError: strength='0.5' is a str: give a number, e.g. strength=0.5
    """
    if isinstance(value, str | bytes | bool) or value is None:
        example = f", e.g. {name}={value}" if isinstance(value, str) and _parses(value) else ""
        raise TypeError(f"{name}={value!r} is {_a(value)}: give a number{example}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r} is {_a(value)}: give a number") from None


def _parses(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_steps(steps) -> int:
    """The number of denoising steps, a positive int, or an error that says so.

    >>> check_steps(25)
    25
    >>> check_steps(0)
    Traceback (most recent call last):
    ...
    ValueError: steps=0: run at least 1 denoising step (25 is usual)
    """
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"steps={steps!r} is {_a(steps)}: give a whole number of denoising "
                        "steps (an int), e.g. steps=25")
    if steps < 1:
        raise ValueError(f"steps={steps}: run at least 1 denoising step (25 is usual)")
    return int(steps)


def check_guidance(guidance_scale) -> float:
    """Refuse a guidance scale that is not a finite number ≥ 0; warn below 1, where guidance is off.

    As in diffusers, any scale ≤ 1 runs one plain pass with the prompt (no unconditional
    one), so every such scale gives the picture of ``guidance_scale=1``: 1 is the way to say
    "no guidance", a scale below 1 gets a warning, and a negative one is refused.

    >>> check_guidance(7.5), check_guidance(1)
    (7.5, 1.0)
    >>> check_guidance(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: guidance_scale=nan is not a finite number: use 1 for no guidance, or more (7.5...
    """
    g = check_number("guidance_scale", guidance_scale)
    if not math.isfinite(g):
        raise ValueError(f"guidance_scale={g} is not a finite number: use 1 for no guidance, or "
                         "more (7.5 is usual)")
    if g < 0:
        raise ValueError(f"guidance_scale={g} is negative: any scale of 1 or less turns guidance "
                         "off (one plain pass with the prompt, as in diffusers), so it would not "
                         "push away from the prompt; use 1 for no guidance, more (7.5 is usual) "
                         "to guide, and a negative_prompt to steer away from something")
    if g < 1:
        warnings.warn(f"guidance_scale={g} is below 1, which turns guidance off: as in diffusers, "
                      "any scale of 1 or less runs one plain pass with the prompt, the same "
                      "picture as guidance_scale=1; use 1 to say so, or more (7.5 is usual) to "
                      "guide", stacklevel=2)
    return g


def _check_generator(generator) -> None:
    """``generator``: None, a ``torch.Generator``, or a list of them; a seed is named."""
    for g in generator if isinstance(generator, list) else [generator]:
        if g is not None and not isinstance(g, torch.Generator):
            fix = f"sdlearn.make_generator({g})" if isinstance(g, numbers.Integral) else \
                "sdlearn.make_generator(seed)"
            raise TypeError(f"generator={g!r} is {_a(g)}, not a torch.Generator: pass {fix}")


def cfg_combine(noise_uncond: torch.Tensor, noise_cond: torch.Tensor,
                guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: start from the unconditional prediction, move towards the
    conditional one, ``guidance_scale`` times as far."""
    return noise_uncond + guidance_scale * (noise_cond - noise_uncond)


def initial_latents(pipe, batch: int, height: int, width: int,
                    generator: torch.Generator | None = None, *,
                    allow_large: bool = False) -> torch.Tensor:
    """The starting noise, scaled by the scheduler's ``init_noise_sigma`` (as the pipeline).

    ``generator`` may be one generator or a list, one per image (as ``pipe(...)`` accepts).
    ``height`` or ``width`` ``None`` is the model's size; sizes far beyond it are refused
    unless ``allow_large`` (:func:`sdlearn.sizes.check_large`).
    """
    height, width = request_size(pipe, height, width)
    check_large(pipe, height, width, allow_large=allow_large)
    return _initial_latents(pipe, batch, height, width, generator)


def _initial_latents(pipe, batch, height, width, generator):
    f = pipe.vae_scale_factor
    _check_generator(generator)
    shape = (batch, pipe.vae.config.latent_channels, height // f, width // f)
    # a list of generators is checked against the batch, and drawn row by row, by randn
    noise = randn(shape, generator, device=pipe.device, dtype=pipe.unet.dtype)
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
                 guidance_scale: float, extra: torch.Tensor | None = None) -> torch.Tensor:
    """The UNet's noise prediction at ``t``, with classifier-free guidance.

    One UNet call on a batch of two, ``[uncond, cond]``, then :func:`cfg_combine`. At guidance
    1 or less, as in diffusers, it is one plain conditional pass on a batch of one.
    ``extra``: channels a widened UNet reads after the latents (an inpainting model's mask and
    masked picture, :func:`sdlearn.editing.inpainting_channels`), appended after the
    scheduler's scaling, as the pipelines do.
    """
    guided = guidance_scale > 1
    model_input = torch.cat([latents] * 2) if guided else latents
    model_input = pipe.scheduler.scale_model_input(model_input, t)
    if extra is not None:
        model_input = torch.cat([model_input, torch.cat([extra] * 2) if guided else extra], 1)
    text = torch.cat([uncond, cond]) if guided else cond
    noise_pred = pipe.unet(model_input, t, encoder_hidden_states=text).sample
    if guided:
        noise_uncond, noise_cond = noise_pred.chunk(2)
        noise_pred = cfg_combine(noise_uncond, noise_cond, guidance_scale)
    return noise_pred


@torch.no_grad()
def denoise(pipe, latents: torch.Tensor, uncond: torch.Tensor, cond: torch.Tensor,
            timesteps, guidance_scale: float = 7.5, *, generator=None,
            on_step: Callable | None = None, extra: torch.Tensor | None = None) -> torch.Tensor:
    """Run the guided loop over ``timesteps`` from ``latents``; returns the final latents.

    ``on_step(i, t, latents, noise_pred)`` is called after every step (for previews, or to
    put back the known region in inpainting) and may return replacement latents.
    ``extra``: the channels a widened UNet reads beside the latents at every step (see
    :func:`guided_noise`).
    The inputs are checked first (shapes, dtype, timesteps, ``guidance_scale``), so a mistake
    gets a message here rather than a traceback from inside the UNet.
    """
    timesteps = _check_loop(pipe, latents, uncond, cond, timesteps, guidance_scale)
    _check_extra(pipe, latents, extra)
    kwargs = step_kwargs(pipe.scheduler, generator)
    for i, t in enumerate(timesteps):
        noise_pred = guided_noise(pipe, latents, t, uncond, cond, guidance_scale, extra)
        latents = pipe.scheduler.step(noise_pred, t, latents, **kwargs).prev_sample
        if on_step is not None:
            replaced = on_step(i, t, latents, noise_pred)
            latents = latents if replaced is None else replaced
    return latents


def sample(pipe, prompt: str | list[str], *, negative_prompt=None, steps: int = 25,
           guidance_scale: float = 7.5, generator: torch.Generator | None = None,
           height: int | None = None, width: int | None = None,
           on_step: Callable | None = None, allow_large: bool = False) -> torch.Tensor:
    """Text to latents by hand, step for step what ``pipe(..., output_type="latent")`` does.

    ``height`` and ``width`` default (``None``) to the model's own size; sizes far beyond it
    are refused unless ``allow_large`` (:func:`sdlearn.sizes.check_large`).
    """
    steps = check_steps(steps)
    height, width = request_size(pipe, height, width)
    check_large(pipe, height, width, allow_large=allow_large)
    _check_generator(generator)
    uncond, cond = encode_prompts(pipe, prompt, negative_prompt)
    pipe.scheduler.set_timesteps(steps, device=pipe.device)
    latents = _initial_latents(pipe, len(cond), height, width, generator)
    return denoise(pipe, latents, uncond, cond, pipe.scheduler.timesteps, guidance_scale,
                   generator=generator, on_step=on_step)


def _check_loop(pipe, latents, uncond, cond, timesteps, guidance_scale):
    """:func:`denoise`'s inputs, checked; returns ``timesteps`` as a sequence."""
    _check_latents(latents, pipe.vae.config.latent_channels, pipe.unet.dtype, "denoise",
                   "draw them with sdlearn.sampling.initial_latents, or encode a picture with "
                   "sdlearn.editing.encode_image")
    guided = check_guidance(guidance_scale) > 1
    for name, text in (("uncond", uncond), ("cond", cond)) if guided else (("cond", cond),):
        if not isinstance(text, torch.Tensor) or text.dim() != 3:
            shape = tuple(text.shape) if isinstance(text, torch.Tensor) else type(text).__name__
            raise ValueError(f"{name} is {shape}: give text embeddings (batch, tokens, "
                             "features), from sdlearn.sampling.encode_prompts(pipe, prompt)")
        if len(text) != len(latents):
            raise ValueError(f"{name} holds {len(text)} text embeddings for a batch of "
                             f"{len(latents)} latents: give one per picture, e.g. "
                             f"encode_prompts(pipe, [prompt] * {len(latents)}) (and as many "
                             "negative prompts)")
    if not hasattr(timesteps, "__len__"):
        timesteps = list(timesteps)
    if len(timesteps) == 0:
        raise ValueError("timesteps is empty, so nothing would be denoised: call "
                         "pipe.scheduler.set_timesteps(steps) and pass pipe.scheduler.timesteps")
    n = getattr(pipe.scheduler.config, "num_train_timesteps", None)
    if n is not None:
        values = torch.as_tensor(timesteps) if isinstance(timesteps, torch.Tensor) else \
            torch.tensor([float(t) for t in timesteps])
        bad = values[(values < 0) | (values >= n)]
        if len(bad):
            raise ValueError(f"timesteps holds {bad[0].item():g}, outside 0..{n - 1} (the "
                             f"scheduler was trained with {n} timesteps): pass "
                             "pipe.scheduler.timesteps after pipe.scheduler.set_timesteps(steps)")
    return timesteps


def _check_extra(pipe, latents: torch.Tensor, extra) -> None:
    """``extra`` holds the channels the UNet reads beyond the latents', one row per picture."""
    want = pipe.unet.config.in_channels - latents.shape[1]
    if extra is None:
        if want:
            raise ValueError(f"this UNet reads {pipe.unet.config.in_channels} channels, the "
                             f"latents' {latents.shape[1]} and {want} more: pass them as extra= "
                             "(for an inpainting model, sdlearn.editing.inpainting_channels, "
                             "or use sdlearn.editing.inpaint; for a depth model, "
                             "sdlearn.depth.depth_input, or use sdlearn.editing.img2img)")
        return
    got = tuple(extra.shape) if isinstance(extra, torch.Tensor) else _a(extra)
    if (not isinstance(extra, torch.Tensor) or extra.dim() != 4 or extra.shape[1] != want
            or extra.shape[0] != latents.shape[0] or extra.shape[2:] != latents.shape[2:]):
        raise ValueError(f"extra is {got}; this UNet reads {want} channels beyond the latents: "
                         f"give a tensor ({latents.shape[0]}, {want}, {latents.shape[2]}, "
                         f"{latents.shape[3]})")
    if extra.dtype != latents.dtype:
        raise ValueError(f"extra is {extra.dtype} but the latents are {latents.dtype}: pass "
                         f"extra.to({latents.dtype})")


def _check_latents(latents, channels: int, dtype, what: str, fix: str) -> None:
    """Latents for ``what``: a 4-D tensor ``(batch, channels, h, w)`` of ``dtype``."""
    if not isinstance(latents, torch.Tensor):
        raise TypeError(f"{what} takes latents, a tensor (batch, {channels}, h, w); got "
                        f"{_a(latents)}: {fix}")
    if latents.dim() != 4 or latents.shape[1] != channels:
        hint = (" (a picture has 3: that looks like an image, not latents)"
                if latents.dim() == 4 and latents.shape[1] == 3 else
                " (for one picture, latents[None])" if latents.dim() == 3 else "")
        raise ValueError(f"{what} takes latents of shape (batch, {channels}, h, w); got "
                         f"{tuple(latents.shape)}{hint}: {fix}")
    if latents.dtype != dtype:
        raise ValueError(f"the latents are {latents.dtype} but the model is {dtype}: pass "
                         f"latents.to({dtype})")


@torch.no_grad()
def decode(pipe, latents: torch.Tensor):
    """Latents to PIL images: unscale, ``vae.decode``, and the pipeline's postprocessing."""
    vae = pipe.vae
    _check_latents(latents, vae.config.latent_channels, latents.dtype, "decode",
                   "pass the latents from sample, img2img or inpaint (a picture tensor is "
                   "shown with sdlearn.to_pil)")
    images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(images, output_type="pil")


PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def _prediction_type(scheduler, what: str) -> str:
    """What the UNet predicts, for a scheduler in the DDPM form (PNDM, DDIM, DPM)."""
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"{what} knows the prediction types {', '.join(PREDICTION_TYPES)}; "
                         f"this scheduler says {kind!r}: use scheduler.step(...), which "
                         "raises or handles it as diffusers does")
    if float(scheduler.init_noise_sigma) != 1.0:
        raise ValueError(f"{what} needs latents in the DDPM form (PNDM, DDIM, DPM); "
                         f"{type(scheduler).__name__} scales them by sigma — use "
                         "scheduler.step(...).pred_original_sample instead")
    return kind


def x0_and_noise(scheduler, latents: torch.Tensor, model_output: torch.Tensor,
                 t) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean latents and the noise that the UNet's output stands for, at timestep ``t``.

    With ``a = ᾱ_t`` and ``x_t = √a·x0 + √(1−a)·ε``, what the model predicts decides the
    formulas (``scheduler.config.prediction_type``, as in ``DDIMScheduler.step``):

    - ``"epsilon"`` (SD 1.x, SD 2.x at 512 px): ``x0 = (x_t − √(1−a)·ε) / √a``;
    - ``"v_prediction"`` (SD 2.x at 768 px), ``v = √a·ε − √(1−a)·x0``:
      ``x0 = √a·x_t − √(1−a)·v`` and ``ε = √a·v + √(1−a)·x_t``;
    - ``"sample"``: the output is x0, and ``ε = (x_t − √a·x0) / √(1−a)``.

    >>> import torch
    >>> from diffusers import DDIMScheduler
    >>> s = DDIMScheduler(prediction_type="v_prediction")
    >>> x0, eps = torch.ones(3), torch.zeros(3)
    >>> a = s.alphas_cumprod[500]
    >>> x_t, v = a ** 0.5 * x0 + (1 - a) ** 0.5 * eps, a ** 0.5 * eps - (1 - a) ** 0.5 * x0
    >>> [round(float(z[0]), 4) for z in x0_and_noise(s, x_t, v, 500)]
    [1.0, 0.0]
    """
    kind = _prediction_type(scheduler, "x0_and_noise")
    # The same operations in the same order as DDIMScheduler.step, so the results are equal.
    alpha = scheduler.alphas_cumprod.to(latents.device)[int(t)]
    beta = 1 - alpha
    if kind == "epsilon":
        return (latents - beta ** (0.5) * model_output) / alpha ** (0.5), model_output
    if kind == "v_prediction":
        return (alpha**0.5) * latents - (beta**0.5) * model_output, \
            (alpha**0.5) * model_output + (beta**0.5) * latents
    return model_output, (latents - alpha ** (0.5) * model_output) / beta ** (0.5)


def predicted_x0(scheduler, latents: torch.Tensor, noise_pred: torch.Tensor, t) -> torch.Tensor:
    """The clean latents the model currently believes in, from the UNet's output at ``t``.

    For noise prediction ``(x_t − √(1−ᾱ_t)·ε) / √ᾱ_t``; for v-prediction ``√ᾱ_t·x_t −
    √(1−ᾱ_t)·v`` (:func:`x0_and_noise` has every case).
    """
    _prediction_type(scheduler, "predicted_x0")
    return x0_and_noise(scheduler, latents, noise_pred, t)[0]


def ddim_step(scheduler, noise_pred: torch.Tensor, t, latents: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM update (eta = 0), written out; equal to ``DDIMScheduler.step``.

    Estimate the clean latents and the noise from the model's output (:func:`x0_and_noise`:
    noise or v prediction), then re-noise the estimate to the previous timestep's level with
    that same noise: ``x_prev = √ᾱ_prev·x0 + √(1-ᾱ_prev)·ε``, where ``prev = t −
    num_train_timesteps // num_inference_steps`` (as diffusers' DDIM, whatever the spacing).
    """
    _prediction_type(scheduler, "ddim_step")
    if scheduler.num_inference_steps is None:
        raise ValueError("ddim_step needs the scheduler's number of steps: call "
                         "scheduler.set_timesteps(steps) first")
    for option in ("clip_sample", "thresholding"):
        if scheduler.config.get(option):
            raise ValueError(f"ddim_step does not {option.replace('_', ' ')} x0, and this "
                             f"scheduler has {option}=True (Stable Diffusion's is False): make "
                             f"it with DDIMScheduler.from_config(config, {option}=False)")
    t = int(t)
    prev = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas = scheduler.alphas_cumprod.to(latents.device)
    alpha_prev = alphas[prev] if prev >= 0 else scheduler.final_alpha_cumprod.to(latents.device)
    x0, eps = x0_and_noise(scheduler, latents, noise_pred, t)
    return alpha_prev ** 0.5 * x0 + (1 - alpha_prev) ** 0.5 * eps
