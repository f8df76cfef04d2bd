"""Prompts followed: generate a picture per caption and read it back with the scorer.

``benchmarks/quality.py`` measures the model with these, and lesson 08's solver table
(:mod:`sdlearn.speed.solvers`) measures settings with them: the same pictures from the same
seeds, so the figures can be compared.

A rate measured on ``n`` scenes carries a binomial standard error, ``sqrt(p (1 - p) / n)``:

>>> round(standard_error(0.85, 100), 3)  # 0.85 of 100 scenes: ± 0.036
0.036
>>> standard_error(1.0, 100)  # every scene right: no spread seen (which is not "no error")
0.0
"""

from __future__ import annotations

import math

import torch

from ..device import make_generator
from .captions import caption, loose_caption
from .prompts import parse_prompt, score_prompt
from .scorer import score
from .splits import EVAL_SEED0
from .world import random_scene

STEPS, GUIDANCE = 25, 7.5  # the course's default sampler settings


@torch.no_grad()
def generate(pipe, prompts, guidance: float = GUIDANCE, batch: int = 25, seed: int = 0,
             progress=None, *, steps: int = STEPS):
    """One picture per prompt, the i-th from seed ``seed + i``, in batches of ``batch``.

    The i-th picture does not depend on ``batch``: each has its own generator.
    ``progress`` (a tqdm bar, optional) is advanced by the pictures made.
    """
    if batch < 1:
        raise ValueError(f"batch={batch}: make at least one picture per pipeline call")
    images = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        gens = [make_generator(seed + i + j) for j in range(len(chunk))]
        images += pipe(list(chunk), num_inference_steps=steps,
                       guidance_scale=guidance, generator=gens).images
        if progress is not None:
            progress.update(len(chunk))
    return images


def adherence(pipe, scenes, guidance: float = GUIDANCE, progress=None, *, steps: int = STEPS,
              batch: int = 25):
    """How many scenes' canonical captions the pipeline's pictures follow.

    Returns ``(rate, rates, correct)``: the share of scenes with every object right, the
    per-attribute rates (colour, place, shape, size over objects; background over scenes) and
    each scene's ``True``/``False``, in order (for paired comparisons of two settings).
    """
    images = generate(pipe, [caption(s) for s in scenes], guidance, batch=batch,
                      progress=progress, steps=steps)
    results = [score(img, s) for img, s in zip(images, scenes, strict=True)]
    objects = [o for r in results for o in r.objects]
    rates = {a: sum(getattr(o, a) for o in objects) / len(objects)
             for a in ("color", "place", "shape", "size")}
    rates["background"] = sum(r.background for r in results) / len(results)
    correct = [r.correct for r in results]
    return sum(correct) / len(correct), rates, correct


PROMPT_OFFSET = 2_000_000  # loose prompts come from held-out scenes past the 1- and 2-object sets


def underspecified_prompts(n: int, seed0: int = EVAL_SEED0) -> list:
    """``n`` held-out loose captions that leave something open, with their readings."""
    prompts, i = [], 0
    while len(prompts) < n:
        scene = random_scene(seed0 + PROMPT_OFFSET + i)
        reading = parse_prompt(loose_caption(scene, seed0 + i))
        if reading.open_attributes() and reading.objects:
            prompts.append(reading)
        i += 1
    return prompts


def partial_adherence(pipe, readings, guidance, progress=None, steps: int = STEPS) -> list[bool]:
    """For each prompt, whether its picture has every named attribute (one picture each)."""
    images = generate(pipe, [r.text for r in readings], guidance, progress=progress, steps=steps)
    return [score_prompt(img, r).correct for img, r in zip(images, readings, strict=True)]


def standard_error(rate: float, n: int) -> float:
    """The binomial standard error of a rate measured on ``n`` independent scenes."""
    if n < 1:
        raise ValueError(f"n={n}: a rate needs at least one scene")
    if not 0 <= rate <= 1:
        raise ValueError(f"rate={rate}: a rate lies in [0, 1]")
    return math.sqrt(rate * (1 - rate) / n)


__all__ = ["GUIDANCE", "STEPS", "adherence", "generate", "partial_adherence", "standard_error",
           "underspecified_prompts"]
