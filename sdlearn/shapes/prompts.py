"""Reading a prompt back: what it asks of a picture, and whether a picture gives it.

A prompt in the shapes world's language names some objects and perhaps the background, each
with any of its attributes: ``"a red circle"`` fixes a colour and a shape and leaves the
size, the place, the background and any other objects open. :func:`parse_prompt` turns the
text into a :class:`PromptReading`; :func:`score_prompt` checks a picture against it. A prompt
with words outside the language is refused with the words it did not understand, so nothing
is scored against a misreading.

>>> reading = parse_prompt("Two red circles on a blue background.")
>>> [o.named() for o in reading.objects], reading.background
([{'shape': 'circle', 'color': 'red'}, {'shape': 'circle', 'color': 'red'}], 'blue')
>>> parse_prompt("something green at the top").objects[0].named()
{'color': 'green', 'place': 'top'}
>>> parse_prompt("a red dog")
Traceback (most recent call last):
...
sdlearn.shapes.prompts.PromptNotUnderstood: the shapes world does not know the word 'dog'...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import numpy as np
from scipy.optimize import linear_sum_assignment

from .captions import PLACE_PHRASES, SIZE_WORDS
from .scorer import Detection, detect
from .world import COLORS, SHAPES

ATTRIBUTES = ("shape", "color", "size", "place")
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
PLURALS = {f"{s}s": s for s in SHAPES}
# Nouns that name an object without naming its shape.
ANY_OBJECT = {"something": 1, "shape": 1, "object": 1, "thing": 1,
              "shapes": None, "objects": None, "things": None}
PREFIXES = ("picture", "photo", "drawing", "image", "painting")
# Words that carry no attribute of their own.
FILLER = {"the", "of", "on", "with", "plain", *PREFIXES}
_SIZE_OF_WORD = {w: size for size, words in SIZE_WORDS.items() for w in words}
# Place phrases as word tuples, longest first, so "in the top left corner" beats "in the top".
_PLACE_OF_PHRASE = dict(sorted(
    ((tuple(p.split()), place) for place, ps in PLACE_PHRASES.items() for p in ps),
    key=lambda item: -len(item[0])))
MAX_OBJECTS = 3


class PromptNotUnderstood(ValueError):
    """A prompt the shapes world's language cannot read; the message says which part."""


