"""Interactive twins of :mod:`.static` (plotly): the same function names and inputs, one
``plotly.graph_objects.Figure`` out.

Both backends draw the data :mod:`._figure_data` prepares, so a static figure and its
interactive twin always show the same numbers, colours and titles. plotly is imported on the
first call (``pip install plotly``).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from geometry_probe._optional import require
from geometry_probe.reporting import _figure_data as data
from geometry_probe.reporting._figure_data import OKABE_ITO
from geometry_probe.result import Results

_DASH = {"solid": "solid", "dashed": "dash", "dotted": "dot", "step": "solid"}
_DIVERGING = [[0.0, "#2166AC"], [0.5, "#F7F7F7"], [1.0, "#B2182B"]]     # RdBu reversed: −1 blue, +1 red
FONT = {"family": "system-ui, sans-serif", "size": 12}


def plain(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` written as entities, so plotly's pseudo-HTML labels
    (``<b>``, ``<a href>``, ``<br>``) show user strings literally."""
    return html.escape(str(text), quote=False)


def _go() -> Any:
    return require("plotly.graph_objects", extra="report", package="plotly")


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": plain(title)}, "font": FONT, "template": "simple_white", "colorway": list(OKABE_ITO),
            **extra}


def _lines(plot: data.LinePlot) -> Any:
    go = _go()
    fig = go.Figure()
    for line in plot.lines:
        fig.add_trace(go.Scatter(x=line.x, y=line.y, name=plain(line.name), mode="lines",
                                 line={"color": line.colour, "dash": _DASH[line.style],
                                       "shape": "hvh" if line.style == "step" else "linear"}))
    fig.update_layout(**_layout(plot.title))
    fig.update_xaxes(title_text=plot.xlabel)
    fig.update_yaxes(title_text=plot.ylabel, type="log" if plot.log_y else "linear")
    return fig


