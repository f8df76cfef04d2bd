"""Choosing a device and making random draws reproducible.

>>> get_device() in ("cuda", "mps", "cpu")
True
>>> make_generator(42).initial_seed()
42
"""

from __future__ import annotations

import random


def get_device() -> str:
    """The best device here: ``"cuda"``, then ``"mps"``, then ``"cpu"``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def make_generator(seed: int, device: str = "cpu"):
    """A ``torch.Generator`` on ``device`` seeded with ``seed``: pass it as ``generator=``.

    The same seed gives the same noise, so the same call gives the same image.
    """
    import torch

    return torch.Generator(device).manual_seed(int(seed))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random generators at once."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
