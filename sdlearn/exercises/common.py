"""What the lessons' graders share: the registry, and the inputs they grade on.

A lesson module defines one builder per exercise, ``NAME(pipe) -> Exercise``, and turns it into
the grader ``check.NAME(your_function, pipe)`` with :func:`grader`:

>>> import torch
>>> from sdlearn.exercises.grading import Mistake
>>> @grader
... def double(pipe):
...     def kept_the_input(x):
...         return x
...     return Exercise("double", lambda x: 2 * x, [(torch.ones(2),)],
...                     mistakes=[Mistake(kept_the_input, "multiply by 2")])
>>> double(lambda x: x + x, pipe=None).ok
✓ double: correct (1 check).
True
>>> _ = EXERCISES.pop("double")  # (an example, not an exercise of the course)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..device import make_generator, randn
from ..schedulers import make_scheduler
from .grading import Exercise, Graded, grade

__all__ = ["EXERCISES", "as_number", "ddim_inputs", "grader", "loop_tolerance",
           "seeded_latents"]

# name → function(pipe) that builds the Exercise; tests grade every reference and mistake.
EXERCISES: dict[str, Callable[..., Exercise]] = {}


def grader(builder: Callable[..., Exercise]) -> Callable[..., Graded]:
    """Register ``builder`` and make the grader ``check.NAME(your_function, pipe)``."""
    EXERCISES[builder.__name__] = builder

    def grade_it(fn, pipe) -> Graded:
        return grade(builder(pipe), fn)

    grade_it.__name__ = grade_it.__qualname__ = builder.__name__
    grade_it.__doc__ = builder.__doc__
    grade_it.__module__ = builder.__module__
    return grade_it


def seeded_latents(pipe, seed: int, batch: int = 1, scale: float = 1.0) -> torch.Tensor:
    """Seeded noise of the shape of the model's latents, on its device and in its dtype."""
    unet = pipe.unet
    shape = (batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    return (randn(shape, make_generator(seed)) * scale).to(pipe.device, unet.dtype)


def ddim_inputs(pipe, seeds: tuple[int, int], steps: int = 10):
    """A DDIM scheduler with ``steps`` timesteps, and two seeded float32 latents on the CPU.

    The scheduler exercises (lessons 04 and 06) are graded on the CPU in float32, so that a
    formula written by hand is compared with the scheduler's to the last digit.
    """
    sched = make_scheduler("ddim", pipe.scheduler.config)
    sched.set_timesteps(steps)
    a, b = (seeded_latents(pipe, seed).float().cpu() for seed in seeds)
    return sched, a, b


def loop_tolerance(pipe) -> float:
    """Whole loops add rounding: float32 agrees to 1e-3, half precision to a few 1e-2."""
    return 1e-3 if pipe.unet.dtype == torch.float32 else 5e-2


def as_number(fn):
    """``fn`` with a one-element answer (a tensor, an array, a NumPy scalar) read as a Python
    number, so that either kind of answer is fine.

    >>> as_number(lambda: torch.tensor([0.5]))(), as_number(lambda: np.float64(2.0))()
    (0.5, 2.0)
    """

    def as_number(*args):
        value = fn(*args)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return value.item()
        if isinstance(value, np.ndarray | np.generic) and value.size == 1:
            return value.item()
        return value

    return as_number