@dataclass(frozen=True)
class WantedObject:
    """One object a prompt asks for: each attribute a value, or None where the prompt is silent."""

    shape: str | None = None
    color: str | None = None
    size: str | None = None
    place: str | None = None

    def named(self) -> dict[str, str]:
        """The attributes the prompt fixes, e.g. ``{'shape': 'circle', 'color': 'red'}``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def accepts(self, seen: Detection) -> dict[str, bool]:
        """For each named attribute, whether ``seen`` has it."""
        return {a: getattr(seen, a) == v for a, v in self.named().items()}


@dataclass(frozen=True)
class PromptReading:
    """What a prompt asks of a picture: objects (each partly described) and maybe a background.

    Objects the prompt does not mention may be there too: captions, like people, leave things
    out.
    """

    text: str
    objects: tuple[WantedObject, ...]
    background: str | None = None

    def open_attributes(self) -> list[str]:
        """What the prompt leaves to chance, e.g. ``['object 1 size', 'background']``."""
        open_ = [f"object {i + 1} {a}" for i, o in enumerate(self.objects)
                 for a in ATTRIBUTES if getattr(o, a) is None]
        return open_ + ([] if self.background else ["background"])


def _tokens(text: str) -> list[tuple[str, str | int | None, str]]:
    """The prompt as ``(kind, value, word)``: places and backgrounds found as whole phrases."""
    words = re.sub(r"[,;:.!?]", " , ", text.lower()).split()
    tokens = []
    i = 0
    while i < len(words):
        word = words[i]
        phrase = next((p for p in _PLACE_OF_PHRASE if tuple(words[i:i + len(p)]) == p), None)
        rest = [w for w in words[i + 1:i + 3] if w != "plain"]
        if phrase is not None:
            tokens.append(("place", _PLACE_OF_PHRASE[phrase], " ".join(phrase)))
            i += len(phrase)
            continue
        if word in COLORS and rest[:1] == ["background"]:
            if tokens and tokens[-1][0] == "number" and tokens[-1][2] in ("a", "an"):
                tokens.pop()  # "a red background": the article is the background's
            tokens.append(("background", word, word))
            i += 2 + (words[i + 1] == "plain")
            continue
        if word in COLORS:
            tokens.append(("color", word, word))
        elif word in _SIZE_OF_WORD:
            tokens.append(("size", _SIZE_OF_WORD[word], word))
        elif word in NUMBERS:
            tokens.append(("number", NUMBERS[word], word))
        elif word in SHAPES or word in PLURALS or word in ANY_OBJECT:
            tokens.append(("noun", word, word))
        elif word in (",", "and"):
            tokens.append(("break", None, word))
        elif word in FILLER or word == "background":
            tokens.append(("filler", None, word))
        else:
            tokens.append(("unknown", None, word))
        i += 1
    return tokens


def parse_prompt(text: str) -> PromptReading:
    """Read a prompt of the shapes world's language into a :class:`PromptReading`.

    It reads articles and numbers (``a``, ``two``), sizes, colours, shapes (and their plurals,
    or ``something`` / ``a shape`` for any shape), place phrases before or after their object,
    a background (``on a red background``, ``red background``), ``a picture of``, capitals and
    punctuation. Anything else raises :class:`PromptNotUnderstood`.
    """
    if not isinstance(text, str) or not text.strip():
        raise PromptNotUnderstood(f"prompt={text!r}: give a non-empty string, such as "
                                  "'a red circle'")
    tokens = _tokens(text)
    unknown = [word for kind, _, word in tokens if kind == "unknown"]
    if unknown:
        raise PromptNotUnderstood(_unknown_message(unknown))
    groups: list[dict] = []  # one per noun: its attributes and how many objects it stands for
    pending: dict = {}  # attributes said before their noun
    count, background = None, None
    after_noun = False  # the last token was a noun: a place right after it is its place
    for i, (kind, value, word) in enumerate(tokens):
        describing = after_noun and groups[-1]["noun"] == "something"
        if kind == "place" and after_noun and "place" not in groups[-1]:
            groups[-1]["place"] = value
        elif kind in ("color", "size") and describing:
            _set(groups[-1], kind, value, text)  # "something blue": the colour comes after
            continue
        elif word == "and" and describing and tokens[i + 1:i + 2] and tokens[i + 1][0] in (
                "color", "size"):
            continue  # "something small and red"
        elif kind in ("place", "color", "size"):
            _set(pending, kind, value, text)
        elif kind == "background":
            if background not in (None, value):
                raise PromptNotUnderstood(f"{text!r} names two backgrounds, {background} and "
                                          f"{value}: a picture has one")
            background = value
        elif kind == "number":
            count = value
        elif kind == "noun":
            groups.append(_group(word, count, pending, text))
            pending, count = {}, None
            after_noun = True
            continue
        after_noun = False
    if set(pending) == {"place"} and groups and "place" not in groups[-1]:
        groups[-1]["place"] = pending.pop("place")  # "a red circle, at the top"
    if pending:
        said = ", ".join(f"{k} {v}" for k, v in pending.items())
        raise PromptNotUnderstood(f"{text!r}: '{said}' describes no object; add a shape "
                                  "('circle', 'square', 'triangle') or 'something'")
    objects = [WantedObject(**{a: g.get(a) for a in ATTRIBUTES})
               for g in groups for _ in range(g["n"])]
    if len(objects) > MAX_OBJECTS:
        raise PromptNotUnderstood(f"{text!r} asks for {len(objects)} objects; the shapes world "
                                  f"draws 1 to {MAX_OBJECTS}")
    places = [o.place for o in objects if o.place]
    if len(places) != len(set(places)):
        raise PromptNotUnderstood(f"{text!r} puts two objects in one place; each place holds "
                                  "one object")
    return PromptReading(text=text, objects=tuple(objects), background=background)


def _group(noun: str, count: int | None, said: dict, text: str) -> dict:
    plural = noun in PLURALS or ANY_OBJECT.get(noun, 1) is None
    if plural and (count or 0) < 2:
        raise PromptNotUnderstood(f"{text!r}: say how many {noun} (for example 'two {noun}')")
    if not plural and (count or 1) > 1:
        raise PromptNotUnderstood(f"{text!r}: {count} needs the plural of '{noun}'")
    shape = PLURALS.get(noun, noun if noun in SHAPES else None)
    return {**said, **({"shape": shape} if shape else {}), "noun": noun,
            "n": count if plural else 1}


def _set(obj: dict, attribute: str, value: str, text: str) -> None:
    if obj.get(attribute, value) != value:
        raise PromptNotUnderstood(f"{text!r} gives one object two {attribute}s, "
                                  f"{obj[attribute]} and {value}")
    obj[attribute] = value


def _unknown_message(unknown: list[str]) -> str:
    listed = ", ".join(repr(w) for w in dict.fromkeys(unknown))
    word = "word" if len(set(unknown)) == 1 else "words"
    places = ", ".join(phrases[0] for phrases in PLACE_PHRASES.values())
    return (f"the shapes world does not know the {word} {listed}. It knows colours "
            f"({', '.join(COLORS)}), shapes ({', '.join(SHAPES)}), sizes "
            f"({', '.join(_SIZE_OF_WORD)}), places ({places}) and backgrounds, "
            "e.g. 'a small red circle at the top left on a blue background'")


@dataclass(frozen=True)
class PromptScore:
    """How a picture answers a prompt: each wanted object's match and the background."""

    reading: PromptReading
    matches: tuple[tuple[WantedObject, Detection | None, dict[str, bool]], ...]
    seen_background: str
    seen: tuple[Detection, ...]

    @property
    def background(self) -> bool | None:
        """Whether the background is the one named (None where the prompt names none)."""
        named = self.reading.background
        return None if named is None else named == self.seen_background

    @property
    def correct(self) -> bool:
        """Every named attribute right, no named object missing, the named background."""
        return (self.background is not False
                and all(d is not None and all(ok.values()) for _, d, ok in self.matches))

    def summary(self) -> str:
        """One line per wanted object, e.g. ``'red circle: color ✓ shape ✗ (seen red square)'``."""
        mark = {True: "✓", False: "✗"}
        lines = []
        if self.reading.background:
            lines.append(f"background {mark[self.background]} (seen {self.seen_background})")
        for wanted, seen, ok in self.matches:
            name = " ".join(wanted.named()[a] for a in ("size", "color", "shape", "place")
                            if a in wanted.named()) or "any object"
            if seen is None:
                lines.append(f"{name}: not found")
                continue
            checks = " ".join(f"{a} {mark[v]}" for a, v in ok.items())
            lines.append(f"{name}: {checks} (seen {seen.size} {seen.color} {seen.shape} at "
                         f"{seen.place})")
        return "\n".join(lines)


