"""The architectures sdlearn builds: the tiny Stable Diffusion's, and SD 1.5's (for timing).

Both are made of diffusers' and transformers' own classes, put together by one assembler,
:func:`assemble_pipeline`, the same way ``StableDiffusionPipeline.from_pretrained`` would.

>>> TinyArchitecture().latent_size  # 64-pixel pictures, a VAE that halves three times
8
>>> pipe = build_pipeline(TinyArchitecture(image_size=32, vae_channels=(16, 16, 32),
...                       text_hidden_size=32, text_layers=1, unet_channels=(32, 32)))
>>> pipe.vae_scale_factor, pipe.unet.config.sample_size
(4, 8)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .quiet import quiet_loading
from .schedulers import SD_SCHEDULER_CONFIG, make_scheduler


@dataclass
class TinyArchitecture:
    """The sizes of the tiny Stable Diffusion: the same classes as the real one, much smaller."""

    image_size: int = 64
    vae_channels: tuple[int, ...] = (32, 64, 64, 64)  # 4 blocks → downsampling factor 8
    vae_layers_per_block: int = 1
    latent_channels: int = 4
    text_hidden_size: int = 64
    text_layers: int = 4
    text_heads: int = 4
    text_intermediate_size: int = 256
    unet_channels: tuple[int, ...] = (64, 128, 128)
    unet_layers_per_block: int = 1
    # diffusers' attention_head_dim, which Stable Diffusion uses as the number of heads: one for
    # every block (SD 1.x: 8) or one per down block (SD 2.x: (5, 10, 20, 20))
    unet_head_dim: int | tuple[int, ...] = 8
    norm_groups: int = 16
    # Stable Diffusion 2.x's conventions, off by default (SD 1.x's): linear layers instead of
    # 1x1 convolutions around the UNet's transformers, attention computed in float32, GELU in
    # the text encoder (OpenCLIP's) and the tokenizer padding with "!" (id 0)
    unet_linear_projection: bool = False
    unet_upcast_attention: bool = False
    text_hidden_act: str = "quick_gelu"
    pad_token: str | None = None  # None: the tokenizer's own, <|endoftext|> (49407)

    @property
    def vae_factor(self) -> int:
        """How many times smaller the latents are per side: 2 for every VAE block but the last."""
        return 2 ** (len(self.vae_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae_factor


def architecture_dict(arch: TinyArchitecture) -> dict:
    """The architecture as plain JSON-able values."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(arch).items()}


def assemble_pipeline(vae, text_encoder, tokenizer, unet, scheduler):
    """A ``StableDiffusionPipeline`` from its five components, with no safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def _set(**options) -> dict:
    """The options that are set (true, not None), so that a config records only those: the
    embedded model's configs stay as they were before the options existed."""
    return {k: v for k, v in options.items() if v}


def build_pipeline(arch: TinyArchitecture | None = None, *, seed: int = 0):
    """A tiny ``StableDiffusionPipeline`` with random weights, of the given architecture.

    This is the starting point of training, and a stand-in model of other sizes for tests.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .text import load_tokenizer

    a = arch or TinyArchitecture()
    torch.manual_seed(seed)
    n_vae = len(a.vae_channels)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=a.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n_vae,
        up_block_types=("UpDecoderBlock2D",) * n_vae,
        block_out_channels=a.vae_channels, layers_per_block=a.vae_layers_per_block,
        norm_num_groups=a.norm_groups, sample_size=a.image_size,
    )
    tokenizer = load_tokenizer()
    if a.pad_token is not None:
        tokenizer.pad_token = a.pad_token
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=a.text_hidden_size,
        intermediate_size=a.text_intermediate_size, num_hidden_layers=a.text_layers,
        num_attention_heads=a.text_heads, max_position_embeddings=tokenizer.model_max_length,
        **_set(hidden_act=a.text_hidden_act if a.text_hidden_act != "quick_gelu" else None),
        projection_dim=a.text_hidden_size, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    n_unet = len(a.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=a.latent_size, in_channels=a.latent_channels, out_channels=a.latent_channels,
        down_block_types=("CrossAttnDownBlock2D",) * (n_unet - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n_unet - 1),
        block_out_channels=a.unet_channels, layers_per_block=a.unet_layers_per_block,
        attention_head_dim=a.unet_head_dim, cross_attention_dim=a.text_hidden_size,
        norm_num_groups=a.norm_groups, **_set(use_linear_projection=a.unet_linear_projection,
                                              upcast_attention=a.unet_upcast_attention),
    )
    return assemble_pipeline(vae, text_encoder, tokenizer, unet,
                             make_scheduler("pndm", SD_SCHEDULER_CONFIG))


# ----------------------------------------------------------------------------- SD 1.5's size

def sd15_unet_config() -> dict:
    """Stable Diffusion 1.5's UNet architecture (860 M parameters; 64×64 latents for 512²)."""
    return dict(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
        attention_head_dim=8, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                          "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                        "CrossAttnUpBlock2D"))


def sd15_vae_config() -> dict:
    """Stable Diffusion 1.5's VAE (84 M parameters, factor 8, scaling factor 0.18215)."""
    return dict(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), norm_num_groups=32, sample_size=512,
        scaling_factor=0.18215,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def sd15_text_config() -> dict:
    """CLIP ViT-L/14's text encoder, as in Stable Diffusion 1.5 (123 M parameters)."""
    return dict(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                hidden_act="quick_gelu", projection_dim=768)


def sd15_sized_pipeline(device="cpu", dtype=None, seed: int = 0):
    """A pipeline with Stable Diffusion 1.5's architecture and *random* weights.

    Speed does not depend on the weights, so this times SD 1.5 without a download (its
    pictures are noise). Our CLIP tokenizer and SD's PNDM scheduler complete it.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .text import load_tokenizer

    torch.manual_seed(seed)
    with torch.device(device), quiet_loading():
        unet = UNet2DConditionModel(**sd15_unet_config())
        vae = AutoencoderKL(**sd15_vae_config())
        text = CLIPTextModel(CLIPTextConfig(**sd15_text_config()))
    pipe = assemble_pipeline(vae, text, load_tokenizer(), unet,
                             make_scheduler("pndm", SD_SCHEDULER_CONFIG))
    with quiet_loading():  # diffusers warns about casting; random weights have no fp32-only parts
        pipe.to(device, dtype or torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe
