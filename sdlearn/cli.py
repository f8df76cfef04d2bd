"""The ``sdlearn`` command: generate images and describe models from the shell.

    sdlearn generate "a big red circle in the center on a blue background" -o out.png --seed 1
    sdlearn info
    sdlearn info --model stable-diffusion-v1-5/stable-diffusion-v1-5

Bad arguments end with one line that says what is wrong, and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

from .models import ModelNotFoundError
from .schedulers import SCHEDULERS

USAGE_ERROR = 2
# diffusers' StableDiffusionPipeline refuses sizes that are not multiples of 8, whatever the
# VAE factor of the model (check_inputs)
PIPELINE_MULTIPLE = 8
# torch.Generator.manual_seed takes -2**63 .. 2**64 - 1 (a negative seed is read modulo 2**64)
SEEDS = range(-2**63, 2**64)


class CommandError(Exception):
    """A problem with what the user asked for; reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + error
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, minimum: float, word: str) -> Callable[[str], float]:
    """An argparse type: ``kind`` of the text, refused below ``minimum`` (one-line errors)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {word}") from None
        if not math.isfinite(value):  # nan passes `value < minimum`; inf makes a black image
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be {minimum} or more")
        return value

    return parse


_positive_int = _number(int, 1, "a whole number")
_non_negative_float = _number(float, 0, "a number")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value not in SEEDS:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give a whole number from 0 to "
                                         f"2**64 - 1 ({2**64 - 1})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sdlearn", description="Stable Diffusion from the inside: the "
                     "tiny embedded model, or any diffusers model, from the shell.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = sub.add_parser("generate", help="generate an image from a prompt")
    gen.add_argument("prompt")
    gen.add_argument("-o", "--output", default="sdlearn.png", help="PNG file to write "
                     "(default: %(default)s)")
    gen.add_argument("--negative-prompt", default=None)
    gen.add_argument("--steps", type=_positive_int, default=25,
                     help="denoising steps (default: %(default)s)")
    gen.add_argument("--guidance-scale", type=_non_negative_float, default=7.5,
                     help="classifier-free guidance; 1 or less turns it off: diffusers then "
                     "runs one pass with the prompt, so 0 and 0.5 give the image of 1 "
                     "(default: %(default)s)")
    gen.add_argument("--seed", type=_seed, default=None,
                     help="the same seed gives the same image on this machine (another thread "
                     "count or machine may change a pixel by one level; default: a random "
                     "one, printed)")
    gen.add_argument("--height", type=_positive_int, default=None,
                     help="pixels, a multiple of the VAE factor (default: the model's size)")
    gen.add_argument("--width", type=_positive_int, default=None,
                     help="pixels, a multiple of the VAE factor (default: the model's size)")
    gen.add_argument("--allow-large", action="store_true",
                     help="run a size far beyond the model's own (more than 16 times its area), "
                     "which takes very long and much memory")
    gen.add_argument("--num-images", type=_positive_int, default=1,
                     help="images for the prompt, saved side by side as one grid")
    gen.add_argument("--scheduler", choices=sorted(SCHEDULERS), default=None,
                     help="default: the model's own (PNDM for Stable Diffusion)")
    gen.add_argument("--model", default=None, help="a folder or hub id (default: "
                     "$SDLEARN_MODEL, else the embedded tiny model)")
    gen.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best here)")

    info = sub.add_parser("info", help="describe a model: components, sizes, key numbers")
    info.add_argument("--model", default=None)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ex = sub.add_parser("exercises", help="write the learner notebooks (blanks instead of "
                        "solutions) from the authored lessons")
    ex.add_argument("--notebooks", default="notebooks", help="authored lessons (default: "
                    "%(default)s)")
    ex.add_argument("--learner", default=None, help="where to write (default: "
                    "NOTEBOOKS/learner)")
    ex.add_argument("--solutions", default=None, help="also write solution notebooks here")
    ex.add_argument("--check", action="store_true", help="write nothing; exit 1 if the "
                    "learner notebooks are out of date")

    from .training.config import add_arguments  # no torch: the parser builds fast

    train = sub.add_parser("train", help="train the tiny model on the shapes world "
                           "(resumes from --out)")
    add_arguments(train)
    return parser


def _check_output(output: Path) -> None:
    """Refuse, before the model loads, an --output that cannot be written."""
    if output.suffix.lower() != ".png":
        raise CommandError(f"--output {output}: give a file name ending in .png")
    if output.is_dir():
        raise CommandError(f"--output {output} is a folder; give a file name ending in .png, "
                           f"such as {output / 'sdlearn.png'}")
    if not output.parent.exists():
        raise CommandError(f"--output {output}: the folder {output.parent} does not exist")
    if not output.parent.is_dir():
        raise CommandError(f"--output {output}: {output.parent} is a file, not a folder")
    existed = output.exists()
    try:
        with open(output, "ab"):  # appends nothing: an existing file is left as it is
            pass
    except OSError as error:
        raise CommandError(f"--output {output} cannot be written ({error.strerror}); choose "
                           "another file") from None
    if not existed:
        output.unlink()


def _check_request(pipe, height: int, width: int, allow_large: bool) -> None:
    """Refuse a size that the pipeline would refuse, or that would run for very long."""
    import warnings

    from .sizes import LargeSizeWarning, check_large, check_size

    factor = pipe.vae_scale_factor
    step = math.lcm(factor, PIPELINE_MULTIPLE)
    if step == factor:
        try:
            check_size(height, width, factor, names=("--height", "--width"))
        except ValueError as error:
            raise CommandError(str(error)) from None
    for flag, value in (("--height", height), ("--width", width)):
        if value % step:  # a VAE factor of 4: the VAE takes 60, diffusers' pipeline does not
            lower = max(step, value // step * step)
            raise CommandError(f"{flag}={value} is not a multiple of {step}: the model's VAE "
                               f"factor is {factor}, but diffusers' pipeline takes multiples "
                               f"of {PIPELINE_MULTIPLE} only; use {lower} or {lower + step}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LargeSizeWarning)
        cost = check_large(pipe, height, width, allow_large=True)
    if cost and not allow_large:
        raise CommandError(f"{cost}. Pass --allow-large to run it anyway, or ask for a smaller "
                           "--height and --width")
    if cost:
        print(f"note: {cost}; going ahead (--allow-large)", file=sys.stderr)


def _generate(args) -> None:
    import torch

    from .device import make_generator
    from .images import image_grid
    from .models import load_pipeline
    from .sizes import default_size
    from .text import count_tokens

    output = Path(args.output)
    _check_output(output)
    pipe = load_pipeline(args.model, device=args.device, scheduler=args.scheduler)
    # diffusers draws the model's size for *both* sides if either is missing: give it both
    height, width = args.height or default_size(pipe), args.width or default_size(pipe)
    _check_request(pipe, height, width, args.allow_large)
    if args.guidance_scale < 1:
        print(f"note: diffusers runs any --guidance-scale of 1 or less as one pass with the "
              f"prompt and no guidance, so {args.guidance_scale:g} gives the image of 1",
              file=sys.stderr)
    limit = pipe.tokenizer.model_max_length
    for label, text in (("prompt", args.prompt), ("negative prompt", args.negative_prompt)):
        if text and (n := count_tokens(pipe.tokenizer, text)) > limit:
            print(f"note: the {label} has {n} tokens; the text encoder reads {limit}, so the "
                  f"last {n - limit} are dropped", file=sys.stderr)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    with torch.inference_mode():
        images = pipe(
            args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale, height=height, width=width,
            num_images_per_prompt=args.num_images,
            # a CPU generator: the same noise on every machine, so the same image here (another
            # machine or thread count may change a pixel by one level)
            generator=make_generator(seed),
        ).images
    picture = images[0] if len(images) == 1 else image_grid(images, rows=1)
    try:
        picture.save(output)
    except OSError as error:  # the disk filled up, or the folder went away, while it ran
        raise CommandError(f"--output {output} could not be written ({error}); the image is "
                           f"lost, run it again with --seed {seed}") from None
    print(f"wrote {output} ({picture.width}×{picture.height}, seed {seed}"
          f"{'' if args.seed is not None else '; pass --seed to repeat it'})")


def _info(args) -> None:
    import json

    from .models import describe, load_pipeline

    d = describe(load_pipeline(args.model))
    if args.json:
        print(json.dumps(d, indent=2))
        return
    print(f"model: {d['model']}" + (f"  (world: {d['world']})" if d["world"] else ""))
    print(f"{'component':<14}{'class':<30}{'parameters':>14}{'on disk':>12}")
    for name, c in d["components"].items():
        params = f"{c['parameters']:,}" if "parameters" in c else "-"
        size = f"{c['bytes'] / 2**20:.1f} MB" if "bytes" in c else "-"
        print(f"{name:<14}{c['class']:<30}{params:>14}{size:>12}")
    keys = ["scaling_factor", "vae_scale_factor", "latent_channels", "latent_size",
            "default_image_size", "max_length", "vocab_size", "hidden_size", "scheduler",
            "num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type",
            "dtype", "device"]
    for key in keys:
        print(f"{key:<22}{d[key]}")


def _train(args) -> None:
    from .training.config import config_from_args

    cfg = config_from_args(args)
    cfg.validate(as_options=True)  # before torch loads: a mistake is told at once
    from .training import Trainer

    path = Trainer(cfg).run()
    print(f"trained pipeline written to {path}")


def _exercises(args) -> int:
    from .exercises.authoring import lessons, write_learner_versions

    if not lessons(Path(args.notebooks)):
        raise CommandError(f"--notebooks {args.notebooks}: no lesson notebooks (NN_*.ipynb)")
    learner = args.learner or str(Path(args.notebooks) / "learner")
    for flag, folder in (("--learner", learner), ("--solutions", args.solutions)):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            raise CommandError(f"{flag} {folder} is a file; give a folder to write the "
                               "notebooks into (it is made if it does not exist)")
    changed = write_learner_versions(Path(args.notebooks), args.learner, args.solutions,
                                     check=args.check)
    if args.check:
        for path in changed:
            print(f"out of date: {path} (run `sdlearn exercises`)", file=sys.stderr)
        return 1 if changed else 0
    for path in changed:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        # Long CPU runs: busy-waiting OpenMP threads slow everything that shares the cores
        # (measured 10× slower). It must be set before torch is imported.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        commands = {"generate": _generate, "info": _info, "train": _train,
                    "exercises": _exercises}
        code = commands[args.command](args)
    except (CommandError, ModelNotFoundError, ValueError) as error:
        print(f"sdlearn {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
