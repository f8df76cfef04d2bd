"""Graders of lesson 03, the UNet: ``check.down_shapes``, ``check.predict_noise``,
``check.cfg_batch``, ``check.attention_by_hand`` and ``check.chance_share``.

>>> import sdlearn, torch
>>> pipe = sdlearn.load_pipeline()
>>> def mine(latents, uncond, cond):
...     return torch.cat([latents, latents]), torch.cat([uncond, cond])
>>> graded = cfg_batch(mine, pipe)
✓ cfg_batch: correct (1 check).
>>> graded = chance_share(lambda mask: 1 / 9, pipe)  # doctest: +ELLIPSIS
✗ chance_share: 1/9 is a cell's share of a 3×3 grid...
"""

from __future__ import annotations

import torch

from .. import attention
from ..sampling import encode_prompts
from ..shapes import object_coverage, random_scene
from .common import grader, seeded_latents
from .grading import Check, Exercise, Marker, Mistake

OUTPUT_OBJECT = Marker("an output object, not a tensor")


def _tensor_or_marker(fn):
    """Turn a forgotten ``.sample`` into a marker the grader can explain."""

    def tensor_or_marker(*args):
        out = fn(*args)
        return out if isinstance(out, torch.Tensor | tuple | list) else OUTPUT_OBJECT

    return tensor_or_marker


