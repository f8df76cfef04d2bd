import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from sdlearn import make_generator, with_scheduler
from sdlearn.editing import (
    check_strength,
    crop_and_resize,
    img2img,
    img2img_timesteps,
    signal_kept,
)
from sdlearn.models import make_scheduler, quiet_loading
from sdlearn.shapes import random_scene, render_image


@pytest.mark.parametrize("scheduler", ["pndm", "ddim", "euler"])
@pytest.mark.parametrize("strength", [0.3, 0.8, 1.0])
def test_img2img_by_hand_equals_the_diffusers_pipeline(tiny_pipe, scheduler, strength):
    pipe = with_scheduler(tiny_pipe, scheduler)
    with quiet_loading():
        i2i = StableDiffusionImg2ImgPipeline.from_pipe(pipe)  # shares the weights
    i2i.set_progress_bar_config(disable=True)
    assert i2i.unet is pipe.unet
    image = render_image(random_scene(3), 64)
    mine = img2img(pipe, image, "a big blue circle", strength=strength, steps=8,
                   generator=make_generator(0))
    theirs = i2i("a big blue circle", image=image, strength=strength, num_inference_steps=8,
                 output_type="latent", generator=make_generator(0)).images
    assert torch.equal(mine, theirs)


def test_strength_picks_the_last_steps(tiny_pipe):
    ddim = make_scheduler("ddim", tiny_pipe.scheduler.config)
    assert [int(t) for t in img2img_timesteps(ddim, 10, 0.3)] == [201, 101, 1]
    assert len(img2img_timesteps(ddim, 10, 0.1)) == 1
    for too_small in (0.0, 0.09):  # int(10 * strength) = 0: not one step would run
        with pytest.raises(ValueError,
                           match=rf"strength={too_small} with steps=10 runs no step.*0\.1"):
            img2img_timesteps(ddim, 10, too_small)
    # PNDM lists one timestep twice (its warm-up): the same slice keeps one more entry.
    pndm = make_scheduler("pndm", tiny_pipe.scheduler.config)
    assert [int(t) for t in img2img_timesteps(pndm, 10, 0.3)] == [301, 201, 101, 1]
    assert [int(t) for t in img2img_timesteps(pndm, 10, 1.0)][:3] == [901, 801, 801]


def test_signal_kept_reads_the_first_timestep_that_runs(tiny_pipe):
    config = tiny_pipe.scheduler.config
    ddim, pndm = (make_scheduler(name, config) for name in ("ddim", "pndm"))
    abar = ddim.alphas_cumprod
    assert signal_kept(ddim, 10, 0.3) == pytest.approx(abar[201].sqrt().item())
    # PNDM's repeated warm-up step: at 0.3 it starts where DDIM does at 0.4, one step noisier.
    assert signal_kept(pndm, 10, 0.3) == pytest.approx(signal_kept(ddim, 10, 0.4))
    assert signal_kept(pndm, 10, 0.3) < signal_kept(ddim, 10, 0.3)
    # Even strength 1 starts from the noisiest timestep, where a little of the picture is left.
    assert 0.05 < signal_kept(ddim, 25, 1.0) < 0.15
    assert signal_kept(ddim, 25, 0.2) > signal_kept(ddim, 25, 0.8)


def test_tensor_images_use_the_minus_one_to_one_convention(tiny_pipe):
    from sdlearn import to_tensor
    from sdlearn.editing import prepare_image

    picture = Image.new("RGB", (64, 64), (200, 40, 90))
    assert torch.equal(prepare_image(tiny_pipe, to_tensor(picture)),
                       prepare_image(tiny_pipe, picture))
    with pytest.raises(ValueError, match=r"spans \[0, 255\].*x / 127.5 - 1"):
        prepare_image(tiny_pipe, torch.linspace(0, 255, 64).repeat(3, 64, 1))
    with pytest.raises(ValueError, match=r"\(1, 4, 8, 8\): latents go to the sampling loop"):
        prepare_image(tiny_pipe, torch.zeros(1, 4, 8, 8))


def test_a_batch_is_the_separate_calls(tiny_pipe):
    pictures = [render_image(random_scene(i), 64) for i in range(3)]
    prompts = ["a big blue circle", "a red square", "something green"]
    alone = torch.cat([img2img(tiny_pipe, im, p, strength=0.6, steps=6,
                               generator=make_generator(i))
                       for i, (im, p) in enumerate(zip(pictures, prompts, strict=True))])
    batch = img2img(tiny_pipe, pictures, prompts, strength=0.6, steps=6,
                    generator=[make_generator(i) for i in range(3)])
    torch.testing.assert_close(batch, alone, atol=1e-4, rtol=0)  # up to the batch's rounding
    one_prompt = img2img(tiny_pipe, pictures[:2], prompts[0], strength=0.6, steps=6,
                         generator=[make_generator(i) for i in range(2)])
    torch.testing.assert_close(one_prompt[0], batch[0], atol=1e-4, rtol=0)


