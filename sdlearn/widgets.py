"""Controls for the notebooks: the parameter playground and the mask editor.

Everything is kept in Python, so the widgets can be driven and tested without a browser:
set the controls' values, call ``.generate()`` (what the button does), read ``.image``.

>>> import sdlearn
>>> from sdlearn.widgets import Playground
>>> play = Playground(sdlearn.load_pipeline())
>>> play.prompt.value = "a small yellow triangle at the bottom right"
>>> play.steps.value = 5
>>> play.generate().size
(64, 64)
>>> from sdlearn.widgets import MaskEditor
>>> editor = MaskEditor(play.image)
>>> editor.x0.value, editor.x1.value = 0, 32
>>> editor.mask.getbbox()   # the left half (y spans the whole picture by default)
(0, 0, 32, 64)
"""

from __future__ import annotations

import io
import math
import sys
import warnings
from pathlib import Path

import ipywidgets as w
import numpy as np
from PIL import Image

from . import masks
from .device import make_generator
from .images import to_pil, upscale
from .models import with_scheduler
from .schedulers import SCHEDULERS


class Playground:
    """Prompt, negative prompt, guidance, steps, seed, scheduler, a Generate button, progress.

    ``display(play)`` (or leaving ``play`` last in a cell) shows it. After a click, ``image``
    holds the picture (PIL) and ``settings`` the exact arguments it was made with.
    """

    def __init__(self, pipe, prompt: str = "a big red circle in the center on a blue "
                 "background", *, display_size: int = 256):
        if not (hasattr(pipe, "scheduler") and callable(pipe)):
            raise TypeError(f"Playground(pipe) needs a pipeline, got {type(pipe).__name__} "
                            f"{pipe!r:.60}: load one with pipe = sdlearn.load_pipeline()")
        self.pipe = pipe
        self.display_size = display_size
        self.prompt = w.Textarea(value=prompt, description="prompt",
                                 layout=w.Layout(width="95%"))
        self.negative = w.Text(value="", description="negative", layout=w.Layout(width="95%"))
        self.guidance = w.FloatSlider(value=7.5, min=0.0, max=15.0, step=0.5,
                                      description="guidance")
        self.steps = w.IntSlider(value=25, min=1, max=100, description="steps")
        self.seed = w.IntText(value=0, description="seed")
        # The pipe's own scheduler by its short name; one sdlearn has no name for is listed
        # as it is (and used as it is), never shown as another.
        cls = type(pipe.scheduler).__name__
        own = {c: name for name, c in SCHEDULERS.items()}.get(cls) or f"{cls} (the pipe's own)"
        options = list(SCHEDULERS) + ([own] if own not in SCHEDULERS else [])
        self.scheduler = w.Dropdown(options=options, value=own, description="scheduler")
        self.button = w.Button(description="Generate", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="steps done")
        self.view = w.Image(format="png", width=display_size, height=display_size)
        self.message = w.HTML()
        self.image = None
        self.settings: dict | None = None
        self.button.on_click(lambda _: self.generate())
        controls = w.VBox([self.prompt, self.negative, self.guidance, self.steps, self.seed,
                           self.scheduler, w.HBox([self.button, self.progress]), self.message])
        self.widget = w.HBox([controls, self.view])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def pipeline(self):
        """The pipeline with the chosen scheduler (sharing every other component)."""
        name = self.scheduler.value
        if name not in SCHEDULERS or type(self.pipe.scheduler).__name__ == SCHEDULERS[name]:
            return self.pipe
        return with_scheduler(self.pipe, name)

    def _checked_settings(self):
        """Refuse what the sliders cannot give but code can (NaN guidance, a seed too big)."""
        guidance, seed = self.settings["guidance_scale"], self.settings["seed"]
        if not math.isfinite(guidance):
            raise ValueError(f"guidance={guidance}: use a number such as 7.5 (0 turns the "
                             "guidance off)")
        if not -2 ** 63 <= seed < 2 ** 64:
            raise ValueError(f"seed={seed} is out of range: a seed is a whole number from 0 to "
                             f"2**64 - 1 ({2 ** 64 - 1})")

    def generate(self):
        """Make an image with the controls' values; what the Generate button does."""
        self.settings = {
            "prompt": self.prompt.value, "negative_prompt": self.negative.value or None,
            "guidance_scale": float(self.guidance.value),
            "num_inference_steps": int(self.steps.value), "seed": int(self.seed.value),
            "scheduler": self.scheduler.value,
        }
        self.progress.max, self.progress.value = self.settings["num_inference_steps"], 0
        self.button.disabled = True
        self.message.value = "generating…"

        def on_step(pipe, step, timestep, kwargs):
            self.progress.value = step + 1
            return kwargs

        try:
            self._checked_settings()
            pipe = self.pipeline()
            args = {k: v for k, v in self.settings.items() if k not in ("seed", "scheduler")}
            self.image = pipe(**args, generator=make_generator(self.settings["seed"]),
                              callback_on_step_end=on_step).images[0]
        except Exception as error:  # show it: a button's errors are otherwise out of sight
            self.message.value = f"<b>error</b>: {type(error).__name__}: {error}"
            raise
        finally:
            self.button.disabled = False
        buffer = io.BytesIO()
        upscale(self.image, size=self.display_size).save(buffer, format="PNG")
        self.view.value = buffer.getvalue()
        self.message.value = (f"seed {self.settings['seed']}, {self.settings['scheduler']}, "
                              f"{self.settings['num_inference_steps']} steps")
        return self.image