def score_prompt(image, prompt: str | PromptReading, size: int | None = None) -> PromptScore:
    """Score a picture against a prompt of the shapes world's language.

    Each object the prompt asks for is matched to one object in the picture (the assignment
    that gets the most named attributes right); unnamed objects in the picture are allowed.

    >>> from sdlearn.shapes import Scene, ShapeObject, render
    >>> picture = render(Scene("white", (ShapeObject("circle", "red", "big", "top left"),)))
    >>> score_prompt(picture, "a red circle").correct, score_prompt(picture, "a blue thing").correct
    (True, False)
    """
    reading = prompt if isinstance(prompt, PromptReading) else parse_prompt(prompt)
    background, seen = detect(image, size)
    wanted = reading.objects
    gain = np.array([[sum(w.accepts(d).values()) + 0.5 for d in seen] for w in wanted]
                    ).reshape(len(wanted), len(seen))
    rows, cols = linear_sum_assignment(-gain) if seen and wanted else ([], [])
    match = dict(zip(rows, cols, strict=True))
    matches = tuple((w, seen[match[i]] if i in match else None,
                     seen[match[i]] and w.accepts(seen[match[i]]) if i in match
                     else {a: False for a in w.named()})
                    for i, w in enumerate(wanted))
    return PromptScore(reading, matches, background, tuple(seen))
