"""What does guidance do for each model? The guidance curves of one or more models. One JSON line.

For every ``--model`` and every guidance scale of the sweep: the share of held-out one-object
and two-object scenes whose full caption is followed (every object right), and the share of
held-out loose prompts whose named attributes are all right, the figures of
``benchmarks/quality.py``, on the same scenes and seeds for every model.

Lesson 10 compares two runs alike but for ``--caption-dropout`` (0.1 and 0)::

    python benchmarks/guidance.py --model runs/dropout-0.1/pipeline \\
        --model runs/dropout-0/pipeline --n 100 --out data/runs/caption-dropout.json

Fields: ``models`` (for each: its folder; its caption dropout and UNet steps from the record;
``denoising_loss``, the UNet's mean squared error on ``--loss-n`` held-out pictures with their
captions and with the empty prompt, the same noise and timesteps for both; and ``sweep``,
guidance → ``single``, ``two``, ``partial``), ``n`` (scenes or prompts per figure), ``steps``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from sdlearn import load_pipeline, make_generator  # noqa: E402
from sdlearn.device import randn  # noqa: E402
from sdlearn.images import to_tensor  # noqa: E402
from sdlearn.models import model_info  # noqa: E402
from sdlearn.records import write_record  # noqa: E402
from sdlearn.shapes import caption, random_scene, render  # noqa: E402
from sdlearn.shapes.adherence import (  # noqa: E402
    STEPS,
    adherence,
    partial_adherence,
    underspecified_prompts,
)
from sdlearn.shapes.splits import EVAL_SEED0, held_out_scenes  # noqa: E402
from sdlearn.sizes import default_size  # noqa: E402
from sdlearn.text import tokenize  # noqa: E402
from sdlearn.training.unet import diffusion_loss  # noqa: E402

SWEEP = (1.0, 3.0, 5.0, 7.5, 10.0)
LOSS_OFFSET = 8_000_000  # the denoising-loss scenes, past those of the sweep and the lessons


@torch.no_grad()
def denoising_loss(pipe, n: int = 128) -> dict:
    """The UNet's mean squared error on ``n`` held-out pictures, the same noise and timesteps
    for each prompt: with their captions, and with the empty prompt that guidance asks about."""
    from diffusers import DDPMScheduler

    scenes = [random_scene(EVAL_SEED0 + LOSS_OFFSET + i) for i in range(n)]
    pictures = to_tensor([render(s, default_size(pipe)) for s in scenes]).to(pipe.device)
    vae = pipe.vae
    x0 = vae.encode(pictures.to(vae.dtype)).latent_dist.mean * vae.config.scaling_factor
    gen = make_generator(3)
    noise = randn(x0.shape, gen).to(x0.device, x0.dtype)
    t = torch.randint(0, 1000, (n,), generator=gen).to(x0.device)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    losses = {}
    for name, prompts in (("caption", [caption(s) for s in scenes]), ("empty", [""] * n)):
        states = pipe.text_encoder(tokenize(pipe.tokenizer, prompts).input_ids.to(pipe.device))[0]
        errors = diffusion_loss(pipe.unet, scheduler, x0, noise, t, states, 5.0)[1]
        losses[name] = round(errors.float().mean().item(), 4)
    return losses


def guidance_curve(pipe, n: int, sweep=SWEEP, steps: int = STEPS, progress=None) -> dict:
    """guidance → adherence on ``n`` one-object, ``n`` two-object and ``n`` loose prompts."""
    single, two = held_out_scenes(n, 1, EVAL_SEED0), held_out_scenes(n, 2, EVAL_SEED0)
    loose = underspecified_prompts(n, EVAL_SEED0)
    curve = {}
    for g in sweep:
        right = partial_adherence(pipe, loose, g, progress, steps)
        curve[str(g)] = {"single": round(adherence(pipe, single, g, progress, steps=steps)[0], 3),
                         "two": round(adherence(pipe, two, g, progress, steps=steps)[0], 3),
                         "partial": round(sum(right) / len(right), 3)}
    return curve


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True,
                        help="a model folder (repeat the option for several)")
    parser.add_argument("--n", type=int, default=100,
                        help="scenes per set and loose prompts per guidance scale (default 100)")
    parser.add_argument("--loss-n", type=int, default=128,
                        help="held-out pictures for the denoising loss (default 128)")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"sampling steps per picture (default {STEPS})")
    parser.add_argument("--out", type=Path,
                        help="also write the figures, dated and with the machine, as JSON here")
    args = parser.parse_args()
    if min(args.n, args.steps, args.loss_n) < 1:
        parser.error("--n, --loss-n and --steps must be 1 or more")
    models = []
    progress = tqdm(total=3 * args.n * len(SWEEP) * len(args.model), desc="images", unit="img")
    for folder in args.model:
        pipe = load_pipeline(folder, device="cpu")
        pipe.set_progress_bar_config(disable=True)
        config = model_info(pipe).get("config", {})
        models.append({"model": folder, "caption_dropout": config.get("caption_dropout"),
                       "unet_steps": config.get("unet_steps"),
                       "denoising_loss": denoising_loss(pipe, args.loss_n),
                       "sweep": guidance_curve(pipe, args.n, steps=args.steps,
                                               progress=progress)})
    progress.close()
    result = {"models": models, "n": args.n, "loss_n": args.loss_n, "steps": args.steps,
              "scenes": "evaluation"}
    print(json.dumps(result))
    if args.out:
        print(f"wrote {write_record(args.out, result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
