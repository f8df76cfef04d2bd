"""Editing pictures: img2img by hand, and the checks its inputs need.

img2img starts the sampling loop part-way: encode the picture, noise its latents to the level
of a later timestep, and denoise from there. ``strength`` is the fraction of the schedule that
is run: 1 runs all of it, from the noisiest step (where a little of the picture still shows);
a strength too small to run a single step is refused.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline(scheduler="ddim")
>>> [int(t) for t in img2img_timesteps(pipe.scheduler, 10, 0.3)]
[201, 101, 1]

PNDM lists one timestep twice (its warm-up), so the same slice keeps one more entry:

>>> [int(t) for t in img2img_timesteps(sdlearn.load_pipeline(scheduler="pndm").scheduler, 10, 0.3)]
[301, 201, 101, 1]
"""

from __future__ import annotations

import numbers
import warnings

import torch
import torch.nn.functional as F
from PIL import Image

from .depth import depth_input, is_depth_model
from .device import randn
from .images import _as_array, check_float_image, to_pil
from .masks import check_mask, latent_mask, mask_tensor
from .sampling import (
    _a,
    _check_generator,
    check_number,
    check_steps,
    denoise,
    encode_prompts,
    guided_noise,
    step_kwargs,
)
from .sizes import check_large, check_size


def check_strength(strength: float) -> float:
    """``strength`` as a float in [0, 1], or an error that says so (a string is no number)."""
    value = check_number("strength", strength)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"strength={strength} is outside [0, 1]: it is the fraction of the "
                         "denoising schedule to run (1 runs all of it)")
    return value


def img2img_timesteps(scheduler, steps: int, strength: float):
    """The timesteps img2img runs: the last ``int(steps * strength)`` of ``steps``.

    Sets the scheduler's timesteps (and, where it has one, its begin index) as diffusers'
    img2img pipeline does.
    """
    strength = check_strength(strength)
    steps = check_steps(steps)
    scheduler.set_timesteps(steps)
    run = min(int(steps * strength), steps)
    if run < 1:
        raise ValueError(f"strength={strength} with steps={steps} runs no step at all "
                         f"(int(steps * strength) = 0): raise strength to at least "
                         f"{1 / steps:.3g}, or use more steps")
    start = steps - run
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    return scheduler.timesteps[start * scheduler.order:]


def signal_kept(scheduler, steps: int, strength: float) -> float:
    """How much of the picture img2img starts from: √ᾱ at the first timestep that runs.

    The start is ``√ᾱ_t · x0 + √(1 − ᾱ_t) · ε``; this is the factor on ``x0``. It reads the
    scheduler's own timesteps, so PNDM's repeated warm-up step (one step noisier at the same
    strength) is counted.

    >>> import sdlearn
    >>> config = sdlearn.load_pipeline().scheduler.config
    >>> [round(signal_kept(sdlearn.make_scheduler(name, config), 10, 0.3), 3)
    ...  for name in ("ddim", "pndm")]
    [0.867, 0.767]
    """
    t = int(img2img_timesteps(scheduler, steps, strength)[0])
    return scheduler.alphas_cumprod[t].float().sqrt().item()


def _pictures(pipe, image, prompt, generator, allow_large: bool):
    """The pictures to edit as one VAE batch, and one prompt per picture.

    ``image`` is one picture or a list of them; ``prompt`` one string for all, or a list with one
    per picture; ``generator`` none, one, or a list with one per picture (each picture then
    gets the noise it would get alone).
    """
    _check_generator(generator)
    if isinstance(image, list | tuple):
        if not image:
            raise ValueError("image is an empty list: give a picture, or a list of pictures")
        x = torch.cat([prepare_image(pipe, im, allow_large=allow_large) for im in image])
    else:
        x = prepare_image(pipe, image, allow_large=allow_large)
    prompts = [prompt] * len(x) if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string, or a list of strings with one per picture; "
                         f"got {type(prompt).__name__}")
    if len(prompts) != len(x):
        raise ValueError(f"{len(prompts)} prompts for {len(x)} pictures: give one prompt per "
                         "picture, or a single string for all of them")
    if isinstance(generator, list) and len(generator) != len(x):
        raise ValueError(f"got {len(generator)} generators for {len(x)} pictures: give one per "
                         "picture, or a single generator")
    return x, prompts


