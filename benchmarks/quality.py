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

Prompts that say less (held-out loose captions that leave something open, read back with
``sdlearn.shapes.parse_prompt``): adherence_partial (every named attribute right, no named
object missing), diversity (over ``--seeds`` seeds per prompt: distinct pictures by the
scorer's reading, the cells an unnamed place lands in, and the total-variation distance of each
unnamed attribute from the world's own frequencies), the sweep's ``partial`` and
``distinct_pictures`` (the trade-off of adherence against variety), full_caption_seed_difference
(mean pixel difference of two seeds, in 1/255) and free_prompt_examples.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from sdlearn import load_pipeline, make_generator  # noqa: E402
from sdlearn.images import psnr, to_tensor  # noqa: E402
from sdlearn.records import write_record  # noqa: E402
from sdlearn.shapes import (  # noqa: E402
    caption,
    render,
    score,
    score_prompt,
)
from sdlearn.shapes.adherence import (  # noqa: E402
    adherence,
    generate,
    partial_adherence,
    underspecified_prompts,
)
from sdlearn.shapes.diversity import (  # noqa: E402
    frequencies,
    picture_reading,
    total_variation,
    world_frequencies,
)
from sdlearn.shapes.prompts import ATTRIBUTES  # noqa: E402
from sdlearn.shapes.splits import EVAL_SEED0, VALID_SEED0, held_out_scenes  # noqa: E402
from sdlearn.sizes import default_size  # noqa: E402
from sdlearn.speed import measure  # noqa: E402

STEPS, GUIDANCE = 25, 7.5  # the course's default sampler settings, with the model's scheduler
SWEEP = (1.0, 3.0, 5.0, 7.5, 10.0)


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


# ----------------------------------------------------------------------------- loose prompts

# Prompts a new user types first; read back by the scorer (free_prompt_examples).
FREE_PROMPTS = ["a red circle", "a green triangle on a white background", "a small blue square",
                "something yellow at the top", "two circles", "A photo of a purple square."]
def diversity(pipe, readings, guidance, seeds: int = 16, progress=None,
              steps: int = STEPS) -> dict:
    """Distinct pictures per prompt over ``seeds`` seeds, and how unnamed attributes spread.

    ``spread``: for each attribute the first wanted object leaves open (and the background),
    the total-variation distance between what the pictures show and the world's frequencies
    among scenes that fit the prompt, pooled over prompts (``samples``: pictures where the
    object was found). ``place_cells``: distinct cells an unnamed place lands in, on average.
    """
    distinct, cells = [], []
    seen = {a: [] for a in (*ATTRIBUTES, "background")}
    world = {a: Counter() for a in seen}
    for k, reading in enumerate(readings):
        images = generate(pipe, [reading.text] * seeds, guidance, seed=1000 * k,
                          progress=progress, steps=steps)
        distinct.append(len({picture_reading(img) for img in images}))
        scores = [score_prompt(img, reading) for img in images]
        first = [s.matches[0][1] for s in scores]
        found = [d for d in first if d is not None]
        expected = world_frequencies(reading)
        wanted = reading.objects[0]
        for a in ATTRIBUTES:
            if getattr(wanted, a) is None and found:
                seen[a] += [getattr(d, a) for d in found]
                world[a].update({v: p * len(found) for v, p in expected[a].items()})
        if reading.background is None:
            seen["background"] += [s.seen_background for s in scores]
            world["background"].update({v: p * seeds for v, p in expected["background"].items()})
        if wanted.place is None and found:
            cells.append(len({d.place for d in found}))
    spread = {a: {"tv_distance": round(total_variation(frequencies(v), frequencies(world[a])), 3),
                  "samples": len(v)} for a, v in seen.items() if v}
    return {"prompts": len(readings), "seeds": seeds,
            "distinct_pictures": round(statistics.mean(distinct), 2), "per_prompt": distinct,
            "place_cells": round(statistics.mean(cells), 2) if cells else None,
            "spread": spread}


def seed_difference(pipe, scenes, steps: int = STEPS) -> float:
    """Mean pixel difference (in 1/255) between two seeds' pictures of each full caption."""
    prompts = [caption(s) for s in scenes]
    a = generate(pipe, prompts, GUIDANCE, seed=0, steps=steps)
    b = generate(pipe, prompts, GUIDANCE, seed=len(prompts), steps=steps)
    return statistics.mean(float(np.abs(np.asarray(x, float) - np.asarray(y, float)).mean())
                           for x, y in zip(a, b, strict=True))


def free_prompt_examples(pipe, seeds: int = 4, steps: int = STEPS) -> list[dict]:
    """What the scorer reads in pictures of the prompts a new user types first."""
    examples = []
    for k, text in enumerate(FREE_PROMPTS):
        images = generate(pipe, [text] * seeds, GUIDANCE, seed=100 * k, steps=steps)
        scores = [score_prompt(img, text) for img in images]
        examples.append({"prompt": text, "followed": sum(s.correct for s in scores),
                         "of": seeds, "distinct": len({picture_reading(i) for i in images}),
                         "first_reading": scores[0].summary()})
    return examples


def seconds_per_image(pipe, repeats: int = 5, steps: int = STEPS):
    """Median seconds of one picture through the pipeline, after a warm-up call."""
    prompt = caption(held_out_scenes(1, 2)[0])
    return measure(lambda: pipe(prompt, num_inference_steps=steps, guidance_scale=GUIDANCE,
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
    parser.add_argument("--partial-n", type=int, default=200,
                        help="under-specified prompts for adherence_partial (default 200)")
    parser.add_argument("--diversity-n", type=int, default=50,
                        help="under-specified prompts for diversity, --seeds pictures each")
    parser.add_argument("--seeds", type=int, default=16, help="seeds per diversity prompt")
    parser.add_argument("--sweep-diversity-n", type=int, default=20,
                        help="diversity prompts per sweep point (the trade-off curve)")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"sampling steps per picture (default {STEPS}, the figures' setting;"
                             " fewer only for a smoke run)")
    parser.add_argument("--validation", action="store_true",
                        help="the validation scenes, not the evaluation set")
    parser.add_argument("--out", type=Path,
                        help="also write the figures, dated and with the machine, as JSON here")
    args = parser.parse_args()
    if min(args.n, args.vae_n, args.partial_n, args.diversity_n, args.seeds, args.steps) < 1 or min(
            args.sweep_n, args.sweep_diversity_n) < 0:
        parser.error("--n, --vae-n, --partial-n, --diversity-n, --seeds and --steps must be 1 or "
                     "more, "
                     "--sweep-n and --sweep-diversity-n 0 or more")
    pipe = load_pipeline(args.model, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    seed0 = VALID_SEED0 if args.validation else EVAL_SEED0
    single, two = held_out_scenes(args.n, 1, seed0), held_out_scenes(args.n, 2, seed0)
    sweep_n = min(args.sweep_n, args.n)
    # The sweep's point at the default guidance is the main run's first sweep_n scenes: the
    # same prompts and seeds, so the same images; they are not made twice.
    new_points = [g for g in SWEEP if g != GUIDANCE] if sweep_n else []
    progress = tqdm(total=2 * args.n + 2 * sweep_n * len(new_points), desc="images", unit="img")
    steps = args.steps
    a1, rates1, right1 = adherence(pipe, single, GUIDANCE, progress, steps=steps)
    a2, rates2, right2 = adherence(pipe, two, GUIDANCE, progress, steps=steps)
    sweep = {}
    for g in SWEEP if sweep_n else ():
        if g == GUIDANCE:
            s1, s2 = (statistics.mean(r[:sweep_n]) for r in (right1, right2))
        else:
            s1 = adherence(pipe, single[:sweep_n], g, progress, steps=steps)[0]
            s2 = adherence(pipe, two[:sweep_n], g, progress, steps=steps)[0]
        sweep[str(g)] = {"single": round(s1, 3), "two": round(s2, 3)}
    progress.close()
    # Prompts that say less: adherence to what they name, and what the seed does with the rest.
    readings = underspecified_prompts(max(args.partial_n, args.diversity_n), seed0)
    partial, varied = readings[:args.partial_n], readings[:args.diversity_n]
    per_point = min(sweep_n, args.partial_n), min(args.sweep_diversity_n, args.diversity_n)
    total = (len(partial) + len(varied) * args.seeds
             + len(new_points) * (per_point[0] + per_point[1] * args.seeds))
    progress = tqdm(total=total, desc="loose prompts", unit="img")
    right_partial = partial_adherence(pipe, partial, GUIDANCE, progress, steps)
    spread = diversity(pipe, varied, GUIDANCE, args.seeds, progress, steps)
    for g in SWEEP if sweep_n else ():
        if g == GUIDANCE:  # the main figures' first prompts and seeds: the same pictures
            right, distinct = right_partial[:per_point[0]], spread["per_prompt"][:per_point[1]]
        else:
            right = partial_adherence(pipe, partial[:per_point[0]], g, progress, steps)
            distinct = diversity(pipe, varied[:per_point[1]], g, args.seeds,
                                 progress, steps)["per_prompt"] if per_point[1] else []
        sweep[str(g)]["partial"] = round(statistics.mean(right), 3) if right else None
        sweep[str(g)]["distinct_pictures"] = (round(statistics.mean(distinct), 2) if distinct
                                              else None)
    progress.close()
    vae_psnr, recon_right = vae_quality(pipe, args.vae_n, seed0)
    result = {
        "model": pipe.name_or_path, "scenes": "validation" if args.validation else "evaluation",
        "steps": steps, "guidance": GUIDANCE,
        "scheduler": type(pipe.scheduler).__name__, "n_single": args.n, "n_two": args.n,
        "n_vae": args.vae_n,
        "adherence_single": round(a1, 3), "adherence_two": round(a2, 3),
        "attributes_single": {k: round(v, 3) for k, v in rates1.items()},
        "attributes_two": {k: round(v, 3) for k, v in rates2.items()},
        "guidance_sweep": sweep,
        "n_partial": len(partial), "adherence_partial": round(statistics.mean(right_partial), 3),
        "diversity": spread,
        "full_caption_seed_difference": round(seed_difference(pipe, two[:20], steps), 2),
        "free_prompt_examples": free_prompt_examples(pipe, steps=steps),
        "vae_psnr": round(vae_psnr, 2), "scorer_on_reconstructions": round(recon_right, 3),
        "scaling_factor": pipe.vae.config.scaling_factor,
        "seconds_per_image": round(seconds_per_image(pipe, steps=steps), 3),
        "numpy": np.__version__,  # the rest of the machine is in the record's "machine"
    }
    print(json.dumps(result))
    if args.out:
        print(f"wrote {write_record(args.out, result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
