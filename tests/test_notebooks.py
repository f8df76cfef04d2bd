"""The learner notebooks: generated from the authored lessons, free of solutions, and runnable.

nbval (``pytest`` on ``notebooks/``) re-runs the authored lessons with the embedded model and
compares their outputs. Here the learner versions — every exercise left blank — run end to end
with two models of other sizes, one in Stable Diffusion 1.x's conventions and one in 2.x's
(v-prediction), which shows both that skipped exercises never break a lesson and that no lesson
depends on the tiny model's numbers or on noise prediction. They run in float16, the precision real
Stable Diffusion gets on a GPU, so that every comparison with diffusers is also checked there.
"""

import json
from pathlib import Path

import pytest

from sdlearn.exercises.authoring import BEGIN, END, lessons, solution_blocks, write_learner_versions

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = lessons(NOTEBOOKS)


def _code(nb):
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_are_lessons():
    assert LESSONS, "no notebooks/NN_*.ipynb found"


def test_learner_versions_are_in_step():
    stale = write_learner_versions(NOTEBOOKS, check=True)
    assert not stale, f"run `sdlearn exercises`: {[p.name for p in stale]} are out of date"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_learner_versions_hold_no_solution(lesson):
    authored = json.loads(lesson.read_text())
    learner = json.loads((NOTEBOOKS / "learner" / lesson.name).read_text())
    learner_code = "\n".join(_code(learner))
    assert BEGIN not in learner_code and END not in learner_code
    blocks = [b for src in _code(authored) for b in solution_blocks(src)]
    assert len(blocks) >= 2, "each lesson has at least two exercises"
    # A solution line may also appear in the lesson's own code; it must not appear more often.
    # "outside" is the authored code with the solution text cut out (not via learner_source).
    outside = "\n".join(_code(authored))
    for block in blocks:
        outside = outside.replace(block, "")
    for block in blocks:
        for line in filter(None, (raw.strip() for raw in block.splitlines())):
            assert learner_code.count(line) == outside.count(line), f"leaked: {line!r}"
    assert learner_code.count("raise NotImplementedError") == len(blocks)
    assert all(not c.get("outputs") for c in learner["cells"] if c["cell_type"] == "code")


# plain_model_dir: SD 1.x's conventions, other sizes, in float16 as on a GPU (CPUs run float16
# too, slowly); vpred_model_dir: SD 2.x's (v-prediction, padding with id 0, linear projections,
# per-block head counts), other sizes again, in float32 — float16 is proven by the first.
@pytest.mark.parametrize("model_fixture, dtype", [("plain_model_dir", "float16"),
                                                  ("vpred_model_dir", "float32")])
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_learner_version_runs_with_another_model(lesson, model_fixture, dtype, tmp_path,
                                                 monkeypatch, request):
    import nbformat
    from nbclient import NotebookClient

    model_dir = request.getfixturevalue(model_fixture)
    monkeypatch.setenv("SDLEARN_MODEL", str(model_dir))
    # its inpainting and depth siblings, as a real model's are named (load_pipeline(task=...))
    for task in ("inpainting", "depth"):
        sibling = request.getfixturevalue(model_fixture.replace("_model_dir", f"_{task}_dir"))
        monkeypatch.setenv(f"SDLEARN_{task.upper()}_MODEL", str(sibling))
    monkeypatch.setenv("SDLEARN_DTYPE", dtype)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    nb = nbformat.read(NOTEBOOKS / "learner" / lesson.name, as_version=4)
    # The lesson's own pipeline says which model and precision it ran with.
    nb.cells.append(nbformat.v4.new_code_cell('print(f"ran with {pipe.name_or_path} in '
                                              '{pipe.unet.dtype}")'))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs if o.output_type == "stream")
    assert printed.count("not done yet") == len(
        [b for src in _code(json.loads(lesson.read_text())) for b in solution_blocks(src)])
    # Shapes-world measurements skip themselves, with a note, on a model that is not one.
    skips = sum('print("Skipped:' in "".join(c.source) for c in nb.cells
                if c.cell_type == "code")
    assert printed.count("Skipped:") == skips
    model, ran_in = nb.cells[-1].outputs[0]["text"].strip().removeprefix("ran with ").split(" in ")
    assert Path(model).resolve() == Path(model_dir).resolve()
    # Lesson 08 measures float32 against float16 itself, so it loads float32 on purpose.
    assert ran_in == ("torch.float32" if lesson.name.startswith("08") else f"torch.{dtype}")
