"""Choosing a device and making random draws reproducible.

>>> get_device() in ("cuda", "mps", "cpu")
True
>>> make_generator(42).initial_seed()
42
>>> bool((randn((2, 3), make_generator(0)) == randn((2, 3), make_generator(0))).all())
True
"""

from __future__ import annotations


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


def randn(shape, generator=None, *, device=None, dtype=None):
    """Standard normal noise of ``shape``, drawn on the generator's device, moved to ``device``.

    This is how diffusers draws its noise (``randn_tensor``): a CPU generator gives the same
    numbers whatever device the model is on, so a seed means the same picture on every machine.
    Without a generator the noise is drawn on ``device`` from torch's global generator.
    """
    import torch

    where = generator.device if generator is not None else device
    noise = torch.randn(shape, generator=generator, device=where, dtype=dtype)
    return noise if device is None else noise.to(device)
