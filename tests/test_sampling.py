import warnings

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


@pytest.mark.parametrize("scheduler", ["ddim", "pndm", "euler"])
def test_hand_loop_equals_the_pipeline_on_a_v_prediction_model(vpred_model_dir, scheduler):
    from sdlearn import load_pipeline

    pipe = load_pipeline(vpred_model_dir, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    mine = sample(pipe, "a big red circle", steps=4, generator=make_generator(4))
    theirs = pipe("a big red circle", num_inference_steps=4, output_type="latent",
                  generator=make_generator(4)).images
    assert torch.equal(mine, theirs)


def test_decode_equals_the_pipeline_image(tiny_pipe):
    tiny_pipe.set_progress_bar_config(disable=True)
    latents = sample(tiny_pipe, "a small blue square", steps=3, generator=make_generator(1))
    image = tiny_pipe("a small blue square", num_inference_steps=3,
                      generator=make_generator(1)).images[0]
    assert np.array_equal(np.asarray(decode(tiny_pipe, latents)[0]), np.asarray(image))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_step_by_hand_equals_the_scheduler(tiny_pipe, prediction, spacing):
    sched = make_scheduler("ddim", {**tiny_pipe.scheduler.config, "prediction_type": prediction,
                                    "timestep_spacing": spacing})
    sched.set_timesteps(20)
    x, out = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    for t in sched.timesteps:
        theirs = sched.step(out, t, x)
        assert torch.equal(ddim_step(sched, out, t, x), theirs.prev_sample)
        assert torch.equal(predicted_x0(sched, x, out, t), theirs.pred_original_sample)


def test_x0_and_noise_invert_add_noise_for_each_prediction_type(tiny_pipe):
    from sdlearn.sampling import x0_and_noise

    x0, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    for t in (1, 500, 981):
        a = tiny_pipe.scheduler.alphas_cumprod[t]
        x_t = a ** 0.5 * x0 + (1 - a) ** 0.5 * eps
        outputs = {"epsilon": eps, "v_prediction": a ** 0.5 * eps - (1 - a) ** 0.5 * x0,
                   "sample": x0}
        for kind, output in outputs.items():
            sched = make_scheduler("ddim", {**tiny_pipe.scheduler.config,
                                            "prediction_type": kind})
            got_x0, got_eps = x0_and_noise(sched, x_t, output, t)
            assert torch.allclose(got_x0, x0, atol=1e-4), (kind, t)
            assert torch.allclose(got_eps, eps, atol=1e-4), (kind, t)


def test_the_hand_steps_refuse_what_they_do_not_do(tiny_pipe):
    x = torch.zeros(1, 4, 8, 8)
    odd = make_scheduler("ddim", {**tiny_pipe.scheduler.config, "prediction_type": "flow"})
    with pytest.raises(ValueError, match=r"predicted_x0 knows the prediction types epsilon, "
                                         r"v_prediction, sample; this scheduler says 'flow'"):
        predicted_x0(odd, x, x, 1)
    clipping = make_scheduler("ddim", {**tiny_pipe.scheduler.config, "clip_sample": True})
    clipping.set_timesteps(5)
    with pytest.raises(ValueError, match=r"clip_sample=True .*DDIMScheduler.from_config\(config, "
                                         r"clip_sample=False\)"):
        ddim_step(clipping, x, clipping.timesteps[0], x)


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


P = "a big red circle"


def test_sizes_and_steps_are_refused_by_name(tiny_pipe):
    for height in (0, -8):  # 0 used to mean the default silently; -8 failed inside torch
        with pytest.raises(ValueError, match=f"height={height}: give a positive multiple of the "
                                             r"VAE factor 8, or None for the model's size \(64\)"):
            sample(tiny_pipe, P, steps=1, height=height)
    with pytest.raises(TypeError, match="height=64.0 is not an int: .*height=64"):
        sample(tiny_pipe, P, steps=1, height=64.0)
    with pytest.raises(TypeError, match="width='64' is not an int"):
        sample(tiny_pipe, P, steps=1, width="64")
    for steps in (0, -2):  # 0 divided by zero in DDIM; -2 returned the starting noise
        with pytest.raises(ValueError, match=f"steps={steps}: run at least 1 denoising step"):
            sample(tiny_pipe, P, steps=steps)
    with pytest.raises(TypeError, match=r"steps=2.5 is a float: .*steps=25"):
        sample(tiny_pipe, P, steps=2.5)
    from sdlearn.sampling import initial_latents

    assert initial_latents(tiny_pipe, 1, None, 32).shape == (1, 4, 8, 4)  # None: the model's


def test_guidance_scale_is_checked(tiny_pipe):
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match=f"guidance_scale={bad} is not a finite number: use "
                                             "1 for no guidance"):
            sample(tiny_pipe, P, steps=1, guidance_scale=bad)
    with pytest.raises(ValueError, match=r"guidance_scale=-3.0 is negative: .*use 1 for no "
                                         r"guidance.*negative_prompt"):
        sample(tiny_pipe, P, steps=1, guidance_scale=-3.0)
    with pytest.raises(TypeError, match="guidance_scale='7.5' is a str: give a number"):
        sample(tiny_pipe, P, steps=1, guidance_scale="7.5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1 is the way to say "no guidance": no warning
        plain = sample(tiny_pipe, P, steps=2, guidance_scale=1.0, generator=make_generator(0))
    with pytest.warns(UserWarning, match=r"guidance_scale=0.5 is below 1, which turns guidance "
                                         r"off: .*the same picture as guidance_scale=1"):
        low = sample(tiny_pipe, P, steps=2, guidance_scale=0.5, generator=make_generator(0))
    assert torch.equal(low, plain)  # what the warning says


def test_prompts_are_checked(tiny_pipe):
    for bad, kind in ((None, "None"), (123, "an int")):
        with pytest.raises(TypeError, match=f"prompt is {kind}: give a string, or a list"):
            sample(tiny_pipe, bad, steps=1)
    with pytest.raises(ValueError, match="prompt is an empty list: give at least one prompt"):
        sample(tiny_pipe, [], steps=1)
    with pytest.raises(TypeError, match=r"prompt holds None \(None\)"):
        encode_prompts(tiny_pipe, [P, None])
    with pytest.raises(TypeError, match="negative_prompt is an int"):
        encode_prompts(tiny_pipe, P, 5)


def test_a_seed_is_not_a_generator(tiny_pipe):
    from sdlearn.sampling import initial_latents

    with pytest.raises(TypeError, match=r"generator=42 is an int, not a torch.Generator: pass "
                                        r"sdlearn.make_generator\(42\)"):
        initial_latents(tiny_pipe, 1, 64, 64, 42)
    with pytest.raises(TypeError, match="generator=7 is an int"):
        sample(tiny_pipe, P, steps=1, generator=7)


def test_denoise_checks_its_inputs_before_the_unet(tiny_pipe):
    from sdlearn.sampling import denoise, initial_latents

    pipe = with_scheduler(tiny_pipe, "ddim")
    pipe.scheduler.set_timesteps(2)
    ts = pipe.scheduler.timesteps
    uncond, cond = encode_prompts(pipe, P)
    latents = initial_latents(pipe, 1, 64, 64, make_generator(0))
    two = initial_latents(pipe, 2, 64, 64, make_generator(0))
    with pytest.raises(ValueError, match=r"uncond holds 1 text embeddings for a batch of 2 "
                                         r"latents: .*encode_prompts\(pipe, \[prompt\] \* 2\)"):
        denoise(pipe, two, uncond, encode_prompts(pipe, [P, P])[1], ts)
    with pytest.raises(ValueError, match=r"denoise takes latents of shape \(batch, 4, h, w\); "
                                         r"got \(1, 3, 8, 8\) \(a picture has 3"):
        denoise(pipe, latents[:, :3], uncond, cond, ts)
    with pytest.raises(ValueError, match=r"got \(4, 8, 8\) \(for one picture, latents\[None\]\)"):
        denoise(pipe, latents[0], uncond, cond, ts)
    with pytest.raises(ValueError, match=r"the latents are torch.float64 but the model is "
                                         r"torch.float32: pass latents.to\(torch.float32\)"):
        denoise(pipe, latents.double(), uncond, cond, ts)
    with pytest.raises(ValueError, match=r"timesteps holds 1000, outside 0..999 .*"
                                         r"set_timesteps\(steps\)"):
        denoise(pipe, latents, uncond, cond, [1000])
    with pytest.raises(ValueError, match="timesteps is empty, so nothing would be denoised"):
        denoise(pipe, latents, uncond, cond, [])
    # Good inputs, Python ints among them, run as before and without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = denoise(pipe, latents, uncond, cond, [int(t) for t in ts])
    assert out.shape == latents.shape


def test_decode_and_ddim_step_name_their_mistakes(tiny_pipe):
    with pytest.raises(ValueError, match=r"decode takes latents of shape \(batch, 4, h, w\); got "
                                         r"\(1, 3, 64, 64\) \(a picture has 3.*sdlearn.to_pil"):
        decode(tiny_pipe, torch.zeros(1, 3, 64, 64))
    fresh = make_scheduler("ddim", tiny_pipe.scheduler.config)
    x = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match=r"ddim_step needs .*scheduler.set_timesteps\(steps\)"):
        ddim_step(fresh, x, 981, x)


