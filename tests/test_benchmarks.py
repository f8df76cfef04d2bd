"""The benchmark scripts run and print what they promise (on a small random model)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdlearn import speed
from sdlearn.shapes import adherence as adherence_module

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
                         "--sweep-n", "1", "--vae-n", "3", "--validation", "--partial-n", "2",
                         "--diversity-n", "2", "--seeds", "2", "--sweep-diversity-n", "1",
                         "--steps", "3", "--out", str(tmp_path / "q.json"))
    _recorded(tmp_path / "q.json", figures)
    assert figures["scenes"] == "validation" and figures["n_vae"] == 3 and figures["steps"] == 3
    for key in ("adherence_single", "adherence_two", "scorer_on_reconstructions"):
        assert 0 <= figures[key] <= 1, key
    assert figures["vae_psnr"] > 0 and figures["seconds_per_image"] > 0
    assert set(figures["guidance_sweep"]) == {"1.0", "3.0", "5.0", "7.5", "10.0"}
    assert set(figures["attributes_two"]) == {"color", "place", "shape", "size", "background"}
    assert figures["scaling_factor"] == pytest.approx(0.37)
    assert figures["n_partial"] == 2 and 0 <= figures["adherence_partial"] <= 1
    assert figures["diversity"]["prompts"] == 2 and figures["diversity"]["seeds"] == 2
    assert 1 <= figures["diversity"]["distinct_pictures"] <= 2
    for point in figures["guidance_sweep"].values():
        assert 0 <= point["partial"] <= 1 and 1 <= point["distinct_pictures"] <= 2
    assert figures["full_caption_seed_difference"] >= 0
    assert [e["prompt"] for e in figures["free_prompt_examples"]][:1] == ["a red circle"]


def test_inpainting_prints_both_methods_and_the_bars(plain_model_dir, plain_inpainting_dir,
                                                     tmp_path):
    figures = run_script("inpainting.py", "--model", str(plain_inpainting_dir), "--base",
                         str(plain_model_dir), "--n", "3", "--batch", "2", "--steps", "2",
                         "--validation", "--out", str(tmp_path / "i.json"))
    _recorded(tmp_path / "i.json", figures)
    assert figures["n"] == 3 and figures["scenes"] == "validation" and figures["steps"] == 2
    for method in ("blending", "inpainting_model"):
        row = figures[method]
        assert 0 <= row["adherence"] <= 1 and row["kept_psnr"] > 0 and row["seam"] >= 0
        assert row["kept_change"] >= 0 and row["seconds_per_image"] > 0
    assert set(figures["vae_round_trip"]) == {"kept_psnr", "kept_change", "seam"}
    pasted = figures["inpainting_model_pasted_back"]
    assert pasted["kept_change"] == 0 and pasted["kept_psnr"] > 150  # the original, exactly
    bars = figures["bars"]
    assert bars["seam_lower_than_blending"] == (figures["inpainting_model"]["seam"]
                                                < figures["blending"]["seam"])
    assert set(bars) == {"seam_lower_than_blending", "adherence_within_0.05_of_blending",
                         "kept_within_1_db_of_round_trip"}


def test_inpainting_edits_change_colour_and_shape_and_mask_the_object():
    import numpy as np

    edits = load_script("inpainting").edits(20, 64)
    for old, new, mask in edits:
        before, after = old.objects[0], new.objects[0]
        assert after.color not in {old.background, *(o.color for o in old.objects)}
        assert after.shape != before.shape and new.objects[1] == old.objects[1]
        assert 0 < (np.asarray(mask) > 0).mean() < 1
    assert edits == load_script("inpainting").edits(20, 64)  # the same edits every run


def test_depth_prints_the_estimator_both_methods_and_the_bars(plain_model_dir, plain_depth_dir,
                                                              tmp_path):
    figures = run_script("depth.py", "--model", str(plain_depth_dir), "--base",
                         str(plain_model_dir), "--n", "3", "--n-depth", "4", "--batch", "2",
                         "--steps", "2", "--strengths", "0.5,0.8", "--validation",
                         "--out", str(tmp_path / "d.json"))
    _recorded(tmp_path / "d.json", figures)
    assert figures["n"] == 3 and figures["n_depth"] == 4 and figures["scenes"] == "validation"
    estimator = figures["estimator"]
    for prefix in ("", "objects_", "flat_backdrop_"):
        assert 0 <= estimator[f"{prefix}delta_1.25"] <= 1 and estimator[f"{prefix}abs_rel"] >= 0
    assert estimator["flat_backdrop_delta_1.25"] > 0.6  # most pixels are backdrop
    assert set(figures["by_strength"]) == {"0.5", "0.8"}
    for point in figures["by_strength"].values():
        for method in ("depth2img", "img2img"):
            row = point[method]
            assert set(row) == {"layout", "colors", "both"}
            assert all(0 <= v <= 1 for v in row.values()) and row["both"] <= row["layout"]
    assert figures["bars"]["img2img_both_below_half"] == (
        figures["by_strength"]["0.5"]["img2img"]["both"] < 0.5)


class _Painter:
    """A stand-in pipeline that paints, for each generator, a scene ``paint(seed)`` returns."""

    def __init__(self, paint):
        self.paint = paint

    def __call__(self, prompts, generator, **_):
        from types import SimpleNamespace

        from sdlearn.shapes import render

        return SimpleNamespace(images=[render(self.paint(g.initial_seed())) for g in generator])


def test_diversity_tells_one_picture_from_the_worlds_variety():
    import random

    from sdlearn.shapes import COLORS, PLACES, SIZES, Scene, ShapeObject, parse_prompt

    quality = load_script("quality")
    readings = [parse_prompt("a red circle")]

    def same(seed):
        return Scene("white", (ShapeObject("circle", "red", "big", "center"),))

    def varied(seed):  # as the world makes scenes that fit: any place, size and background
        rng = random.Random(seed)
        return Scene(rng.choice([c for c in COLORS if c != "red"]), (ShapeObject(
            "circle", "red", rng.choice(list(SIZES)), rng.choice(list(PLACES))),))

    one = quality.diversity(_Painter(same), readings, 7.5, seeds=64)
    assert one["distinct_pictures"] == 1 and one["place_cells"] == 1
    assert one["spread"]["place"]["tv_distance"] > 0.8  # all in one of 9 cells
    many = quality.diversity(_Painter(varied), readings, 7.5, seeds=64)
    assert many["distinct_pictures"] > 40 and many["place_cells"] >= 8
    assert many["spread"]["place"]["tv_distance"] < 0.35
    assert many["spread"]["place"]["samples"] == 64
    assert "color" not in many["spread"]  # named: nothing to spread
    right = adherence_module.partial_adherence(_Painter(varied), readings * 3, 7.5)
    assert right == [True, True, True]


def test_sweep_reuses_the_main_runs_images(small_pipe):
    # quality.py scores the sweep's default-guidance point on the main run's first scenes
    # instead of making them again: a shorter list gives the same images.
    import numpy as np

    from sdlearn.shapes import caption
    from sdlearn.shapes.splits import held_out_scenes

    quality = load_script("quality")
    scenes = held_out_scenes(3, 2)
    prompts = [caption(s) for s in scenes]
    every = quality.generate(small_pipe, prompts, 7.5, batch=2)
    first = quality.generate(small_pipe, prompts[:2], 7.5, batch=2)
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


def test_guidance_curves_are_measured_for_every_model_given(small_model_dir, plain_model_dir):
    figures = run_script("guidance.py", "--model", str(small_model_dir), "--model",
                         str(plain_model_dir), "--n", "2", "--steps", "2")
    assert [m["model"] for m in figures["models"]] == [str(small_model_dir), str(plain_model_dir)]
    for model in figures["models"]:
        assert list(model["sweep"]) == ["1.0", "3.0", "5.0", "7.5", "10.0"]
        assert all(0 <= v <= 1 for point in model["sweep"].values() for v in point.values())
    assert figures["models"][1]["caption_dropout"] is None  # no sdlearn record: not known
