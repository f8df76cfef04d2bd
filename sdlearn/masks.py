"""Inpainting masks: white (255) means repaint, black (0) means keep.

A mask is a binary PIL "L" image at the picture's size. Make one from a function (a rectangle,
an ellipse, a scene object's box, a file) or draw one with :class:`sdlearn.widgets.MaskEditor`.

>>> m = rectangle((64, 64), x0=8, x1=40, y0=16, y1=48)
>>> m.mode, m.size, m.getbbox()
('L', (64, 64), (8, 16, 40, 48))
>>> latent_mask(m, 8).squeeze().int().tolist()[2]
[0, 1, 1, 1, 1, 0, 0, 0]
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .sizes import check_size


class MaskThresholdWarning(UserWarning):
    """A mask with grey values was made binary (values ≥ 128 count as white: repaint)."""


def _size(size_or_image) -> tuple[int, int]:
    """``(width, height)`` from a size, a PIL image, an array or a tensor."""
    if isinstance(size_or_image, Image.Image):
        return size_or_image.size
    if isinstance(size_or_image, int):
        return size_or_image, size_or_image
    if isinstance(size_or_image, np.ndarray):
        h, w = size_or_image.shape[:2]
        return w, h
    if isinstance(size_or_image, torch.Tensor):
        h, w = size_or_image.shape[-2:]
        return int(w), int(h)
    w, h = size_or_image
    return int(w), int(h)


def _as_2d(arr: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)`` as ``(H, W)``."""
    if arr.ndim < 2 or int(np.prod(arr.shape[:-2])) != 1:
        raise ValueError(f"mask has shape {arr.shape}: give a 2-D array (height, width)")
    return arr.reshape(arr.shape[-2:])


def _from_bool(keep: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(keep, 255, 0).astype(np.uint8), mode="L")


def _pixel_centres(size) -> tuple[np.ndarray, np.ndarray]:
    """The pixel centres' x (a row, 1 × width) and y (a column, height × 1): they broadcast
    to the picture's shape without making two full-size grids (a 4000x3000 picture's are
    200 MB)."""
    w, h = _size(size)
    xs = np.arange(w, dtype=np.float64)[None, :] + 0.5
    ys = np.arange(h, dtype=np.float64)[:, None] + 0.5
    return xs, ys


def _check_box(shape: str, size, x0, x1, y0, y1) -> None:
    """Refuse a box given right-to-left (or bottom-to-top), or one wholly off the picture."""
    for low, high, a, b in ((x0, x1, "x0", "x1"), (y0, y1, "y0", "y1")):
        if low > high:
            raise ValueError(f"{a}={low} is past {b}={high}: the corners are reversed, so the "
                             f"{shape} would be empty; give {a} < {b}, e.g. {a}={high}, "
                             f"{b}={low}")
    w, h = _size(size)
    if x0 < x1 and y0 < y1 and (x1 <= 0 or x0 >= w or y1 <= 0 or y0 >= h):
        raise ValueError(f"the {shape} x {x0}..{x1}, y {y0}..{y1} lies outside the {w}x{h} "
                         f"picture, so it would be empty: keep x within 0..{w} and y within "
                         f"0..{h}")


def rectangle(size, x0: float, x1: float, y0: float, y1: float) -> Image.Image:
    """White where ``x0 ≤ x < x1`` and ``y0 ≤ y < y1`` (pixel centres), for a ``size`` or image.

    Corners given the wrong way round (``x0 > x1``), or a box wholly off the picture, are
    refused: the mask would be empty.

    >>> rectangle(64, 0, 32, 0, 64).getbbox()   # the left half
    (0, 0, 32, 64)
    """
    _check_box("rectangle", size, x0, x1, y0, y1)
    xs, ys = _pixel_centres(size)
    return _from_bool((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1))


def ellipse(size, x0: float, x1: float, y0: float, y1: float) -> Image.Image:
    """White inside the ellipse inscribed in the box ``[x0, x1) × [y0, y1)``.

    >>> ellipse(64, 16, 48, 16, 48).getbbox()
    (16, 16, 48, 48)
    """
    _check_box("ellipse", size, x0, x1, y0, y1)
    xs, ys = _pixel_centres(size)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if rx <= 0 or ry <= 0:
        return _from_bool(np.zeros((ys.shape[0], xs.shape[1]), dtype=bool))
    return _from_bool(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 < 1)


