"""Publication figures from results (matplotlib, no pyplot state): compute once, plot from JSON.

Every function takes a :class:`~geometry_probe.Results` (or what it holds) and returns a
``matplotlib.figure.Figure`` sized for a paper column (3.3 in wide), drawn with the
colour-blind-safe Okabe–Ito palette. :func:`write_figures` saves every figure the results
support as PDF, SVG or PNG, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geometry_probe._atomic import atomic_open, check_output_path
from geometry_probe.exceptions import InvalidInputError, OutputError
from geometry_probe.result import Results

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
COLUMN = (3.3, 2.4)
FORMATS = ("pdf", "svg", "png")


def _figure(size: tuple[float, float] = COLUMN) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    fig.set_dpi(150)
    return fig


def isotropic_spectrum(n_samples: int, n_features: int, total: float, *, seed: int = 0) -> np.ndarray:
    """Covariance eigenvalues of a seeded isotropic Gaussian of the same N × D, scaled to ``total``
    variance (the null baseline drawn behind every spectrum; at most 4096 rows are simulated)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((min(n_samples, 4096), n_features))
    eig = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1]
    return eig * total / eig.sum()


def plot_spectrum(results: Results) -> Any:
    """Covariance eigenvalues on a log scale against the isotropic baseline of the same N, D, trace."""
    eig = np.asarray(results["spectrum"].arrays["covariance_eigenvalues"], dtype=float)
    n = int(results.meta.get("n_samples", eig.size + 1))
    fig = _figure()
    ax = fig.add_subplot()
    ranks = np.arange(1, eig.size + 1)
    ax.semilogy(ranks, np.where(eig > 0, eig, np.nan), color=OKABE_ITO[0], label="embeddings")
    ax.semilogy(ranks, isotropic_spectrum(n, eig.size, float(eig.sum())), color=OKABE_ITO[1], ls="--",
                label="isotropic Gaussian, same N, D, trace")
    scalars = results["spectrum"].scalars
    ax.set_title(f"eigenvalue spectrum (effective rank {scalars.get('effective_rank', np.nan):.1f})", fontsize=8)
    ax.set_xlabel("rank")
    ax.set_ylabel("covariance eigenvalue")
    ax.legend(fontsize=6)
    return fig


def plot_cosine_histogram(results: Results) -> Any:
    """Pairwise cosine histograms (all, positive, negative pairs) with the random-pair density on S^{D−1}."""
    arrays = results["contrastive"].arrays
    edges = np.asarray(arrays["cosine_hist_edges"], dtype=float)
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = _figure()
    ax = fig.add_subplot()
    for key, label, colour in (("cosine_hist_all", "all pairs", OKABE_ITO[0]),
                               ("cosine_hist_pos", "positive pairs", OKABE_ITO[2]),
                               ("cosine_hist_neg", "negative pairs", OKABE_ITO[3])):
        if key in arrays:
            counts = np.asarray(arrays[key], dtype=float)
            ax.step(centres, counts / max(counts.sum(), 1) / width, where="mid", color=colour, label=label)
    D = int(results.meta.get("n_features", 2))
    ax.plot(centres, random_pair_density(centres, D), color="k", ls=":", label=f"uniform on S^{D - 1}")
    ax.set_title("pairwise cosine similarity", fontsize=8)
    ax.set_xlabel("cosine")
    ax.set_ylabel("density")
    ax.legend(fontsize=6)
    return fig


def random_pair_density(t: np.ndarray, n_features: int) -> np.ndarray:
    r"""Density of the cosine of two independent uniform points on :math:`S^{D-1}`:
    :math:`\propto (1-t^2)^{(D-3)/2}`, normalised on [−1, 1] (numerically, in log space)."""
    from scipy.special import betaln

    D = max(n_features, 2)
    log_norm = betaln(0.5, (D - 1) / 2)
    with np.errstate(divide="ignore"):
        return np.exp((D - 3) / 2 * np.log(np.clip(1 - t**2, 1e-300, None)) - log_norm)


def plot_class_cosine(results: Results, *, centred: bool = False) -> Any:
    """Heatmap of the cosine between class means, classes in label order, names from ``meta``."""
    key = "class_mean_cosine_centred" if centred else "class_mean_cosine"
    matrix = np.asarray(results["orthogonality"].arrays[key], dtype=float)
    names = list(results.meta.get("classes", range(matrix.shape[0])))[: matrix.shape[0]]
    fig = _figure((3.3, 3.0))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    if len(names) <= 30:
        ax.set_xticks(range(len(names)), [str(n) for n in names], rotation=90, fontsize=5)
        ax.set_yticks(range(len(names)), [str(n) for n in names], fontsize=5)
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine")
    ax.set_title(("centred " if centred else "") + "class-mean cosine", fontsize=8)
    return fig


