"""Fewer steps with a better solver, measured at equal quality: prompts followed per second.

A faster picture is only a gain if it still shows what was asked. Each row here is timed
(seconds per picture, batch 1, through the pipeline: :func:`~sdlearn.speed.measure`'s median
and spread) and, where it changes the pictures, scored: the pictures of ``n`` held-out scenes'
captions, read back by the shapes scorer (:func:`sdlearn.shapes.adherence.adherence`, the
figures of ``benchmarks/quality.py``). Then

    prompts followed per second = adherence / seconds per picture

and :func:`compare` sets every row against the first (the baseline, DDIM at 25 steps):
its speed-up, whether that speed-up is inside the run-to-run spread, its change of adherence
with a paired standard error (the same scenes and seeds in every row), and the ratio of
prompts followed per second. In a lesson, a solver is one line::

    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe("a big red circle", num_inference_steps=10)

>>> rows = compare([
...     {"setting": "DDIM 25", "median_s": 1.0, "runs_s": [0.9, 1.1], "adherence": 0.86,
...      "correct": [True] * 86 + [False] * 14},
...     {"setting": "DPM-Solver++ 10", "median_s": 0.4, "runs_s": [0.38, 0.45],
...      "adherence": 0.85, "correct": [True] * 85 + [False] * 15}])
>>> rows[1]["speedup"], round(rows[1]["followed_ratio"], 2), rows[1]["within_spread"]
(2.5, 2.47, False)
>>> round(rows[1]["adherence_change"], 2), round(rows[1]["adherence_change_se"], 3)
(-0.01, 0.01)
"""

from __future__ import annotations

import math

from ..device import make_generator
from ..schedulers import check_scheduler_name, make_scheduler
from ..shapes.adherence import GUIDANCE, STEPS, adherence, standard_error
from ..shapes.captions import caption
from ..shapes.splits import EVAL_SEED0, held_out_scenes
from .timing import Timing, measure

BASELINE = ("ddim", 25)
KARRAS = {"use_karras_sigmas": True}  # Karras et al.'s spacing of the noise levels
# Solvers diffusers has, at the step counts their papers recommend (DPM-Solver++ and UniPC:
# 10 to 20 steps; UniPC and DEIS reach further down), and DDIM at 10 as the control: is the
# solver better, or are fewer steps simply enough for this model? A third element, where
# given, changes the scheduler's config (``Scheduler.from_config(config, **options)``).
SOLVERS = [BASELINE, ("ddim", 10), ("dpm", 15), ("dpm", 10), ("dpm", 10, KARRAS),
           ("dpm", 8, KARRAS), ("unipc", 10), ("unipc", 8), ("deis", 10)]
SOLVER_NAMES = {"pndm": "PNDM", "ddim": "DDIM", "lms": "LMS", "euler": "Euler",
                "dpm": "DPM-Solver++", "unipc": "UniPC", "deis": "DEIS"}
ADHERENCE_MARGIN = 0.02  # how far below the baseline's adherence still counts as equal quality


def solver_label(name: str, steps: int, options: dict | None = None) -> str:
    """``"DPM-Solver++ 10 steps"`` for ``("dpm", 10)``, the options in brackets.

    >>> solver_label("unipc", 8)
    'UniPC 8 steps'
    >>> solver_label("dpm", 10, {"use_karras_sigmas": True})
    'DPM-Solver++ 10 steps (Karras)'
    """
    label = f"{SOLVER_NAMES.get(check_scheduler_name(name), name)} {steps} steps"
    tags = ["Karras" if k == "use_karras_sigmas" and v is True else f"{k}={v}"
            for k, v in (options or {}).items()]
    return f"{label} ({', '.join(tags)})" if tags else label


def solver_scheduler(name: str, config, options: dict | None = None):
    """The scheduler ``name`` on the noise schedule ``config``, changed by ``options``: what a
    lesson writes as ``DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True)``.
    """
    return make_scheduler(name, {**config, **(options or {})})


def eval_scenes(n: int = 100, n_objects: int = 2):
    """``n`` held-out scenes of the evaluation range (``EVAL_SEED0``), two objects each by
    default: the harder prompts (the tiny model follows 0.86 of them, 0.98 of one-object
    ones), where a worse solver has room to show."""
    if n < 1:
        raise ValueError(f"n={n}: score at least one scene")
    return held_out_scenes(n, n_objects, EVAL_SEED0)


def followed_per_second(rate: float, seconds_per_image: float) -> float:
    """Prompts followed per second: the share of pictures right over the seconds per picture.

    >>> followed_per_second(0.85, 0.5)
    1.7
    """
    if seconds_per_image <= 0:
        raise ValueError(f"seconds_per_image={seconds_per_image}: a time must be positive")
    return rate / seconds_per_image


