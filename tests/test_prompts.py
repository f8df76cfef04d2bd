"""Captions that say less (loose_caption), and reading prompts back (parse_prompt, score_prompt)."""

import random

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from sdlearn.shapes import (
    PromptNotUnderstood,
    Scene,
    ShapeObject,
    caption,
    loose_caption,
    parse_prompt,
    random_scene,
    render,
    score_prompt,
)
from sdlearn.shapes.captions import vocabulary


def _fits(reading, scene) -> bool:
    """Each object the reading wants is a distinct object of the scene with every named value."""
    if reading.background not in (None, scene.background):
        return False
    fits = np.array([[all(getattr(o, a) == v for a, v in w.named().items())
                      for o in scene.objects] for w in reading.objects], dtype=float)
    fits = fits.reshape(len(reading.objects), len(scene.objects))
    rows, cols = linear_sum_assignment(-fits)
    return len(reading.objects) <= len(scene.objects) and fits[rows, cols].sum() == len(
        reading.objects)


def test_every_loose_caption_reads_back_as_what_its_picture_shows():
    forms = dict.fromkeys(["prefix", "count", "something", "place first", "capital", "stop",
                           "background", "no background", "object left out", "full"], 0)
    words = set(vocabulary(loose=True))
    for seed in range(3000):
        scene = random_scene(seed)
        text = loose_caption(scene, seed)
        reading = parse_prompt(text)
        assert _fits(reading, scene), (text, scene)
        assert set(text.lower().replace(",", " ,").replace(".", " .").split()) <= words, text
        forms["prefix"] += text.lower().startswith(("a picture", "a photo", "a drawing",
                                                    "an image"))
        forms["count"] += " two " in f" {text} " or " three " in f" {text} "
        forms["something"] += "something" in text
        forms["place first"] += text.lower().startswith(("at ", "in ", "on the"))
        forms["capital"] += text[0].isupper()
        forms["stop"] += text.endswith(".")
        forms["background"] += reading.background is not None
        forms["no background"] += reading.background is None
        forms["object left out"] += len(reading.objects) < len(scene.objects)
        forms["full"] += (reading.background is not None and len(reading.objects) == len(
            scene.objects) and all(len(w.named()) == 4 for w in reading.objects))
    assert all(n >= 30 for n in forms.values()), forms


def test_the_canonical_caption_reads_back_whole():
    for seed in range(200):
        scene = random_scene(seed)
        reading = parse_prompt(caption(scene))
        assert reading.background == scene.background
        assert sorted(tuple(w.named().values()) for w in reading.objects) == sorted(
            (o.shape, o.color, o.size, o.place) for o in scene.objects)


def test_loose_captions_are_seeded():
    scene = random_scene(5)
    assert loose_caption(scene, 3) == loose_caption(scene, random.Random(3))
    assert len({loose_caption(scene, s) for s in range(40)}) > 20


@pytest.mark.parametrize("text, objects, background", [
    ("a red circle", [{"shape": "circle", "color": "red"}], None),
    ("Something blue at the top.", [{"color": "blue", "place": "top"}], None),
    ("something small and red on the left", [{"color": "red", "size": "small",
                                              "place": "left"}], None),
    ("A photo of two green squares!", [{"shape": "square", "color": "green"}] * 2, None),
    ("a triangle, a plain black background", [{"shape": "triangle"}], "black"),
    ("at the bottom left a tiny white thing and a circle",
     [{"color": "white", "size": "small", "place": "bottom left"}, {"shape": "circle"}], None),
    ("on a yellow background, three shapes", [{}] * 3, "yellow"),
])
def test_prompts_people_type_are_read(text, objects, background):
    reading = parse_prompt(text)
    assert [w.named() for w in reading.objects] == objects
    assert reading.background == background


@pytest.mark.parametrize("text, message", [
    ("a red dog on the moon", "does not know the words 'dog', 'moon'"),
    ("a red", "'color red' describes no object; add a shape"),
    ("circles", "say how many circles"),
    ("two circle", "2 needs the plural of 'circle'"),
    ("a red blue square", "two colors, red and blue"),
    ("two circles at the top", "puts two objects in one place"),
    ("a circle, a square, a triangle and a circle", "asks for 4 objects; the shapes world "
                                                    "draws 1 to 3"),
    ("a circle on a red background on a blue background", "two backgrounds, red and blue"),
    ("", "give a non-empty string"),
])
def test_prompts_outside_the_language_say_what_was_not_understood(text, message):
    with pytest.raises(PromptNotUnderstood, match=message):
        parse_prompt(text)


def test_score_prompt_judges_only_what_the_prompt_names():
    scene = Scene("white", (ShapeObject("circle", "red", "big", "top left"),
                            ShapeObject("square", "blue", "small", "center")))
    picture = render(scene)
    for text in ("a red circle", "something blue in the center", "two shapes",
                 "a big red circle at the top left and a small blue square",
                 "a square on a white background", caption(scene)):
        assert score_prompt(picture, text).correct, text
    wrong = score_prompt(picture, "a green circle and a blue square")
    assert not wrong.correct
    (_, seen, ok), _ = wrong.matches
    assert ok == {"shape": True, "color": False} and seen.color == "red"
    assert "color ✗" in wrong.summary()
    assert score_prompt(picture, "a circle on a black background").background is False
    missing = score_prompt(picture, "three shapes")
    assert not missing.correct and missing.matches[-1][1] is None
    assert "not found" in missing.summary()


def test_score_prompt_reads_every_loose_caption_of_a_rendered_scene_as_right():
    for seed in range(60):
        scene = random_scene(seed)
        assert score_prompt(render(scene), loose_caption(scene, seed)).correct
