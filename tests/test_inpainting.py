import warnings

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline
from PIL import Image

from sdlearn import make_generator, with_scheduler
from sdlearn.editing import blend, inpaint, renoise
from sdlearn.masks import (
    MaskThresholdWarning,
    binary,
    check_mask,
    ellipse,
    invert,
    latent_mask,
    load_mask,
    object_box,
    overlay,
    rectangle,
)
from sdlearn.models import make_scheduler, quiet_loading
from sdlearn.shapes import Scene, ShapeObject, random_scene, render_image


def _pixels(mask):
    return np.asarray(mask) > 0


def test_rectangle_and_ellipse_cover_the_expected_pixels():
    r = _pixels(rectangle((64, 48), 8, 40, 16, 32))
    assert r.shape == (48, 64) and r.sum() == 32 * 16
    assert r[16, 8] and r[31, 39] and not r[15, 8] and not r[16, 40]
    e = _pixels(ellipse(64, 16, 48, 16, 48))
    ys, xs = np.nonzero(e)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (16, 47, 16, 47)
    assert abs(e.sum() - np.pi * 16 ** 2) < 40  # the area of a circle of radius 16
    assert not e[16, 16]  # the box's corner is outside


def test_object_box_and_invert():
    scene = Scene("white", [ShapeObject("square", "red", "small", "top left")])
    box = _pixels(object_box(scene, 0, 64, margin=1))
    img = np.asarray(render_image(scene, 64))
    red = (img != img[-1, -1]).any(axis=2)
    assert red.sum() > 20 and box[red].all()  # the box holds every painted pixel
    assert box.sum() < 2 * red.sum()
    assert (_pixels(invert(object_box(scene, 0))) != _pixels(object_box(scene, 0))).all()
    with pytest.raises(ValueError, match="index=1: the scene has 1 object"):
        object_box(scene, 1)


def test_non_binary_mask_is_thresholded_and_says_so():
    grey = Image.fromarray(np.array([[0, 100], [128, 255]], dtype=np.uint8), mode="L")
    with pytest.warns(MaskThresholdWarning, match="not binary .2 pixels"):
        m = binary(grey)
    assert np.asarray(m).tolist() == [[0, 0], [255, 255]]
    assert np.asarray(binary(np.array([[True, False]]))).tolist() == [[255, 0]]


def test_mask_of_the_wrong_size_is_explained():
    with pytest.raises(ValueError, match=r"the mask is 32x32 but the image is 64x48: .*"
                                         r"mask.resize\(\(64, 48\), Image.NEAREST\)"):
        check_mask(rectangle(32, 0, 8, 0, 8), Image.new("RGB", (64, 48)))


def test_load_mask(tmp_path):
    rectangle(64, 0, 32, 0, 64).convert("RGB").save(tmp_path / "m.png")
    assert _pixels(load_mask(tmp_path / "m.png")).sum() == 32 * 64
    assert load_mask(tmp_path / "m.png", size=32).size == (32, 32)


def test_latent_mask_nearest_is_diffusers_and_any_is_a_max_pool():
    m = rectangle(64, 9, 40, 16, 48)  # starts one pixel into the second block
    near = latent_mask(m, 8).squeeze()
    assert near.shape == (8, 8)
    assert near[2].tolist() == [0, 0, 1, 1, 1, 0, 0, 0]  # block 1's top-left pixel is black
    assert latent_mask(m, 8, mode="any").squeeze()[2].tolist() == [0, 1, 1, 1, 1, 0, 0, 0]
    with quiet_loading():
        from diffusers.image_processor import VaeImageProcessor
    proc = VaeImageProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True,
                             do_convert_grayscale=True)
    theirs = torch.nn.functional.interpolate(proc.preprocess(m, height=64, width=64),
                                             size=(8, 8))
    assert torch.equal(latent_mask(m, 8), theirs)


def test_overlay_tints_only_the_mask_and_outlines_its_edge():
    red = (220, 38, 38)  # a shapes-world red: the overlay must read on it
    img = Image.new("RGB", (16, 16), red)
    out = np.asarray(overlay(img, rectangle(16, 0, 8, 0, 16)), dtype=int)
    assert (out[:, 8:] == red).all()  # the kept half is untouched
    inside = out[:, :7]
    assert (inside[..., 0] < 150).all() and (inside[..., 1] > 100).all()  # tinted toward cyan
    edge = out[:, 7]  # the mask's last column, next to the kept half: a black-white checker
    assert sorted({tuple(p) for p in edge}) == [(0, 0, 0), (255, 255, 255)]
    assert (edge[::2] != edge[1::2]).any(axis=1).all()
    plain = np.asarray(overlay(img, rectangle(16, 0, 8, 0, 16), outline=False), dtype=int)
    assert (plain[:, :8] == inside[0, 0]).all()


