"""The verdicts' measurements on a seeded subsample, all from its n × n Gram matrix.

:func:`measure_subsample` takes at most a few thousand rows and computes, from one float64
Gram matrix :math:`G = XX^\\top` (built in column chunks, so wide rows never need a float64
copy of the whole subsample):

* the sphere signals of the L2-normalised rows (cosines :math:`C_{ij} = G_{ij}/\\sqrt{G_{ii}G_{jj}}`):
  top-1 energy, mean cosine, mean |cosine| and uniformity;
* what lies off the dominant direction: the residual :math:`R = C - \\lambda_1 w w^\\top` formed
  explicitly (its entries are differences of numbers near 1 when the rows are fused, so its
  eigenvalues are not taken as differences of C's, which would cancel), with :math:`w` refined
  by power iteration to machine precision; its trace, Frobenius norm and largest eigenvalue give
  the :func:`~geometry_probe.baselines.residual_noise_ratio`; and the share of distinct rows;
* with labels, two label-aware accuracies that need no fitting beyond class means:
  leave-one-out weighted kNN on cosines (Wu et al. 2018; the DINO weights
  :math:`e^{\\cos/T}`, k = 20, T = 0.07) and two-fold nearest-class-centre accuracy, whose
  squared distances come from the Gram alone:
  :math:`\\lVert x - \\mu_c\\rVert^2 = G_{xx} - 2\\,\\overline{G_{x,c}} + \\overline{G_{c,c}}`.

The largest eigenvalues come from Lanczos iterations (``scipy.sparse.linalg.eigsh``, relative
tolerance 1e-6), not a full eigensolve: 10-40 ms instead of 0.2 s at n = 1024. Run it on one
BLAS thread (:func:`geometry_probe._threads.one_blas_thread`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import ArpackError, eigsh

from geometry_probe.baselines import distinct_share, pair_cosine_stats, residual_noise_ratio

GRAM_CHUNK_BYTES = 32 * 2**20
KNN_K = 20
KNN_TEMPERATURE = 0.07
FULL_EIGENSOLVE_BELOW = 256
EIGSH_TOLERANCE = 1e-6           # relative accuracy of an eigenvalue: far below what a verdict needs


@dataclass(frozen=True)
class SubsampleGeometry:
    """What :func:`measure_subsample` measured on ``n`` rows of ``n_features`` dimensions.

    Accuracies and ``chance`` are None without labels; ``chance`` is the majority class's share.
    """

    n: int
    n_features: int
    top1_energy: float
    residual_noise_ratio: float
    distinct_share: float
    mean_cosine: float
    mean_abs_cosine: float
    uniformity: float
    knn_accuracy: float | None = None
    ncc_accuracy: float | None = None
    chance: float | None = None


def measure_subsample(rows: np.ndarray, labels: np.ndarray | None = None) -> SubsampleGeometry:
    """Sphere signals and label evidence of ``rows`` (n × D, finite, no zero rows, n ≥ 2)."""
    n, D = rows.shape
    G = gram64(rows)
    norms = np.sqrt(np.diag(G))
    cosines = np.clip(G / np.outer(norms, norms), -1.0, 1.0)
    np.fill_diagonal(cosines, 1.0)
    largest, direction = dominant_direction(cosines)
    residual = cosines - largest * np.outer(direction, direction)
    found = {"n": n, "n_features": D, "top1_energy": float(largest / n), "distinct_share": distinct_share(rows),
             "residual_noise_ratio": residual_noise_ratio(max(top_eigenpair(residual)[0], 0.0),
                                                          float(np.trace(residual)), float(np.sum(residual**2)), n, D),
             **pair_cosine_stats(cosines)}
    if labels is not None:
        codes = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
        found |= {"knn_accuracy": knn_accuracy(cosines, codes), "ncc_accuracy": two_fold_ncc_accuracy(G, codes),
                  "chance": float(np.bincount(codes).max() / n)}
    return SubsampleGeometry(**found)


def dominant_direction(S: np.ndarray, *, max_iterations: int = 12) -> tuple[float, np.ndarray]:
    """Largest eigenvalue of a symmetric PSD matrix and its unit eigenvector: Lanczos, then power
    iteration until the vector stops moving (one or two steps when the top eigenvalue dominates,
    as for fused rows, where the residual needs it to machine precision) or ``max_iterations``
    (rows that are not fused need no more); the eigenvalue is the Rayleigh quotient."""
    vector = top_eigenpair(S)[1]
    for _ in range(max_iterations):
        moved = S @ vector
        moved /= np.linalg.norm(moved)
        done = np.abs(moved - vector).max() <= 4 * np.finfo(np.float64).eps
        vector = moved
        if done:
            break
    return float(vector @ S @ vector), vector


def gram64(rows: np.ndarray) -> np.ndarray:
    r""":math:`XX^\top` in float64 for an n × D array of any float dtype.

    Computed around the mean row :math:`\mu` (float64):
    :math:`x_i \cdot x_j = a_i \cdot a_j + a_i \cdot \mu + \mu \cdot a_j + \lVert\mu\rVert^2` with
    :math:`a_i = x_i - \mu`. The products :math:`a_i \cdot a_j` run as one float32 GEMM, accurate to
    ~1e-7 of the *centred* rows' norms, so a common offset (a fused point, a ReLU cone) costs no
    precision; the offset terms are float64. Columns are taken in chunks of
    :data:`GRAM_CHUNK_BYTES`, so wide rows never need a float64 copy of all D columns. The rows are
    first scaled by a power of two (exact) so that their largest value is near 1: the result is
    :math:`s^2 XX^\\top` for that scale :math:`s`, which cosines and nearest-centre distances ignore.
    """
    n, D = rows.shape
    scale = _power_of_two_scale(rows)
    mean = rows.mean(axis=0, dtype=np.float64) * scale
    G, offset, squares = np.zeros((n, n)), np.zeros(n), np.zeros(n)
    step = max(1, GRAM_CHUNK_BYTES // (8 * max(n, 1)))
    for start in range(0, D, step):
        block = np.asarray(rows[:, start:start + step], dtype=np.float64) * scale
        squares += np.einsum("ij,ij->i", block, block)
        centred = block - mean[start:start + step]
        offset += centred @ mean[start:start + step]
        narrow = centred.astype(np.float32)
        G += narrow @ narrow.T
    G += offset[:, None] + offset[None, :] + mean @ mean
    np.fill_diagonal(G, squares)          # exact: a row far smaller than the mean must not cancel to ≤ 0
    return G


def _power_of_two_scale(rows: np.ndarray) -> float:
    """A power of two bringing the largest |value| near 1: exact, and keeps squares of huge or tiny
    values (1e30, 1e-30) from overflowing or underflowing; cosines and nearest centres ignore it."""
    largest = float(np.max(np.abs(rows))) if rows.size else 0.0
    return 2.0 ** -math.floor(math.log2(largest)) if largest > 0 and math.isfinite(largest) else 1.0


def top_eigenpair(S: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest eigenvalue of a symmetric matrix and its unit eigenvector: Lanczos above
    :data:`FULL_EIGENSOLVE_BELOW` rows, a full solve below or if Lanczos fails."""
    if S.shape[0] > FULL_EIGENSOLVE_BELOW:
        try:
            values, vectors = eigsh(S, k=1, which="LA", v0=_start(S.shape[0]), tol=EIGSH_TOLERANCE)
            return float(values[0]), vectors[:, 0]
        except ArpackError:                       # no convergence, or a start vector in the null space
            pass
    values, vectors = np.linalg.eigh(S)
    return float(values[-1]), vectors[:, -1]


