"""How exercises are graded: run the learner's function against the reference, explain mistakes.

An exercise is a reference function, a few fixed inputs, and the typical mistakes, each a wrong
function with the hint to give when the learner's answer matches it. :func:`grade` runs the
learner's function on every input, then the reference, and answers with one line:

- ✓ correct: the learner's function is handed back;
- ✗ wrong: a specific hint when the answer matches a known mistake, else what differed; the
  reference is handed back so the rest of the lesson still runs;
- ○ not done yet (the blank raised ``NotImplementedError``): the reference is handed back.

>>> import torch
>>> def forgot_to_double(x):
...     return x
>>> ex = Exercise("double", reference=lambda x: 2 * x, inputs=[(torch.ones(3),)],
...               mistakes=[Mistake(forgot_to_double, "multiply by 2")])
>>> double = grade(ex, forgot_to_double)
✗ double: multiply by 2 (The reference solution is used from here on.)
>>> double.status, float(double(torch.ones(1))[0])
('wrong', 2.0)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

MARK = {"correct": "✓", "wrong": "✗", "blank": "○", "error": "✗"}
FALLBACK = "The reference solution is used from here on."


class Mistake(NamedTuple):
    """A typical wrong answer, written as a function, and the hint for an answer that equals it."""

    fn: Callable
    hint: str


class Check(NamedTuple):
    """An extra test of each answer, ``test(output, expected, args)`` → True when fine, and the
    hint to give when it fails."""

    test: Callable
    hint: str


@dataclass(frozen=True)
class Marker:
    """What an adapted answer becomes when it cannot be compared as a value (an output object
    instead of a tensor, two calls that differ). A :class:`Check` looks for it by identity.

    >>> NOT_DONE = Marker("not done")
    >>> NOT_DONE, same(NOT_DONE, NOT_DONE), same(NOT_DONE, 1.0)
    ('not done', True, False)
    """

    meaning: str

    def __repr__(self) -> str:
        return repr(self.meaning)


@dataclass
class Exercise:
    """A graded exercise: the reference, fixed inputs, typical mistakes with their hints.

    ``inputs`` is a list of argument tuples (or a function that makes it, called once per
    grading). ``mistakes`` are :class:`Mistake` records, ``checks`` :class:`Check` records.
    ``adapt`` is applied to every function compared (to silence it, or to turn what it returns
    into something comparable).
    """

    name: str
    reference: Callable
    inputs: Sequence[tuple] | Callable[[], Sequence[tuple]]
    mistakes: list[Mistake] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    atol: float = 1e-4
    rtol: float = 1e-4
    adapt: Callable[[Callable], Callable] | None = None

    def cases(self) -> Sequence[tuple]:
        return self.inputs() if callable(self.inputs) else self.inputs

    def compared(self, fn: Callable) -> Callable:
        return self.adapt(fn) if self.adapt else fn


class Graded:
    """The function to use after grading, with the verdict: ``status``, ``message``, ``ok``."""

    def __init__(self, fn: Callable, status: str, message: str):
        self.fn, self.status, self.message = fn, status, message

    @property
    def ok(self) -> bool:
        return self.status == "correct"

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.status}: {self.message}>"


HALF = ("torch.float16", "torch.bfloat16")


def same(a, b, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    """Equal values: tensors/arrays (same shape, close), sequences element-wise, or ``==``.

    Half-precision tensors (a model in float16 on a GPU) are compared to at least 1e-2: one
    float16 rounding is already about 1e-3 of the value, and equivalent code rounds differently.

    >>> same([1.0, (2, 3)], [1.00001, (2, 3)]), same(np.zeros(2), np.zeros(3))
    (True, False)
    """
    a, b = (np.asarray(v) if type(v).__module__.startswith("PIL") else v for v in (a, b))
    if _is_array(a) or _is_array(b):
        if not (_is_array(a) and _is_array(b)):
            return False
        if any(str(getattr(v, "dtype", "")) in HALF for v in (a, b)):
            atol, rtol = max(atol, 1e-2), max(rtol, 1e-2)
        a, b = _to_np(a), _to_np(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            return bool(np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], atol, rtol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y, atol, rtol) for x, y in zip(a, b,
                                                                                 strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int):
        return abs(a - b) <= atol + rtol * abs(b)
    return a == b


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("torch")


def _to_np(x) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.cpu().numpy()
    return np.asarray(x)


def describe(x) -> str:
    """A short description of a value for messages: shape and a few statistics.

    >>> describe(np.ones((2, 3))), describe([1, 2])
    ('shape (2, 3), mean 1, std 0', 'list of 2')
    """
    if _is_array(x):
        a = _to_np(x)
        if a.dtype.kind in "fc" and a.size:
            return f"shape {tuple(a.shape)}, mean {a.mean():.4g}, std {a.std():.4g}"
        return f"shape {tuple(a.shape)}"
    if isinstance(x, list | tuple):
        return f"{type(x).__name__} of {len(x)}"
    return repr(x)[:80]


def grade(exercise: Exercise, fn: Callable | None, *, quiet: bool = False) -> Graded:
    """Grade ``fn`` on the exercise's inputs; print one line; return what to use next."""
    verdict = _verdict(exercise, fn)
    if not quiet:
        print(f"{MARK[verdict.status]} {exercise.name}: {verdict.message}")
    return verdict


def _own_copy(args: tuple) -> tuple:
    """The arguments with every tensor or array copied, so that a learner's function that
    changes its inputs in place cannot change what the reference and the mistakes are given."""
    torch = sys.modules.get("torch")  # loaded if any argument is a tensor

    def copied(a):
        if torch is not None and isinstance(a, torch.Tensor):
            return a.clone()
        return a.copy() if isinstance(a, np.ndarray) else a

    return tuple(copied(a) for a in args)


def _verdict(ex: Exercise, fn: Callable | None) -> Graded:
    """The learner's function runs first on each case, so a blank costs no reference run."""
    if fn is None:
        return Graded(ex.reference, "blank", f"not done yet. {FALLBACK}")
    if not callable(fn):
        return Graded(ex.reference, "error", f"pass the function itself (its name, without "
                      f"calling it), not {describe(fn)}. ({FALLBACK})")
    cases = ex.cases()
    yours, reference = ex.compared(fn), ex.compared(ex.reference)
    for args in cases:
        try:
            got = yours(*_own_copy(args))
        except NotImplementedError:
            return Graded(ex.reference, "blank", "not done yet — replace the `raise "
                          f"NotImplementedError` with your code. {FALLBACK}")
        except Exception as error:  # the learner's code may fail in any way
            return Graded(ex.reference, "error", f"your function raised {type(error).__name__}:"
                          f" {error} ({FALLBACK})")
        expected = reference(*args)
        if same(got, expected, ex.atol, ex.rtol):
            continue
        return Graded(ex.reference, "wrong", f"{_what_is_wrong(ex, got, expected, args)} "
                      f"({FALLBACK})")
    return Graded(fn, "correct", f"correct ({len(cases)} check{'s' * (len(cases) > 1)}).")


def _what_is_wrong(ex: Exercise, got, expected, args: tuple) -> str:
    """The hint of the first mistake that gives the same answer, or of the first failed check,
    else what differed."""
    for wrong, hint in ex.mistakes:
        try:
            if same(got, ex.compared(wrong)(*args), ex.atol, ex.rtol):
                return hint
        except Exception:  # a mistake that does not apply to these inputs
            continue
    for test, hint in ex.checks:
        if not test(got, expected, args):
            return hint
    return f"expected {describe(expected)}, got {describe(got)}."
