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
