r"""Neural collapse NC1–NC4 (Papyan, Han & Donoho 2020) and variants, from streamed class statistics.

Conventions (metrics-reference §4.1, §4.9), the same everywhere in this module:

* features are used as given (not centred, not normalised);
* classes without samples are dropped; C below is the number of classes *with* samples;
* global mean :math:`\mu_G` = mean of the class means (``global_mean="class"``, Papyan
  et al.'s code) or the sample mean (``"sample"``); identical for balanced classes;
* within-class covariance :math:`\Sigma_W = \frac1N \sum_i (h_i-\mu_{y_i})(h_i-\mu_{y_i})^\top`,
  averaged over all N samples (sample-weighted, biased, as all three reference codes);
* between-class covariance :math:`\Sigma_B = \frac1C \sum_c (\mu_c-\mu_G)(\mu_c-\mu_G)^\top`
  (divide by C, not C−1);
* per-class variance :math:`\mathrm{Var}_c = \frac{1}{n_c}\sum_{i: y_i=c}\lVert h_i-\mu_c\rVert^2`
  (biased, the trace of the class covariance), used by CDNV.

Everything is float64. The statistics come from
:class:`~geometry_probe.stats.ClassMoments` (one streaming pass); NC4 and the
nearest-class-centre accuracy need the final class means, so they take a second look at
the rows (:class:`DecisionRule`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geometry_probe._validation import check_choice, check_embeddings, encode_labels
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import class_geometry as G
from geometry_probe.functional.class_pairs import (
    MATRIX_MAX_CLASSES,
    cosine_moments,
    gram_distance,
    pair_estimates,
)
from geometry_probe.stats import (
    DEFAULT_PRECISION,
    STATE_DTYPE,
    ClassMoments,
    ClassNorms,
    SumStats,
    as_compute,
    compute_dtype,
)

GLOBAL_MEANS = ("class", "sample")
PINV_RTOL = 1e-10
COINCIDENT_RTOL = 1e-12
DECISION_CHUNK_BYTES = 32 * 2**20
OFFSET_RATIO = 10.0


@dataclass(frozen=True)
class ClassStatistics:
    """Class means, global mean and covariances of the classes that have samples (float64 NumPy).

    Attributes
    ----------
    classes : ndarray of shape (C,)
        Label codes of the classes with at least one sample, ascending.
    counts : ndarray of shape (C,)
    centred_means : ndarray of shape (C, D)
        :math:`\\tilde M = [\\mu_c - \\mu_G]`. The class means themselves (:attr:`means`) are made
        from it only when asked for: with C = 10⁵ classes each (C, D) array counts.
    global_mean : ndarray of shape (D,)
        :math:`\\mu_G` under the chosen convention.
    within_cov : ndarray of shape (D, D) or None
        :math:`\\Sigma_W`, averaged over all N samples; None when built from
        :class:`~geometry_probe.stats.ClassNorms` (wide data: NC1 then needs
        :func:`nc1_directions` and a second pass).
    class_variances : ndarray of shape (C,)
        :math:`\\mathrm{Var}_c` (biased), clipped at 0 against round-off; exactly 0 for
        single-sample classes.
    n_slots : int
        Number of label codes, including classes without samples.
    global_mean_kind : {"class", "sample"}
    """

    classes: np.ndarray
    counts: np.ndarray
    centred_means: np.ndarray
    global_mean: np.ndarray
    within_cov: np.ndarray | None
    class_variances: np.ndarray
    n_slots: int
    global_mean_kind: str

    @classmethod
    def of(cls, moments: ClassMoments | ClassNorms, *, global_mean: str = "class") -> ClassStatistics:
        """Statistics from summed :class:`~geometry_probe.stats.ClassMoments` (or ``ClassNorms``: no Σ_W)."""
        check_choice(global_mean, GLOBAL_MEANS, name="global_mean")
        n = moments.n.detach().cpu().numpy()
        present = np.flatnonzero(n > 0)
        counts = n[present]
        s1 = moments.s1.detach().cpu().numpy()
        sums = s1 if present.size == n.size else s1[present]       # a view when every class has samples
        means = sums / counts[:, None]                             # one (C, D) array: C may be 10⁵
        N = float(counts.sum())
        if global_mean == "class" or not present.size:
            mu_G = means.mean(axis=0) if present.size else np.zeros(means.shape[1])
        else:
            mu_G = counts @ means / N
        within = None
        if isinstance(moments, ClassMoments):              # Σ x xᵀ − Σ_c n_c μ_c μ_cᵀ, symmetrised, / N
            scatter = moments.s2.detach().cpu().numpy() - sums.T @ means
            within = (scatter + scatter.T) / (2 * max(N, 1.0))
        sq = moments.sq.detach().cpu().numpy()[present]
        variances = np.clip(sq / counts - np.einsum("ij,ij->i", means, means), 0.0, None)
        variances[counts < 2] = 0.0                      # exact, not sq/n - ‖μ‖² round-off
        means -= mu_G                                    # centred in place: one (C, D) array is kept
        return cls(classes=present, counts=counts, centred_means=means, global_mean=mu_G, within_cov=within,
                   class_variances=variances, n_slots=moments.n_classes, global_mean_kind=global_mean)

    @property
    def n_classes(self) -> int:
        """C: classes with samples."""
        return int(self.classes.size)

    @property
    def n_samples(self) -> int:
        """N."""
        return int(self.counts.sum())

    @property
    def n_features(self) -> int:
        """D."""
        return int(self.means.shape[1])

    @property
    def means(self) -> np.ndarray:
        """:math:`\\mu_c`, shape (C, D): made from :attr:`centred_means` at each use (a temporary, not kept)."""
        return self.centred_means + self.global_mean


# --- NC1 ------------------------------------------------------------------------------------------


def nc1_directions(stats: ClassStatistics, *, rtol: float = PINV_RTOL) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of Σ_B kept in NC1's pseudo-inverse: ``(V, λ)``, V of shape (r, D), λ of shape (r,).

    From the SVD of the (C, D) centred means (Σ_B = V diag(s²/C) Vᵀ), so no D×D matrix is
    formed; r = 0 when C < 2 or Σ_B = 0. With more classes than features the SVD is taken of
    the (D, D) factor R of a QR decomposition (same singular values and right vectors,
    backward stable), built block by block (:func:`_r_factor`), so no (C, D) left factor or
    copy is formed for C up to 10⁵ or more.
    """
    C, D = stats.n_classes, stats.n_features
    if C < 2:
        return np.zeros((0, D)), np.zeros(0)
    M = stats.centred_means
    _, s, Vt = np.linalg.svd(_r_factor(M) if C > D else M, full_matrices=False)
    lam = s**2 / C
    if not lam[0] > 0:
        return np.zeros((0, D)), np.zeros(0)
    r = int(min(C - 1, D, np.sum(lam > rtol * lam[0])))
    return Vt[:r], lam[:r]


