"""Reading a picture back into objects, and scoring it against the scene it should show.

How it reads an image:
1. every pixel takes the nearest palette colour; the most common one is the background;
2. the other pixels form connected regions; regions smaller than a quarter of the smallest
   object are noise;
3. each region gets a colour (the palette colour nearest its median) and a soft mask (how much
   of each pixel it covers); the shape template that overlaps that mask best, sized from its
   area and placed at its centroid, gives the shape, the size (extent against the midpoint of
   the two sizes) and the place (the grid cell of the template's centre).
Scene objects are then matched to regions (Hungarian assignment) and each attribute is judged.

>>> from sdlearn.shapes import random_scene, render
>>> scene = random_scene(1)
>>> score(render(scene), scene).correct
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from ..images import to_numpy
from .render import SDF, shape_coverage
from .world import COLORS, GRID, PLACES, SIZES, Scene, ShapeObject

_NAMES = list(COLORS)
_PALETTE = np.array([COLORS[c] for c in _NAMES], dtype=np.float64)
_PLACE_OF_CELL = {cell: name for name, cell in PLACES.items()}
# Smallest object: a small triangle covers half its bounding box.
_MIN_AREA_FRACTION = 0.25 * 0.5 * (min(SIZES.values()) / GRID) ** 2
_SIZE_THRESHOLD = (min(SIZES.values()) + max(SIZES.values())) / 2 / GRID


@dataclass(frozen=True)
class Detection:
    """An object as the scorer sees it. ``bbox`` is ``(x0, y0, x1, y1)`` in pixels, exclusive."""

    shape: str
    color: str
    size: str
    place: str
    bbox: tuple[int, int, int, int]
    area: int
    shape_iou: float


@dataclass(frozen=True)
class ObjectScore:
    """How one expected object was drawn: each attribute right or wrong."""

    expected: ShapeObject
    seen: Detection | None
    color: bool
    place: bool
    shape: bool
    size: bool

    @property
    def found(self) -> bool:
        return self.seen is not None

    @property
    def correct(self) -> bool:
        """Colour, place and shape all right (the adherence criterion; size is reported apart)."""
        return self.color and self.place and self.shape


@dataclass(frozen=True)
class SceneScore:
    """The verdict on one image: per object, the background, and objects nobody asked for."""

    objects: tuple[ObjectScore, ...]
    background: bool
    seen_background: str
    extra: tuple[Detection, ...] = field(default_factory=tuple)

    @property
    def correct(self) -> bool:
        """Every object has the right colour, place and shape."""
        return all(o.correct for o in self.objects)

    @property
    def fully_correct(self) -> bool:
        """Everything right: each object's four attributes, the background, nothing extra."""
        return (self.correct and self.background and not self.extra
                and all(o.size for o in self.objects))

    def summary(self) -> str:
        """One line per object, e.g. ``'red circle @ top left: color ✓ place ✓ shape ✗ size ✓'``."""
        mark = {True: "✓", False: "✗"}
        lines = [f"background {mark[self.background]} (seen {self.seen_background})"]
        for o in self.objects:
            e = o.expected
            lines.append(f"{e.size} {e.color} {e.shape} @ {e.place}: " + " ".join(
                f"{a} {mark[getattr(o, a)]}" for a in ("color", "place", "shape", "size")))
        if self.extra:
            lines.append(f"{len(self.extra)} extra object(s)")
        return "\n".join(lines)


def _as_array(image, size: int | None) -> np.ndarray:
    arr = to_numpy(image)
    if arr.ndim != 3:
        raise ValueError(f"the scorer reads one image at a time; got shape {arr.shape}")
    if size is None and arr.shape[0] != arr.shape[1]:
        raise ValueError(f"the shapes world is square but the image is {arr.shape[1]}x"
                         f"{arr.shape[0]}: pass size=N to resize it, or crop it first")
    if size is not None and arr.shape[:2] != (size, size):
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
    return arr.astype(np.float64)


def nearest_color(rgb) -> str:
    """The palette colour nearest an RGB triple (0–255)."""
    d = ((_PALETTE - np.asarray(rgb, dtype=np.float64)) ** 2).sum(axis=1)
    return _NAMES[int(np.argmin(d))]


def classify_pixels(image) -> np.ndarray:
    """Index into the palette (``list(COLORS)``) of the nearest colour, for every pixel."""
    return _nearest_indices(_as_array(image, None))


def _nearest_indices(arr: np.ndarray) -> np.ndarray:
    d = ((arr[:, :, None, :] - _PALETTE[None, None]) ** 2).sum(axis=-1)
    return d.argmin(axis=-1)


