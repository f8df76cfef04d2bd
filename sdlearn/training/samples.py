"""Pictures of a run as it trains: a small grid of fixed prompts and seeds at every checkpoint.

The UNet phase writes ``out/samples/unet-{step:05d}.png`` before its first step, at every
checkpoint and at the end, from the weights it exports (the EMA's), and the export copies the
folder into the pipeline's, beside ``training_log.jsonl``: a run's record shows what the model
drew along the way, not only its loss. Each grid is one row per prompt, one column per seed.

>>> SAMPLE_PROMPTS[0], SAMPLE_SEEDS
('a red circle', (0, 1, 2))
>>> sample_path(Path("runs/x"), 500).as_posix()
'runs/x/samples/unet-00500.png'
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..device import make_generators
from ..images import image_grid

# loose prompts and a full caption, in the world's language (sdlearn.shapes.parse_prompt reads
# each), so that a grid shows both how the model follows prompts and how its seeds differ
SAMPLE_PROMPTS = ("a red circle",
                  "a big blue square at the top left on a white background",
                  "a small yellow triangle at the bottom right",
                  "a green circle and a purple square on a black background")
SAMPLE_SEEDS = (0, 1, 2)
SAMPLE_SETTINGS = {"num_inference_steps": 20, "guidance_scale": 7.5}


def sample_path(out: Path, step: int) -> Path:
    """Where the grid of UNet step ``step`` goes."""
    return Path(out) / "samples" / f"unet-{step:05d}.png"


def sample_steps(folder: Path) -> list[int]:
    """The steps a folder's ``samples/`` has grids of, in order."""
    found = (re.fullmatch(r"unet-(\d+)\.png", p.name) for p in (Path(folder) / "samples").glob("*"))
    return sorted(int(m.group(1)) for m in found if m)


@torch.no_grad()
def write_samples(pipe, out: Path, step: int) -> Path:
    """Draw :data:`SAMPLE_PROMPTS` × :data:`SAMPLE_SEEDS` with ``pipe``; save the grid."""
    images = []
    pipe.set_progress_bar_config(disable=True)
    for prompt in SAMPLE_PROMPTS:
        images += pipe([prompt] * len(SAMPLE_SEEDS), generator=make_generators(SAMPLE_SEEDS),
                       **SAMPLE_SETTINGS).images
    path = sample_path(out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, cols=len(SAMPLE_SEEDS)).save(path)
    return path
