"""The CPU itself: how many threads, how OpenMP threads wait, which instructions it has.

- ``torch.set_num_threads(n)`` takes effect at once, so :func:`thread_rows` times each count
  in this process (and puts the count back).
- ``OMP_WAIT_POLICY`` does not: OpenMP reads it once, when the process starts. ``ACTIVE``
  threads spin between parallel regions (fast hand-offs, but a core kept busy), ``PASSIVE``
  threads sleep (they share the cores with other work, and pay to wake up). On a machine
  whose cores are shared, spinning threads slow each other down; on a quiet one, sleeping
  threads made the tiny UNet 2.5× slower (the README's note). :func:`wait_policy_rows` times
  each policy in a fresh Python process started with the variable set (``python -c``, a fixed
  small generation); this process's own policy is whatever it was started with (recorded in
  :func:`sdlearn.records.machine`).
- bfloat16 is worth trying on a CPU only with bfloat16 matrix instructions
  (:func:`bf16_instructions`: AVX-512 BF16 or AMX); without them it is emulated, and slower
  than float32 (lesson 08's table shows it).

>>> bf16_instructions({"avx2", "avx512f", "avx512_bf16"})
['avx512_bf16']
>>> bf16_instructions({"avx2"})
[]
>>> thread_counts(2), thread_counts(16)
([1, 2], [1, 2, 4, 8, 16])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from ..shapes.adherence import GUIDANCE, STEPS
from .solvers import time_picture, timed_row
from .timing import Timing

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo's names for bfloat16 matrix units
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
WAIT_POLICIES = ("unset", "PASSIVE", "ACTIVE")  # "unset": OpenMP's own default


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's instruction-set flags as Linux lists them (an empty set where there is no
    ``/proc/cpuinfo``: macOS, Windows)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_instructions(flags: set[str] | None = None) -> list[str]:
    """Which bfloat16 matrix instructions the CPU has (``[]``: none, stay in float32)."""
    flags = cpu_flags() if flags is None else flags
    return [name for name in BF16_FLAGS if name in flags]


def thread_counts(cores: int | None = None) -> list[int]:
    """1, 2, 4, ... up to the number of cores, and that number itself."""
    cores = cores or os.cpu_count() or 1
    counts = [1]
    while counts[-1] * 2 < cores:
        counts.append(counts[-1] * 2)
    return counts + ([cores] if cores > 1 else [])


def thread_rows(pipe, counts=None, *, steps: int = STEPS, guidance: float = GUIDANCE,
                repeats: int = 3) -> list[dict]:
    """One picture timed with ``torch.set_num_threads(n)`` for each ``n`` of ``counts``
    (default :func:`thread_counts`); the thread count is put back afterwards.

    Threads do not change what is computed, only how the sums are split, so these rows are
    timed, not scored (a pixel may differ by a level: sums added in another order).
    """
    counts = list(counts) if counts is not None else thread_counts()
    for n in counts:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"counts={counts}: each thread count is a whole number, 1 or more")
    own = torch.get_num_threads()
    rows = []
    try:
        for n in counts:
            torch.set_num_threads(n)
            rows.append(timed_row(f"torch.set_num_threads({n})",
                                  time_picture(pipe, steps=steps, guidance=guidance,
                                               repeats=repeats), steps=steps, threads=n))
    finally:
        torch.set_num_threads(own)
    return rows


# What a fresh process runs to time a policy: the pipeline as loaded, one picture at a time.
_TIME_IN_A_FRESH_PROCESS = """
import json, sys
import torch
from sdlearn import load_pipeline
from sdlearn.speed.solvers import time_picture
args = json.loads(sys.argv[1])
if args["threads"]:
    torch.set_num_threads(args["threads"])
pipe = load_pipeline(args["model"], device="cpu", dtype=torch.float32,
                     scheduler=args["scheduler"])
pipe.set_progress_bar_config(disable=True)
t = time_picture(pipe, steps=args["steps"], guidance=args["guidance"], repeats=args["repeats"])
print(json.dumps({"cold": t.cold, "runs": t.runs, "threads": torch.get_num_threads()}))
"""


def wait_policy_rows(model=None, policies=WAIT_POLICIES, *, scheduler: str | None = None,
                     steps: int = STEPS, guidance: float = GUIDANCE, repeats: int = 3,
                     threads: int | None = None, timeout: float = 600) -> list[dict]:
    """One picture timed under each ``OMP_WAIT_POLICY`` of ``policies``, each in a fresh
    Python process started with the variable set (``"unset"``: without it).

    The variable only takes effect when a process starts, hence the subprocesses: each
    loads ``model`` (default: the embedded tiny model; ``scheduler`` as in
    :func:`sdlearn.load_pipeline`) and times :func:`~sdlearn.speed.solvers.time_picture`.
    """
    rows = []
    for policy in policies:
        policy = "unset" if policy == "unset" else str(policy).upper()
        if policy not in ("unset", "ACTIVE", "PASSIVE"):
            raise ValueError(f"policy {policy!r} in policies: OMP_WAIT_POLICY is ACTIVE or "
                             "PASSIVE ('unset' for OpenMP's default)")
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy != "unset":
            env["OMP_WAIT_POLICY"] = policy
        args = {"model": None if model is None else str(model), "scheduler": scheduler,
                "steps": steps, "guidance": guidance, "repeats": repeats, "threads": threads}
        done = subprocess.run([sys.executable, "-c", _TIME_IN_A_FRESH_PROCESS, json.dumps(args)],
                              env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"timing OMP_WAIT_POLICY={policy} in a fresh process failed "
                               f"(exit {done.returncode}):\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(timed_row(f"OMP_WAIT_POLICY={policy}", Timing(result["cold"], result["runs"]),
                              steps=steps, threads=result["threads"], wait_policy=policy))
    return rows


__all__ = ["BF16_FLAGS", "SHOWN_FLAGS", "WAIT_POLICIES", "bf16_instructions", "cpu_flags",
           "thread_counts", "thread_rows", "wait_policy_rows"]
