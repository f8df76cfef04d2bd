"""The shapes world: coloured shapes at named places, their captions, and a scorer.

>>> from sdlearn.shapes import random_scene, render, caption, score
>>> scene = random_scene(7)
>>> image = render(scene)
>>> score(image, scene).correct
True
"""

from .captions import caption, describe_object
from .render import object_coverage, render, render_image, shape_coverage
from .scorer import Detection, ObjectScore, SceneScore, detect, score
from .world import COLORS, PLACES, SHAPES, SIZES, Scene, ShapeObject, perturb, random_scene

__all__ = [
    "COLORS", "PLACES", "SHAPES", "SIZES", "Detection", "ObjectScore", "Scene", "SceneScore",
    "ShapeObject", "caption", "describe_object", "detect", "object_coverage", "perturb",
    "random_scene", "render", "render_image", "score", "shape_coverage",
]
