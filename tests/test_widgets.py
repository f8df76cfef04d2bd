import numpy as np

from sdlearn import load_pipeline, make_generator
from sdlearn.widgets import Playground


def test_playground_click_makes_exactly_the_requested_image(tiny_pipe):
    play = Playground(tiny_pipe)
    play.prompt.value = "a small green triangle at the bottom right on a black background"
    play.negative.value = "red"
    play.guidance.value = 4.5
    play.steps.value = 6
    play.seed.value = 11
    play.scheduler.value = "euler"
    play.button.click()
    assert play.settings == {
        "prompt": "a small green triangle at the bottom right on a black background",
        "negative_prompt": "red", "guidance_scale": 4.5, "num_inference_steps": 6, "seed": 11,
        "scheduler": "euler"}
    direct = load_pipeline(scheduler="euler")(
        play.prompt.value, negative_prompt="red", guidance_scale=4.5, num_inference_steps=6,
        generator=make_generator(11)).images[0]
    assert np.array_equal(np.asarray(play.image), np.asarray(direct))
    assert play.progress.value == play.progress.max == 6
    assert play.view.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert not play.button.disabled
    assert type(tiny_pipe.scheduler).__name__ == "PNDMScheduler", "the pipe is left as it was"


def test_playground_default_scheduler_uses_the_pipe_itself(tiny_pipe):
    play = Playground(tiny_pipe)
    assert play.pipeline() is tiny_pipe
    play.steps.value = 2
    image = play.generate()
    assert image.size == (64, 64) and "seed 0" in play.message.value
