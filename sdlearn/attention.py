"""Looking inside cross-attention: where in the picture does each word of the prompt act?

In every cross-attention layer of the UNet, each latent position (a query) spreads its
attention over the 77 token vectors of the prompt (the keys). :func:`record_cross_attention`
installs a diffusers attention processor that computes attention the plain way and keeps
those probabilities; :func:`token_maps` averages them into one map per token.
:func:`share_inside` reads how much of a map falls on an object, to be compared with
:func:`chance_share`, what an even spread would put there.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> with record_cross_attention(pipe.unet) as store:
...     _ = pipe("a big red circle", num_inference_steps=2)
>>> token_maps(store, [3], pipe.unet.config.sample_size).shape
torch.Size([1, 8, 8])
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import torch
import torch.nn.functional as F


class CrossAttentionRecorder:
    """An attention processor: plain attention, with cross-attention probabilities recorded.

    ``store[layer]`` keeps a running sum over calls of the head-averaged probabilities,
    ``(batch, queries, tokens)``, and the number of calls — memory does not grow with steps.

    ``__call__`` is a copy of diffusers' ``AttnProcessor.__call__`` (diffusers 0.40,
    ``diffusers.models.attention_processor``) with the recording added;
    ``tests/test_attention.py`` proves the UNet's output equal to the original's, bit for bit,
    so a change in diffusers shows there.
    """

    def __init__(self, store: dict, name: str):
        self.store, self.name = store, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        four_d = hidden_states.ndim == 4
        if four_d:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        cross = encoder_hidden_states is not None
        context = encoder_hidden_states if cross else hidden_states
        batch, length, _ = context.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        if cross and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attention_mask)
        if cross:
            maps = probs.detach().float().view(-1, attn.heads, *probs.shape[1:]).mean(dim=1)
            entry = self.store[self.name]
            entry["sum"] = maps.cpu() + entry.get("sum", 0)
            entry["calls"] = entry.get("calls", 0) + 1
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        if four_d:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@contextmanager
def record_cross_attention(unet):
    """Record the cross-attention of every ``attn2`` layer while the block runs.

    Yields a dict ``layer name → {"sum": probabilities summed over calls, "calls": count}``;
    the UNet's own processors are put back afterwards.
    """
    saved = unet.attn_processors
    store: dict = defaultdict(dict)
    unet.set_attn_processor({name: CrossAttentionRecorder(store, name) if "attn2" in name
                             else processor for name, processor in saved.items()})
    try:
        yield store
    finally:
        unet.set_attn_processor(saved)


def _layer_grid(h: int, w: int, positions: int) -> tuple[int, int] | None:
    """The (rows, cols) of a layer with ``positions`` queries: the latents halved, rounding up
    as the UNet's stride-2 convolutions do (65 → 33 → 17 → 9)."""
    while h * w > positions and h > 1:
        h, w = -(-h // 2), -(-w // 2)
    return (h, w) if h * w == positions else None


def token_maps(store: dict, tokens: list[int], latent_size: int | tuple[int, int], *,
               batch_index: int = -1) -> torch.Tensor:
    """One attention map per token position, averaged over layers, heads and calls.

    Each layer's maps are resized to the latent size first. ``batch_index`` picks the image in
    the batch: with guidance the batch is ``[uncond, cond]``, so the default ``-1`` is the
    prompt's half. Returns ``(len(tokens), height, width)``, each map summing to 1.
    """
    h, w = (latent_size, latent_size) if isinstance(latent_size, int) else latent_size
    total, count = torch.zeros(len(tokens), h, w), 0
    for name, entry in store.items():
        if not entry:
            continue
        probs = entry["sum"][batch_index] / entry["calls"]  # (queries, tokens)
        grid = _layer_grid(h, w, probs.shape[0])
        if grid is None:
            raise ValueError(f"layer {name} has {probs.shape[0]} positions, which does not fit "
                             f"latent_size={(h, w)}: pass the latents' size of the recorded run, "
                             "(height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)")
        maps = probs[:, tokens].T.reshape(len(tokens), 1, *grid)
        total += F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        count += 1
    if count == 0:
        raise ValueError("nothing was recorded: run the UNet inside record_cross_attention()")
    total /= count
    return total / total.sum(dim=(1, 2), keepdim=True)


def cross_attention_layers(unet) -> list:
    """The UNet's cross-attention layers (``attn2`` of each transformer block), in the order
    the UNet runs them: down blocks, mid block, up blocks.

    >>> import sdlearn
    >>> len(cross_attention_layers(sdlearn.load_pipeline().unet))
    7
    """
    return [module for name, module in unet.named_modules() if name.endswith("attn2")]


def area_mask(coverage, size: int | tuple[int, int]) -> torch.Tensor:
    """A mask of the picture's pixels (values in [0, 1]) at the latents' size, ``(h, w)``.

    Each latent cell holds the mean of its block of pixels: the fraction of it the object
    covers (an area average, so a small object is not lost as it can be by ``nearest``).

    >>> m = torch.zeros(64, 64); m[:16, :16] = 1
    >>> area_mask(m, 8)[:3, :3]
    tensor([[1., 1., 0.],
            [1., 1., 0.],
            [0., 0., 0.]])
    """
    m = torch.as_tensor(coverage, dtype=torch.float32)
    if m.ndim != 2:
        raise ValueError(f"coverage has shape {tuple(m.shape)}: give one (height, width) mask "
                         "of the picture's pixels")
    h, w = (size, size) if isinstance(size, int) else size
    if m.shape[0] % h or m.shape[1] % w:
        raise ValueError(f"a {tuple(m.shape)} mask does not divide into {(h, w)} cells: give "
                         "the latents' size, picture size // pipe.vae_scale_factor")
    return F.adaptive_avg_pool2d(m[None, None], (h, w))[0, 0]


def share_inside(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The share of each map's attention that falls inside ``mask`` (weights in [0, 1]).

    ``maps`` is ``(tokens, h, w)`` from :func:`token_maps` (each summing to 1), ``mask``
    ``(h, w)``. Compare it with :func:`chance_share`, not with 0 or 1.

    >>> maps = torch.full((1, 2, 2), 0.25); mask = torch.tensor([[1., 0.], [0., 0.]])
    >>> share_inside(maps, mask), chance_share(mask)
    (tensor([0.2500]), 0.25)
    """
    if maps.shape[-2:] != mask.shape:
        raise ValueError(f"maps of size {tuple(maps.shape[-2:])} and a mask of size "
                         f"{tuple(mask.shape)}: make the mask at the maps' size (area_mask)")
    return (maps.float() * mask.to(maps.device, torch.float32)).sum(dim=(-2, -1))


def chance_share(mask: torch.Tensor) -> float:
    """What an even spread of attention would put inside ``mask``: its share of the map's area.

    The baseline for :func:`share_inside`: attention on an object is only "high" against it.

    >>> chance_share(torch.tensor([[1., 0.5], [0., 0.]]))
    0.375
    """
    return float(torch.as_tensor(mask, dtype=torch.float32).mean())


def attention_inputs(attn, run) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the attention layer ``attn`` is given while ``run()`` runs (its last call):
    ``(hidden_states, encoder_hidden_states)``, the latents' tokens and the text states.

    A forward pre-hook catches them, and is removed afterwards.

    >>> import sdlearn
    >>> pipe = sdlearn.load_pipeline()
    >>> layer = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    >>> x, text = attention_inputs(layer, lambda: pipe("a red circle", num_inference_steps=1))
    >>> tuple(x.shape), tuple(text.shape)   # [uncond, cond] × 64 positions × 64 channels
    ((2, 64, 64), (2, 77, 64))
    """
    seen: dict = {}

    def catch(module, args, kwargs):
        seen["x"] = args[0] if args else kwargs["hidden_states"]
        seen["text"] = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)

    handle = attn.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    if not seen:
        raise ValueError("the layer was not called: pass a layer of the model that run() uses, "
                         "e.g. unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2")
    return seen["x"], seen["text"]
