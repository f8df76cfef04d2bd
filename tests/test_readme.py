"""The README's commands are the ones CI runs, so a missing install step shows."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    marked = [ci[i + 1].strip() for i, line in enumerate(ci) if re.match(r"# README: ", line)]
    assert len(marked) == 2
    for command in marked:
        assert command in readme, f"{command!r} from .ci/run is not in the README"


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert nb.stem in readme
