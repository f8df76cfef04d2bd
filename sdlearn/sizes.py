"""Picture sizes the VAE accepts: multiples of its factor, and the size a model was trained at.

A size far beyond the trained one is refused unless asked for (:func:`check_large`).

The VAE halves the picture once per down block, so heights and widths must be multiples of
``pipe.vae_scale_factor`` (8 for Stable Diffusion). Every such check in sdlearn is this one.

>>> check_size(64, 48, 8)
>>> check_size(60, 64, 8)
Traceback (most recent call last):
...
ValueError: height=60 is not a multiple of the VAE factor 8; use 56 or 64
>>> check_size(60, 70, 8, what="the image")
Traceback (most recent call last):
...
ValueError: the image is 70x60, not a multiple of the VAE factor 8: resize or crop it to 72x64
"""

from __future__ import annotations

import numbers
import warnings


def default_size(pipe) -> int:
    """The side of the pictures the model was trained on: its latent size times the VAE factor.

    This is the size ``pipe(...)`` draws when no ``height`` or ``width`` is given.
    """
    return pipe.unet.config.sample_size * pipe.vae_scale_factor


def check_size(height: int, width: int, factor: int, *, what: str | None = None,
               names: tuple[str, str] = ("height", "width"), fix: str = "") -> None:
    """Refuse a size that is not a multiple of the VAE ``factor``, naming the nearest that are.

    - ``what=None``: a size someone asked for, checked argument by argument (``names``):
      ``height=60 is not a multiple of the VAE factor 8; use 56 or 64``.
    - ``what="the image"`` (or ``"the mask"``): a given picture, with the nearest size to
      resize it to, and ``fix`` appended (for example the function that does it).
    """
    factor = int(factor)
    if what is None:
        for name, value in zip(names, (height, width), strict=True):
            if value % factor:
                lower = max(factor, value // factor * factor)
                raise ValueError(f"{name}={value} is not a multiple of the VAE factor {factor}; "
                                 f"use {lower} or {lower + factor}{fix}")
    elif height % factor or width % factor:
        fit_w, fit_h = (max(factor, round(v / factor) * factor) for v in (width, height))
        raise ValueError(f"{what} is {width}x{height}, not a multiple of the VAE factor "
                         f"{factor}: resize or crop it to {fit_w}x{fit_h}{fix}")


def request_size(pipe, height: int | None = None, width: int | None = None
                 ) -> tuple[int, int]:
    """``(height, width)`` for a picture someone asks for: ``None`` is the model's own size;
    anything else must be a positive int that is a multiple of the VAE factor.

    >>> import sdlearn
    >>> pipe = sdlearn.load_pipeline()
    >>> request_size(pipe, None, 48)
    (64, 48)
    >>> request_size(pipe, 0, 64)
    Traceback (most recent call last):
    ...
    ValueError: height=0: give a positive multiple of the VAE factor 8, or None for the model's...
    """
    size, factor = default_size(pipe), pipe.vae_scale_factor
    sides = []
    for name, value in (("height", height), ("width", width)):
        if value is None:
            sides.append(size)
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}={value!r} is not an int: give a whole number of pixels, "
                            f"e.g. {name}={size}")
        if value < 1:
            raise ValueError(f"{name}={value}: give a positive multiple of the VAE factor "
                             f"{factor}, or None for the model's size ({size})")
        sides.append(int(value))
    check_size(*sides, factor)
    return sides[0], sides[1]


# check_large refuses latents with more than this many times the area the model was trained on.
LARGE_AREA = 16


class LargeSizeWarning(UserWarning):
    """A size far beyond the model's training went ahead (``allow_large=True``): its cost."""


def check_large(pipe, height: int, width: int, *, allow_large: bool = False,
                what: str = "the picture") -> str | None:
    """Refuse a size whose latents have more than ``LARGE_AREA`` (16) times the area the model
    was trained on: such a run takes very long, may run out of memory, and the model has never
    seen pictures that big. The message says what it would cost and how to go ahead.

    With ``allow_large=True`` it goes ahead with a :class:`LargeSizeWarning` that says the cost
    (also returned); sizes within the limit return ``None``.

    >>> import sdlearn
    >>> pipe = sdlearn.load_pipeline()
    >>> check_large(pipe, 256, 256)  # 16 times the area of the trained 64x64: fine
    >>> check_large(pipe, 2048, 2048)
    Traceback (most recent call last):
    ...
    ValueError: the picture at 2048x2048 has 256x256 latents, 1,024× the area of the 64x64 ...
    """
    factor, side = pipe.vae_scale_factor, default_size(pipe)
    trained = pipe.unet.config.sample_size
    trained_h, trained_w = (trained, trained) if isinstance(trained, int) else trained
    lat_h, lat_w = int(height) // factor, int(width) // factor
    times = lat_h * lat_w / (trained_h * trained_w)
    if times <= LARGE_AREA:
        return None
    vae = pipe.vae
    activation = int(height) * int(width) * vae.config.block_out_channels[0] * vae.dtype.itemsize
    memory = f"{activation / 1e9:.2g} GB" if activation >= 1e9 else f"{activation / 1e6:.0f} MB"
    ratio = f"{times:,.0f}" if times >= 100 else f"{times:.3g}"
    cost = (f"{what} at {width}x{height} has {lat_w}x{lat_h} latents, {ratio}× the area of "
            f"the {side}x{side} pictures ({trained_w}x{trained_h} latents) the model was trained "
            f"on: each UNet step does about {ratio}× the work (its attention layers up to "
            f"{times ** 2:,.0f}×), and each full-size activation of the VAE takes {memory}")
    if allow_large:
        warnings.warn(cost, LargeSizeWarning, stacklevel=2)
        return cost
    raise ValueError(f"{cost}. Pass allow_large=True to run it anyway, or make it smaller "
                     f"(sdlearn.editing.crop_and_resize(image, {side}) resizes a picture)")
