"""Static figure of a layer sweep: each metric against depth, one panel per metric; layer names drawn
literally (:func:`~geometry_probe.reporting.static.label`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geometry_probe._atomic import atomic_write_bytes
from geometry_probe.exceptions import OutputError
from geometry_probe.reporting.static import label, render

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
_RANKS = ("spectrum/effective_rank", "spectrum/rankme")
_TITLES = {"spectrum/effective_rank": "effective rank", "spectrum/rankme": "RankMe",
           "contrastive/mean_cosine": "mean cosine (anisotropy)", "contrastive/uniformity": "uniformity",
           "neural_collapse/nc1": "NC1 (lower = more collapsed)", "neural_collapse/ncc_accuracy": "NCC accuracy"}


def plot_layer_sweep(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Any:
    """A matplotlib Figure with one panel per metric key, layers on the x axis in row order.

    Parameters
    ----------
    rows : sequence of mapping
        Rows of :class:`geometry_probe.layer_sweep.LayerSweep` (``layer`` plus metric keys).
    keys : sequence of str
        Metric keys to draw, e.g. ``["spectrum/effective_rank", "spectrum/rankme"]``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_layer_sweep([{"layer": "a", "m": 1.0}, {"layer": "b", "m": 2.0}], ["m"])
    >>> [line.get_ydata().tolist() for line in fig.axes[0].get_lines()]
    [[1.0, 2.0]]
    """
    from matplotlib.figure import Figure

    keys = list(keys) or ["n_features"]
    figure = Figure(figsize=(max(4.0, 0.6 * len(rows) + 2.0), 1.9 * len(keys) + 0.8), layout="constrained")
    axes = figure.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    positions = list(range(len(rows)))
    for ax, key in zip(axes, keys):
        values = [float(row.get(key, float("nan"))) for row in rows]
        ax.plot(positions, values, marker="o")
        if key in _RANKS and all("n_features" in row and "n_samples" in row for row in rows):
            ceiling = [min(row["n_features"], row["n_samples"]) for row in rows]
            ax.plot(positions, ceiling, ls="--", color="grey", lw=1, label="min(N, D)")
            ax.legend(fontsize=7, loc="best")
        ax.set_ylabel(_TITLES.get(key) or label(key), fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xticks(positions, [label(row["layer"]) for row in rows], rotation=45, ha="right", fontsize=8)
    axes[-1].set_xlabel("layer (in depth order)")
    return figure


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` atomically as PNG, PDF or SVG (chosen by the suffix), its text literal."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise OutputError(f"{path}: unknown figure type {suffix!r}; use one of {list(FIGURE_SUFFIXES)}.")
    return atomic_write_bytes(path, render(figure, suffix[1:], dpi=120))
