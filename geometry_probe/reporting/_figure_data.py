"""What each figure shows, prepared once from results for both backends (matplotlib and plotly).

Every function here reads a :class:`~geometry_probe.Results` (or a trajectory dict) and returns
plain NumPy data, titles and colours; :mod:`.static` and :mod:`.interactive` only draw it. The
palette is Okabe–Ito (colour-blind safe); more than eight classes get evenly spaced viridis
colours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geometry_probe.exceptions import InvalidInputError
from geometry_probe.projection import stratified_sample
from geometry_probe.reporting.figure_style import OKABE_ITO
from geometry_probe.result import Results
from geometry_probe.trajectory import STEP_UNITS, step_unit

VERDICT_COLOURS = {"ok": OKABE_ITO[2], "warn": OKABE_ITO[1], "fail": OKABE_ITO[3]}
_VIRIDIS = ("#440154", "#482878", "#3E4A89", "#31688E", "#26828E", "#1F9E89", "#35B779", "#6DCD59",
            "#B4DE2C", "#FDE725")


@dataclass(frozen=True)
class Line:
    """One curve: ``y`` against ``x``; ``style`` is "solid", "dashed", "dotted" or "step";
    ``math``, for a name that is ours, the same name as matplotlib mathtext (``$S^{15}$``)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    colour: str
    style: str = "solid"
    math: str | None = None


@dataclass(frozen=True)
class LinePlot:
    """Curves sharing one pair of axes."""

    title: str
    xlabel: str
    ylabel: str
    lines: tuple[Line, ...]
    log_y: bool = False


@dataclass(frozen=True)
class Heatmap:
    """A C × C matrix over classes ``names`` (rows and columns in the same order)."""

    title: str
    matrix: np.ndarray
    names: tuple[str, ...]
    zmin: float
    zmax: float
    colourbar: str
    diverging: bool


@dataclass(frozen=True)
class VerdictBar:
    """One finding: its value against its null baseline and fail threshold."""

    name: str
    verdict: str
    value: float
    baseline: float
    fail: float
    colour: str
    warn: float = np.nan
    higher_is_worse: bool = True

    def limits(self) -> tuple[float, float]:
        """The x range a panel of this finding shows: value, baseline and thresholds, padded."""
        points = [v for v in (self.value, self.baseline, self.warn, self.fail) if np.isfinite(v)]
        low, high = min(points), max(points)
        pad = 0.15 * (high - low) if high > low else 0.1 * max(abs(high), 1e-3)
        return low - pad, high + pad


@dataclass(frozen=True)
class Panel:
    """One metric over checkpoints."""

    key: str
    label: str
    values: np.ndarray
    colour: str


@dataclass(frozen=True)
class Trajectory:
    """Metric panels over checkpoint steps, with collapse onsets ``(finding, step)``; ``unit`` is
    what a step counts: "epoch", "step" or "checkpoint"."""

    steps: np.ndarray
    panels: tuple[Panel, ...]
    onsets: tuple[tuple[str, float], ...]
    unit: str = "checkpoint"


@dataclass(frozen=True)
class ScatterGroup:
    """The points of one class in a 2-D map."""

    name: str
    x: np.ndarray
    y: np.ndarray
    colour: str


@dataclass(frozen=True)
class Map:
    """A 2-D map by class, ``n_shown`` of the ``n_total`` embedded rows."""

    title: str
    groups: tuple[ScatterGroup, ...]
    n_shown: int
    n_total: int


