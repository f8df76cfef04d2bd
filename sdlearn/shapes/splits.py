"""Which scenes are for what: training, evaluation and validation never share a scene.

A scene is made from its seed (:func:`~sdlearn.shapes.world.random_scene`), so a split is a
range of seeds. Training draws from ``TRAIN_SEED0`` on; ``benchmarks/quality.py`` evaluates on
scenes from ``EVAL_SEED0`` on; watching a run and choosing its settings uses ``VALID_SEED0``
on, so that the evaluation set stays one nobody tuned on.

>>> [s.objects[0].shape for s in held_out_scenes(2, 1)] == [
...     s.objects[0].shape for s in held_out_scenes(2, 1, EVAL_SEED0)]
True
"""

from __future__ import annotations

from .world import random_scene

TRAIN_SEED0 = 0
EVAL_SEED0 = 10_000_000
VALID_SEED0 = 20_000_000
TWO_OBJECT_OFFSET = 1_000_000  # two-object held-out scenes start this far into a range


def held_out_scenes(n: int, n_objects: int, seed0: int = EVAL_SEED0):
    """``n`` held-out scenes with ``n_objects`` objects each, from the range at ``seed0``."""
    offset = seed0 + (0 if n_objects == 1 else TWO_OBJECT_OFFSET)
    return [random_scene(offset + i, n_objects=n_objects) for i in range(n)]