def object_box(scene, index: int, size: int = 64, *, margin: float = 2) -> Image.Image:
    """A rectangle around object ``index`` of a shapes-world scene, ``margin`` pixels wider.

    >>> from sdlearn.shapes import Scene, ShapeObject
    >>> scene = Scene("white", [ShapeObject("circle", "red", "big", "center")])
    >>> object_box(scene, 0).getbbox()
    (21, 21, 43, 43)
    """
    if not 0 <= index < len(scene.objects):
        raise ValueError(f"index={index}: the scene has {len(scene.objects)} object(s)")
    obj = scene.objects[index]
    (cx, cy), half = obj.center, obj.extent / 2
    return rectangle(size, (cx - half) * size - margin, (cx + half) * size + margin,
                     (cy - half) * size - margin, (cy + half) * size + margin)


def invert(mask) -> Image.Image:
    """Swap repaint and keep."""
    return _from_bool(np.asarray(binary(mask)) == 0)


def binary(mask, *, threshold: int = 128) -> Image.Image:
    """``mask`` as a binary "L" image; grey values are thresholded with a warning that says so.

    Accepts a PIL image (RGB, RGBA and "1" are converted to grey), a 2-D array or tensor
    (bool, 0/1 or 0/255). ``threshold`` is in 1..255: values at or above it repaint.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or \
            not 1 <= threshold <= 255:
        raise ValueError(f"threshold={threshold!r}: give a grey level in 1..255 (values at or "
                         "above it repaint; 128 is the middle)")
    _check_kind(mask)
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if isinstance(mask, np.ndarray):
        arr = _as_2d(mask)
        if arr.dtype == bool or (arr.size and arr.max() <= 1):
            arr = arr.astype(np.float64) * 255
        arr = np.asarray(arr, dtype=np.float64)
    elif isinstance(mask, Image.Image):
        arr = np.asarray(mask.convert("L"), dtype=np.float64)
    grey = (arr > 0) & (arr < 255)
    if grey.any():
        warnings.warn(f"the mask is not binary ({int(grey.sum())} pixels between black and "
                      f"white); made binary: values ≥ {threshold} repaint, the rest is kept",
                      MaskThresholdWarning, stacklevel=2)
    return _from_bool(arr >= threshold)


def _check_kind(mask) -> None:
    if not isinstance(mask, Image.Image | np.ndarray | torch.Tensor):
        fix = ("np.array(mask) makes one of a list" if isinstance(mask, list | tuple) else
               "e.g. sdlearn.masks.rectangle(image, x0, x1, y0, y1)")
        kind = "None" if mask is None else f"a {type(mask).__name__}"
        raise TypeError(f"mask is {kind}: "
                        f"give a PIL image (white = repaint) or a 2-D array ({fix})")


def check_mask(mask, image) -> Image.Image:
    """``mask`` made binary, after checking that it has the size of ``image``."""
    _check_kind(mask)
    mw, mh = _size(_as_2d(mask) if isinstance(mask, np.ndarray) else mask)
    iw, ih = _size(image)
    if (mw, mh) != (iw, ih):
        raise ValueError(f"the mask is {mw}x{mh} but the image is {iw}x{ih}: make the mask at "
                         f"the image's size, e.g. mask.resize(({iw}, {ih}), Image.NEAREST), or "
                         "pass the image itself as the size (sdlearn.masks.rectangle(image, ...))")
    return binary(mask)


def load_mask(path, size=None) -> Image.Image:
    """A mask from a picture file (white = repaint); resized (nearest) to ``size`` if given."""
    mask = Image.open(Path(path)).convert("L")
    if size is not None:
        mask = mask.resize(_size(size), Image.NEAREST)
    return binary(mask)


def mask_tensor(mask) -> torch.Tensor:
    """A binary mask as a float tensor ``(1, 1, H, W)``: 1 = repaint, 0 = keep."""
    arr = np.asarray(binary(mask), dtype=np.float32) / 255
    return torch.from_numpy(arr)[None, None]


def latent_mask(mask, factor: int, *, mode: str = "nearest") -> torch.Tensor:
    """The mask at the latents' size, ``(1, 1, H/factor, W/factor)``.

    ``mode="nearest"`` is what diffusers' inpainting pipeline does: each latent cell takes the
    value of one pixel of its block (the top-left one), so thin strokes can vanish.
    ``mode="any"`` repaints a cell if any pixel of its block is white (a max-pool).
    """
    m = mask_tensor(mask)
    h, w = m.shape[-2:]
    check_size(h, w, factor, what="the mask")
    if mode == "nearest":
        return F.interpolate(m, size=(h // factor, w // factor))
    if mode == "any":
        return F.max_pool2d(m, factor)
    raise ValueError(f"mode={mode!r}: use 'nearest' (as diffusers) or 'any'")


def kept_change(after, before, mask) -> float:
    """The mean change of the kept pixels (where ``mask`` is black), in levels of 0–255.

    >>> kept_change(np.full((2, 2, 3), 10), np.zeros((2, 2, 3)), np.array([[0, 255], [0, 0]]))
    10.0
    """
    keep = np.asarray(mask) == 0
    return float(np.abs(np.asarray(after, float) - np.asarray(before, float))[keep].mean())


def kept_psnr(after, before, mask) -> float:
    """The kept pixels' peak signal-to-noise ratio against ``before``, in dB (range 255).

    The error is floored at 1e-12, so identical pixels read 168 dB.
    """
    keep = np.asarray(mask) == 0
    mse = ((np.asarray(after, float) - np.asarray(before, float))[keep] ** 2).mean()
    return 10 * float(np.log10(255 ** 2 / max(mse, 1e-12)))


def seam(image, mask, factor: int) -> float:
    """The seam: the mean colour difference (0–255) between neighbouring pixels across the
    edges of the *latent* mask (its ``factor``×``factor`` blocks), where inpainting joins the
    new region to the kept one. A picture with no edge there reads low.

    >>> flat = np.zeros((16, 16, 3))
    >>> seam(flat, rectangle(16, 0, 8, 0, 16), 8)
    0.0
    """
    cells = latent_mask(mask, factor)[0, 0]
    m = cells.repeat_interleave(factor, 0).repeat_interleave(factor, 1).numpy() > 0
    a = np.asarray(image, float)
    across_x, across_y = m[:, 1:] != m[:, :-1], m[1:, :] != m[:-1, :]
    dx = np.abs(a[:, 1:] - a[:, :-1]).mean(axis=2)[across_x]
    dy = np.abs(a[1:, :] - a[:-1, :]).mean(axis=2)[across_y]
    return float(np.concatenate([dx, dy]).mean())


# Cyan: no colour of the shapes world is near it, so the tint reads on every object.
OVERLAY_COLOR = (0, 230, 230)


def overlay(image, mask, *, color=OVERLAY_COLOR, opacity: float = 0.5,
            outline: bool = True) -> Image.Image:
    """The picture with the repaint region tinted by ``color``, to see a mask in place.

    With ``outline`` the mask's edge (its white pixels next to a black one) is drawn in a
    black-and-white checker, which reads on any colour, the tint's included.

    >>> from PIL import Image
    >>> out = overlay(Image.new("RGB", (8, 8), (220, 38, 38)), rectangle(8, 0, 4, 0, 8))
    >>> out.getpixel((7, 0)), out.getpixel((1, 3))  # kept as it was; tinted inside
    ((220, 38, 38), (110, 134, 134))
    """
    from .images import to_pil

    img = to_pil(image).convert("RGB")
    white = np.asarray(check_mask(mask, img)) > 0
    m = white[..., None] * float(opacity)
    arr = np.asarray(img, dtype=np.float64) * (1 - m) + np.asarray(color, dtype=np.float64) * m
    if outline:
        padded = np.pad(white, 1, mode="edge")
        inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
        ys, xs = np.nonzero(white & ~inner)  # only the edge's pixels: cheap on big pictures
        arr[ys, xs] = np.where(((xs + ys) % 2 == 0)[:, None], 255.0, 0.0)
    return Image.fromarray(np.rint(arr).astype(np.uint8))
