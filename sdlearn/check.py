"""The graders of the lessons' exercises: ``check.NAME(your_function, pipe)``.

Each grader runs your function on fixed inputs made from the model you are using, compares with
the reference answer, prints one line (✓, ✗ with a hint, or ○ not done yet), and returns the
function to use next: yours when it is right, the reference otherwise, so the lesson goes on.
The graders of lesson NN live in ``sdlearn/exercises/lessonNN.py``.

>>> import sdlearn
>>> from sdlearn import check
>>> pipe = sdlearn.load_pipeline()
>>> scale_latents = check.scale_latents(lambda latents, vae: latents, pipe)  # doctest: +ELLIPSIS
✗ scale_latents: your latents are unchanged — multiply them by vae.config.scaling_factor...
"""

from __future__ import annotations

from .exercises.common import EXERCISES
from .exercises.lesson00 import latent_shape, seeded_image, unet_batch_size
from .exercises.lesson01 import (
    SD_SCALING_FACTOR,
    round_trip_sizes,
    scale_latents,
    scaling_factor_from,
    unscale_and_decode,
)
from .exercises.lesson02 import (
    dropped_tokens,
    encode_by_hand,
    encode_text,
    tokenize_prompt,
    uncond_embedding,
)
from .exercises.lesson03 import (
    attention_by_hand,
    cfg_batch,
    chance_share,
    down_shapes,
    predict_noise,
)
from .exercises.lesson04 import add_noise_by_hand, ddim_update, v_to_x0_and_noise
from .exercises.lesson05 import guidance, guided_prediction, sample_by_hand
from .exercises.lesson06 import img2img_loop, noise_to_strength, signal_kept, start_step
from .exercises.lesson07 import inpaint_loop, latent_mask, put_back, widen_conv
from .exercises.lesson08 import cold_and_warm, overall_speedup, weights_bytes
from .exercises.lesson09 import delta_accuracy, depth_channel
from .exercises.lesson10 import drop_captions, ema_update, training_loss

__all__ = [
    "EXERCISES", "SD_SCALING_FACTOR",
    "latent_shape", "unet_batch_size", "seeded_image",             # 00_quickstart
    "scale_latents", "unscale_and_decode", "scaling_factor_from", "round_trip_sizes",  # 01
    "tokenize_prompt", "dropped_tokens", "encode_text", "encode_by_hand",
    "uncond_embedding",                                            # 02_text
    "down_shapes", "predict_noise", "cfg_batch", "attention_by_hand", "chance_share",  # 03
    "add_noise_by_hand", "ddim_update", "v_to_x0_and_noise",       # 04_scheduler
    "guidance", "sample_by_hand", "guided_prediction",             # 05_sampling_loop
    "start_step", "signal_kept", "noise_to_strength", "img2img_loop",  # 06_img2img
    "latent_mask", "put_back", "inpaint_loop", "widen_conv",       # 07_inpainting
    "cold_and_warm", "overall_speedup", "weights_bytes",           # 08_speed
    "delta_accuracy", "depth_channel",                             # 09_depth
    "training_loss", "drop_captions", "ema_update",                # 10_training
]
