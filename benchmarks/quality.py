"""How well does the shipped tiny model follow prompts? Prints one JSON line.

Held-out scenes (seeds from ``EVAL_SEED0`` on, a range training never uses) are captioned
canonically, generated at the course's default settings and read back by the shapes scorer.

    python benchmarks/quality.py                 # the shipped model, 200 + 200 scenes
    python benchmarks/quality.py --model runs/tiny-sd/pipeline --n 50 --validation

While training or choosing settings, use ``--validation``: other held-out scenes (seeds from
``VALID_SEED0`` on), so that the evaluation set stays one nobody tuned on.

Fields: adherence_single (colour, place and shape all right, one-object scenes),
adherence_two (both objects right), per-attribute rates, guidance_sweep (guidance → adherence on
both sets), vae_psnr and scorer_on_reconstructions (the VAE alone, on ``--vae-n`` held-out
two-object renders), scaling_factor, seconds_per_image (batch 1, through the pipeline, median).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from sdlearn import load_pipeline, make_generator  # noqa: E402
from sdlearn.images import psnr, to_tensor  # noqa: E402
from sdlearn.records import write_record  # noqa: E402
from sdlearn.shapes import caption, render, score  # noqa: E402
from sdlearn.shapes.splits import EVAL_SEED0, VALID_SEED0, held_out_scenes  # noqa: E402
from sdlearn.sizes import default_size  # noqa: E402
from sdlearn.speed import measure  # noqa: E402

STEPS, GUIDANCE = 25, 7.5  # the course's default sampler settings, with the model's scheduler
SWEEP = (1.0, 3.0, 5.0, 7.5, 10.0)


@torch.no_grad()
def generate(pipe, scenes, guidance: float, batch: int = 25, seed: int = 0, progress=None):
    images = []
    for i in range(0, len(scenes), batch):
        chunk = scenes[i:i + batch]
        gens = [make_generator(seed + i + j) for j in range(len(chunk))]
        images += pipe([caption(s) for s in chunk], num_inference_steps=STEPS,
                       guidance_scale=guidance, generator=gens).images
        if progress is not None:
            progress.update(len(chunk))
    return images


def adherence(pipe, scenes, guidance, progress=None):
    images = generate(pipe, scenes, guidance, progress=progress)
    results = [score(img, s) for img, s in zip(images, scenes, strict=True)]
    objects = [o for r in results for o in r.objects]
    rates = {a: sum(getattr(o, a) for o in objects) / len(objects)
             for a in ("color", "place", "shape", "size")}
    rates["background"] = sum(r.background for r in results) / len(results)
    correct = [r.correct for r in results]
    return sum(correct) / len(correct), rates, correct


@torch.no_grad()
def vae_quality(pipe, n: int, seed0: int = EVAL_SEED0):
    scenes = held_out_scenes(n, 2, seed0)
    vae, mse, right = pipe.vae, [], 0
    for i in range(0, n, 50):
        chunk = scenes[i:i + 50]
        x = to_tensor([render(s, default_size(pipe))
                       for s in chunk])
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        mse += ((recon - x) ** 2).mean(dim=(1, 2, 3)).tolist()
        right += sum(score(r, s).fully_correct for r, s in zip(recon, chunk, strict=True))
    return statistics.mean(psnr(m) for m in mse), right / n


def seconds_per_image(pipe, repeats: int = 5):
    """Median seconds of one picture through the pipeline, after a warm-up call."""
    prompt = caption(held_out_scenes(1, 2)[0])
    return measure(lambda: pipe(prompt, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                                generator=make_generator(0)),
                   repeats=repeats, device=pipe.device).median


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=200, help="scenes per set (default 200)")
    parser.add_argument("--sweep-n", type=int, default=100,
                        help="scenes per set per sweep point (0: no sweep)")
    parser.add_argument("--vae-n", type=int, default=1000,
                        help="two-object scenes for the VAE figures (default 1000: cheap, and "
                             "200 scenes leave ±0.012 of sampling error on a rate near 0.97)")
    parser.add_argument("--validation", action="store_true",
                        help="the validation scenes, not the evaluation set")
    parser.add_argument("--out", type=Path,
                        help="also write the figures, dated and with the machine, as JSON here")
    args = parser.parse_args()
    if args.n < 1 or args.vae_n < 1 or args.sweep_n < 0:
        parser.error("--n and --vae-n must be 1 or more, --sweep-n 0 or more")
    pipe = load_pipeline(args.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    seed0 = VALID_SEED0 if args.validation else EVAL_SEED0
    single, two = held_out_scenes(args.n, 1, seed0), held_out_scenes(args.n, 2, seed0)
    sweep_n = min(args.sweep_n, args.n)
    # The sweep's point at the default guidance is the main run's first sweep_n scenes: the
    # same prompts and seeds, so the same images; they are not made twice.
    new_points = [g for g in SWEEP if g != GUIDANCE] if sweep_n else []
    progress = tqdm(total=2 * args.n + 2 * sweep_n * len(new_points), desc="images", unit="img")
    a1, rates1, right1 = adherence(pipe, single, GUIDANCE, progress)
    a2, rates2, right2 = adherence(pipe, two, GUIDANCE, progress)
    sweep = {}
    for g in SWEEP if sweep_n else ():
        if g == GUIDANCE:
            s1, s2 = (statistics.mean(r[:sweep_n]) for r in (right1, right2))
        else:
            s1 = adherence(pipe, single[:sweep_n], g, progress)[0]
            s2 = adherence(pipe, two[:sweep_n], g, progress)[0]
        sweep[str(g)] = {"single": round(s1, 3), "two": round(s2, 3)}
    progress.close()
    vae_psnr, recon_right = vae_quality(pipe, args.vae_n, seed0)
    result = {
        "model": pipe.name_or_path, "scenes": "validation" if args.validation else "evaluation",
        "steps": STEPS, "guidance": GUIDANCE,
        "scheduler": type(pipe.scheduler).__name__, "n_single": args.n, "n_two": args.n,
        "n_vae": args.vae_n,
        "adherence_single": round(a1, 3), "adherence_two": round(a2, 3),
        "attributes_single": {k: round(v, 3) for k, v in rates1.items()},
        "attributes_two": {k: round(v, 3) for k, v in rates2.items()},
        "guidance_sweep": sweep,
        "vae_psnr": round(vae_psnr, 2), "scorer_on_reconstructions": round(recon_right, 3),
        "scaling_factor": pipe.vae.config.scaling_factor,
        "seconds_per_image": round(seconds_per_image(pipe), 3),
        "numpy": np.__version__,  # the rest of the machine is in the record's "machine"
    }
    print(json.dumps(result))
    if args.out:
        print(f"wrote {write_record(args.out, result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
