"""Schedulers by short name, and Stable Diffusion 1.x's scheduler configuration.

Lessons swap the scheduler of a loaded pipeline with ``make_scheduler(name, config)``: the
same noise schedule (the config), another way to step through it.

>>> check_scheduler_name("DDIM")
'ddim'
>>> check_scheduler_name("heun")
Traceback (most recent call last):
...
ValueError: scheduler='heun' is unknown; choose one of pndm, ddim, lms, euler, dpm, unipc, deis
"""

from __future__ import annotations

# Stable Diffusion 1.x's scheduler configuration (its scheduler/scheduler_config.json).
# clip_sample is not a PNDM setting, but it is kept so that DDIMScheduler.from_config(...)
# inherits False, as it does with the real model.
SD_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "clip_sample": False,
}

SCHEDULERS = {
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "dpm": "DPMSolverMultistepScheduler",  # DPM-Solver++ (2M): diffusers' default algorithm
    "unipc": "UniPCMultistepScheduler",  # fewer-step solvers, compared in lesson 08
    "deis": "DEISMultistepScheduler",
}


def check_scheduler_name(name: str) -> str:
    """The short name in lower case, or a ``ValueError`` that lists the names sdlearn knows."""
    key = str(name).lower()
    if key not in SCHEDULERS:
        raise ValueError(f"scheduler={name!r} is unknown; choose one of {', '.join(SCHEDULERS)}")
    return key


def make_scheduler(name: str, config) -> object:
    """A diffusers scheduler by short name (``pndm ddim lms euler dpm unipc deis``), built
    from ``config``.

    >>> from sdlearn import load_pipeline
    >>> make_scheduler("ddim", load_pipeline().scheduler.config).__class__.__name__
    'DDIMScheduler'
    """
    import diffusers

    return getattr(diffusers, SCHEDULERS[check_scheduler_name(name)]).from_config(config)
