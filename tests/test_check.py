"""Every grader accepts the reference, names typical mistakes, and never breaks the lesson.

The references call sdlearn's own functions (sampling.sample, editing.img2img, ...), which
test_sampling, test_editing and test_inpainting prove equal to diffusers.
"""

import json
import re
from pathlib import Path

import pytest
import torch

from sdlearn import check, load_pipeline
from sdlearn.check import EXERCISES
from sdlearn.exercises.grading import Exercise, Marker, Mistake, grade

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module", params=["tiny", "other sizes", "v-prediction"])
def pipe(request, tiny_pipe, small_model_dir, vpred_model_dir):
    """The embedded model, one of other sizes, and one in SD 2.x's conventions."""
    if request.param == "tiny":
        return tiny_pipe
    return load_pipeline(small_model_dir if request.param == "other sizes" else vpred_model_dir)


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
        assert wrong.__name__ != "<lambda>", f"name the mistake {hint!r}"
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


def test_every_lessons_graders_live_in_its_module():
    """A newcomer finds the grader of ``check.NAME`` in lesson NN at exercises/lessonNN.py."""
    graded = 0
    for lesson in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(lesson.read_text())["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for name in set(re.findall(r"check\.(\w+)\(", code)):
            assert getattr(check, name).__module__ == f"sdlearn.exercises.lesson{lesson.name[:2]}"
            graded += 1
    assert graded == len(EXERCISES) == len(check.__all__) - 2


def _counting(fn, calls):
    def counted(*args):
        calls.append(fn.__name__)
        return fn(*args)
    return counted


def test_the_learners_function_runs_first():
    """A blank costs no reference run; a correct answer runs before the reference, case by case."""
    calls = []

    def reference(x):
        return 2 * x

    def blank(x):
        raise NotImplementedError

    ex = Exercise("double", _counting(reference, calls), [(1,), (2,)])
    verdict = grade(ex, _counting(blank, calls), quiet=True)
    assert verdict.status == "blank" and calls == ["blank"]
    assert verdict(3) == 6, "the reference is handed back"
    calls.clear()

    def mine(x):
        return x + x

    assert grade(ex, _counting(mine, calls), quiet=True).ok
    assert calls == ["mine", "reference", "mine", "reference"]


def test_an_answer_that_changes_its_inputs_is_graded_on_its_result():
    """The learner's function gets its own copy of the tensors: changing them in place cannot
    change what the reference computes, nor turn a right answer into a mistake's hint."""

    def unchanged(latents):
        return latents

    ex = Exercise("double", lambda x: 2 * x, [(torch.ones(3),)],
                  mistakes=[Mistake(unchanged, "multiply by 2")])

    def in_place(latents):
        latents *= 2
        return latents

    assert grade(ex, in_place, quiet=True).ok
    assert torch.equal(ex.cases()[0][0], torch.ones(3))


def test_a_marker_is_explained_by_its_check():
    from sdlearn.exercises.grading import Check

    odd = Marker("an odd answer")
    ex = Exercise("one", lambda: 1.0, [()], adapt=lambda fn: lambda: odd if fn() == 0 else fn(),
                  checks=[Check(lambda got, expected, args: got is not odd, "no zeros")])
    assert grade(ex, lambda: 0, quiet=True).message.startswith("no zeros")
    assert grade(ex, lambda: 2.0, quiet=True).message.startswith("expected 1.0, got 2.0.")


# ------------------------------------------------- odd answers (the bad-inputs review, section 5)


def _tensor_exercise(reference=lambda x: 2 * x):
    return Exercise("double", reference, [(torch.ones(3),)])


@pytest.mark.parametrize("answer, words", [
    (lambda x: (2 * x).numpy(), "you returned a NumPy array"),
    (lambda x: (2 * x).double(), "your tensor is torch.float64 (double precision), but the "
                                 "model works in torch.float32"),
    (lambda x: (2 * x).half(), "your tensor is torch.float16, but the model works in "
                               "torch.float32: don't cast to lower precision"),
    (lambda x: (2 * x).long(), "your tensor is torch.int64, expected torch.float32"),
    (lambda x: torch.empty(3, device="meta"), "your tensor is on meta (a meta tensor has a "
                                              "shape but no values), but the model's are on cpu"),
    (lambda x: None, "your function returned None — did you forget to `return`"),
])
def test_an_answer_of_the_wrong_kind_is_named(answer, words):
    """A NumPy array, another dtype or device is not marked ✓ (the next cell would fail); an
    answer that cannot be compared (a meta tensor) or None does not crash the grader."""
    verdict = grade(_tensor_exercise(), answer, quiet=True)
    assert verdict.status == "wrong" and verdict.fn is not answer
    assert words in verdict.message


def test_the_kind_of_each_item_is_checked():
    ex = Exercise("pair", lambda x: (x, 2 * x), [(torch.ones(3),)])
    verdict = grade(ex, lambda x: (x, (2 * x).double()), quiet=True)
    assert verdict.message.startswith("in item 1 of what you returned, your tensor is "
                                      "torch.float64")


def test_a_check_that_cannot_read_the_answer_does_not_crash_the_grader():
    from sdlearn.exercises.grading import Check

    ex = Exercise("shaped", lambda x: 2 * x, [(torch.ones(3),)],
                  checks=[Check(lambda got, expected, args: got.shape == expected.shape,
                                "wrong shape")])
    verdict = grade(ex, lambda x: [2.0, 2.0, 2.0], quiet=True)
    assert verdict.status == "wrong"
    assert verdict.message.startswith("expected a torch tensor (shape (3,), mean 2, std 0), got "
                                      "list of 3.")


def test_wrong_kinds_from_the_real_graders(tiny_pipe, capsys):
    """The review's cases 5.5, 5.6, 5.7 and 5.10 on the lessons' own graders."""
    from sdlearn import masks

    assert check.scale_latents(lambda x, v: (x * v.config.scaling_factor).numpy(),
                               tiny_pipe).status == "wrong"
    assert check.scale_latents(lambda x, v: (x * v.config.scaling_factor).double(),
                               tiny_pipe).status == "wrong"
    assert check.scale_latents(lambda x, v: (x * v.config.scaling_factor).half(),
                               tiny_pipe).status == "wrong"
    assert check.latent_mask(lambda m, f: masks.latent_mask(m, f).numpy(),
                             tiny_pipe).status == "wrong"
    assert check.latent_mask(lambda m, f: masks.latent_mask(m, f) > 0, tiny_pipe).status == \
        "wrong"
    assert check.latent_mask(lambda m, f: None, tiny_pipe).status == "wrong"
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1].strip()[:22] for line in out] == [
        "you returned a NumPy a", "your tensor is torch.f", "your tensor is torch.f",
        "you returned a NumPy a", "your tensor is torch.b", "your function returned"]


