"""Diagrams of Stable Diffusion drawn from the real components: the pipeline, and its UNet.

Every label is read from the model — class names, channels, sizes, head counts — so the
pictures stay true for the tiny model and for real Stable Diffusion alike. Both functions return
a matplotlib ``Figure`` (a :class:`Diagram`); as the last line of a notebook cell it is
shown once, and ``fig.savefig("unet.png")`` saves it.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()
>>> fig = pipeline(pipe, steps=20)
>>> "4×8×8" in labels(fig)          # the tiny model's latents at 64×64 pixels
True
>>> fig = unet(pipe.unet)
>>> "128 ch · 2×2" in labels(fig)   # its deepest level
True
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

__all__ = ["Diagram", "labels", "level_sizes", "pipeline", "unet"]


class Diagram(Figure):
    """A matplotlib ``Figure`` that a notebook shows as a picture when a cell returns it, once,
    whether or not pyplot's inline backend is set up (it is not made through pyplot)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    def __repr__(self) -> str:
        width, height = self.get_size_inches() * self.dpi
        return f"<Diagram {width:.0f}x{height:.0f}>"

BOX = {"text": "#dbe9f6", "loop": "#fde2c8", "image": "#d9f0d3", "data": "#f2f2f2",
       "resnet": "#dbe9f6", "attention": "#fde2c8", "mid": "#e6dcf2"}


