"""What grading may change in the pipeline, and putting it back.

A learner's function is handed the lesson's own pipeline and scheduler, and can change them: set
``pipe.scheduler``, or change ``scheduler.alphas_cumprod`` in place (``a = s.alphas_cumprod[t];
a **= 0.5``). The graders change them too: a whole loop sets the scheduler's timesteps.
A :class:`Snapshot` remembers the pipelines and schedulers among an exercise's inputs and puts
them back as they were. It names what would last (a component of the pipeline; the scheduler's
noise schedule or config), so that the grader can say so; what any run changes anyway (the
timesteps, step counters) it puts back without a word.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> snapshot = Snapshot([(pipe, 1)])
>>> pipe.scheduler.alphas_cumprod[10] **= 0.5
>>> pipe.scheduler.set_timesteps(3)
>>> snapshot.restore()
['scheduler.alphas_cumprod in place (entries [10])']
>>> snapshot.restore(), pipe.scheduler.num_inference_steps
([], None)
"""

from __future__ import annotations

import copy
import sys

import numpy as np

# What a scheduler computes from its config once, and no run changes.
LASTING = ("betas", "alphas", "alphas_cumprod", "final_alpha_cumprod", "init_noise_sigma",
           "_internal_dict")
_MISSING = object()


def _diffusers_kind(x) -> str | None:
    diffusers = sys.modules.get("diffusers")  # loaded if there is a pipeline or a scheduler
    if diffusers is None:
        return None
    if isinstance(x, diffusers.DiffusionPipeline):
        return "pipe"
    if isinstance(x, diffusers.SchedulerMixin):
        return "scheduler"
    return None


def _copy(value):
    try:
        return copy.deepcopy(value)
    except Exception:  # something that cannot be copied is compared by identity
        return value


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "shape")


def equal(a, b) -> bool:
    """Exactly the same value (tensors on any device, arrays, containers, plain values)."""
    if a is b:
        return True
    try:
        if _is_tensor(a) or _is_tensor(b):
            if not (_is_tensor(a) and _is_tensor(b) and a.shape == b.shape
                    and a.dtype == b.dtype):
                return False
            a, b = a.detach().cpu(), b.detach().cpu()
            return bool(((a == b) | (a.isnan() & b.isnan()) if a.is_floating_point()
                         else a == b).all())
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.array_equal(a, b, equal_nan=np.asarray(a).dtype.kind in "fc")
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return type(a) is type(b) and len(a) == len(b) and all(map(equal, a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
        return bool(a == b)
    except Exception:  # values that cannot be compared count as changed
        return False


def _entries(now, saved) -> str:
    """Which entries of a 1-d tensor differ, for the message."""
    try:
        if now.shape == saved.shape and now.ndim == 1:
            differ = (now.detach().cpu() != saved.detach().cpu()).nonzero().flatten().tolist()
            shown = ", ".join(map(str, differ[:5])) + (", …" if len(differ) > 5 else "")
            return f" (entries [{shown}])"
    except Exception:  # only a detail of the message
        pass
    return ""


class Snapshot:
    """The pipelines and schedulers found in ``cases`` (tuples of arguments), as they are now."""

    def __init__(self, cases):
        self.pipes: dict[int, tuple] = {}
        self.schedulers: dict[int, tuple] = {}
        for args in cases:
            for arg in args:
                self._remember(arg)

    def _remember(self, x):
        kind = _diffusers_kind(x)
        if kind == "pipe" and id(x) not in self.pipes:
            self.pipes[id(x)] = (x, dict(x.components))
            self._remember(getattr(x, "scheduler", None))
        elif kind == "scheduler" and id(x) not in self.schedulers:
            self.schedulers[id(x)] = (x, {k: (v, _copy(v)) for k, v in vars(x).items()})

    def restore(self) -> list[str]:
        """Put everything back as it was; return what had changed that would last, in words."""
        changed = []
        for pipe, parts in self.pipes.values():
            for name, part in parts.items():
                now = getattr(pipe, name, None)
                if now is not part:
                    changed.append(f"pipe.{name} (to {type(now).__name__}; it was "
                                   f"{type(part).__name__})")
                    setattr(pipe, name, part)
        for scheduler, state in self.schedulers.values():
            attributes = vars(scheduler)
            for name in set(attributes) - set(state):
                del attributes[name]
            for name, (original, saved) in state.items():
                now = attributes.get(name, _MISSING)
                if equal(now, saved):
                    continue  # (perhaps moved to another device by add_noise: the same values)
                if name in LASTING:
                    how = " in place" if now is original else ""
                    changed.append(f"scheduler.{name}{how}{_entries(now, saved)}")
                if _is_tensor(original) and original is not saved:
                    if not equal(original, saved):
                        original.copy_(saved)  # also for whoever holds the tensor itself
                    attributes[name] = original
                else:
                    attributes[name] = _copy(saved)
        return changed