def _heatmap_trace(heat: data.Heatmap, **extra: Any) -> Any:
    names = [plain(n) for n in heat.names]
    return _go().Heatmap(z=heat.matrix, x=names, y=names, zmin=heat.zmin, zmax=heat.zmax,
                         colorscale=_DIVERGING if heat.diverging else "Cividis", name=plain(heat.title),
                         hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>", **extra)


def plot_spectrum(results: Results) -> Any:
    """Covariance eigenvalues on a log scale against the isotropic baseline of the same N, D, trace."""
    return _lines(data.spectrum(results))


def plot_cosine_histogram(results: Results) -> Any:
    """Pairwise cosine histograms (all, positive, negative pairs) with the random-pair density on S^{D−1}."""
    return _lines(data.cosine_histogram(results))


def plot_k_occurrence(results: Results) -> Any:
    """How often each row is among the others' k nearest neighbours, against the no-hub Binomial null."""
    return _lines(data.k_occurrence(results))


def plot_class_cosine(results: Results, *, centred: bool = False, ordered: bool = True) -> Any:
    """Heatmap of the cosine between class means, similar classes adjacent (``ordered=False``: label order)."""
    heat = data.class_cosine(results, centred=centred, ordered=ordered)
    fig = _go().Figure(_heatmap_trace(heat, colorbar={"title": {"text": heat.colourbar}}))
    fig.update_layout(**_layout(heat.title))
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def plot_simo(results: Results) -> Any:
    """SimO's class-mean matrices side by side: (μ_c·μ_c')² and ‖μ_c − μ_c'‖²."""
    from plotly.subplots import make_subplots

    heats = data.simo_matrices(results)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[plain(heat.title) for heat in heats], horizontal_spacing=0.2,
                        shared_yaxes=True)
    for col, heat in enumerate(heats, start=1):
        colourbar = {"title": {"text": heat.colourbar}, "x": 0.42 if col == 1 else 1.02, "xanchor": "left",
                     "len": 0.9}
        fig.add_trace(_heatmap_trace(heat, colorbar=colourbar), row=1, col=col)
    fig.update_layout(**_layout("SimO class-mean matrices"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def plot_sample_cosine(results: Results) -> Any:
    """Heatmap of the cosine between the rows themselves (small N), sorted by label: classes as blocks."""
    heat = data.sample_cosine(results)
    fig = _go().Figure(_heatmap_trace(heat, colorbar={"title": {"text": heat.colourbar}}))
    fig.update_layout(**_layout(heat.title))
    fig.update_xaxes(type="category", showticklabels=len(heat.names) <= 30)
    fig.update_yaxes(autorange="reversed", type="category", showticklabels=len(heat.names) <= 30)
    return fig


def plot_scalar_summary(results: Results) -> Any:
    """Horizontal bars of each finding's value against its fail threshold and null baseline."""
    go = _go()
    bars = data.verdicts(results)
    names = [plain(bar.name) for bar in bars]
    fig = go.Figure([
        go.Bar(x=[bar.value for bar in bars], y=names, orientation="h", name="value",
               marker={"color": [bar.colour for bar in bars]}, text=[bar.verdict for bar in bars]),
        go.Scatter(x=[bar.baseline for bar in bars], y=names, mode="markers", name="null baseline",
                   marker={"symbol": "line-ns-open", "size": 18, "color": "#000000"}),
        go.Scatter(x=[bar.fail for bar in bars], y=names, mode="markers", name="fail threshold",
                   marker={"symbol": "x-thin-open", "size": 10, "color": OKABE_ITO[3]}),
    ])
    fig.update_layout(**_layout("collapse verdicts", height=120 + 40 * max(len(bars), 1)))
    fig.update_xaxes(title_text="value")
    fig.update_yaxes(type="category")
    return fig


def plot_trajectory(trajectory: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """Metric curves over checkpoints with each collapse onset marked by a vertical dashed line."""
    from plotly.subplots import make_subplots

    go = _go()
    traj = data.trajectory(trajectory, keys)
    fig = make_subplots(rows=len(traj.panels), cols=1, shared_xaxes=True)
    for row, panel in enumerate(traj.panels, start=1):
        fig.add_trace(go.Scatter(x=traj.steps, y=panel.values, mode="lines+markers", name=plain(panel.key),
                                 line={"color": panel.colour}), row=row, col=1)
        fig.update_yaxes(title_text=plain(panel.label), row=row, col=1)
        finite = panel.values[np.isfinite(panel.values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        for name, step in traj.onsets:
            fig.add_trace(go.Scatter(x=[step, step], y=[low, high], mode="lines", name=plain(f"{name} onset"),
                                     legendgroup=name, showlegend=row == 1,
                                     line={"color": OKABE_ITO[3], "dash": "dash", "width": 1}), row=row, col=1)
    fig.update_xaxes(title_text="step", row=len(traj.panels), col=1)
    fig.update_layout(**_layout("metrics over checkpoints", height=160 * len(traj.panels) + 120))
    return fig


def plot_projection(results: Results, *, max_points: int | None = None) -> Any:
    """The stored 2-D map coloured by label, one legend entry per class; above ``max_points`` a
    stratified subsample, the title saying how many points are shown."""
    go = _go()
    grid = data.projection(results, max_points=max_points)
    fig = go.Figure([go.Scatter(x=group.x, y=group.y, mode="markers", name=plain(group.name),
                                marker={"color": group.colour, "size": 4}, hoverinfo="name")
                     for group in grid.groups])
    fig.update_layout(**_layout(grid.title, legend={"itemsizing": "constant"}, height=560))
    fig.update_xaxes(showticklabels=False, title_text="")
    fig.update_yaxes(showticklabels=False, title_text="", scaleanchor="x")
    return fig


FIGURES: dict[str, Callable[..., Any]] = {
    "spectrum": plot_spectrum,
    "cosine_histogram": plot_cosine_histogram,
    "k_occurrence": plot_k_occurrence,
    "class_mean_cosine": plot_class_cosine,
    "simo": plot_simo,
    "sample_cosine": plot_sample_cosine,
    "verdicts": plot_scalar_summary,
    "projection": plot_projection,
}
