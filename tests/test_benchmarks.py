"""The benchmark scripts run and print what they promise (on a small random model)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(name: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args],
                            capture_output=True, text=True, timeout=600, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _recorded(path: Path, figures: dict) -> None:
    """--out writes what was printed, dated and with the machine it ran on."""
    record = json.loads(path.read_text())
    assert {k: record[k] for k in figures} == figures
    assert record["recorded"][:2] == "20" and record["machine"]["cpu_count"] >= 1


def test_quality_prints_every_field(small_model_dir, tmp_path):
    figures = run_script("quality.py", "--model", str(small_model_dir), "--n", "2",
                         "--sweep-n", "1", "--vae-n", "3", "--validation",
                         "--out", str(tmp_path / "q.json"))
    _recorded(tmp_path / "q.json", figures)
    assert figures["scenes"] == "validation" and figures["n_vae"] == 3
    for key in ("adherence_single", "adherence_two", "vae_psnr", "scorer_on_reconstructions",
                "seconds_per_image"):
        assert 0 <= figures[key] < 1e3, key
    assert set(figures["guidance_sweep"]) == {"1.0", "3.0", "5.0", "7.5", "10.0"}
    assert set(figures["attributes_two"]) == {"color", "place", "shape", "size", "background"}
    assert figures["scaling_factor"] == pytest.approx(0.37)


def _quality_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import quality
    finally:
        sys.path.pop(0)
    return quality


def test_sweep_reuses_the_main_runs_images(small_model_dir):
    # quality.py scores the sweep's default-guidance point on the main run's first scenes
    # instead of making them again: a shorter list gives the same images.
    import numpy as np

    from sdlearn import load_pipeline
    from sdlearn.shapes.splits import held_out_scenes

    quality = _quality_module()
    pipe = load_pipeline(small_model_dir, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    scenes = held_out_scenes(3, 2)
    every = quality.generate(pipe, scenes, 7.5, batch=2)
    first = quality.generate(pipe, scenes[:2], 7.5, batch=2)
    for a, b in zip(first, every[:2], strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_speed_prints_times_and_shares(small_model_dir, tmp_path):
    figures = run_script("speed.py", "--model", str(small_model_dir), "--repeats", "1",
                         "--out", str(tmp_path / "s.json"))
    _recorded(tmp_path / "s.json", figures)
    assert figures["steps"] == 25 and figures["guidance"] == 7.5 and figures["batch"] == 1
    assert figures["scheduler"].endswith("Scheduler") and figures["omp_wait_policy"]
    assert figures["pipeline_s_per_image"] > 0 and figures["hand_loop_s_per_image"] > 0
    assert figures["hand_over_pipeline"] == pytest.approx(
        figures["hand_loop_s_per_image"] / figures["pipeline_s_per_image"], abs=2e-3)
    assert set(figures["shares"]) == {"text_encoder", "unet", "vae_decode"}
    assert sum(figures["shares"].values()) == pytest.approx(1, abs=2e-3)
