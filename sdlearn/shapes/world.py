"""The shapes world: what a scene is made of, and how to draw random scenes from a seed.

A scene is a background colour and one to three objects. Each object has a shape, a colour, a
size and a place on a 3×3 grid of named places. Geometry is stored in fractions of the canvas, so
the same scene renders at any resolution.

>>> scene = random_scene(0)
>>> scene == random_scene(0)
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

# Colours in sRGB 0–255. Chosen to be far apart, so that a colour name is never ambiguous.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "orange": (247, 140, 20),
    "yellow": (245, 215, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 225),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}

# Named places on a 3×3 grid: (row, column).
PLACES: dict[str, tuple[int, int]] = {
    "top left": (0, 0), "top": (0, 1), "top right": (0, 2),
    "left": (1, 0), "center": (1, 1), "right": (1, 2),
    "bottom left": (2, 0), "bottom": (2, 1), "bottom right": (2, 2),
}
GRID = 3

# Sizes as the object's extent (width of its bounding box) in fractions of one grid cell.
SIZES: dict[str, float] = {"small": 0.5, "big": 0.85}

# The shapes are defined by their signed distance functions in sdlearn.shapes.render.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene. ``offset`` nudges it from its cell's centre (fractions of a cell)."""

    shape: str
    color: str
    size: str
    place: str
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        for value, allowed, name in ((self.shape, SHAPES, "shape"), (self.color, COLORS, "color"),
                                     (self.size, SIZES, "size"), (self.place, PLACES, "place")):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {sorted(allowed)}")

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(x, y)`` in fractions of the canvas (0 = left/top, 1 = right/bottom)."""
        row, col = PLACES[self.place]
        dx, dy = self.offset
        return ((col + 0.5 + dx) / GRID, (row + 0.5 + dy) / GRID)

    @property
    def extent(self) -> float:
        """Width of the bounding box, in fractions of the canvas."""
        return SIZES[self.size] / GRID


@dataclass(frozen=True)
class Scene:
    """A background colour and objects, painted in order (later objects on top)."""

    background: str
    objects: tuple[ShapeObject, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.background not in COLORS:
            raise ValueError(f"background={self.background!r} is not one of {sorted(COLORS)}")
        object.__setattr__(self, "objects", tuple(self.objects))

    def with_object(self, index: int, **changes) -> Scene:
        """A copy with object ``index`` changed, e.g. ``scene.with_object(0, color="blue")``."""
        objects = list(self.objects)
        objects[index] = replace(objects[index], **changes)
        return replace(self, objects=tuple(objects))


def perturb(scene: Scene, rng: random.Random | int) -> Scene:
    """A copy of ``scene`` with one detail wrong: one object's colour, shape, size or place.

    What a careless caption describes instead of the picture. The result is still a valid
    scene (no object takes the background's colour or another object's place).

    >>> scene = random_scene(3, n_objects=2)
    >>> changed = [(a, b) for a, b in zip(scene.objects, perturb(scene, 0).objects) if a != b]
    >>> len(changed)
    1
    """
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    if not scene.objects:
        raise ValueError("scene has no objects: perturb changes an object's detail")
    index = rng.randrange(len(scene.objects))
    obj = scene.objects[index]
    attribute = rng.choice(("color", "shape", "size", "place"))
    taken = {o.place for o in scene.objects}
    options = {
        "color": [c for c in COLORS if c not in (obj.color, scene.background)],
        "shape": [s for s in SHAPES if s != obj.shape],
        "size": [s for s in SIZES if s != obj.size],
        "place": [p for p in PLACES if p not in taken],
    }[attribute]
    return scene.with_object(index, **{attribute: rng.choice(options)})


def random_scene(seed: int | random.Random, n_objects: int | None = None, *,
                 max_objects: int = 3, jitter: float = 0.04) -> Scene:
    """A random scene, the same for the same seed.

    Objects sit in distinct places, each with a colour other than the background's.
    ``n_objects`` fixes the count (default: uniform in 1..``max_objects``); ``jitter`` is the
    largest random nudge from the cell's centre, in fractions of a cell.

    >>> len(random_scene(3, n_objects=2).objects)
    2
    """
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    n = n_objects if n_objects is not None else rng.randint(1, max_objects)
    if not 1 <= n <= len(PLACES):
        raise ValueError(f"n_objects={n} must be between 1 and {len(PLACES)}")
    background = rng.choice(list(COLORS))
    places = rng.sample(list(PLACES), n)
    objects = []
    for place in places:
        size = rng.choice(list(SIZES))
        room = (1 - SIZES[size]) / 2  # free margin of the cell on each side
        j = min(jitter, room * 0.5)
        objects.append(ShapeObject(
            shape=rng.choice(SHAPES),
            color=rng.choice([c for c in COLORS if c != background]),
            size=size,
            place=place,
            offset=(round(rng.uniform(-j, j), 4), round(rng.uniform(-j, j), 4)),
        ))
    return Scene(background=background, objects=tuple(objects))
