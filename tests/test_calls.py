"""unet_calls records what the pipeline hands its UNet, and leaves no hook behind."""

import pytest

from sdlearn import make_generator
from sdlearn.calls import unet_calls


@pytest.mark.parametrize("prompts, images, guidance, batch", [
    (1, 1, 7.5, 2), (1, 1, 1.0, 1), (2, 3, 7.5, 12), (3, 1, 0.5, 3),
])
def test_one_call_per_step_on_the_guided_batch(tiny_pipe, prompts, images, guidance, batch):
    calls = unet_calls(tiny_pipe, ["a red circle"] * prompts, num_inference_steps=3,
                       num_images_per_prompt=images, guidance_scale=guidance,
                       generator=make_generator(0))
    assert [c.batch for c in calls] == [batch] * 3
    unet = tiny_pipe.unet.config
    assert calls[0].latents == (batch, unet.in_channels, unet.sample_size, unet.sample_size)
    assert calls[0].text == (batch, tiny_pipe.tokenizer.model_max_length,
                             tiny_pipe.text_encoder.config.hidden_size)
    tiny_pipe.scheduler.set_timesteps(3)
    assert [c.timestep for c in calls] == [float(t) for t in tiny_pipe.scheduler.timesteps]


def test_the_hook_is_removed_even_when_the_run_fails(tiny_pipe):
    def stop(pipe, step, t, tensors):
        raise RuntimeError("stopped after the first step")

    before = len(tiny_pipe.unet._forward_pre_hooks)
    with pytest.raises(RuntimeError, match="stopped"):
        unet_calls(tiny_pipe, "a red circle", num_inference_steps=3, callback_on_step_end=stop)
    assert len(tiny_pipe.unet._forward_pre_hooks) == before
    assert len(unet_calls(tiny_pipe, "a red circle", num_inference_steps=2)) == 2
