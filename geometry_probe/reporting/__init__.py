"""Figures and reports: ``gp.reporting.plot_spectra(...)`` and the other figure functions,
imported on first use (matplotlib loads only then).

Single-run figures are in :mod:`.static` (and their plotly twins in :mod:`.interactive`);
figures over several runs, checkpoints or layers in :mod:`.paper_figures`; the shared print
style (size presets, fonts, palette) in :mod:`.figure_style`; reading saved JSON as named runs
in :mod:`.figure_inputs`; the HTML report in :mod:`.html_report`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "geometry_probe.reporting.static": (
        "plot_class_cosine", "plot_cosine_histogram", "plot_k_occurrence", "plot_projection", "plot_sample_cosine",
        "plot_scalar_summary", "plot_simo", "plot_spectrum", "plot_trajectory", "write_figures",
        "write_trajectory_figure"),
    "geometry_probe.reporting.paper_figures": (
        "plot_alignment_uniformity", "plot_compare_cosine_histograms", "plot_compare_metrics",
        "plot_compare_trajectories", "plot_layer_curves", "plot_spectra", "write_paper_figures"),
    "geometry_probe.reporting.figure_inputs": ("read_runs",),
    "geometry_probe.reporting.figure_style": ("SIZES", "WIDTHS", "render"),
    "geometry_probe.reporting.html_report": ("write_report",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
