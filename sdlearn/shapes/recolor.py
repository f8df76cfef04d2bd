"""Recolouring scenes: the test of an edit that should keep the layout and change the colours.

Depth-to-image and img2img are both asked to redraw a scene with every object in a colour it
does not have. :func:`recolored_pairs` makes the held-out scenes and their recolourings, and
:func:`recolor_prompt` the prompt: the new colours and the shapes, but neither the places nor
the sizes, which must come from the picture (or its depth). :func:`read_recolor` reads an
edited picture: whether the layout is kept (every object's place, shape and size, nothing
extra), whether the new colours are there, and both. :func:`mirror` moves every object to the
other side, for a depth that disagrees with its picture.

>>> old, new = recolored_pairs(1)[0]
>>> [o.shape for o in old.objects] == [o.shape for o in new.objects]
True
>>> any(a.color == b.color for a, b in zip(old.objects, new.objects))
False
>>> recolor_prompt(new)
'a red circle and a blue square on a black background'
>>> from sdlearn.shapes import render
>>> read_recolor(render(new), new), read_recolor(render(old), new)["colors"]
({'layout': True, 'colors': True, 'both': True}, False)
"""

from __future__ import annotations

import random
from dataclasses import replace

from .captions import with_article
from .scorer import score
from .splits import EVAL_SEED0, TWO_OBJECT_OFFSET
from .world import COLORS, GRID, PLACES, Scene, random_scene

__all__ = ["mirror", "read_recolor", "recolor_prompt", "recolored_pairs"]


def recolored_pairs(n: int, seed0: int = EVAL_SEED0) -> list[tuple[Scene, Scene]]:
    """``n`` pairs ``(scene, the same scene with every object in a new colour)``.

    The scenes are held-out two-object scenes (``seed0``: see :mod:`sdlearn.shapes.splits`)
    whose objects differ in shape, so that a prompt naming colours and shapes says which object
    is which. The new colours are none of the scene's (neither an object's nor the
    background's), drawn with the scene's seed.
    """
    pairs, seed = [], seed0 + TWO_OBJECT_OFFSET
    while len(pairs) < n:
        old = random_scene(seed, n_objects=2)
        rng = random.Random(seed)
        seed += 1
        if len({o.shape for o in old.objects}) < len(old.objects):
            continue
        free = sorted(c for c in COLORS
                      if c not in {old.background, *(o.color for o in old.objects)})
        new = old
        for j, color in enumerate(rng.sample(free, len(old.objects))):
            new = new.with_object(j, color=color)
        pairs.append((old, new))
    return pairs


def recolor_prompt(scene: Scene) -> str:
    """The objects' colours and shapes and the background, without places or sizes."""
    objects = " and ".join(with_article(f"{o.color} {o.shape}") for o in scene.objects)
    return f"{objects} on {with_article(scene.background)} background"


def mirror(scene: Scene) -> Scene:
    """The scene with every object moved to the other side (left and right swapped)."""
    where = {rc: name for name, rc in PLACES.items()}
    objects = [replace(o, place=where[PLACES[o.place][0], GRID - 1 - PLACES[o.place][1]])
               for o in scene.objects]
    return replace(scene, objects=type(scene.objects)(objects))


def read_recolor(picture, scene: Scene) -> dict[str, bool]:
    """Whether ``picture`` keeps ``scene``'s layout, shows its colours, and both."""
    verdict = score(picture, scene)
    layout = all(o.place and o.shape and o.size for o in verdict.objects) and not verdict.extra
    colors = all(o.color for o in verdict.objects)
    return {"layout": layout, "colors": colors, "both": layout and colors}
