"""How well do the depth estimator and depth-to-image work, against img2img? One JSON line.

Held-out scenes (seeds from ``EVAL_SEED0`` on, a range training never uses):

- ``estimator``: the depth model's estimator on ``--n-depth`` renders (1 to 3 objects),
  against the world's true depth (:mod:`sdlearn.shapes.depth`): ``delta_1.25`` (the share of
  pixels within a factor 1.25) and ``abs_rel`` (mean relative error), over every pixel and
  over the objects' (``objects_``), beside what a flat backdrop would score
  (``flat_backdrop_``: most pixels are backdrop, so it passes δ on about nine in ten);
- ``depth2img`` and ``img2img``: two-object scenes in which every object gets a new colour
  (one the scene does not have, :func:`sdlearn.shapes.recolored_pairs`); the prompt names the
  new colours, the shapes and the background but neither places nor sizes
  (:func:`sdlearn.shapes.recolor_prompt`), so the layout must come from the input. Both run at
  the same strength, seeds and settings (25 steps, guidance 7.5): the depth model through
  ``StableDiffusionDepth2ImgPipeline``, estimating depth itself, and the base model through
  ``StableDiffusionImg2ImgPipeline``. The scorer reads ``layout`` (every object's place, shape
  and size right, nothing extra), ``colors`` (every object's colour right) and ``both``.

    python benchmarks/depth.py                          # the shipped pair, 100 scenes
    python benchmarks/depth.py --model runs/tiny-sd-depth/pipeline --validation

``bars``: issue 19's (estimator δ ≥ 0.90; depth-to-image both ≥ 0.8 where img2img manages both
in fewer than half).
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

from sdlearn import load_pipeline, make_generators  # noqa: E402
from sdlearn.quiet import quiet_loading  # noqa: E402
from sdlearn.records import write_record  # noqa: E402
from sdlearn.shapes import (  # noqa: E402
    random_scene,
    read_recolor,
    recolor_prompt,
    recolored_pairs,
    render_image,
)
from sdlearn.shapes.depth import BACKDROP, render_depth  # noqa: E402
from sdlearn.shapes.splits import EVAL_SEED0, VALID_SEED0  # noqa: E402
from sdlearn.sizes import default_size  # noqa: E402
from sdlearn.training.depth import depth_accuracy  # noqa: E402

STEPS, GUIDANCE, STRENGTH = 25, 7.5, 0.8  # STRENGTH: the depth pipeline's default


@torch.no_grad()
def estimator_accuracy(model, n: int, seed0: int) -> dict[str, float]:
    """The estimator on ``n`` renders of 1 to 3 objects, against their true depth: over every
    pixel, over the objects' pixels alone, and what a flat backdrop would score."""
    size = default_size(model)
    scenes = [random_scene(seed0 + 5_000_000 + i) for i in range(n)]
    pixels = model.feature_extractor(images=[render_image(s, size) for s in scenes],
                                     return_tensors="pt").pixel_values
    estimator = model.depth_estimator
    predicted = estimator(pixels.to(estimator.device, estimator.dtype)).predicted_depth
    predicted = predicted.float().cpu().numpy()
    true = np.stack([render_depth(s, size) for s in scenes])
    objects = true < BACKDROP
    figures = {**depth_accuracy(predicted, true),
               **{f"objects_{k}": v for k, v in depth_accuracy(predicted, true, objects).items()},
               **{f"flat_backdrop_{k}": v for k, v in
                  depth_accuracy(np.full(true.shape, 1 / BACKDROP), true).items()}}
    return {k: round(v, 4) for k, v in figures.items()}


def edit_all(pipe, pairs, strength: float, steps: int, seed0: int, batch: int, progress):
    """Every pair's recolouring through ``pipe``, seeded per scene; the readings' shares."""
    size = default_size(pipe)
    readings = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        pictures = pipe([recolor_prompt(new) for _, new in chunk],
                        image=[render_image(old, size) for old, _ in chunk], strength=strength,
                        num_inference_steps=steps, guidance_scale=GUIDANCE,
                        generator=make_generators(range(seed0 + start,
                                                        seed0 + start + len(chunk)))).images
        readings += [read_recolor(p, new) for p, (_, new) in zip(pictures, chunk, strict=True)]
        progress.update(len(chunk))
    return {k: round(statistics.mean(r[k] for r in readings), 3)
            for k in ("layout", "colors", "both")}


def main():
    from diffusers import StableDiffusionImg2ImgPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="the depth model (default: load_pipeline(task='depth'))")
    parser.add_argument("--base", default=None, help="the model for img2img (default: "
                                                     "load_pipeline())")
    parser.add_argument("--n", type=int, default=100, help="recoloured scenes (default 100)")
    parser.add_argument("--n-depth", type=int, default=200,
                        help="scenes for the estimator's figures (default 200)")
    parser.add_argument("--strengths", default=str(STRENGTH),
                        help=f"comma-separated strengths (default {STRENGTH})")
    parser.add_argument("--batch", type=int, default=10, help="pictures per call (default 10)")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"sampling steps (default {STEPS}; fewer only for a smoke run)")
    parser.add_argument("--validation", action="store_true",
                        help="the validation scenes, not the evaluation set")
    parser.add_argument("--out", type=Path,
                        help="also write the figures, dated and with the machine, as JSON here")
    args = parser.parse_args()
    strengths = [float(s) for s in args.strengths.split(",")]
    if min(args.n, args.n_depth, args.batch, args.steps) < 1 or not all(
            0 < s <= 1 for s in strengths):
        parser.error("--n, --n-depth, --batch and --steps must be 1 or more, and each strength "
                     "above 0 and at most 1")
    model = load_pipeline(args.model, device="cpu", task="depth")
    base = load_pipeline(args.base, device="cpu")
    with quiet_loading():
        img2img = StableDiffusionImg2ImgPipeline.from_pipe(base, dtype=base.dtype)
    for pipe in (model, img2img):
        pipe.set_progress_bar_config(disable=True)
    seed0 = VALID_SEED0 if args.validation else EVAL_SEED0
    pairs = recolored_pairs(args.n, seed0)
    progress = tqdm(total=2 * args.n * len(strengths), desc="edits", unit="img")
    by_strength = {}
    for strength in strengths:
        by_strength[str(strength)] = {
            "depth2img": edit_all(model, pairs, strength, args.steps, seed0, args.batch,
                                  progress),
            "img2img": edit_all(img2img, pairs, strength, args.steps, seed0, args.batch,
                                progress)}
    progress.close()
    estimator = estimator_accuracy(model, args.n_depth, seed0)
    main_point = by_strength[str(strengths[0])]
    result = {
        "model": model.name_or_path, "base": base.name_or_path,
        "scenes": "validation" if args.validation else "evaluation", "n": args.n,
        "n_depth": args.n_depth, "steps": args.steps, "guidance": GUIDANCE,
        "scheduler": type(model.scheduler).__name__, "estimator": estimator,
        "by_strength": by_strength,
        "bars": {
            "estimator_delta_at_least_0.90": estimator["delta_1.25"] >= 0.90,
            "depth2img_both_at_least_0.8": main_point["depth2img"]["both"] >= 0.8,
            "img2img_both_below_half": main_point["img2img"]["both"] < 0.5,
        },
    }
    print(json.dumps(result))
    if args.out:
        print(f"wrote {write_record(args.out, result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