def _r_factor(M: np.ndarray, block: int = 8192) -> np.ndarray:
    """The R of a QR decomposition of a tall (C, D) ``M``, from blocks of rows (tall-skinny QR):
    :math:`R = \\mathrm{qr}([R_{prev}; M_{block}])` repeatedly, so the memory is one block, not a copy of M.
    :math:`M^\\top M = R^\\top R`, so R has M's singular values and right singular vectors."""
    R = np.zeros((0, M.shape[1]))
    for start in range(0, len(M), block):
        R = np.linalg.qr(np.concatenate([R, M[start:start + block]]), mode="r")
    return R


def nc1_from_stats(stats: ClassStatistics, *, rtol: float = PINV_RTOL,
                   projected_within: np.ndarray | None = None) -> tuple[float, int]:
    """NC1 and the rank r kept in the pseudo-inverse of Σ_B (see :func:`nc1`).

    ``projected_within`` gives :math:`v_k^\\top \\Sigma_W v_k` for the directions of
    :func:`nc1_directions` (the wide-data form, from a second pass:
    :math:`\\frac1N\\sum_i ((h_i-\\mu_{y_i})^\\top v_k)^2`); otherwise they come from ``stats.within_cov``.
    """
    V, lam = nc1_directions(stats, rtol=rtol)
    r = lam.size
    if r == 0:
        return math.nan, 0
    if projected_within is None:
        if stats.within_cov is None:
            return math.nan, r
        projected_within = np.sum((V @ stats.within_cov) * V, axis=1)   # v_kᵀ Σ_W v_k (a GEMM: 25x einsum's)
    return float(np.sum(projected_within / lam) / stats.n_classes), r


