"""Speed, measured: what lesson 08 calls as ``sdlearn.speed.NAME``.

- :mod:`sdlearn.speed.timing` — timing done right (:func:`measure`: warm-up apart,
  synchronisation, median and spread), FLOPs and bytes of weights, and :func:`breakdown`:
  where one picture's time goes.
- :mod:`sdlearn.speed.table` — lesson 08's settings table: each :class:`Setting` (precision,
  attention, channels_last, ``torch.compile``, the memory savers) timed side by side.
- :func:`sd15_sized_pipeline` (from :mod:`sdlearn.architectures`) — Stable Diffusion 1.5's
  architecture with random weights, for timing at its size on a GPU.

The machine a timing ran on is recorded with :mod:`sdlearn.records`.

>>> from sdlearn import speed
>>> t = speed.measure(lambda: sum(range(1000)), repeats=3)
>>> len(t.runs), t.cold >= 0
(3, True)
"""

from ..architectures import sd15_sized_pipeline
from .table import (
    Setting,
    as_json,
    format_table,
    memory_settings,
    run_setting,
    settings,
    speed_table,
)
from .timing import (
    OVERLAP_TOLERANCE,
    Timing,
    breakdown,
    count_flops,
    matmul_rate,
    measure,
    outgrown,
    synchronize,
    unet_inputs,
    weights_bytes,
)

__all__ = [
    # timing
    "OVERLAP_TOLERANCE", "Timing", "breakdown", "count_flops", "matmul_rate", "measure",
    "outgrown", "synchronize", "unet_inputs", "weights_bytes",
    # the settings table
    "Setting", "as_json", "format_table", "memory_settings", "run_setting", "settings",
    "speed_table",
    # Stable Diffusion 1.5's size
    "sd15_sized_pipeline",
]