def prepare_image(pipe, image, *, allow_large: bool = False) -> torch.Tensor:
    """A picture as the VAE's input: RGB, a size that fits the VAE, values in [-1, 1].

    RGBA and greyscale pictures are converted (with a warning; 16-bit greyscale is scaled to
    8 bits); a size that is not a multiple of the VAE factor is refused with the nearest sizes
    that are, and one far beyond the model's unless ``allow_large``
    (:func:`sdlearn.sizes.check_large`). A float array must hold [0, 1]; a tensor, [-1, 1].
    A tensor with no value below 0 is refused: it looks like torchvision's [0, 1], which the VAE
    would see washed out (a very bright picture in [-1, 1] goes in as ``sdlearn.to_pil(x)``).
    """
    if isinstance(image, torch.Tensor):
        return _tensor_image(pipe, image, allow_large)
    if isinstance(image, Image.Image) and image.mode != "RGB":
        scaled = " (16-bit values scaled to 8 bits)" if image.mode.startswith("I;16") else ""
        warnings.warn(f"the image was {image.mode}; converted to RGB{scaled}", stacklevel=2)
    elif not isinstance(image, Image.Image):
        check_float_image(_as_array(image))
    image = to_pil(image)
    if isinstance(image, list):
        raise ValueError(f"prepare_image takes one picture, got {len(image)}: edit them one at "
                         "a time")
    h, w = image.height, image.width
    _check_image_size(pipe, h, w, allow_large)
    # The pipeline's own preprocessing: the same values as sdlearn.to_tensor (lesson 01), in
    # the same memory layout, so the VAE rounds exactly as it does inside diffusers.
    return pipe.image_processor.preprocess(image).to(pipe.device, pipe.vae.dtype)


def _check_image_size(pipe, h: int, w: int, allow_large: bool) -> None:
    if not h or not w:
        raise ValueError(f"the image is {w}x{h}: it has no pixels; give a picture of the "
                         "model's size (sdlearn.editing.crop_and_resize(image, size) makes one)")
    check_large(pipe, h, w, allow_large=allow_large, what="the image")
    check_size(h, w, pipe.vae_scale_factor, what="the image",
               fix=" (sdlearn.editing.crop_and_resize)")


def _tensor_image(pipe, x: torch.Tensor, allow_large: bool = False) -> torch.Tensor:
    """A tensor picture in sdlearn's convention ((B,) 3, H, W in [-1, 1]), checked.

    A tensor with nothing below 0 is refused: it looks like a [0, 1] tensor (torchvision's
    convention), which the VAE would see washed out. A very bright picture in [-1, 1] has no
    value below 0 either; pass that one as a PIL image (``sdlearn.to_pil(x)``).
    """
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"a tensor image must be (3, H, W) or (B, 3, H, W), got "
                         f"{tuple(x.shape)}: latents go to the sampling loop, not here")
    _check_image_size(pipe, *x.shape[-2:], allow_large)
    if not len(x):
        raise ValueError(f"the tensor image {tuple(x.shape)} holds no picture (a batch of 0)")
    if not torch.isfinite(x).all():
        raise ValueError("the tensor image holds NaN or infinite values: a picture needs a "
                         "number in [-1, 1] per pixel")
    low, high = x.min().item(), x.max().item()
    if low < -1.001 or high > 1.001:
        raise ValueError(f"a tensor image holds values in [-1, 1] (sdlearn.to_tensor); this one "
                         f"spans [{low:.3g}, {high:.3g}]: from [0, 1] use x * 2 - 1, from "
                         "[0, 255] use x / 127.5 - 1")
    if not x.is_floating_point():
        raise ValueError(f"a tensor image holds floats in [-1, 1] (sdlearn.to_tensor); this one "
                         f"is {x.dtype}: from 0/1 values use x.float() * 2 - 1")
    if low >= 0:
        raise ValueError(f"a tensor image holds values in [-1, 1] (sdlearn.to_tensor); this one "
                         f"spans [{low:.3g}, {high:.3g}], nothing below 0, as a [0, 1] tensor "
                         "(torchvision's convention) does: pass x * 2 - 1. (A very bright "
                         "picture in [-1, 1] has nothing below 0 either: pass sdlearn.to_pil(x))")
    return x.to(pipe.device, pipe.vae.dtype)