def nc1(X: Any, labels: Any, *, global_mean: str = "class", rtol: float = PINV_RTOL) -> float:
    r"""NC1, within-class variability collapse (Papyan et al., 2020), with the /C.

    .. math::

        \mathrm{NC1} = \frac{1}{C}\operatorname{Tr}\left(\Sigma_W \Sigma_B^{\dagger}\right),
        \qquad \Sigma_B^{\dagger} = \sum_{k \le r} \lambda_k^{-1} v_k v_k^\top

    in float64, with :math:`(\lambda_k, v_k)` the eigenpairs of :math:`\Sigma_B` and the
    rank cutoff :math:`r = \min(C-1, D, \#\{k: \lambda_k > \texttt{rtol}\cdot\lambda_1\})`.
    :math:`\Sigma_B` has rank at most C−1, so cutting at C−1 drops its round-off
    directions (what makes a float32 ``pinv`` blow up); the relative cutoff also drops
    directions that vanish because two class means coincide. Papyan et al.'s notebook
    omits the 1/C (its numbers are C times larger); see the module docstring for the
    covariance conventions.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Any type (ints, sparse ints, strings).
    global_mean : {"class", "sample"}, default="class"
        :math:`\mu_G` = mean of class means, or the sample mean.
    rtol : float, default=1e-10
        Relative eigenvalue cutoff of the pseudo-inverse.

    Returns
    -------
    float
        In [0, ∞); 0 when every class has collapsed to its mean. NaN for fewer than two
        classes or when all class means coincide (:math:`\Sigma_B = 0`).

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, "Prevalence of neural collapse during the
       terminal phase of deep learning training", PNAS 117(40), 2020, Fig. 6.

    Examples
    --------
    >>> from geometry_probe.datasets import make_simplex_etf
    >>> X, y = make_simplex_etf(n_classes=4, n_features=6, noise=0.0)
    >>> abs(round(nc1(X, y), 12))   # exactly 0 up to rounding (sign included)
    0.0
    """
    return nc1_from_stats(_statistics(X, labels, global_mean=global_mean), rtol=rtol)[0]


# --- CDNV and trace ratio -------------------------------------------------------------------------


def cdnv_from_stats(stats: ClassStatistics) -> tuple[float, int]:
    """Mean CDNV over class pairs and the number of pairs with coincident means (see :func:`cdnv`)."""
    C = stats.n_classes
    if C < 2:
        return math.nan, 0
    M = stats.centred_means
    sq = np.einsum("ij,ij->i", M, M)
    distances = G.off_diagonal(G.squared_distances(M))
    scale = G.off_diagonal(sq[:, None] + sq[None, :])
    coincident = int(np.sum(distances <= COINCIDENT_RTOL * scale))
    if coincident:
        return math.nan, coincident
    v = stats.class_variances
    return float(np.mean(G.off_diagonal(v[:, None] + v[None, :]) / (2.0 * distances))), 0


def pair_scalars(stats: ClassStatistics, *, seed: int = 0) -> tuple[dict[str, float], dict[str, str], int]:
    """CDNV and the NC2 pair metrics for more than :data:`~geometry_probe.functional.class_pairs.MATRIX_MAX_CLASSES`
    classes, without a C×C matrix: ``(scalars, how each was obtained, coincident pairs found)``.

    Same definitions as the C×C forms (:func:`cdnv`, :func:`~geometry_probe.functional.class_geometry.equiangularity`,
    ``max_angle_deviation``, ``etf_error``, ``orthogonal_frame_error``, ``hyperspherical_uniformity``):
    ``nc2_equiangular``, ``nc2_etf_error`` and ``nc2_of_error`` in closed form
    (:mod:`~geometry_probe.functional.class_pairs`); CDNV, ``nc2_equiangular_mean_abs`` and GNC2 exact over
    tiles up to 5·10⁷ pairs, seeded pair estimates above (their standard errors are returned as
    ``*_std_error`` scalars). GNC2's variance is E[L²] − E[L]² over the same pairs.
    """
    C = stats.n_classes
    M = stats.centred_means
    sq = np.einsum("ij,ij->i", M, M)
    norms = np.sqrt(sq)
    v = stats.class_variances
    with np.errstate(divide="ignore", invalid="ignore"):
        def distance2(d, i, j):
            return sq[i] + sq[j] - 2.0 * d

        def cdnv_pair(d, i, j):
            return (v[i] + v[j]) / (2.0 * distance2(d, i, j))

        def coincident(d, i, j):
            return (distance2(d, i, j) <= COINCIDENT_RTOL * (sq[i] + sq[j])).astype(np.float64)

        def deviation(d, i, j):
            return np.abs(np.clip(d / (norms[i] * norms[j]), -1, 1) + 1.0 / (C - 1))

        def log_energy(d, i, j):
            return -0.5 * np.log(np.clip(2.0 - 2.0 * np.clip(d / (norms[i] * norms[j]), -1, 1), 0.0, None))
        est = pair_estimates(M, {"cdnv": cdnv_pair, "coincident": coincident, "mean_abs": deviation,
                                 "log_energy": log_energy}, seed=seed)
    total = C * (C - 1) // 2
    found = int(round(est["coincident"].mean * est["coincident"].n_pairs))
    _, std = cosine_moments(M, seed=seed)
    scalars = {
        "cdnv": math.nan if found else est["cdnv"].mean,
        "nc2_equiangular": std,
        "nc2_equiangular_mean_abs": est["mean_abs"].mean,
        "nc2_etf_error": gram_distance(M, "etf", seed=seed),
        "nc2_of_error": gram_distance(stats.means, "of", seed=seed),
    }
    log = est["log_energy"]
    scalars["gnc2"] = max(log.second_moment - log.mean**2, 0.0) if np.isfinite(log.maximum) else math.nan
    if not est["cdnv"].exact:
        scalars.update(cdnv_std_error=est["cdnv"].std_error,
                       nc2_equiangular_mean_abs_std_error=est["mean_abs"].std_error)
    how = {
        "pair_metrics": f"{C:,} classes > {MATRIX_MAX_CLASSES}: no C x C matrix; cdnv, nc2_equiangular_mean_abs, "
                        f"gnc2: {est['cdnv'].describe(total)}",
        "pair_closed_forms": "nc2_equiangular from ||sum of unit means||^2 and ||U^T U||_F^2; nc2_etf_error, "
                             "nc2_of_error from Tr G, ||sum of means||^2 and ||M^T M||_F = ||G||_F (D x D)",
        "pair_seed": str(seed),
    }
    return scalars, how, found


