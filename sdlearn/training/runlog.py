"""The run's log, ``log.jsonl``: one JSON record per line, and the wall time it adds up to.

Every record carries its time and the start of the process that wrote it (``run``), so that a
run resumed several times still knows how long it trained. The exported pipeline ships a copy
(``training_log.jsonl``): the loss curves behind its record.

>>> log_times(Path("no-such-log.jsonl"), now=(1000.0, 1090.0))
{'wall_time_s': 90, 'idle_s': 0}
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

PHASES = ("vae", "decoder", "unet")  # the phases that log steps, in order


class RunLog:
    """Appends records to ``path``, stamped with the time and this process's start."""

    def __init__(self, path: Path, started: float | None = None):
        self.path = Path(path)
        self.started = time.time() if started is None else started

    def write(self, **record) -> None:
        now = time.time()
        record = {"time": round(now, 1), "run": round(self.started, 1),
                  "elapsed": round(now - self.started, 1), **record}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def settings_changes(self) -> list[dict]:
        """Settings changed when the run was resumed, with the UNet step they took effect at."""
        return [{"changed": r["changed"], "unet_step": r["unet_step"]}
                for r in read_log(self.path) if r.get("phase") == "settings"]

    def times(self) -> dict:
        """:func:`log_times` of the run so far, this process included."""
        return log_times(self.path, now=(self.started, time.time()))


def read_log(log_path: Path) -> list[dict]:
    """The records of a log, oldest first; none if there is no log yet."""
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines()]


def log_times(log_path: Path, now: tuple[float, float] | None = None) -> dict:
    """Wall time of a run from its log, and how much of it the run sat idle.

    Each process counts from its start to its last record; the time between processes (the
    run stopped) is not counted, the time a process sat idle is. ``now`` adds the running
    process (start, time). Records of old versions carry no process start: a new process is
    seen where the (phase, step) stops increasing, and counts from its first record.
    Idle time is an estimate: the excess of every gap between two records of one phase over
    five times that phase's median gap (or 30 s, if more), for phases with at least 5 gaps
    (a run paused with SIGSTOP, or starved of CPU by other work).
    """
    records = read_log(log_path)
    process, last_place, segment = [], None, 0
    for r in records:
        if "run" in r:
            process.append(r["run"])
            continue
        place = (PHASES.index(r["phase"]) if r.get("phase") in PHASES else -1, r.get("step", 0))
        if last_place is not None and place <= last_place:
            segment += 1  # an old record: a resumed process logs an earlier place again
        last_place = place
        process.append(f"old-{segment}")
    spans: dict = {}  # process -> [first time, last time]
    gaps: dict = {}  # phase -> the gaps between its records within one process
    for (a, pa), (b, pb) in zip(zip(records, process, strict=True),
                                zip(records[1:], process[1:], strict=True), strict=False):
        if pa == pb and a.get("phase") == b.get("phase"):
            gaps.setdefault(a.get("phase"), []).append(b["time"] - a["time"])
    for r, p in zip(records, process, strict=True):
        start = r.get("run", r["time"])
        span = spans.setdefault(p, [start, start])
        span[0], span[1] = min(span[0], start), max(span[1], r["time"])
    if now is not None:
        span = spans.setdefault(round(now[0], 1), [now[0], now[1]])
        span[1] = max(span[1], now[1])
    idle = 0.0
    for phase_gaps in gaps.values():
        if len(phase_gaps) >= 5:
            usual = max(5 * statistics.median(phase_gaps), 30.0)
            idle += sum(g - usual for g in phase_gaps if g > usual)
    return {"wall_time_s": round(sum(b - a for a, b in spans.values())),
            "idle_s": round(idle)}
