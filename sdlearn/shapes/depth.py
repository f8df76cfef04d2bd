"""Depth in the shapes world: a stage with a backdrop, and cut-outs standing in front of it.

The world's pictures are flat, so depth is given a meaning they show. Every scene is a stage:
the background is a backdrop :data:`BACKDROP` units from the camera, and every object is a flat
cut-out standing upright in front of it. All cut-outs are the same real size, so one looks big
because it stands nearer: big ones stand at 3 units, small ones at 5 (the ratio of their
apparent sizes, 0.85 / 0.5 of a grid cell, is about 5 / 3). A depth estimator can read that
from the pixels: where the objects are, and how big each one looks.

A depth map holds, for every pixel, the distance of what it shows; at an object's soft edge
the distance is mixed as the colours are. Depth estimators (MiDaS, DPT) predict *inverse*
depth, larger for nearer, which :func:`inverse_depth` gives.

>>> from sdlearn.shapes import Scene, ShapeObject
>>> scene = Scene("white", [ShapeObject("square", "red", "big", "center")])
>>> depth = render_depth(scene, 64)
>>> float(depth[0, 0]), float(depth[32, 32])
(8.0, 3.0)
"""

from __future__ import annotations

import numpy as np

from .render import object_coverage
from .world import SIZES, Scene

BACKDROP = 8.0  # the background's distance from the camera
DISTANCES = {"big": 3.0, "small": 5.0}  # a cut-out's distance, by how big it looks
assert DISTANCES.keys() == SIZES.keys()


def render_depth(scene: Scene, size: int = 64) -> np.ndarray:
    """The scene's depth map, float32 ``(size, size)``: the distance each pixel shows."""
    depth = np.full((size, size), BACKDROP, dtype=np.float64)
    for obj in scene.objects:  # objects never overlap: each is in front of the backdrop only
        alpha = object_coverage(obj, size)
        depth = depth * (1 - alpha) + DISTANCES[obj.size] * alpha
    return depth.astype(np.float32)


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    """``1 / depth``: larger for nearer, what depth estimators predict."""
    return (1.0 / np.asarray(depth, dtype=np.float32)).astype(np.float32)


__all__ = ["BACKDROP", "DISTANCES", "inverse_depth", "render_depth"]
