"""The shapes world: coloured shapes at named places, their captions, and a scorer.

>>> from sdlearn.shapes import random_scene, render, caption, score
>>> scene = random_scene(7)
>>> image = render(scene)
>>> score(image, scene).correct
True
>>> score_prompt(image, "a picture of something red").correct  # any prompt of the world's
True
"""

from .captions import caption, describe_object, loose_caption
from .prompts import PromptNotUnderstood, PromptReading, WantedObject, parse_prompt, score_prompt
from .recolor import mirror, read_recolor, recolor_prompt, recolored_pairs
from .render import object_coverage, render, render_image, shape_coverage
from .scorer import Detection, ObjectScore, SceneScore, detect, score
from .world import COLORS, PLACES, SHAPES, SIZES, Scene, ShapeObject, perturb, random_scene

__all__ = [
    "COLORS", "PLACES", "SHAPES", "SIZES", "Detection", "ObjectScore", "PromptNotUnderstood",
    "PromptReading", "Scene", "SceneScore", "ShapeObject", "WantedObject", "caption",
    "describe_object", "detect", "loose_caption", "mirror", "object_coverage", "parse_prompt",
    "perturb",
    "random_scene", "read_recolor", "recolor_prompt", "recolored_pairs", "render",
    "render_image", "score", "score_prompt", "shape_coverage",
]