def _start(n: int) -> np.ndarray:
    """A fixed (seeded) Lanczos start vector: results do not depend on ARPACK's own random start."""
    return np.random.default_rng(0).standard_normal(n)


def knn_accuracy(cosines: np.ndarray, codes: np.ndarray, *, k: int = KNN_K,
                 temperature: float = KNN_TEMPERATURE) -> float:
    r"""Leave-one-out weighted kNN accuracy from a cosine matrix (each row's own entry excluded).

    Each of the k most similar other rows votes for its class with weight
    :math:`e^{(\cos - 1)/T}` (the DINO weights :math:`e^{\cos/T}`, rescaled so they cannot overflow);
    ties go to the lowest class code.

    References
    ----------
    .. [1] Z. Wu et al., "Unsupervised feature learning via non-parametric instance discrimination",
       CVPR 2018.
    """
    n = cosines.shape[0]
    k = min(k, n - 1)
    others = cosines.copy()
    np.fill_diagonal(others, -np.inf)
    neighbours = np.argpartition(-others, k - 1, axis=1)[:, :k]                     # (n, k)
    weights = np.exp((np.take_along_axis(others, neighbours, axis=1) - 1.0) / temperature)
    votes = np.zeros((n, int(codes.max()) + 1))
    np.add.at(votes, (np.repeat(np.arange(n), k), codes[neighbours].ravel()), weights.ravel())
    return float(np.mean(votes.argmax(axis=1) == codes))


def two_fold_ncc_accuracy(G: np.ndarray, codes: np.ndarray) -> float:
    r"""Nearest-class-centre accuracy with centres fitted on one half (alternate rows) and scored
    on the other, both ways, from the Gram matrix :math:`G = XX^\top` alone:

    .. math::

        \lVert x_i - \mu_c \rVert^2 = G_{ii} - \frac{2}{n_c}\sum_{j \in c} G_{ij}
        + \frac{1}{n_c^2}\sum_{j, l \in c} G_{jl}.

    Classes absent from the fitting half cannot be predicted; their test rows count as errors.
    """
    fold = np.arange(codes.size) % 2
    correct = 0
    for fit in (0, 1):
        train, test = np.flatnonzero(fold == fit), np.flatnonzero(fold != fit)
        present, members = np.unique(codes[train], return_inverse=True)
        one_hot = np.zeros((train.size, present.size))
        one_hot[np.arange(train.size), members.ravel()] = 1.0
        counts = one_hot.sum(axis=0)
        cross = G[np.ix_(test, train)] @ one_hot / counts                         # mean_j∈c G_ij
        within = np.einsum("jc,jc->c", one_hot, G[np.ix_(train, train)] @ one_hot) / counts**2
        predicted = present[np.argmin(within - 2 * cross, axis=1)]                 # G_ii is common to a row
        correct += int(np.sum(predicted == codes[test]))
    return correct / codes.size
