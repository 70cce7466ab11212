"""Heatmaps of a :class:`~geometry_probe.compare.CkaMatrix` (layer × layer, checkpoint × checkpoint).

The static figure (matplotlib) uses cividis on the fixed range [0, 1], names drawn literally
(:func:`~geometry_probe.reporting.static.label`) and the values written in the cells when the
matrix is small enough to read them; the interactive twin (plotly) shows the same matrix with
the values on hover, its names escaped (:func:`~geometry_probe.reporting.interactive.plain`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from geometry_probe._atomic import atomic_write_bytes, atomic_write_text
from geometry_probe._optional import require
from geometry_probe.exceptions import OutputError
from geometry_probe.reporting.interactive import FONT, plain
from geometry_probe.reporting.static import label, render

HEATMAP_SUFFIXES = (".png", ".pdf", ".svg", ".html")
#: Cells are annotated with their value up to this many rows.
ANNOTATE_MAX = 12
#: The formula line of the ``compare`` section of the HTML report.
COMPARE_ABOUT = ("linear_cka = ‖ÃᵀB̃‖²_F / (‖ÃᵀÃ‖_F ‖B̃ᵀB̃‖_F) (centred columns); cka_debiased: the same with the "
                 "unbiased HSIC; procrustes = 2 − 2‖ÂᵀB̂‖_* (centred, unit Frobenius norm); cca_mean, svcca_mean: mean "
                 "canonical correlation (SVCCA on the top principal directions); knn_overlap: mean Jaccard of the "
                 "k-NN sets; paired: modality_gap = ‖mean(â) − mean(b̂)‖, Recall@k of the true partner.")


def title_of(matrix: Any) -> str:
    """``"linear CKA between layers (N = 1000)"``."""
    return f"linear CKA between {matrix.meta.get('kind', 'representations')} (N = {matrix.meta.get('n_samples', '?')})"


def static_heatmap(matrix: Any) -> Any:
    """A matplotlib Figure of the CKA matrix (cividis, [0, 1]); values annotated up to
    :data:`ANNOTATE_MAX` rows, in dark text on light cells and light text on dark ones.

    Examples
    --------
    >>> import numpy as np
    >>> from geometry_probe.compare import CkaMatrix
    >>> fig = static_heatmap(CkaMatrix(["a", "$b"], np.array([[1.0, 0.5], [0.5, 1.0]]), {"kind": "layers"}))
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['1.00', '0.50', '0.50', '1.00']
    """
    from matplotlib.figure import Figure

    names, values = [label(n) for n in matrix.names], matrix.values
    size = max(3.2, 0.45 * len(names) + 2.2)
    figure = Figure(figsize=(size + 0.8, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="cividis")
    ticks = list(range(len(names)))
    ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    if len(names) <= ANNOTATE_MAX:
        for i in ticks:
            for j in ticks:
                value = float(values[i, j])
                text = "nan" if math.isnan(value) else f"{value:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if not math.isnan(value) and value > 0.6 else "white")
    figure.colorbar(image, ax=ax, label="linear CKA", shrink=0.8)
    ax.set_title(title_of(matrix), fontsize=9)
    return figure


def interactive_heatmap(matrix: Any) -> Any:
    """The plotly twin of :func:`static_heatmap` (values on hover, in the cells when small)."""
    go = require("plotly.graph_objects", extra="report", package="plotly")
    names = [plain(n) for n in matrix.names]
    values = [[None if math.isnan(float(v)) else float(v) for v in row] for row in matrix.values]
    small = len(names) <= ANNOTATE_MAX
    trace = go.Heatmap(z=values, x=names, y=names, zmin=0.0, zmax=1.0, colorscale="Cividis",
                       colorbar={"title": {"text": "linear CKA"}}, hovertemplate="%{y} · %{x}: %{z:.4f}<extra></extra>",
                       texttemplate="%{z:.2f}" if small else None)
    figure = go.Figure(trace)
    figure.update_layout(title={"text": plain(title_of(matrix))}, font=FONT, template="simple_white",
                         yaxis={"autorange": "reversed", "type": "category"}, xaxis={"type": "category"})
    return figure


def save_heatmap(matrix: Any, path: str | os.PathLike[str]) -> Path:
    """Write the heatmap atomically: ``.png``/``.pdf``/``.svg`` static (TrueType text in PDF), ``.html``
    interactive (plotly.js inlined: works offline)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in HEATMAP_SUFFIXES:
        raise OutputError(f"{path}: unknown heatmap type {suffix!r}; use one of {list(HEATMAP_SUFFIXES)}.")
    if suffix == ".html":
        plotly_io = require("plotly.io", extra="report", package="plotly")
        return atomic_write_text(path, plotly_io.to_html(interactive_heatmap(matrix), include_plotlyjs=True,
                                                         full_html=True))
    return atomic_write_bytes(path, render(static_heatmap(matrix), suffix[1:], dpi=130))
