"""How fast is one image? Prints one JSON line.

Median seconds per image (25 steps, guidance 7.5, batch 1) through ``StableDiffusionPipeline``
and through sdlearn's hand-written loop (``sdlearn.sampling``), their ratio, and where the time
goes: lesson 08's ``sdlearn.speed.breakdown`` (the text encoder, the UNet steps and the VAE
decoder, each timed alone, and the rest of the whole call), in seconds and as shares. Timed
with ``sdlearn.speed.measure``; ``--out`` adds the date and the machine (``sdlearn.records``).

    python benchmarks/speed.py                  # the shipped model, on the CPU
    python benchmarks/speed.py --model FOLDER --device cuda --repeats 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from sdlearn import load_pipeline, make_generator  # noqa: E402
from sdlearn.records import write_record  # noqa: E402
from sdlearn.sampling import decode, sample  # noqa: E402
from sdlearn.speed import breakdown, measure  # noqa: E402

PROMPT = ("a big red circle at the top left and a small blue square in the center "
          "on a white background")
STEPS, GUIDANCE = 25, 7.5


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

    pipeline = measure(lambda: pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                                    generator=make_generator(0)).images,
                       repeats=args.repeats, device=device)
    hand = measure(lambda: decode(pipe, sample(pipe, PROMPT, steps=STEPS,
                                               guidance_scale=GUIDANCE,
                                               generator=make_generator(0))),
                   repeats=args.repeats, device=device)
    # The parts, each timed alone (text encoding of the prompt and the empty prompt, the UNet
    # calls on a batch of 2, one VAE decode), and the rest of a whole call: lesson 08's breakdown.
    # It guides at the pipeline's default scale, which is GUIDANCE.
    parts = breakdown(pipe, prompt=PROMPT, steps=STEPS, repeats=args.repeats)
    whole = sum(parts.values())
    result = {
        "model": pipe.name_or_path,
        "scheduler": type(pipe.scheduler).__name__, "steps": STEPS,
        "guidance": GUIDANCE, "batch": 1, "repeats": args.repeats,
        "pipeline_s_per_image": round(pipeline.median, 4),
        "hand_loop_s_per_image": round(hand.median, 4),
        "hand_over_pipeline": round(hand.median / pipeline.median, 3),
        "pipeline_spread_s": [round(min(pipeline.runs), 4), round(max(pipeline.runs), 4)],
        "pipeline_first_call_s": round(pipeline.cold, 4),
        "parts_s": {k: round(v, 4) for k, v in parts.items()},
        "shares": {k: round(v / whole, 3) for k, v in parts.items()},
    }
    print(json.dumps(result))
    if args.out:
        print(f"wrote {write_record(args.out, result, device=device)}", file=sys.stderr)


if __name__ == "__main__":
    main()