def cdnv(X: Any, labels: Any) -> float:
    r"""Class-distance normalised variance (Galanti, György & Hutter, 2022), mean over class pairs.

    .. math::

        \mathrm{CDNV} = \frac{2}{C(C-1)} \sum_{i<j}
        \frac{\mathrm{Var}_i + \mathrm{Var}_j}{2\,\lVert \mu_i - \mu_j \rVert^2},
        \qquad \mathrm{Var}_c = \frac{1}{n_c}\sum_{y_k=c}\lVert h_k-\mu_c\rVert^2

    The variance is biased (divide by :math:`n_c`) and summed over dimensions, the
    distance squared and summed over dimensions, as in the authors' definition.
    Centring does not matter (differences of means).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)

    Returns
    -------
    float
        In [0, ∞); 0 at collapse. NaN for fewer than two classes, or when two class means
        coincide (the pair's CDNV would be infinite).

    References
    ----------
    .. [1] T. Galanti, A. György, M. Hutter, "On the role of neural collapse in transfer
       learning", ICLR 2022 (arXiv:2112.15121).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [0.0, -1.0], [4.0, 1.0], [4.0, -1.0]])
    >>> round(cdnv(X, [0, 0, 1, 1]), 12)   # Var = 1 each, distance² = 16: (1 + 1) / 32
    0.0625
    """
    return cdnv_from_stats(_statistics(X, labels))[0]


def trace_ratio_from_stats(stats: ClassStatistics) -> float:
    """Tr Σ_W / Tr Σ_B (see :func:`trace_ratio`)."""
    if stats.n_classes < 2:
        return math.nan
    within = float(np.sum(stats.counts * stats.class_variances) / stats.n_samples)
    between = float(np.einsum("ij,ij->", stats.centred_means, stats.centred_means) / stats.n_classes)
    return within / between if between > 0 else math.nan


def trace_ratio(X: Any, labels: Any, *, global_mean: str = "class") -> float:
    r"""Ratio of the within- to the between-class total variance (Tirer et al.'s NC1 "quotient").

    .. math::

        \frac{\operatorname{Tr}\Sigma_W}{\operatorname{Tr}\Sigma_B}

    with :math:`\operatorname{Tr}\Sigma_W = \frac1N\sum_c n_c \mathrm{Var}_c` and
    :math:`\operatorname{Tr}\Sigma_B = \frac1C\sum_c\lVert\mu_c-\mu_G\rVert^2`. For balanced
    classes it equals :math:`(N-C)/((C-1)\,\mathrm{CH})` with CH the Calinski–Harabasz score.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    global_mean : {"class", "sample"}, default="class"

    Returns
    -------
    float
        In [0, ∞); 0 at collapse. NaN for fewer than two classes or coincident class means.

    References
    ----------
    .. [1] T. Tirer, H. Huang, J. Niles-Weed, "Perturbation analysis of neural collapse",
       ICML 2023.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [0.0, -1.0], [4.0, 1.0], [4.0, -1.0]])
    >>> round(trace_ratio(X, [0, 0, 1, 1]), 12)   # Tr Σ_W = 1, Tr Σ_B = 4
    0.25
    """
    return trace_ratio_from_stats(_statistics(X, labels, global_mean=global_mean))


# --- NC3 ------------------------------------------------------------------------------------------


def nc3_from_stats(stats: ClassStatistics, weight: np.ndarray) -> float:
    """Papyan's squared self-duality distance; ``weight`` has one row per class *with samples*."""
    M = stats.centred_means
    w_norm, m_norm = np.linalg.norm(weight), np.linalg.norm(M)
    if stats.n_classes < 2 or not (w_norm > 0 and m_norm > 0):
        return math.nan
    return float(np.sum((weight / w_norm - M / m_norm) ** 2))


