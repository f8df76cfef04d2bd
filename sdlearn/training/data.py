"""What training learns from: rendered shapes-world scenes, their captions, and their words.

Scenes come from the training seeds (``sdlearn.shapes.splits.TRAIN_SEED0`` on), which the
evaluation and validation scenes never share.

>>> scenes, images, backgrounds = make_dataset(2, 32)
>>> images.shape, images.dtype, backgrounds.shape
((2, 32, 32, 3), dtype('uint8'), (2, 3))
"""

from __future__ import annotations

import random

import numpy as np
from tqdm.auto import tqdm

from ..shapes import caption, loose_caption, perturb, random_scene, render
from ..shapes.captions import vocabulary
from ..shapes.splits import TRAIN_SEED0
from ..shapes.world import COLORS


def make_dataset(n: int, size: int, seed0: int = TRAIN_SEED0):
    """Scenes and their renders, uint8 ``(n, size, size, 3)``, with their background colours."""
    scenes = [random_scene(seed0 + i) for i in range(n)]
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, scene in enumerate(tqdm(scenes, desc="rendering scenes", leave=False)):
        images[i] = render(scene, size)
    backgrounds = np.array([COLORS[s.background] for s in scenes], dtype=np.uint8)
    return scenes, images, backgrounds


def to_model(images: np.ndarray, device):
    """uint8 ``(N, H, W, 3)`` images → the VAE's float input in [-1, 1], on ``device``.

    Not :func:`sdlearn.images.to_tensor`: this permutes on the device and keeps the
    channels-last memory layout, and the convolutions round differently on another layout, so
    runs would no longer resume exactly.
    """
    import torch

    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def training_captions(scenes, rng: random.Random, dropout: float, noise: float = 0.0,
                      loose: bool = False, shares: dict | None = None) -> list[str]:
    """The prompts of one UNet batch: varied captions, ``""`` for ``dropout`` of them.

    ``loose=True`` writes captions that may say less than the picture shows
    (:func:`sdlearn.shapes.loose_caption`, with ``shares`` changing how often each detail is
    named); otherwise every caption describes it whole.

    With ``noise`` > 0, that share of the captions describes the scene with one detail wrong
    (:func:`sdlearn.shapes.perturb`), as captions scraped from the web often do. The model then
    learns that a caption is likely, not certain, and guidance has something to sharpen.

    >>> scene = random_scene(1, n_objects=1)  # a big blue circle at the top, yellow background
    >>> training_captions([scene], random.Random(0), dropout=0.0)
    ['at the top a large blue circle, yellow background']
    >>> training_captions([scene], random.Random(0), dropout=0.0, noise=0.99)
    ['on a yellow background, a large green circle at the top center']
    """
    prompts = []
    for scene in scenes:
        if rng.random() < dropout:
            prompts.append("")
            continue
        if noise and rng.random() < noise:  # no draw at 0: older runs resume exactly
            scene = perturb(scene, rng)
        prompts.append(loose_caption(scene, rng, shares) if loose else caption(scene, rng))
    return prompts


# No caption uses "plain", but every export so far has kept its (never trained) row of the
# token embedding: it stays, so that the recipe still makes the shipped model to the bit.
KEPT_WORDS = ("plain",)


def world_token_ids(tokenizer, loose: bool = False) -> list[int]:
    """Every token id a shapes-world caption can use (``loose``: a loose one), and the special ones.

    >>> from sdlearn import load_tokenizer
    >>> tokenizer = load_tokenizer()
    >>> tokens = tokenizer.convert_ids_to_tokens(world_token_ids(tokenizer))
    >>> len(tokens), "red</w>" in tokens, "astronaut</w>" in tokens
    (38, True, False)
    """
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    for word in [*vocabulary(loose), *KEPT_WORDS]:
        ids.update(tokenizer(word, add_special_tokens=False).input_ids)
    return sorted(ids)
