"""Records: what a run measured, dated, with the machine it ran on.

The README's figures, the tiny model's ``quality.json`` and ``speed.json``, lesson 08's recorded
tables and a training run's ``sdlearn.json`` all describe their machine with :func:`machine`,
so every number has its source in one schema.

>>> sorted(machine())[:4]
['cpu_count', 'diffusers', 'omp_wait_policy', 'platform']
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def machine(device=None) -> dict:
    """The hardware and library versions a measurement was made on.

    ``device``, where given, is the device the run used (``"cpu"``, ``"cuda"``); the GPU's
    name and CUDA version are added wherever a GPU is present.
    """
    import diffusers
    import torch
    import transformers

    info = {"platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            # passive OpenMP waiting (set for long training runs) made the tiny UNet 2.5× slower
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}
    if device is not None:
        info["device"] = str(device)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def write_record(path, result: dict, *, device=None) -> Path:
    """Write ``result`` as JSON to ``path``, dated and with :func:`machine`; returns the path.

    The README's figures cite such records, so that every number has its source.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"recorded": time.strftime("%Y-%m-%d"), **result,
                                "machine": machine(device)}, indent=2) + "\n")
    return path
