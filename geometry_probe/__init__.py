"""geometry-probe: measure and show the geometry of learned embeddings.

>>> import geometry_probe as gp
>>> res = gp.analyze(gp.datasets.make_isotropic(200, 8), "spectrum")
>>> sorted(res)
['spectrum']

The public names are imported on first use (PEP 562), so ``import geometry_probe`` costs
milliseconds and loads neither torch nor NumPy: the command line installs its signal handlers
before the heavy imports start, and ``geoprobe --help`` does not wait for torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "geometry_probe.analysis": ("analyze",),
    "geometry_probe.analyzers": ("ANALYZERS", "Analyzer", "PairwiseAnalyzer", "get_analyzer"),
    "geometry_probe.diagnosis": ("diagnose", "has_failed_collapse"),
    "geometry_probe.embeddings": ("Embeddings",),
    "geometry_probe.monitor": ("CollapseError", "CollapseMonitor", "CollapseWarning"),
    "geometry_probe.trajectory": ("track",),
    "geometry_probe.extraction": ("extract",),
    "geometry_probe.layer_sweep": ("layer_sweep",),
    "geometry_probe.compare": ("compare", "cka_matrix", "CkaMatrix"),
    "geometry_probe.exceptions": ("AmbiguousKeyError", "CorruptFileError", "EmptyAnalyzerError", "GeometryProbeError",
                                  "InputFileError", "InputTooLargeError", "InvalidEmbeddingsError",
                                  "InvalidInputError", "InvalidLabelsError", "MissingDependencyError",
                                  "MissingLabelsError", "OutputError", "UnknownAnalyzerError", "UnsafeFileError"),
    "geometry_probe._atomic": ("check_output_path",),
    "geometry_probe.io": ("load",),
    "geometry_probe.projection": ("Projection", "project"),
    "geometry_probe.result": ("Result", "Results"),
    "geometry_probe.stats": ("ClassMoments", "ClassScatter", "Moments"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(["__version__", "datasets", "io", *_MODULE_OF], key=str.lower)


def __getattr__(name: str) -> Any:
    """Import a public name, or a submodule (``gp.datasets``, ``gp.diagnosis``), on first use."""
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF, "datasets", "io"})


class _Package(types.ModuleType):
    """The package module: a public function named like its submodule (``layer_sweep``) stays the
    function when the submodule is imported later (the import system sets the submodule on its
    parent, which would otherwise hide the function, as the eager imports once did not)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _MODULE_OF.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
