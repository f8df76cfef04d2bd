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
