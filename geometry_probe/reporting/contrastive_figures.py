"""Figures of the contrastive-loss geometry: InfoNCE against temperature, the uniformity–tolerance
plane (Wang & Liu 2021) and the sorted pairwise distances (Lu et al. 2023). Okabe–Ito colours;
user strings drawn literally (:func:`~geometry_probe.reporting.static.label`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geometry_probe.reporting._figure_data import OKABE_ITO
from geometry_probe.reporting.static import label

_LOSSES = (("infonce", "InfoNCE (one direction)"), ("infonce_symmetric", "symmetric"), ("nt_xent", "NT-Xent"))


def plot_temperature_sweep(taus: Sequence[float], values: Mapping[str, Sequence[float]], *, n_samples: int) -> Any:
    """InfoNCE quantities against τ (log axis): the losses with their collapse value ln N, the
    alignment/uniformity split, and the effective number of negatives with its ceiling N − 1.

    Parameters
    ----------
    taus : sequence of float
    values : mapping of str to sequence of float
        From :class:`~geometry_probe.functional.infonce.InfoNCETerms` ``values``.
    n_samples : int
        N, for the reference lines.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_temperature_sweep([0.1, 1.0], {"infonce": [2.0, 3.0], "effective_negatives": [5.0, 9.0]},
    ...                              n_samples=10)
    >>> len(fig.axes)
    3
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 2.8), layout="constrained")
    losses, split, negatives = figure.subplots(1, 3, sharex=True)
    for (key, name), colour in zip(_LOSSES, OKABE_ITO):
        if key in values:
            losses.plot(taus, values[key], marker="o", color=colour, label=name)
    losses.axhline(math.log(n_samples), color="grey", ls="--", lw=1, label="ln N (collapse)")
    losses.set_ylabel("loss (nats)")
    for key, name, colour in (("infonce_alignment", "alignment  -mean s_ii / τ", OKABE_ITO[4]),
                              ("infonce_uniformity", "uniformity  mean LSE", OKABE_ITO[5])):
        if key in values:
            split.plot(taus, values[key], marker="o", color=colour, label=name)
    split.set_ylabel("InfoNCE terms (nats)")
    if "effective_negatives" in values:
        negatives.plot(taus, values["effective_negatives"], marker="o", color=OKABE_ITO[3])
    negatives.axhline(n_samples - 1, color="grey", ls="--", lw=1, label="N - 1 (all equal)")
    negatives.set_yscale("log")
    negatives.set_ylabel("effective negatives")
    for ax in (losses, split, negatives):
        ax.set_xscale("log")
        ax.set_xlabel("temperature τ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return figure


def plot_uniformity_tolerance(points: Sequence[tuple[str, float, float]]) -> Any:
    """The uniformity–tolerance plane: one point per checkpoint, run or temperature.

    Parameters
    ----------
    points : sequence of (name, uniformity, tolerance)
        ``uniformity`` is the loss ``contrastive/uniformity`` (lower = more uniform); the x axis
        shows −uniformity, Wang & Liu's larger-is-more-uniform sign.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_uniformity_tolerance([("τ=0.1", -3.8, 0.3), ("τ=1", -3.0, 0.6)])
    >>> fig.axes[0].collections[0].get_offsets().tolist()
    [[3.8, 0.3], [3.0, 0.6]]
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 3.4), layout="constrained")
    ax = figure.subplots()
    x = [-float(u) for _, u, _ in points]
    y = [float(t) for _, _, t in points]
    ax.scatter(x, y, color=OKABE_ITO[5], zorder=3)
    if len(points) > 1:
        ax.plot(x, y, color=OKABE_ITO[5], alpha=0.4, lw=1)
    for (name, _, _), xi, yi in zip(points, x, y):
        ax.annotate(label(name), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("uniformity  (-L_uniform, t = 2; right = more uniform)")
    ax.set_ylabel("tolerance  (mean same-label cosine)")
    ax.grid(alpha=0.3)
    return figure


def plot_sorted_distances(positive: np.ndarray, negative: np.ndarray, *, n_samples: int | None = None) -> Any:
    """Sorted pairwise distances of unit rows, positives against negatives (f-MICL's alignment
    and uniformity test): positives should lie low, negatives flat near the simplex distance
    :math:`\\sqrt{2N/(N-1)}` (dashed, when ``n_samples`` is given).

    Examples
    --------
    >>> fig = plot_sorted_distances(np.array([0.1, 0.2]), np.array([1.4, 1.5]), n_samples=100)
    >>> len(fig.axes[0].get_lines())
    3
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 3.0), layout="constrained")
    ax = figure.subplots()
    for values, name, colour in ((positive, "positive pairs", OKABE_ITO[1]),
                                 (negative, "random pairs (negatives)", OKABE_ITO[5])):
        values = np.sort(np.asarray(values, dtype=np.float64))
        ax.plot(np.linspace(0, 1, len(values)), values, color=colour, label=f"{name} ({len(values)})")
    if n_samples and n_samples > 1:
        ax.axhline(math.sqrt(2 * n_samples / (n_samples - 1)), color="grey", ls="--", lw=1,
                   label="regular simplex")
    ax.set_ylim(0, 2)
    ax.set_xlabel("rank of the pair (fraction of the sample)")
    ax.set_ylabel("distance between unit rows")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return figure
