"""Captions for scenes, in plain English, with varied phrasings and word orders.

Training captions vary (synonyms, where the place goes, the order of objects, where the
background is named) so that the text encoder learns what words mean rather than one template.
Without a random generator, :func:`caption` gives the canonical caption.

>>> from sdlearn.shapes import Scene, ShapeObject
>>> caption(Scene("yellow", (ShapeObject("circle", "red", "big", "top left"),)))
'a big red circle at the top left on a yellow background'
"""

from __future__ import annotations

import random
from string import Formatter

from .world import COLORS, SHAPES, Scene, ShapeObject

SIZE_WORDS = {"small": ["small", "little", "tiny"], "big": ["big", "large"]}

PLACE_PHRASES = {
    "top left": ["at the top left", "in the top left corner", "in the upper left"],
    "top": ["at the top", "at the top center", "in the top middle"],
    "top right": ["at the top right", "in the top right corner", "in the upper right"],
    "left": ["on the left", "at the left", "in the middle left"],
    "center": ["in the center", "in the middle", "at the center"],
    "right": ["on the right", "at the right", "in the middle right"],
    "bottom left": ["at the bottom left", "in the bottom left corner", "in the lower left"],
    "bottom": ["at the bottom", "at the bottom center", "in the bottom middle"],
    "bottom right": ["at the bottom right", "in the bottom right corner", "in the lower right"],
}

# How the objects and the background are put together; {objects}, {bg} ("red") and {a_bg}
# ("a red") are filled in.
SCENE_TEMPLATES = [
    "{objects} on {a_bg} background",
    "{a_bg} background with {objects}",
    "on {a_bg} background, {objects}",
    "{objects}, {bg} background",
]


def with_article(words: str) -> str:
    """``words`` after ``'a'`` or ``'an'``, e.g. ``with_article("orange circle")``."""
    return ("an " if words[0] in "aeiou" else "a ") + words


def describe_object(obj: ShapeObject, rng: random.Random | None = None) -> str:
    """A phrase for one object, e.g. ``'a big red circle at the top left'``."""
    pick = (lambda options: options[0]) if rng is None else rng.choice
    noun = f"{pick(SIZE_WORDS[obj.size])} {obj.color} {obj.shape}"
    place = pick(PLACE_PHRASES[obj.place])
    if rng is not None and rng.random() < 0.3:
        return f"{place} {with_article(noun)}"
    return f"{with_article(noun)} {place}"


def caption(scene: Scene, rng: random.Random | int | None = None) -> str:
    """The caption of a scene: canonical without ``rng``, varied with one (a seed or a Random)."""
    if isinstance(rng, int):
        rng = random.Random(rng)
    objects = list(scene.objects)
    if rng is not None:
        rng.shuffle(objects)
    if not objects:
        return f"{with_article(scene.background)} background"
    phrases = [describe_object(o, rng) for o in objects]
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    template = SCENE_TEMPLATES[0] if rng is None else rng.choice(SCENE_TEMPLATES)
    return template.format(objects=joined, bg=scene.background,
                           a_bg=with_article(scene.background))


def vocabulary() -> list[str]:
    """Every word a caption can use, and the comma, sorted: the words the text encoder learns.

    >>> from sdlearn.shapes import random_scene
    >>> words = set(vocabulary())
    >>> all(set(caption(random_scene(s), s).replace(",", " ,").split()) <= words for s in range(50))
    True
    >>> "astronaut" in words, len(words)
    (False, 35)
    """
    # with_article adds "a" or "an"; caption joins objects with "," and "and"
    words = {"a", "an", "and", ",", *(w for name in [*COLORS, *SHAPES] for w in name.split())}
    phrases = [p for options in [*SIZE_WORDS.values(), *PLACE_PHRASES.values()] for p in options]
    # a template's own words are the text around its {fields}
    phrases += [text for t in SCENE_TEMPLATES for text, *_ in Formatter().parse(t)]
    for phrase in phrases:
        words.update(phrase.replace(",", " , ").split())
    return sorted(words)
