"""
Where the gallery examples write their figures and numbers
===========================================================

Each ``plot_*`` example, run as a script, saves its figures (PDF and PNG) and a small JSON of
its key numbers into the folder named by the environment variable ``GEOPROBE_GALLERY_OUT``
(default ``./gallery_output``). ``GEOPROBE_GALLERY_FAST=1`` asks the examples for a shorter
run (fewer epochs or points), as the tests do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

OUT_ENV = "GEOPROBE_GALLERY_OUT"
FAST_ENV = "GEOPROBE_GALLERY_FAST"
DEFAULT_OUT = "gallery_output"


def fast() -> bool:
    """True when ``GEOPROBE_GALLERY_FAST`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes"}


def output_folder() -> Path:
    """The folder for figures and numbers (created if missing)."""
    folder = Path(os.environ.get(OUT_ENV) or DEFAULT_OUT)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig: Any, name: str) -> list[Path]:
    """Save ``fig`` as ``<name>.pdf`` and ``<name>.png`` in :func:`output_folder`.

    A figure built without pyplot (the library's :mod:`geometry_probe.reporting.static`
    functions) is handed to pyplot as well, so that sphinx-gallery shows it.

    Returns
    -------
    list of Path
        The two files written.
    """
    import matplotlib.pyplot as plt

    if fig.canvas.manager is None:
        try:
            plt.figure(fig)
        except (TypeError, ValueError):        # matplotlib < 3.10 cannot adopt a figure
            pass
    paths = [output_folder() / f"{name}.{fmt}" for fmt in ("pdf", "png")]
    for path in paths:
        fig.savefig(path, dpi=200)
    return paths


def save_numbers(numbers: dict[str, Any], name: str) -> Path:
    """Write ``numbers`` (floats, lists, dicts; NumPy scalars and arrays allowed) as ``<name>.json``."""
    path = output_folder() / f"{name}.json"
    path.write_text(json.dumps(numbers, indent=1, default=_plain) + "\n")
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
