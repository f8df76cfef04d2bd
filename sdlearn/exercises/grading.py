"""How exercises are graded: run the learner's function against the reference, explain mistakes.

An exercise is a reference function, a few fixed inputs, and the typical mistakes, each a wrong
function with the hint to give when the learner's answer matches it. :func:`grade` runs the
learner's function on every input, then the reference, and answers with one line:

- ✓ correct: the learner's function is handed back;
- ✗ wrong: a specific hint when the answer matches a known mistake, else what differed; the
  reference is handed back so the rest of the lesson still runs;
- ○ not done yet (the blank raised ``NotImplementedError``): the reference is handed back.

An answer of the wrong kind (None, a NumPy array for a tensor, another dtype or device) is named
before its values are compared, since the next cell would fail on it. The learner's function is
given copies of the tensors; one that changes them in place is handed back to run on copies.
What a grading changes in the pipeline and its scheduler is put back (:mod:`.restore`); what the
learner's function changed that would last (``pipe.scheduler``, ``alphas_cumprod``) is named.

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

import functools
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .restore import Snapshot, equal

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
    """Grade ``fn`` on the exercise's inputs; print one line; return what to use next.

    The pipelines and schedulers among the inputs are put back as they were afterwards, even
    when the grading is interrupted (■ says where it stopped).
    """
    progress = _Progress()
    try:
        verdict = _verdict(exercise, fn, progress)
    except KeyboardInterrupt:
        if not quiet:
            print(f"■ {exercise.name}: interrupted {progress}. Nothing was graded; the pipeline "
                  "and its scheduler are as they were before grading.")
        raise
    if not quiet:
        print(f"{MARK[verdict.status]} {exercise.name}: {verdict.message}")
    return verdict


class _Progress:
    """Where a grading is, for the message of an interrupted one."""

    def __init__(self):
        self.what, self.case, self.cases, self.since = "before it started", 0, 0, time.monotonic()

    def at(self, what: str, case: int, cases: int):
        self.what, self.case, self.cases = what, case, cases

    def __str__(self) -> str:
        where = f" on check {self.case} of {self.cases}" if self.cases else ""
        return f"while {self.what} ran{where}, after {time.monotonic() - self.since:.0f} s"


def _own_copy(args: tuple) -> tuple:
    """The arguments with every tensor or array copied, so that a learner's function that
    changes its inputs in place cannot change what the reference and the mistakes are given."""
    torch = sys.modules.get("torch")  # loaded if any argument is a tensor

    def copied(a):
        if torch is not None and isinstance(a, torch.Tensor):
            return a.clone()
        return a.copy() if isinstance(a, np.ndarray) else a

    return tuple(copied(a) for a in args)


def _changed_in_place(fn: Callable, given: tuple, args: tuple) -> list[str]:
    """The names of the arguments whose tensors or arrays ``fn`` changed (its copies ``given``
    of ``args``)."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    return [names[i] if i < len(names) else f"argument {i + 1}"
            for i, (mine, theirs) in enumerate(zip(given, args, strict=True))
            if mine is not theirs and not equal(mine, theirs)]


def on_copies(fn: Callable) -> Callable:
    """``fn`` called on copies of its tensor and array arguments, so it cannot change the
    caller's (what a correct answer that works in place is handed back as)."""

    @functools.wraps(fn)
    def on_copies(*args, **kwargs):
        return fn(*_own_copy(args), **kwargs)

    return on_copies


def _verdict(ex: Exercise, fn: Callable | None, progress: _Progress | None = None) -> Graded:
    """The learner's function runs first on each case, so a blank costs no reference run."""
    if fn is None:
        return Graded(ex.reference, "blank", f"not done yet. {FALLBACK}")
    if not callable(fn):
        return Graded(ex.reference, "error", f"pass the function itself (its name, without "
                      f"calling it), not {describe(fn)}. ({FALLBACK})")
    progress = progress or _Progress()
    cases = ex.cases()
    snapshot = Snapshot(cases)
    try:
        return _graded(ex, fn, cases, snapshot, progress)
    finally:
        snapshot.restore()  # what the reference and the mistakes changed, without a word


def _graded(ex: Exercise, fn: Callable, cases, snapshot: Snapshot, progress: _Progress) -> Graded:
    yours, reference = ex.compared(fn), ex.compared(ex.reference)
    in_place: list[str] = []
    for n, args in enumerate(cases, 1):
        progress.at("your function", n, len(cases))
        given = _own_copy(args)
        try:
            got = yours(*given)
        except NotImplementedError:
            return _put_back(ex, snapshot, "blank", "not done yet — replace the `raise "
                             "NotImplementedError` with your code.", f" {FALLBACK}")
        except Exception as error:  # the learner's code may fail in any way
            return _put_back(ex, snapshot, "error", f"your function raised "
                             f"{type(error).__name__}: {error}", f" ({FALLBACK})")
        changed = snapshot.restore()
        if changed:
            return Graded(ex.reference, "wrong", f"your function changed {', '.join(changed)}; "
                          f"the grader put it back. {_leave_it(changed)} ({FALLBACK})")
        in_place += [name for name in _changed_in_place(fn, given, args) if name not in in_place]
        progress.at("the reference", n, len(cases))
        expected = reference(*args)
        snapshot.restore()
        progress.at("the grader's comparison", n, len(cases))
        problem = form_problem(got, expected)
        if problem is None:
            try:
                if same(got, expected, ex.atol, ex.rtol):
                    continue
            except Exception as error:  # an answer that cannot be compared (a meta tensor)
                problem = (f"your answer could not be compared with the reference "
                           f"({type(error).__name__}: {error}); expected {describe(expected)}.")
        if problem is None:
            problem = _what_is_wrong(ex, got, expected, args, snapshot)
        return Graded(ex.reference, "wrong", f"{problem} ({FALLBACK})")
    message = f"correct ({len(cases)} check{'s' * (len(cases) > 1)})."
    if not in_place:
        return Graded(fn, "correct", message)
    return Graded(on_copies(fn), "correct", f"{message} Your function changes its input "
                  f"{', '.join(in_place)} in place; from here on it is given a copy, so the "
                  "lesson's tensors stay as they are.")


