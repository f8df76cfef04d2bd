"""How fast is one image? Prints one JSON line.

Median seconds per image (25 steps, guidance 7.5, batch 1) through ``StableDiffusionPipeline``
and through sdlearn's hand-written loop (``sdlearn.sampling``), their ratio, and where the time
goes: the shares of the text encoder, the UNet and the VAE decoder, timed separately.

    python benchmarks/speed.py                  # the shipped model, on the CPU
    python benchmarks/speed.py --model FOLDER --device cuda --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from sdlearn import load_pipeline, make_generator  # noqa: E402
from sdlearn.sampling import decode, encode_prompts, sample  # noqa: E402
from sdlearn.speed import write_record  # noqa: E402

PROMPT = ("a big red circle at the top left and a small blue square in the center "
          "on a white background")
STEPS, GUIDANCE = 25, 7.5


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int) -> list[float]:
    """Seconds for each of ``repeats`` calls, after one warm-up call."""
    fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


@torch.inference_mode()
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path,
                        help="also write the figures, dated and with the machine, as JSON here")
    args = parser.parse_args()
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        print("speed.py: OMP_WAIT_POLICY=PASSIVE is set: small models run much slower with it "
              "(measured 2.5× for the tiny UNet); unset it for figures to compare",
              file=sys.stderr)
    pipe = load_pipeline(args.model, device=args.device)
    pipe.set_progress_bar_config(disable=True)
    device = pipe.device

    pipeline_s = timed(lambda: pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                                    generator=make_generator(0)).images, device, args.repeats)
    hand_s = timed(lambda: decode(pipe, sample(pipe, PROMPT, steps=STEPS,
                                               guidance_scale=GUIDANCE,
                                               generator=make_generator(0))),
                   device, args.repeats)

    # The parts, alone: text encoding (prompt and empty prompt), 25 steps' UNet calls on a batch
    # of 2, one VAE decode.
    uncond, cond = encode_prompts(pipe, PROMPT)
    text = torch.cat([uncond, cond])
    c = pipe.unet.config
    latents = torch.randn(2, c.in_channels, c.sample_size, c.sample_size,
                          generator=torch.Generator().manual_seed(0)).to(device, pipe.unet.dtype)
    parts = {
        "text_encoder": timed(lambda: encode_prompts(pipe, PROMPT), device, args.repeats),
        "unet": timed(lambda: [pipe.unet(latents, 500, encoder_hidden_states=text)
                               for _ in range(STEPS)], device, args.repeats),
        "vae_decode": timed(lambda: pipe.vae.decode(latents[:1]), device, args.repeats),
    }
    medians = {k: statistics.median(v) for k, v in parts.items()}
    total = sum(medians.values())
    pipe_median, hand_median = statistics.median(pipeline_s), statistics.median(hand_s)
    result = {
        "model": pipe.name_or_path, "device": str(device),
        "scheduler": type(pipe.scheduler).__name__, "steps": STEPS,
        "guidance": GUIDANCE, "batch": 1, "repeats": args.repeats,
        "pipeline_s_per_image": round(pipe_median, 4),
        "hand_loop_s_per_image": round(hand_median, 4),
        "hand_over_pipeline": round(hand_median / pipe_median, 3),
        "pipeline_spread_s": [round(min(pipeline_s), 4), round(max(pipeline_s), 4)],
        "parts_s": {k: round(v, 4) for k, v in medians.items()},
        "shares": {k: round(v / total, 3) for k, v in medians.items()},
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    if args.out:
        print(f"wrote {write_record(args.out, result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
