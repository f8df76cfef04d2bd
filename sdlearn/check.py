"""The graders of the lessons' exercises: ``check.NAME(your_function, pipe)``.

Each grader runs your function on fixed inputs made from the model you are using, compares with
the reference answer, prints one line (✓, ✗ with a hint, or ○ not done yet), and returns the
function to use next: yours when it is right, the reference otherwise, so the lesson goes on.

>>> import sdlearn
>>> from sdlearn import check
>>> pipe = sdlearn.load_pipeline()
>>> scale_latents = check.scale_latents(lambda latents, vae: latents, pipe)  # doctest: +ELLIPSIS
✗ scale_latents: your latents are unchanged — multiply them by vae.config.scaling_factor...
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .grading import Exercise, Graded, grade

SD_SCALING_FACTOR = 0.18215  # Stable Diffusion 1/2's value, for spotting a hard-coded copy

# name → function(pipe) that builds the Exercise; tests grade every reference and mistake.
EXERCISES: dict[str, Callable[..., Exercise]] = {}


def _grader(builder: Callable[..., Exercise]) -> Callable[..., Graded]:
    """Register ``builder`` and make the grader ``check.NAME(your_function, pipe)``."""
    EXERCISES[builder.__name__] = builder

    def grader(fn, pipe) -> Graded:
        return grade(builder(pipe), fn)

    grader.__name__ = builder.__name__
    grader.__doc__ = builder.__doc__
    return grader


def _gen(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def _latents(pipe, seed: int, batch: int = 1, scale: float = 1.0) -> torch.Tensor:
    unet = pipe.unet
    shape = (batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    return (torch.randn(shape, generator=_gen(seed)) * scale).to(pipe.device, pipe.unet.dtype)


# ----------------------------------------------------------------------------- 00_quickstart

@_grader
def latent_shape(pipe) -> Exercise:
    """Exercise: ``latent_shape(pipe, height, width)`` → the shape of the latents for one image."""
    f = pipe.vae_scale_factor
    size = pipe.unet.config.sample_size * f

    def reference(pipe, height, width):
        return (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor,
                width // pipe.vae_scale_factor)

    hard_coded = [] if f == 8 else [
        (lambda p, h, w: (1, p.unet.config.in_channels, h // 8, w // 8),
         f"this model's VAE factor is {f}, not Stable Diffusion's 8 — read "
         "pipe.vae_scale_factor")]
    return Exercise(
        "latent_shape", reference, [(pipe, size, size), (pipe, size, 2 * size),
                                    (pipe, size - f, size + f)],
        mistakes=[
            (lambda p, h, w: (1, p.unet.config.in_channels, h, w),
             "the latents are smaller than the image — divide height and width by "
             "pipe.vae_scale_factor"),
            (lambda p, h, w: (1, 3, h // p.vae_scale_factor, w // p.vae_scale_factor),
             "latents do not have 3 colour channels — read pipe.unet.config.in_channels"),
            (lambda p, h, w: (p.unet.config.in_channels, h // p.vae_scale_factor,
                              w // p.vae_scale_factor),
             "keep the batch dimension in front: (1, channels, height, width)"),
            (lambda p, h, w: (1, p.unet.config.in_channels, w // p.vae_scale_factor,
                              h // p.vae_scale_factor),
             "height comes before width: (1, channels, height // f, width // f)"),
            *hard_coded,
        ])


@_grader
def seeded_image(pipe, steps: int = 4) -> Exercise:
    """Exercise: ``seeded_image(pipe, prompt, seed, steps)`` → a PIL image, the same per seed."""

    def reference(pipe, prompt, seed, steps):
        return pipe(prompt, num_inference_steps=steps,
                    generator=torch.Generator("cpu").manual_seed(seed)).images[0]

    return Exercise(
        "seeded_image", reference,
        [(pipe, "a big red circle in the center", 1, steps),
         (pipe, "a small blue square at the top left", 2, steps)],
        mistakes=[
            (lambda p, prompt, seed, steps: p(prompt, num_inference_steps=steps,
                                              generator=_gen(seed + 1)).images[0],
             "the image belongs to another seed — use generator=torch.Generator('cpu')"
             ".manual_seed(seed) with the seed you were given"),
            (lambda p, prompt, seed, steps: p(prompt, generator=_gen(seed)).images[0],
             "pass num_inference_steps=steps: the default is a different number of steps"),
        ],
        checks=[(lambda got, expected, args: got is not NOT_REPEATABLE,
                 "two calls with the same seed gave different images — pass "
                 "generator=torch.Generator('cpu').manual_seed(seed)")],
        adapt=_repeatable_array)


NOT_REPEATABLE = "two calls gave different results"


def _repeatable_array(fn):
    """Call twice: the result as an array, or NOT_REPEATABLE if the two calls differ."""
    import numpy as np

    def wrapped(*args):
        first, second = np.asarray(fn(*args)), np.asarray(fn(*args))
        return first if np.array_equal(first, second) else NOT_REPEATABLE

    return wrapped


# ----------------------------------------------------------------------------- 01_vae

@_grader
def scale_latents(pipe) -> Exercise:
    """Exercise: ``scale_latents(latents, vae)`` → what the UNet expects from ``encode``."""
    vae = pipe.vae
    sf = vae.config.scaling_factor
    mistakes = [
        (lambda latents, vae: latents,
         "your latents are unchanged — multiply them by vae.config.scaling_factor"),
        (lambda latents, vae: latents / vae.config.scaling_factor,
         "you divided — encoding multiplies by vae.config.scaling_factor, decoding divides"),
    ]
    if abs(sf - SD_SCALING_FACTOR) > 1e-6:
        mistakes.append((lambda latents, vae: latents * SD_SCALING_FACTOR,
                         f"you used Stable Diffusion's 0.18215, but this VAE's factor is "
                         f"{sf:.5f} — read vae.config.scaling_factor"))
    return Exercise(
        "scale_latents", lambda latents, vae: latents * vae.config.scaling_factor,
        [(_latents(pipe, 0, scale=5.0), vae), (_latents(pipe, 1, 2, scale=3.0), vae)],
        mistakes=mistakes)


@_grader
def unscale_and_decode(pipe) -> Exercise:
    """Exercise: ``unscale_and_decode(latents, vae)`` → the image tensor in [-1, 1]."""
    vae = pipe.vae

    def reference(latents, vae):
        with torch.no_grad():
            return vae.decode(latents / vae.config.scaling_factor).sample

    def without(latents, vae):
        with torch.no_grad():
            return vae.decode(latents).sample

    def times(latents, vae):
        with torch.no_grad():
            return vae.decode(latents * vae.config.scaling_factor).sample

    return Exercise(
        "unscale_and_decode", reference, [(_latents(pipe, 2), vae)],
        mistakes=[
            (without, "decode(latents) skips the scaling — divide by vae.config.scaling_factor "
                      "first"),
            (times, "you multiplied — decoding divides by vae.config.scaling_factor"),
            (_no_grad(lambda latents, vae: vae.decode(latents / vae.config.scaling_factor)),
             "vae.decode returns an output object — take its .sample"),
        ], atol=1e-3)


def _no_grad(fn):
    def wrapped(*args):
        with torch.no_grad():
            return fn(*args)
    return wrapped


@_grader
def scaling_factor_from(pipe) -> Exercise:
    """Exercise: ``scaling_factor_from(latents)`` → the factor that makes their std 1."""
    cases = [(torch.randn(8, 4, 8, 8, generator=_gen(3)) * 5.4 + 0.3,),
             (torch.randn(2, 4, 16, 16, generator=_gen(4)) * 0.7,)]
    return Exercise(
        "scaling_factor_from", lambda latents: float(1 / latents.std()), cases,
        mistakes=[
            (lambda latents: float(latents.std()),
             "that is the std itself — the factor is 1 / std, so that std × factor = 1"),
            (lambda latents: float(1 / latents.abs().mean()),
             "use the standard deviation (latents.std()), not the mean absolute value"),
            (lambda latents: float(1 / latents.var()),
             "use the standard deviation, not the variance"),
        ], atol=1e-3, rtol=1e-3, adapt=lambda fn: lambda *args: float(fn(*args)))


# ----------------------------------------------------------------------------- 02_text

def _long_prompt() -> str:
    return "a big red circle at the top left and a small blue square in the center, " * 8


@_grader
def tokenize_prompt(pipe) -> Exercise:
    """Exercise: ``tokenize_prompt(prompt, tokenizer)`` → input ids of shape (1, max_length)."""
    tok = pipe.tokenizer

    def reference(prompt, tokenizer):
        return tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids

    return Exercise(
        "tokenize_prompt", reference, [("a small green triangle", tok), (_long_prompt(), tok)],
        mistakes=[
            (lambda p, t: t(p, padding="max_length", max_length=t.model_max_length,
                            return_tensors="pt").input_ids,
             "long prompts must be cut to max_length too: add truncation=True"),
            (lambda p, t: t(p, return_tensors="pt").input_ids,
             "pad every prompt to the same length: padding='max_length', "
             "max_length=tokenizer.model_max_length"),
            (lambda p, t: t(p, padding="max_length", max_length=t.model_max_length,
                            truncation=True, add_special_tokens=False,
                            return_tensors="pt").input_ids,
             "keep the start and end tokens (add_special_tokens=True, the default)"),
        ], adapt=_quiet)


def _quiet(fn):
    """Silence transformers' over-length chatter while grading tokenizer answers."""

    def wrapped(*args):
        from transformers.utils import logging

        level = logging.get_verbosity()
        logging.set_verbosity_error()
        try:
            return fn(*args)
        finally:
            logging.set_verbosity(level)

    return wrapped