def test_check_large_refuses_far_beyond_the_trained_size(tiny_pipe):
    from sdlearn.sampling import initial_latents
    from sdlearn.sizes import LargeSizeWarning, check_large

    assert check_large(tiny_pipe, 256, 256) is None  # 16 times the trained area: the limit
    with pytest.raises(ValueError, match=r"the picture at 264x256 has 33x32 latents, 16.5× "):
        check_large(tiny_pipe, 256, 264)
    message = (r"the picture at 2048x2048 has 256x256 latents, 1,024× the area of the 64x64 "
               r"pictures \(8x8 latents\) the model was trained on: each UNet step does about "
               r"1,024× the work .*the VAE takes 537 MB. Pass allow_large=True to run it anyway, "
               r"or make it smaller \(sdlearn.editing.crop_and_resize\(image, 64\)")
    with pytest.raises(ValueError, match=message):
        sample(tiny_pipe, P, steps=1, height=2048, width=2048)  # refused before any work
    with pytest.raises(ValueError, match="allow_large=True"):
        initial_latents(tiny_pipe, 1, 2048, 2048)
    with pytest.warns(LargeSizeWarning, match="has 256x256 latents, 1,024×"):
        noise = initial_latents(tiny_pipe, 1, 2048, 2048, allow_large=True)
    assert noise.shape == (1, 4, 256, 256)