def nc3(X: Any, labels: Any, classifier: Any, *, global_mean: str = "class") -> float:
    r"""NC3, self-duality of classifier and centred class means, Papyan et al.'s squared form.

    .. math::

        \mathrm{NC3} = \left\lVert \frac{W}{\lVert W \rVert_F}
        - \frac{\tilde M}{\lVert \tilde M \rVert_F} \right\rVert_F^2,
        \qquad \tilde M = [\mu_c - \mu_G]_c

    Squared, and a direct matrix distance (variant ``papyan_squared``). Zhu et al.'s
    cross-Gram-to-ETF error and nc_toolbox's unsquared distance are different numbers.
    Rows of classes without samples are left out of both matrices.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    classifier : array-like of shape (n_classes, n_features), or a ``(weight, bias)`` pair
        Rows in the order of the sorted distinct labels. Files, mappings and ``nn.Linear``:
        read them with :func:`geometry_probe.classifier.load_classifier` and pass its ``weight``
        (kernels take arrays, they load nothing).
    global_mean : {"class", "sample"}, default="class"

    Returns
    -------
    float
        In [0, 4]; 0 when W is a positive multiple of :math:`\tilde M`. NaN for fewer
        than two classes or a zero W or :math:`\tilde M`.

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, PNAS 2020, Fig. 5.

    Examples
    --------
    >>> from geometry_probe.datasets import make_simplex_etf
    >>> X, y = make_simplex_etf(n_classes=4, n_features=6, noise=0.1)
    >>> M = np.stack([X[y == c].mean(0) for c in range(4)])
    >>> round(nc3(X, y, 2.0 * (M - M.mean(0))), 12)   # W ∝ centred means
    0.0
    """
    stats = _statistics(X, labels, global_mean=global_mean)
    weight, _ = _checked(classifier, stats)
    return nc3_from_stats(stats, weight[stats.classes])


# --- NC4 and nearest class centre (second pass) ---------------------------------------------------


@dataclass(frozen=True)
class DecisionCounts(SumStats):
    """Second-pass counts, additive over batches and ranks.

    Attributes
    ----------
    n : Tensor of shape ()
        Samples scored (all rows, or the seeded sample of :class:`DecisionRule`).
    ncc_hits : Tensor of shape ()
        Samples whose nearest class centre is their own class.
    agreements : Tensor of shape ()
        Samples where the linear classifier and the nearest class centre agree (0 without
        a classifier).
    within_projected : Tensor of shape (r,)
        :math:`\\sum_i ((h_i-\\mu_{y_i})^\\top v_k)^2` for the rule's ``directions`` (empty without).
    """

    n: Tensor
    ncc_hits: Tensor
    agreements: Tensor
    within_projected: Tensor


