"""Images: converting between tensors, NumPy and PIL, making grids, and showing them.

Conventions, the same as diffusers': a *tensor* image is float in [-1, 1] with shape
``(3, H, W)`` or ``(N, 3, H, W)``; a *NumPy* image is uint8 ``(H, W, 3)``; a *PIL* image is RGB.

>>> import torch
>>> to_pil(torch.zeros(3, 8, 8)).getpixel((0, 0))
(128, 128, 128)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


# PIL modes of 16 bits a pixel (how a 16-bit PNG opens): convert("RGB") would clip them at 255.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _rgb(image: Image.Image) -> Image.Image:
    """A PIL image as RGB; 16-bit greyscale is scaled to 8 bits (65535 → 255), not clipped."""
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.rint(np.asarray(image).astype(np.float64) / 257).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in ("I", "F") and image.width and image.height:
        low, high = image.getextrema()
        if low < 0 or high > 255:
            raise ValueError(f"the image is mode {image.mode} with values in [{low:g}, {high:g}]; "
                             "pictures hold 0..255: scale it first, e.g. for 16 bits "
                             "Image.fromarray((np.asarray(image) / 257).astype(np.uint8))")
    return image.convert("RGB")


def _as_array(image) -> np.ndarray:
    """``image`` (not PIL, not a tensor) as an array of pixels, or an error naming the fix."""
    if image is None or isinstance(image, str | bytes | os.PathLike):
        what = "None" if image is None else f"a path ({image!r})"
        fix = ": open the file first, PIL.Image.open(path)" if image is not None else ""
        raise TypeError(f"image is {what}{fix}; an image is a PIL image, a NumPy array "
                        "(H, W, 3) or a tensor (3, H, W) in [-1, 1]")
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"image is a {type(image).__name__} ({arr.dtype} values): give a PIL "
                        "image, a NumPy array (H, W, 3) or a tensor (3, H, W) in [-1, 1]")
    if arr.ndim not in (2, 3, 4) or (arr.ndim >= 3 and arr.shape[-1] not in (1, 3, 4)):
        hint = "; from (3, H, W) use arr.transpose(1, 2, 0)" if arr.ndim == 3 and \
            arr.shape[0] in (1, 3, 4) else ""
        raise ValueError(f"image array has shape {arr.shape}: NumPy images are (H, W, 3) (or "
                         f"(H, W), or a batch (N, H, W, 3)), channels last{hint}")
    return arr


def check_float_image(arr: np.ndarray) -> None:
    """Refuse a float array outside [0, 1], the float convention (``to_numpy`` would clip it).

    >>> check_float_image(np.full((2, 2, 3), 0.5))
    >>> check_float_image(np.full((2, 2, 3), 200.0))
    Traceback (most recent call last):
    ...
    ValueError: a float image holds values in [0, 1]; this one spans [200, 200]: from [0, 255]...
    """
    arr = np.asarray(arr)
    if arr.dtype.kind != "f" or not arr.size:
        return
    if not np.isfinite(arr).all():
        raise ValueError("the float image holds NaN or infinite values: a picture needs a "
                         "number in [0, 1] per pixel")
    low, high = float(arr.min()), float(arr.max())
    if low >= -1e-3 and high <= 1 + 1e-3:
        return
    if low >= 0 and high <= 255.5:
        fix = "from [0, 255] use x / 255 (or x.astype(np.uint8))"
    elif low >= -1.001 and high <= 1.001:
        fix = "from [-1, 1] use (x + 1) / 2"
    else:
        fix = "scale it to [0, 1] first"
    raise ValueError(f"a float image holds values in [0, 1]; this one spans [{low:.3g}, "
                     f"{high:.3g}]: {fix}")


def to_numpy(image) -> np.ndarray:
    """Any image (PIL, uint8 or float array in [0, 1], tensor in [-1, 1]) → uint8 ``(H, W, 3)``.

    A batch (4-D) gives ``(N, H, W, 3)``. Greyscale and RGBA PIL images are converted to RGB;
    16-bit ones (mode ``I;16``, as a 16-bit PNG opens) and uint16 arrays are scaled to 8 bits.
    Floats above 1 are clipped, as matplotlib does (to show an amplified difference, say);
    :func:`to_tensor` refuses them instead. Other integer arrays hold 0..255 (or 0/1).
    """
    if isinstance(image, Image.Image):
        return np.asarray(_rgb(image))
    if _is_tensor(image):
        import torch

        t = image.detach().float().cpu()
        if t.ndim not in (3, 4) or t.shape[-3] not in (1, 3):
            raise ValueError(f"image tensor of shape {tuple(t.shape)}: expected (3, H, W) or "
                             "(N, 3, H, W) with values in [-1, 1]")
        arr = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        arr = np.moveaxis(arr, -3, -1)
        return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr
    arr = _as_array(image)
    if arr.dtype == np.uint16:
        arr = np.rint(arr.astype(np.float64) / 257).astype(np.uint8)
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8 and arr.size and arr.max() > 1:
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high > 255:
            raise ValueError(f"an integer image holds values in [0, 255] (uint16: [0, 65535]); "
                             f"this one spans [{low}, {high}]: scale it to 0..255 first")
        arr = arr.astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0, 1) * 255).round().astype(np.uint8)
    if arr.ndim == 2 or arr.shape[-1] == 1:
        arr = np.repeat(arr if arr.ndim > 2 else arr[..., None], 3, axis=-1)
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    return arr


def to_pil(image) -> Image.Image | list[Image.Image]:
    """Any image → a PIL RGB image; a batch → a list of them."""
    if isinstance(image, Image.Image):
        return _rgb(image)
    if isinstance(image, list | tuple):
        return [to_pil(i) for i in image]
    arr = to_numpy(image)
    if arr.ndim == 4:
        return [Image.fromarray(a) for a in arr]
    return Image.fromarray(arr)


def to_tensor(image):
    """A PIL image or uint8 array → a float tensor in [-1, 1] of shape ``(1, 3, H, W)``.

    This is what ``vae.encode`` takes. A list of images gives a batch. A float array must hold
    [0, 1] (:func:`check_float_image`): one in [0, 255] is refused, not turned white.
    """
    import torch

    if isinstance(image, list | tuple):
        return torch.cat([to_tensor(i) for i in image])
    if _is_tensor(image):
        if not image.is_floating_point():
            raise ValueError(f"to_tensor got a {image.dtype} tensor: image tensors are float in "
                             "[-1, 1]; convert a uint8 tensor with x.float() / 127.5 - 1")
        return image if image.ndim == 4 else image[None]
    if not isinstance(image, Image.Image):
        check_float_image(_as_array(image))
    arr = to_numpy(image).astype(np.float32) / 127.5 - 1.0
    if arr.ndim == 4:  # a batch of images, (N, H, W, 3)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def upscale(image, factor: int | None = None, *, size: int = 256) -> Image.Image:
    """Enlarge a small image crisply (nearest neighbour) for display.

    Without ``factor``, pick the largest whole factor that keeps the longer side ≤ ``size``
    (at least 1).
    """
    img = to_pil(image)
    if factor is None:
        factor = max(1, size // max(img.size))
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def image_grid(images: Sequence, rows: int | None = None, cols: int | None = None,
               *, pad: int = 2, fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Paste images (all the same size) into one grid image, row by row.

    >>> image_grid([Image.new("RGB", (8, 8))] * 6, cols=3).size
    (28, 18)
    """
    pils = _as_list(images)
    if not pils:
        raise ValueError("image_grid needs at least one image")
    cols = cols or (math.ceil(len(pils) / rows) if rows else math.ceil(math.sqrt(len(pils))))
    rows = rows or math.ceil(len(pils) / cols)
    if rows * cols < len(pils):
        raise ValueError(f"{len(pils)} images do not fit in rows={rows} × cols={cols}")
    w, h = pils[0].size
    if any(p.size != (w, h) for p in pils):
        raise ValueError("image_grid needs images of one size; got "
                         f"{sorted({p.size for p in pils})}. Resize them first.")
    grid = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad), fill)
    for i, p in enumerate(pils):
        grid.paste(p, ((i % cols) * (w + pad), (i // cols) * (h + pad)))
    return grid


def _as_list(images) -> list[Image.Image]:
    if isinstance(images, Image.Image) or (hasattr(images, "ndim") and images.ndim == 3):
        return [to_pil(images)]
    out = []
    for item in images:
        converted = to_pil(item)
        out.extend(converted if isinstance(converted, list) else [converted])
    return out


def show_images(images, titles: Sequence[str] | None = None, *, cols: int | None = None,
                size: float = 2.5, suptitle: str | None = None, show: bool = True):
    """Show one image or many in a matplotlib grid, with optional titles.

    Small images are drawn without smoothing, so 64×64 pixels stay crisp. With ``show=False``
    the figure is returned instead of shown.

    >>> fig = show_images([Image.new("RGB", (8, 8))] * 2, titles=["a", "b"], show=False)
    """
    import matplotlib.pyplot as plt

    pils = _as_list(images)
    if not pils:
        raise ValueError("show_images needs at least one image")
    if titles is not None and len(titles) != len(pils):
        raise ValueError(f"got {len(titles)} titles for {len(pils)} images")
    cols = cols or min(len(pils), 6)
    rows = math.ceil(len(pils) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.4 if suptitle
                                                                               else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, img) in enumerate(zip(axes.flat, pils, strict=False)):
        ax.imshow(img, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    if not show:
        return fig
    plt.show()
    return None


def show_image(image, title: str | None = None, *, size: float = 3.0, show: bool = True):
    """Show a single image (or, with ``show=False``, return its figure)."""
    return show_images([image], [title] if title else None, size=size, show=show)


def psnr(mse: float, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB, from a mean squared error: ``10·log10(range² / mse)``.

    sdlearn's tensor pictures span [-1, 1], a range of 2 (the default); pixels in [0, 1]
    have a range of 1. The error is floored at 1e-12, so identical pictures give 120 dB.

    >>> round(psnr(0.0004), 1)  # an error of 1% of the range per pixel
    40.0
    """
    return 10 * math.log10(data_range ** 2 / max(float(mse), 1e-12))

