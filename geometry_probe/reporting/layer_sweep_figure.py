"""Static figure of a layer sweep: each metric against depth, one small multiple per metric, in the
print style of :mod:`.figure_style`; layer names drawn literally
(:func:`~geometry_probe.reporting.figure_style.label`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from geometry_probe._atomic import atomic_write_bytes
from geometry_probe.exceptions import OutputError
from geometry_probe.reporting import figure_style as style
from geometry_probe.reporting.figure_style import DEFAULT_DPI, TICK_CHARACTERS, label, render, styled

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
_RANKS = ("spectrum/effective_rank", "spectrum/rankme")
_TITLES = {"spectrum/effective_rank": "effective rank", "spectrum/rankme": "RankMe",
           "contrastive/mean_cosine": "mean cosine (anisotropy)", "contrastive/uniformity": "uniformity",
           "neural_collapse/nc1": "NC1 (lower = more collapsed)", "neural_collapse/ncc_accuracy": "NCC accuracy"}


@styled
def plot_layer_sweep(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], *, size: str = "column") -> Any:
    """A matplotlib Figure with one panel per metric key, layers on the x axis in row order; the
    rank panels also show the ceiling min(N, D).

    Parameters
    ----------
    rows : sequence of mapping
        Rows of :class:`geometry_probe.layer_sweep.LayerSweep` (``layer`` plus metric keys).
    keys : sequence of str
        Metric keys to draw, e.g. ``["spectrum/effective_rank", "spectrum/rankme"]``.
    size : {"column", "full"}, default="column"
        3.25 or 6.75 in wide; panels stacked, or two (column) or three (full) abreast.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_layer_sweep([{"layer": "a", "m": 1.0}, {"layer": "b", "m": 2.0}], ["m"])
    >>> [line.get_ydata().tolist() for line in fig.axes[0].get_lines()]
    [[1.0, 2.0]]
    """
    keys = list(keys) or ["n_features"]
    grid_rows, columns = style.grid(len(keys), size)
    ceiling = any(key in _RANKS for key in keys) and all("n_features" in row and "n_samples" in row for row in rows)
    longest = max((len(str(row["layer"])) for row in rows), default=1)
    tick_room = min(1.1, 0.06 * min(longest, TICK_CHARACTERS) + 0.2)
    figure = style.new_figure(size, style.panel_height(size) * grid_rows + tick_room + 0.3
                              + style.legend_height(["min(N, D)"] if ceiling else [], style.width_of(size)))
    axes = figure.subplots(grid_rows, columns, sharex=True, squeeze=False).ravel()
    for ax in axes[len(keys):]:
        ax.remove()
    positions = list(range(len(rows)))
    step = style.tick_step(len(rows), style.width_of(size) / columns * 0.8 * 1.4)
    for index, (ax, key) in enumerate(zip(axes, keys)):
        values = [float(row.get(key, float("nan"))) for row in rows]
        ax.plot(positions, values, marker="o", color=style.OKABE_ITO[0])
        if key in _RANKS and ceiling:
            ax.plot(positions, [min(row["n_features"], row["n_samples"]) for row in rows], ls="--",
                    color="#808080", lw=1, label="min(N, D)")
        ax.set_ylabel(_TITLES.get(key) or label(key))
        ax.grid(alpha=0.3)
        if index + columns >= len(keys):
            ticks = positions[::step]
            ax.set_xticks(ticks, [label(rows[i]["layer"], TICK_CHARACTERS) for i in ticks], rotation=45, ha="right",
                          rotation_mode="anchor")
            ax.set_xlabel("layer (in depth order)")
            ax.xaxis.set_tick_params(labelbottom=True)
    handles = [h for ax in axes[:len(keys)] for h in ax.get_legend_handles_labels()[0]][:1]
    if handles:
        style.legend_below(figure, handles, ["min(N, D)"])
    return figure


def save_figure(figure: Any, path: str | os.PathLike[str], *, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``figure`` atomically as PNG (``dpi``, 300 by default), PDF or SVG (chosen by the
    suffix), its text literal."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise OutputError(f"{path}: unknown figure type {suffix!r}; use one of {list(FIGURE_SUFFIXES)}.")
    return atomic_write_bytes(path, render(figure, suffix[1:], dpi=dpi))
