"""Solvers at equal quality, threads and OpenMP waiting, and the CPU benchmark end to end."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from sdlearn import speed
from sdlearn.schedulers import SD_SCHEDULER_CONFIG, make_scheduler
from sdlearn.shapes import caption, render
from sdlearn.shapes.adherence import standard_error
from sdlearn.speed import threads as threads_module

ROOT = Path(__file__).resolve().parent.parent


class FakePipe:
    """A pipeline that takes ``seconds(steps)`` per picture and paints a caption's scene right
    when ``right(steps, scheduler)``, a blank picture otherwise."""

    device = torch.device("cpu")

    def __init__(self, clock, scenes, seconds, right):
        self.clock, self.seconds, self.right = clock, seconds, right
        self.scenes = {caption(s): s for s in scenes}
        self.scheduler = make_scheduler("ddim", SD_SCHEDULER_CONFIG)
        self.calls = []  # (scheduler class, steps, torch threads) of each call
        self.karras = []  # whether each call's scheduler uses Karras's noise levels

    def __call__(self, prompt, num_inference_steps, guidance_scale, generator, **_):
        prompts = [prompt] if isinstance(prompt, str) else prompt
        name = type(self.scheduler).__name__
        self.calls.append((name, num_inference_steps, torch.get_num_threads()))
        self.karras.append(self.scheduler.config.get("use_karras_sigmas", False))
        self.clock(self.seconds(num_inference_steps) * len(prompts))
        good = self.right(num_inference_steps, name)
        images = [render(self.scenes[p]) if good and p in self.scenes
                  else Image.new("RGB", (64, 64), "white") for p in prompts]
        return SimpleNamespace(images=images)


def test_solver_rows_carry_the_fields_and_the_per_second_arithmetic(fake_clock):
    scenes = speed.eval_scenes(4)
    # 10 ms a step; DPM-Solver++ right at 10 steps, DDIM needs 20; nothing right below 10.
    pipe = FakePipe(fake_clock, scenes, seconds=lambda steps: 0.01 * steps,
                    right=lambda steps, name: steps >= (10 if "DPM" in name else 20))
    own = pipe.scheduler
    rows = speed.compare(speed.solver_rows(
        pipe, [("ddim", 25), ("dpm", 10), ("ddim", 10), ("unipc", 5),
               ("dpm", 10, speed.KARRAS)], scenes=scenes, repeats=3, batch=3, progress=False))
    assert pipe.scheduler is own  # put back
    assert {(name, steps) for name, steps, _ in pipe.calls} == {
        ("DDIMScheduler", 25), ("DPMSolverMultistepScheduler", 10), ("DDIMScheduler", 10),
        ("UniPCMultistepScheduler", 5)}
    base, dpm, ddim10, unipc, karras = rows
    assert [r["setting"] for r in rows] == ["DDIM 25 steps", "DPM-Solver++ 10 steps",
                                            "DDIM 10 steps", "UniPC 5 steps",
                                            "DPM-Solver++ 10 steps (Karras)"]
    assert karras["scheduler_options"] == {"use_karras_sigmas": True}
    used = {(name, k) for (name, *_), k in zip(pipe.calls, pipe.karras, strict=True)}
    assert ("DPMSolverMultistepScheduler", True) in used  # the option reached the scheduler
    assert ("DPMSolverMultistepScheduler", False) in used and ("DDIMScheduler", True) not in used
    assert "scheduler_options" not in dpm
    assert base["median_s"] == pytest.approx(0.25) and dpm["median_s"] == pytest.approx(0.1)
    assert len(base["runs_s"]) == 3 and base["spread_s"] == pytest.approx(0)
    assert (base["adherence"], dpm["adherence"], ddim10["adherence"]) == (1.0, 1.0, 0.0)
    assert base["n"] == 4 and base["correct"] == [True] * 4
    assert base["followed_per_s"] == pytest.approx(1 / 0.25)
    assert dpm["followed_per_s"] == pytest.approx(1 / 0.1)
    assert dpm["speedup"] == pytest.approx(2.5) and dpm["followed_ratio"] == pytest.approx(2.5)
    assert dpm["equal_quality"] and not ddim10["equal_quality"]
    assert ddim10["adherence_change"] == -1.0 and ddim10["followed_ratio"] == 0
    assert unipc["scheduler"] == "unipc" and unipc["steps"] == 5
    assert any(speed.fastest_equal_quality(rows) is r for r in (dpm, karras))  # as fast
    assert speed.fastest_equal_quality([base, ddim10, unipc]) is base  # the others fall short
    table = speed.format_cpu_table(rows)
    assert "DPM-Solver++ 10 steps" in table and "1.00±0.000 (4)" in table


def test_run_row_scores_only_when_given_scenes(fake_clock):
    scenes = speed.eval_scenes(2)
    pipe = FakePipe(fake_clock, scenes, seconds=lambda steps: 0.5, right=lambda *_: True)
    timed = speed.run_row(pipe, "channels_last", steps=25, repeats=2, threads=2)
    assert timed["threads"] == 2 and timed["images_per_s"] == pytest.approx(2.0)
    assert "adherence" not in timed and "followed_per_s" not in timed
    scored = speed.run_row(pipe, "OpenVINO UNet", steps=25, scenes=scenes, repeats=2)
    assert scored["followed_per_s"] == pytest.approx(1.0 / 0.5)
    assert scored["adherence_se"] == 0 and scored["followed_per_s_se"] == 0


def test_gains_inside_the_spread_are_marked():
    rows = speed.compare([
        {"setting": "baseline", "median_s": 1.0, "runs_s": [0.9, 1.0, 1.2], "spread_s": 0.3,
         "cold_s": 1.0},
        {"setting": "noise", "median_s": 0.95, "runs_s": [0.85, 0.95, 1.0], "spread_s": 0.15,
         "cold_s": 1.0},
        {"setting": "real", "median_s": 0.5, "runs_s": [0.45, 0.5, 0.55], "spread_s": 0.1,
         "cold_s": 1.0},
        {"setting": "engine", "error": "not installed"}])
    assert [r.get("within_spread") for r in rows] == [False, True, False, None]
    lines = speed.format_cpu_table(rows).splitlines()
    assert "~1.05×" in lines[2] and " 2.00×" in lines[3] and "not run" in lines[4]
    assert lines[-1].startswith("~ : inside the run-to-run spread")


def test_standard_errors():
    assert standard_error(0.5, 100) == pytest.approx(0.05)
    assert speed.paired_change([True, False] * 5, [True, False] * 5) == (0.0, 0.0)
    # one scene lost of four: -0.25, with the spread of the differences over the scenes
    change, se = speed.paired_change([True, True, True, False], [True] * 4)
    assert change == -0.25 and se == pytest.approx((0.1875 / 4) ** 0.5)
    with pytest.raises(ValueError, match="same scenes"):
        speed.paired_change([True], [True, False])
    with pytest.raises(ValueError, match="rate=1.5"):
        standard_error(1.5, 10)
    with pytest.raises(ValueError, match="seconds_per_image=0"):
        speed.followed_per_second(0.5, 0)


def test_solver_rows_name_a_bad_pair(fake_clock):
    pipe = FakePipe(fake_clock, [], seconds=lambda steps: 0.1, right=lambda *_: True)
    with pytest.raises(ValueError, match="scheduler='heun' is unknown"):
        speed.solver_rows(pipe, [("heun", 10)], scenes=[], progress=False)
    with pytest.raises(ValueError, match=r"\('dpm', 0\) in solvers.*such as \('dpm', 10\)"):
        speed.solver_rows(pipe, [("dpm", 0)], scenes=[], progress=False)
    with pytest.raises(ValueError, match="a dict of options"):
        speed.solver_rows(pipe, [("dpm", 10, "karras")], scenes=[], progress=False)


def test_thread_rows_time_each_count_and_put_the_count_back(fake_clock):
    pipe = FakePipe(fake_clock, [], seconds=lambda steps: 0.2, right=lambda *_: True)
    own = torch.get_num_threads()
    rows = speed.thread_rows(pipe, [1, 2], steps=3, repeats=2)
    assert torch.get_num_threads() == own
    assert [r["threads"] for r in rows] == [1, 2]
    assert [r["setting"] for r in rows] == ["torch.set_num_threads(1)",
                                            "torch.set_num_threads(2)"]
    assert [threads for *_, threads in pipe.calls] == [1] * 3 + [2] * 3  # warm-up + 2 each
    with pytest.raises(ValueError, match="counts"):
        speed.thread_rows(pipe, [0])


def test_wait_policy_is_set_in_a_fresh_process(monkeypatch):
    started = []

    def run(command, env, **_):
        started.append((command, env))
        out = json.dumps({"cold": 0.3, "runs": [0.1, 0.2, 0.1], "threads": 2})
        return SimpleNamespace(returncode=0, stdout=out + "\n", stderr="")
    monkeypatch.setattr(threads_module.subprocess, "run", run)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    rows = speed.wait_policy_rows("some/model", ["unset", "active"], steps=3, repeats=3)
    assert "OMP_WAIT_POLICY" not in started[0][1] and started[1][1]["OMP_WAIT_POLICY"] == "ACTIVE"
    command = started[0][0]
    assert command[:2] == [sys.executable, "-c"]
    assert json.loads(command[3])["model"] == "some/model" and json.loads(command[3])["steps"] == 3
    assert [r["setting"] for r in rows] == ["OMP_WAIT_POLICY=unset", "OMP_WAIT_POLICY=ACTIVE"]
    assert rows[0]["median_s"] == pytest.approx(0.1) and rows[0]["threads"] == 2
    with pytest.raises(ValueError, match="ACTIVE or PASSIVE"):
        speed.wait_policy_rows(None, ["SPIN"])

    def fail(command, env, **_):
        return SimpleNamespace(returncode=1, stdout="", stderr="ModelNotFoundError: no model")
    monkeypatch.setattr(threads_module.subprocess, "run", fail)
    with pytest.raises(RuntimeError, match="(?s)OMP_WAIT_POLICY=PASSIVE.*ModelNotFoundError"):
        speed.wait_policy_rows(None, ["PASSIVE"])


def test_cpu_flags_and_bfloat16_instructions(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert speed.cpu_flags(info) == {"fpu", "avx2", "avx512f", "amx_tile", "amx_bf16"}
    assert speed.bf16_instructions(speed.cpu_flags(info)) == ["amx_bf16"]
    assert speed.cpu_flags(tmp_path / "absent") == set()
    assert speed.bf16_instructions(set()) == []


def test_quality_benchmark_scores_with_the_package_functions():
    import importlib.util

    from sdlearn.shapes import adherence

    spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    assert quality.generate is adherence.generate and quality.adherence is adherence.adherence


@pytest.mark.slow
def test_the_cpu_benchmark_runs_end_to_end(small_model_dir, tmp_path):
    out = tmp_path / "cpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed_cpu.py"), "--quick",
                           "--model", str(small_model_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=True)
    record = json.loads(out.read_text())
    assert record["quick"] and record["n"] == 2 and record["machine"]["device"] == "cpu"
    rows = {r["setting"]: r for r in record["rows"]}
    base = rows["DDIM 3 steps (baseline)"]
    assert base["speedup"] == 1 and base["n"] == 2 and "followed_per_s" in base
    assert rows["DPM-Solver++ 2 steps"]["n"] == 2
    assert rows["torch.set_num_threads(1)"]["threads"] == 1
    assert "median_s" in rows["OMP_WAIT_POLICY=unset"]
    for engine in ("ONNX Runtime UNet", "OpenVINO UNet"):  # scored, or a note saying why not
        row = rows[engine]
        assert ("n" in row and row["unet_max_diff"] <= speed.UNET_TOLERANCE
                and row["max_pixel_diff"] <= speed.IMAGE_TOLERANCE) or "error" in row
    assert "channels_last" in rows and "--compile" in rows["torch.compile"]["error"]
    assert ("n" in rows["bfloat16 weights"]) == bool(record["bf16_instructions"])
    best = rows["best combination"]
    assert best["n"] == 2 and best["parts"][0] in {"DDIM 3 steps", "DPM-Solver++ 2 steps"}
    assert "DDIM 3 steps (again, last)" in rows
    assert "best combination" in done.stdout and "~ : inside the run-to-run spread" in done.stdout
