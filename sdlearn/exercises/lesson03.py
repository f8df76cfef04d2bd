"""Graders of lesson 03, the UNet: ``check.predict_noise`` and ``check.cfg_batch``.

>>> import sdlearn, torch
>>> pipe = sdlearn.load_pipeline()
>>> def mine(latents, uncond, cond):
...     return torch.cat([latents, latents]), torch.cat([uncond, cond])
>>> graded = cfg_batch(mine, pipe)
✓ cfg_batch: correct (1 check).
"""

from __future__ import annotations

import torch

from ..sampling import encode_prompts
from .common import grader, seeded_latents
from .grading import Check, Exercise, Marker, Mistake

OUTPUT_OBJECT = Marker("an output object, not a tensor")


def _tensor_or_marker(fn):
    """Turn a forgotten ``.sample`` into a marker the grader can explain."""

    def tensor_or_marker(*args):
        out = fn(*args)
        return out if isinstance(out, torch.Tensor | tuple | list) else OUTPUT_OBJECT

    return tensor_or_marker


@grader
def predict_noise(pipe) -> Exercise:
    """Exercise: ``predict_noise(unet, latents, t, text_embeddings)`` → the UNet's noise guess."""
    unet = pipe.unet
    text = encode_prompts(pipe, ["a big red circle at the top left"])[1]

    @torch.no_grad()
    def reference(unet, latents, t, text):
        return unet(latents, t, encoder_hidden_states=text).sample

    @torch.no_grad()
    def divided(unet, latents, t, text):
        return unet(latents, t / 1000, encoder_hidden_states=text).sample

    @torch.no_grad()
    def at_zero(unet, latents, t, text):
        return unet(latents, 0, encoder_hidden_states=text).sample

    def a_tensor(got, expected, args) -> bool:
        return got is not OUTPUT_OBJECT

    return Exercise(
        "predict_noise", reference, [(unet, seeded_latents(pipe, 5), 700, text),
                                     (unet, seeded_latents(pipe, 6), 50, text)],
        mistakes=[Mistake(divided, "pass the timestep as it is, an integer from 0 to 999 — not "
                                   "divided"),
                  Mistake(at_zero, "pass the timestep t: the UNet must know how noisy its input "
                                   "is")],
        checks=[Check(a_tensor, "the UNet returns an output object — take its .sample")],
        adapt=_tensor_or_marker, atol=1e-4)


@grader
def cfg_batch(pipe) -> Exercise:
    """Exercise: ``cfg_batch(latents, uncond, cond)`` → (UNet input, text) for one guided call."""
    uncond, cond = encode_prompts(pipe, "a small blue square in the center")

    def reference(x, u, c):
        return torch.cat([x, x]), torch.cat([u, c])

    def cond_first(x, u, c):
        return torch.cat([x, x]), torch.cat([c, u])

    def latents_once(x, u, c):
        return x, torch.cat([u, c])

    return Exercise(
        "cfg_batch", reference, [(seeded_latents(pipe, 7), uncond, cond)],
        mistakes=[Mistake(cond_first, "put the unconditional embedding first, [uncond, cond], as "
                                      "diffusers does: noise_pred.chunk(2) then gives (uncond, "
                                      "cond) in that order"),
                  Mistake(latents_once, "duplicate the latents: the batch needs one copy for each "
                                        "text embedding")])