@cache
def _template_stats(shape: str) -> tuple[float, float, float]:
    """Area over extent², and the centroid's offset from the box centre over extent."""
    n, extent = 256, 200.0
    cov = shape_coverage(shape, (n / 2, n / 2), extent, n)
    ys, xs = np.mgrid[0:n, 0:n] + 0.5
    area = cov.sum()
    return (area / extent**2, ((cov * xs).sum() / area - n / 2) / extent,
            ((cov * ys).sum() / area - n / 2) / extent)


def _fit_shape(alpha: np.ndarray) -> tuple[str, float, tuple[float, float], float]:
    """The shape whose template best overlaps a soft mask: (shape, extent, centre, soft IoU).

    Each template is sized from the mask's area and placed from its centroid, then compared as
    ``sum(min) / sum(max)`` of the two coverages.
    """
    n = alpha.shape[0]
    ys, xs = np.mgrid[0:n, 0:n] + 0.5
    area = alpha.sum()
    cx, cy = (alpha * xs).sum() / area, (alpha * ys).sum() / area
    best = ("", 0.0, (0.0, 0.0), -1.0)
    for name in SDF:
        k, ox, oy = _template_stats(name)
        extent = float(np.sqrt(area / k))
        center = (cx - ox * extent, cy - oy * extent)
        template = shape_coverage(name, center, extent, n)
        iou = float(np.minimum(alpha, template).sum() / np.maximum(alpha, template).sum())
        if iou > best[3]:
            best = (name, extent, center, iou)
    return best


def detect(image, size: int | None = None) -> tuple[str, list[Detection]]:
    """The background colour and the objects seen in an image (resized to ``size`` if given)."""
    arr = _as_array(image, size)
    n = arr.shape[0]
    classes = _nearest_indices(arr)
    bg_index = int(np.bincount(classes.ravel(), minlength=len(_NAMES)).argmax())
    bg_rgb = np.median(arr[classes == bg_index], axis=0)
    labels, _ = ndimage.label(classes != bg_index, structure=np.ones((3, 3)))
    min_area = max(2, int(_MIN_AREA_FRACTION * n * n))
    found = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels == index
        if mask.sum() < min_area:
            continue
        core = ndimage.binary_erosion(mask)
        rgb = np.median(arr[core if core.sum() >= 3 else mask], axis=0)
        # How much of each pixel the object covers: where its colour lies from background to
        # object colour.
        span = rgb - bg_rgb
        alpha = np.clip(((arr - bg_rgb) @ span) / max(float(span @ span), 1e-6), 0, 1)
        alpha *= ndimage.binary_dilation(mask)
        shape, extent, (cx, cy), iou = _fit_shape(alpha)
        cell = tuple(min(max(int(c / n * GRID), 0), GRID - 1) for c in (cy, cx))
        ys, xs = region
        found.append(Detection(
            shape=shape, color=nearest_color(rgb),
            size="big" if extent / n > _SIZE_THRESHOLD else "small",
            place=_PLACE_OF_CELL[cell], bbox=(xs.start, ys.start, xs.stop, ys.stop),
            area=int(mask.sum()), shape_iou=round(iou, 3),
        ))
    return _NAMES[bg_index], found


def _judge(expected: ShapeObject, seen: Detection | None) -> ObjectScore:
    if seen is None:
        return ObjectScore(expected, None, False, False, False, False)
    return ObjectScore(expected, seen, color=seen.color == expected.color,
                       place=seen.place == expected.place, shape=seen.shape == expected.shape,
                       size=seen.size == expected.size)


def score(image, scene: Scene, size: int | None = None) -> SceneScore:
    """Score an image against the scene it should show.

    ``image`` may be PIL, a uint8 array or a tensor in [-1, 1]; ``size`` resizes it first
    (default: as it is). See :class:`SceneScore` for what comes back.
    """
    background, seen = detect(image, size)
    weights = {"place": 4.0, "color": 2.0, "shape": 1.0, "size": 0.5}
    gain = np.array([[sum(w for a, w in weights.items() if getattr(_judge(o, d), a))
                      for d in seen] for o in scene.objects]).reshape(len(scene.objects),
                                                                      len(seen))
    rows, cols = linear_sum_assignment(-gain) if seen else ([], [])
    match = dict(zip(rows, cols, strict=True))
    objects = tuple(_judge(o, seen[match[i]] if i in match else None)
                    for i, o in enumerate(scene.objects))
    extra = tuple(d for j, d in enumerate(seen) if j not in set(cols))
    return SceneScore(objects, background == scene.background, background, extra)