@_grader
def encode_text(pipe) -> Exercise:
    """Exercise: ``encode_text(prompts, tokenizer, text_encoder)`` → the UNet's conditioning."""
    tok, enc = pipe.tokenizer, pipe.text_encoder

    def ids(prompts, t, **kw):
        return t(prompts, padding="max_length", max_length=t.model_max_length, truncation=True,
                 return_tensors="pt", **kw).to(enc.device)

    def reference(prompts, t, e):
        with torch.no_grad():
            return e(ids(prompts, t).input_ids)[0]

    def pooled(prompts, t, e):
        with torch.no_grad():
            return e(ids(prompts, t).input_ids).pooler_output

    def masked(prompts, t, e):
        with torch.no_grad():
            batch = ids(prompts, t)
            return e(batch.input_ids, attention_mask=batch.attention_mask)[0]

    def unpadded(prompts, t, e):
        with torch.no_grad():
            return e(t(prompts, return_tensors="pt", padding=True).input_ids.to(e.device))[0]

    return Exercise(
        "encode_text", reference, [(["a big red circle", "a small blue square at the top"],
                                    tok, enc)],
        mistakes=[
            (pooled, "that is the pooled vector, one per prompt — the UNet reads one vector "
                     "per token: last_hidden_state (or output[0])"),
            (masked, "Stable Diffusion 1.x does not pass the attention mask to the text "
                     "encoder: call it with the input ids only"),
            (unpadded, "pad to tokenizer.model_max_length: the UNet was trained on 77 tokens"),
        ], atol=1e-4)