def plot_scalar_summary(results: Results) -> Any:
    """Horizontal bars of each finding's value against its warn/fail thresholds and null baseline."""
    findings = [f for f in results.findings if np.isfinite(f.get("value", np.nan))]
    fig = _figure((3.3, 0.35 * max(len(findings), 1) + 0.8))
    ax = fig.add_subplot()
    colours = {"ok": OKABE_ITO[2], "warn": OKABE_ITO[1], "fail": OKABE_ITO[3]}
    for row, finding in enumerate(findings):
        ax.barh(row, finding["value"], color=colours.get(finding["verdict"], "grey"))
        ax.plot([finding["baseline"]], [row], marker="|", color="k", ms=10)
        ax.plot([finding["threshold"]["fail"]], [row], marker="x", color=OKABE_ITO[3], ms=5)
    ax.set_yticks(range(len(findings)), [f["name"] for f in findings], fontsize=6)
    ax.set_title("collapse verdicts (| null baseline, x fail threshold)", fontsize=7)
    return fig


def plot_trajectory(trajectory: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """Metric curves over checkpoints with each collapse onset marked by a vertical line."""
    steps = [c["step"] for c in trajectory["checkpoints"]]
    fig = _figure((3.3, 1.4 * len(keys) + 0.6))
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key, colour in zip(axes, keys, OKABE_ITO):
        ax.plot(steps, [c["scalars"].get(key, np.nan) for c in trajectory["checkpoints"]], marker="o", ms=3,
                color=colour)
        ax.set_ylabel(key.split("/")[-1], fontsize=7)
        for name, onset in trajectory.get("onsets", {}).items():
            ax.axvline(onset["step"], color=OKABE_ITO[3], ls="--", lw=0.8, label=f"{name} onset")
    axes[0].legend(fontsize=6)
    axes[-1].set_xlabel("step")
    return fig


def plot_projection(results: Results) -> Any:
    """The stored 2-D map coloured by label, with a legend of class names (from ``meta``)."""
    proj = results["projection"]
    coords = np.asarray(proj.arrays["coords"], dtype=float)
    labels = proj.arrays.get("labels")
    names = list(results.meta.get("classes", []))
    fig = _figure((3.3, 3.0))
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=2, color=OKABE_ITO[0], linewidths=0)
    else:
        codes = np.asarray(labels, dtype=int)
        for code in np.unique(codes):
            mask = codes == code
            name = names[code] if code < len(names) else str(code)
            ax.scatter(coords[mask, 0], coords[mask, 1], s=2, linewidths=0, label=name,
                       color=OKABE_ITO[code % len(OKABE_ITO)] if np.unique(codes).size <= 8 else None)
        if np.unique(codes).size <= 20:
            ax.legend(fontsize=5, markerscale=3, ncol=2, frameon=False)
    params = proj.params
    ax.set_title(f"{params.get('method', '')} map ({params.get('n_shown')} of {params.get('n_total')} rows, "
                 f"trustworthiness {proj.scalars.get('trustworthiness', np.nan):.2f})", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


FIGURES: dict[str, tuple[str, Callable[[Results], Any]]] = {
    "spectrum": ("spectrum", plot_spectrum),
    "cosine_histogram": ("contrastive", plot_cosine_histogram),
    "class_mean_cosine": ("orthogonality", plot_class_cosine),
    "verdicts": ("", plot_scalar_summary),
    "projection": ("projection", plot_projection),
}


def available_figures(results: Results) -> list[str]:
    """Names of the figures these results hold the data for."""
    return [name for name, (needs, _) in FIGURES.items()
            if (needs == "" and results.findings) or (needs and needs in results)]


def write_figures(results: Results, folder: str | os.PathLike[str], *, fmt: str = "pdf") -> list[Path]:
    """Save every available figure to ``folder/<name>.<fmt>`` (atomically); return the paths."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"format: got {fmt!r}; choose one of {list(FORMATS)}.")
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{folder}: not a folder; create it first.")
    written = []
    for name in available_figures(results):
        path = check_output_path(folder / f"{name}.{fmt}")
        fig = FIGURES[name][1](results)
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=fmt)
        written.append(path)
    return written
