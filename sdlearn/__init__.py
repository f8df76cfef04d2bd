"""sdlearn: learn how Stable Diffusion works from the inside, with a tiny model that runs anywhere.

>>> import sdlearn
>>> pipe = sdlearn.load_pipeline()            # the embedded tiny model, or $SDLEARN_MODEL
>>> image = pipe("a big red circle in the center on a blue background",
...              generator=sdlearn.make_generator(0)).images[0]
"""

import os as _os

# transformers announces optional back ends it does not find (torchvision, ...) at import time;
# learners cannot act on that, so sdlearn keeps transformers to errors unless told otherwise.
_os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from .architectures import build_pipeline  # noqa: E402
from .device import get_device, make_generator, make_generators  # noqa: E402
from .images import (  # noqa: E402
    image_grid,
    show_image,
    show_images,
    to_numpy,
    to_pil,
    to_tensor,
    upscale,
)
from .models import (  # noqa: E402
    ModelNotFoundError,
    embedded_model_path,
    is_shapes_model,
    load_pipeline,
    make_scheduler,
    model_info,
    with_scheduler,
)
from .text import (  # noqa: E402
    PromptTruncatedWarning,
    count_tokens,
    load_tokenizer,
    tokenize,
    tokens_table,
)

__version__ = "0.1.0"

__all__ = [
    "ModelNotFoundError", "PromptTruncatedWarning", "build_pipeline", "count_tokens",
    "embedded_model_path", "get_device", "image_grid", "is_shapes_model", "load_pipeline",
    "load_tokenizer", "make_generator", "make_generators", "make_scheduler", "model_info",
    "show_image", "show_images", "to_numpy", "to_pil", "to_tensor", "tokenize", "tokens_table",
    "upscale", "with_scheduler",
]
