"""Learner notebooks and solutions are generated from the authored lessons (exercises.authoring)."""

import json
import re
from pathlib import Path

import pytest

from sdlearn.cli import main
from sdlearn.exercises.authoring import (
    BEGIN,
    BLANK,
    END,
    authored_markdown,
    learner_markdown,
    learner_source,
    lessons,
    make_learner,
    make_solution,
    result_blocks,
    solution_source,
)

ROOT = Path(__file__).resolve().parents[1]

READING = """Run the cell.
<!-- BEGIN RESULT: Which cell does *square* attend to most? -->
*square* sends 24% of its attention to its own cell.

That is 1.7 times its share.
<!-- END RESULT -->
<!-- BEGIN RESULT -->
Two of the five fell apart.
<!-- END RESULT -->
Then go on.
"""

SOLVED = f"""def double(x):
    {BEGIN}
    y = 2 * x
    return y
    {END}


print(double(2))
"""


def _notebook(*sources):
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# A lesson"]},
                      *({"cell_type": "code", "execution_count": 3, "source": src,
                         "outputs": [{"output_type": "stream", "name": "stdout", "text": "4\n"}],
                         "metadata": {"execution": {"iopub.status.idle": "2026-01-01"}}}
                        for src in sources)],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def lessons_dir(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "00_intro.ipynb").write_text(json.dumps(_notebook(SOLVED)))
    (folder / "01_more.ipynb").write_text(json.dumps(_notebook(["x = 1\n", "print(x)"])))
    (folder / "notes.ipynb").write_text(json.dumps(_notebook("not a lesson")))
    return folder


def test_a_solution_becomes_one_blank_at_its_indentation():
    assert learner_source(SOLVED) == f"def double(x):\n    {BLANK}\n\n\nprint(double(2))\n"
    assert learner_source(SOLVED.splitlines(keepends=True)) == learner_source(SOLVED)
    assert solution_source(SOLVED) == "def double(x):\n    y = 2 * x\n    return y\n\n\n" \
                                      "print(double(2))\n"


@pytest.mark.parametrize("source, error", [
    (f"{BEGIN}\n{BEGIN}\n{END}\n", f"line 2: {BEGIN!r} inside the solution begun at line 1"),
    (f"x = 1\n{END}\n", f"line 2: {END!r} without {BEGIN!r} before it"),
    (f"x = 1\n  {BEGIN}\ny = 2\n", f"line 2: {BEGIN!r} without {END!r} after it"),
    (f"{BEGIN}\n{END}\n{END}\n", f"line 3: {END!r} without {BEGIN!r}"),
])
def test_unbalanced_markers_are_refused_with_their_line(source, error):
    with pytest.raises(ValueError, match="^" + re.escape(error)):
        learner_source(source)


def test_learner_version_clears_outputs_and_solutions_keep_them():
    nb = _notebook(SOLVED)
    learner, solution = make_learner(nb), make_solution(nb)
    code = learner["cells"][1]
    assert code["source"] == learner_source(SOLVED) and code["outputs"] == []
    assert code["execution_count"] is None and "execution" not in code["metadata"]
    assert learner["cells"][0] == nb["cells"][0], "markdown is kept as it is"
    assert solution["cells"][1]["source"] == solution_source(SOLVED)
    assert solution["cells"][1]["outputs"] == nb["cells"][1]["outputs"]
    assert nb["cells"][1]["source"] == SOLVED, "the authored notebook is left alone"


