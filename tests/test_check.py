"""Every grader accepts the reference, names typical mistakes, and never breaks the lesson."""

import pytest
import torch

from sdlearn import load_pipeline
from sdlearn.check import EXERCISES
from sdlearn.grading import grade


@pytest.fixture(scope="module", params=["tiny", "other sizes"])
def pipe(request, tiny_pipe, small_model_dir):
    if request.param == "tiny":
        return tiny_pipe
    return load_pipeline(small_model_dir)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_reference_is_accepted(pipe, name, capsys):
    ex = EXERCISES[name](pipe)
    verdict = grade(ex, ex.reference)
    assert verdict.ok and verdict.fn is ex.reference
    assert capsys.readouterr().out.startswith(f"✓ {name}: correct")


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_typical_mistakes_get_their_hint(pipe, name, capsys):
    ex = EXERCISES[name](pipe)
    assert len(ex.mistakes) + len(ex.checks) >= 2
    for wrong, hint in ex.mistakes:
        verdict = grade(ex, wrong)
        assert verdict.status == "wrong", hint
        assert hint in verdict.message
        assert verdict.fn is ex.reference, "the reference is handed back"
        assert capsys.readouterr().out.startswith(f"✗ {name}: {hint}")


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_blank_and_crash_hand_back_the_reference(tiny_pipe, name, capsys):
    ex = EXERCISES[name](tiny_pipe)

    def blank(*args):
        raise NotImplementedError

    def crash(*args):
        raise KeyError("oops")

    assert grade(ex, blank).status == "blank" and grade(ex, blank).fn is ex.reference
    assert "not done yet" in capsys.readouterr().out
    verdict = grade(ex, crash)
    assert verdict.status == "error" and "KeyError" in verdict.message
    assert verdict.fn is ex.reference


def test_hard_coded_scaling_factor_is_spotted(small_model_dir):
    from sdlearn.check import SD_SCALING_FACTOR, scale_latents

    pipe = load_pipeline(small_model_dir)
    assert pipe.vae.config.scaling_factor != SD_SCALING_FACTOR
    verdict = scale_latents(lambda latents, vae: latents * 0.18215, pipe)
    assert verdict.status == "wrong" and "0.18215" in verdict.message


def test_non_repeatable_image_is_explained(tiny_pipe):
    from sdlearn.check import seeded_image

    def no_generator(pipe, prompt, seed, steps):
        return pipe(prompt, num_inference_steps=steps).images[0]

    verdict = seeded_image(no_generator, tiny_pipe)
    assert verdict.status == "wrong" and "generator=" in verdict.message


@pytest.mark.parametrize("scheduler", ["pndm", "euler", "ddim"])
def test_reference_loop_equals_the_pipeline(scheduler):
    from sdlearn import make_generator
    from sdlearn.check import _loop

    pipe = load_pipeline(scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    prompt = "a big red circle at the top left"
    theirs = pipe(prompt, num_inference_steps=4, output_type="latent",
                  generator=make_generator(3)).images
    assert (_loop(pipe, prompt, 3, 4, 7.5) == theirs).all()


@pytest.mark.parametrize("scheduler", ["pndm", "euler"])
def test_reference_img2img_equals_the_pipeline(scheduler):
    from diffusers import StableDiffusionImg2ImgPipeline

    from sdlearn import make_generator
    from sdlearn.check import _img2img
    from sdlearn.models import quiet_loading
    from sdlearn.shapes import random_scene, render_image

    pipe = load_pipeline(scheduler=scheduler)
    with quiet_loading():
        i2i = StableDiffusionImg2ImgPipeline.from_pipe(pipe)
    i2i.set_progress_bar_config(disable=True)
    image = render_image(random_scene(4), 64)
    theirs = i2i("a red circle", image=image, strength=0.6, num_inference_steps=5,
                 output_type="latent", generator=make_generator(2)).images
    assert torch.equal(_img2img(pipe, image, "a red circle", 0.6, 2, 5, 7.5), theirs)


def test_timing_is_graded_the_same_on_a_busy_machine(tiny_pipe, monkeypatch):
    """On a loaded runner a sleep overruns; a correct answer must still be correct, and a
    mistake still get its own hint, not another's."""
    import itertools
    import time

    sleep = time.sleep
    overruns = itertools.cycle([0.05, 0.0, 0.03, 0.01])
    monkeypatch.setattr(time, "sleep", lambda seconds: sleep(seconds + next(overruns)))

    ex = EXERCISES["cold_and_warm"](tiny_pipe)
    assert grade(ex, ex.reference, quiet=True).ok
    for wrong, hint in ex.mistakes:
        verdict = grade(ex, wrong, quiet=True)
        assert verdict.status == "wrong" and hint in verdict.message