def _box(ax, x, y, w, h, text, color, *, size=8.5, weight="normal"):
    """A rounded box centred on (x, y), with its text."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,"
                                "rounding_size=0.08", fc=color, ec="#444444", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, weight=weight)


def _arrow(ax, start, end, text=None, *, style="-|>", dashed=False, color="#333333",
           offset=(0, 0.14), size=7.5):
    ax.annotate("", xy=end, xytext=start, arrowprops={
        "arrowstyle": style, "color": color, "lw": 1.2, "shrinkA": 0, "shrinkB": 0,
        "linestyle": "--" if dashed else "-"})
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text,
                ha="center", va="bottom", fontsize=size, color="#222222")


def _canvas(width: float, height: float, xlim, ylim, title: str):
    fig = Diagram(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 0.92))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    fig.suptitle(title, fontsize=10.5, y=0.985)
    return fig, ax


def labels(fig: Figure) -> str:
    """All the text drawn in a figure, one piece a line (what the tests read)."""
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))
                     if t.get_text())


def _hw(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, tuple | list) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"size={size!r}: give the latents' size as an int or (height, width)")


def pipeline(pipe, height: int | None = None, width: int | None = None,
             steps: int = 50) -> Figure:
    """The whole pipeline, prompt to picture, with this model's classes and shapes.

    ``height`` and ``width`` are the picture's, in pixels (default: the size the UNet was built
    for); ``steps`` the number of denoising steps (diffusers' default is 50).

    >>> import sdlearn
    >>> fig = pipeline(sdlearn.load_pipeline(), height=128, width=64, steps=10)
    >>> "4×16×8" in labels(fig), "10 steps" in labels(fig)
    (True, True)
    """
    factor = pipe.vae_scale_factor
    native = pipe.unet.config.sample_size * factor
    height, width = height or native, width or native
    for name, value in (("height", height), ("width", width)):
        if value % factor:
            raise ValueError(f"{name}={value} is not a multiple of the VAE's factor {factor}: "
                             f"use {value // factor * factor} or {(value // factor + 1) * factor}")
    if steps < 1:
        raise ValueError(f"steps={steps}: give at least 1 denoising step")
    tokens = pipe.tokenizer.model_max_length
    hidden = pipe.text_encoder.config.hidden_size
    channels = pipe.unet.config.in_channels
    latents = f"{channels}×{height // factor}×{width // factor}"

    fig, ax = _canvas(13, 4.3, (0, 13), (0, 4.3), "Stable Diffusion, prompt to picture "
                      f"(this model: {height}×{width} pixels, {steps} steps)")
    top, bottom = 3.3, 1.0
    _box(ax, 0.8, top, 1.3, 0.6, '"a red circle"\nprompt', BOX["data"])
    _box(ax, 3.0, top, 1.9, 0.7, f"tokenizer\n{type(pipe.tokenizer).__name__}", BOX["text"])
    _box(ax, 6.3, top, 2.1, 0.7, f"text encoder\n{type(pipe.text_encoder).__name__}",
         BOX["text"])
    _arrow(ax, (1.45, top), (2.05, top))
    _arrow(ax, (3.95, top), (5.25, top), f"{tokens} token ids")
    # The denoising loop: the UNet and the scheduler, around the latents.
    ax.add_patch(FancyBboxPatch((3.9, 0.2), 5.6, 1.85, boxstyle="round,pad=0.02,"
                                "rounding_size=0.15", fc="#fff7ef", ec="#c07020", lw=1.2,
                                ls="--"))
    ax.text(6.7, 1.8, f"denoising loop: {steps} steps, from pure noise to clean latents",
            ha="center", va="center", fontsize=8.5, color="#a05010")
    _box(ax, 5.2, bottom, 2.0, 0.9, f"UNet\n{type(pipe.unet).__name__}\npredicts the noise",
         BOX["loop"])
    _box(ax, 8.3, bottom, 1.9, 0.9, f"scheduler\n{type(pipe.scheduler).__name__}\nremoves a "
         "little", BOX["loop"])
    _arrow(ax, (6.2, bottom + 0.2), (7.35, bottom + 0.2), "noise guess", size=7)
    _arrow(ax, (7.35, bottom - 0.25), (6.2, bottom - 0.25), f"latents {latents}",
           offset=(0, -0.32), size=7)
    ax.text(5.2, 0.36, "guidance: one call on a batch of 2,\n[empty prompt, prompt]",
            ha="center", va="center", fontsize=7, color="#555555")
    _arrow(ax, (6.3, top - 0.35), (5.4, bottom + 0.45), f"{tokens}×{hidden} text states",
           offset=(0.95, -0.05))
    _box(ax, 1.7, bottom, 2.0, 0.7, f"random latents\n{latents}", BOX["data"])
    _arrow(ax, (2.7, bottom), (4.2, bottom), "start")
    _box(ax, 11.2, top, 2.1, 0.7, f"VAE decoder\n{type(pipe.vae).__name__}.decode",
         BOX["image"])
    _box(ax, 11.2, bottom, 1.7, 0.7, f"picture\n3×{height}×{width}", BOX["data"])
    _arrow(ax, (9.25, bottom + 0.3), (10.15, top - 0.2), f"final latents\n÷ "
           f"{pipe.vae.config.scaling_factor:g}", offset=(-0.55, 0.1), size=7)
    _arrow(ax, (11.2, top - 0.35), (11.2, bottom + 0.35))
    return fig


def level_sizes(unet, size=None) -> list[tuple[int, int]]:
    """The latents' (height, width) at each level of the UNet, from the top.

    ``size`` is the latents' size (default: ``unet.config.sample_size``). Each downsampler
    halves it, rounding up as its stride-2 convolution does.

    >>> import sdlearn
    >>> level_sizes(sdlearn.load_pipeline().unet, 9)
    [(9, 9), (5, 5), (3, 3)]
    """
    h, w = _hw(unet.config.sample_size if size is None else size)
    sizes = []
    for block in unet.down_blocks:
        sizes.append((h, w))
        if getattr(block, "downsamplers", None):
            h, w = -(-h // 2), -(-w // 2)
    return sizes


def _kind(block) -> str:
    """What a block is made of: its ResNets, and its transformers with their attention."""
    parts = [f"ResNet ×{len(block.resnets)}"]
    attentions = getattr(block, "attentions", None) or []
    if attentions:
        inner = attentions[0].transformer_blocks[0]
        kinds = ["self" if getattr(inner, "attn1", None) is not None
                 and not getattr(inner, "only_cross_attention", False) else None,
                 "cross" if getattr(inner, "attn2", None) is not None else None]
        heads = inner.attn1.heads
        parts.append(f"Transformer ×{len(attentions)} ({' + '.join(filter(None, kinds))}-"
                     f"attention, {heads} heads)")
    return ", ".join(parts)


def unet(unet, size=None) -> Figure:
    """The UNet's architecture: down blocks, mid block, up blocks and the skip connections.

    Each box names the block (its place in ``unet.down_blocks``/``mid_block``/``up_blocks``
    and its class), what it is made of, its output channels and the latents' size it works at.
    ``size`` is the latents' size (default: ``unet.config.sample_size``).

    >>> import sdlearn
    >>> "ResNet ×1, Transformer ×1" in labels(unet(sdlearn.load_pipeline().unet))
    True
    """
    downs, ups, n = list(unet.down_blocks), list(unet.up_blocks), len(unet.down_blocks)
    sizes = level_sizes(unet, size)
    cfg = unet.config
    width, row = 14.0, 1.15
    millions = sum(p.numel() for p in unet.parameters()) / 1e6
    fig, ax = _canvas(13, 1.6 + row * (n + 2), (0, width), (-(n + 1.0) * row, 1.5 * row),
                      f"{type(unet).__name__}: {millions:.1f} M parameters, from the model's "
                      "own modules")
    bw, bh, shift = 4.4, 0.85, 0.45

    def text(kind_of, index, block, hw):
        ch = block.resnets[-1].out_channels
        return (f"{kind_of}[{index}] · {type(block).__name__}\n{_kind(block)}\n"
                f"{ch} ch · {hw[0]}×{hw[1]}")

    h0, w0 = sizes[0]
    in_xy, out_xy = (2.6, row), (width - 2.6, row)
    _box(ax, *in_xy, 2.6, 0.6, f"conv_in: {cfg.in_channels} → {unet.conv_in.out_channels} ch\n"
         f"latents {cfg.in_channels}×{h0}×{w0}", BOX["data"], size=8)
    _box(ax, *out_xy, 2.8, 0.6, f"conv_out: {unet.conv_out.in_channels} → "
         f"{cfg.out_channels} ch\nnoise guess {cfg.out_channels}×{h0}×{w0}", BOX["data"], size=8)
    down_xy = [(2.6 + i * shift, -i * row) for i in range(n)]
    up_xy = [(width - 2.6 - (n - 1 - j) * shift, -(n - 1 - j) * row) for j in range(len(ups))]
    _arrow(ax, (in_xy[0], in_xy[1] - 0.3), (down_xy[0][0], down_xy[0][1] + bh / 2))
    _arrow(ax, (up_xy[-1][0], up_xy[-1][1] + bh / 2), (out_xy[0], out_xy[1] - 0.3))
    for i, (block, xy) in enumerate(zip(downs, down_xy, strict=True)):
        color = BOX["attention"] if getattr(block, "attentions", None) else BOX["resnet"]
        _box(ax, *xy, bw, bh, text("down_blocks", i, block, sizes[i]), color, size=8)
        if i + 1 < n:
            halve = " halved" if getattr(block, "downsamplers", None) else ""
            _arrow(ax, (xy[0], xy[1] - bh / 2), (down_xy[i + 1][0], down_xy[i + 1][1] + bh / 2),
                   halve, offset=(-0.45, -0.1), size=7)
    for j, (block, xy) in enumerate(zip(ups, up_xy, strict=True)):
        level = n - 1 - j
        color = BOX["attention"] if getattr(block, "attentions", None) else BOX["resnet"]
        _box(ax, *xy, bw, bh, text("up_blocks", j, block, sizes[level]), color, size=8)
        if j + 1 < len(ups):
            double = " doubled" if getattr(block, "upsamplers", None) else ""
            _arrow(ax, (xy[0], xy[1] + bh / 2), (up_xy[j + 1][0], up_xy[j + 1][1] - bh / 2),
                   double, offset=(0.5, -0.1), size=7)
        skips = len(block.resnets)  # each ResNet of an up block takes one skip
        _arrow(ax, (down_xy[level][0] + bw / 2, xy[1]), (xy[0] - bw / 2, xy[1]),
               f"{skips} skip connection{'s' * (skips > 1)} (concatenated)", dashed=True,
               color="#2060a0", offset=(0, 0.02), size=7)
    mid = unet.mid_block
    mid_xy = (width / 2, -n * row)
    if mid is not None:
        _box(ax, *mid_xy, bw, bh, f"mid_block · {type(mid).__name__}\n{_kind(mid)}\n"
             f"{mid.resnets[-1].out_channels} ch · {sizes[-1][0]}×{sizes[-1][1]}", BOX["mid"],
             size=8)
        _arrow(ax, (down_xy[-1][0], down_xy[-1][1] - bh / 2), (mid_xy[0] - bw / 2, mid_xy[1]))
        _arrow(ax, (mid_xy[0] + bw / 2, mid_xy[1]), (up_xy[0][0], up_xy[0][1] - bh / 2))
    ax.text(width / 2, -(n + 0.65) * row, f"every ResNet adds the timestep embedding "
            f"({unet.time_embedding.linear_2.out_features} numbers); every cross-attention "
            f"reads the text states (…×{cfg.cross_attention_dim})", ha="center", va="top",
            fontsize=8, color="#444444")
    return fig
