"""Training the tiny Stable Diffusion on the shapes world, from scratch, in five phases.

1. ``vae``: an ``AutoencoderKL`` learns to squeeze images into latents and back;
2. ``scale``: the scaling factor is measured on the latents;
3. ``latents``: every training image is encoded once;
3b. ``decoder``: the decoder alone is fine-tuned on the frozen encoder's latents;
4. ``unet``: the text encoder and the UNet learn to predict the noise (:mod:`.unet`).

Each phase writes checkpoints (safetensors) into ``out``; running again resumes where it
stopped, exactly (:mod:`.loop`; what a resumed run may change: :mod:`.resume`). The result is
``out/pipeline``, a diffusers folder that ``load_pipeline`` reads (:mod:`.export`), with the
run's record, its loss log and the pictures it drew at its checkpoints (:mod:`.samples`).

    sdlearn train --out runs/tiny-sd                      # the shipped model's recipe
    sdlearn train --out runs/smoke --n-train 64 --vae-steps 4 --unet-steps 4   # a quick check

How the shipped model was made, command and settings, is in ``data/tiny-sd/sdlearn.json``
(its VAE phases were copied from an earlier run with the same settings); the README says what
its settings changed. The modules: :mod:`.config` (settings and options), :mod:`.data`,
:mod:`.checkpoints`, :mod:`.runlog`, :mod:`.loop` (what every phase shares), the phases
:mod:`.vae` and :mod:`.unet`, :mod:`.export`, and :mod:`.trainer`, which runs them.
A run may start from a trained model (``--init-from``, :mod:`.init`): from all of it, to
fine-tune, or from its VAE alone (``--init-parts vae``), to train a text encoder and a UNet of
other sizes (``--unet-channels``, ``--text-layers``) on its latents. The base model's siblings
are fine-tuned from it with ``--task``:
:mod:`.inpainting` (a 9-channel UNet, random masks) and :mod:`.depth` (a depth estimator,
then a 5-channel UNet that reads its depth maps).

>>> from sdlearn.training import TrainConfig
>>> TrainConfig(unet_steps=100).command()
'sdlearn train --out runs/tiny-sd --unet-steps 100'

``Trainer`` (``from sdlearn.training import Trainer``) is imported on first use, so that the
config, and ``sdlearn``'s command line, do not load torch.
"""

from .config import TrainConfig

__all__ = ["TrainConfig", "Trainer"]


def __getattr__(name: str):
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