def measured_down_shapes(unet, latents_shape) -> list[tuple[int, ...]]:
    """The shapes the UNet's down blocks output on latents of ``latents_shape``, measured with
    forward hooks during one call on zeros (the truth the ``down_shapes`` exercise predicts)."""
    b, channels, h, w = latents_shape
    param = next(unet.parameters())
    latents = torch.zeros(b, channels, h, w, device=param.device, dtype=param.dtype)
    text = torch.zeros(b, 77, unet.config.cross_attention_dim, device=param.device,
                       dtype=param.dtype)
    shapes = []
    handles = [block.register_forward_hook(
        lambda module, args, output: shapes.append(tuple(output[0].shape)))
        for block in unet.down_blocks]
    try:
        with torch.no_grad():
            unet(latents, 500, encoder_hidden_states=text)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def _down_shapes(unet, latents_shape, *, halve=lambda n: -(-n // 2), every=False, at_end=True,
                 own_channels=True):
    """The down blocks' output shapes from the config, with one thing changed at will."""
    b, _, h, w = latents_shape
    out, previous = [], unet.config.block_out_channels[0]
    for block, ch in zip(unet.down_blocks, unet.config.block_out_channels, strict=True):
        halves = every or getattr(block, "downsamplers", None) is not None
        if halves and at_end:
            h, w = halve(h), halve(w)
        out.append((b, ch if own_channels else previous, h, w))
        if halves and not at_end:
            h, w = halve(h), halve(w)
        previous = ch
    return out


@grader
def down_shapes(pipe) -> Exercise:
    """Exercise: ``down_shapes(unet, latents_shape)`` → each down block's output shape."""
    unet = pipe.unet
    c, size = unet.config.in_channels, unet.config.sample_size
    cases = [(unet, (1, c, size, size)), (unet, (2, c, size + 1, size + 3))]

    def reference(unet, latents_shape):
        return measured_down_shapes(unet, latents_shape)

    def rounded_down(unet, shape):
        return _down_shapes(unet, shape, halve=lambda n: n // 2)

    def halved_everywhere(unet, shape):
        return _down_shapes(unet, shape, every=True)

    def before_halving(unet, shape):
        return _down_shapes(unet, shape, at_end=False)

    def channels_coming_in(unet, shape):
        return _down_shapes(unet, shape, own_channels=False)

    def as_tuples(fn):
        def tuples(*args):
            out = fn(*args)
            try:
                return [tuple(int(n) for n in s) for s in out]
            except TypeError:
                return out
        return tuples

    return Exercise(
        "down_shapes", reference, cases,
        mistakes=[
            Mistake(rounded_down, "a 3×3 convolution of stride 2 and padding 1 gives "
                                  "⌊(n + 2 − 3) / 2⌋ + 1 positions from n: it rounds up, "
                                  "9 → 5, not 4"),
            Mistake(halved_everywhere, "the last down block has no downsampler "
                                       "(block.downsamplers is None): it keeps its grid"),
            Mistake(before_halving, "a down block's output comes after its downsampler: halve "
                                    "the grid at the end of each block that has one"),
            Mistake(channels_coming_in, "a block's output has that block's own channels, "
                                        "unet.config.block_out_channels[i]"),
        ],
        adapt=as_tuples)


@grader
def predict_noise(pipe) -> Exercise:
    """Exercise: ``predict_noise(unet, latents, t, text_embeddings)`` → the UNet's noise guess."""
    unet = pipe.unet
    text = encode_prompts(pipe, ["a big red circle at the top left"])[1]

    @torch.no_grad()
    def reference(unet, latents, t, text):
        return unet(latents, t, encoder_hidden_states=text).sample

    @torch.no_grad()
    def divided(unet, latents, t, text):
        return unet(latents, t / 1000, encoder_hidden_states=text).sample

    @torch.no_grad()
    def at_zero(unet, latents, t, text):
        return unet(latents, 0, encoder_hidden_states=text).sample

    def a_tensor(got, expected, args) -> bool:
        return got is not OUTPUT_OBJECT

    return Exercise(
        "predict_noise", reference, [(unet, seeded_latents(pipe, 5), 700, text),
                                     (unet, seeded_latents(pipe, 6), 50, text)],
        mistakes=[Mistake(divided, "pass the timestep as it is, an integer from 0 to 999 — not "
                                   "divided"),
                  Mistake(at_zero, "pass the timestep t: the UNet must know how noisy its input "
                                   "is")],
        checks=[Check(a_tensor, "the UNet returns an output object — take its .sample")],
        adapt=_tensor_or_marker, atol=1e-4)


@grader
def cfg_batch(pipe) -> Exercise:
    """Exercise: ``cfg_batch(latents, uncond, cond)`` → (UNet input, text) for one guided call."""
    uncond, cond = encode_prompts(pipe, "a small blue square in the center")

    def reference(x, u, c):
        return torch.cat([x, x]), torch.cat([u, c])

    def cond_first(x, u, c):
        return torch.cat([x, x]), torch.cat([c, u])

    def latents_once(x, u, c):
        return x, torch.cat([u, c])

    return Exercise(
        "cfg_batch", reference, [(seeded_latents(pipe, 7), uncond, cond)],
        mistakes=[Mistake(cond_first, "put the unconditional embedding first, [uncond, cond], as "
                                      "diffusers does: noise_pred.chunk(2) then gives (uncond, "
                                      "cond) in that order"),
                  Mistake(latents_once, "duplicate the latents: the batch needs one copy for each "
                                        "text embedding")])


def _attention(attn, x, text, *, heads=None, scale=None, over=-1, project=True, keys=None):
    """Attention written out, with one thing changed at will: the typical mistakes."""
    source = text if keys is None else keys
    q, k, v = attn.to_q(x), attn.to_k(source), attn.to_v(source)
    b, n, width = q.shape
    heads = heads or attn.heads
    d = width // heads
    q, k, v = (m.reshape(b, -1, heads, d).transpose(1, 2) for m in (q, k, v))
    weights = ((q @ k.transpose(-1, -2)) * (d ** -0.5 if scale is None else scale)).softmax(over)
    out = (weights @ v).transpose(1, 2).reshape(b, n, width)
    return attn.to_out[0](out) if project else out


@grader
def attention_by_hand(pipe) -> Exercise:
    """Exercise: ``attention_by_hand(attn, x, text)`` → the cross-attention layer's output."""
    unet = pipe.unet
    layers = attention.cross_attention_layers(unet)
    uncond, cond = encode_prompts(pipe, "a big red circle at the top left")
    latents, text = seeded_latents(pipe, 8, batch=2), torch.cat([uncond, cond])
    t = torch.tensor([500], device=latents.device)

    def run():
        return unet(latents, t, encoder_hidden_states=text)

    # The top layer (many positions, few channels) and the deepest one (the other way round).
    mid = getattr(unet.mid_block, "attentions", None)
    deepest = mid[0].transformer_blocks[0].attn2 if mid else layers[-1]
    cases = []
    for attn in dict.fromkeys([layers[0], deepest]):
        x, states = attention.attention_inputs(attn, run)
        cases.append((attn, x, states))

    @torch.no_grad()
    def reference(attn, x, text):
        return attn(x, encoder_hidden_states=text)

    def wrong(**changes):
        @torch.no_grad()
        def mistake(attn, x, text):
            keys = x if changes.get("keys") == "latents" else None
            rest = {k: v for k, v in changes.items() if k != "keys"}
            return _attention(attn, x, text, keys=keys, **rest)
        return mistake

    @torch.no_grad()
    def one_head(attn, x, text):  # no head split, but scaled by one head's width
        return _attention(attn, x, text, heads=1, scale=(x.shape[-1] // attn.heads) ** -0.5)

    # Keys from the latents can only be computed where the latents are as wide as the text.
    latent_keys = [Mistake(wrong(keys="latents"), "the keys and values come from the text states "
                           "(attn.to_k(text), attn.to_v(text)); only the queries come from the "
                           "latents")] \
        if all(a.to_k.in_features == x.shape[-1] for a, x, _ in cases) else []
    return Exercise(
        "attention_by_hand", reference, cases,
        mistakes=[
            Mistake(wrong(scale=1.0), "divide the scores Q·Kᵀ by √d, d the width of one head "
                                      "(width // attn.heads); attn.scale holds 1/√d"),
            Mistake(wrong(over=-2), "take the softmax over the keys, the last axis (the 77 "
                                    "tokens): each query's weights must sum to 1"),
            Mistake(wrong(project=False), "finish with the output projection, "
                                          "attn.to_out[0](...)"),
            Mistake(wrong(heads=1), "split the width into attn.heads heads of width d, each with "
                                    "its own softmax, and scale by √d of one head: "
                                    "view(b, n, heads, d).transpose(1, 2)"),
            Mistake(one_head, "split the width into attn.heads heads before the softmax: one "
                              "softmax over the full width is one head, not attn.heads"),
            *latent_keys,
        ],
        atol=1e-4, rtol=1e-3)


@grader
def chance_share(pipe) -> Exercise:
    """Exercise: ``chance_share(mask)`` → the share of an even map that falls inside ``mask``."""
    size = pipe.unet.config.sample_size
    pixels = size * pipe.vae_scale_factor
    objects = [o for seed in (31, 32, 33) for o in random_scene(seed, n_objects=2).objects]
    masks = [(attention.area_mask(object_coverage(o, pixels), size),) for o in objects]

    def reference(mask):
        return attention.chance_share(mask)

    def a_ninth(mask):
        return 1 / 9

    def cells(mask):
        return float(mask.sum())

    def whole_cells(mask):
        return float((mask > 0).float().mean())

    def one_cell(mask):
        return 1 / mask.numel()

    return Exercise(
        "chance_share", reference, masks,
        mistakes=[
            Mistake(a_ninth, "1/9 is a cell's share of a 3×3 grid, but an object covers only "
                             "part of its cell: an even spread puts in the mask its share of "
                             "the map's area"),
            Mistake(cells, "that is the mask's area in cells; an even map puts 1/(h·w) in each "
                           "cell, so divide by the number of cells"),
            Mistake(whole_cells, "a cell the object covers in part holds only that part: weight "
                                 "each cell by its value in the mask, don't count it whole"),
            Mistake(one_cell, "that is one cell's share; add up the shares of the cells in the "
                              "mask, each weighted by its value"),
        ],
        adapt=_a_number, atol=1e-4)


def _a_number(fn):
    """A number whatever the learner returns it as (a float, or a tensor of one value)."""

    def a_number(*args):
        out = fn(*args)
        return float(out) if isinstance(out, int | float | torch.Tensor) and \
            getattr(out, "numel", lambda: 1)() == 1 else out

    return a_number