@torch.no_grad()
def img2img(pipe, image, prompt: str | list[str], *, strength: float = 0.8, steps: int = 50,
            guidance_scale: float = 7.5, negative_prompt: str | None = None,
            generator: torch.Generator | None = None, depth_map: torch.Tensor | None = None,
            allow_large: bool = False) -> torch.Tensor:
    """img2img by hand; the same latents as ``StableDiffusionImg2ImgPipeline`` at one seed.

    With a depth model (5 channels, ``load_pipeline(task="depth")``) it is
    ``StableDiffusionDepth2ImgPipeline``: the UNet reads the pictures' depth at every step
    (:func:`sdlearn.depth.depth_input`), estimated, or ``depth_map`` ``(B, H, W)`` when given.

    ``image`` may be a list of pictures, with ``prompt`` and ``generator`` one per picture (or
    one for all): they are edited in one batch, each with the noise its own generator gives it
    alone, so a batch is the separate calls up to rounding, and several times faster. A picture
    far beyond the model's size is refused unless ``allow_large``.

    >>> import sdlearn
    >>> pipe, pictures = sdlearn.load_pipeline(), [demo_image("house").resize((64, 64))] * 2
    >>> img2img(pipe, pictures, ["a red circle", "a blue square"], steps=4,
    ...         generator=sdlearn.make_generators([0, 1])).shape
    torch.Size([2, 4, 8, 8])
    """
    x, prompt = _pictures(pipe, image, prompt, generator, allow_large)
    timesteps = img2img_timesteps(pipe.scheduler, steps, strength)
    uncond, cond = encode_prompts(pipe, prompt, negative_prompt)
    extra = None
    if is_depth_model(pipe):
        extra = depth_input(pipe, x, depth_map)
    elif depth_map is not None:
        raise ValueError("depth_map is for depth models, and this UNet reads no depth: load "
                         "one with sdlearn.load_pipeline(task='depth'), or leave depth_map out")
    init, noise = encode_image(pipe, x, generator)
    latents = pipe.scheduler.add_noise(init, noise, timesteps[:1].repeat(len(init)))
    return denoise(pipe, latents, uncond, cond, timesteps, guidance_scale, generator=generator,
                   extra=extra)


