"""What a pipeline run hands its UNet: one record per call, read by a hook on the real module.

A picture costs one UNet call per denoising step; with guidance that call gets a batch of two
per image (the prompt and the empty or negative prompt), not two calls.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> calls = unet_calls(pipe, "a red circle", num_inference_steps=3)
>>> len(calls), calls[0].batch, unet_calls(pipe, "a red circle", num_inference_steps=3,
...                                        guidance_scale=1.0)[0].batch
(3, 2, 1)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["UNetCall", "unet_calls"]


class UNetCall(NamedTuple):
    """One UNet call: its batch size, the latents' and the text states' shapes, the timestep."""

    batch: int
    latents: tuple[int, ...]
    text: tuple[int, ...] | None
    timestep: float


def unet_calls(pipe, *args, **kwargs) -> list[UNetCall]:
    """Run ``pipe(*args, **kwargs)`` and return what its UNet was called with, call by call.

    The run stops at the latents (``output_type="latent"``) unless you ask for another output:
    what the UNet gets does not depend on it.
    """
    kwargs.setdefault("output_type", "latent")
    calls: list[UNetCall] = []

    def record(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        text = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        calls.append(UNetCall(int(sample.shape[0]), tuple(sample.shape),
                              None if text is None else tuple(text.shape),
                              float(t.flatten()[0]) if torch.is_tensor(t) else float(t)))

    handle = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        pipe(*args, **kwargs)
    finally:
        handle.remove()
    return calls
