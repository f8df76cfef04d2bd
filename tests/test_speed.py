import ast
import json
import time
from pathlib import Path

import pytest
import torch

from sdlearn import speed
from sdlearn.speed import table as speed_table_module
from sdlearn.speed import timing

ROOT = Path(__file__).resolve().parents[1]


def test_measure_separates_the_first_call_and_takes_the_median(fake_clock):
    durations = iter([0.12, 0.01, 0.05, 0.01])

    t = speed.measure(lambda: fake_clock(next(durations)), repeats=3)
    assert t.cold == pytest.approx(0.12)
    assert t.runs == pytest.approx([0.01, 0.05, 0.01])
    assert t.median == pytest.approx(0.01) and t.spread == pytest.approx(0.04)
    assert str(t) == "0.010 s median of 3 (spread 0.040 s), first call 0.120 s"
    with pytest.raises(ValueError, match="repeats=0"):
        speed.measure(lambda: None, repeats=0)


def test_measure_stops_the_clock_only_once_the_device_is_done(monkeypatch):
    events = []
    monkeypatch.setattr(time, "perf_counter", lambda: events.append("clock") or 0.0)
    monkeypatch.setattr(timing, "synchronize", lambda device: events.append(f"sync {device}"))

    speed.measure(lambda: events.append("work"), repeats=2, device="cuda")
    one_call = ["sync cuda", "clock", "work", "sync cuda", "clock"]
    assert events == one_call * 3  # the warm-up and two timed calls


def test_count_flops_of_a_linear_layer():
    layer = torch.nn.Linear(16, 8)
    assert speed.count_flops(lambda: layer(torch.randn(4, 16))) == 2 * 4 * 16 * 8


def test_weights_bytes():
    layer = torch.nn.Linear(10, 10)
    assert speed.weights_bytes(layer) == 110 * 4
    assert speed.weights_bytes(layer, torch.bfloat16) == 110 * 2


def test_sd15_configs_have_sd15_parameter_counts():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sdlearn import architectures

    with torch.device("meta"):
        unet = UNet2DConditionModel(**architectures.sd15_unet_config())
        vae = AutoencoderKL(**architectures.sd15_vae_config())
        text = CLIPTextModel(CLIPTextConfig(**architectures.sd15_text_config()))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # The published sizes of Stable Diffusion 1.5's components.
    assert count(unet) == 859_520_964
    assert count(vae) == 83_653_863
    assert count(text) == 123_060_480


def test_speed_table_and_breakdown_on_the_tiny_model(tiny_pipe):
    rows = [s for s in speed.settings("cpu", compile=False)
            if s.name.startswith(("float32", "channels_last"))]
    table = speed.speed_table(tiny_pipe, rows, steps=2, repeats=1, progress=False)
    assert [r["setting"] for r in table] == [s.name for s in rows]
    assert "max_pixel_diff" not in table[0]  # the first row is the reference picture
    assert table[1]["max_pixel_diff"] < 2  # a layout change barely moves a pixel
    assert table[1]["images"].shape == (1, 64, 64, 3)
    text = speed.format_table(table)
    assert "channels_last" in text and "×" in text
    assert "images" not in speed.as_json(table)[0]
    json.dumps(speed.as_json(table))  # ready for a record
    # Settings work on copies: the shared pipeline's weights keep their layout.
    assert tiny_pipe.unet.conv_in.weight.is_contiguous()
    parts = speed.breakdown(tiny_pipe, steps=2, repeats=1)
    assert set(parts) == {"text encoder", "UNet steps", "VAE decode", "the rest"}
    assert all(parts[k] > 0 for k in ("text encoder", "UNet steps", "VAE decode"))


def _runs_once_timed_as(medians):
    """A stand-in for ``measure`` that runs ``fn`` once and reports the next median."""
    medians = iter(medians)

    def measure(fn, *, repeats, device=None):
        fn()
        median = next(medians)
        return speed.Timing(2 * median, [median] * repeats)
    return measure