@pytest.mark.parametrize("scheduler", ["pndm", "ddim", "euler"])
@pytest.mark.parametrize("strength", [0.6, 1.0])
def test_inpaint_by_hand_equals_the_diffusers_pipeline(tiny_pipe, scheduler, strength):
    pipe = with_scheduler(tiny_pipe, scheduler)
    with quiet_loading():
        inp = StableDiffusionInpaintPipeline.from_pipe(pipe)
    inp.set_progress_bar_config(disable=True)
    assert inp.unet is pipe.unet and pipe.unet.config.in_channels == 4
    image = render_image(random_scene(5), 64)
    mask = ellipse(image, 10, 50, 20, 60)
    mine = inpaint(pipe, image, mask, "a green triangle", strength=strength, steps=6,
                   generator=make_generator(1))
    theirs = inp("a green triangle", image=image, mask_image=mask, strength=strength,
                 num_inference_steps=6, output_type="latent", generator=make_generator(1)).images
    assert torch.equal(mine, theirs)


@pytest.fixture(scope="module")
def nine_channel_pipe(tiny_pipe):
    """The tiny model widened to an inpainting UNet, its 5 new channels given random weights
    (zero ones would hide a mistake in them)."""
    from sdlearn.training.inpainting import widen_conv_in

    unet = widen_conv_in(tiny_pipe.unet, 9)
    with torch.no_grad():
        unet.conv_in.weight[:, 4:] = 0.1 * torch.randn(unet.conv_in.weight[:, 4:].shape,
                                                         generator=make_generator(7))
    with quiet_loading():
        return StableDiffusionInpaintPipeline(**{**tiny_pipe.components, "unet": unet},
                                              requires_safety_checker=False)


@pytest.mark.parametrize("scheduler, strength", [("pndm", 1.0), ("ddim", 0.6),
                                                 ("euler", 1.0)])
def test_an_inpainting_model_by_hand_equals_the_diffusers_pipeline(nine_channel_pipe, scheduler,
                                                                   strength):
    pipe = with_scheduler(nine_channel_pipe, scheduler)
    pipe.set_progress_bar_config(disable=True)
    pictures = [render_image(random_scene(i), 64) for i in (5, 6)]
    masks = [ellipse(64, 10, 50, 20, 60), rectangle(64, 0, 32, 8, 40)]
    prompts = ["a green triangle", "a red circle"]
    mine = inpaint(pipe, pictures, masks, prompts, strength=strength, steps=5,
                   generator=[make_generator(i) for i in (1, 2)])
    theirs = pipe(prompts, image=pictures, mask_image=masks, strength=strength,
                  num_inference_steps=5, output_type="latent",
                  generator=[make_generator(i) for i in (1, 2)]).images
    assert torch.equal(mine, theirs)
    one = inpaint(pipe, pictures[0], masks[0], prompts[0], strength=strength, steps=5,
                  generator=make_generator(1))
    # a batch is its pictures, up to rounding (the UNet rounds a batch of 2 differently)
    torch.testing.assert_close(one, theirs[:1], atol=2e-3, rtol=0)


def test_an_inpainting_model_reads_the_kept_picture_and_is_not_blended(nine_channel_pipe,
                                                                       tiny_pipe):
    from sdlearn.editing import inpainting_channels, is_inpainting_model, prepare_image

    pipe = with_scheduler(nine_channel_pipe, "ddim")
    assert is_inpainting_model(pipe) and not is_inpainting_model(tiny_pipe)
    image, other = (render_image(random_scene(i), 64) for i in (3, 4))
    mask = rectangle(64, 0, 32, 0, 64)
    a, b = (inpaint(pipe, im, mask, "x", steps=3, generator=make_generator(0))
            for im in (image, other))
    assert not torch.equal(a, b)  # the kept picture is read: it changes the result everywhere
    extra = inpainting_channels(pipe, prepare_image(pipe, image), torch.ones(1, 1, 64, 64),
                                make_generator(0))
    assert extra.shape == (1, 5, 8, 8) and (extra[:, 0] == 1).all()
    with pytest.raises(ValueError, match="does not blend: leave num_resamples at 1"):
        inpaint(pipe, image, mask, "x", steps=3, num_resamples=2)
    from sdlearn.sampling import denoise, encode_prompts
    uncond, cond = encode_prompts(pipe, "x")
    latents = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match="reads 9 channels, the latents' 4 and 5 more: pass "
                                         "them as extra="):
        denoise(pipe, latents, uncond, cond, [1])
    with pytest.raises(ValueError, match=r"extra is \(1, 4, 8, 8\); this UNet reads 5"):
        denoise(pipe, latents, uncond, cond, [1], extra=extra[:, :4])


