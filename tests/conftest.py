import os
import time

import pytest

# Tests never reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
# Test processes share the cores (pytest-xdist, notebook kernels): OpenMP threads that busy-wait,
# the default, slow each other down several times over. Set before torch loads; kernels inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def tokenizer():
    from sdlearn import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def small_arch():
    """A model of other sizes than the embedded one: VAE factor 4, hidden size 32."""
    from sdlearn.architectures import TinyArchitecture

    return TinyArchitecture(image_size=32, vae_channels=(16, 16, 32), text_hidden_size=32,
                            text_layers=2, text_heads=2, text_intermediate_size=64,
                            unet_channels=(32, 64), unet_head_dim=8, norm_groups=8)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, small_arch):
    """A random model of ``small_arch``, written in diffusers layout."""
    from sdlearn.architectures import architecture_dict, build_pipeline
    from sdlearn.models import save_pipeline

    folder = tmp_path_factory.mktemp("small-model")
    pipe = build_pipeline(small_arch, seed=1)
    pipe.vae.register_to_config(scaling_factor=0.37)  # unlike SD's 0.18215, as a trained one
    save_pipeline(pipe, folder,
                  info={"world": "shapes", "architecture": architecture_dict(small_arch)})
    return folder


@pytest.fixture(scope="session")
def tiny_pipe():
    from sdlearn import load_pipeline

    return load_pipeline()


@pytest.fixture(scope="session")
def plain_model_dir(tmp_path_factory, small_arch):
    """A model of other sizes that sdlearn did not make (no sdlearn.json), like real SD."""
    from sdlearn.architectures import build_pipeline

    folder = tmp_path_factory.mktemp("plain-model")
    pipe = build_pipeline(small_arch, seed=2)
    pipe.vae.register_to_config(scaling_factor=0.37)
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def vpred_arch():
    """A model in Stable Diffusion 2.x's conventions, of other sizes than both models above:
    VAE factor 2 (24-pixel pictures, 12x12 latents), text width 48, per-block head counts,
    linear projections, attention upcast, GELU, and a tokenizer that pads with "!" (id 0)."""
    from sdlearn.architectures import TinyArchitecture

    return TinyArchitecture(image_size=24, vae_channels=(16, 32), text_hidden_size=48,
                            text_layers=2, text_heads=2, text_intermediate_size=96,
                            unet_channels=(32, 64), unet_head_dim=(2, 4), norm_groups=8,
                            unet_linear_projection=True, unet_upcast_attention=True,
                            text_hidden_act="gelu", pad_token="!")


@pytest.fixture(scope="session")
def vpred_model_dir(tmp_path_factory, vpred_arch):
    """A v-prediction model sdlearn did not make (no sdlearn.json), as SD 2.x at 768 px is:
    its scheduler is DDIM with ``prediction_type="v_prediction"``, as stable-diffusion-2-1's."""
    from diffusers import DDIMScheduler

    from sdlearn.architectures import build_pipeline

    folder = tmp_path_factory.mktemp("vpred-model")
    pipe = build_pipeline(vpred_arch, seed=3)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config,
                                               prediction_type="v_prediction")
    pipe.vae.register_to_config(scaling_factor=0.52)
    pipe.save_pretrained(folder)
    return folder


def _inpainting_sibling(base_dir, folder):
    """The model in ``base_dir`` widened to an inpainting UNet (9 channels, the new ones zero,
    as fine-tuning starts) and saved as a ``StableDiffusionInpaintPipeline``: the sibling a
    real base model has, for the learner runs of lesson 07."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    from sdlearn.training.inpainting import widen_conv_in

    base = StableDiffusionPipeline.from_pretrained(base_dir, dtype=torch.float32)
    components = {**base.components, "unet": widen_conv_in(base.unet, 9)}
    StableDiffusionInpaintPipeline(**components, requires_safety_checker=False).save_pretrained(
        folder)
    return folder


@pytest.fixture(scope="session")
def plain_inpainting_dir(tmp_path_factory, plain_model_dir):
    return _inpainting_sibling(plain_model_dir, tmp_path_factory.mktemp("plain-inpainting"))


@pytest.fixture(scope="session")
def vpred_inpainting_dir(tmp_path_factory, vpred_model_dir):
    return _inpainting_sibling(vpred_model_dir, tmp_path_factory.mktemp("vpred-inpainting"))


def _depth_sibling(base_dir, folder):
    """The model in ``base_dir`` with a new (untrained) depth estimator and its UNet widened to
    5 channels, saved as a ``StableDiffusionDepth2ImgPipeline``."""
    import torch
    from diffusers import StableDiffusionDepth2ImgPipeline, StableDiffusionPipeline

    from sdlearn.training.depth import build_depth_estimator
    from sdlearn.training.inpainting import widen_conv_in

    base = StableDiffusionPipeline.from_pretrained(base_dir, dtype=torch.float32)
    estimator, processor = build_depth_estimator(base.unet.config.sample_size
                                                 * base.vae_scale_factor)
    parts = {k: base.components[k] for k in ("vae", "text_encoder", "tokenizer", "scheduler")}
    StableDiffusionDepth2ImgPipeline(**parts, unet=widen_conv_in(base.unet, 5),
                                     depth_estimator=estimator,
                                     feature_extractor=processor).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def plain_depth_dir(tmp_path_factory, plain_model_dir):
    return _depth_sibling(plain_model_dir, tmp_path_factory.mktemp("plain-depth"))


@pytest.fixture(scope="session")
def vpred_depth_dir(tmp_path_factory, vpred_model_dir):
    return _depth_sibling(vpred_model_dir, tmp_path_factory.mktemp("vpred-depth"))


@pytest.fixture
def fake_clock(monkeypatch):
    """``time.perf_counter`` that moves only when told: timings exact on a busy machine too."""
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    def advance(seconds):
        now[0] += seconds
    return advance
