"""Controls for the notebooks: the parameter playground.

Everything is kept in Python, so the widgets can be driven and tested without a browser:
set the controls' values, call ``.generate()`` (what the button does), read ``.image``.

>>> import sdlearn
>>> from sdlearn.widgets import Playground
>>> play = Playground(sdlearn.load_pipeline())
>>> play.prompt.value = "a small yellow triangle at the bottom right"
>>> play.steps.value = 5
>>> play.generate().size
(64, 64)
"""

from __future__ import annotations

import io

import ipywidgets as w

from .device import make_generator
from .images import upscale
from .models import SCHEDULERS, make_scheduler, quiet_loading


class Playground:
    """Prompt, negative prompt, guidance, steps, seed, scheduler, a Generate button, progress.

    ``display(play)`` (or leaving ``play`` last in a cell) shows it. After a click, ``image``
    holds the picture (PIL) and ``settings`` the exact arguments it was made with.
    """

    def __init__(self, pipe, prompt: str = "a big red circle in the center on a blue "
                 "background", *, display_size: int = 256):
        self.pipe = pipe
        self.display_size = display_size
        self.base_config = pipe.scheduler.config
        self.prompt = w.Textarea(value=prompt, description="prompt",
                                 layout=w.Layout(width="95%"))
        self.negative = w.Text(value="", description="negative", layout=w.Layout(width="95%"))
        self.guidance = w.FloatSlider(value=7.5, min=0.0, max=15.0, step=0.5,
                                      description="guidance")
        self.steps = w.IntSlider(value=25, min=1, max=100, description="steps")
        self.seed = w.IntText(value=0, description="seed")
        own = {cls: name for name, cls in SCHEDULERS.items()}.get(type(pipe.scheduler).__name__)
        self.scheduler = w.Dropdown(options=list(SCHEDULERS), value=own or "pndm",
                                    description="scheduler")
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
        if type(self.pipe.scheduler).__name__ == SCHEDULERS[name]:
            return self.pipe
        with quiet_loading():
            return type(self.pipe).from_pipe(
                self.pipe, scheduler=make_scheduler(name, self.base_config))

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
