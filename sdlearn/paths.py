"""Where sdlearn's shipped files live, whether installed from a wheel or run from a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir() -> Path:
    """The folder of shipped data: ``sdlearn/data`` when installed, ``data/`` in a checkout."""
    for candidate in (_PACKAGE / "data", _PACKAGE.parent / "data"):
        if (candidate / "clip").is_dir():
            return candidate
    raise FileNotFoundError(
        f"sdlearn's data folder is missing (looked in {_PACKAGE / 'data'} and "
        f"{_PACKAGE.parent / 'data'}). Reinstall sdlearn with `pip install .` from the repository."
    )


def data_path(*parts: str) -> Path:
    """A path inside the shipped data folder, e.g. ``data_path("clip", "LICENSE")``."""
    return data_dir().joinpath(*parts)
