import numpy as np
import pytest
from PIL import Image

from sdlearn import make_generator, masks, with_scheduler
from sdlearn.widgets import MaskEditor, Playground


def test_playground_click_makes_exactly_the_requested_image(tiny_pipe):
    own = type(tiny_pipe.scheduler)
    play = Playground(tiny_pipe)
    play.prompt.value = "a small green triangle at the bottom right on a black background"
    play.negative.value = "red"
    play.guidance.value = 4.5
    play.steps.value = 6
    play.seed.value = 11
    play.scheduler.value = "euler"
    play.button.click()
    assert play.settings == {
        "prompt": "a small green triangle at the bottom right on a black background",
        "negative_prompt": "red", "guidance_scale": 4.5, "num_inference_steps": 6, "seed": 11,
        "scheduler": "euler"}
    direct = with_scheduler(tiny_pipe, "euler")(
        play.prompt.value, negative_prompt="red", guidance_scale=4.5, num_inference_steps=6,
        generator=make_generator(11)).images[0]
    assert np.array_equal(np.asarray(play.image), np.asarray(direct))
    assert play.progress.value == play.progress.max == 6
    assert play.view.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert not play.button.disabled
    assert type(tiny_pipe.scheduler) is own, "the pipe is left as it was"


def test_playground_default_scheduler_uses_the_pipe_itself(tiny_pipe):
    play = Playground(tiny_pipe)
    assert play.pipeline() is tiny_pipe
    play.steps.value = 2
    image = play.generate()
    assert image.size == (64, 64) and "seed 0" in play.message.value


# --------------------------------------------------------------------------- MaskEditor


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def _image(w=64, h=48):
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_sliders_give_the_exact_mask():
    editor = MaskEditor(_image())
    editor.x0.value, editor.x1.value, editor.y0.value, editor.y1.value = 8, 40, 4, 20
    assert editor.mask.mode == "L" and editor.mask.size == (64, 48)
    assert _same(editor.mask, masks.rectangle((64, 48), 8, 40, 4, 20))
    editor.shape.value = "ellipse"
    assert _same(editor.mask, masks.ellipse((64, 48), 8, 40, 4, 20))
    editor.invert.value = True
    assert _same(editor.mask, masks.invert(masks.ellipse((64, 48), 8, 40, 4, 20)))
    editor.x0.value, editor.x1.value = 40, 8  # crossed sliders mean the same box
    editor.invert.value = False
    assert _same(editor.mask, masks.ellipse((64, 48), 8, 40, 4, 20))


def test_sliders_update_the_preview():
    editor = MaskEditor(_image(), brush=False)
    before = editor.view.value
    editor.x1.value = 60
    assert editor.view.value != before
    assert "Brush off" in editor.status.value


def test_brush_events_set_the_right_pixels():
    editor = MaskEditor(_image(), shape="none", display_size=256, brush_radius=2)
    assert editor.canvas is not None and editor.scale == 4
    assert not np.asarray(editor.mask).any()
    # A stroke in canvas pixels, as the canvas sends them:
    # (40, 40) → (120, 40) is (10, 10) → (30, 10) in the picture.
    editor.on_mouse_down(40, 40)
    editor.on_mouse_move(120, 40)
    editor.on_mouse_up(120, 40)
    editor.on_mouse_move(200, 150)  # the button is up: not painted
    m = np.asarray(editor.mask) > 0
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (8, 31, 8, 11)
    assert m[10, 8:32].all() and not m[30:, :].any()
    # Erasing takes pixels out, also from the slider shape.
    editor.shape.value = "rectangle"
    editor.x0.value, editor.x1.value, editor.y0.value, editor.y1.value = 0, 64, 0, 48
    editor.brush_mode.value = "erase"
    editor.on_mouse_down(128, 96)  # image (32, 24)
    editor.on_mouse_up()
    m = np.asarray(editor.mask) > 0
    assert not m[24, 32] and m[24, 20] and m.sum() == 64 * 48 - 12  # pixel centres within 2 px: 12
    editor.clear_strokes()
    assert np.asarray(editor.mask).all()


def test_wrong_size_mask_is_explained():
    with pytest.raises(ValueError, match="the mask is 32x32 but the image is 64x48"):
        MaskEditor(_image(), mask=masks.rectangle(32, 0, 8, 0, 8))
    editor = MaskEditor(_image(), mask=masks.rectangle((64, 48), 0, 8, 0, 8))
    assert _same(editor.mask, masks.rectangle((64, 48), 0, 8, 0, 8))
    with pytest.raises(ValueError, match="shape='star'"):
        MaskEditor(_image(), shape="star")