def isotropic_spectrum(n_samples: int, n_features: int, total: float, *, seed: int = 0) -> np.ndarray:
    r"""Covariance eigenvalues of a seeded isotropic Gaussian of the same N × D, scaled to ``total``
    variance (the null baseline drawn behind every spectrum; at most 4096 rows are simulated).

    The rows are not drawn: for ``m`` rows the non-zero eigenvalues of the centred scatter matrix
    are those of a Wishart matrix of size ``k = min(m − 1, D)`` with ``f = max(m − 1, D)`` degrees of
    freedom, sampled exactly as those of :math:`BB^\top` for the bidiagonal ``B`` of Dumitriu and
    Edelman (2002): :math:`\chi_{f-i}` on the diagonal, :math:`\chi_{k-1-i}` below it. Time and memory
    are O(k²) and O(k) however wide the embeddings; the other D − k eigenvalues are zeros.

    Examples
    --------
    >>> spectrum = isotropic_spectrum(100, 200_000, 1.0)
    >>> spectrum.shape, int((spectrum > 0).sum()), round(float(spectrum.sum()), 6)
    ((200000,), 99, 1.0)
    """
    from scipy.linalg import eigvalsh_tridiagonal

    rng = np.random.default_rng(seed)
    dof = min(n_samples, 4096) - 1
    size, freedom = min(dof, n_features), max(dof, n_features)
    eig = np.zeros(n_features)
    if size < 1:
        return eig
    diagonal = np.sqrt(rng.chisquare(freedom - np.arange(size)))
    below = np.sqrt(rng.chisquare(np.arange(size - 1, 0, -1))) if size > 1 else np.zeros(0)
    tridiagonal = (diagonal**2 + np.concatenate([[0.0], below**2]), diagonal[:-1] * below)
    eig[:size] = np.sort(np.clip(eigvalsh_tridiagonal(*tridiagonal), 0.0, None))[::-1]
    return eig * total / eig.sum()


def random_pair_density(t: np.ndarray, n_features: int) -> np.ndarray:
    r"""Density of the cosine of two independent uniform points on :math:`S^{D-1}`:
    :math:`\propto (1-t^2)^{(D-3)/2}`, normalised on [−1, 1] (numerically, in log space)."""
    from scipy.special import betaln

    D = max(n_features, 2)
    log_norm = betaln(0.5, (D - 1) / 2)
    with np.errstate(divide="ignore"):
        return np.exp((D - 3) / 2 * np.log(np.clip(1 - t**2, 1e-300, None)) - log_norm)


def class_colours(n: int) -> tuple[str, ...]:
    """``n`` colours: Okabe–Ito up to eight, else evenly spaced along viridis."""
    if n <= len(OKABE_ITO):
        return OKABE_ITO[:n]
    anchors = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in _VIRIDIS], dtype=float)
    where = np.linspace(0, len(_VIRIDIS) - 1, n)
    rgb = [np.interp(where, np.arange(len(_VIRIDIS)), anchors[:, k]) for k in range(3)]
    return tuple("#{:02X}{:02X}{:02X}".format(*(int(round(c[i])) for c in rgb)) for i in range(n))


def _result(results: Results, name: str) -> Any:
    if name not in results:
        raise InvalidInputError(f"this figure needs the {name!r} analyzer; these results hold {sorted(results)}.")
    return results[name]


def _class_names(results: Results, n: int) -> tuple[str, ...]:
    names = [str(c) for c in results.meta.get("classes", [])]
    return tuple(names[i] if i < len(names) else str(i) for i in range(n))


def spectrum(results: Results) -> LinePlot:
    """Covariance eigenvalues (log scale; zeros left out) against the isotropic baseline."""
    result = _result(results, "spectrum")
    eig = np.asarray(result.arrays["covariance_eigenvalues"], dtype=float)
    n = int(results.meta.get("n_samples", eig.size + 1))
    ranks = np.arange(1, eig.size + 1, dtype=float)
    erank = result.scalars.get("effective_rank", np.nan)
    return LinePlot(
        title=f"eigenvalue spectrum (effective rank {erank:.1f})", xlabel="index i (largest eigenvalue first)",
        ylabel="eigenvalue λ (squared units)",
        lines=(Line("embeddings", ranks, np.where(eig > 0, eig, np.nan), OKABE_ITO[0]),
               Line("isotropic Gaussian, same N, D, trace", ranks,
                    isotropic_spectrum(n, eig.size, float(np.nansum(eig))), OKABE_ITO[1], "dashed")),
        log_y=True)


COSINE_SERIES = (("cosine_hist_all", "all pairs", OKABE_ITO[0]), ("cosine_hist_pos", "positive pairs", OKABE_ITO[2]),
                 ("cosine_hist_neg", "negative pairs", OKABE_ITO[3]))


