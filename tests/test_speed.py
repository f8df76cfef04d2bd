import time

import pytest
import torch

from sdlearn import speed


def test_measure_separates_the_first_call_and_takes_the_median():
    durations = iter([0.12, 0.01, 0.05, 0.01])

    t = speed.measure(lambda: time.sleep(next(durations)), repeats=3)
    assert t.cold > 0.1 and len(t.runs) == 3
    assert abs(t.median - 0.01) < 0.008 and t.spread > 0.03
    assert "median of 3" in str(t)
    with pytest.raises(ValueError, match="repeats=0"):
        speed.measure(lambda: None, repeats=0)


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

    with torch.device("meta"):
        unet = UNet2DConditionModel(**speed.sd15_unet_config())
        vae = AutoencoderKL(**speed.sd15_vae_config())
        text = CLIPTextModel(CLIPTextConfig(**speed.sd15_text_config()))
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
    assert table[0]["speedup"] == 1.0
    assert table[1]["max_pixel_diff"] < 2  # a layout change barely moves a pixel
    text = speed.format_table(table)
    assert "channels_last" in text and "×" in text
    assert "images" not in speed.as_json(table)[0]
    assert tiny_pipe.unet.dtype == torch.float32  # settings work on copies
    parts = speed.breakdown(tiny_pipe, steps=2, repeats=1)
    assert set(parts) == {"text encoder", "UNet steps", "VAE decode", "the rest"}
    assert all(parts[k] > 0 for k in ("text encoder", "UNet steps", "VAE decode"))


def test_a_breakdown_whose_parts_outgrow_the_whole_says_so(tiny_pipe, monkeypatch):
    # A busy machine: each part, timed alone, took longer than it does inside the whole call.
    timings = iter([0.01, 0.05, 0.02, 0.2])  # text encoder, one UNet call, VAE, whole call
    monkeypatch.setattr(speed, "measure", lambda fn, **kw: speed.Timing(0.0, [next(timings)]))
    with pytest.warns(UserWarning, match="more than the whole call's 200 ms"):
        parts = speed.breakdown(tiny_pipe, steps=4)
    assert parts["the rest"] < 0 and speed.outgrown(parts)  # reported as measured, explained


def test_a_setting_that_fails_is_reported_not_raised(tiny_pipe):
    def broken(pipe):
        raise RuntimeError("not on this machine")

    rows = [speed.settings("cpu", compile=False)[0], speed.Setting("broken", broken)]
    table = speed.speed_table(tiny_pipe, rows, steps=1, repeats=1, progress=False)
    assert table[1]["error"] == "RuntimeError: not on this machine"
    assert "could not run" in speed.format_table(table)


def test_sd15_sized_pipeline_is_assembled_without_weights_in_memory():
    pipe = speed.sd15_sized_pipeline("meta")  # shapes only: no 4 GB of random weights
    assert sum(p.numel() for p in pipe.unet.parameters()) == 859_520_964
    assert pipe.vae.config.scaling_factor == 0.18215
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    assert pipe.tokenizer.model_max_length == 77
    assert pipe.text_encoder.config.hidden_size == pipe.unet.config.cross_attention_dim == 768