def test_speedups_and_pixels_are_against_the_first_setting_that_ran(tiny_pipe, monkeypatch):
    def broken(pipe):
        raise RuntimeError("not on this machine")

    def darker(pipe):
        pipe.vae.decoder.conv_out.bias.data -= 0.5  # on the copy: every pixel darker
        return pipe

    bias = tiny_pipe.vae.decoder.conv_out.bias.clone()
    monkeypatch.setattr(speed_table_module, "measure", _runs_once_timed_as([0.2, 0.1, 0.4]))
    float32, layout = speed.settings("cpu", compile=False)[0], speed.Setting("darker", darker)
    rows = [speed.Setting("broken", broken), float32, layout, speed.Setting("later", lambda p: p)]
    table = speed.speed_table(tiny_pipe, rows, steps=1, repeats=2, progress=False)
    assert table[0] == {"setting": "broken", "error": "RuntimeError: not on this machine"}
    assert [r["speedup"] for r in table[1:]] == pytest.approx([1.0, 2.0, 0.5])
    assert [r["images_per_s"] for r in table[1:]] == pytest.approx([5.0, 10.0, 2.5])
    assert "max_pixel_diff" not in table[1]
    assert table[2]["max_pixel_diff"] > 10 and table[3]["max_pixel_diff"] == 0
    lines = speed.format_table(table).splitlines()
    assert lines[1] == f"{'broken':34} could not run: RuntimeError: not on this machine"
    assert lines[3].startswith(f"{'darker':34}") and " 2.00× " in lines[3]
    assert torch.equal(tiny_pipe.vae.decoder.conv_out.bias, bias)  # the original is untouched


def _timed_as(medians):
    """A stand-in for ``measure`` that reports the next median without running ``fn``."""
    medians = iter(medians)
    return lambda fn, **kw: speed.Timing(0.0, [next(medians)])


def test_a_breakdown_times_every_unet_step_and_leaves_the_rest(tiny_pipe, monkeypatch):
    # text encoder, one UNet call, VAE, whole call (medians)
    monkeypatch.setattr(timing, "measure", _timed_as([0.01, 0.05, 0.02, 0.3]))
    parts = speed.breakdown(tiny_pipe, steps=4)
    calls = len(tiny_pipe.scheduler.timesteps)
    assert calls >= 4 and parts["UNet steps"] == pytest.approx(calls * 0.05)
    assert sum(parts.values()) == pytest.approx(0.3)  # the parts and the rest make the whole
    assert parts["the rest"] == pytest.approx(0.3 - 0.03 - calls * 0.05)


def test_a_breakdown_whose_parts_outgrow_the_whole_says_so(tiny_pipe, monkeypatch):
    # A busy machine: each part, timed alone, took longer than it does inside the whole call.
    monkeypatch.setattr(timing, "measure", _timed_as([0.01, 0.05, 0.02, 0.2]))
    with pytest.warns(UserWarning, match="more than the whole call's 200 ms"):
        parts = speed.breakdown(tiny_pipe, steps=4)
    assert parts["the rest"] < 0 and speed.outgrown(parts)  # reported as measured, explained


def test_sd15_sized_pipeline_is_assembled_without_weights_in_memory():
    pipe = speed.sd15_sized_pipeline("meta")  # shapes only: no 4 GB of random weights
    assert sum(p.numel() for p in pipe.unet.parameters()) == 859_520_964
    assert pipe.vae.config.scaling_factor == 0.18215
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    assert pipe.tokenizer.model_max_length == 77
    assert pipe.text_encoder.config.hidden_size == pipe.unet.config.cross_attention_dim == 768


def _speed_names(source: str) -> set[str]:
    """The ``speed.NAME`` and ``from sdlearn.speed import NAME`` names a piece of code uses."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "speed":
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "sdlearn.speed":
            names |= {alias.name for alias in node.names}
    return names


def test_every_name_lesson_08_and_the_benchmarks_use_is_public():
    notebook = json.loads((ROOT / "notebooks" / "08_speed.ipynb").read_text())
    sources = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    sources += [p.read_text() for p in sorted((ROOT / "benchmarks").glob("*.py"))]
    used = set().union(*map(_speed_names, sources))
    assert {"breakdown", "measure", "speed_table", "memory_settings"} <= used  # found them
    assert used <= set(speed.__all__)
    assert all(hasattr(speed, name) for name in speed.__all__)
