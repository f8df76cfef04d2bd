import random
import time

import numpy as np
import pytest
from scipy import ndimage

from sdlearn.shapes import (
    COLORS,
    PLACES,
    SHAPES,
    SIZES,
    Scene,
    ShapeObject,
    caption,
    detect,
    mirror,
    parse_prompt,
    perturb,
    random_scene,
    recolor_prompt,
    recolored_pairs,
    render,
    score,
    score_prompt,
)


def test_scenes_renders_and_captions_are_reproducible():
    for seed in range(20):
        assert random_scene(seed) == random_scene(seed)
        assert np.array_equal(render(random_scene(seed)), render(random_scene(seed)))
        assert caption(random_scene(seed), seed) == caption(random_scene(seed), seed)
    assert len({random_scene(s) for s in range(50)}) == 50


def test_random_scenes_are_valid():
    for seed in range(300):
        scene = random_scene(seed)
        assert 1 <= len(scene.objects) <= 3
        assert len({o.place for o in scene.objects}) == len(scene.objects)
        assert all(o.color != scene.background for o in scene.objects)


def test_perturb_changes_one_detail_and_keeps_the_scene_valid():
    changed_attributes = set()
    for seed in range(300):
        scene = random_scene(seed)
        wrong = perturb(scene, seed)
        assert wrong == perturb(scene, seed) and wrong.background == scene.background
        pairs = [(a, b) for a, b in zip(scene.objects, wrong.objects, strict=True) if a != b]
        assert len(pairs) == 1
        a, b = pairs[0]
        diff = [f for f in ("color", "shape", "size", "place") if getattr(a, f) != getattr(b, f)]
        assert len(diff) == 1 and a.offset == b.offset
        changed_attributes.add(diff[0])
        assert len({o.place for o in wrong.objects}) == len(wrong.objects)
        assert all(o.color != wrong.background for o in wrong.objects)
        assert caption(wrong) != caption(scene)
    assert changed_attributes == {"color", "shape", "size", "place"}
    with pytest.raises(ValueError, match="no objects"):
        perturb(Scene("red"), 0)


def test_render_is_antialiased_rgb():
    scene = Scene("blue", (ShapeObject("circle", "yellow", "big", "center"),))
    img = render(scene)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert tuple(img[32, 32]) == COLORS["yellow"]
    assert tuple(img[0, 0]) == COLORS["blue"]
    colors = {tuple(p) for p in img.reshape(-1, 3)}
    assert len(colors) > 5, "edge pixels should blend the two colours"


def test_render_is_fast_enough_for_100k_images_in_minutes():
    scenes = [random_scene(s) for s in range(500)]
    start = time.perf_counter()
    for s in scenes:
        render(s)
    per_image = (time.perf_counter() - start) / len(scenes)
    assert per_image * 100_000 < 5 * 60, f"{per_image * 1e3:.2f} ms per image"


def test_canonical_caption():
    scene = Scene("yellow", (ShapeObject("circle", "red", "big", "top left"),
                             ShapeObject("square", "blue", "small", "center")))
    assert caption(scene) == ("a big red circle at the top left and a small blue square in the "
                              "center on a yellow background")
    assert caption(Scene("orange", (ShapeObject("triangle", "orange", "big", "top"),))
                   ).startswith("a big orange triangle")


def test_captions_vary_but_always_name_every_attribute():
    scene = random_scene(11, n_objects=3)
    captions = {caption(scene, random.Random(i)) for i in range(40)}
    assert len(captions) > 20
    for text in captions:
        assert scene.background in text
        for o in scene.objects:
            assert o.color in text and o.shape in text
        assert " a o" not in text and " a a" not in text and not text.startswith("a o")


@pytest.mark.parametrize("size", [64, 128])
def test_scorer_is_right_on_clean_renders(size):
    for seed in range(300):
        scene = random_scene(seed)
        result = score(render(scene, size), scene)
        assert result.fully_correct, f"seed {seed}:\n{result.summary()}"


def _wrong(scene, attr, rng):
    obj = scene.objects[0]
    if attr == "color":
        options = [c for c in COLORS if c not in (obj.color, scene.background)]
    elif attr == "place":
        options = [p for p in PLACES if p not in {o.place for o in scene.objects}]
    else:
        options = [v for v in {"shape": SHAPES, "size": SIZES}[attr] if v != getattr(obj, attr)]
    return scene.with_object(0, **{attr: rng.choice(options)})