def test_kept_region_is_the_noised_original_until_the_end(tiny_pipe):
    image = render_image(random_scene(2), 64)
    mask = rectangle(64, 0, 32, 0, 64)
    m = latent_mask(mask, 8)
    seen = []
    out = inpaint(tiny_pipe, image, mask, "x", steps=4, generator=make_generator(0),
                  on_step=lambda i, t, lat, noise_pred: seen.append(lat.clone()))
    from sdlearn.editing import encode_image, prepare_image
    init, _ = encode_image(tiny_pipe, prepare_image(tiny_pipe, image), make_generator(0))
    assert torch.equal(out * (1 - m), init * (1 - m))  # the last step puts back the clean latents
    assert len(seen) == len(tiny_pipe.scheduler.timesteps)  # PNDM would list 5 for 4 steps


def test_resampling_repeats_steps_and_needs_ddim(tiny_pipe):
    pipe = with_scheduler(tiny_pipe, "ddim")
    image = render_image(random_scene(2), 64)
    mask = rectangle(64, 16, 48, 16, 48)
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        a = inpaint(pipe, image, mask, "x", steps=4, num_resamples=3, generator=make_generator(0))
    finally:
        hook.remove()
    assert len(calls) == 3 * 3 + 1  # every step but the last is done 3 times
    b = inpaint(pipe, image, mask, "x", steps=4, num_resamples=3, generator=make_generator(0))
    assert torch.equal(a, b)  # seeded
    with pytest.raises(ValueError, match=r"num_resamples=2 .* PNDMScheduler does: use "
                                         r"sdlearn\.with_scheduler\(pipe, 'ddim'\)"):
        inpaint(with_scheduler(tiny_pipe, "pndm"), image, mask, "x", steps=4, num_resamples=2)
    with pytest.raises(ValueError, match="num_resamples=0"):
        inpaint(pipe, image, mask, "x", steps=4, num_resamples=0)


def test_a_batch_of_edits_is_the_separate_calls(tiny_pipe):
    pipe = with_scheduler(tiny_pipe, "ddim")
    pictures = [render_image(random_scene(i), 64) for i in range(3)]
    masks = [rectangle(64, 8 * i, 8 * i + 24, 16, 48) for i in range(3)]
    prompts = ["a green triangle", "a red circle", "a blue square"]
    for resamples in (1, 2):  # resampling draws its noise per picture too
        edits = enumerate(zip(pictures, masks, prompts, strict=True))
        alone = torch.cat([inpaint(pipe, im, m, p, steps=4, num_resamples=resamples,
                                   generator=make_generator(i)) for i, (im, m, p) in edits])
        batch = inpaint(pipe, pictures, masks, prompts, steps=4, num_resamples=resamples,
                        generator=[make_generator(i) for i in range(3)])
        torch.testing.assert_close(batch, alone, atol=1e-4, rtol=0)
    shared = inpaint(pipe, pictures[:2], masks[0], prompts[0], steps=4,  # one mask, one prompt
                     generator=[make_generator(i) for i in range(2)])
    first = inpaint(pipe, pictures[0], masks[0], prompts[0], steps=4, generator=make_generator(0))
    torch.testing.assert_close(shared[:1], first, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="2 masks for 3 pictures"):
        inpaint(pipe, pictures, masks[:2], prompts, steps=2)


