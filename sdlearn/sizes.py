"""Picture sizes the VAE accepts: multiples of its factor, and the size a model was trained at.

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
