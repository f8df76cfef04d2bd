"""The benchmark scripts run and print what they promise (on a small random model)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdlearn import speed

ROOT = Path(__file__).resolve().parent.parent


def run_script(name: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args],
                            capture_output=True, text=True, timeout=600, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def load_script(name: str):
    """A benchmark script as a module, to call its functions (its ``main`` is not run)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small_pipe(small_model_dir):
    from sdlearn import load_pipeline

    pipe = load_pipeline(small_model_dir, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _recorded(path: Path, figures: dict) -> dict:
    """--out writes what was printed, dated and with the machine it ran on."""
    record = json.loads(path.read_text())
    assert {k: record[k] for k in figures} == figures
    assert record["recorded"][:2] == "20" and record["machine"]["cpu_count"] >= 1
    return record


def test_quality_prints_every_field(small_model_dir, tmp_path):
    figures = run_script("quality.py", "--model", str(small_model_dir), "--n", "2",
                         "--sweep-n", "1", "--vae-n", "3", "--validation",
                         "--out", str(tmp_path / "q.json"))
    _recorded(tmp_path / "q.json", figures)
    assert figures["scenes"] == "validation" and figures["n_vae"] == 3
    for key in ("adherence_single", "adherence_two", "scorer_on_reconstructions"):
        assert 0 <= figures[key] <= 1, key
    assert figures["vae_psnr"] > 0 and figures["seconds_per_image"] > 0
    assert set(figures["guidance_sweep"]) == {"1.0", "3.0", "5.0", "7.5", "10.0"}
    assert set(figures["attributes_two"]) == {"color", "place", "shape", "size", "background"}
    assert figures["scaling_factor"] == pytest.approx(0.37)


def test_sweep_reuses_the_main_runs_images(small_pipe):
    # quality.py scores the sweep's default-guidance point on the main run's first scenes
    # instead of making them again: a shorter list gives the same images.
    import numpy as np

    from sdlearn.shapes.splits import held_out_scenes

    quality = load_script("quality")
    scenes = held_out_scenes(3, 2)
    every = quality.generate(small_pipe, scenes, 7.5, batch=2)
    first = quality.generate(small_pipe, scenes[:2], 7.5, batch=2)
    for a, b in zip(first, every[:2], strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_speed_prints_times_and_shares(small_model_dir, tmp_path):
    figures = run_script("speed.py", "--model", str(small_model_dir), "--repeats", "1",
                         "--out", str(tmp_path / "s.json"))
    record = _recorded(tmp_path / "s.json", figures)
    # The machine is described once, in the one schema (sdlearn.records), not again beside it.
    assert record["machine"]["device"] == "cpu" and not set(figures) & set(record["machine"])
    assert figures["steps"] == 25 and figures["guidance"] == 7.5 and figures["batch"] == 1
    assert figures["scheduler"].endswith("Scheduler")
    assert figures["pipeline_s_per_image"] > 0 and figures["hand_loop_s_per_image"] > 0
    # Lesson 08's breakdown, with its keys; the parts and the rest make up the whole call.
    assert set(figures["parts_s"]) == set(figures["shares"]) == {
        "text encoder", "UNet steps", "VAE decode", "the rest"}
    assert sum(figures["shares"].values()) == pytest.approx(1, abs=5e-3)


def test_speed_reports_medians_over_the_pipeline_and_the_parts_of_the_whole(small_pipe,
                                                                           monkeypatch, capsys):
    # The script's arithmetic on known timings: each timed function is run once (so both the
    # pipeline and the hand-written loop work), then reports the timings given here.
    bench = load_script("speed")
    timings = iter([(0.9, [0.5, 0.4, 0.6]),  # the pipeline: first call, timed runs
                    (0.8, [0.6, 0.7, 0.65])])  # the hand-written loop
    calls = []

    def measure(fn, *, repeats, device=None):
        calls.append((repeats, str(device)))
        fn()
        cold, runs = next(timings)
        return speed.Timing(cold, runs)

    def breakdown(pipe, **kwargs):
        calls.append(kwargs)
        return {"text encoder": 0.05, "UNet steps": 0.6, "VAE decode": 0.1, "the rest": 0.25}

    monkeypatch.setattr(bench, "load_pipeline", lambda model, device: small_pipe)
    monkeypatch.setattr(bench, "measure", measure)
    monkeypatch.setattr(bench, "breakdown", breakdown)
    monkeypatch.setattr(sys, "argv", ["speed.py", "--repeats", "3"])
    bench.main()
    figures = json.loads(capsys.readouterr().out)
    assert calls == [(3, "cpu"), (3, "cpu"),
                     {"prompt": bench.PROMPT, "steps": bench.STEPS, "repeats": 3}]
    assert figures["pipeline_s_per_image"] == 0.5 and figures["hand_loop_s_per_image"] == 0.65
    assert figures["hand_over_pipeline"] == 1.3  # the hand loop's median over the pipeline's
    assert figures["pipeline_spread_s"] == [0.4, 0.6] and figures["pipeline_first_call_s"] == 0.9
    assert figures["parts_s"]["UNet steps"] == 0.6
    assert figures["shares"] == {"text encoder": 0.05, "UNet steps": 0.6, "VAE decode": 0.1,
                                 "the rest": 0.25}  # of the whole call, 1 s
