"""Choosing a device and making random draws reproducible.

>>> get_device() in ("cuda", "mps", "cpu")
True
>>> check_device("cpu")
device(type='cpu')
>>> check_device("meta")
Traceback (most recent call last):
...
ValueError: device='meta' holds no data (a meta tensor has a shape but no numbers), so nothing ...
>>> make_generator(42).initial_seed()
42
>>> bool((randn((2, 3), make_generator(0)) == randn((2, 3), make_generator(0))).all())
True
>>> [g.initial_seed() for g in make_generators(range(3))]
[0, 1, 2]
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


def check_device(device):
    """``device`` as a ``torch.device``, refused at once (``ValueError``) unless sdlearn can
    sample on it here: ``cpu``, ``cuda`` or ``mps`` when this machine has them, or another kind
    this PyTorch can make tensors on. Called before any weights load.
    """
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device; use 'cpu', 'cuda' or 'mps'"
                         ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but this machine has no usable CUDA GPU; use "
                         "device='cpu' (or leave device unset to pick the best one)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' but Apple's GPU is not available here; use 'cpu'")
    if device.type == "meta":
        raise ValueError("device='meta' holds no data (a meta tensor has a shape but no "
                         "numbers), so nothing can be sampled on it; use 'cpu', 'cuda' or 'mps'")
    try:  # xla, xpu, cuda:7, ...: can this PyTorch, on this machine, put a tensor there?
        torch.empty(0, device=device)
    except Exception:  # NotImplementedError, AssertionError, RuntimeError, ...
        raise ValueError(f"device={str(device)!r} cannot be used here: this PyTorch, on this "
                         "machine, cannot make tensors on it; use 'cpu', 'cuda' or 'mps'"
                         ) from None
    return device


def make_generator(seed: int, device: str = "cpu"):
    """A ``torch.Generator`` on ``device`` seeded with ``seed``: pass it as ``generator=``.

    The same seed gives the same noise, so the same call gives the same image on the same
    machine. Elsewhere, or with another number of threads, a pixel or two may differ by one
    level: the sums inside the model are added up in another order.
    """
    import torch

    return torch.Generator(device).manual_seed(int(seed))


def make_generators(seeds, device: str = "cpu") -> list:
    """One fresh generator per seed, for a batch: ``generator=make_generators(range(8))``.

    Each picture of the batch is then the picture its seed gives alone (up to rounding).
    A generator is used up as it draws, so make new ones for every call.
    """
    return [make_generator(seed, device) for seed in seeds]


def randn(shape, generator=None, *, device=None, dtype=None):
    """Standard normal noise of ``shape``, drawn on the generator's device, moved to ``device``.

    This is how diffusers draws its noise (``randn_tensor``): a CPU generator gives the same
    numbers whatever device the model is on, so a seed means the same noise on every machine (the
    picture made from it can still differ in the last bit between machines and thread counts).
    Without a generator the noise is drawn on ``device`` from torch's global generator. A list
    of generators, one per row of the batch, draws each row from its own, as diffusers does: a
    picture's noise is then the same in a batch as alone.
    """
    import torch

    if isinstance(generator, list):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}: give "
                             "one per picture, or a single generator")
        return torch.cat([randn((1, *shape[1:]), g, device=device, dtype=dtype)
                          for g in generator])
    where = generator.device if generator is not None else device
    noise = torch.randn(shape, generator=generator, device=where, dtype=dtype)
    return noise if device is None else noise.to(device)
