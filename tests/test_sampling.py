import numpy as np
import pytest
import torch

from sdlearn import make_generator, with_scheduler
from sdlearn.sampling import cfg_combine, ddim_step, decode, encode_prompts, predicted_x0, sample
from sdlearn.schedulers import SCHEDULERS, make_scheduler


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_hand_loop_equals_the_pipeline_exactly(tiny_pipe, scheduler, guidance):
    pipe = with_scheduler(tiny_pipe, scheduler)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(negative_prompt="blue", guidance_scale=guidance)
    mine = sample(pipe, "a big red circle", steps=5, generator=make_generator(4), **kwargs)
    theirs = pipe("a big red circle", num_inference_steps=5, output_type="latent",
                  generator=make_generator(4), **kwargs).images
    assert torch.equal(mine, theirs)


def test_decode_equals_the_pipeline_image(tiny_pipe):
    tiny_pipe.set_progress_bar_config(disable=True)
    latents = sample(tiny_pipe, "a small blue square", steps=3, generator=make_generator(1))
    image = tiny_pipe("a small blue square", num_inference_steps=3,
                      generator=make_generator(1)).images[0]
    assert np.array_equal(np.asarray(decode(tiny_pipe, latents)[0]), np.asarray(image))


def test_ddim_step_by_hand_equals_the_scheduler(tiny_pipe):
    sched = make_scheduler("ddim", tiny_pipe.scheduler.config)
    sched.set_timesteps(20)
    x, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    for t in sched.timesteps:
        assert torch.equal(ddim_step(sched, eps, t, x), sched.step(eps, t, x).prev_sample)
        assert torch.allclose(predicted_x0(sched, x, eps, t),
                              sched.step(eps, t, x).pred_original_sample)


def test_guidance_formula_and_prompt_checks(tiny_pipe):
    u, c = torch.zeros(3), torch.ones(3)
    assert cfg_combine(u, c, 7.5).tolist() == [7.5] * 3
    assert cfg_combine(u, c, 1.0).tolist() == c.tolist()
    uncond, cond = encode_prompts(tiny_pipe, ["a", "b"], ["x", "y"])
    assert uncond.shape == cond.shape == (2, 77, tiny_pipe.text_encoder.config.hidden_size)
    with pytest.raises(ValueError, match="negative_prompt has 3 entries for 2 prompts"):
        encode_prompts(tiny_pipe, ["a", "b"], ["x", "y", "z"])


def test_sizes_and_generators_are_checked(tiny_pipe):
    from sdlearn.sampling import initial_latents

    with pytest.raises(ValueError, match="height=60 is not a multiple of the VAE factor 8; "
                                         "use 56 or 64"):
        initial_latents(tiny_pipe, 1, 60, 64)
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        initial_latents(tiny_pipe, 3, 64, 64, [make_generator(0), make_generator(1)])


def test_a_list_of_generators_matches_the_pipeline(tiny_pipe):
    gens = lambda: [make_generator(5), make_generator(6)]  # noqa: E731
    mine = sample(tiny_pipe, ["a red circle", "a blue square"], steps=3, generator=gens())
    theirs = tiny_pipe(["a red circle", "a blue square"], num_inference_steps=3,
                       output_type="latent", generator=gens()).images
    assert torch.equal(mine, theirs)


def test_x0_and_ddim_helpers_refuse_sigma_schedulers(tiny_pipe):
    euler = make_scheduler("euler", tiny_pipe.scheduler.config)
    euler.set_timesteps(5)
    x = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match="pred_original_sample"):
        predicted_x0(euler, x, x, euler.timesteps[0])
