"""Checkpoints: tensors and JSON metadata in one safetensors file, optimizer state, and EMA.

A checkpoint holds several modules under key prefixes (``"unet."``, ``"text."``), and an
optimizer's state flattened to tensors (safetensors holds tensors only).

>>> import torch
>>> prefixed({"weight": torch.ones(2)}, "unet.")
{'unet.weight': tensor([1., 1.])}
>>> unprefixed({"unet.weight": torch.ones(2), "text.bias": torch.zeros(1)}, "unet.")
{'weight': tensor([1., 1.])}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Tensors and JSON metadata in one safetensors file, written atomically."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
              metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the JSON metadata of a checkpoint."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def checkpoint_meta(path: Path) -> dict:
    """The JSON metadata of a checkpoint, without reading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["meta"])


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``tensors`` with ``prefix`` before every key: one module's share of a checkpoint."""
    return {prefix + k: v for k, v in tensors.items()}


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose keys start with ``prefix``, without it: one module's state back."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "opt") -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat tensors, ``opt.{index}.{name}``."""
    out = {}
    for index, entries in opt.state_dict()["state"].items():
        for name, value in entries.items():
            out[f"{prefix}.{index}.{name}"] = torch.as_tensor(value)
    return out


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict, prefix: str = "opt") -> None:
    """Restore what :func:`optimizer_tensors` saved; the hyperparameters stay ``opt``'s own."""
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


class EMA:
    """An exponential moving average of a module's parameters (its ``shadow`` state)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm up: follow closely at first
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1 - d)
            else:
                self.shadow[k].copy_(v)