def _leave_it(changed: list[str]) -> str:
    if any(c.startswith("pipe.") for c in changed):
        return ("Use the pipeline as it is given: for another scheduler make a new pipeline, "
                "sdlearn.with_scheduler(pipe, name), instead of setting pipe.scheduler.")
    return ("Read the scheduler's values without changing them: `a = s.alphas_cumprod[t] ** "
            "0.5` makes a new tensor, while `a **= 0.5` or `a.pow_(0.5)` changes the "
            "scheduler's own.")


def _put_back(ex: Exercise, snapshot: Snapshot, status: str, message: str,
              fallback: str) -> Graded:
    """The verdict on a function that stopped; what it had changed is put back and named."""
    changed = snapshot.restore()
    if changed:
        message += (f". Before that it changed {', '.join(changed)}; the grader put it back. "
                    f"{_leave_it(changed)}")
    return Graded(ex.reference, status, message + fallback)


def form_problem(got, expected) -> str | None:
    """What is wrong with the kind of answer (None; NumPy for torch; the dtype; the device),
    or None when it is of the expected kind. Its values are compared after.

    >>> import torch
    >>> print(form_problem(torch.ones(2).double(), torch.ones(2)))  # doctest: +ELLIPSIS
    your tensor is torch.float64 (double precision), but the model works in torch.float32: ...
    """
    if got is None and expected is not None:
        return "your function returned None — did you forget to `return` the result?"
    if isinstance(got, list | tuple) and isinstance(expected, list | tuple) and \
            len(got) == len(expected):
        for i, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
            problem = form_problem(mine, theirs)
            if problem:
                return f"in item {i} of what you returned, {problem}"
        return None
    if _is_tensor(expected) and isinstance(got, np.ndarray):
        return ("you returned a NumPy array, but the next cells give the answer to the model, "
                "which takes torch tensors: stay in torch (or convert back with "
                f"torch.from_numpy(x).to({_where(expected)}))")
    if isinstance(expected, np.ndarray) and _is_tensor(got):
        return "you returned a torch tensor; return a NumPy array (x.cpu().numpy())"
    if _is_tensor(got) and _is_tensor(expected):
        if got.device != expected.device:
            no_values = " (a meta tensor has a shape but no values)" \
                if got.device.type == "meta" else ""
            return (f"your tensor is on {got.device}{no_values}, but the model's are on "
                    f"{expected.device}: make new tensors on the inputs' device (device="
                    f"latents.device), or move it with .to('{expected.device}')")
        if got.dtype != expected.dtype:
            return _dtype_hint(got, expected)
    if isinstance(got, np.ndarray) and isinstance(expected, np.ndarray) and \
            got.dtype != expected.dtype:
        fix = (" — return the picture itself (a PIL image, pipe(...).images[0])"
               if expected.dtype == np.uint8 else f": convert it with .astype({expected.dtype})")
        return f"your array is {got.dtype}, expected {expected.dtype}{fix}"
    return None


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "dtype") and hasattr(x, "device")


def _where(t) -> str:
    return f"{t.dtype}" if t.device.type == "cpu" else f"'{t.device}', {t.dtype}"


def _dtype_hint(got, expected) -> str:
    mine, theirs = got.dtype, expected.dtype
    if got.is_floating_point() and expected.is_floating_point():
        if mine.itemsize > theirs.itemsize:
            return (f"your tensor is {mine}{' (double precision)' * (mine.itemsize == 8)}, "
                    f"but the model works in {theirs}: a float64 NumPy array or tensor, or "
                    f".double(), widened it — keep the inputs' dtype (or convert with "
                    f".to({theirs}))")
        return (f"your tensor is {mine}, but the model works in {theirs}: don't cast to lower "
                f"precision (.half()) — keep the inputs' dtype (or convert with .to({theirs}))")
    if expected.is_floating_point():
        return (f"your tensor is {mine}, expected {theirs}: it is used in arithmetic with the "
                f"latents — convert it with .to({theirs})")
    return (f"your tensor is {mine}, expected {theirs} — convert it with .to({theirs})")


def _what_is_wrong(ex: Exercise, got, expected, args: tuple,
                   snapshot: Snapshot | None = None) -> str:
    """The hint of the first mistake that gives the same answer, or of the first failed check,
    else what differed."""
    for wrong, hint in ex.mistakes:
        try:
            if same(got, ex.compared(wrong)(*args), ex.atol, ex.rtol):
                return hint
        except Exception:  # a mistake that does not apply to these inputs
            continue
        finally:
            if snapshot is not None:
                snapshot.restore()  # a mistake may set the scheduler's timesteps too
    for test, hint in ex.checks:
        try:
            if not test(got, expected, args):
                return hint
        except Exception:  # a check that does not apply to this answer: say what came back
            continue
    if _is_tensor(expected) and not _is_tensor(got) and not isinstance(got, Marker):
        return f"expected a torch tensor ({_described(expected)}), got {_described(got)}."
    return f"expected {_described(expected)}, got {_described(got)}."


def _described(x) -> str:
    try:
        return describe(x)
    except Exception:  # a value that cannot be read (a meta tensor)
        return f"a {type(x).__name__}"