@dataclass(frozen=True)
class DecisionRule:
    """Frozen class centres (and optional classifier) that the second pass compares rows with.

    Nearest centre: :math:`\\arg\\min_c \\lVert h - \\mu_c \\rVert_2` over classes with
    samples, computed as :math:`\\arg\\max_c\\, (h-\\mu_G)^\\top\\tilde\\mu_c - \\lVert\\tilde\\mu_c\\rVert^2/2`
    with :math:`\\tilde\\mu_c = \\mu_c - \\mu_G`. Linear prediction:
    :math:`\\arg\\max_k\\, w_k^\\top h + b_k` over all rows of W, bias included. Both come from
    one GEMM of the rows against the stacked :math:`[\\tilde M; W]` plus a constant row
    ``offset``, in float64 (``precision="float64"``, the default: decisions as exact as the
    statistics) or, with ``precision="float32"``, in float32 for non-float64 rows. Ties go
    to the lowest class code.

    When the common offset of the data dwarfs its spread (:math:`\\lVert\\mu_G\\rVert` more
    than 10 times the total standard deviation), the rows are first shifted by :math:`\\mu_G`
    (``shift``), so float32 dot products keep the decision margins; otherwise they go into
    the GEMM as they are (no copy).

    Attributes
    ----------
    classes : Tensor of shape (C,)
        Codes of the classes with samples.
    A : Tensor of shape (C [+ K], D)
        Centred class means, then the classifier rows (float64).
    base : Tensor of shape (C [+ K],)
        Score of the origin: :math:`-\\mu_G^\\top\\tilde\\mu_c - \\lVert\\tilde\\mu_c\\rVert^2/2`, then
        :math:`b_k` (float64).
    shift : Tensor of shape (D,) or None
        :math:`\\mu_G` when rows are shifted before the GEMM.
    directions : Tensor of shape (r, D)
        Directions :math:`v_k` on which Σ_W is measured (NC1 of wide data; empty otherwise):
        they join the same GEMM.
    direction_offset : Tensor of shape (C, r)
        :math:`(\\mu_c - s)^\\top v_k`, ``s`` the shift (or 0).
    slot : Tensor of shape (n_slots,)
        Position of each label code among ``classes``.
    fraction : float
        Share of rows scored against the centres (1: all). Below 1 a seeded Bernoulli sample
        of the rows (:func:`row_uniforms`: a function of the global row index, so the same rows
        whatever the batches or the number of processes) is scored, so the counts estimate the accuracy
        and agreement with a binomial standard error; ``within_projected`` always uses every row.
    seed : int
    """

    classes: Tensor
    A: Tensor
    base: Tensor
    shift: Tensor | None
    directions: Tensor
    direction_offset: Tensor
    slot: Tensor
    fraction: float = 1.0
    seed: int = 0
    _operand_cache: dict[Any, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, stats: ClassStatistics, weight: np.ndarray | None = None, bias: np.ndarray | None = None,
           *, device: torch.device | str = "cpu", directions: np.ndarray | None = None, fraction: float = 1.0,
           seed: int = 0) -> DecisionRule:
        """The rule for the class means in ``stats`` (and a linear classifier ``weight`` (K, D), ``bias``
        (K,)), as tensors on ``device``; ``directions`` (r, D) also measures Σ_W along them (see
        :func:`nc1_from_stats`)."""
        M, mu_G = stats.centred_means, stats.global_mean
        sq = np.einsum("ij,ij->i", M, M)                          # no (C, D) temporaries: C may be 10⁵
        spread2 = float(np.sum(stats.counts * stats.class_variances) / stats.n_samples + sq.sum() / len(M))
        A, base = M, -(M @ mu_G) - 0.5 * sq
        if weight is not None:
            bias = np.zeros(len(weight)) if bias is None else bias
            A, base = np.concatenate([M, weight]), np.concatenate([base, bias])

        def tensor(a: np.ndarray) -> Tensor:
            return torch.as_tensor(a, dtype=STATE_DTYPE, device=device)
        far = float(mu_G @ mu_G) > OFFSET_RATIO**2 * spread2
        V = np.zeros((0, stats.n_features)) if directions is None else directions
        slot = np.zeros(stats.n_slots, dtype=np.int64)
        slot[stats.classes] = np.arange(stats.n_classes)
        offset = (stats.centred_means if far else stats.means) @ V.T if len(V) else np.zeros((stats.n_classes, 0))
        return cls(classes=torch.as_tensor(stats.classes, device=device),
                   A=tensor(np.concatenate([A, V]) if len(V) else A),
                   base=tensor(np.concatenate([base, np.zeros(len(V))])), shift=tensor(mu_G) if far else None,
                   directions=tensor(V), direction_offset=tensor(offset),
                   slot=torch.as_tensor(slot, device=device), fraction=fraction, seed=seed)

    def counts(self, X: Tensor, labels: Tensor, *, precision: str = DEFAULT_PRECISION,
               offset: int = 0) -> DecisionCounts:
        """Counts for the rows of ``X`` (shape (B, D)) with label codes ``labels``; ``offset`` is the index of the
        first row in the stream (it seeds the row sample when ``fraction < 1``).

        float32 rows at ``precision="float64"`` are scored by a float32 GEMM first; a row's decision is kept
        where the gap between its best and second-best score exceeds twice the rounding bound
        :math:`E = 2u\\,((D+3)\\lVert x\\rVert \\max_c\\lVert a_c\\rVert + 2\\max_c|b_c|)` (``u = 2^{-24}``,
        Higham's bound for a dot product, doubled), and recomputed in float64 otherwise: the same decisions
        as float64 scores, at float32 speed.
        """
        dtype = compute_dtype(X, precision)
        certify = dtype == torch.float64 and X.dtype == torch.float32
        operands = {dt: self._operands(dt) for dt in ((torch.float32, torch.float64) if certify else (dtype,))}
        C, r = self.classes.shape[0], self.directions.shape[0]
        K = self.A.shape[0] - C - r
        rows = max(1, DECISION_CHUNK_BYTES // (self.A.shape[0] * 8))
        within = torch.zeros(r, dtype=STATE_DTYPE, device=X.device)
        for start in range(0, X.shape[0] if r else 0, rows):                 # Σ_W along the directions: every row
            shift, A_T, _ = operands[dtype]
            chunk = as_compute(X[start:start + rows], precision)
            chunk = chunk if shift is None else chunk - shift
            y = labels[start:start + rows]
            projected = (chunk @ A_T[:, C + K:]).to(STATE_DTYPE) - self.direction_offset[self.slot[y.long()]]
            within += projected.square().sum(dim=0)
        if self.fraction < 1:
            chosen = row_uniforms(self.seed, offset, offset + X.shape[0]) < self.fraction
            keep = torch.as_tensor(chosen, device=X.device)
            X, labels = X[keep], labels[keep]
        scale = self._bound_scale(C, K) if certify else None
        hits = agree = X.new_zeros((), dtype=STATE_DTYPE)
        for start in range(0, X.shape[0], rows):
            part, y = X[start:start + rows], labels[start:start + rows]
            if scale is not None:
                winners, unsure = self._certified_winners(part, operands[torch.float32], C, K, scale)
                if bool(unsure.any()):
                    exact = self._winners(part[unsure], operands[torch.float64], C, K)
                    for w, e in zip(winners, exact):
                        w[unsure] = e
            else:
                winners = self._winners(part, operands[dtype], C, K)
            nearest = self.classes[winners[0]]
            hits = hits + (nearest == y).sum(dtype=STATE_DTYPE)
            if K:
                agree = agree + (winners[1] == nearest).sum(dtype=STATE_DTYPE)
        n = X.new_tensor(float(X.shape[0]), dtype=STATE_DTYPE)
        return DecisionCounts(n=n, ncc_hits=hits, agreements=agree, within_projected=within)

    def _operands(self, dtype: torch.dtype) -> tuple[Tensor | None, Tensor, Tensor]:
        """``(shift, Aᵀ, base)`` in ``dtype``; the base absorbs the shift as rounded in ``dtype``. Made once per
        dtype and kept (a float32 copy of A is (C, D): converting it for every batch cost time and memory)."""
        if dtype not in self._operand_cache:
            shift = None if self.shift is None else self.shift.to(dtype)
            base = self.base if shift is None else self.base + self.A @ shift.to(STATE_DTYPE)
            self._operand_cache[dtype] = (shift, self.A.to(dtype).T, base.to(dtype))
        return self._operand_cache[dtype]

    def _scores(self, rows: Tensor, operands: tuple[Tensor | None, Tensor, Tensor], C: int, K: int) -> Tensor:
        shift, A_T, base = operands
        chunk = rows.to(A_T.dtype)
        return self._centred_scores(chunk if shift is None else chunk - shift, operands, C, K)

    @staticmethod
    def _centred_scores(chunk: Tensor, operands: tuple[Tensor | None, Tensor, Tensor], C: int, K: int) -> Tensor:
        """Scores of rows already shifted (``chunk`` = rows − shift, in the operands' dtype), shape (b, C [+ K])."""
        _, A_T, base = operands
        return torch.addmm(base[:C + K], chunk, A_T[:, :C + K])     # torch's pool, as the max/argmax that follow

    def _winners(self, rows: Tensor, operands: tuple[Tensor | None, Tensor, Tensor], C: int, K: int) -> list[Tensor]:
        """Index of the best centre (and of the best classifier row) of each row."""
        scores = self._scores(rows, operands, C, K)
        return [scores[:, :C].argmax(dim=1)] + ([scores[:, C:].argmax(dim=1)] if K else [])

    def _bound_scale(self, C: int, K: int) -> tuple[float, float]:
        """:math:`\\max_c\\lVert a_c\\rVert` and :math:`\\max_c|b_c|` of the float32 operands (made once, by
        blocks of rows: no (C, D) float64 copy of them)."""
        if "bound_scale" not in self._operand_cache:
            _, A_T, base = self._operands(torch.float32)
            rows = A_T[:, :C + K].T
            a_max = max(float(torch.linalg.vector_norm(rows[i:i + 4096].to(STATE_DTYPE), dim=1).max())
                        for i in range(0, rows.shape[0], 4096))
            self._operand_cache["bound_scale"] = (a_max, float(base[:C + K].abs().max()))
        return self._operand_cache["bound_scale"]

    def _certified_winners(self, rows: Tensor, operands: tuple[Tensor | None, Tensor, Tensor], C: int,
                           K: int, scale: tuple[float, float]) -> tuple[list[Tensor], Tensor]:
        """float32 winners of :meth:`_winners` and the rows whose margin is within the rounding bound of
        :meth:`counts` (their float32 decision may differ from the float64 one)."""
        shift, A_T, _ = operands
        chunk = rows if shift is None else rows - shift
        scores = self._centred_scores(chunk, operands, C, K)
        u = 2.0**-24
        a_max, b_max = scale
        norms = torch.linalg.vector_norm(chunk, dim=1).to(STATE_DTYPE) * (1 + 1e-3)   # float32 norm, inflated
        bound = 2 * u * ((A_T.shape[0] + 3) * norms * a_max + 2 * b_max)
        winners, unsure = [], torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
        everyone = torch.arange(rows.shape[0], device=rows.device)
        for block in (slice(0, C), slice(C, C + K)) if K else (slice(0, C),):
            part = scores[:, block]
            best, index = part.max(dim=1)
            winners.append(index)
            if part.shape[1] >= 2:
                part[everyone, index] = -torch.inf                    # the runner-up is now the maximum
                unsure |= (best - part.max(dim=1).values).to(STATE_DTYPE) <= 2 * bound
        return winners, unsure


def ncc_accuracy(X: Any, labels: Any) -> float:
    r"""Nearest-class-centre accuracy: share of samples closest to their own class mean.

    .. math::

        \frac1N \sum_i \mathbb{1}\left[\arg\min_c \lVert h_i - \mu_c \rVert_2 = y_i\right]

    Needs no classifier. Ties go to the lowest class code.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)

    Returns
    -------
    float
        In [0, 1]; 1 at full collapse.

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, PNAS 2020 (NC4, Fig. 7).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.5], [3.0], [4.0]])
    >>> ncc_accuracy(X, [0, 0, 0, 1, 1])   # means 7/6 and 3.5: 2.5 lies nearer class 1
    0.8
    """
    T, y, stats = _prepared(X, labels)
    counts = DecisionRule.of(stats).counts(T, y)
    return float(counts.ncc_hits / counts.n)


def nc4_agreement(X: Any, labels: Any, classifier: Any) -> float:
    r"""NC4: share of samples where the linear classifier and the nearest class centre agree.

    .. math::

        \frac1N \sum_i \mathbb{1}\left[\arg\max_c (w_c^\top h_i + b_c)
        = \arg\min_c \lVert h_i - \mu_c \rVert_2\right]

    Agreement (→ 1 at collapse), i.e. one minus Papyan et al.'s mismatch; the bias is
    included when the classifier has one (rhubarbwu's code leaves it out). Measured on
    the data given (train or test). Ties go to the lowest class code.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    classifier : array-like of shape (n_classes, n_features), or a ``(weight, bias)`` pair
        Arrays, as for :func:`nc3`.

    Returns
    -------
    float
        In [0, 1].

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, PNAS 2020 (NC4, Fig. 7).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [3.0], [4.0]])
    >>> W, b = np.array([[-1.0], [1.0]]), np.array([3.0, -3.0])   # boundary at 3, ties to class 0
    >>> nc4_agreement(X, [0, 0, 1, 1], (W, b))                    # NCC boundary at 2: x = 3 disagrees
    0.75
    """
    T, y, stats = _prepared(X, labels)
    counts = DecisionRule.of(stats, *_checked(classifier, stats)).counts(T, y)
    return float(counts.agreements / counts.n)


# --- helpers --------------------------------------------------------------------------------------


def _prepared(X: Any, labels: Any, *, global_mean: str = "class") -> tuple[Tensor, Tensor, ClassStatistics]:
    X = check_embeddings(X)
    T = torch.as_tensor(X).detach()
    codes, names = encode_labels(labels, n_samples=T.shape[0])
    y = torch.as_tensor(codes, device=T.device)
    stats = ClassStatistics.of(ClassMoments.of(T, y, len(names)), global_mean=global_mean)
    return T, y, stats


def _statistics(X: Any, labels: Any, *, global_mean: str = "class") -> ClassStatistics:
    return _prepared(X, labels, global_mean=global_mean)[2]


def _checked(classifier: Any, stats: ClassStatistics) -> tuple[np.ndarray, np.ndarray | None]:
    """``(weight, bias)`` float64 arrays from an array or a ``(weight, bias)`` pair, shapes checked."""
    weight, bias = classifier if isinstance(classifier, tuple) and len(classifier) == 2 else (classifier, None)
    weight = G.as_rows(weight)
    bias = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if weight.shape != (stats.n_slots, stats.n_features) or (bias is not None and bias.shape != (stats.n_slots,)):
        raise InvalidInputError(
            f"classifier: weight {weight.shape} and bias {None if bias is None else bias.shape} do not match "
            f"{stats.n_slots} classes x {stats.n_features} features (rows in sorted-label order).")
    return weight, bias


ROW_UNIFORM_BLOCK = 65536


def row_uniforms(seed: int, start: int, stop: int) -> np.ndarray:
    """Uniform [0, 1) numbers of the global rows ``start … stop-1``: row ``i`` gets number
    ``i mod 65536`` of the stream seeded ``(seed, i // 65536)``, so a row's draw depends on its
    index only, not on how the rows are batched or split across processes."""
    out = np.empty(stop - start)
    for block in range(start // ROW_UNIFORM_BLOCK, (stop - 1) // ROW_UNIFORM_BLOCK + 1 if stop > start else 0):
        lo = block * ROW_UNIFORM_BLOCK
        values = np.random.default_rng([seed, block]).random(ROW_UNIFORM_BLOCK)
        a, b = max(start, lo), min(stop, lo + ROW_UNIFORM_BLOCK)
        out[a - start:b - start] = values[a - lo:b - lo]
    return out
