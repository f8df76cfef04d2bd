"""Speed, measured: what lesson 08 calls as ``sdlearn.speed.NAME``.

- :mod:`sdlearn.speed.timing` — timing done right (:func:`measure`: warm-up apart,
  synchronisation, median and spread), FLOPs and bytes of weights, and :func:`breakdown`:
  where one picture's time goes.
- :mod:`sdlearn.speed.table` — lesson 08's settings table: each :class:`Setting` (precision,
  attention, channels_last, ``torch.compile``, the memory savers) timed side by side.
- :mod:`sdlearn.speed.solvers` — fewer steps with a better solver at equal quality: rows
  timed and scored on held-out scenes (:func:`solver_rows`, :func:`run_row`), set against the
  baseline (:func:`compare`) as *prompts followed per second*.
- :mod:`sdlearn.speed.threads` — the CPU: ``torch.set_num_threads`` rows, ``OMP_WAIT_POLICY``
  timed in fresh processes, which bfloat16 instructions it has (:func:`bf16_instructions`).
- :mod:`sdlearn.speed.engines` — CPU inference engines for the UNet, ONNX Runtime and
  OpenVINO (:func:`onnx_unet`, :func:`openvino_unet`: set as ``pipe.unet``), equal to
  PyTorch's within a stated tolerance; the optional extra ``pip install "sdlearn[cpu-speed]"``.
- :func:`sd15_sized_pipeline` (from :mod:`sdlearn.architectures`) — Stable Diffusion 1.5's
  architecture with random weights, for timing at its size on a GPU.

The machine a timing ran on is recorded with :mod:`sdlearn.records`.

>>> from sdlearn import speed
>>> t = speed.measure(lambda: sum(range(1000)), repeats=3)
>>> len(t.runs), t.cold >= 0
(3, True)
"""

from ..architectures import sd15_sized_pipeline
from .engines import (
    EXTRA,
    IMAGE_TOLERANCE,
    UNET_TOLERANCE,
    EngineUNet,
    available_engines,
    engine_unet,
    export_onnx,
    onnx_unet,
    openvino_unet,
    unet_difference,
)
from .solvers import (
    ADHERENCE_MARGIN,
    BASELINE,
    KARRAS,
    SOLVERS,
    compare,
    eval_scenes,
    fastest_equal_quality,
    followed_per_second,
    format_cpu_table,
    paired_change,
    run_row,
    solver_label,
    solver_rows,
    solver_scheduler,
    time_picture,
    timed_row,
)
from .table import (
    Setting,
    as_json,
    format_table,
    memory_settings,
    run_setting,
    settings,
    speed_table,
)
from .threads import (
    SHOWN_FLAGS,
    bf16_instructions,
    cpu_flags,
    thread_counts,
    thread_rows,
    wait_policy_rows,
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
    # fewer-step solvers, rows set against a baseline: prompts followed per second
    "ADHERENCE_MARGIN", "BASELINE", "KARRAS", "SOLVERS", "compare", "eval_scenes",
    "fastest_equal_quality", "followed_per_second", "format_cpu_table", "paired_change",
    "run_row", "solver_label", "solver_rows", "solver_scheduler", "time_picture", "timed_row",
    # the CPU: threads, OpenMP waiting, bfloat16 instructions
    "SHOWN_FLAGS", "bf16_instructions", "cpu_flags", "thread_counts", "thread_rows",
    "wait_policy_rows",
    # CPU inference engines for the UNet
    "EXTRA", "IMAGE_TOLERANCE", "UNET_TOLERANCE", "EngineUNet", "available_engines",
    "engine_unet", "export_onnx", "onnx_unet", "openvino_unet", "unet_difference",
    # Stable Diffusion 1.5's size
    "sd15_sized_pipeline",
]
