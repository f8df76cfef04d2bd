"""sdlearn.depth and depth-to-image by hand: step for step StableDiffusionDepth2ImgPipeline."""

import pytest
import torch
from diffusers import StableDiffusionDepth2ImgPipeline

from sdlearn import load_pipeline, make_generators
from sdlearn.depth import depth_channel, depth_input, estimate_depth, is_depth_model
from sdlearn.editing import img2img
from sdlearn.models import quiet_loading
from sdlearn.shapes import random_scene, render_image


@pytest.fixture(scope="module")
def depth_model(plain_depth_dir):
    with quiet_loading():
        pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(plain_depth_dir,
                                                                dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _pictures(pipe, n):
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return [render_image(random_scene(i), size) for i in range(n)]


def test_the_depth_channel_is_the_pipelines(depth_model):
    pictures = _pictures(depth_model, 3)
    theirs = depth_model.prepare_depth_map(pictures, None, 3, False, torch.float32,
                                           torch.device("cpu"))
    assert torch.equal(depth_input(depth_model, pictures), theirs)
    assert is_depth_model(depth_model) and not is_depth_model(load_pipeline())
    predicted = estimate_depth(depth_model, pictures)
    channel = depth_channel(predicted, theirs.shape[-1])
    assert torch.equal(channel, theirs)
    # each map on its own: its nearest point 1, its farthest -1
    assert channel.amax(dim=(1, 2, 3)).tolist() == [1.0] * 3
    assert channel.amin(dim=(1, 2, 3)).tolist() == [-1.0] * 3
    given = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(depth_input(depth_model, pictures, given),
                       depth_model.prepare_depth_map(pictures, given, 3, False, torch.float32,
                                                     torch.device("cpu")))


def test_img2img_on_a_depth_model_is_the_depth2img_pipeline(depth_model):
    pictures, prompts = _pictures(depth_model, 2), ["a red circle", "a blue square"]
    mine = img2img(depth_model, pictures, prompts, strength=0.7, steps=5,
                   generator=make_generators([3, 4]))
    theirs = depth_model(prompts, image=pictures, strength=0.7, num_inference_steps=5,
                         output_type="latent", generator=make_generators([3, 4])).images
    torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)
    given = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1))
    mine = img2img(depth_model, pictures, prompts, strength=0.7, steps=5, depth_map=given,
                   generator=make_generators([3, 4]))
    theirs = depth_model(prompts, image=pictures, depth_map=given, strength=0.7,
                         num_inference_steps=5, output_type="latent",
                         generator=make_generators([3, 4])).images
    torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)


def test_depth_inputs_are_checked(depth_model):
    pictures = _pictures(depth_model, 2)
    with pytest.raises(ValueError, match="depth_map must be .batch, height, width. with one map "
                                         r"per picture \(2\); got shape \(16, 16\)"):
        depth_input(depth_model, pictures, torch.rand(16, 16))
    with pytest.raises(ValueError, match=r"predicted\[None\]"):
        depth_channel(torch.rand(16, 16), 4)
    base = load_pipeline()
    with pytest.raises(ValueError, match="depth_map is for depth models"):
        img2img(base, pictures[0], "a red circle", steps=2, depth_map=torch.rand(1, 64, 64))
    with pytest.raises(ValueError, match="has no depth estimator.*task='depth'"):
        estimate_depth(base, pictures)
