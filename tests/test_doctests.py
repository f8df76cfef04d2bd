"""The examples in the docstrings of sdlearn's modules run and show what they claim."""

import doctest
import importlib

import pytest

MODULES = ["sdlearn.text", "sdlearn.images", "sdlearn.device", "sdlearn.grading",
           "sdlearn.shapes", "sdlearn.shapes.world", "sdlearn.shapes.render",
           "sdlearn.shapes.captions", "sdlearn.shapes.scorer", "sdlearn.models",
           "sdlearn.sampling", "sdlearn.attention", "sdlearn.check", "sdlearn.widgets",
           "sdlearn.editing", "sdlearn.masks", "sdlearn.speed", "sdlearn",
           "sdlearn.train"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
