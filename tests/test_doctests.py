"""The examples in the docstrings of sdlearn's modules run and show what they claim."""

import doctest
import importlib
import pkgutil

import pytest

import sdlearn

# Every module of the package, found rather than listed, so a new module's examples run too.
MODULES = ["sdlearn"] + sorted(m.name for m in pkgutil.walk_packages(sdlearn.__path__, "sdlearn.")
                               if not m.name.startswith("sdlearn.data"))
# Modules whose docstrings hold no example (yet): each one listed here is a choice.
WITHOUT_EXAMPLES = {"sdlearn.cli", "sdlearn.paths"}


def test_every_module_is_found():
    assert {"sdlearn.sampling", "sdlearn.shapes.world", "sdlearn.cli"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name in WITHOUT_EXAMPLES:
        assert result.attempted == 0, f"{name} has examples now: take it off WITHOUT_EXAMPLES"
    else:
        assert result.attempted > 0, f"{name} has no docstring example that runs"
