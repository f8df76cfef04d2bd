import pytest
import torch

from sdlearn import make_generator
from sdlearn.attention import record_cross_attention, token_maps


def test_recording_keeps_the_output_and_restores_processors(tiny_pipe):
    tiny_pipe.set_progress_bar_config(disable=True)
    before = {k: type(v) for k, v in tiny_pipe.unet.attn_processors.items()}
    plain = tiny_pipe("a big red circle", num_inference_steps=3, output_type="latent",
                      generator=make_generator(0)).images
    with record_cross_attention(tiny_pipe.unet) as store:
        recorded = tiny_pipe("a big red circle", num_inference_steps=3, output_type="latent",
                             generator=make_generator(0)).images
    assert {k: type(v) for k, v in tiny_pipe.unet.attn_processors.items()} == before
    assert torch.allclose(plain, recorded, atol=1e-4)
    layers = [name for name in before if "attn2" in name]
    assert set(store) == set(layers)
    # One UNet call per listed timestep (PNDM lists one twice), each on a batch of 2 (guidance).
    entry = store[layers[0]]
    assert entry["calls"] == len(tiny_pipe.scheduler.timesteps) >= 3
    probs = entry["sum"] / entry["calls"]
    assert probs.shape[0] == 2 and probs.shape[-1] == 77
    assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)


def test_recorder_is_diffusers_plain_attention_to_the_bit(tiny_pipe):
    # CrossAttentionRecorder copies diffusers' AttnProcessor: the same UNet output, exactly.
    from diffusers.models.attention_processor import AttnProcessor

    from sdlearn.speed import unet_inputs

    unet = tiny_pipe.unet
    saved = unet.attn_processors
    inputs = unet_inputs(tiny_pipe)
    try:
        unet.set_attn_processor(AttnProcessor())
        with torch.no_grad():
            plain = unet(*inputs[:2], encoder_hidden_states=inputs[2]).sample
        with record_cross_attention(unet), torch.no_grad():
            recorded = unet(*inputs[:2], encoder_hidden_states=inputs[2]).sample
    finally:
        unet.set_attn_processor(saved)
    assert torch.equal(plain, recorded)


def test_token_maps_are_normalised_latent_maps(tiny_pipe):
    with record_cross_attention(tiny_pipe.unet) as store:
        tiny_pipe("a big red circle", num_inference_steps=2)
    maps = token_maps(store, [2, 3, 4], tiny_pipe.unet.config.sample_size)
    assert maps.shape == (3, 8, 8)
    assert torch.allclose(maps.sum(dim=(1, 2)), torch.ones(3))
    with pytest.raises(ValueError, match="latent_size"):
        token_maps(store, [2], (8, 6))
    with pytest.raises(ValueError, match="nothing was recorded"):
        token_maps({}, [2], 8)


def test_token_maps_at_sizes_that_halve_unevenly(tiny_pipe):
    # 72 px: 9x9 latents, then 5x5 and 3x3 inside the UNet (its stride-2 convolutions round up)
    with record_cross_attention(tiny_pipe.unet) as store:
        tiny_pipe("a big red circle", num_inference_steps=2, height=72, width=72)
    assert {entry["sum"].shape[1] for entry in store.values() if entry} >= {81, 25}
    maps = token_maps(store, [2, 3], (9, 9))
    assert maps.shape == (2, 9, 9)
    assert torch.allclose(maps.sum(dim=(1, 2)), torch.ones(2))


def test_area_mask_averages_blocks_and_names_bad_sizes():
    from sdlearn.attention import area_mask

    pixels = torch.zeros(16, 16)
    pixels[:3, :4] = 1  # 12 pixels: the first cell of 4×4 holds 12 of its 16
    m = area_mask(pixels, 4)
    assert m.shape == (4, 4) and m[0, 0] == 0.75 and m.sum() == 0.75
    assert area_mask(pixels, (2, 4)).shape == (2, 4)
    with pytest.raises(ValueError, match="latents' size"):
        area_mask(pixels, 5)
    with pytest.raises(ValueError, match="one \\(height, width\\) mask"):
        area_mask(torch.zeros(1, 16, 16), 4)


def test_share_inside_against_chance():
    from sdlearn.attention import chance_share, share_inside

    mask = torch.zeros(4, 4)
    mask[0, :2] = 1
    mask[1, 0] = 0.5
    even = torch.full((1, 4, 4), 1 / 16)
    peaked = torch.zeros(1, 4, 4)
    peaked[0, 0, 0] = 1
    assert chance_share(mask) == pytest.approx(2.5 / 16)
    assert share_inside(even, mask).item() == pytest.approx(chance_share(mask))
    assert share_inside(peaked, mask).item() == 1
    with pytest.raises(ValueError, match="area_mask"):
        share_inside(even, torch.zeros(8, 8))


def test_attention_inputs_are_what_the_layer_is_given(tiny_pipe):
    from sdlearn.attention import attention_inputs, cross_attention_layers
    from sdlearn.speed import unet_inputs

    unet = tiny_pipe.unet
    layers = cross_attention_layers(unet)
    assert len(layers) == sum(len(b.attentions) for b in [*unet.down_blocks, unet.mid_block,
                                                          *unet.up_blocks]
                              if getattr(b, "attentions", None))
    latents, t, text = unet_inputs(tiny_pipe)[:3]
    x, states = attention_inputs(layers[0], lambda: unet(latents, t, encoder_hidden_states=text))
    assert torch.equal(states, text)  # cross-attention reads the text states as they are
    assert x.shape == (latents.shape[0], latents.shape[2] * latents.shape[3],
                       unet.config.block_out_channels[0])
    assert not layers[0]._forward_pre_hooks  # the hook is gone
    with pytest.raises(ValueError, match="not called"):
        attention_inputs(layers[0], lambda: None)


@pytest.mark.parametrize("model", ["tiny", "vpred"])
def test_attention_written_out_is_the_layer(model, tiny_pipe, request):
    """The lesson's softmax(QKᵀ/√d)·V per head, then to_out, is each cross-attention layer's
    output — on the tiny model and on one in SD 2.x's conventions (per-block heads, upcast)."""
    from sdlearn import load_pipeline
    from sdlearn.attention import attention_inputs, cross_attention_layers
    from sdlearn.exercises.lesson03 import _attention
    from sdlearn.speed import unet_inputs

    pipe = tiny_pipe if model == "tiny" else load_pipeline(request.getfixturevalue(
        "vpred_model_dir"))
    unet = pipe.unet
    latents, t, text = unet_inputs(pipe)[:3]
    heads = set()
    for attn in cross_attention_layers(unet):
        x, states = attention_inputs(attn, lambda: unet(latents, t, encoder_hidden_states=text))
        with torch.no_grad():
            expected = attn(x, encoder_hidden_states=states)
            assert torch.allclose(_attention(attn, x, states), expected, atol=1e-5)
            assert not torch.allclose(_attention(attn, x, states, scale=1.0), expected, atol=1e-3)
        heads.add(attn.heads)
    assert model == "tiny" or len(heads) > 1  # SD 2.x's per-block head counts
