"""Lesson 08 on the CPU: what makes Stable Diffusion fast where the learner is, in one run.

    python benchmarks/speed_cpu.py                      # the tiny model, 100 held-out scenes
    python benchmarks/speed_cpu.py --compile            # and torch.compile's modes (minutes)
    python benchmarks/speed_cpu.py --out data/speed/cpu-lesson08.json
    python benchmarks/speed_cpu.py --quick              # a smoke run: 2 scenes, 2-3 steps

Every row is timed the same way (one picture, batch 1, through the pipeline: median and spread
of ``--repeats`` runs after a warm-up) and set against the baseline, DDIM at 25 steps in
float32 with the default threads:

- solvers at fewer steps (``speed.SOLVERS``: DPM-Solver++, UniPC, DEIS at 8-15, DDIM at 10 as
  the control), scored on ``--n`` held-out two-object scenes, as *prompts followed per second*;
- ``torch.set_num_threads`` counts, and ``OMP_WAIT_POLICY`` (each policy in a fresh process:
  it takes effect only at process start);
- CPU engines for the UNet, ONNX Runtime and OpenVINO (skipped with a note where the extra
  ``sdlearn[cpu-speed]`` is not installed), scored, since their numerics differ;
- channels_last, ``torch.compile`` modes (with ``--compile``), and bfloat16 only where the CPU
  has bfloat16 instructions (the flags are printed either way);
- the best honest combination: the solver with the most prompts followed per second among
  those whose adherence is at most 0.02 below the baseline's (or ``--combine dpm:10``, chosen
  in advance), the fastest engine and thread count where they beat the spread, scored again.

The solver of the combination is chosen on the same scenes it is reported on; every row is
printed, and ``--combine`` fixes the choice beforehand for a run that is to be cited. Speed-ups
inside the run-to-run spread of the baseline are marked ``~``. The machine (threads, OpenMP
wait policy, CPU) is recorded with the figures (``sdlearn.records``) when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import sdlearn
from sdlearn import speed
from sdlearn.records import write_record
from sdlearn.schedulers import check_scheduler_name

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


def picture(pipe, steps: int) -> np.ndarray:
    """The timed picture (seed 0, the first held-out caption) as floats, to compare rows."""
    from sdlearn.shapes import caption
    from sdlearn.shapes.splits import held_out_scenes

    return pipe(caption(held_out_scenes(1, 2)[0]), num_inference_steps=steps,
                generator=sdlearn.make_generator(0), output_type="np").images[0]


def pixel_diff(pipe, steps: int, reference: np.ndarray) -> float:
    """Largest difference from the baseline's picture, in levels of 255."""
    return float(np.abs(picture(pipe, steps).astype(np.float64) - reference).max() * 255)


def variant_row(pipe, name: str, change, *, steps, repeats, reference, scenes=None, bar=None,
                **fields) -> dict:
    """A changed deep copy of ``pipe`` timed (and scored on ``scenes``); errors become notes."""
    started = time.perf_counter()
    try:
        p = change(copy.deepcopy(pipe))
        prepared = time.perf_counter() - started
        row = speed.run_row(p, name, steps=steps, scenes=scenes, repeats=repeats,
                            progress=bar, **fields)
        row["prepare_s"] = prepared
        row["max_pixel_diff"] = pixel_diff(p, steps, reference)
    except Exception as error:  # a setting this machine cannot run: say so, go on
        return {"setting": name, "error": f"{type(error).__name__}: {error}", **fields}
    return row


