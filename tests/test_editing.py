import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from sdlearn import make_generator, with_scheduler
from sdlearn.editing import check_strength, crop_and_resize, img2img, img2img_timesteps
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


def test_one_prompt_at_a_time(tiny_pipe):
    with pytest.raises(ValueError, match="prompt must be one string.*list"):
        img2img(tiny_pipe, Image.new("RGB", (64, 64)), ["a", "b"], steps=2, strength=0.5)


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