def timed_row(setting: str, timing: Timing, **fields) -> dict:
    """A row of the CPU table from a :class:`~sdlearn.speed.Timing` of one picture.

    >>> timed_row("DDIM 25 steps", Timing(2.0, [1.0, 1.5, 1.25]))["median_s"]
    1.25
    """
    return {"setting": setting, **fields, "cold_s": timing.cold, "median_s": timing.median,
            "spread_s": timing.spread, "runs_s": list(timing.runs),
            "images_per_s": 1 / timing.median}


def time_picture(pipe, *, steps: int = STEPS, guidance: float = GUIDANCE, repeats: int = 3,
                 seed: int = 0, prompt: str | None = None) -> Timing:
    """Seconds of one picture through the pipeline, batch 1, as it is set up (warm-up apart).

    The prompt is by default the first held-out two-object caption (as in
    ``benchmarks/quality.py``'s ``seconds_per_image``).
    """
    prompt = prompt or caption(held_out_scenes(1, 2)[0])
    return measure(lambda: pipe(prompt, num_inference_steps=steps, guidance_scale=guidance,
                                generator=make_generator(seed)),
                   repeats=repeats, device=pipe.device)


def run_row(pipe, setting: str, *, steps: int = STEPS, scenes=None, repeats: int = 3,
            guidance: float = GUIDANCE, batch: int = 25, progress=None, **fields) -> dict:
    """Time ``pipe`` as it is set up and, given ``scenes``, score its pictures of them.

    ``fields`` are stored in the row as given (``scheduler=``, ``threads=``, ``engine=``...).
    """
    row = timed_row(setting, time_picture(pipe, steps=steps, guidance=guidance,
                                          repeats=repeats), steps=steps, **fields)
    if scenes is not None:
        rate, _, correct = adherence(pipe, scenes, guidance, progress, steps=steps, batch=batch)
        row.update(adherence=rate, n=len(correct), adherence_se=standard_error(rate, len(correct)),
                   followed_per_s=followed_per_second(rate, row["median_s"]),
                   followed_per_s_se=standard_error(rate, len(correct)) / row["median_s"],
                   correct=correct)
    return row


def solver_rows(pipe, solvers=SOLVERS, *, scenes, repeats: int = 3, guidance: float = GUIDANCE,
                batch: int = 25, progress: bool = True) -> list[dict]:
    """Each ``(scheduler, steps)`` of ``solvers`` (or ``(scheduler, steps, options)``) timed
    and scored on ``scenes``, in order.

    The scheduler is swapped on ``pipe`` for each row (:func:`solver_scheduler`: the model's
    own noise schedule) and put back afterwards.
    """
    from tqdm.auto import tqdm

    solvers = [_check_solver(solver) for solver in solvers]
    own = pipe.scheduler
    rows = []
    bar = tqdm(total=len(solvers) * len(scenes), desc="solvers", unit="img",
               disable=not progress)
    try:
        for name, steps, options in solvers:
            pipe.scheduler = solver_scheduler(name, own.config, options)
            label = solver_label(name, steps, options)
            bar.set_postfix_str(label)
            extra = {"scheduler_options": options} if options else {}
            rows.append(run_row(pipe, label, steps=steps, scenes=scenes, repeats=repeats,
                                guidance=guidance, batch=batch, progress=bar, scheduler=name,
                                **extra))
    finally:
        pipe.scheduler = own
        bar.close()
    return rows


def _check_solver(solver) -> tuple[str, int, dict]:
    name, steps, *rest = solver
    if not isinstance(steps, int) or steps < 1 or len(rest) > 1 or (
            rest and not isinstance(rest[0], dict)):
        raise ValueError(f"{solver!r} in solvers: give (scheduler name, steps) pairs, steps a "
                         "whole number, 1 or more, such as ('dpm', 10), or with a dict of "
                         "options: ('dpm', 10, {'use_karras_sigmas': True})")
    return check_scheduler_name(name), steps, dict(rest[0]) if rest else {}


def paired_change(correct, baseline) -> tuple[float, float]:
    """Change of adherence from ``baseline`` to ``correct`` (each scene's right or wrong, the
    same scenes in the same order), and its paired standard error.

    Pairing removes the scenes' own difficulty from the error: two settings that get the same
    scenes right differ by 0 ± 0, where two independent samples would differ by ± 0.05.

    >>> paired_change([True, True, False, True], [True, False, False, True])
    (0.25, 0.21650635094610965)
    """
    if len(correct) != len(baseline):
        raise ValueError(f"{len(correct)} scenes against the baseline's {len(baseline)}: "
                         "score every row on the same scenes")
    d = [int(a) - int(b) for a, b in zip(correct, baseline, strict=True)]
    mean = sum(d) / len(d)
    return mean, math.sqrt(max(sum(x * x for x in d) / len(d) - mean ** 2, 0) / len(d))


