"""Drawing scenes: anti-aliased shapes from signed distance functions, in NumPy.

Each shape is a signed distance function (negative inside, in pixels). A pixel's coverage is
``clip(0.5 - distance, 0, 1)``, which gives a one-pixel soft edge: anti-aliasing without
supersampling. A new shape is one more entry in ``SDF``.

>>> from sdlearn.shapes import random_scene
>>> render(random_scene(0)).shape
(64, 64, 3)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .world import COLORS, Scene, ShapeObject


def _circle(x, y, r):
    return np.hypot(x, y) - r


def _square(x, y, r):
    return np.maximum(np.abs(x), np.abs(y)) - r


def _convex_polygon(vertices: list[tuple[float, float]]):
    """The distance function of a convex polygon (unit-radius vertices, clockwise on screen)."""
    verts = np.asarray(vertices, dtype=np.float64)
    edges = np.roll(verts, -1, axis=0) - verts
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = (normals * verts).sum(axis=1)

    def sdf(x, y, r):
        # Distance to the farthest edge line: exact inside, a close bound near the outside edges.
        d = [nx * x + ny * y - o * r for (nx, ny), o in zip(normals, offsets, strict=True)]
        return np.max(d, axis=0)

    return sdf


# The triangle points up and fills its bounding box: base 2r wide, 2r tall (y grows downwards).
SDF: dict[str, Callable] = {
    "circle": _circle,
    "square": _square,
    "triangle": _convex_polygon([(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]),
}


def shape_coverage(shape: str, center: tuple[float, float], extent: float,
                   size: int) -> np.ndarray:
    """Coverage in [0, 1] of a ``shape`` on a ``size``×``size`` canvas; geometry in pixels."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    return np.clip(0.5 - SDF[shape](xs - center[0], ys - center[1], extent / 2), 0.0, 1.0)


def object_coverage(obj: ShapeObject, size: int = 64) -> np.ndarray:
    """Coverage in [0, 1] of one scene object on a ``size``×``size`` canvas."""
    cx, cy = obj.center
    return shape_coverage(obj.shape, (cx * size, cy * size), obj.extent * size, size)


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """The scene as an ``(size, size, 3)`` uint8 RGB array."""
    img = np.empty((size, size, 3), dtype=np.float64)
    img[:] = COLORS[scene.background]
    for obj in scene.objects:
        alpha = object_coverage(obj, size)[..., None]
        img = img * (1 - alpha) + np.asarray(COLORS[obj.color], dtype=np.float64) * alpha
    return np.rint(img).astype(np.uint8)


def render_image(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as a PIL RGB image."""
    return Image.fromarray(render(scene, size))
