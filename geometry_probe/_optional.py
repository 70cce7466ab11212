"""Lazy import of optional dependencies with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from geometry_probe.exceptions import MissingDependencyError


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it.

    Parameters
    ----------
    module : str
        Import name, e.g. ``"umap"``.
    extra : str
        The geometry-probe extra that brings it, e.g. ``"umap"``.
    package : str, optional
        PyPI name when it differs from ``module`` (``"umap-learn"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"this feature needs the optional package {package or module!r}: "
            f"pip install 'geometry-probe[{extra}]' (or pip install {package or module})"
        ) from err
