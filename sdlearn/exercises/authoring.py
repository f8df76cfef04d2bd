"""Making the learner's notebooks (with blanks) and the solutions from the authored lessons.

The authored notebook (``notebooks/NN_topic.ipynb``) is the one source of truth: every exercise
is written complete, its solution between two marker lines. In the learner's version the lines
from BEGIN to END become one ``raise NotImplementedError(...)`` at the same indentation, and
every output is cleared. In the solutions the marker lines are simply dropped.

Markdown that reads results the learner is about to produce (a measured share, which pictures
failed) is wrapped in a RESULT block; the learner's version shows, in its place, the text of
the opening line — what to look for instead of what was found:

>>> text = '''Look at the maps.
... <!-- BEGIN RESULT: Which cell gets most of the attention of *square*? -->
... *square* sends 24% of its attention to the square's cell.
... <!-- END RESULT -->
... '''
>>> print(learner_markdown(text), end="")
Look at the maps.
Which cell gets most of the attention of *square*?
>>> print(authored_markdown(text), end="")
Look at the maps.
*square* sends 24% of its attention to the square's cell.

>>> cell = '''def scale_latents(latents, vae):
...     ### BEGIN SOLUTION
...     return latents * vae.config.scaling_factor
...     ### END SOLUTION
... '''
>>> print(learner_source(cell), end="")
def scale_latents(latents, vae):
    raise NotImplementedError("Exercise: write your code here")
>>> print(solution_source(cell), end="")
def scale_latents(latents, vae):
    return latents * vae.config.scaling_factor
>>> learner_source("x = 1\\n### END SOLUTION\\n")
Traceback (most recent call last):
...
ValueError: line 2: '### END SOLUTION' without '### BEGIN SOLUTION' before it

From the command line::

    sdlearn exercises                        # writes notebooks/learner/*.ipynb
    sdlearn exercises --solutions build/solutions
    sdlearn exercises --check                # exit 1 if notebooks/learner is out of date
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BLANK = 'raise NotImplementedError("Exercise: write your code here")'
RESULT_BEGIN = re.compile(r"^[ \t]*<!--\s*BEGIN RESULT:?(.*?)-->[ \t]*$")
RESULT_END = re.compile(r"^[ \t]*<!--\s*END RESULT\s*-->[ \t]*$")
LESSON_GLOB = "[0-9][0-9]_*.ipynb"


def _lines(source) -> list[str]:
    text = "".join(source) if isinstance(source, list) else source
    return text.splitlines(keepends=True)


def learner_source(source) -> str:
    """The cell's code with each solution replaced by a ``NotImplementedError`` blank."""
    out, begun = [], None  # begun: the line number of the open BEGIN
    for number, line in enumerate(_lines(source), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if begun:
                raise ValueError(f"line {number}: {BEGIN!r} inside the solution begun at line "
                                 f"{begun}: close it with {END!r} first")
            begun = number
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{BLANK}\n")
        elif stripped == END:
            if not begun:
                raise ValueError(f"line {number}: {END!r} without {BEGIN!r} before it")
            begun = None
        elif not begun:
            out.append(line)
    if begun:
        raise ValueError(f"line {begun}: {BEGIN!r} without {END!r} after it")
    return "".join(out)


def solution_source(source) -> str:
    """The cell's code without the marker lines."""
    return "".join(line for line in _lines(source) if line.strip() not in (BEGIN, END))


def solution_blocks(source) -> list[str]:
    """The solution code of a cell (what the learner must not see), one string per block.

    >>> solution_blocks(["def f():\\n", "    ### BEGIN SOLUTION\\n", "    return 1\\n",
    ...                  "    ### END SOLUTION\\n"])
    ['    return 1\\n']
    """
    text = "".join(_lines(source))
    return [m.group(1) for m in re.finditer(rf"{re.escape(BEGIN)}\n(.*?)^[ \t]*{re.escape(END)}",
                                            text, flags=re.S | re.M)]


def _markdown(source, learner: bool) -> str:
    out, begun = [], None  # begun: the line number of the open BEGIN RESULT
    for number, line in enumerate(_lines(source), start=1):
        bare = line.rstrip("\n")
        opening, closing = RESULT_BEGIN.match(bare), RESULT_END.match(bare)
        if opening:
            if begun:
                raise ValueError(f"line {number}: BEGIN RESULT inside the block begun at line "
                                 f"{begun}: close it with <!-- END RESULT --> first")
            begun = number
            instead = opening.group(1).strip()
            if learner and instead:
                out.append(instead + "\n")
        elif closing:
            if not begun:
                raise ValueError(f"line {number}: <!-- END RESULT --> without a BEGIN RESULT "
                                 "before it")
            begun = None
        elif not (learner and begun):
            out.append(line)
    if begun:
        raise ValueError(f"line {begun}: BEGIN RESULT without <!-- END RESULT --> after it")
    return "".join(out)


def learner_markdown(source) -> str:
    """A markdown cell as the learner sees it: each RESULT block replaced by its opening text."""
    return _markdown(source, learner=True)


def authored_markdown(source) -> str:
    """A markdown cell without its RESULT marker lines (the solutions' version)."""
    return _markdown(source, learner=False)


def result_blocks(source) -> list[str]:
    """The readings a markdown cell keeps from the learner, one string per RESULT block.

    >>> result_blocks("a\\n<!-- BEGIN RESULT: look -->\\nb\\n<!-- END RESULT -->\\n")
    ['b\\n']
    """
    blocks, current = [], None
    for line in _lines(source):
        if RESULT_BEGIN.match(line.rstrip("\n")):
            current = []
        elif RESULT_END.match(line.rstrip("\n")) and current is not None:
            blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _transform(nb: dict, code, markdown, clear: bool) -> dict:
    nb = json.loads(json.dumps(nb))  # a deep copy
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            try:
                text = markdown(cell["source"])
            except ValueError as error:
                raise ValueError(f"markdown cell {index}, {error}") from None
            if text != "".join(_lines(cell["source"])):  # a cell without markers stays as it is
                cell["source"] = text
            continue
        if cell["cell_type"] != "code":
            continue
        try:
            cell["source"] = code(cell["source"])
        except ValueError as error:
            raise ValueError(f"cell {index}, {error}") from None
        if clear:
            cell["outputs"], cell["execution_count"] = [], None
            cell.get("metadata", {}).pop("execution", None)  # run timestamps
    return nb


def make_learner(nb: dict) -> dict:
    """The learner's version of a notebook: blanks instead of solutions, what to look for
    instead of results, no outputs."""
    return _transform(nb, learner_source, learner_markdown, clear=True)


def make_solution(nb: dict) -> dict:
    """The solutions: the authored notebook with its outputs, markers removed."""
    return _transform(nb, solution_source, authored_markdown, clear=False)


def _text(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _write(nb: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_text(nb), encoding="utf-8")


def lessons(notebooks: Path) -> list[Path]:
    """The authored lessons in ``notebooks``, ``NN_topic.ipynb``, in order."""
    return sorted(Path(notebooks).glob(LESSON_GLOB))


def write_learner_versions(notebooks: Path = Path("notebooks"), learner: Path | None = None,
                           solutions: Path | None = None, *, check: bool = False) -> list[Path]:
    """Write the learner versions (default: into ``NOTEBOOKS/learner``), and the solutions if
    asked; returns the learner notebooks written. With ``check``, write nothing and return
    those that are out of date."""
    notebooks = Path(notebooks)
    learner = Path(learner) if learner else notebooks / "learner"
    changed = []
    for path in lessons(notebooks):
        nb = json.loads(path.read_text(encoding="utf-8"))
        try:
            blanks = make_learner(nb)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        target = learner / path.name
        if not target.exists() or target.read_text(encoding="utf-8") != _text(blanks):
            changed.append(target)
            if not check:
                _write(blanks, target)
        if solutions is not None and not check:
            _write(make_solution(nb), Path(solutions) / path.name)
    return changed
