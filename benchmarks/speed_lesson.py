"""Lesson 08's speed table outside the notebook: every setting timed in one run.

    python benchmarks/speed_lesson.py                    # the tiny model on the CPU
    python benchmarks/speed_lesson.py --device cuda      # an SD 1.5-sized pipeline on a GPU
    python benchmarks/speed_lesson.py --device cuda --out data/speed/gpu-sd15.json

Prints the table (first call, median, spread, speed-up over plain float32, pixel difference,
peak GPU memory), where the time goes, and the FLOP-based lower bound of a UNet step; writes it
all as JSON with the hardware and library versions (``sdlearn.records``) when --out is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import sdlearn
from sdlearn import speed
from sdlearn.records import write_record
from sdlearn.sizes import default_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default=None,
                        help="'tiny' (the embedded model), 'sd15' (SD 1.5's architecture, "
                             "random weights) or a folder/hub id (default: tiny on the CPU, "
                             "sd15 on a GPU)")
    parser.add_argument("--images", type=int, default=None, help="default: 1 (CPU), 3 (GPU)")
    parser.add_argument("--steps", type=int, default=None, help="default: 10 (CPU), 25 (GPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true",
                        help="skip torch.compile (its first call takes minutes on a CPU)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible to torch here")
    gpu = device.type == "cuda"
    model = args.model or ("sd15" if gpu else "tiny")
    images = args.images or (3 if gpu else 1)
    steps = args.steps or (25 if gpu else 10)

    started = time.time()
    if model == "sd15":
        pipe = speed.sd15_sized_pipeline(device)
    else:
        pipe = sdlearn.load_pipeline(None if model == "tiny" else model, device=str(device),
                                     dtype=torch.float32)  # the baseline; settings change it
        pipe.set_progress_bar_config(disable=True)
    size = default_size(pipe)
    print(f"{model} on {device}: {images} image(s) × {steps} steps at {size}², "
          f"{args.repeats} timed runs after a warm-up", file=sys.stderr)

    rows = speed.settings(device, compile=not args.no_compile)
    if gpu:
        rows += speed.memory_settings()
    table = speed.speed_table(pipe, rows, images=images, steps=steps, repeats=args.repeats)
    print(speed.format_table(table))

    parts = speed.breakdown(pipe, steps=steps, repeats=args.repeats)
    total = sum(parts.values())
    print("\nwhere one picture's time goes:")
    for name, seconds in parts.items():
        print(f"  {name:13} {seconds:8.3f} s  {seconds / total:6.1%}")

    latents, t, text = speed.unet_inputs(pipe)
    with torch.inference_mode():
        flops = speed.count_flops(lambda: pipe.unet(latents, t, text))
        step = speed.measure(lambda: pipe.unet(latents, t, text), repeats=args.repeats,
                             device=device).median
    rate = speed.matmul_rate(device, pipe.unet.dtype, n=4096 if gpu else 1024)
    bound = flops / rate
    print(f"\nUNet call (batch 2): {flops / 1e9:.1f} GFLOP; matmul rate {rate / 1e12:.3f} TFLOP/s "
          f"→ lower bound {bound * 1e3:.2f} ms; measured {step * 1e3:.2f} ms "
          f"(the UNet uses {bound / step:.0%} of the matmul rate)")

    if args.out and speed.outgrown(parts):
        print(f"not recorded: the breakdown's parts outgrow the whole call (the rest "
              f"{parts['the rest'] / total:.0%}); run again on a quiet machine or with more "
              f"--repeats", file=sys.stderr)
        return 1
    if args.out:
        write_record(args.out, {
            "model": model,
            "images": images, "steps": steps, "size": size, "repeats": args.repeats,
            "table": speed.as_json(table), "breakdown_s": parts,
            "unet_gflop_per_call": flops / 1e9, "matmul_tflops": rate / 1e12,
            "unet_step_s": step, "lower_bound_s": bound,
            "wall_s": round(time.time() - started, 1),
        }, device=device)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
