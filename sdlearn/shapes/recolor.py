"""Recolouring scenes: the test of an edit that should keep the layout and change the colours.

Depth-to-image and img2img are both asked to redraw a scene with every object in a colour it
does not have. :func:`recolored_pairs` makes the held-out scenes and their recoloured captions;
:func:`read_recolor` reads an edited picture: whether the layout is kept (every object's place,
shape and size, nothing extra), whether the new colours are there, and both.

>>> old, new = recolored_pairs(1)[0]
>>> [o.shape for o in old.objects] == [o.shape for o in new.objects]
True
>>> any(a.color == b.color for a, b in zip(old.objects, new.objects))
False
>>> from sdlearn.shapes import render
>>> read_recolor(render(new), new), read_recolor(render(old), new)["colors"]
({'layout': True, 'colors': True, 'both': True}, False)
"""

from __future__ import annotations

import random

from .scorer import score
from .splits import EVAL_SEED0, held_out_scenes
from .world import COLORS, Scene

__all__ = ["recolored_pairs", "read_recolor"]


def recolored_pairs(n: int, seed0: int = EVAL_SEED0, n_objects: int = 2
                    ) -> list[tuple[Scene, Scene]]:
    """``n`` pairs ``(scene, the same scene with every object in a new colour)``.

    The new colours are none of the scene's (neither an object's nor the background's), drawn
    with a seed per scene; the scenes are held out (``seed0``: see :mod:`sdlearn.shapes.splits`).
    """
    pairs = []
    for i, old in enumerate(held_out_scenes(n, n_objects, seed0)):
        rng = random.Random(seed0 + i)
        free = sorted(c for c in COLORS
                      if c not in {old.background, *(o.color for o in old.objects)})
        new = old
        for j, color in enumerate(rng.sample(free, len(old.objects))):
            new = new.with_object(j, color=color)
        pairs.append((old, new))
    return pairs


def read_recolor(picture, scene: Scene) -> dict[str, bool]:
    """Whether ``picture`` keeps ``scene``'s layout, shows its colours, and both."""
    verdict = score(picture, scene)
    layout = all(o.place and o.shape and o.size for o in verdict.objects) and not verdict.extra
    colors = all(o.color for o in verdict.objects)
    return {"layout": layout, "colors": colors, "both": layout and colors}
