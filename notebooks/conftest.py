"""How the tests share the worker processes (pytest-xdist, ``-n auto`` in ``pyproject.toml``).

nbval runs a notebook's cells in order, in one kernel, so a notebook goes to one worker whole.
Every other test goes to whichever worker is free: the learner-notebook runs, a minute each,
all live in ``tests/test_notebooks.py`` and would otherwise queue on one worker.
"""

from xdist.scheduler import LoadScopeScheduling


class NotebooksWhole(LoadScopeScheduling):
    """xdist's scope scheduling with a notebook as the scope of its cells, a test its own."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::")[0]
        return path if path.endswith(".ipynb") else nodeid


def pytest_xdist_make_scheduler(config, log):
    return NotebooksWhole(config, log)
