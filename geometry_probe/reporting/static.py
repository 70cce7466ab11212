"""Publication figures from results (matplotlib, no pyplot state): compute once, plot from JSON.

Every function takes a :class:`~geometry_probe.Results` (or what it holds) and returns a
``matplotlib.figure.Figure`` sized for a paper column (3.3 in wide), drawn with the
colour-blind-safe Okabe–Ito palette. The data each figure shows is prepared in
:mod:`._figure_data`, shared with the interactive twins in :mod:`.interactive` (same names,
same inputs). :func:`write_figures` saves every figure the results support as PDF, SVG or PNG,
atomically, after drawing them all. Text from the data (class, layer and finding names) is drawn
literally: never parsed as mathtext or LaTeX, control characters shown as escapes, long names cut.
"""

from __future__ import annotations

import io
import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from geometry_probe._atomic import atomic_write_bytes, check_output_path
from geometry_probe.exceptions import InvalidInputError, OutputError
from geometry_probe.reporting import _figure_data as data
from geometry_probe.reporting._figure_data import OKABE_ITO, available_figures, isotropic_spectrum, random_pair_density
from geometry_probe.result import Results

__all__ = ["FIGURES", "FORMATS", "OKABE_ITO", "available_figures", "check_format", "isotropic_spectrum", "label",
           "literal", "plot_class_cosine",
           "plot_cosine_histogram", "plot_k_occurrence", "plot_projection", "plot_sample_cosine",
           "plot_scalar_summary", "plot_simo", "plot_spectrum", "plot_trajectory", "random_pair_density", "render",
           "write_figures", "write_trajectory_figure"]

COLUMN = (3.3, 2.4)
LABEL_CHARACTERS = 40
FORMATS = ("pdf", "svg", "png")
_LINESTYLE = {"solid": "-", "dashed": "--", "dotted": ":", "step": "-"}


def _figure(size: tuple[float, float] = COLUMN) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    fig.set_dpi(150)
    return fig


def label(text: Any) -> str:
    """User text (a class, layer or finding name) as matplotlib must be given it to draw it as written:
    control characters as escapes (``\\n``), at most :data:`LABEL_CHARACTERS` characters (the rest
    as "..."), and ``$`` escaped (:func:`literal`).

    Examples
    --------
    >>> label("a\\nb"), label("x" * 50)[-5:], label(3), label("$x_{1$")
    ('a\\\\nb', 'xx...', '3', '\\\\$x_{1\\\\$')
    """
    text = "".join(repr(ch)[1:-1] if unicodedata.category(ch) == "Cc" else ch for ch in str(text))
    return literal(text if len(text) <= LABEL_CHARACTERS else text[:LABEL_CHARACTERS - 3] + "...")


def literal(text: str) -> str:
    r"""``text`` with every ``$`` escaped as ``\$``: matplotlib then draws it as written instead of
    parsing ``$...$`` as mathtext (a ``\$`` in ``text`` comes back as ``\$`` too). Our own axis
    tick labels keep their mathtext.

    Examples
    --------
    >>> print(literal("$x_{1$ costs 50%_$"))
    \$x_{1\$ costs 50%_\$
    """
    return text.replace("$", r"\$")


def render(fig: Any, fmt: str, **savefig: Any) -> bytes:
    """``fig`` saved as ``fmt`` in memory, without LaTeX whatever the user's matplotlibrc says;
    vector formats keep text as text (TrueType in PDF, <text> in SVG)."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context({"pdf.fonttype": 42, "svg.fonttype": "none", "text.usetex": False}):
        fig.savefig(buffer, format=fmt, **savefig)
    return buffer.getvalue()


def _draw_lines(plot: data.LinePlot) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    for line in plot.lines:
        if line.style == "step":
            ax.step(line.x, line.y, where="mid", color=line.colour, label=label(line.name))
        else:
            ax.plot(line.x, line.y, color=line.colour, ls=_LINESTYLE[line.style], label=label(line.name))
    if plot.log_y:
        ax.set_yscale("log")
    ax.set_title(literal(plot.title), fontsize=8)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.legend(fontsize=6)
    return fig


def _draw_heatmap(ax: Any, heat: data.Heatmap) -> Any:
    image = ax.imshow(heat.matrix, vmin=heat.zmin, vmax=heat.zmax, cmap="RdBu_r" if heat.diverging else "cividis")
    if len(heat.names) <= 30:
        names = [label(name) for name in heat.names]
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=5)
        ax.set_yticks(range(len(names)), names, fontsize=5)
    ax.set_title(literal(heat.title), fontsize=8)
    return image


def plot_spectrum(results: Results) -> Any:
    """Covariance eigenvalues on a log scale against the isotropic baseline of the same N, D, trace."""
    return _draw_lines(data.spectrum(results))


def plot_cosine_histogram(results: Results) -> Any:
    """Pairwise cosine histograms (all, positive, negative pairs) with the random-pair density on S^{D−1}."""
    return _draw_lines(data.cosine_histogram(results))


def plot_k_occurrence(results: Results) -> Any:
    """How often each row is among the others' k nearest neighbours, against the no-hub Binomial null."""
    return _draw_lines(data.k_occurrence(results))