def encode_image(pipe, x: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The picture's scaled latents (a sample of the posterior) and noise of their shape.

    Both drawn from ``generator`` in the order diffusers' img2img and inpainting pipelines do.
    """
    vae = pipe.vae
    init = _encode(vae, x, generator) * vae.config.scaling_factor
    return init, randn(init.shape, generator, device=init.device, dtype=init.dtype)


def _encode(vae, x: torch.Tensor, generator) -> torch.Tensor:
    """A posterior sample of ``x``'s latents; with a list of generators one picture at a time,
    as the pipelines do (so that they round the same)."""
    if isinstance(generator, list):
        return torch.cat([vae.encode(x[i:i + 1]).latent_dist.sample(g)
                          for i, g in enumerate(generator)])
    return vae.encode(x).latent_dist.sample(generator)


def blend(latents: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inpainting's blend: the new ``latents`` where ``mask`` is 1, the ``known`` ones elsewhere."""
    return (1 - mask) * known + mask * latents


def renoise(scheduler, latents: torch.Tensor, t_from, t_to, generator=None) -> torch.Tensor:
    """Noise ``latents`` from the level of timestep ``t_from`` up to the higher ``t_to``.

    One forward-diffusion jump: ``x_to = √(ᾱ_to/ᾱ_from)·x_from + √(1 − ᾱ_to/ᾱ_from)·ε``.
    This is what resampling (RePaint) does before it repeats a step.
    """
    abar = scheduler.alphas_cumprod.float()  # 1 − ratio in float16 would lose its digits
    ratio = abar[int(t_to)] / abar[int(t_from)]
    keep, add = ratio.sqrt().to(latents.dtype), (1 - ratio).sqrt().to(latents.dtype)
    eps = randn(latents.shape, generator, device=latents.device, dtype=latents.dtype)
    return keep * latents + add * eps


# Schedulers whose step() keeps no memory of earlier steps, so a step can be repeated.
REPEATABLE_STEP = ("DDIMScheduler",)


@torch.no_grad()
def inpainting_channels(pipe, x: torch.Tensor, masks: torch.Tensor, generator=None
                        ) -> torch.Tensor:
    """The 5 channels an inpainting UNet reads beside the latents: the mask, the masked picture.

    ``x``: the pictures as the VAE takes them, ``(B, 3, H, W)`` in [-1, 1]; ``masks``: pixel
    masks ``(B, 1, H, W)`` of 0 (keep) and 1 (repaint). As ``StableDiffusionInpaintPipeline``
    makes them: the mask at the latents' size (nearest), and the latents of the masked picture
    ``x * (masks < 0.5)`` (the repainted region mid-grey), a posterior sample drawn from
    ``generator`` (one, or a list with one per picture), scaled.

    >>> import sdlearn
    >>> inpainter = sdlearn.load_pipeline(task="inpainting")
    >>> x, masks = torch.zeros(2, 3, 64, 64), torch.ones(2, 1, 64, 64)
    >>> inpainting_channels(inpainter, x, masks, torch.Generator().manual_seed(0)).shape
    torch.Size([2, 5, 8, 8])
    """
    vae = pipe.vae
    latents = _encode(vae, x * (masks.to(x) < 0.5), generator) * vae.config.scaling_factor
    small = F.interpolate(masks.to(x), size=latents.shape[-2:])
    return torch.cat([small.to(latents.dtype), latents], dim=1)


def is_inpainting_model(pipe) -> bool:
    """True if the UNet reads the inpainting input (9 channels: latents, mask, masked picture)."""
    return pipe.unet.config.in_channels == 2 * pipe.vae.config.latent_channels + 1


@torch.no_grad()
def inpaint(pipe, image, mask, prompt: str | list[str], *, strength: float = 1.0, steps: int = 50,
            guidance_scale: float = 7.5, negative_prompt: str | None = None,
            generator: torch.Generator | None = None, num_resamples: int = 1,
            on_step=None, allow_large: bool = False) -> torch.Tensor:
    """Inpainting, step for step as ``StableDiffusionInpaintPipeline``; returns the final latents.

    With an ordinary (4-channel) UNet, by blending: after every step the region to keep is put
    back, the picture's latents noised to the level of the next step. ``num_resamples`` > 1
    repeats each step that many times (RePaint): the result is noised back up and denoised
    again, so the new region can agree with the kept one.
    With an inpainting model (9 channels, ``load_pipeline(task="inpainting")``) nothing is put
    back: the UNet reads the mask and the masked picture at every step
    (:func:`inpainting_channels`), and repaints to match by itself.
    ``on_step(i, t, latents, noise_pred)`` is called after each step, as in
    :func:`sdlearn.sampling.denoise`. A mask that repaints nothing gets a warning (white means
    repaint: an all-black one, or an inverted one, keeps the whole picture).

    ``image`` and ``mask`` may be lists, one mask per picture (or one mask for all), with
    ``prompt`` and ``generator`` one per picture as in :func:`img2img`: one batch, each picture
    with the noise it gets alone.
    """
    strength = check_strength(strength)
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, numbers.Integral):
        raise TypeError(f"num_resamples={num_resamples!r} is {_a(num_resamples)}: give a whole "
                        "number, 1 (no resampling) or more")
    if num_resamples < 1:
        raise ValueError(f"num_resamples={num_resamples}: use 1 (no resampling) or more")
    name = type(pipe.scheduler).__name__
    if num_resamples > 1 and name not in REPEATABLE_STEP:
        raise ValueError(f"num_resamples={num_resamples} repeats each step, which needs a "
                         f"scheduler whose step keeps no state; {name} does: use "
                         "sdlearn.with_scheduler(pipe, 'ddim')")
    dedicated = is_inpainting_model(pipe)
    if num_resamples > 1 and dedicated:
        raise ValueError(f"num_resamples={num_resamples} repeats blended steps, and this "
                         "inpainting model (9 input channels) does not blend: leave "
                         "num_resamples at 1, or resample with an ordinary model")
    x, prompt = _pictures(pipe, image, prompt, generator, allow_large)
    timesteps = img2img_timesteps(pipe.scheduler, steps, strength)
    pixels = _pixel_masks(pipe, mask, x, batch=isinstance(image, list | tuple))
    uncond, cond = encode_prompts(pipe, prompt, negative_prompt)
    if dedicated:
        return _inpaint_dedicated(pipe, x, pixels, uncond, cond, timesteps, strength,
                                  guidance_scale, generator, on_step)
    m = F.interpolate(pixels, size=(x.shape[-2] // pipe.vae_scale_factor,
                                    x.shape[-1] // pipe.vae_scale_factor))
    init, noise = encode_image(pipe, x, generator)
    # The pipeline copies the latents into a plain (not channels-last) layout; the same layout
    # makes the UNet round exactly as it does there.
    init = init.contiguous()
    scheduler = pipe.scheduler
    if strength == 1.0:
        latents = noise * scheduler.init_noise_sigma
    else:
        latents = scheduler.add_noise(init, noise, timesteps[:1].repeat(len(init)))
    kwargs = step_kwargs(scheduler, generator)

    def put_back(i, t, stepped, noise_pred):
        last = i == len(timesteps) - 1
        known = init if last else scheduler.add_noise(init, noise, timesteps[i + 1:i + 2])
        stepped = blend(stepped, known, m)
        for _ in range(int(num_resamples) - 1 if not last else 0):  # RePaint: back up, again
            latents = renoise(scheduler, stepped, timesteps[i + 1], t, generator)
            noise_pred = guided_noise(pipe, latents, t, uncond, cond, guidance_scale)
            stepped = blend(scheduler.step(noise_pred, t, latents, **kwargs).prev_sample, known, m)
        if on_step is not None:
            replaced = on_step(i, t, stepped, noise_pred)
            stepped = stepped if replaced is None else replaced
        return stepped

    return denoise(pipe, latents, uncond, cond, timesteps, guidance_scale, generator=generator,
                   on_step=put_back)


def _inpaint_dedicated(pipe, x, pixels, uncond, cond, timesteps, strength, guidance_scale,
                       generator, on_step):
    """An inpainting model's loop: the start as the pipeline draws it, then the plain loop with
    the mask and the masked picture as extra channels."""
    scheduler = pipe.scheduler
    if strength == 1.0:  # the pipeline encodes no picture here: the noise is the first draw
        f, c = pipe.vae_scale_factor, pipe.vae.config.latent_channels
        noise = randn((len(x), c, x.shape[-2] // f, x.shape[-1] // f), generator,
                      device=x.device, dtype=x.dtype)
        latents = noise * scheduler.init_noise_sigma
    else:
        init, noise = encode_image(pipe, x, generator)
        latents = scheduler.add_noise(init.contiguous(), noise, timesteps[:1].repeat(len(init)))
    extra = inpainting_channels(pipe, x, pixels, generator)
    return denoise(pipe, latents, uncond, cond, timesteps, guidance_scale, generator=generator,
                   on_step=on_step, extra=extra)


def _pixel_masks(pipe, mask, x: torch.Tensor, batch: bool) -> torch.Tensor:
    """The masks as tensors ``(B, 1, H, W)``: one for all pictures, or (for a batch) one per
    picture; a mask that repaints no latent cell gets a warning."""
    masks = mask if batch and isinstance(mask, list | tuple) else [mask]
    if len(masks) not in (1, len(x)):
        raise ValueError(f"got {len(masks)} masks for {len(x)} pictures: give one mask per "
                         "picture, or a single mask for all of them")
    pixels = []
    for i, one in enumerate(masks):
        binary_mask = check_mask(one, x[i:i + 1])
        if not latent_mask(binary_mask, pipe.vae_scale_factor).any():
            _warn_nothing_to_repaint(binary_mask, pipe.vae_scale_factor)
        pixels.append(mask_tensor(binary_mask))
    pixels = torch.cat(pixels).to(pipe.device, x.dtype)
    return pixels.expand(len(x), -1, -1, -1) if len(pixels) == 1 else pixels


def _warn_nothing_to_repaint(mask, factor: int) -> None:
    if mask.getbbox() is None:
        why = ("the mask is all black, so it keeps the whole picture and nothing is repainted "
               "(white means repaint: was it inverted? sdlearn.masks.invert(mask))")
    else:
        why = (f"the mask's white pixels miss every latent cell (each {factor}x{factor} block "
               "takes its top-left pixel, as in diffusers), so nothing is repainted: make the "
               f"white region larger (sdlearn.masks.latent_mask(mask, {factor}) shows the cells "
               "that are repainted)")
    warnings.warn(why, stacklevel=2)


def crop_and_resize(image, size: int | tuple[int, int], *, zoom: float = 1.0,
                    center: tuple[float, float] = (0.5, 0.5)) -> Image.Image:
    """Crop a picture to the aspect of ``size`` and resize it: any picture becomes a valid input.

    ``zoom`` ≥ 1 crops tighter; ``center`` (fractions of width and height) says where.

    >>> crop_and_resize(Image.new("RGB", (300, 200)), 64).size
    (64, 64)
    """
    img = to_pil(image)
    sides = [size, size] if not isinstance(size, tuple | list) else list(size)
    if len(sides) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                              or v < 1 for v in sides):
        raise ValueError(f"size={size!r}: give a positive whole number of pixels, or a "
                         "(width, height) pair of them, e.g. 64")
    tw, th = (int(v) for v in sides)
    if not img.width or not img.height:
        raise ValueError(f"the image is {img.width}x{img.height}: it has no pixels to crop")
    if zoom < 1:
        raise ValueError(f"zoom={zoom} must be 1 or more (1 keeps the largest crop)")
    scale = min(img.width / tw, img.height / th) / zoom
    cw, ch = tw * scale, th * scale
    cx = min(max(center[0] * img.width, cw / 2), img.width - cw / 2)
    cy = min(max(center[1] * img.height, ch / 2), img.height - ch / 2)
    box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
    return img.resize((tw, th), Image.LANCZOS, box=box)


def demo_image(name: str = "house") -> Image.Image:
    """A picture that ships with sdlearn (``data/images/NAME.png``), e.g. ``demo_image()``."""
    from .paths import data_path

    path = data_path("images", f"{name}.png")
    if not path.exists():
        names = sorted(p.stem for p in path.parent.glob("*.png"))
        raise ValueError(f"no demo image {name!r}; there are: {', '.join(names)}")
    return Image.open(path).convert("RGB")