def _picture(image) -> Image.Image:
    """What MaskEditor edits, as an RGB PIL image: a picture, an array, a tensor, or a path."""
    if image is None:
        raise TypeError("MaskEditor(image) needs a picture (a PIL image, an array, an image "
                        "tensor, or the path of a picture file), got None")
    if isinstance(image, str | Path):
        if not Path(image).is_file():
            raise FileNotFoundError(f"MaskEditor({str(image)!r}): there is no picture file "
                                    "there")
        with Image.open(image) as opened:
            image = opened.copy()
    if not isinstance(image, Image.Image | np.ndarray) and not hasattr(image, "shape"):
        raise TypeError(f"MaskEditor(image) needs a picture (a PIL image, an array, an image "
                        f"tensor, or a path), got {type(image).__name__}")
    shape = tuple(image.shape) if hasattr(image, "shape") else (image.height, image.width)
    if 0 in shape:
        raise ValueError(f"MaskEditor got an empty picture (shape {shape}): pass one with at "
                         "least one pixel")
    picture = to_pil(image)
    if isinstance(picture, list):
        raise ValueError(f"MaskEditor edits one picture; this is a batch of {len(picture)}: "
                         "pass one of them (images[0])")
    picture = picture.convert("RGB")
    if picture.width * picture.height > MaskEditor.LARGE:
        warnings.warn(f"the picture is {picture.width}x{picture.height}: the preview is made "
                      "from a smaller copy, but the mask is kept at full size, so moving a "
                      "slider can take a moment; resize the picture first if that lags",
                      stacklevel=3)
    return picture


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class MaskEditor:
    """Make an inpainting mask over a picture: a rectangle or ellipse from sliders, an invert
    toggle, and a brush where the notebook can show the drawing canvas (``ipycanvas``).

    The mask lives in Python: ``editor.mask`` is a binary PIL "L" image at the picture's size
    (white = repaint). Setting the sliders' values, or calling :meth:`paint`, changes it the
    same way the controls do, so it all works, and is tested, without a browser.

    The sliders and the preview are core ipywidgets and work everywhere. The brush canvas is a
    custom widget; until its front end reports that it loaded, the status line says so, and
    where it cannot load (or ``brush=False``) the sliders are the way to make the mask.
    """

    SHAPES = ("rectangle", "ellipse", "none")
    # Pictures with more pixels are previewed from a copy at the preview's size, so that the
    # sliders follow the mouse; the mask itself stays at the picture's size.
    LARGE = 1024 * 1024

    def __init__(self, image, mask=None, *, shape: str = "rectangle",
                 brush: bool | str = "auto", display_size: int = 256,
                 brush_radius: int | None = None):
        self.image = _picture(image)
        width, height = self.image.size
        if shape not in self.SHAPES:
            raise ValueError(f"shape={shape!r}: use one of {', '.join(self.SHAPES)}")
        self.scale = display_size / max(width, height)
        self.display = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        # What the preview is made from: the picture, or a copy at the preview's size.
        self._preview = self.image if width * height <= self.LARGE else \
            self.image.resize(self.display, Image.BILINEAR)
        box = dict(continuous_update=True, layout=w.Layout(width="95%"))
        self.x0 = w.IntSlider(value=width // 4, min=0, max=width, description="x0", **box)
        self.x1 = w.IntSlider(value=3 * width // 4, min=0, max=width, description="x1", **box)
        self.y0 = w.IntSlider(value=0, min=0, max=height, description="y0", **box)
        self.y1 = w.IntSlider(value=height, min=0, max=height, description="y1", **box)
        self.shape = w.ToggleButtons(options=self.SHAPES, value=shape, description="shape")
        self.invert = w.Checkbox(value=False, description="invert the shape (keep its inside)")
        radius = brush_radius or max(1, round(max(width, height) / 32))
        self.brush_radius = w.IntSlider(value=radius, min=1, max=max(2, max(width, height) // 4),
                                        description="brush")
        self.brush_mode = w.ToggleButtons(options=["paint", "erase"], value="paint",
                                          description="brush does")
        self.clear = w.Button(description="Clear strokes", icon="eraser")
        self.view = w.Image(format="png", width=self.display[0], height=self.display[1])
        self.status = w.HTML()
        # Brush strokes: +1 painted (repaint), -1 erased (keep), 0 left to the shape.
        self.strokes = np.zeros((height, width), dtype=np.int8)
        self._last: tuple[float, float] | None = None
        self.canvas = self._make_canvas(brush)
        for control in (self.x0, self.x1, self.y0, self.y1, self.shape, self.invert):
            control.observe(lambda _: self.redraw(), names="value")
        self.clear.on_click(lambda _: self.clear_strokes())
        controls = [self.shape, self.x0, self.x1, self.y0, self.y1, self.invert]
        if self.canvas is not None:
            controls += [self.brush_mode, self.brush_radius, self.clear]
        self.widget = w.HBox([w.VBox(controls + [self.status], layout=w.Layout(width="50%")),
                              w.VBox([self.view] + ([self.canvas] if self.canvas else []))])
        if mask is not None:
            self.set_mask(mask)
        self.redraw()

    def set_mask(self, mask):
        """Start from an existing mask (same size as the picture): it becomes brush strokes."""
        if mask is None:
            raise TypeError("set_mask(None): pass a mask at the picture's size (a PIL image, "
                            "or an array of 0/1 or 0/255); to start over, call "
                            "editor.clear_strokes()")
        mask = np.asarray(masks.check_mask(mask, self.image)) > 0
        with self.shape.hold_trait_notifications():
            self.shape.value = "none"
        self.invert.value = False
        self.strokes[:] = np.where(mask, 1, 0)
        self.redraw()

    # -- the brush canvas, where it can be shown
    def _make_canvas(self, brush):
        if brush not in (True, False, "auto"):
            raise ValueError(f"brush={brush!r}: use True, False or 'auto'")
        reason = None
        if brush is False:
            reason = "off (brush=False)"
        else:
            try:
                import ipycanvas
            except ImportError:
                reason = "needs the ipycanvas package (pip install ipycanvas)"
        if reason:
            self.status.value = f"Brush {reason}: the sliders make the mask."
            return None
        canvas = ipycanvas.Canvas(width=self.display[0], height=self.display[1],
                                  layout=w.Layout(width=f"{self.display[0]}px",
                                                  height=f"{self.display[1]}px"))
        canvas.on_mouse_down(self.on_mouse_down)
        canvas.on_mouse_move(self.on_mouse_move)
        canvas.on_mouse_up(self.on_mouse_up)
        canvas.on_mouse_out(self.on_mouse_up)
        canvas.on_client_ready(self._canvas_ready)
        colab = " (in Colab, run the first cell: it turns on custom widgets)" \
            if "google.colab" in sys.modules else ""
        self.status.value = ("Waiting for the drawing canvas to load. If this message stays, "
                             f"this notebook cannot show custom widgets{colab}: the sliders "
                             "still make the mask.")
        self.canvas_ready = False
        return canvas

    def _canvas_ready(self):
        self.canvas_ready = True
        self.view.layout.display = "none"  # the canvas shows the same picture, and takes strokes
        self.status.value = "Draw on the picture to paint (or erase) the mask."
        self.redraw()

    def _to_image(self, x: float, y: float) -> tuple[float, float]:
        return x / self.scale, y / self.scale

    def on_mouse_down(self, x: float, y: float):
        """A brush event in canvas pixels (what the canvas sends): starts a stroke."""
        self._last = self._to_image(x, y)
        self.paint([self._last])

    def on_mouse_move(self, x: float, y: float):
        """Continues the stroke while the button is down; ignored otherwise."""
        if self._last is None:
            return
        point = self._to_image(x, y)
        self.paint([self._last, point])
        self._last = point

    def on_mouse_up(self, x: float = 0, y: float = 0):
        """Ends the stroke."""
        self._last = None

    def paint(self, points, *, radius: float | None = None, erase: bool | None = None):
        """Draw a stroke through ``points`` (image pixels): discs along each segment.

        ``erase`` defaults to the brush mode; ``radius`` to the brush slider. Only the pixels
        within ``radius`` of a segment's box are looked at, so a stroke on a huge picture costs
        what the stroke covers, not the whole picture (case 6.12 of the bad-inputs review).
        """
        radius = float(radius if radius is not None else self.brush_radius.value)
        erase = self.brush_mode.value == "erase" if erase is None else erase
        h, w_ = self.strokes.shape
        points = [tuple(map(float, p)) for p in points]
        for (ax, ay), (bx, by) in zip(points, points[1:] or points, strict=False):
            # the segment's box, grown by the radius: no pixel centre outside it is within reach
            x_lo, x_hi = (max(0, math.floor(min(ax, bx) - radius)),
                          min(w_, math.ceil(max(ax, bx) + radius) + 1))
            y_lo, y_hi = (max(0, math.floor(min(ay, by) - radius)),
                          min(h, math.ceil(max(ay, by) + radius) + 1))
            if x_lo >= x_hi or y_lo >= y_hi:
                continue  # the segment lies off the picture
            ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi].astype(np.float64) + 0.5
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = 0.0 if length2 == 0 else np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2,
                                                 0, 1)
            hit = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2 <= radius ** 2
            self.strokes[y_lo:y_hi, x_lo:x_hi][hit] = -1 if erase else 1
        self.redraw()

    def clear_strokes(self):
        """Forget every brush stroke."""
        self.strokes[:] = 0
        self.redraw()

    # -- the mask
    @property
    def mask(self) -> Image.Image:
        """The mask: binary "L", the picture's size, white (255) = repaint."""
        return Image.fromarray(np.where(self._painted(), 255, 0).astype(np.uint8), mode="L")

    def _shape_mask(self) -> np.ndarray:
        """The sliders' shape as booleans at the picture's size (True = repaint); kept until a
        slider changes, so that brush strokes on a huge picture do not make it again."""
        width, height = self.image.size
        lo_x, hi_x = sorted((self.x0.value, self.x1.value))
        lo_y, hi_y = sorted((self.y0.value, self.y1.value))
        key = (self.shape.value, self.invert.value, lo_x, hi_x, lo_y, hi_y)
        if getattr(self, "_shape_key", None) != key:
            if self.shape.value == "none":
                base = np.zeros((height, width), dtype=bool)
            else:
                make = masks.rectangle if self.shape.value == "rectangle" else masks.ellipse
                base = np.asarray(make(self.image, lo_x, hi_x, lo_y, hi_y)) > 0
            if self.invert.value:  # the shape's inside is kept; brush strokes still mean what
                base = ~base       # they say (paint = repaint, erase = keep)
            self._shape_key, self._shape = key, base
        return self._shape

    def _painted(self, rows=slice(None), cols=slice(None)) -> np.ndarray:
        """The mask as booleans, at the picture's pixels ``rows`` × ``cols`` (all by default)."""
        base = self._shape_mask()[rows][:, cols]
        strokes = self.strokes[rows][:, cols]
        return (base | (strokes > 0)) & ~(strokes < 0)

    def redraw(self):
        """Refresh the preview (and the canvas) from the controls."""
        if self._preview is self.image:
            mask = self.mask
        else:  # the mask at the preview's pixels only: the nearest picture pixel of each
            (w_, h), (pw, ph) = self.image.size, self._preview.size
            cols = np.minimum(((np.arange(pw) + 0.5) * w_ / pw).astype(int), w_ - 1)
            rows = np.minimum(((np.arange(ph) + 0.5) * h / ph).astype(int), h - 1)
            mask = Image.fromarray(np.where(self._painted(rows, cols), 255, 0).astype(np.uint8),
                                   mode="L")
        shown = masks.overlay(self._preview, mask).resize(self.display, Image.NEAREST)
        self.view.value = _png(shown)
        if self.canvas is not None and getattr(self, "canvas_ready", False):
            self.canvas.put_image_data(np.asarray(shown), 0, 0)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
