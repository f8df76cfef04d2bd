"""Graders of lesson 08, speed: ``check.cold_and_warm``, ``check.weights_bytes`` and
``check.overall_speedup``.

The bytes' reference is :func:`sdlearn.speed.weights_bytes`; the timing is graded on calls
whose durations are known, with clocks that leave out what a busy machine adds to them.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> graded = weights_bytes(lambda module, dtype: speed.weights_bytes(module, dtype), pipe)
✓ weights_bytes: correct (3 checks).
"""

from __future__ import annotations

import statistics
import time
import timeit
from unittest import mock

import torch

from .. import speed
from .common import grader
from .grading import Exercise, Mistake


def _timed_calls(f, durations, repeats):
    """Run ``f(fn, repeats)`` where the n-th call of ``fn`` takes ``durations[n]`` seconds (the
    last one repeats). ``fn`` really sleeps, but while ``f`` runs the clocks of ``time`` (and
    ``timeit``) leave out what a busy machine adds to each sleep, so a correct answer comes out
    the same on a loaded CI runner as on an idle laptop."""
    real = time.perf_counter
    late = 0.0
    calls = 0

    def fn():
        nonlocal late, calls
        wanted = durations[min(calls, len(durations) - 1)]
        start = real()
        time.sleep(wanted)
        late += real() - start - wanted
        calls += 1

    def steady(clock):
        def on_time():
            return clock() - late
        return on_time

    clocks = {name: steady(getattr(time, name)) for name in ("perf_counter", "monotonic", "time")}
    with mock.patch.multiple(time, **clocks), \
            mock.patch.object(timeit, "default_timer", clocks["perf_counter"]):
        return f(fn, repeats)


def _on_known_durations(f):
    """Grade ``f(fn, repeats)`` on the exercise's inputs ``(durations, repeats)``."""

    def timed_calls(durations, repeats):
        return _timed_calls(f, durations, repeats)

    return timed_calls


def _timed(fn) -> float:
    start = time.perf_counter()  # looked up at each call, so the steady clock while graded
    fn()
    return time.perf_counter() - start


@grader
def cold_and_warm(pipe) -> Exercise:
    """Exercise: ``cold_and_warm(fn, repeats)`` → ``(first_call_seconds, median_seconds)``:
    time one warm-up call alone, then the median of ``repeats`` further calls."""

    def reference(fn, repeats):
        return _timed(fn), statistics.median(_timed(fn) for _ in range(repeats))

    def mean_of_rest(fn, repeats):
        return _timed(fn), statistics.mean(_timed(fn) for _ in range(repeats))

    def no_warmup(fn, repeats):
        runs = [_timed(fn) for _ in range(repeats)]
        return runs[0], statistics.median(runs)

    def all_together(fn, repeats):
        runs = [_timed(fn) for _ in range(repeats + 1)]
        return runs[0], statistics.mean(runs)

    def fastest(fn, repeats):
        return _timed(fn), min(_timed(fn) for _ in range(repeats))

    # Each grading times a fresh function: a slow first call, then a mix. In the first plan the
    # median of the calls after the first differs from every mistake's figure.
    # Short sleeps keep the grading quick; the steady clocks make them exact however short.
    plan = [(0.075, 0.01, 0.06, 0.06, 0.01, 0.02), (0.1, 0.015, 0.045)]
    return Exercise(
        "cold_and_warm", reference, [(plan[0], 5), (plan[1], 2)],
        adapt=_on_known_durations,
        mistakes=[
            Mistake(mean_of_rest, "use the median of the timed runs, not the mean: one slow run "
                                  "(a hiccup of the machine) should not move the result"),
            Mistake(no_warmup, "time the first call apart (the warm-up), then `repeats` more "
                               "calls for the median — the first call is slower and must not be "
                               "one of them"),
            Mistake(all_together, "keep the first call out of the summary: time it alone, then "
                                  "take the median of the `repeats` calls after it"),
            Mistake(fastest, "that is the fastest run; report the median, the typical run"),
        ], atol=0.004, rtol=0.0)


@grader
def weights_bytes(pipe) -> Exercise:
    """Exercise: ``weights_bytes(module, dtype)`` → bytes of the module's parameters once cast
    to ``dtype``."""

    def parameter_count(m, d):
        return sum(p.numel() for p in m.parameters())

    def four_bytes_each(m, d):
        return sum(p.numel() * 4 for p in m.parameters())

    def in_mib(m, d):
        return speed.weights_bytes(m, d) / 2 ** 20

    def in_mb(m, d):
        return speed.weights_bytes(m, d) / 1e6

    cases = [(pipe.unet, torch.float32), (pipe.unet, torch.float16),
             (pipe.text_encoder, torch.bfloat16)]
    return Exercise(
        "weights_bytes", speed.weights_bytes, cases,
        mistakes=[
            Mistake(parameter_count, "that is the number of parameters: multiply each by the "
                                     "bytes per element, dtype.itemsize (4 for float32, 2 for "
                                     "float16)"),
            Mistake(four_bytes_each, "that counts 4 bytes per parameter whatever the dtype; use "
                                     "dtype.itemsize (4 for float32, 2 for float16 and bfloat16)"),
            Mistake(in_mib, "return bytes, not MiB"),
            Mistake(in_mb, "return bytes, not MB"),
        ], atol=0, rtol=0)


@grader
def overall_speedup(pipe) -> Exercise:
    """Exercise (derive it): ``overall_speedup(parts, part, factor)`` → how much faster the whole
    call gets when only ``parts[part]`` (seconds) runs ``factor`` times faster (Amdahl's law)."""
    measured = {"text encoder": 0.006, "UNet steps": 0.134, "VAE decode": 0.017,
                "the rest": 0.014}
    tenth = {"text encoder": 0.02, "UNet steps": 0.5, "VAE decode": 0.3, "the rest": 0.18}

    def reference(parts, part, factor):
        total = sum(parts.values())
        return total / (total - parts[part] + parts[part] / factor)

    def everything_faster(parts, part, factor):
        return factor

    def share_times_factor(parts, part, factor):
        return factor * parts[part] / sum(parts.values())

    def inverted(parts, part, factor):
        return 1 / reference(parts, part, factor)

    def time_saved(parts, part, factor):
        return parts[part] - parts[part] / factor

    return Exercise(
        "overall_speedup", reference, [(measured, "UNet steps", 1.45), (tenth, "UNet steps", 4.0),
                                       (tenth, "VAE decode", 2.0)],
        mistakes=[
            Mistake(everything_faster, "only one part gets faster: the others take as long as "
                                       "before, so the whole gains less than the part"),
            Mistake(share_times_factor, "work out the new total: the other parts unchanged plus "
                                        "parts[part] / factor; the speed-up is old total / new "
                                        "total"),
            Mistake(inverted, "upside down: a speed-up is old time / new time, above 1 when "
                              "faster"),
            Mistake(time_saved, "that is the time saved, in seconds; return the ratio old total "
                                "/ new total"),
        ])