@pytest.mark.parametrize("attr", ["color", "place", "shape", "size"])
def test_scorer_rejects_one_wrong_attribute(attr):
    rng = random.Random(attr)
    for seed in range(150):
        scene = random_scene(seed)
        drawn = _wrong(scene, attr, rng)
        result = score(render(drawn), scene)
        assert not result.fully_correct
        judged = result.objects[0]
        assert getattr(judged, attr) is False, f"seed {seed}: {attr} not flagged"
        others = {"color", "place", "shape", "size"} - {attr}
        assert all(getattr(judged, a) for a in others), f"seed {seed}:\n{result.summary()}"


def test_scorer_rejects_wrong_background_and_missing_object():
    scene = random_scene(5, n_objects=2)
    other_bg = next(c for c in COLORS if c != scene.background
                    and all(o.color != c for o in scene.objects))
    result = score(render(Scene(other_bg, scene.objects)), scene)
    assert not result.background and result.correct and not result.fully_correct
    result = score(render(Scene(scene.background, scene.objects[:1])), scene)
    assert not result.correct and not result.objects[1].found


def test_scorer_tolerates_blur_and_noise():
    rng = np.random.default_rng(0)
    right = 0
    for seed in range(100):
        scene = random_scene(seed)
        img = ndimage.gaussian_filter(render(scene).astype(float), sigma=(0.7, 0.7, 0))
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        right += score(img, scene).correct
    assert right >= 95


def test_detect_reads_tensors_in_minus_one_to_one():
    import torch

    scene = random_scene(2)
    tensor = torch.from_numpy(render(scene)).permute(2, 0, 1).float() / 127.5 - 1
    assert detect(tensor) == detect(render(scene))


def test_bad_attributes_are_named():
    with pytest.raises(ValueError, match="shape='hexagon'"):
        ShapeObject("hexagon", "red", "big", "center")
    with pytest.raises(ValueError, match="background='pink'"):
        Scene("pink")


def test_scorer_explains_non_square_images():
    with pytest.raises(ValueError, match="pass size=N"):
        score(np.zeros((48, 80, 3), np.uint8), random_scene(0))
    assert score(render(random_scene(0), 48), random_scene(0), size=64).correct


def test_training_validation_and_evaluation_scenes_differ():
    from sdlearn.shapes import random_scene
    from sdlearn.shapes.splits import VALID_SEED0, held_out_scenes

    training = {random_scene(i) for i in range(200)} | {
        random_scene(i, n_objects=2) for i in range(200)}
    for n_objects in (1, 2):
        evaluation = held_out_scenes(50, n_objects)
        validation = held_out_scenes(50, n_objects, VALID_SEED0)
        assert len({*evaluation, *validation}) == 100
        assert not training & {*evaluation, *validation}



def test_depth_puts_each_cut_out_in_front_of_the_backdrop_by_how_big_it_looks():
    from sdlearn.shapes import SIZES, object_coverage, random_scene
    from sdlearn.shapes.depth import BACKDROP, DISTANCES, inverse_depth, render_depth

    # the cut-outs are one real size: apparent size × distance is about the same for both
    sizes = [SIZES[s] * DISTANCES[s] for s in SIZES]
    assert max(sizes) / min(sizes) < 1.05
    for seed in range(20):
        scene = random_scene(seed)
        depth = render_depth(scene, 64)
        assert depth.shape == (64, 64) and depth.dtype == np.float32
        assert depth.max() == BACKDROP and depth.min() >= min(DISTANCES.values())
        for obj in scene.objects:
            inside = object_coverage(obj, 64) == 1
            assert (depth[inside] == DISTANCES[obj.size]).all()
        covered = sum(object_coverage(o, 64) for o in scene.objects) > 0
        assert (depth[~covered] == BACKDROP).all()
        assert np.allclose(inverse_depth(depth) * depth, 1)


def test_recolored_pairs_recolour_every_object_and_keep_the_layout():
    pairs = recolored_pairs(20)
    for old, new in pairs:
        assert old.background == new.background
        assert len({o.shape for o in old.objects}) == 2  # the prompt's shapes say which is which
        prompt = recolor_prompt(new)
        assert parse_prompt(prompt).objects and not any(p in prompt for p in PLACES)
        assert score_prompt(render(new), prompt).correct
        flipped = mirror(old)
        assert mirror(flipped) == old and [o.size for o in flipped.objects] == [
            o.size for o in old.objects]
        assert all(PLACES[a.place][0] == PLACES[b.place][0]
                   and PLACES[a.place][1] == 2 - PLACES[b.place][1]
                   for a, b in zip(old.objects, flipped.objects, strict=True))
        for a, b in zip(old.objects, new.objects, strict=True):
            assert (a.shape, a.size, a.place) == (b.shape, b.size, b.place)
            assert b.color not in {old.background, *(o.color for o in old.objects)}