def test_prompts_and_generators_must_match_the_pictures(tiny_pipe):
    picture = Image.new("RGB", (64, 64))
    with pytest.raises(ValueError, match="2 prompts for 1 pictures: give one prompt per"):
        img2img(tiny_pipe, picture, ["a", "b"], steps=2, strength=0.5)
    with pytest.raises(ValueError, match="3 generators for 2 pictures"):
        img2img(tiny_pipe, [picture] * 2, "a", steps=2, strength=0.5,
                generator=[make_generator(i) for i in range(3)])
    with pytest.raises(ValueError, match="prompt must be a string, or a list of strings"):
        img2img(tiny_pipe, picture, ("a",), steps=2, strength=0.5)
    with pytest.raises(ValueError, match="image is an empty list"):
        img2img(tiny_pipe, [], "a", steps=2, strength=0.5)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_strength_outside_0_1_is_named(bad):
    with pytest.raises(ValueError, match=f"strength={bad} is outside"):
        check_strength(bad)


def test_bad_size_gets_the_nearest_valid_size(tiny_pipe):
    with pytest.raises(ValueError, match="60x70, not a multiple of the VAE factor 8: resize or "
                                         "crop it to 64x72"):
        img2img(tiny_pipe, Image.new("RGB", (60, 70)), "x", steps=2)


def test_rgba_and_grey_are_converted_with_a_warning(tiny_pipe):
    for mode in ("RGBA", "L"):
        with pytest.warns(UserWarning, match=f"was {mode}; converted to RGB"):
            out = img2img(tiny_pipe, Image.new(mode, (64, 64)), "x", steps=2, strength=0.5)
        assert out.shape == (1, 4, 8, 8)


def test_crop_and_resize():
    img = Image.fromarray(np.arange(300 * 200 * 3, dtype=np.uint8).reshape(200, 300, 3))
    assert crop_and_resize(img, 64).size == (64, 64)
    assert crop_and_resize(img, (96, 48), zoom=2, center=(0.9, 0.1)).size == (96, 48)
    with pytest.raises(ValueError, match="zoom=0.5"):
        crop_and_resize(img, 64, zoom=0.5)
    # Which part is kept: four coloured quadrants, 300x200. The square crop is the middle
    # 200x200 (a centre pixel of each quadrant survives); zoom 3 at the top-right corner keeps
    # only the red quadrant.
    quad = np.zeros((200, 300, 3), np.uint8)
    quad[:100, :150], quad[:100, 150:] = (0, 0, 255), (255, 0, 0)
    quad[100:, :150], quad[100:, 150:] = (0, 255, 0), (255, 255, 0)
    square = np.asarray(crop_and_resize(Image.fromarray(quad), 64))
    assert (square[16, 16] == (0, 0, 255)).all() and (square[48, 48] == (255, 255, 0)).all()
    corner = np.asarray(crop_and_resize(Image.fromarray(quad), 32, zoom=3, center=(1, 0)))
    assert (np.abs(corner.astype(int) - (255, 0, 0)) <= 2).all()


def test_sixteen_bit_and_integer_pictures_keep_their_values(tiny_pipe):
    from sdlearn.editing import prepare_image

    grey = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    eight = Image.fromarray(grey, mode="L")
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)  # how a 16-bit PNG opens
    assert sixteen.mode == "I;16"
    with pytest.warns(UserWarning, match=r"was I;16; converted to RGB \(16-bit values scaled"):
        x16 = prepare_image(tiny_pipe, sixteen)
    with pytest.warns(UserWarning, match="was L; converted to RGB"):
        x8 = prepare_image(tiny_pipe, eight)
    assert torch.equal(x16, x8)  # not all white


def test_float_arrays_must_hold_0_to_1(tiny_pipe):
    from sdlearn.editing import prepare_image

    picture = render_image(random_scene(3), 64)
    arr = np.asarray(picture)
    assert torch.equal(prepare_image(tiny_pipe, arr / 255), prepare_image(tiny_pipe, picture))
    with pytest.raises(ValueError, match=r"a float image holds values in \[0, 1\]; this one "
                                         r"spans \[40, 245\]: from \[0, 255\] use x / 255"):
        prepare_image(tiny_pipe, arr.astype(np.float32))  # used to become all white
    with pytest.raises(ValueError, match=r"from \[-1, 1\] use \(x \+ 1\) / 2"):
        prepare_image(tiny_pipe, arr / 127.5 - 1)