def test_seeded_image_returning_none_says_none(tiny_pipe):
    """Case 5.11: not "got shape ()"."""
    calls = []

    def forgot_return(pipe, prompt, seed, steps):
        calls.append(seed)

    verdict = check.seeded_image(forgot_return, tiny_pipe)
    assert verdict.status == "wrong" and "returned None" in verdict.message
    assert calls == [1], "called once, not twice, and no mistakes were run"


def test_a_correct_answer_that_works_in_place_leaves_the_callers_tensors(tiny_pipe, capsys):
    """Cases 5.13 and 5.14: graded on the result; handed back so it changes no caller's tensor."""
    def in_place(latents, vae):
        return latents.mul_(vae.config.scaling_factor)

    scale_latents = check.scale_latents(in_place, tiny_pipe)
    assert scale_latents.ok and "changes its input latents in place" in scale_latents.message
    x = torch.ones(1, 4, 8, 8)
    scaled = scale_latents(x, tiny_pipe.vae)
    assert torch.equal(x, torch.ones(1, 4, 8, 8))
    assert torch.allclose(scaled, x * tiny_pipe.vae.config.scaling_factor)
    guidance = check.guidance(lambda u, c, s: u.add_(s * (c - u)), tiny_pipe)
    assert guidance.ok and "changes its input u in place" in guidance.message
    out = capsys.readouterr().out
    assert "✓ scale_latents: correct (2 checks). Your function" in out


