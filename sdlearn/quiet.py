"""Quiet loading: diffusers' and transformers' progress bars and info banners, switched off.

>>> with quiet_loading():
...     pass
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def quiet_loading():
    """Silence loading chatter (progress bars, info banners) of diffusers and transformers.

    Warnings that matter while *running* a pipeline, such as a truncated prompt, stay on.
    """
    from diffusers.utils import logging as d_log
    from transformers.utils import logging as t_log

    saved = [(log, log.get_verbosity(), log.is_progress_bar_enabled()) for log in (d_log, t_log)]
    for log, _, _ in saved:
        log.set_verbosity_error()
        log.disable_progress_bar()
    try:
        yield
    finally:
        for log, level, bars in saved:
            log.set_verbosity(level)
            if bars:
                log.enable_progress_bar()