def test_a_0_to_1_tensor_is_refused(tiny_pipe):
    """A tensor with nothing below 0 looks like torchvision's [0, 1]: refused, with both fixes."""
    from sdlearn import to_pil, to_tensor
    from sdlearn.editing import prepare_image

    picture = render_image(random_scene(3), 64)
    x = to_tensor(picture)
    with pytest.raises(ValueError, match=r"spans \[0.157, 0.961\], nothing below 0, as a \[0, 1\] "
                                         r"tensor \(torchvision's convention\) does: pass "
                                         r"x \* 2 - 1\. "
                                         r".*pass sdlearn.to_pil\(x\)"):
        prepare_image(tiny_pipe, x * 0.5 + 0.5)
    fixed = (x * 0.5 + 0.5) * 2 - 1
    assert torch.allclose(prepare_image(tiny_pipe, fixed), prepare_image(tiny_pipe, x))
    bright = Image.new("RGB", (64, 64), (250, 240, 200))  # in [-1, 1], nothing below 0
    with pytest.raises(ValueError, match="nothing below 0"):
        prepare_image(tiny_pipe, to_tensor(bright))
    assert torch.equal(prepare_image(tiny_pipe, to_pil(to_tensor(bright)[0])),
                       prepare_image(tiny_pipe, bright))  # the fix the message gives
    with pytest.raises(ValueError, match="NaN or infinite"):
        prepare_image(tiny_pipe, torch.full((3, 64, 64), float("nan")))


def test_images_that_are_not_pictures_are_named(tiny_pipe):
    from sdlearn.editing import prepare_image

    with pytest.raises(TypeError, match=r"image is None; an image is a PIL image"):
        img2img(tiny_pipe, None, "x", steps=2)
    with pytest.raises(TypeError, match=r"image is a path \('data/images/house.png'\): open the "
                                        r"file first, PIL.Image.open\(path\)"):
        img2img(tiny_pipe, "data/images/house.png", "x", steps=2)
    with pytest.raises(ValueError, match="the image is 0x0: it has no pixels"):
        img2img(tiny_pipe, Image.new("RGB", (0, 0)), "x", steps=2)
    with pytest.raises(ValueError, match=r"shape \(3, 64, 64\).*arr.transpose\(1, 2, 0\)"):
        prepare_image(tiny_pipe, np.zeros((3, 64, 64), np.uint8))


def test_steps_strength_and_generator_are_checked(tiny_pipe):
    image = Image.new("RGB", (64, 64), (200, 40, 90))
    with pytest.raises(ValueError, match="steps=0: run at least 1 denoising step"):
        img2img(tiny_pipe, image, "x", steps=0)  # used to divide by zero inside diffusers
    with pytest.raises(TypeError, match="strength='0.5' is a str: give a number, e.g. "
                                        "strength=0.5"):
        img2img(tiny_pipe, image, "x", steps=2, strength="0.5")
    with pytest.raises(TypeError, match="generator=3 is an int"):
        img2img(tiny_pipe, image, "x", steps=2, generator=3)


def test_a_huge_picture_is_refused_before_any_work(tiny_pipe):
    from sdlearn.editing import prepare_image
    from sdlearn.sizes import LargeSizeWarning

    big = Image.new("RGB", (4000, 3000))  # used to run for minutes and take gigabytes
    with pytest.raises(ValueError, match=r"the image at 4000x3000 has 500x375 latents, 2,930× "
                                         r".*allow_large=True.*crop_and_resize\(image, 64\)"):
        img2img(tiny_pipe, big, "x", steps=2, strength=0.5)
    with pytest.warns(LargeSizeWarning, match="the image at 512x512 has 64x64 latents, 64×"):
        x = prepare_image(tiny_pipe, Image.new("RGB", (512, 512)), allow_large=True)
    assert x.shape == (1, 3, 512, 512)
    with pytest.raises(ValueError, match="allow_large=True"):
        prepare_image(tiny_pipe, torch.zeros(1, 3, 512, 512) - 0.5)


def test_crop_and_resize_refuses_empty_sizes():
    img = Image.new("RGB", (300, 200))
    for bad in (0, (64, 0), 64.0, (64,)):
        with pytest.raises(ValueError, match=r"size=.*: give a positive whole number of pixels"):
            crop_and_resize(img, bad)
    assert crop_and_resize(img, np.int64(32)).size == (32, 32)