def test_a_scheduler_changed_in_place_is_put_back_and_named(tiny_pipe):
    """Case 5.15: `a.pow_(0.5)` on a view of alphas_cumprod."""
    before = tiny_pipe.scheduler.alphas_cumprod.clone()

    def corrupting(x0, noise, t, s):
        a = s.alphas_cumprod[int(t)].pow_(0.5)
        return a * x0 + (1 - a ** 2) ** 0.5 * noise

    verdict = check.add_noise_by_hand(corrupting, tiny_pipe)
    assert torch.equal(tiny_pipe.scheduler.alphas_cumprod, before)
    assert verdict.status == "wrong" and verdict.fn is not corrupting
    assert "changed scheduler.alphas_cumprod in place (entries [10]); the grader put it back" \
        in verdict.message


def test_a_scheduler_set_by_the_learner_is_put_back_and_named(tiny_pipe):
    """Case 5.16: pipe.scheduler set, then an error."""
    from sdlearn.schedulers import make_scheduler

    own = tiny_pipe.scheduler

    def switching(pipe, *args):
        pipe.scheduler = make_scheduler("euler", pipe.scheduler.config)
        raise RuntimeError("boom")

    verdict = check.sample_by_hand(switching, tiny_pipe)
    assert tiny_pipe.scheduler is own and tiny_pipe.config["scheduler"][1] == type(own).__name__
    assert verdict.status == "error"
    assert verdict.message.startswith("your function raised RuntimeError: boom. Before that it "
                                      "changed pipe.scheduler (to EulerDiscreteScheduler; it was")
    assert verdict.message.endswith("(The reference solution is used from here on.)")


def test_the_graders_own_runs_leave_the_scheduler_as_it_was(tiny_pipe):
    """Case 5.17: a loop in the reference (or a mistake) sets the timesteps; that is undone,
    without a word, as is a correct answer's own set_timesteps."""
    scheduler = tiny_pipe.scheduler
    scheduler.set_timesteps(25)
    timesteps = scheduler.timesteps.clone()

    def loop(pipe, steps):
        pipe.scheduler.set_timesteps(steps)
        return int(pipe.scheduler.timesteps[-1])

    def mistake(pipe, steps):
        pipe.scheduler.set_timesteps(steps + 1)
        return -1

    ex = Exercise("loop", loop, [(tiny_pipe, 4), (tiny_pipe, 5)],
                  mistakes=[Mistake(mistake, "one step more")])
    assert grade(ex, loop, quiet=True).message == "correct (2 checks)."
    assert grade(ex, lambda pipe, steps: -2, quiet=True).status == "wrong"
    assert scheduler.num_inference_steps == 25 and torch.equal(scheduler.timesteps, timesteps)
    assert tiny_pipe.scheduler is scheduler


def test_an_interrupted_grading_says_where_and_puts_the_pipeline_back(tiny_pipe, capsys):
    """Case 5.12: a long answer can be stopped; the message says so, and the pipe is intact."""
    scheduler = tiny_pipe.scheduler
    steps = scheduler.num_inference_steps

    def endless(pipe):
        pipe.scheduler.set_timesteps(3)
        pipe.scheduler = None
        raise KeyboardInterrupt  # what the kernel's ■ does to a loop

    ex = Exercise("forever", lambda pipe: 1, [(tiny_pipe,), (tiny_pipe,)])
    with pytest.raises(KeyboardInterrupt):
        grade(ex, endless)
    assert capsys.readouterr().out.startswith(
        "■ forever: interrupted while your function ran on check 1 of 2, after 0 s. Nothing "
        "was graded; the pipeline and its scheduler are as they were before grading.")
    assert tiny_pipe.scheduler is scheduler and scheduler.num_inference_steps == steps


def test_widening_with_random_weights_or_the_wrong_dimension_is_explained(tiny_pipe, capsys):
    from sdlearn.exercises.lesson07 import _widened

    check.widen_conv(lambda conv, n: _widened(conv, n, new="random"), tiny_pipe)
    assert "the new channels' weights must be zero" in capsys.readouterr().out
    check.widen_conv(lambda conv, n: torch.nn.Conv2d(conv.in_channels, n, 3), tiny_pipe)
    assert "widen dimension 1, keep the output channels" in capsys.readouterr().out
    check.widen_conv(lambda conv, n: conv.weight, tiny_pipe)
    assert "return the new layer, a torch.nn.Conv2d" in capsys.readouterr().out
    original = tiny_pipe.unet.conv_in.weight.clone()
    graded = check.widen_conv(lambda conv, n: _widened(conv, n), tiny_pipe)
    assert graded.ok and torch.equal(tiny_pipe.unet.conv_in.weight, original)