def test_renoise_matches_the_forward_process_statistics(tiny_pipe):
    sched = make_scheduler("ddim", tiny_pipe.scheduler.config)
    x = torch.full((1, 4, 64, 64), 2.0)  # not zero: the kept share's scaling is checked too
    out = renoise(sched, x, 101, 901, make_generator(0))
    abar = sched.alphas_cumprod
    keep, add = (abar[901] / abar[101]).sqrt(), (1 - abar[901] / abar[101]).sqrt()
    assert abs(out.mean() - 2.0 * keep) < 0.02
    assert abs(out.std() - add) < 0.02
    y = torch.ones(1, 1, 1, 1)
    assert torch.equal(blend(2 * y, 3 * y, torch.ones_like(y)), 2 * y)


def test_inpaint_bad_inputs_are_named(tiny_pipe):
    image = render_image(random_scene(2), 64)
    with pytest.raises(ValueError, match="the mask is 32x32 but the image is 64x64"):
        inpaint(tiny_pipe, image, rectangle(32, 0, 8, 0, 8), "x", steps=2)
    with pytest.raises(ValueError, match="strength=1.5 is outside"):
        inpaint(tiny_pipe, image, rectangle(64, 0, 8, 0, 8), "x", steps=2, strength=1.5)
    with pytest.warns(MaskThresholdWarning):
        inpaint(tiny_pipe, image, Image.new("L", (64, 64), 200), "x", steps=1)


def test_a_mask_that_repaints_nothing_is_named(tiny_pipe):
    image = render_image(random_scene(2), 64)
    with pytest.warns(UserWarning, match=r"the mask is all black, so it keeps the whole picture "
                                         r"and nothing is repainted .*sdlearn.masks.invert"):
        inpaint(tiny_pipe, image, Image.new("L", (64, 64), 0), "x", steps=1)
    thin = rectangle(64, 0, 64, 33, 35)  # white, but no 8x8 block's top-left pixel is
    with pytest.warns(UserWarning, match=r"the mask's white pixels miss every latent cell"):
        inpaint(tiny_pipe, image, thin, "x", steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good mask: not a word
        inpaint(tiny_pipe, image, rectangle(64, 0, 32, 0, 64), "x", steps=1)


def test_masks_and_resamples_of_the_wrong_kind_are_named(tiny_pipe):
    image = render_image(random_scene(2), 64)
    with pytest.raises(TypeError, match=r"mask is a list: give a PIL image \(white = repaint\) "
                                        r"or a 2-D array \(np.array\(mask\)"):
        inpaint(tiny_pipe, image, [[0] * 64] * 64, "x", steps=1)
    with pytest.raises(TypeError, match=r"mask is None: .*sdlearn.masks.rectangle"):
        inpaint(tiny_pipe, image, None, "x", steps=1)
    mask = rectangle(64, 0, 32, 0, 64)
    for bad in ("3", 2.0):
        with pytest.raises(TypeError, match=f"num_resamples={bad!r} is a .*: give a whole number"):
            inpaint(tiny_pipe, image, mask, "x", steps=1, num_resamples=bad)
    # strength "1" used to start from the picture, not from pure noise as 1.0 does
    with pytest.raises(TypeError, match="strength='1' is a str: give a number, e.g. strength=1"):
        inpaint(tiny_pipe, image, mask, "x", steps=1, strength="1")
    with pytest.raises(ValueError, match="allow_large=True"):
        inpaint(tiny_pipe, Image.new("RGB", (1024, 1024)), rectangle(1024, 0, 8, 0, 8), "x")


def test_boxes_and_thresholds_that_make_empty_masks_are_refused():
    with pytest.raises(ValueError, match=r"x0=40 is past x1=10: the corners are reversed, so the "
                                         r"rectangle would be empty; give x0 < x1, e.g. x0=10, "
                                         r"x1=40"):
        rectangle(64, 40, 10, 0, 64)
    with pytest.raises(ValueError, match="y0=50 is past y1=20: .* ellipse would be empty"):
        ellipse(64, 0, 10, 50, 20)
    with pytest.raises(ValueError, match=r"the rectangle x 70..90, y 0..10 lies outside the "
                                         r"64x64 picture"):
        rectangle(64, 70, 90, 0, 10)
    assert rectangle(64, -10, 8, 60, 80).getbbox() == (0, 60, 8, 64)  # partly off: clipped
    assert rectangle(64, 8, 8, 0, 64).getbbox() is None  # zero width, as MaskEditor may ask
    for bad in (300, 0):
        with pytest.raises(ValueError, match=f"threshold={bad}: give a grey level in 1..255"):
            binary(rectangle(64, 0, 8, 0, 8), threshold=bad)
