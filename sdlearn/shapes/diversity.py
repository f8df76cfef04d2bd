"""How varied are the pictures of one prompt, and do they vary the way the world does?

A prompt that leaves things open ("a red circle": where? how big? on what?) should give
pictures that differ where it is silent. Two pictures count as the same if the scorer reads
them the same (:func:`picture_reading`). What an unnamed attribute does over many seeds is
compared with how often the world itself has each value, among the scenes that fit the prompt
(:func:`world_frequencies`), by the total-variation distance: 0 means the same frequencies,
1 means no value in common.

>>> from sdlearn.shapes import parse_prompt
>>> world = world_frequencies(parse_prompt("a red circle"), n=3000)
>>> len(world["place"]), world["color"], "red" in world["background"]
(9, {'red': 1.0}, False)
>>> total_variation({"a": 0.5, "b": 0.5}, {"a": 1.0})
0.5
"""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np
from scipy.optimize import linear_sum_assignment

from .prompts import ATTRIBUTES, PromptReading
from .scorer import detect
from .world import Scene, random_scene

# Seeds of the scenes that stand for the world's own frequencies (no split uses them).
FREQUENCY_SEED0 = 30_000_000


def picture_reading(image) -> tuple:
    """What the scorer sees, as one hashable value: the background and the sorted objects."""
    background, seen = detect(image)
    return background, tuple(sorted((d.shape, d.color, d.size, d.place) for d in seen))


def total_variation(p: dict, q: dict) -> float:
    """Half the summed difference of two frequency tables: 0 the same, 1 nothing shared."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def frequencies(values) -> dict:
    """A frequency table (shares summing to 1) of ``values``."""
    counts = Counter(values)
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def fitting_object(reading: PromptReading, scene: Scene):
    """The scene's object that the prompt's first object stands for, or None if it cannot fit.

    The whole prompt must fit: every wanted object a distinct object of the scene with every
    named value, and the named background.
    """
    if reading.background not in (None, scene.background) or not reading.objects:
        return None
    fits = np.array([[all(getattr(o, a) == v for a, v in w.named().items())
                      for o in scene.objects] for w in reading.objects], dtype=float)
    fits = fits.reshape(len(reading.objects), len(scene.objects))
    if len(reading.objects) > len(scene.objects):
        return None
    rows, cols = linear_sum_assignment(-fits)
    if fits[rows, cols].sum() < len(reading.objects):
        return None
    return scene.objects[cols[list(rows).index(0)]]


@functools.cache
def world_sample(n: int) -> tuple[Scene, ...]:
    """``n`` random scenes (from ``FREQUENCY_SEED0`` on) that stand for the world."""
    return tuple(random_scene(FREQUENCY_SEED0 + i) for i in range(n))


def world_frequencies(reading: PromptReading, n: int = 5_000) -> dict[str, dict]:
    """How often the world has each value, among its scenes that fit the prompt.

    For each attribute (shape, color, size, place) of the prompt's first object, and for the
    background: a frequency table, counted over the scenes of ``world_sample(n)`` that fit.
    """
    values = {a: [] for a in (*ATTRIBUTES, "background")}
    for scene in world_sample(n):
        obj = fitting_object(reading, scene)
        if obj is None:
            continue
        for a in ATTRIBUTES:
            values[a].append(getattr(obj, a))
        values["background"].append(scene.background)
    return {a: frequencies(v) for a, v in values.items()}
