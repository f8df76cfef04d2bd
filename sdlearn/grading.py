"""How exercises are graded: run the learner's function against the reference, explain mistakes.

An exercise is a reference function, a few fixed inputs, and the typical mistakes, each a wrong
function with the hint to give when the learner's answer matches it. :func:`grade` runs the
learner's function on every input and answers with one line:

- ✓ correct: the learner's function is handed back;
- ✗ wrong: a specific hint when the answer matches a known mistake, else what differed; the
  reference is handed back so the rest of the lesson still runs;
- ○ not done yet (the blank raised ``NotImplementedError``): the reference is handed back.

>>> import torch
>>> ex = Exercise("double", reference=lambda x: 2 * x, inputs=[(torch.ones(3),)],
...               mistakes=[(lambda x: x, "multiply by 2")])
>>> double = grade(ex, lambda x: x)
✗ double: multiply by 2 (The reference solution is used from here on.)
>>> double.status, float(double(torch.ones(1))[0])
('wrong', 2.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

MARK = {"correct": "✓", "wrong": "✗", "blank": "○", "error": "✗"}


@dataclass
class Exercise:
    """A graded exercise: the reference, fixed inputs, typical mistakes with their hints.

    ``inputs`` is a list of argument tuples (or a function that makes it, called once per
    grading). ``checks`` are extra ``(test, hint)`` pairs run on each output: ``test(output,
    expected, args)`` returns True when fine.
    """

    name: str
    reference: Callable
    inputs: Sequence[tuple] | Callable[[], Sequence[tuple]]
    mistakes: list[tuple[Callable, str]] = field(default_factory=list)
    checks: list[tuple[Callable, str]] = field(default_factory=list)
    atol: float = 1e-4
    rtol: float = 1e-4
    adapt: Callable[[Callable], Callable] | None = None  # applied to every function compared

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
    """A short description of a value for messages: shape and a few statistics."""
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


def _verdict(ex: Exercise, fn: Callable | None) -> Graded:
    fallback = "The reference solution is used from here on."
    if fn is None:
        return Graded(ex.reference, "blank", f"not done yet. {fallback}")
    if not callable(fn):
        return Graded(ex.reference, "error", f"pass the function itself (its name, without "
                      f"calling it), not {describe(fn)}. ({fallback})")
    cases = ex.cases()
    yours, reference = ex.compared(fn), ex.compared(ex.reference)
    for args in cases:
        expected = reference(*args)
        try:
            got = yours(*args)
        except NotImplementedError:
            return Graded(ex.reference, "blank", "not done yet — replace the `raise "
                          f"NotImplementedError` with your code. {fallback}")
        except Exception as error:  # the learner's code may fail in any way
            return Graded(ex.reference, "error", f"your function raised {type(error).__name__}:"
                          f" {error} ({fallback})")
        if same(got, expected, ex.atol, ex.rtol):
            continue
        for wrong, hint in ex.mistakes:
            try:
                if same(got, ex.compared(wrong)(*args), ex.atol, ex.rtol):
                    return Graded(ex.reference, "wrong", f"{hint} ({fallback})")
            except Exception:  # a mistake that does not apply to these inputs
                continue
        for test, hint in ex.checks:
            if not test(got, expected, args):
                return Graded(ex.reference, "wrong", f"{hint} ({fallback})")
        return Graded(ex.reference, "wrong", f"expected {describe(expected)}, got "
                      f"{describe(got)}. ({fallback})")
    return Graded(fn, "correct", f"correct ({len(cases)} check{'s' * (len(cases) > 1)}).")