def plot_class_cosine(results: Results, *, centred: bool = False, ordered: bool = True) -> Any:
    """Heatmap of the cosine between class means, similar classes adjacent (``ordered=False``: label order)."""
    heat = data.class_cosine(results, centred=centred, ordered=ordered)
    fig = _figure((3.3, 3.0))
    ax = fig.add_subplot()
    fig.colorbar(_draw_heatmap(ax, heat), ax=ax, shrink=0.8, label=heat.colourbar)
    return fig


def plot_simo(results: Results) -> Any:
    """SimO's class-mean matrices side by side: (μ_c·μ_c')² and ‖μ_c − μ_c'‖²."""
    fig = _figure((6.8, 3.0))
    for ax, heat in zip(fig.subplots(1, 2), data.simo_matrices(results)):
        fig.colorbar(_draw_heatmap(ax, heat), ax=ax, shrink=0.8, label=heat.colourbar)
    return fig


def plot_sample_cosine(results: Results) -> Any:
    """Heatmap of the cosine between the rows themselves (small N), sorted by label: classes as blocks."""
    heat = data.sample_cosine(results)
    fig = _figure((3.3, 3.0))
    ax = fig.add_subplot()
    fig.colorbar(_draw_heatmap(ax, heat), ax=ax, shrink=0.8, label=heat.colourbar)
    return fig


def plot_scalar_summary(results: Results) -> Any:
    """Horizontal bars of each finding's value against its fail threshold and null baseline."""
    bars = data.verdicts(results)
    fig = _figure((3.3, 0.35 * max(len(bars), 1) + 0.8))
    ax = fig.add_subplot()
    for row, bar in enumerate(bars):
        ax.barh(row, bar.value, color=bar.colour)
        ax.plot([bar.baseline], [row], marker="|", color="k", ms=10)
        ax.plot([bar.fail], [row], marker="x", color=OKABE_ITO[3], ms=5)
    ax.set_yticks(range(len(bars)), [label(bar.name) for bar in bars], fontsize=6)
    ax.set_title("collapse verdicts (| null baseline, x fail threshold)", fontsize=7)
    return fig


def plot_trajectory(trajectory: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """Metric curves over checkpoints with each collapse onset marked by a vertical line."""
    traj = data.trajectory(trajectory, keys)
    fig = _figure((3.3, 1.4 * len(traj.panels) + 0.6))
    axes = fig.subplots(len(traj.panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, traj.panels):
        ax.plot(traj.steps, panel.values, marker="o", ms=3, color=panel.colour)
        ax.set_ylabel(label(panel.label), fontsize=7)
        for name, step in traj.onsets:
            ax.axvline(step, color=OKABE_ITO[3], ls="--", lw=0.8, label=f"{label(name)} onset")
    if traj.onsets:
        axes[0].legend(fontsize=6)
    axes[-1].set_xlabel("step")
    return fig


def plot_projection(results: Results, *, max_points: int | None = None) -> Any:
    """The stored 2-D map coloured by label, with a legend of class names (from ``meta``);
    above ``max_points`` a stratified subsample, the title saying how many points are shown."""
    grid = data.projection(results, max_points=max_points)
    fig = _figure((3.3, 3.0))
    ax = fig.add_subplot()
    for group in grid.groups:
        ax.scatter(group.x, group.y, s=2, linewidths=0, color=group.colour, label=label(group.name))
    if 1 < len(grid.groups) <= 20:
        ax.legend(fontsize=5, markerscale=3, ncol=2, frameon=False)
    ax.set_title(literal(grid.title), fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
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


def write_figures(results: Results, folder: str | os.PathLike[str], *, fmt: str = "pdf") -> list[Path]:
    """Save every available figure to ``folder/<name>.<fmt>``; return the paths.

    Every figure is drawn in memory before the first is written, so a figure that cannot be drawn
    leaves the folder as it was; each file is then written atomically.
    """
    check_format(fmt)
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{folder}: not a folder; create it first.")
    paths = {name: check_output_path(folder / f"{name}.{fmt}") for name in available_figures(results)}
    drawn = {name: render(FIGURES[name](results), fmt) for name in paths}
    return [atomic_write_bytes(paths[name], image) for name, image in drawn.items()]


def check_format(fmt: str) -> None:
    """Refuse a figure format other than :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"format: got {fmt!r}; choose one of {list(FORMATS)}.")


def write_trajectory_figure(trajectory: Mapping[str, Any], folder: str | os.PathLike[str], *, fmt: str = "pdf",
                            keys: Sequence[str] | None = None) -> Path:
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

    Returns
    -------
    Path
    """
    check_format(fmt)
    path = check_output_path(Path(folder) / f"trajectory.{fmt}")
    image = render(plot_trajectory(trajectory, list(keys) if keys else data.trajectory_keys(trajectory)), fmt)
    return atomic_write_bytes(path, image)