def test_canvas_takes_over_when_its_front_end_is_ready():
    editor = MaskEditor(_image())
    assert "Waiting for the drawing canvas" in editor.status.value
    editor._canvas_ready()  # what ipycanvas calls once the browser shows the canvas
    assert editor.view.layout.display == "none" and "Draw on the picture" in editor.status.value


def test_invert_flips_the_shape_but_brush_strokes_keep_their_meaning():
    editor = MaskEditor(_image(), brush_radius=1)
    editor.x0.value, editor.x1.value, editor.y0.value, editor.y1.value = 0, 32, 0, 48
    editor.invert.value = True  # now the left half is kept, the right half repainted
    editor.paint([(10, 10)])    # paint = repaint, even inside the inverted shape
    m = np.asarray(editor.mask) > 0
    assert m[10, 9] and not m[30, 9] and m[30, 40]


# ----------------------------------------------- odd inputs (the bad-inputs review, section 6)


@pytest.mark.parametrize("picture, error, words", [
    (None, TypeError, "needs a picture .* got None"),
    ("no/such/picture.png", FileNotFoundError, "no picture file there"),
    (Image.new("RGB", (0, 0)), ValueError, r"empty picture \(shape \(0, 0\)\)"),
    (np.zeros((0, 0, 3), np.uint8), ValueError, "empty picture"),
    (12, TypeError, "got int"),
])
def test_mask_editor_refuses_what_is_not_a_picture(picture, error, words):
    with pytest.raises(error, match=words):
        MaskEditor(picture)


def test_mask_editor_opens_a_path(tmp_path):
    path = tmp_path / "picture.png"
    _image().save(path)
    for given in (path, str(path)):
        editor = MaskEditor(given)
        assert editor.image.size == (64, 48) and _same(editor.image, _image())


def test_a_very_thin_picture_gets_a_preview():
    editor = MaskEditor(Image.new("RGB", (4, 4000)), brush=False)
    assert editor.display == (1, 256) and editor.mask.size == (4, 4000)


def test_set_mask_none_is_explained():
    editor = MaskEditor(_image())
    with pytest.raises(TypeError, match=r"set_mask\(None\).*clear_strokes"):
        editor.set_mask(None)


def test_a_huge_picture_is_previewed_from_a_small_copy(monkeypatch):
    """Case 6.12: the preview is made at its own size, so the sliders follow; the mask stays at
    the picture's size, and a warning says why the brush may lag."""
    monkeypatch.setattr(MaskEditor, "LARGE", 100 * 100)
    with pytest.warns(UserWarning, match="the picture is 400x300"):
        editor = MaskEditor(_image(400, 300), brush=False)
    assert editor._preview.size == editor.display == (256, 192)
    overlaid = []
    real = masks.overlay
    monkeypatch.setattr(masks, "overlay", lambda image, m: overlaid.append(image.size) or
                        real(image, m))
    editor.x0.value = 10
    assert overlaid == [(256, 192)], "the overlay is drawn at the preview's size"
    assert editor.mask.size == (400, 300)
    assert _same(editor.mask, masks.rectangle((400, 300), 10, 300, 0, 300))


def test_on_a_huge_picture_the_preview_shows_the_mask_without_remaking_it(monkeypatch):
    """Case 6.12 (the brush lagged): the preview samples the mask at its own pixels, and a
    brush stroke does not make the sliders' shape again; the mask itself is unchanged."""
    monkeypatch.setattr(MaskEditor, "LARGE", 100 * 100)
    with pytest.warns(UserWarning, match="the mask is kept at full size"):
        editor = MaskEditor(_image(400, 300), shape="ellipse", brush=False)
    editor.x0.value, editor.x1.value = 37, 211
    shown = []
    real_overlay, real_ellipse = masks.overlay, masks.ellipse
    made = []
    monkeypatch.setattr(masks, "overlay", lambda image, m: shown.append(m) or
                        real_overlay(image, m))
    monkeypatch.setattr(masks, "ellipse", lambda *a: made.append(a) or real_ellipse(*a))
    editor.paint([(300, 40), (390, 290)], radius=9)
    editor.paint([(100, 150)], radius=30, erase=True)
    assert made == [], "a brush stroke made the ellipse again"
    expected = np.asarray(real_ellipse((400, 300), 37, 211, 0, 300)) > 0
    expected |= _painted_everywhere((400, 300), [(300, 40), (390, 290)], 9)
    expected &= ~_painted_everywhere((400, 300), [(100, 150)], 30)
    assert _same(editor.mask, np.where(expected, 255, 0).astype(np.uint8))
    assert len(shown) == 2 and shown[-1].size == (256, 192)
    assert _same(shown[-1], editor.mask.resize((256, 192), Image.NEAREST))
    editor.x1.value = 250  # a slider does make it again
    assert len(made) == 1
    assert _same(shown[-1], editor.mask.resize((256, 192), Image.NEAREST))