def cosine_histogram(results: Results) -> LinePlot:
    """Pair-cosine densities (all, positive, negative pairs) and the random-pair density on S^{D−1}."""
    arrays = _result(results, "contrastive").arrays
    edges = np.asarray(arrays["cosine_hist_edges"], dtype=float)
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    lines = []
    for key, label, colour in COSINE_SERIES:
        if key in arrays:
            counts = np.asarray(arrays[key], dtype=float)
            lines.append(Line(label, centres, counts / max(counts.sum(), 1) / width, colour, "step"))
    D = int(results.meta.get("n_features", 2))
    lines.append(Line(f"uniform on S^{D - 1}", centres, random_pair_density(centres, D), "#000000", "dotted",
                      math=f"uniform on $S^{{{D - 1}}}$"))
    return LinePlot("pairwise cosine similarity", "cosine similarity", "density (per unit cosine)", tuple(lines))


def k_occurrence(results: Results) -> LinePlot:
    """Share of rows that are among the k nearest neighbours of j other rows, N_k = j, against the
    no-hub null: each of the N − 1 other rows picks a row with probability k/(N − 1), so
    N_k ~ Binomial(N − 1, k/(N − 1)), close to Poisson(k)."""
    from scipy.stats import binom

    result = _result(results, "knn")
    counts = np.asarray(result.arrays["knn_k_occurrence_hist"], dtype=float)
    k = int(result.params.get("k", 1))
    n = int(counts.sum())
    occurrence = np.arange(max(counts.size, min(3 * k, n)), dtype=float)      # N_k < N: a row has N − 1 others
    observed = np.zeros(occurrence.size)
    observed[: counts.size] = counts / max(n, 1)
    null = binom.pmf(occurrence, max(n - 1, 1), min(k / max(n - 1, 1), 1.0))
    skew = result.scalars.get("hubness_skew", np.nan)
    return LinePlot(f"k-occurrence, k = {k} (hubness skewness {skew:.2f})", "N_k (times among others' k nearest)",
                    "share of rows", (Line("embeddings", occurrence, observed, OKABE_ITO[0], "step"),
                                      Line("no hubs: Binomial(N−1, k/(N−1))", occurrence, null, "#000000", "dotted")))