@_grader
def uncond_embedding(pipe) -> Exercise:
    """Exercise: ``uncond_embedding(tokenizer, text_encoder)`` → the embedding of ``""``."""
    tok, enc = pipe.tokenizer, pipe.text_encoder

    def embed(prompt, t, e):
        with torch.no_grad():
            ids = t(prompt, padding="max_length", max_length=t.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(e.device)
            return e(ids)[0]

    return Exercise(
        "uncond_embedding", lambda t, e: embed("", t, e), [(tok, enc)],
        mistakes=[
            (lambda t, e: torch.zeros_like(embed("", t, e)),
             "the unconditional embedding is not zeros — it is the text encoder's output "
             "for the empty prompt \"\""),
            (lambda t, e: e(t("", return_tensors="pt").input_ids.to(e.device))[0],
             "pad the empty prompt to tokenizer.model_max_length like any other prompt: the "
             "UNet reads 77 token vectors"),
        ])


# ----------------------------------------------------------------------------- 03_unet

OUTPUT_OBJECT = "an output object, not a tensor"


def _tensor_or_marker(fn):
    """Turn a forgotten ``.sample`` into a marker the grader can explain."""
    def wrapped(*args):
        out = fn(*args)
        return out if isinstance(out, torch.Tensor | tuple | list) else OUTPUT_OBJECT
    return wrapped


def _text(pipe, prompts) -> torch.Tensor:
    from .sampling import encode_prompts

    return encode_prompts(pipe, prompts)[1]


@_grader
def predict_noise(pipe) -> Exercise:
    """Exercise: ``predict_noise(unet, latents, t, text_embeddings)`` → the UNet's noise guess."""
    unet = pipe.unet
    text = _text(pipe, ["a big red circle at the top left"])

    def reference(unet, latents, t, text):
        with torch.no_grad():
            return unet(latents, t, encoder_hidden_states=text).sample

    def divided(unet, latents, t, text):
        with torch.no_grad():
            return unet(latents, t / 1000, encoder_hidden_states=text).sample

    def at_zero(unet, latents, t, text):
        with torch.no_grad():
            return unet(latents, 0, encoder_hidden_states=text).sample

    return Exercise(
        "predict_noise", reference, [(unet, _latents(pipe, 5), 700, text),
                                     (unet, _latents(pipe, 6), 50, text)],
        mistakes=[(divided, "pass the timestep as it is, an integer from 0 to 999 — not divided"),
                  (at_zero, "pass the timestep t: the UNet must know how noisy its input is")],
        checks=[(lambda got, expected, args: got is not OUTPUT_OBJECT,
                 "the UNet returns an output object — take its .sample")],
        adapt=_tensor_or_marker, atol=1e-4)


@_grader
def cfg_batch(pipe) -> Exercise:
    """Exercise: ``cfg_batch(latents, uncond, cond)`` → (UNet input, text) for one guided call."""
    from .sampling import encode_prompts

    uncond, cond = encode_prompts(pipe, "a small blue square in the center")
    return Exercise(
        "cfg_batch", lambda x, u, c: (torch.cat([x, x]), torch.cat([u, c])),
        [(_latents(pipe, 7), uncond, cond)],
        mistakes=[(lambda x, u, c: (torch.cat([x, x]), torch.cat([c, u])),
                   "put the unconditional embedding first, [uncond, cond], as diffusers does: "
                   "noise_pred.chunk(2) then gives (uncond, cond) in that order"),
                  (lambda x, u, c: (x, torch.cat([u, c])),
                   "duplicate the latents: the batch needs one copy for each text embedding")])


# ----------------------------------------------------------------------------- 04_scheduler

def _alpha_bar(scheduler, t):
    return scheduler.alphas_cumprod[int(t)]


@_grader
def add_noise_by_hand(pipe) -> Exercise:
    """Exercise: ``add_noise_by_hand(x0, noise, t, scheduler)`` → ``x_t`` for timestep ``t``."""
    sched = pipe.scheduler
    # On the device of alphas_cumprod, which scheduler.add_noise may have moved to the GPU.
    device = sched.alphas_cumprod.device
    x0, noise = _latents(pipe, 8).float().to(device), _latents(pipe, 9).float().to(device)

    def reference(x0, noise, t, s):
        a = _alpha_bar(s, t)
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise

    def plain_alpha(x0, noise, t, s):
        a = s.alphas[int(t)]
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise

    return Exercise(
        "add_noise_by_hand", reference, [(x0, noise, 10, sched), (x0, noise, 500, sched),
                                         (x0, noise, 990, sched)],
        mistakes=[
            (plain_alpha, "use scheduler.alphas_cumprod (ᾱ_t, the product of all alphas up to t),"
                          " not scheduler.alphas"),
            (lambda x0, n, t, s: _alpha_bar(s, t) * x0 + (1 - _alpha_bar(s, t)) * n,
             "the weights are square roots: √ᾱ_t · x0 + √(1 − ᾱ_t) · noise"),
            (lambda x0, n, t, s: (1 - _alpha_bar(s, t)) ** 0.5 * x0 + _alpha_bar(s, t) ** 0.5 * n,
             "swapped: x0 is weighted by √ᾱ_t (near 1 for small t), the noise by √(1 − ᾱ_t)"),
        ])


@_grader
def ddim_update(pipe) -> Exercise:
    """Exercise: ``ddim_update(noise_pred, t, latents, scheduler)`` → the DDIM step (eta 0)."""
    from .models import make_scheduler
    from .sampling import ddim_step, predicted_x0

    sched = make_scheduler("ddim", pipe.scheduler.config)
    sched.set_timesteps(10)
    x, eps = _latents(pipe, 10).float().cpu(), _latents(pipe, 11).float().cpu()
    ts = [sched.timesteps[0], sched.timesteps[4], sched.timesteps[-1]]

    def wrong_prev(e, t, x, s):
        a, ap = _alpha_bar(s, t), _alpha_bar(s, max(int(t) - 1, 0))
        x0 = (x - (1 - a) ** 0.5 * e) / a ** 0.5
        return ap ** 0.5 * x0 + (1 - ap) ** 0.5 * e

    return Exercise(
        "ddim_update", lambda e, t, x, s: ddim_step(s, e, t, x),
        [(eps, t, x, sched) for t in ts],
        mistakes=[
            (wrong_prev, "the previous timestep is t − num_train_timesteps // num_inference_steps"
                         ", not t − 1"),
            (lambda e, t, x, s: predicted_x0(s, x, e, t),
             "that is the predicted x0 — now re-noise it to the previous level: "
             "√ᾱ_prev · x0 + √(1 − ᾱ_prev) · ε"),
            (lambda e, t, x, s: x, "you used ᾱ_t twice, which gives x_t back: the second half "
                                   "needs ᾱ of the previous timestep"),
        ], atol=1e-4)


# ----------------------------------------------------------------------------- 05_sampling_loop

@_grader
def guidance(pipe) -> Exercise:
    """Exercise: ``guidance(noise_uncond, noise_cond, scale)`` → the guided noise prediction."""
    u, c = _latents(pipe, 12).float().cpu(), _latents(pipe, 13).float().cpu()
    return Exercise(
        "guidance", lambda u, c, s: u + s * (c - u), [(u, c, 7.5), (u, c, 3.0)],
        mistakes=[
            (lambda u, c, s: c + s * (u - c),
             "uncond and cond are swapped: start from the unconditional prediction and move "
             "towards the conditional one"),
            (lambda u, c, s: s * (c - u),
             "add the unconditional prediction back: uncond + scale · (cond − uncond)"),
            (lambda u, c, s: s * c, "guidance is not a plain multiplication — it pushes along "
                                    "the difference: uncond + scale · (cond − uncond)"),
        ])


def _loop(pipe, prompt, seed, steps, guidance_scale, *, scale_input=True, init_sigma=True,
          order=("uncond", "cond")):
    """The guided loop with switches that reproduce typical mistakes."""
    from .sampling import encode_prompts

    uncond, cond = encode_prompts(pipe, prompt)
    text = torch.cat([uncond, cond] if order == ("uncond", "cond") else [cond, uncond])
    s = pipe.scheduler
    s.set_timesteps(steps, device=pipe.device)
    size = pipe.unet.config.sample_size
    latents = torch.randn((1, pipe.unet.config.in_channels, size, size),
                          generator=_gen(seed), dtype=pipe.unet.dtype).to(pipe.device)
    if init_sigma:
        latents = latents * s.init_noise_sigma
    with torch.no_grad():
        for t in s.timesteps:
            x = torch.cat([latents] * 2)
            if scale_input:
                x = s.scale_model_input(x, t)
            noise_uncond, noise_cond = pipe.unet(x, t, encoder_hidden_states=text).sample.chunk(2)
            noise = noise_uncond + guidance_scale * (noise_cond - noise_uncond)
            latents = s.step(noise, t, latents).prev_sample
    return latents


@_grader
def sample_by_hand(pipe) -> Exercise:
    """Exercise: ``sample_by_hand(pipe, prompt, seed, steps, guidance_scale)`` → final latents.

    Graded with the pipeline's own scheduler and with Euler, whose ``init_noise_sigma`` and
    ``scale_model_input`` are not trivial.
    """
    from .models import with_scheduler

    euler = with_scheduler(pipe, "euler")
    prompt = "a big green triangle at the bottom left on a white background"
    return Exercise(
        "sample_by_hand", _loop, [(pipe, prompt, 0, 4, 7.5), (euler, prompt, 1, 4, 7.5)],
        mistakes=[
            (lambda *a: _loop(*a, scale_input=False),
             "call scheduler.scale_model_input(latent_model_input, t) before the UNet — a "
             "no-op for PNDM and DDIM, essential for Euler and LMS"),
            (lambda *a: _loop(*a, init_sigma=False),
             "multiply the starting noise by scheduler.init_noise_sigma (1 for PNDM and DDIM, "
             "the σ of the first timestep for Euler)"),
            (lambda *a: _loop(*a, order=("cond", "uncond")),
             "the embeddings' order must match the chunks: [uncond, cond], then "
             "noise_pred.chunk(2) gives (uncond, cond)"),
        ], atol=_loop_tolerance(pipe), rtol=_loop_tolerance(pipe))


# ----------------------------------------------------------------------------- 06_img2img

@_grader
def start_step(pipe) -> Exercise:
    """Exercise: ``start_step(steps, strength)`` → how many of the steps img2img skips."""
    def reference(steps, strength):
        return steps - min(int(steps * strength), steps)

    return Exercise(
        "start_step", reference, [(50, 0.8), (10, 0.36), (25, 1.0), (20, 0.0)],
        mistakes=[
            (lambda n, s: min(int(n * s), n),
             "that is the number of steps that *run* — the start is steps minus that"),
            (lambda n, s: n - min(round(n * s), n),
             "diffusers truncates: int(steps * strength), not round()"),
            (lambda n, s: int(n * (1 - s)),
             "compute the steps that run first, int(steps * strength), then subtract: "
             "int(steps * (1 - strength)) rounds differently"),
        ])


@_grader
def noise_to_strength(pipe) -> Exercise:
    """Exercise: ``noise_to_strength(init_latents, noise, timesteps, scheduler)`` → x_t to start."""
    from .models import make_scheduler

    sched = make_scheduler("ddim", pipe.scheduler.config)
    sched.set_timesteps(10)
    init, noise = _latents(pipe, 14).float().cpu(), _latents(pipe, 15).float().cpu()
    cases = [(init, noise, sched.timesteps[k:], sched) for k in (2, 7)]
    return Exercise(
        "noise_to_strength", lambda x, n, ts, s: s.add_noise(x, n, ts[:1]), cases,
        mistakes=[
            (lambda x, n, ts, s: s.add_noise(x, n, ts[-1:]),
             "noise to the level of the *first* timestep that will run, timesteps[:1], not the "
             "last"),
            (lambda x, n, ts, s: n, "img2img keeps part of the picture: mix it with the noise "
                                   "with scheduler.add_noise(init_latents, noise, t)"),
            (lambda x, n, ts, s: x + n, "the mix is weighted: √ᾱ_t · x0 + √(1 − ᾱ_t) · noise — "
                                        "scheduler.add_noise does it"),
        ])


def _img2img(pipe, image, prompt, strength, seed, steps=25, guidance_scale=7.5, *,
             all_steps=False, pure_noise=False, unscaled=False, mode=False):
    """img2img by hand with switches that reproduce typical mistakes."""
    from .editing import img2img_timesteps, prepare_image
    from .sampling import denoise, encode_prompts

    generator = _gen(seed)
    timesteps = img2img_timesteps(pipe.scheduler, steps, strength)
    uncond, cond = encode_prompts(pipe, prompt)
    with torch.no_grad():
        dist = pipe.vae.encode(prepare_image(pipe, image)).latent_dist
        init = dist.mode() if mode else dist.sample(generator)
    init = init if unscaled else init * pipe.vae.config.scaling_factor
    noise = torch.randn(init.shape, generator=generator, dtype=init.dtype).to(init.device)
    latents = noise if pure_noise else pipe.scheduler.add_noise(init, noise, timesteps[:1])
    if all_steps:
        pipe.scheduler.set_timesteps(steps)
        timesteps = pipe.scheduler.timesteps
        if hasattr(pipe.scheduler, "set_begin_index"):
            pipe.scheduler.set_begin_index(0)
    return denoise(pipe, latents, uncond, cond, timesteps, guidance_scale, generator=generator)


def _loop_tolerance(pipe) -> float:
    """Whole loops add rounding: float32 agrees to 1e-3, half precision to a few 1e-2."""
    return 1e-3 if pipe.unet.dtype == torch.float32 else 5e-2


@_grader
def img2img_loop(pipe) -> Exercise:
    """Exercise: ``img2img_by_hand(pipe, image, prompt, strength, seed, steps, guidance_scale)``
    → the final latents, as ``StableDiffusionImg2ImgPipeline`` makes them."""
    from .models import with_scheduler
    from .shapes import Scene, ShapeObject, render_image

    euler = with_scheduler(pipe, "euler")
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    image = render_image(Scene("white", [ShapeObject("circle", "red", "big", "center")]), size)
    prompt = "a big blue square in the center on a white background"
    return Exercise(
        "img2img_loop", _img2img, [(pipe, image, prompt, 0.6, 0, 5, 7.5),
                                   (euler, image, prompt, 0.5, 1, 4, 7.5)],
        mistakes=[
            (lambda *a: _img2img(*a, pure_noise=True),
             "start from the picture: noise its latents with scheduler.add_noise(init, noise, "
             "timesteps[:1]) instead of starting from the noise alone"),
            (lambda *a: _img2img(*a, all_steps=True),
             "run only the timesteps from the start step on (img2img_timesteps or "
             "scheduler.timesteps[start * scheduler.order:]), not the whole schedule"),
            (lambda *a: _img2img(*a, unscaled=True),
             "multiply the encoded latents by vae.config.scaling_factor before adding noise"),
            (lambda *a: _img2img(*a, mode=True),
             "diffusers samples the latents, latent_dist.sample(generator), before drawing the "
             "noise from the same generator; .mode() changes both"),
        ], atol=_loop_tolerance(pipe), rtol=_loop_tolerance(pipe))


# ----------------------------------------------------------------------------- 07_inpainting

def _mask_cases(pipe) -> list[tuple]:
    from .masks import ellipse, rectangle

    f = pipe.vae_scale_factor
    size = pipe.unet.config.sample_size * f
    return [(rectangle(size, f + 1, size // 2 + 3, f // 2, size - f), f),
            (ellipse(size, 0, size * 3 // 4, size // 4, size), f),
            (rectangle((size, size // 2), 0, size // 2, 0, size // 2), f)]


@_grader
def latent_mask(pipe) -> Exercise:
    """Exercise: ``latent_mask(mask, factor)`` → the pixel mask at the latents' size, as
    diffusers makes it: a float tensor ``(1, 1, H/factor, W/factor)`` of 0s and 1s."""
    import numpy as np
    import torch.nn.functional as F

    def pixels(mask):
        return torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255)[None, None]

    def reference(mask, factor):
        m = pixels(mask)
        return F.interpolate(m, size=(m.shape[-2] // factor, m.shape[-1] // factor))

    return Exercise(
        "latent_mask", reference, lambda: _mask_cases(pipe),
        mistakes=[
            (lambda m, f: pixels(m), "that is still the pixel mask: the latent mask is "
                                     "factor times smaller in each direction"),
            (lambda m, f: reference(m, f) * 255, "scale the mask to 0 and 1 (divide by 255): it "
                                                 "multiplies the latents"),
            (lambda m, f: 1 - reference(m, f), "white (1) means repaint: don't invert the mask"),
            (lambda m, f: F.max_pool2d(pixels(m), f),
             "that is a max-pool (a cell is repainted if any pixel is white); diffusers uses "
             "F.interpolate's default, nearest"),
            (lambda m, f: F.avg_pool2d(pixels(m), f), "an average gives fractions on the "
                                                      "edges; use F.interpolate (nearest) so it "
                                                      "stays 0 or 1"),
            (lambda m, f: F.interpolate(pixels(m), scale_factor=1 / f, mode="bilinear"),
             "bilinear gives fractions on the edges; use F.interpolate's default, nearest"),
        ],
        checks=[(lambda got, exp, args: tuple(got.shape) == tuple(exp.shape),
                 "the latent mask has shape (1, 1, height // factor, width // factor)")])


@_grader
def put_back(pipe) -> Exercise:
    """Exercise: ``put_back(latents, init_latents, noise, mask, next_t, scheduler)`` → the
    latents after a step with the kept region restored (noised to ``next_t``; clean if None)."""
    from .masks import rectangle
    from .models import make_scheduler

    f = pipe.vae_scale_factor
    size = pipe.unet.config.sample_size * f
    sched = make_scheduler("ddim", pipe.scheduler.config)
    sched.set_timesteps(10)
    ts = sched.timesteps

    def reference(latents, init, noise, mask, next_t, scheduler):
        known = init if next_t is None else scheduler.add_noise(init, noise, next_t.reshape(1))
        return (1 - mask) * known + mask * latents

    def cases():
        from .masks import latent_mask as to_latent

        mask = to_latent(rectangle(size, 0, size // 2, f, size), f)
        lat, init, noise = (_latents(pipe, s).float().cpu() for s in (21, 22, 23))
        return [(lat, init, noise, mask, ts[3], sched), (lat, init, noise, mask, ts[8], sched),
                (lat, init, noise, mask, None, sched)]

    def same_t(latents, init, noise, mask, next_t, scheduler, *, swap=False, clean=False,
               t=None):
        known = init if next_t is None or clean else scheduler.add_noise(
            init, noise, (t if t is not None else next_t).reshape(1))
        m = 1 - mask if swap else mask
        return (1 - m) * known + m * latents

    def previous(latents, init, noise, mask, next_t, scheduler):
        if next_t is None:
            return None
        earlier = ts[max(0, list(ts).index(next_t) - 1)]
        return same_t(latents, init, noise, mask, next_t, scheduler, t=earlier)

    return Exercise(
        "put_back", reference, cases,
        mistakes=[
            (lambda *a: same_t(*a, swap=True), "the mask is 1 where we repaint: the new "
                                               "latents go there, the original elsewhere"),
            (lambda *a: same_t(*a, clean=True), "the latents are still noisy after this step: "
                                                "noise the original to next_t with "
                                                "scheduler.add_noise before putting it back"),
            (lambda lat, *a: lat, "put back the kept region: (1 − mask) · known + mask · latents"),
            (previous, "after the step the latents are at the level of next_t, not of the step "
                       "just done"),
            (lambda lat, init, noise, mask, t, s: s.add_noise(init, noise, t.reshape(1))
             if t is not None else init,
             "that replaces everything: keep the new latents where the mask is 1"),
        ])


# ----------------------------------------------------------------------------- 08_speed

def _timed_calls(f, durations, repeats):
    """Run ``f(fn, repeats)`` where the n-th call of ``fn`` takes ``durations[n]`` seconds (the
    last one repeats). ``fn`` really sleeps, but while ``f`` runs the clocks of ``time`` (and
    ``timeit``) leave out what a busy machine adds to each sleep, so a correct answer comes out
    the same on a loaded CI runner as on an idle laptop."""
    import time
    import timeit
    from unittest import mock

    real = time.perf_counter
    late = 0.0
    calls = 0

    def fn():
        nonlocal late, calls
        wanted = durations[min(calls, len(durations) - 1)]
        start = real()
        time.sleep(wanted)
        late += real() - start - wanted
        calls += 1

    def steady(clock):
        return lambda: clock() - late

    clocks = {name: steady(getattr(time, name)) for name in ("perf_counter", "monotonic", "time")}
    with mock.patch.multiple(time, **clocks), \
            mock.patch.object(timeit, "default_timer", clocks["perf_counter"]):
        return f(fn, repeats)


@_grader
def cold_and_warm(pipe) -> Exercise:
    """Exercise: ``cold_and_warm(fn, repeats)`` → ``(first_call_seconds, median_seconds)``:
    time one warm-up call alone, then the median of ``repeats`` further calls."""
    import statistics
    import time

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def reference(fn, repeats):
        return timed(fn), statistics.median(timed(fn) for _ in range(repeats))

    def mean_of_rest(fn, repeats):
        return timed(fn), statistics.mean(timed(fn) for _ in range(repeats))

    def no_warmup(fn, repeats):
        runs = [timed(fn) for _ in range(repeats)]
        return runs[0], statistics.median(runs)

    def all_together(fn, repeats):
        runs = [timed(fn) for _ in range(repeats + 1)]
        return runs[0], statistics.mean(runs)

    # Each grading times a fresh function: a slow first call, then a mix. In the first plan the
    # median of the calls after the first differs from every mistake's figure.
    plan = [(0.30, 0.04, 0.24, 0.24, 0.04, 0.08), (0.40, 0.06, 0.18)]
    return Exercise(
        "cold_and_warm", reference, [(plan[0], 5), (plan[1], 2)],
        adapt=lambda f: lambda durations, repeats: _timed_calls(f, durations, repeats),
        mistakes=[
            (mean_of_rest, "use the median of the timed runs, not the mean: one slow run (a "
                           "hiccup of the machine) should not move the result"),
            (no_warmup, "time the first call apart (the warm-up), then `repeats` more calls for "
                        "the median — the first call is slower and must not be one of them"),
            (all_together, "keep the first call out of the summary: time it alone, then take "
                           "the median of the `repeats` calls after it"),
            (lambda fn, repeats: (timed(fn), min(timed(fn) for _ in range(repeats))),
             "that is the fastest run; report the median, the typical run"),
        ], atol=0.02, rtol=0.0)


@_grader
def weights_bytes(pipe) -> Exercise:
    """Exercise: ``weights_bytes(module, dtype)`` → bytes of the module's parameters once cast
    to ``dtype``."""
    def reference(module, dtype):
        return sum(p.numel() * dtype.itemsize for p in module.parameters())

    cases = [(pipe.unet, torch.float32), (pipe.unet, torch.float16),
             (pipe.text_encoder, torch.bfloat16)]
    return Exercise(
        "weights_bytes", reference, cases,
        mistakes=[
            (lambda m, d: sum(p.numel() for p in m.parameters()),
             "that is the number of parameters: multiply each by the bytes per element, "
             "dtype.itemsize (4 for float32, 2 for float16)"),
            (lambda m, d: sum(p.numel() * 4 for p in m.parameters()),
             "that counts 4 bytes per parameter whatever the dtype; use dtype.itemsize "
             "(4 for float32, 2 for float16 and bfloat16)"),
            (lambda m, d: reference(m, d) / 2 ** 20, "return bytes, not MiB"),
            (lambda m, d: reference(m, d) / 1e6, "return bytes, not MB"),
        ], atol=0, rtol=0)