def faster(row, base) -> bool:
    """Faster than ``base`` beyond the run-to-run spread of both."""
    return ("median_s" in row and row["median_s"] < base["median_s"]
            and max(row["runs_s"]) < min(base["runs_s"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a folder in diffusers layout "
                        "(default: the embedded tiny model)")
    parser.add_argument("--n", type=int, default=100,
                        help="held-out two-object scenes scored per row (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (default 5)")
    parser.add_argument("--batch", type=int, default=25, help="pictures per call when scoring")
    parser.add_argument("--compile", action="store_true",
                        help="also torch.compile's modes (each compiles for minutes on a CPU)")
    parser.add_argument("--combine", default=None, metavar="SCHEDULER:STEPS",
                        help="the combination's solver, chosen in advance (default: the one "
                             "with most prompts followed per second at equal quality)")
    parser.add_argument("--no-wait-policy", action="store_true",
                        help="skip the OMP_WAIT_POLICY rows (a fresh process each)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 scenes, 2-3 steps, 1 repeat, few rows")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if min(args.n, args.repeats, args.batch) < 1:
        parser.error("--n, --repeats and --batch must be 1 or more")
    combine = None
    if args.combine:
        try:
            name, steps = args.combine.split(":")
            combine = (check_scheduler_name(name), int(steps))
        except ValueError as error:
            parser.error(f"--combine {args.combine}: give SCHEDULER:STEPS, such as dpm:10 "
                         f"({error})")
    if args.quick:
        args.n, args.repeats = min(args.n, 2), 1
        solvers = [("ddim", 3), ("dpm", 2)]
        counts, policies, modes = [1], ("unset",), COMPILE_MODES[:1]
    else:
        solvers, counts, policies, modes = (speed.SOLVERS, speed.thread_counts(),
                                            ("unset", "PASSIVE", "ACTIVE"), COMPILE_MODES)
    base_name, base_steps, *_ = solvers[0]
    started = time.time()

    pipe = sdlearn.load_pipeline(args.model, device="cpu", dtype=torch.float32,
                                 scheduler=base_name)
    pipe.set_progress_bar_config(disable=True)
    scenes = speed.eval_scenes(args.n)
    flags = speed.cpu_flags()
    bf16 = speed.bf16_instructions(flags)
    threads0 = torch.get_num_threads()
    print(f"CPU: {torch.get_num_threads()} torch threads of {speed.thread_counts()[-1]} cores; "
          f"flags {', '.join(f for f in speed.SHOWN_FLAGS if f in flags) or 'unknown'}; "
          f"bfloat16 instructions: {', '.join(bf16) or 'none (bfloat16 rows skipped)'}",
          file=sys.stderr)
    print(f"scoring {args.n} held-out two-object scenes per scored row; {args.repeats} timed "
          "runs per row after a warm-up", file=sys.stderr)

    # The baseline's picture, made first: it also warms up the whole pipeline, so that the
    # first row timed does not pay for what later rows find ready.
    reference = picture(pipe, base_steps).astype(np.float64)
    common = dict(steps=base_steps, repeats=args.repeats, reference=reference)

    # Solvers; the first is the baseline.
    rows = speed.solver_rows(pipe, solvers, scenes=scenes, repeats=args.repeats,
                             batch=args.batch)
    rows[0]["setting"] += " (baseline)"
    base = rows[0]

    # Threads (in this process), and OpenMP waiting (in fresh ones).
    thread = speed.thread_rows(pipe, counts, steps=base_steps, repeats=args.repeats)
    rows += thread
    if not args.no_wait_policy:
        try:
            rows += speed.wait_policy_rows(args.model, policies, scheduler=base_name,
                                           steps=base_steps, repeats=args.repeats,
                                           threads=threads0)
        except RuntimeError as error:
            rows.append({"setting": "OMP_WAIT_POLICY", "error": str(error)})

    # CPU engines for the UNet: scored, since their numerics differ from PyTorch's.
    unet, made = pipe.unet, {}
    for engine, title in (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO")):
        name = f"{title} UNet"
        if not speed.available_engines()[engine]:
            rows.append({"setting": name, "engine": engine,
                         "error": f"not installed: {speed.EXTRA}"})
            continue
        exported = time.perf_counter()
        try:
            made[engine] = speed.engine_unet(pipe, engine)  # exported once, shared by copies
        except Exception as error:
            rows.append({"setting": name, "engine": engine,
                         "error": f"{type(error).__name__}: {error}"})
            continue
        exported = time.perf_counter() - exported

        def with_engine(p, engine=engine):
            p.unet = made[engine]
            return p
        row = variant_row(pipe, name, with_engine, scenes=scenes, engine=engine,
                          scheduler=base_name, **common)
        if "error" not in row:
            row["prepare_s"] = exported
            row["unet_max_diff"] = speed.unet_difference(unet, made[engine])
        rows.append(row)

    # Memory layout, compilation, half precision: the pictures barely change (max_pixel_diff).
    def channels_last(p):
        p.unet.to(memory_format=torch.channels_last)
        p.vae.to(memory_format=torch.channels_last)
        return p
    rows.append(variant_row(pipe, "channels_last", channels_last, **common))
    if args.compile:
        for mode in modes:
            def compiled(p, mode=mode):
                p.unet = torch.compile(p.unet, mode=mode)
                return p
            rows.append(variant_row(pipe, f"torch.compile(mode={mode!r})", compiled, **common))
    else:
        rows.append({"setting": "torch.compile", "error": "skipped: needs --compile "
                     "(minutes of compiling on a CPU)"})
    if bf16:
        def bfloat16(p):
            return p.to(torch.bfloat16)
        rows.append(variant_row(pipe, "bfloat16 weights", bfloat16, scenes=scenes, **common))
    else:
        rows.append({"setting": "bfloat16 weights", "error": "skipped: no avx512_bf16 or "
                     "amx_bf16 on this CPU (emulated, slower)"})

    # The best honest combination, scored on the same scenes.
    speed.compare(rows)
    if combine is None:
        best = speed.fastest_equal_quality(rows[:len(solvers)]) or base
        combine = (best["scheduler"], best["steps"], best.get("scheduler_options", {}))
    else:
        combine = (*combine, {})
    engines = [r for r in rows if r.get("engine") and faster(r, base)]
    engine = min(engines, key=lambda r: r["median_s"])["engine"] if engines else None
    quicker = [r for r in thread if faster(r, base) and r["threads"] != threads0]
    threads = min(quicker, key=lambda r: r["median_s"])["threads"] if quicker else None
    parts = [speed.solver_label(*combine)] + (
        [f"{engine} UNet"] if engine else []) + ([f"{threads} threads"] if threads else [])

    def combination(p):
        p.scheduler = speed.solver_scheduler(combine[0], p.scheduler.config, combine[2])
        if threads:
            torch.set_num_threads(threads)
        if engine:
            p.unet = speed.engine_unet(p, engine, threads=threads) if threads else made[engine]
        return p
    try:
        best = variant_row(pipe, "best combination", combination, scenes=scenes,
                           scheduler=combine[0], engine=engine, threads=threads,
                           **{**common, "steps": combine[1]})
    finally:
        torch.set_num_threads(threads0)
    best.pop("max_pixel_diff", None)  # other steps: another picture, not a numerical difference
    best["parts"] = parts
    rows.append(best)
    # The baseline timed again, last: how far the machine drifted during the run.
    again = speed.run_row(pipe, base["setting"].replace("(baseline)", "(again, last)"),
                          steps=base_steps, repeats=args.repeats, scheduler=base_name)
    rows.append(again)
    speed.compare(rows)

    print(speed.format_cpu_table(rows))
    for row in rows:
        if "max_pixel_diff" in row:
            print(f"  {row['setting']}: picture within {row['max_pixel_diff']:.3f} of 255 of the "
                  "baseline's" + (f"; one UNet call within {row['unet_max_diff']:.1e}"
                                  if "unet_max_diff" in row else ""))
    print(f"\nbest combination: {' + '.join(parts)}")
    if best.get("followed_ratio") is not None:
        print(f"  {best['followed_ratio']:.2f}× the prompts followed per second of the baseline; "
              f"adherence {best['adherence_change']:+.3f} (± {best['adherence_change_se']:.3f}, "
              f"paired) against it")
    elif "error" in best:
        print(f"  could not run: {best['error']}")
    own_policy = os.environ.get("OMP_WAIT_POLICY", "unset").upper().replace("UNSET", "unset")
    waits = [r for r in rows if r.get("wait_policy") not in (None, own_policy)
             and faster(r, base)]
    if waits:  # it cannot join the combination: the variable is read at process start
        fastest = min(waits, key=lambda r: r["median_s"])["wait_policy"]
        print(f"  and OMP_WAIT_POLICY={fastest} was faster than this process's {own_policy}: "
              + ("start Python without the variable" if fastest == "unset" else
                 f"start Python with OMP_WAIT_POLICY={fastest}") + " to have that too")
    print(f"the baseline timed again at the end: {again['median_s']:.3f} s against "
          f"{base['median_s']:.3f} s at the start" + (
              " (inside the spread)" if again["within_spread"] else
              ": the machine's speed drifted during the run; read small speed-ups with care"))
    if args.out:
        write_record(args.out, {
            "model": args.model or "tiny", "n": args.n, "repeats": args.repeats,
            "quick": args.quick, "baseline": speed.solver_label(base_name, base_steps),
            "cpu_flags": sorted(f for f in speed.SHOWN_FLAGS if f in flags),
            "bf16_instructions": bf16, "engines": speed.available_engines(),
            "combination": {"scheduler": combine[0], "steps": combine[1],
                            "scheduler_options": combine[2], "engine": engine,
                            "threads": threads, "chosen": "given" if args.combine else "rule"},
            "rows": rows, "wall_s": round(time.time() - started, 1),
        }, device="cpu")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