def _painted_everywhere(size, points, radius):
    """The brush's pixels worked out over the whole picture, as paint() did before case 6.12."""
    w_, h = size
    ys, xs = np.mgrid[0:h, 0:w_].astype(np.float64) + 0.5
    hit = np.zeros((h, w_), dtype=bool)
    for (ax, ay), (bx, by) in zip(points, points[1:] or points, strict=False):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0, 1)
        hit |= (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2 <= radius ** 2
    return hit


@pytest.mark.parametrize("points, radius", [
    ([(10, 10)], 2),                         # a dab
    ([(10.5, 10.5)], 3.5),                   # off the pixel grid
    ([(5, 5), (50, 30), (20, 40)], 4),       # a stroke of two segments, back and forth
    ([(0, 0)], 6),                           # at a corner: the box is cut at the picture's edge
    ([(63.9, 47.9), (70, 60)], 3),           # running off the far corner
    ([(-20, -20), (-10, -5)], 2),            # wholly off the picture: nothing
    ([(-10, 24), (80, 24)], 1),              # across the whole picture
])
def test_a_brush_stroke_looks_only_near_itself(monkeypatch, points, radius):
    """Case 6.12 (brush lag on huge pictures): each segment is worked out in its own box, and
    that box gives exactly the pixels of the whole-picture computation."""
    editor = MaskEditor(_image(), shape="none", brush=False)
    grids = []
    real = np.mgrid
    monkeypatch.setattr(np, "mgrid", type("Grid", (), {"__getitem__": lambda _, key: grids.append(
        tuple(s.stop - s.start for s in key)) or real[key]})())
    editor.paint(points, radius=radius)
    monkeypatch.undo()
    painted = np.asarray(editor.mask) > 0
    assert np.array_equal(painted, _painted_everywhere((64, 48), points, radius))
    segments = list(zip(points, points[1:] or points, strict=False))
    reach_h = max(abs(b[1] - a[1]) for a, b in segments) + 2 * radius + 2
    reach_w = max(abs(b[0] - a[0]) for a, b in segments) + 2 * radius + 2
    assert len(grids) <= len(segments)
    assert all(h <= reach_h and w_ <= reach_w for h, w_ in grids), \
        f"grids {grids}: each should be a segment's box, not the picture"


def test_playground_needs_a_pipeline():
    for wrong in (None, "not a pipe"):
        with pytest.raises(TypeError, match="needs a pipeline.*sdlearn.load_pipeline"):
            Playground(wrong)


@pytest.mark.parametrize("control, value, words", [
    ("guidance", float("nan"), "guidance=nan"),
    ("seed", 2 ** 70, f"seed={2 ** 70} is out of range"),
])
def test_playground_refuses_values_only_code_can_set(tiny_pipe, control, value, words):
    play = Playground(tiny_pipe)
    play.steps.value = 1
    getattr(play, control).value = value
    with pytest.raises(ValueError, match=words):
        play.generate()
    assert words in play.message.value and not play.button.disabled
    assert play.image is None, "no picture made with other settings than asked"


def test_a_scheduler_sdlearn_has_no_name_for_is_shown_and_kept(tiny_pipe):
    """Case 6.17: the dropdown names the pipe's own scheduler; generate uses it as it is.
    (The probe used UniPC, which sdlearn now lists; Heun it does not.)"""
    from diffusers import HeunDiscreteScheduler

    from sdlearn.schedulers import SCHEDULERS

    assert "HeunDiscreteScheduler" not in SCHEDULERS.values()

    pipe = with_scheduler(tiny_pipe, "ddim")
    pipe.scheduler = HeunDiscreteScheduler.from_config(pipe.scheduler.config)
    play = Playground(pipe)
    assert play.scheduler.value == "HeunDiscreteScheduler (the pipe's own)"
    assert play.pipeline() is pipe
    play.steps.value = 2
    play.generate()
    assert type(pipe.scheduler) is HeunDiscreteScheduler
    assert "HeunDiscreteScheduler" in play.message.value
    play.scheduler.value = "euler"
    assert type(play.pipeline().scheduler).__name__ == "EulerDiscreteScheduler"
