"""The figures papers show, drawn from saved results of several runs, checkpoints or layers.

Each function takes named inputs (a mapping run name → what was saved) and returns a
``matplotlib.figure.Figure`` at a print size preset (:mod:`.figure_style`: ``size="column"``,
3.25 in, or ``"full"``, 6.75 in), one colour, dash pattern and marker per run, the legend (the
run names, drawn literally) below the axes:

* :func:`plot_spectra`: covariance spectra of several runs or layers on one log axis,
  each normalised to its total variance, :math:`\\lambda_i / \\sum_j \\lambda_j` against the index.
* :func:`plot_alignment_uniformity`: the alignment–uniformity plane of Wang & Isola (2020),
  one point per run or a path over a run's checkpoints; lower left is better.
* :func:`plot_compare_trajectories`: metrics over checkpoints, one line per run.
* :func:`plot_layer_curves`: metrics against depth, one line per checkpoint (or run).
* :func:`plot_compare_metrics`: headline metrics of several runs side by side (dot plots).
* :func:`plot_compare_cosine_histograms`: the pair-cosine densities of several runs.

:func:`write_paper_figures` draws every figure a list of saved files supports
(``geoprobe figures a.json b.json --compare``). Reference: T. Wang and P. Isola, "Understanding
Contrastive Representation Learning through Alignment and Uniformity on the Hypersphere",
ICML 2020.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geometry_probe.exceptions import InvalidInputError
from geometry_probe.reporting import _figure_data as data
from geometry_probe.reporting import figure_style as style
from geometry_probe.reporting.figure_inputs import Run
from geometry_probe.reporting.figure_style import DEFAULT_DPI, label, styled
from geometry_probe.reporting.static import FIGURES, plot_trajectory, write_figure_files
from geometry_probe.result import Results

__all__ = ["LAYER_KEYS", "METRIC_KEYS", "alignment_uniformity_points", "figures_for", "plot_alignment_uniformity",
           "plot_compare_cosine_histograms", "plot_compare_metrics", "plot_compare_trajectories",
           "plot_layer_curves", "plot_spectra", "write_paper_figures"]

#: Metrics compared across runs when present in every run.
METRIC_KEYS = ("spectrum/effective_rank", "spectrum/rankme", "contrastive/uniformity", "contrastive/alignment",
               "contrastive/mean_cosine", "knn/accuracy", "neural_collapse/nc1")
#: Metrics drawn against depth (the columns of a layer sweep).
LAYER_KEYS = ("spectrum/effective_rank", "spectrum/rankme", "contrastive/mean_cosine", "contrastive/uniformity",
              "neural_collapse/nc1", "neural_collapse/ncc_accuracy")
_NAMES = {"spectrum/effective_rank": "effective rank", "spectrum/rankme": "RankMe",
          "contrastive/uniformity": "uniformity", "contrastive/alignment": "alignment",
          "contrastive/mean_cosine": "mean cosine", "knn/accuracy": "kNN accuracy", "neural_collapse/nc1": "NC1",
          "neural_collapse/ncc_accuracy": "NCC accuracy"}
_HEIGHT = {"column": 2.3, "full": 2.6}


def _metric_name(key: str) -> str:
    return _NAMES.get(key) or label(key)


def _eigenvalues(item: Any) -> np.ndarray:
    if isinstance(item, Results):
        if "spectrum" not in item:
            raise InvalidInputError(f"plot_spectra: a run has no 'spectrum' result (it holds {sorted(item)}).")
        item = item["spectrum"].arrays["covariance_eigenvalues"]
    eig = np.asarray(item, dtype=float).ravel()
    if eig.size == 0 or not np.any(eig[np.isfinite(eig)] > 0):
        raise InvalidInputError("plot_spectra: a spectrum has no positive eigenvalue to draw.")
    return eig


def _legend_height(names: Sequence[str], size: str) -> float:
    return style.legend_height(list(names), style.width_of(size))


@styled
def plot_spectra(spectra: Mapping[str, Any], *, size: str = "column", log_x: bool = False,
                 title: str = "covariance spectra") -> Any:
    r"""Spectra of several runs or layers on one log axis, each normalised to its total variance.

    Each curve is :math:`\lambda_i / \sum_j \lambda_j` against :math:`i`, the eigenvalues of the
    covariance in decreasing order (zeros left out), so runs of different scale and width compare:
    a curve that falls fast has few directions carrying the variance (a low effective rank).

    Parameters
    ----------
    spectra : mapping of str to Results or array
        Run (or layer) name → its results (the ``spectrum`` result's ``covariance_eigenvalues``)
        or the eigenvalues themselves.
    size : {"column", "full"}, default="column"
    log_x : bool, default=False
        Index on a log axis too (for wide embeddings).
    title : str, default="covariance spectra"

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_spectra({"a": [4.0, 2.0, 2.0], "b": [1.0, 1.0]})
    >>> [line.get_ydata().tolist() for line in fig.axes[0].get_lines()]
    [[0.5, 0.25, 0.25], [0.5, 0.5]]
    """
    names = [label(name) for name in spectra]
    fig = style.new_figure(size, _HEIGHT[size] + _legend_height(names, size))
    ax = fig.add_subplot()
    for index, (name, item) in enumerate(zip(names, spectra.values())):
        eig = np.sort(_eigenvalues(item))[::-1]
        share = np.where(eig > 0, eig, np.nan) / np.nansum(np.where(eig > 0, eig, np.nan))
        look = style.series_style(index)
        ax.plot(np.arange(1, eig.size + 1), share, label=name, color=look["color"], ls=look["ls"])
    ax.set_yscale("log")
    if log_x:
        ax.set_xscale("log")
    else:
        style.whole_steps(ax, [1.0])
    ax.set_xlabel("index $i$ (largest eigenvalue first)")
    ax.set_ylabel(r"$\lambda_i / \Sigma_j \lambda_j$ (share of variance)")
    ax.set_title(style.literal(title))
    style.legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def alignment_uniformity_points(item: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Uniformity, alignment (and the steps, for a trajectory) of one run: ``Results`` (one
    point) or a trajectory dict (one point per checkpoint holding both).

    Raises
    ------
    InvalidInputError
        No ``contrastive/alignment`` (it needs positive pairs: ``--pairs``, ``--views`` or
        ``--groups``) or no ``contrastive/uniformity``.
    """
    if isinstance(item, Results):
        rows, steps = [item.scalars()], None
    else:
        rows = [c["scalars"] for c in item["checkpoints"]]
        steps = np.array([c["step"] for c in item["checkpoints"]], dtype=float)
    keep = [i for i, row in enumerate(rows) if _finite(row.get("contrastive/alignment"))
            and _finite(row.get("contrastive/uniformity"))]
    if not keep:
        raise InvalidInputError("alignment-uniformity: a run has no contrastive/alignment and uniformity; alignment "
                                "needs positive pairs (geoprobe analyze --pairs, --views or --groups).")
    uniformity = np.array([rows[i]["contrastive/uniformity"] for i in keep], dtype=float)
    alignment = np.array([rows[i]["contrastive/alignment"] for i in keep], dtype=float)
    return uniformity, alignment, None if steps is None else steps[keep]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and np.isfinite(value)


@styled
def plot_alignment_uniformity(runs: Mapping[str, Any], *, size: str = "column") -> Any:
    r"""The alignment–uniformity plane of Wang & Isola (2020): one point per run, or a path over
    a run's checkpoints (small markers, the last checkpoint large).

    Alignment :math:`\mathcal{L}_\mathrm{align} = \mathbb{E}\,\lVert f(x) - f(y)\rVert_2^2` over
    positive pairs (α = 2; 0 to 4) on the y axis, uniformity
    :math:`\mathcal{L}_\mathrm{uniform} = \log \mathbb{E}\, e^{-t\lVert f(x) - f(y)\rVert_2^2}`
    over all pairs (t = 2; −4 to 0) on the x axis: both lower is better, so the best encoders
    sit at the lower left (the title says so).

    Parameters
    ----------
    runs : mapping of str to Results or trajectory dict
        Run name → its results (``contrastive`` run with positives) or its trajectory.
    size : {"column", "full"}, default="column"

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import geometry_probe as gp
    >>> r = gp.Results([gp.Result("contrastive", {"alignment": 0.8, "uniformity": -3.1})])
    >>> plot_alignment_uniformity({"run": r}).axes[0].get_lines()[0].get_xydata().tolist()
    [[-3.1, 0.8]]
    """
    from matplotlib.lines import Line2D

    names = [label(name) for name in runs]
    has_path = any(not isinstance(item, Results) for item in runs.values())
    fig = style.new_figure(size, (2.6 if size == "column" else 3.0) + _legend_height(names + ["x"] * has_path, size))
    ax = fig.add_subplot()
    handles = []
    for index, (name, item) in enumerate(zip(names, runs.values())):
        uniformity, alignment, _ = alignment_uniformity_points(item)
        look = style.series_style(index)
        ax.plot(uniformity, alignment, color=look["color"], ls=look["ls"], marker=look["marker"],
                ms=3 if uniformity.size > 1 else 6, lw=1.0, label=name)
        if uniformity.size > 1:
            ax.plot(uniformity[-1:], alignment[-1:], color=look["color"], marker=look["marker"], ms=7, ls="none")
        handles.append(Line2D([], [], color=look["color"], ls=look["ls"], marker=look["marker"], ms=5))
    if has_path:
        handles.append(Line2D([], [], color="#000000", marker="o", ms=7, ls="none"))
        names.append("last checkpoint")
    ax.set_xlabel(r"uniformity $\mathcal{L}_{\mathrm{uniform}}$ ($t=2$)")
    ax.set_ylabel(r"alignment $\mathcal{L}_{\mathrm{align}}$ ($\alpha=2$)")
    ax.set_title("alignment vs uniformity (lower left is better)")
    ax.margins(0.12)
    style.legend_below(fig, handles, names)
    return fig


def _shared_keys(rows: Sequence[Mapping[str, Any]], preferred: Sequence[str]) -> list[str]:
    """The ``preferred`` keys every row holds a number for; else those any row holds; else the
    first four numeric keys."""
    def numeric(row: Mapping[str, Any]) -> set[str]:
        return {k for k, v in row.items() if _finite(v)}

    every = set.intersection(*(numeric(row) for row in rows)) if rows else set()
    chosen = [key for key in preferred if key in every]
    if chosen:
        return chosen
    anywhere = set.union(*(numeric(row) for row in rows)) if rows else set()
    return [key for key in preferred if key in anywhere] or sorted(anywhere)[:4]


@styled
def plot_compare_trajectories(trajectories: Mapping[str, Mapping[str, Any]], keys: Sequence[str] | None = None, *,
                              size: str = "column") -> Any:
    """Metrics over checkpoints of several runs, one small multiple per metric, one line per run.

    The x axis counts what the trajectories' ``step_unit`` says (epoch, step, or checkpoint
    when unknown or when the runs differ).

    Parameters
    ----------
    trajectories : mapping of str to dict
        Run name → ``geoprobe track`` trajectory.
    keys : sequence of str, optional
        Metrics, one panel each; by default the headline ones (:data:`METRIC_KEYS`) all runs hold.
    size : {"column", "full"}, default="column"

    Returns
    -------
    matplotlib.figure.Figure
    """
    if len(trajectories) == 1 and keys is None:
        return plot_trajectory(next(iter(trajectories.values())),
                               data.trajectory_keys(next(iter(trajectories.values()))), size=size)
    keys = list(keys) if keys else _shared_keys(
        [c["scalars"] for t in trajectories.values() for c in t["checkpoints"]], METRIC_KEYS)
    if not keys:
        raise InvalidInputError("compare: the trajectories share no metric to draw.")
    units = {data.trajectory_unit(t) for t in trajectories.values()}
    unit = units.pop() if len(units) == 1 else "checkpoint"
    names = [label(name) for name in trajectories]
    rows, columns = style.grid(len(keys), size)
    fig = style.new_figure(size, style.panel_height(size) * rows + 0.35 + _legend_height(names, size))
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    for ax in axes[len(keys):]:
        ax.remove()
    for position, (ax, key) in enumerate(zip(axes, keys)):
        for index, (name, trajectory) in enumerate(zip(names, trajectories.values())):
            steps = [c["step"] for c in trajectory["checkpoints"]]
            values = [_value(c["scalars"].get(key)) for c in trajectory["checkpoints"]]
            ax.plot(steps, values, label=name, ms=3, **style.series_style(index))
            style.whole_steps(ax, steps)
        ax.set_ylabel(_metric_name(key))
        if position + columns >= len(keys):
            ax.set_xlabel(unit)
            ax.xaxis.set_tick_params(labelbottom=True)
    style.legend_below(fig, *axes[0].get_legend_handles_labels())
    return fig


def _value(value: Any) -> float:
    return float(value) if _finite(value) else np.nan


@styled
def plot_layer_curves(sweeps: Mapping[str, Sequence[Mapping[str, Any]]], keys: Sequence[str] | None = None, *,
                      size: str = "column") -> Any:
    """Metrics against depth for several checkpoints (or runs) of one model: one small multiple
    per metric, layers on the x axis in depth order, one line per checkpoint.

    Parameters
    ----------
    sweeps : mapping of str to sequence of dict
        Checkpoint (or run) name → the rows of its layer sweep (``geoprobe layers --json``'s
        ``rows``, :attr:`geometry_probe.layer_sweep.LayerSweep.rows`), matched by layer name.
    keys : sequence of str, optional
        Metrics, one panel each; by default those of :data:`LAYER_KEYS` every sweep holds.
    size : {"column", "full"}, default="column"

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> rows = lambda v: [{"layer": "a", "m": v}, {"layer": "b", "m": 2 * v}]
    >>> fig = plot_layer_curves({"epoch 1": rows(1.0), "epoch 2": rows(3.0)}, ["m"])
    >>> [line.get_ydata().tolist() for line in fig.axes[0].get_lines()]
    [[1.0, 2.0], [3.0, 6.0]]
    """
    layers: list[str] = []
    for rows in sweeps.values():
        layers += [str(row["layer"]) for row in rows if str(row["layer"]) not in layers]
    keys = list(keys) if keys else _shared_keys([row for rows in sweeps.values() for row in rows], LAYER_KEYS)
    if not keys:
        raise InvalidInputError("layer curves: the sweeps share no metric to draw.")
    names = [label(name) for name in sweeps]
    grid_rows, columns = style.grid(len(keys), size)
    tick_room = min(1.1, 0.06 * max(len(layer) for layer in layers) + 0.2)
    fig = style.new_figure(size, style.panel_height(size) * grid_rows + tick_room + 0.3 + _legend_height(names, size))
    axes = fig.subplots(grid_rows, columns, sharex=True, squeeze=False).ravel()
    for ax in axes[len(keys):]:
        ax.remove()
    positions = {layer: i for i, layer in enumerate(layers)}
    for position, (ax, key) in enumerate(zip(axes, keys)):
        for index, (name, rows) in enumerate(zip(names, sweeps.values())):
            x = [positions[str(row["layer"])] for row in rows]
            ax.plot(x, [_value(row.get(key)) for row in rows], label=name, ms=3, **style.series_style(index))
        ax.set_ylabel(_metric_name(key))
        if position + columns >= len(keys):
            step = style.tick_step(len(layers), style.width_of(size) / columns * 0.8 * 1.4)
            ticks = list(range(0, len(layers), step))
            ax.set_xticks(ticks, [label(layers[i], style.TICK_CHARACTERS) for i in ticks], rotation=45, ha="right",
                          rotation_mode="anchor")
            ax.set_xlabel("layer (in depth order)")
            ax.xaxis.set_tick_params(labelbottom=True)
    if len(sweeps) > 1:
        style.legend_below(fig, *axes[0].get_legend_handles_labels())
    return fig


@styled
def plot_compare_metrics(runs: Mapping[str, Results], keys: Sequence[str] | None = None, *,
                         size: str = "column") -> Any:
    """Headline metrics of several runs side by side: one dot plot per metric, a row per run.

    Parameters
    ----------
    runs : mapping of str to Results
    keys : sequence of str, optional
        By default those of :data:`METRIC_KEYS` every run holds.
    size : {"column", "full"}, default="column"

    Returns
    -------
    matplotlib.figure.Figure
    """
    scalars = {name: results.scalars() for name, results in runs.items()}
    keys = list(keys) if keys else _shared_keys(list(scalars.values()), METRIC_KEYS)
    if not keys:
        raise InvalidInputError("compare: the runs share no metric to draw.")
    names = [label(name, 24) for name in runs]
    rows, columns = style.grid(len(keys), size)
    height = max(0.9, 0.16 * len(names) + 0.55)
    fig = style.new_figure(size, height * rows + 0.2)
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    for ax in axes[len(keys):]:
        ax.remove()
    for ax, key in zip(axes, keys):
        for index, values in enumerate(scalars.values()):
            look = style.series_style(index)
            ax.plot([_value(values.get(key))], [index], marker=look["marker"], color=look["color"], ms=5, ls="none")
        ax.set_title(_metric_name(key), loc="left")
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.margins(x=0.15)
        ax.grid(axis="y", lw=0.4, alpha=0.5)
    return fig


@styled
def plot_compare_cosine_histograms(runs: Mapping[str, Results], *, size: str = "column") -> Any:
    """Densities of the cosine between all pairs of rows of several runs, overlaid, with the
    density of two random directions on :math:`S^{D-1}` when the runs share ``D``.

    Parameters
    ----------
    runs : mapping of str to Results
        Each with a ``contrastive`` result.
    size : {"column", "full"}, default="column"

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = [label(name) for name in runs]
    widths = {int(r.meta.get("n_features", 0)) for r in runs.values()}
    fig = style.new_figure(size, _HEIGHT[size] + _legend_height(names + ["x"] * (len(widths) == 1), size))
    ax = fig.add_subplot()
    for index, (name, results) in enumerate(zip(names, runs.values())):
        plot = data.cosine_histogram(results)
        line = plot.lines[0]
        look = style.series_style(index)
        ax.plot(line.x, line.y, label=name, color=look["color"], ls=look["ls"], drawstyle="steps-mid")
    if len(widths) == 1 and min(widths) > 1:
        reference = data.cosine_histogram(next(iter(runs.values()))).lines[-1]
        ax.plot(reference.x, reference.y, color="#808080", ls=":", label=reference.math)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density (per unit cosine)")
    ax.set_title("pairwise cosine similarity, all pairs")
    style.legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def _layer_spectra(run: Run) -> dict[str, Any]:
    results = run.data.get("results", {})
    spectra = {str(row["layer"]): Results.from_dict(results[str(row["layer"])]) for row in run.data["rows"]
               if str(row["layer"]) in results and "spectrum" in results[str(row["layer"])].get("results", {})}
    if not spectra:
        raise InvalidInputError(f"{run.name}: the layer sweep holds no spectrum per layer.")
    return spectra


def figures_for(runs: Sequence[Run], *, compare: bool, size: str = "column") -> dict[str, Callable[[], Any]]:
    """Name → function drawing it, for every figure ``runs`` support (what ``geoprobe figures`` writes).

    One file without ``compare``: results → every figure of
    :data:`geometry_probe.reporting.static.FIGURES` they hold data for; a trajectory →
    ``trajectory``; a layer sweep → ``layer_curves`` and ``layer_spectra``; each with
    ``alignment_uniformity`` when it holds alignment and uniformity. With ``compare`` (any
    number of files of one kind): results → ``compare_spectra``, ``compare_metrics`` and, when
    every run holds them, ``compare_cosine_histogram`` and ``alignment_uniformity``;
    trajectories → ``compare_trajectory`` (and ``alignment_uniformity``); layer sweeps →
    ``layer_curves`` (one line per file: per-layer curves across checkpoints).

    Raises
    ------
    InvalidInputError
        Several files without ``compare``.
    """
    if len(runs) > 1 and not compare:
        raise InvalidInputError(f"figures: {len(runs)} files given; add --compare to overlay them in one figure "
                                "each, or give one file.")
    kind = runs[0].kind
    named = {run.name: run for run in runs}
    figures: dict[str, Callable[[], Any]] = {}
    if kind == "layers":
        sweeps = {name: run.data["rows"] for name, run in named.items()}
        figures["layer_curves"] = lambda: plot_layer_curves(sweeps, size=size)
        if not compare:
            figures["layer_spectra"] = lambda: plot_spectra(_layer_spectra(runs[0]), size=size,
                                                           title="covariance spectra by layer")
        return figures
    if kind == "trajectory":
        trajectories = {name: run.data for name, run in named.items()}
        if compare:
            figures["compare_trajectory"] = lambda: plot_compare_trajectories(trajectories, size=size)
        else:
            trajectory = runs[0].data
            figures["trajectory"] = lambda: plot_trajectory(trajectory, data.trajectory_keys(trajectory), size=size)
        if all(_has_alignment(t) for t in trajectories.values()):
            figures["alignment_uniformity"] = lambda: plot_alignment_uniformity(trajectories, size=size)
        return figures
    results = {name: run.results() for name, run in named.items()}
    if compare:
        if all("spectrum" in r for r in results.values()):
            figures["compare_spectra"] = lambda: plot_spectra(results, size=size)
        if all("contrastive" in r for r in results.values()):
            figures["compare_cosine_histogram"] = lambda: plot_compare_cosine_histograms(results, size=size)
        if _shared_keys([r.scalars() for r in results.values()], METRIC_KEYS):
            figures["compare_metrics"] = lambda: plot_compare_metrics(results, size=size)
    else:
        single = runs[0].results()
        figures.update({name: (lambda name=name: FIGURES[name](single, size=size))
                        for name in data.available_figures(single)})
    if all(_has_alignment(r) for r in results.values()):
        figures["alignment_uniformity"] = lambda: plot_alignment_uniformity(results, size=size)
    return figures


def _has_alignment(item: Any) -> bool:
    try:
        alignment_uniformity_points(item)
    except InvalidInputError:
        return False
    return True


def write_paper_figures(runs: Sequence[Run], folder: str | os.PathLike[str], *, compare: bool = True,
                        fmt: str = "pdf", size: str = "column", dpi: int = DEFAULT_DPI) -> list[Path]:
    """Save every figure of :func:`figures_for` to ``folder/<name>.<fmt>``, all drawn before
    the first is written, each written atomically (``geoprobe figures``).

    Parameters
    ----------
    runs : sequence of Run
        From :func:`geometry_probe.reporting.figure_inputs.read_runs`, all of one kind.
    folder : path-like
        An existing folder.
    compare : bool, default=True
    fmt : {"pdf", "svg", "png"}, default="pdf"
    size : {"column", "full"}, default="column"
    dpi : int, default=300

    Returns
    -------
    list of Path

    Raises
    ------
    InvalidInputError
        Several runs without ``compare``, or the runs support no figure.
    """
    style.width_of(size)
    figures = figures_for(runs, compare=compare, size=size)
    if not figures:
        raise InvalidInputError("figures: these files hold nothing to draw (no spectrum, contrastive result, "
                                "finding or shared metric).")
    return write_figure_files(folder, figures, fmt=fmt, dpi=dpi)