def similarity_order(matrix: np.ndarray) -> np.ndarray:
    """Class order that puts similar classes side by side: leaves of an average-linkage tree on
    1 − similarity with optimal leaf ordering; label order when there are fewer than three
    classes or missing entries."""
    C = matrix.shape[0]
    if C < 3 or not np.all(np.isfinite(matrix)):
        return np.arange(C)
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    distance = np.clip(1.0 - (matrix + matrix.T) / 2, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    return leaves_list(linkage(squareform(distance, checks=False), "average", optimal_ordering=True))


def class_cosine(results: Results, *, centred: bool = False, ordered: bool = True) -> Heatmap:
    """Cosine between class means, classes ordered by similarity (or by label with ``ordered=False``)."""
    key = "class_mean_cosine_centred" if centred else "class_mean_cosine"
    arrays = _result(results, "orthogonality").arrays
    if key not in arrays:
        raise InvalidInputError(f"the orthogonality result has no {key!r} (too many classes were analysed).")
    matrix = np.asarray(arrays[key], dtype=float)
    order = similarity_order(matrix) if ordered else np.arange(matrix.shape[0])
    names = _class_names(results, matrix.shape[0])
    return Heatmap(("centred " if centred else "") + "class-mean cosine" + (", similar classes adjacent" if ordered
                                                                            else ""),
                   matrix[np.ix_(order, order)], tuple(names[i] for i in order), -1.0, 1.0, "cosine", True)


def sample_cosine(results: Results) -> Heatmap:
    """Cosine between the analysed rows themselves (kept by ``contrastive`` for small N), rows sorted
    by label so that classes form blocks; names are ``"<row> · <class>"`` (unique, for hover text)."""
    arrays = _result(results, "contrastive").arrays
    if "sample_cosine_matrix" not in arrays:
        raise InvalidInputError("the contrastive result has no sample cosine matrix (kept only for N <= 500).")
    matrix = np.asarray(arrays["sample_cosine_matrix"], dtype=float)
    order = np.asarray(arrays["sample_order"], dtype=int)
    if "sample_labels" in arrays:
        codes = np.asarray(arrays["sample_labels"], dtype=int)
        classes = _class_names(results, int(codes.max()) + 1 if codes.size else 0)
        names = tuple(f"{row} · {classes[code]}" for row, code in zip(order, codes))
    else:
        names = tuple(str(row) for row in order)
    return Heatmap(f"cosine between the {matrix.shape[0]} rows" + (", sorted by label" if "sample_labels" in arrays
                                                                    else ""),
                   matrix, names, -1.0, 1.0, "cosine", True)


def simo_matrices(results: Results) -> tuple[Heatmap, Heatmap]:
    """SimO's class-mean matrices: squared dot products (μ_c·μ_c')² and squared distances ‖μ_c − μ_c'‖²,
    both in the order of the class-mean cosine heatmap."""
    arrays = _result(results, "orthogonality").arrays
    if "simo_sqdot" not in arrays:
        raise InvalidInputError("the orthogonality result has no SimO matrices (too many classes were analysed).")
    cosine = np.asarray(arrays["class_mean_cosine"], dtype=float)
    order = similarity_order(cosine)
    names = _class_names(results, cosine.shape[0])
    ordered_names = tuple(names[i] for i in order)
    maps = []
    for key, title, label in (("simo_sqdot", "SimO (μ_c·μ_c')²", "squared dot"),
                              ("simo_distance", "SimO ‖μ_c − μ_c'‖²", "squared distance")):
        matrix = np.asarray(arrays[key], dtype=float)[np.ix_(order, order)]
        top = float(np.nanmax(matrix)) if np.any(np.isfinite(matrix)) else 1.0
        maps.append(Heatmap(title, matrix, ordered_names, 0.0, top if top > 0 else 1.0, label, False))
    return maps[0], maps[1]


def verdicts(results: Results) -> tuple[VerdictBar, ...]:
    """Findings with a finite value, each with its baseline, thresholds, verdict colour and which
    side fails (:data:`geometry_probe.diagnosis.HIGHER_IS_WORSE`; for a finding it does not
    know, the side of the fail threshold away from the baseline)."""
    return tuple(VerdictBar(f["name"], f["verdict"], float(f["value"]), _number(f.get("baseline")),
                            _number((f.get("threshold") or {}).get("fail")),
                            VERDICT_COLOURS.get(f["verdict"], "#808080"),
                            _number((f.get("threshold") or {}).get("warn")), _higher_is_worse(f))
                 for f in results.findings if f.get("value") is not None and np.isfinite(f["value"]))


def _higher_is_worse(finding: Mapping[str, Any]) -> bool:
    from geometry_probe.diagnosis import HIGHER_IS_WORSE, THRESHOLDS

    if finding["name"] in THRESHOLDS:
        return finding["name"] in HIGHER_IS_WORSE
    fail, baseline = _number((finding.get("threshold") or {}).get("fail")), _number(finding.get("baseline"))
    return not (np.isfinite(fail) and np.isfinite(baseline) and fail < baseline)


def _number(value: Any) -> float:
    """A JSON number as a float; a missing value or ``null`` (how NaN is saved) as NaN."""
    return np.nan if value is None else float(value)


TRAJECTORY_KEYS = ("spectrum/effective_rank", "spectrum/rankme", "contrastive/uniformity", "neural_collapse/nc1",
                   "orthogonality/class_mean_abs_cosine")


def trajectory_keys(trajectory: Mapping[str, Any]) -> list[str]:
    """The headline metrics a trajectory holds (:data:`TRAJECTORY_KEYS`), else its first four."""
    present = [key for c in trajectory["checkpoints"] for key in c["scalars"]]
    headline = [key for key in TRAJECTORY_KEYS if key in present]
    return headline or list(dict.fromkeys(present))[:4]


def trajectory(trajectory: Mapping[str, Any], keys: Sequence[str]) -> Trajectory:
    """Values of ``keys`` over the checkpoints (NaN where a checkpoint lacks one) and onsets."""
    checkpoints = trajectory["checkpoints"]
    if not keys:
        raise InvalidInputError("plot_trajectory: name at least one metric key (e.g. 'spectrum/rankme').")
    palette = class_colours(len(keys))
    panels = tuple(Panel(key, key.split("/")[-1],
                         np.array([c["scalars"].get(key, np.nan) for c in checkpoints], dtype=float), colour)
                   for key, colour in zip(keys, palette))
    onsets = tuple((name, float(onset["step"])) for name, onset in trajectory.get("onsets", {}).items())
    return Trajectory(np.array([c["step"] for c in checkpoints], dtype=float), panels, onsets,
                      trajectory_unit(trajectory))


def trajectory_unit(trajectory: Mapping[str, Any]) -> str:
    """What the trajectory's steps count: its ``step_unit`` ("epoch", "step", "checkpoint"), or,
    for a file written before that field, what the checkpoints' names say
    (:func:`geometry_probe.trajectory.step_unit`).

    Examples
    --------
    >>> trajectory_unit({"step_unit": "epoch", "checkpoints": []})
    'epoch'
    >>> trajectory_unit({"checkpoints": [{"path": "step_10.npy"}]}), trajectory_unit({"checkpoints": [{}]})
    ('step', 'checkpoint')
    """
    unit = trajectory.get("step_unit")
    if unit in STEP_UNITS:
        return str(unit)
    return step_unit(str(c.get("path", "")) for c in trajectory["checkpoints"])


def projection(results: Results, *, max_points: int | None = None, random_state: int = 0) -> Map:
    """The stored 2-D map by class; above ``max_points`` a stratified (per-label) seeded subsample,
    the title saying how many of the embedded rows are shown."""
    result = _result(results, "projection")
    coords = np.asarray(result.arrays["coords"], dtype=float)
    labels = result.arrays.get("labels")
    codes = np.zeros(len(coords), dtype=int) if labels is None else np.asarray(labels, dtype=int)
    if max_points is not None and max_points < len(coords):
        keep = stratified_sample(None if labels is None else codes, len(coords), max_points, random_state=random_state)
        coords, codes = coords[keep], codes[keep]
    present = np.unique(codes)
    names = _class_names(results, int(present.max()) + 1 if present.size else 0)
    palette = class_colours(present.size)
    groups = tuple(ScatterGroup("points" if labels is None else names[code], coords[codes == code, 0],
                                coords[codes == code, 1], colour) for code, colour in zip(present, palette))
    params = result.params
    n_total = int(params.get("n_total", len(coords)))
    trust = result.scalars.get("trustworthiness", np.nan)
    title = (f"{params.get('method', '')} map, showing {len(coords)} of {n_total} points "
             f"(trustworthiness {trust:.2f})")
    return Map(title, groups, len(coords), n_total)


def _has_orthogonality_array(results: Results, key: str) -> bool:
    return "orthogonality" in results and key in results["orthogonality"].arrays


AVAILABLE: dict[str, Callable[[Results], bool]] = {
    "spectrum": lambda r: "spectrum" in r,
    "cosine_histogram": lambda r: "contrastive" in r,
    "k_occurrence": lambda r: "knn" in r and "knn_k_occurrence_hist" in r["knn"].arrays,
    "class_mean_cosine": lambda r: _has_orthogonality_array(r, "class_mean_cosine"),
    "simo": lambda r: _has_orthogonality_array(r, "simo_sqdot"),
    "sample_cosine": lambda r: "contrastive" in r and "sample_cosine_matrix" in r["contrastive"].arrays,
    "verdicts": lambda r: bool(verdicts(r)),
    "projection": lambda r: "projection" in r,
}


def available_figures(results: Results) -> list[str]:
    """Names of the figures (keys of both backends' ``FIGURES``) these results hold the data for."""
    return [name for name, has_data in AVAILABLE.items() if has_data(results)]
