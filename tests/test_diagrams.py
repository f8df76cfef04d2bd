"""The diagrams are drawn from the model: their labels change with the model's sizes."""

import pytest

from sdlearn import diagrams, load_pipeline


@pytest.fixture(scope="module")
def small_pipe(small_model_dir):
    return load_pipeline(str(small_model_dir))


def test_pipeline_labels_come_from_the_model(tiny_pipe, small_pipe):
    tiny, small = (diagrams.labels(diagrams.pipeline(p, steps=7)) for p in (tiny_pipe, small_pipe))
    assert "77×64 text states" in tiny and "77×32 text states" in small  # text hidden size
    assert "latents 4×8×8" in tiny and "3×64×64" in tiny
    small_factor = small_pipe.vae_scale_factor  # 4, not the tiny model's 8
    side = small_pipe.unet.config.sample_size
    assert f"3×{side * small_factor}×{side * small_factor}" in small
    assert "÷ 0.37" in small and "7 steps" in small
    assert f"scheduler\n{type(tiny_pipe.scheduler).__name__}" in tiny
    assert "4×16×8" in diagrams.labels(diagrams.pipeline(tiny_pipe, height=128, width=64))


def test_pipeline_refuses_sizes_the_vae_cannot_take(tiny_pipe):
    with pytest.raises(ValueError, match="height=60 is not a multiple of the VAE's factor 8"):
        diagrams.pipeline(tiny_pipe, height=60)
    with pytest.raises(ValueError, match="steps=0"):
        diagrams.pipeline(tiny_pipe, steps=0)


def test_unet_diagram_draws_each_block_with_its_channels_and_size(tiny_pipe, small_pipe):
    tiny = diagrams.labels(diagrams.unet(tiny_pipe.unet))
    for i, block in enumerate(tiny_pipe.unet.down_blocks):
        assert f"down_blocks[{i}] · {type(block).__name__}" in tiny
    assert "64 ch · 8×8" in tiny and "128 ch · 4×4" in tiny and "128 ch · 2×2" in tiny
    assert "self + cross-attention, 8 heads" in tiny and "mid_block" in tiny
    small_unet = small_pipe.unet
    small = diagrams.labels(diagrams.unet(small_unet))
    side = small_unet.config.sample_size
    channels = small_unet.config.block_out_channels  # (32, 64)
    assert f"{channels[0]} ch · {side}×{side}" in small
    assert f"{channels[-1]} ch · {-(-side // 2)}×{-(-side // 2)}" in small
    assert "64 ch · 8×8" not in small and "up_blocks[2]" not in small  # two levels, not three
    heads = small_unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads
    assert f"{heads} heads" in small
    assert f"conv_in: {small_unet.config.in_channels} → {channels[0]} ch" in small


def test_level_sizes_halve_rounding_up(tiny_pipe):
    assert diagrams.level_sizes(tiny_pipe.unet) == [(8, 8), (4, 4), (2, 2)]
    assert diagrams.level_sizes(tiny_pipe.unet, (9, 6)) == [(9, 6), (5, 3), (3, 2)]
    assert "9×6" in diagrams.labels(diagrams.unet(tiny_pipe.unet, (9, 6)))
    with pytest.raises(ValueError, match="size="):
        diagrams.level_sizes(tiny_pipe.unet, "big")


def test_a_diagram_shows_itself_once_as_a_png(tiny_pipe):
    fig = diagrams.unet(tiny_pipe.unet)
    png = fig._repr_png_()  # what a notebook shows when a cell returns the figure
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert repr(fig) == "<Diagram 1300x735>"
    import matplotlib.pyplot as plt

    assert fig not in [plt.figure(n) for n in plt.get_fignums()]  # not pyplot's: shown once


def test_level_sizes_are_the_sizes_the_unet_runs_at(tiny_pipe, small_pipe):
    from sdlearn.exercises.lesson03 import measured_down_shapes

    for unet, size in [(tiny_pipe.unet, (9, 6)), (small_pipe.unet, (5, 5))]:
        c = unet.config.in_channels
        measured = measured_down_shapes(unet, (1, c, *size))
        sizes = diagrams.level_sizes(unet, size)
        # each down block but the last ends at the size the next one runs at
        assert [tuple(s[2:]) for s in measured[:-1]] == sizes[1:]
        assert [s[1] for s in measured] == list(unet.config.block_out_channels)