def test_exercises_writes_then_checks_the_learner_versions(lessons_dir, capsys):
    learner = lessons_dir / "learner"
    assert main(["exercises", "--notebooks", str(lessons_dir), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert not learner.exists(), "--check writes nothing"

    assert main(["exercises", "--notebooks", str(lessons_dir)]) == 0
    assert capsys.readouterr().out.count("wrote ") == 2
    assert sorted(p.name for p in learner.iterdir()) == ["00_intro.ipynb", "01_more.ipynb"]
    written = json.loads((learner / "00_intro.ipynb").read_text())
    assert "".join(written["cells"][1]["source"]) == learner_source(SOLVED)

    assert main(["exercises", "--notebooks", str(lessons_dir), "--check"]) == 0
    assert main(["exercises", "--notebooks", str(lessons_dir)]) == 0
    assert "wrote" not in capsys.readouterr().out, "notebooks in step are not rewritten"

    (lessons_dir / "01_more.ipynb").write_text(json.dumps(_notebook("x = 2\n")))
    assert main(["exercises", "--notebooks", str(lessons_dir), "--check"]) == 1
    assert capsys.readouterr().err.strip() == f"out of date: {learner / '01_more.ipynb'} " \
                                              "(run `sdlearn exercises`)"


def test_exercises_writes_solutions_and_learner_versions_elsewhere(lessons_dir, tmp_path):
    solutions, learner = tmp_path / "solutions", tmp_path / "blanks"
    assert main(["exercises", "--notebooks", str(lessons_dir), "--learner", str(learner),
                 "--solutions", str(solutions)]) == 0
    assert (learner / "00_intro.ipynb").exists() and not (lessons_dir / "learner").exists()
    solved = json.loads((solutions / "00_intro.ipynb").read_text())
    assert "".join(solved["cells"][1]["source"]) == solution_source(SOLVED)
    assert solved["cells"][1]["outputs"], "solutions keep the authored outputs"
    assert sorted(p.name for p in solutions.iterdir()) == ["00_intro.ipynb", "01_more.ipynb"]


def test_exercises_names_the_notebook_and_cell_of_a_bad_marker(lessons_dir, capsys):
    (lessons_dir / "01_more.ipynb").write_text(json.dumps(_notebook("x = 1\n", f"{BEGIN}\n")))
    assert main(["exercises", "--notebooks", str(lessons_dir)]) == 2
    err = capsys.readouterr().err
    assert "01_more.ipynb: cell 2, line 1:" in err and "without" in err


def test_exercises_refuses_a_folder_without_lessons(tmp_path, capsys):
    assert main(["exercises", "--notebooks", str(tmp_path)]) == 2
    assert "no lesson notebooks" in capsys.readouterr().err


def test_a_result_block_becomes_what_to_look_for_in_the_learner_version():
    assert learner_markdown(READING) == ("Run the cell.\nWhich cell does *square* attend to "
                                         "most?\nThen go on.\n")
    assert authored_markdown(READING) == ("Run the cell.\n*square* sends 24% of its attention "
                                          "to its own cell.\n\nThat is 1.7 times its share.\n"
                                          "Two of the five fell apart.\nThen go on.\n")
    assert result_blocks(READING) == ["*square* sends 24% of its attention to its own cell.\n\n"
                                      "That is 1.7 times its share.\n",
                                      "Two of the five fell apart.\n"]
    nb = _notebook("x = 1\n")
    nb["cells"][0]["source"] = READING.splitlines(keepends=True)
    assert make_learner(nb)["cells"][0]["source"] == learner_markdown(READING)
    assert make_solution(nb)["cells"][0]["source"] == authored_markdown(READING)


@pytest.mark.parametrize("source, error", [
    ("<!-- BEGIN RESULT: a -->\n<!-- BEGIN RESULT: b -->\n", "line 2: BEGIN RESULT inside"),
    ("a\n<!-- END RESULT -->\n", "line 2: <!-- END RESULT --> without a BEGIN RESULT"),
    ("a\n<!-- BEGIN RESULT: b -->\nc\n", "line 2: BEGIN RESULT without <!-- END RESULT -->"),
])
def test_unbalanced_result_markers_are_refused_with_their_line(source, error):
    with pytest.raises(ValueError, match="^" + re.escape(error)):
        learner_markdown(source)
    nb = _notebook("x = 1\n")
    nb["cells"][0]["source"] = source
    with pytest.raises(ValueError, match="^markdown cell 0, " + re.escape(error)):
        make_learner(nb)


@pytest.mark.parametrize("lesson", lessons(ROOT / "notebooks"), ids=lambda p: p.stem)
def test_learner_versions_keep_no_result_the_lesson_hides(lesson):
    authored = json.loads(lesson.read_text())
    learner = json.loads((ROOT / "notebooks" / "learner" / lesson.name).read_text())
    learner_text = "".join("".join(c["source"]) for c in learner["cells"]
                           if c["cell_type"] == "markdown")
    assert "BEGIN RESULT" not in learner_text and "END RESULT" not in learner_text
    for cell in authored["cells"]:
        if cell["cell_type"] == "markdown":
            for block in result_blocks(cell["source"]):
                # Lines long enough to be the reading's own (a wrapped "scene." may recur).
                for line in (raw.strip() for raw in block.splitlines()):
                    if len(line) >= 30:
                        assert line not in learner_text, f"the learner copy reads: {line!r}"
