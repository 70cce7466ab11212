"""Publication figures from results (matplotlib, no pyplot state): compute once, plot from JSON.

Every function takes a :class:`~geometry_probe.Results` (or what it holds) and returns a
``matplotlib.figure.Figure`` at a print size preset, ``size="column"`` (3.25 in wide, the
default) or ``"full"`` (6.75 in), in the style of :mod:`.figure_style`: text at 7 pt or more at
that size, Okabe–Ito colours, legends below the axes, titles that fit. The data each figure
shows is prepared in :mod:`._figure_data`, shared with the interactive twins in
:mod:`.interactive` (same names, same inputs). :func:`write_figures` saves every figure the
results support as PDF, SVG or PNG (300 dpi by default), atomically, after drawing them all.
Text from the data (class, layer and finding names) is drawn literally: never parsed as
mathtext or LaTeX, control characters shown as escapes, long names cut; our own text may use
mathtext (``uniform on $S^{15}$``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geometry_probe._atomic import atomic_write_bytes, check_output_path
from geometry_probe.exceptions import InvalidInputError, OutputError
from geometry_probe.reporting import _figure_data as data
from geometry_probe.reporting import figure_style as style
from geometry_probe.reporting._figure_data import OKABE_ITO, available_figures, isotropic_spectrum, random_pair_density
from geometry_probe.reporting.figure_style import (DEFAULT_DPI, LABEL_CHARACTERS, SIZES, TICK_CHARACTERS, label,
                                                   literal, render, styled)
from geometry_probe.result import Results

__all__ = ["DEFAULT_DPI", "FIGURES", "FORMATS", "LABEL_CHARACTERS", "OKABE_ITO", "SIZES", "available_figures",
           "check_format", "isotropic_spectrum", "label", "literal", "plot_class_cosine", "plot_cosine_histogram",
           "plot_k_occurrence", "plot_projection", "plot_sample_cosine", "plot_scalar_summary", "plot_simo",
           "plot_spectrum", "plot_trajectory", "random_pair_density", "render", "write_figures",
           "write_figure_files", "write_trajectory_figure"]

FORMATS = ("pdf", "svg", "png")
_LINESTYLE = {"solid": "-", "dashed": "--", "dotted": ":", "step": "-"}
_HEIGHT = {"column": 2.3, "full": 2.6}
_HEATMAP_HEIGHT = {"column": 3.0, "full": 3.4}


@styled
def _draw_lines(plot: data.LinePlot, *, size: str) -> Any:
    names = [line.math or label(line.name) for line in plot.lines]
    fig = style.new_figure(size, _HEIGHT[size] + style.legend_height(names, style.width_of(size)))
    ax = fig.add_subplot()
    for line, name in zip(plot.lines, names):
        if line.style == "step":
            ax.step(line.x, line.y, where="mid", color=line.colour, label=name)
        else:
            ax.plot(line.x, line.y, color=line.colour, ls=_LINESTYLE[line.style], label=name)
    if plot.log_y:
        ax.set_yscale("log")
    style.whole_steps(ax, np.concatenate([np.asarray(line.x, dtype=float) for line in plot.lines]))
    ax.set_title(literal(plot.title))
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    style.legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def _draw_heatmap(ax: Any, heat: data.Heatmap, length: float) -> Any:
    """The heatmap on ``ax``; class names as ticks, every one that fits along ``length`` inches."""
    image = ax.imshow(heat.matrix, vmin=heat.zmin, vmax=heat.zmax, cmap="RdBu_r" if heat.diverging else "cividis")
    step = style.tick_step(len(heat.names), length)
    ticks = list(range(0, len(heat.names), step))
    names = [label(heat.names[i], TICK_CHARACTERS) for i in ticks]
    ax.set_xticks(ticks, names, rotation=90)
    ax.set_yticks(ticks, names)
    ax.set_title(literal(heat.title))
    return image


def _heatmap_figure(heat: data.Heatmap, size: str) -> Any:
    fig = style.new_figure(size, _HEATMAP_HEIGHT[size], layout="compressed")
    ax = fig.add_subplot()
    fig.colorbar(_draw_heatmap(ax, heat, 0.55 * _HEATMAP_HEIGHT[size]), ax=ax, shrink=0.8, label=heat.colourbar)
    return fig


def plot_spectrum(results: Results, *, size: str = "column") -> Any:
    """Covariance eigenvalues on a log scale against the isotropic baseline of the same N, D, trace.

    Parameters
    ----------
    results : Results
        With a ``spectrum`` result.
    size : {"column", "full"}, default="column"
        3.25 or 6.75 in wide (:data:`~.figure_style.WIDTHS`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _draw_lines(data.spectrum(results), size=size)


def plot_cosine_histogram(results: Results, *, size: str = "column") -> Any:
    """Pairwise cosine histograms (all, positive, negative pairs) with the random-pair density on
    :math:`S^{D-1}`; ``size`` as in :func:`plot_spectrum`."""
    return _draw_lines(data.cosine_histogram(results), size=size)


def plot_k_occurrence(results: Results, *, size: str = "column") -> Any:
    """How often each row is among the others' k nearest neighbours, against the no-hub Binomial
    null; ``size`` as in :func:`plot_spectrum`."""
    return _draw_lines(data.k_occurrence(results), size=size)


@styled
def plot_class_cosine(results: Results, *, centred: bool = False, ordered: bool = True, size: str = "column") -> Any:
    """Heatmap of the cosine between class means, similar classes adjacent (``ordered=False``:
    label order); as many class names as fit at 7 pt label the ticks."""
    return _heatmap_figure(data.class_cosine(results, centred=centred, ordered=ordered), size)


@styled
def plot_simo(results: Results, *, size: str = "column") -> Any:
    """SimO's class-mean matrices, (μ_c·μ_c')² and ‖μ_c − μ_c'‖²: stacked in a column, side by
    side at full width."""
    rows, columns = (2, 1) if size == "column" else (1, 2)
    fig = style.new_figure(size, _HEATMAP_HEIGHT[size] * (2 if size == "column" else 1), layout="compressed")
    for ax, heat in zip(fig.subplots(rows, columns).ravel(), data.simo_matrices(results)):
        fig.colorbar(_draw_heatmap(ax, heat, 0.55 * _HEATMAP_HEIGHT[size]), ax=ax, shrink=0.8, label=heat.colourbar)
    return fig


@styled
def plot_sample_cosine(results: Results, *, size: str = "column") -> Any:
    """Heatmap of the cosine between the rows themselves (small N), sorted by label: classes as blocks."""
    return _heatmap_figure(data.sample_cosine(results), size)


@styled
def plot_scalar_summary(results: Results, *, size: str = "column") -> Any:
    """Every finding as a small multiple on its own scale: the value (a dot coloured by verdict)
    against the null baseline (a bar) and the warn and fail bands (shaded on the side that
    fails, from :data:`geometry_probe.diagnosis.HIGHER_IS_WORSE`), one legend for all panels.

    Parameters
    ----------
    results : Results
        With findings (:func:`geometry_probe.analyze` adds them).
    size : {"column", "full"}, default="column"
        Panels stacked (column) or up to three abreast (full).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bars = data.verdicts(results)
    if not bars:
        raise InvalidInputError("plot_scalar_summary: these results hold no finding with a value; "
                                "analyze with verdicts=True.")
    rows, columns = style.grid(len(bars), size, stacked=8)
    fig = style.new_figure(size, 0.62 * rows + 0.7)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(bars):]:
        ax.remove()
    for index, (ax, bar) in enumerate(zip(axes, bars)):
        low, high = bar.limits()
        for start, end, colour in _bands(bar, low, high):
            ax.axvspan(start, end, color=colour, alpha=0.25, lw=0)
        if np.isfinite(bar.baseline):
            ax.plot([bar.baseline], [0], marker="|", ms=11, mew=1.5, color="#000000", ls="none")
        ax.plot([bar.value], [0], marker="o", ms=6, color=bar.colour, mec="#000000", mew=0.6, ls="none")
        ax.set_xlim(low, high)
        ax.set_ylim(-1, 1)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_title(f"{label(bar.name)}: {bar.value:.3g}, {label(bar.verdict)}", loc="left")
        if index + columns >= len(bars):
            ax.set_xlabel("value of the finding's signal")
    present = [v for v in ("ok", "warn", "fail") if any(bar.verdict == v for bar in bars)]
    handles = [Line2D([], [], marker="o", ms=6, color=data.VERDICT_COLOURS[v], mec="#000000", mew=0.6, ls="none")
               for v in present] + [Line2D([], [], marker="|", ms=11, mew=1.5, color="#000000", ls="none"),
                                    Patch(color=OKABE_ITO[1], alpha=0.25, lw=0), Patch(color=OKABE_ITO[3], alpha=0.25,
                                                                                      lw=0)]
    style.legend_below(fig, handles, [f"value: {v}" for v in present] + ["null baseline", "warn band", "fail band"],
                       title="each panel on its own scale")
    return fig


def _bands(bar: data.VerdictBar, low: float, high: float) -> list[tuple[float, float, str]]:
    """The warn and fail bands of a finding within ``[low, high]``, on the side that fails."""
    if not np.isfinite(bar.fail):
        return []
    edge = high if bar.higher_is_worse else low
    bands = [(bar.fail, edge, OKABE_ITO[3])]
    if np.isfinite(bar.warn):
        bands.append((bar.warn, bar.fail, OKABE_ITO[1]))
    return [(min(a, b), max(a, b), colour) for a, b, colour in bands]


@styled
def plot_trajectory(trajectory: Mapping[str, Any], keys: Sequence[str], *, size: str = "column") -> Any:
    """Metric curves over checkpoints, one small multiple per metric, each collapse onset a
    vertical line of its own colour and dash pattern (named in the legend below).

    The x axis counts what the trajectory's ``step_unit`` says ("epoch", "step", or
    "checkpoint" when unknown; see :func:`geometry_probe.trajectory.step_unit`).

    Parameters
    ----------
    trajectory : mapping
        ``geoprobe track`` output: ``{"checkpoints": [{"step", "scalars", ...}], "onsets": {...},
        "step_unit": ...}``.
    keys : sequence of str
        Metric keys, one panel each.
    size : {"column", "full"}, default="column"
        Panels stacked (column) or up to three abreast (full).

    Returns
    -------
    matplotlib.figure.Figure
    """
    traj = data.trajectory(trajectory, keys)
    rows, columns = style.grid(len(traj.panels), size)
    onset_names = [f"{label(name)} onset, {traj.unit} {step:g}" for name, step in traj.onsets]
    where = _spread([step for _, step in traj.onsets], traj.steps)
    fig = style.new_figure(size, style.panel_height(size) * rows + 0.35
                           + style.legend_height(onset_names, style.width_of(size)))
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    for ax in axes[len(traj.panels):]:
        ax.remove()
    for index, (ax, panel) in enumerate(zip(axes, traj.panels)):
        ax.plot(traj.steps, panel.values, marker="o", color=OKABE_ITO[0])
        ax.set_ylabel(label(panel.label))
        for number, (step, name) in enumerate(zip(where, onset_names)):
            ax.axvline(step, lw=1.1, label=name, **style.marker_style(number))
        style.whole_steps(ax, traj.steps)
        if index + columns >= len(traj.panels):
            ax.set_xlabel(traj.unit)
            ax.xaxis.set_tick_params(labelbottom=True)
    style.legend_below(fig, *axes[0].get_legend_handles_labels())
    return fig


def _spread(onsets: Sequence[float], steps: np.ndarray) -> list[float]:
    """Where to draw onset lines: onsets at the same step moved apart by 8 % of the smallest gap
    between checkpoints, centred on the step, so that none hides another.

    Examples
    --------
    >>> _spread([3.0, 3.0, 5.0], np.array([1.0, 3.0, 5.0]))
    [2.92, 3.08, 5.0]
    """
    gaps = np.diff(np.unique(steps))
    delta = 0.08 * (float(gaps.min()) if gaps.size else 1.0)
    where = []
    for index, step in enumerate(onsets):
        same = [i for i, other in enumerate(onsets) if other == step]
        where.append(round(step + (same.index(index) - (len(same) - 1) / 2) * delta, 12))
    return where


@styled
def plot_projection(results: Results, *, max_points: int | None = None, size: str = "column") -> Any:
    """The stored 2-D map coloured by label, with a legend of class names (from ``meta``) below
    it; above ``max_points`` a stratified subsample, the title saying how many points are shown."""
    grid = data.projection(results, max_points=max_points)
    names = [label(group.name) for group in grid.groups] if 1 < len(grid.groups) <= 20 else []
    fig = style.new_figure(size, _HEATMAP_HEIGHT[size] + style.legend_height(names, style.width_of(size)))
    ax = fig.add_subplot()
    for group in grid.groups:
        ax.scatter(group.x, group.y, s=2, linewidths=0, color=group.colour, label=label(group.name))
    if names:
        legend = style.legend_below(fig, *ax.get_legend_handles_labels())
        for handle in legend.legend_handles:
            handle.set_sizes([12.0])
    ax.set_title(literal(grid.title))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
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


def write_figures(results: Results, folder: str | os.PathLike[str], *, fmt: str = "pdf", size: str = "column",
                  dpi: int = DEFAULT_DPI) -> list[Path]:
    """Save every available figure to ``folder/<name>.<fmt>``; return the paths.

    Every figure is drawn in memory before the first is written, so a figure that cannot be drawn
    leaves the folder as it was; each file is then written atomically.

    Parameters
    ----------
    results : Results
    folder : path-like
        An existing folder.
    fmt : {"pdf", "svg", "png"}, default="pdf"
    size : {"column", "full"}, default="column"
        3.25 or 6.75 in wide.
    dpi : int, default=300
        Pixels per inch of a PNG (a column figure is ``3.25 × dpi`` pixels wide).

    Returns
    -------
    list of Path
    """
    return write_figure_files(folder, {name: (lambda name=name: FIGURES[name](results, size=size))
                                       for name in available_figures(results)}, fmt=fmt, dpi=dpi)


def write_figure_files(folder: str | os.PathLike[str], figures: Mapping[str, Callable[[], Any]], *, fmt: str,
                       dpi: int = DEFAULT_DPI) -> list[Path]:
    """Draw every figure of ``figures`` (name → function making it), then write each to
    ``folder/<name>.<fmt>`` atomically; nothing is written when one cannot be drawn."""
    check_format(fmt)
    style.check_dpi(dpi)
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{folder}: not a folder; create it first.")
    paths = {name: check_output_path(folder / f"{name}.{fmt}") for name in figures}
    drawn = {name: render(make(), fmt, dpi=dpi) for name, make in figures.items()}
    return [atomic_write_bytes(paths[name], image) for name, image in drawn.items()]


def check_format(fmt: str) -> None:
    """Refuse a figure format other than :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"format: got {fmt!r}; choose one of {list(FORMATS)}.")


def write_trajectory_figure(trajectory: Mapping[str, Any], folder: str | os.PathLike[str], *, fmt: str = "pdf",
                            keys: Sequence[str] | None = None, size: str = "column", dpi: int = DEFAULT_DPI) -> Path:
    """Save the metric trajectory (``geoprobe track`` output) to ``folder/trajectory.<fmt>`` atomically.

    Parameters
    ----------
    trajectory : mapping
        ``{"checkpoints": [{"step", "scalars", ...}], "onsets": {...}}``.
    folder : path-like
        An existing folder.
    fmt : {"pdf", "svg", "png"}, default="pdf"
    keys : sequence of str, optional
        Metrics to draw; by default the headline ones the trajectory holds.
    size : {"column", "full"}, default="column"
    dpi : int, default=300
        Pixels per inch of a PNG.

    Returns
    -------
    Path
    """
    chosen = list(keys) if keys else data.trajectory_keys(trajectory)
    return write_figure_files(folder, {"trajectory": lambda: plot_trajectory(trajectory, chosen, size=size)},
                              fmt=fmt, dpi=dpi)[0]