def compare(rows: list[dict], baseline: int = 0) -> list[dict]:
    """Every row set against ``rows[baseline]``, in place (and returned):

    - ``speedup``: the baseline's seconds per picture over the row's;
    - ``within_spread``: the row's timed runs and the baseline's overlap, so the speed-up is
      not told apart from run-to-run noise;
    - where both are scored: ``adherence_change`` with ``adherence_change_se`` (paired),
      ``followed_ratio`` (prompts followed per second over the baseline's) and
      ``equal_quality`` (adherence at most ``ADHERENCE_MARGIN`` below the baseline's).

    Rows that could not run (an ``"error"`` field) are left as they are.
    """
    base = rows[baseline]
    for row in rows:
        if "median_s" not in row or "error" in row:
            continue
        row["speedup"] = base["median_s"] / row["median_s"]
        row["within_spread"] = row is not base and _overlap(row["runs_s"], base["runs_s"])
        if "adherence" in row and "adherence" in base:
            row["adherence_change"], row["adherence_change_se"] = paired_change(
                row["correct"], base["correct"])
            row["equal_quality"] = row["adherence"] >= base["adherence"] - ADHERENCE_MARGIN
            base_followed = base["adherence"] / base["median_s"]
            row["followed_ratio"] = ((row["adherence"] / row["median_s"]) / base_followed
                                     if base_followed else None)  # none followed: no ratio
    return rows


def _overlap(runs, other) -> bool:
    return min(runs) <= max(other) and min(other) <= max(runs)


def fastest_equal_quality(rows: list[dict]) -> dict | None:
    """The scored row with the most prompts followed per second among those of equal quality
    (after :func:`compare`), or ``None``."""
    good = [r for r in rows if r.get("equal_quality")]
    return max(good, key=lambda r: r["adherence"] / r["median_s"], default=None)


def format_cpu_table(rows: list[dict]) -> str:
    """The rows as text: seconds per picture, speed-up (``~`` where inside the spread),
    adherence ± its standard error (n), prompts followed per second and its ratio.

    >>> print(format_cpu_table(compare([
    ...     {"setting": "DDIM 25 steps", "cold_s": 1.2, "median_s": 1.0, "spread_s": 0.2,
    ...      "runs_s": [0.9, 1.1], "adherence": 0.86, "n": 100, "adherence_se": 0.035,
    ...      "correct": [True] * 86 + [False] * 14, "followed_per_s": 0.86},
    ...     {"setting": "2 threads", "cold_s": 1.1, "median_s": 0.95, "spread_s": 0.1,
    ...      "runs_s": [0.9, 1.0]},
    ...     {"setting": "OpenVINO UNet", "error": "ImportError: not installed"}])))
    ... # doctest: +NORMALIZE_WHITESPACE
    setting                        s/picture  spread speed-up    adherence (n) followed/s  ratio
    DDIM 25 steps                     1.000s  0.200s    1.00× 0.86±0.035 (100)       0.86  1.00×
    2 threads                         0.950s  0.100s   ~1.05×                —          —      —
    OpenVINO UNet                  not run: ImportError: not installed
    ~ : inside the run-to-run spread of the baseline (not told apart from noise)
    """
    lines = [f"{'setting':30} {'s/picture':>9} {'spread':>7} {'speed-up':>8} "
             f"{'adherence (n)':>16} {'followed/s':>10} {'ratio':>6}"]
    for row in rows:
        if "median_s" not in row or "error" in row:
            lines.append(f"{row['setting']:30} not run: {row.get('error', '')[:70]}")
            continue
        speedup = row.get("speedup")
        mark = "~" if row.get("within_spread") else ""
        speed = f"{mark}{speedup:.2f}×" if speedup is not None else "—"
        if "adherence" in row:
            quality = f"{row['adherence']:.2f}±{row['adherence_se']:.3f} ({row['n']})"
            followed = f"{row['followed_per_s']:.2f}"
            ratio = (f"{row['followed_ratio']:.2f}×" if row.get("followed_ratio") is not None
                     else "—")
        else:
            quality = followed = ratio = "—"
        lines.append(f"{row['setting']:30} {row['median_s']:8.3f}s {row['spread_s']:6.3f}s "
                     f"{speed:>8} {quality:>16} {followed:>10} {ratio:>6}")
    lines.append("~ : inside the run-to-run spread of the baseline (not told apart from noise)")
    return "\n".join(lines)


__all__ = ["ADHERENCE_MARGIN", "BASELINE", "KARRAS", "SOLVERS", "SOLVER_NAMES", "compare",
           "eval_scenes", "fastest_equal_quality", "followed_per_second", "format_cpu_table",
           "paired_change", "run_row", "solver_label", "solver_rows", "solver_scheduler",
           "time_picture", "timed_row"]
