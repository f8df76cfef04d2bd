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


def vocabulary(loose: bool = False) -> list[str]:
    """Every word a caption can use, and the comma, sorted: the words the text encoder learns.

    ``loose=True`` adds the words of :func:`loose_caption` ("a picture of", "two", "circles",
    "something", the full stop).

    >>> from sdlearn.shapes import random_scene
    >>> words = set(vocabulary())
    >>> all(set(caption(random_scene(s), s).replace(",", " ,").split()) <= words for s in range(50))
    True
    >>> "astronaut" in words, len(words), len(vocabulary(loose=True))
    (False, 35, 53)
    """
    # with_article adds "a" or "an"; caption joins objects with "," and "and"
    words = {"a", "an", "and", ",", *(w for name in [*COLORS, *SHAPES] for w in name.split())}
    phrases = [p for options in [*SIZE_WORDS.values(), *PLACE_PHRASES.values()] for p in options]
    # a template's own words are the text around its {fields}
    phrases += [text for t in SCENE_TEMPLATES for text, *_ in Formatter().parse(t)]
    if loose:
        phrases += [*PREFIXES, *NUMBER_WORDS.values(), *(f"{s}s" for s in SHAPES), "something",
                    *(n for nouns in GENERIC_NOUNS.values() for n in nouns), "."]
    for phrase in phrases:
        words.update(phrase.replace(",", " , ").split())
    return sorted(words)


# ------------------------------------------------------------------ captions that say less

# How a training caption says less than its picture shows, as people's captions do. Each share
# is the chance that a caption (or an object's mention) names that detail; what is not named,
# the model must learn to leave to chance, so the seed has something to choose. The full
# caption stays one form in LOOSE["full"] of captions, so that full prompts are still followed.
LOOSE = {
    "full": 0.3,          # the whole scene, every attribute (the canonical form, varied)
    "keep_object": 0.8,   # each object is mentioned (at least one always is)
    "shape": 0.7, "color": 0.7, "size": 0.35, "place": 0.4,  # named per mentioned object
    "background": 0.4,    # the background is named
    "count": 0.5,         # objects of one shape are counted: "two circles"
    "prefix": 0.15,       # "a picture of ..."
    "capital": 0.25, "stop": 0.2,  # "A red circle."
}
# Loose captions that never say where an object is or how big (nor give the full caption):
# what a depth model learns from, so that the layout can come only from its depth map.
UNPLACED = {"full": 0.0, "place": 0.0, "size": 0.0}
PREFIXES = ["a picture of", "a photo of", "a drawing of", "an image of"]
NUMBER_WORDS = {2: "two", 3: "three"}
GENERIC_NOUNS = {1: ["shape", "object", "thing"], 2: ["shapes", "objects", "things"]}


def _mention(named: dict, count: int, rng: random.Random, place_first: bool = False) -> str:
    """``named`` attributes of ``count`` alike objects in words: 'two red circles'."""
    pick = rng.choice
    size = pick(SIZE_WORDS[named["size"]]) if "size" in named else ""
    adjectives = " ".join(w for w in (size, named.get("color", "")) if w)
    plural = count > 1
    if "shape" in named:
        noun = named["shape"] + ("s" if plural else "")
    elif not plural and adjectives and rng.random() < 0.5:
        noun = None  # "something red", "something small and red"
    else:
        noun = pick(GENERIC_NOUNS[2 if plural else 1])
    if noun is None:
        words = f"something {' and '.join(adjectives.split())}"
    else:
        phrase = f"{adjectives} {noun}".strip()
        words = f"{NUMBER_WORDS[count]} {phrase}" if plural else with_article(phrase)
    if "place" not in named:
        return words
    place = pick(PLACE_PHRASES[named["place"]])
    return f"{place} {words}" if place_first and rng.random() < 0.3 else f"{words} {place}"


def loose_caption(scene: Scene, rng: random.Random | int, shares: dict | None = None) -> str:
    """A caption that may say less than the picture shows, as people write them.

    Any subset of each object's attributes, objects left out, the background often unnamed,
    alike objects counted ("two red circles"), "a picture of ...", capitals and a full stop;
    and, in ``shares["full"]`` of captions, the full caption. Every form reads back with
    :func:`sdlearn.shapes.parse_prompt` into what the picture shows.

    >>> from sdlearn.shapes import random_scene
    >>> caption(random_scene(4))
    'a big orange square at the top on a blue background'
    >>> [loose_caption(random_scene(4), seed) for seed in (0, 5, 6)]
    ['an orange square', 'a shape, blue background', 'a large orange square.']
    """
    rng = random.Random(rng) if isinstance(rng, int) else rng
    p = {**LOOSE, **(shares or {})}
    if rng.random() < p["full"]:
        text = caption(scene, rng)
        if not text.startswith(("at ", "in ", "on ")) and rng.random() < p["prefix"]:
            text = f"{rng.choice(PREFIXES)} {text}"
    else:
        objects = list(scene.objects)
        rng.shuffle(objects)
        kept = [o for o in objects if rng.random() < p["keep_object"]]
        if not kept and objects:
            kept = [objects[0]]
        groups: list[tuple[dict, int]] = []  # (what is named, how many objects it stands for)
        shapes = [o.shape for o in kept]
        alike = next((s for s in SHAPES if shapes.count(s) >= 2), None)
        if alike is not None and rng.random() < p["count"]:  # "two circles", "two red circles"
            members = [o for o in kept if o.shape == alike]
            shared = {"shape": alike, **{a: getattr(members[0], a) for a in ("color", "size")
                                         if len({getattr(o, a) for o in members}) == 1
                                         and rng.random() < p[a]}}
            groups.append((shared, len(members)))
            kept = [o for o in kept if o.shape != alike]
        said = [{a: getattr(o, a) for a in ("shape", "color", "size", "place")
                 if rng.random() < p[a]} for o in kept]
        for named in said:  # alike mentions without a place are counted too
            same = next((k for k, (g, _) in enumerate(groups)
                         if g == named and "place" not in named), None)
            if same is None:
                groups.append((named, 1))
            else:
                groups[same] = (named, groups[same][1] + 1)
        template = rng.choice(SCENE_TEMPLATES) if rng.random() < p["background"] else None
        prefix = rng.choice(PREFIXES) if rng.random() < p["prefix"] else None
        # a place may lead only where the objects lead the caption: "at the top a red circle"
        lead = prefix is None and (template is None or template.startswith("{objects}"))
        phrases = [_mention(named, n, rng, place_first=lead and k == 0)
                   for k, (named, n) in enumerate(groups)]
        joined = (phrases[0] if len(phrases) == 1
                  else ", ".join(phrases[:-1]) + " and " + phrases[-1])
        text = joined if template is None else template.format(
            objects=joined, bg=scene.background, a_bg=with_article(scene.background))
        if prefix is not None:
            text = f"{prefix} {text}"
    if rng.random() < p["capital"]:
        text = text[0].upper() + text[1:]
    if rng.random() < p["stop"]:
        text += "."
    return text
