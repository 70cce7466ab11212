r"""Geometry of a small set of vectors: class means or classifier rows (metrics-reference §4.4, §5).

Every function takes the C vectors as the rows of a (C, D) array, already centred or not
as the caller decides, and works in float64 NumPy (C and D are small; these are the
O(C²) or O(C·D) post-processing steps after the streamed statistics). Neural collapse
(centred means, simplex-ETF ideal) and the orthogonality analyzer (uncentred means,
orthogonal-frame ideal) share them, so each formula lives once.

The two ideal Gram matrices, each scaled to unit Frobenius norm:

* simplex equiangular tight frame (ETF): :math:`(I - \frac{1}{C}\mathbf{1}\mathbf{1}^\top)/\sqrt{C-1}`,
  the normalised Gram of C equal-norm vectors with pairwise cosine :math:`-1/(C-1)`;
* orthogonal frame (OF): :math:`I/\sqrt{C}`.

Degenerate input (fewer than two vectors, zero vectors where a direction is needed)
gives NaN, never inf; callers turn those NaNs into notes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def row_norms(V: np.ndarray) -> np.ndarray:
    """L2 norm of every row of a (C, D) float array, without a (C, D) temporary (C may be 10⁵)."""
    return np.sqrt(np.einsum("ij,ij->i", V, V))


def as_rows(vectors: Any) -> np.ndarray:
    """``vectors`` (ndarray, tensor or nested lists) as a float64 (C, D) NumPy array."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    V = np.asarray(vectors, dtype=np.float64)
    if V.ndim != 2:
        raise ValueError(f"expected a 2-D array of shape (n_vectors, n_features), got shape {V.shape}.")
    return V


def simplex_etf_gram(n_vectors: int) -> np.ndarray:
    r"""Unit-Frobenius Gram matrix of a simplex ETF, :math:`(I - \mathbf{1}\mathbf{1}^\top/C)/\sqrt{C-1}`.

    Parameters
    ----------
    n_vectors : int
        C >= 2.

    Returns
    -------
    ndarray of shape (C, C)

    Examples
    --------
    >>> G = simplex_etf_gram(3)
    >>> round(float(np.linalg.norm(G)), 12), round(float(G[0, 1] / G[0, 0]), 12)
    (1.0, -0.5)
    """
    C = n_vectors
    gram: np.ndarray = (np.eye(C) - np.full((C, C), 1.0 / C)) / math.sqrt(C - 1)
    return gram


def _gram_distance(vectors: np.ndarray, target: np.ndarray) -> float:
    """``‖G/‖G‖_F − target‖_F`` with ``G = V Vᵀ`` (target already unit-norm); NaN if G = 0."""
    G = vectors @ vectors.T
    scale = np.linalg.norm(G)
    if not scale > 0:
        return math.nan
    return float(np.linalg.norm(G / scale - target))


def etf_error(vectors: Any) -> float:
    r"""Distance of the normalised Gram of ``vectors`` to the simplex-ETF Gram (Zhu et al., 2021).

    .. math::

        \Delta_{ETF}(V) = \left\lVert \frac{V V^\top}{\lVert V V^\top \rVert_F}
        - \frac{I_C - \frac{1}{C}\mathbf{1}\mathbf{1}^\top}{\sqrt{C-1}} \right\rVert_F

    The Gram is not normalised row by row, so unequal norms count as error too. For NC2
    pass centred class means :math:`\mu_c - \mu_G`; for NC3's classifier check pass ``W``.

    Parameters
    ----------
    vectors : array-like of shape (C, D)
        C >= 2 vectors as rows.

    Returns
    -------
    float
        In [0, 2]; 0 exactly for a simplex ETF (any norm, any rotation). NaN for C < 2 or
        all-zero vectors.

    References
    ----------
    .. [1] Z. Zhu et al., "A geometric analysis of neural collapse with unconstrained
       features", NeurIPS 2021 (``compute_ETF``).
    .. [2] V. Papyan, X. Y. Han, D. L. Donoho, "Prevalence of neural collapse during the
       terminal phase of deep learning training", PNAS 2020.

    Examples
    --------
    >>> V = np.eye(4) - 0.25          # centred orthogonal frame = simplex ETF
    >>> round(etf_error(V), 12)
    0.0
    >>> round(etf_error(np.eye(5)), 6)   # uncentred orthogonal frame
    0.459506
    """
    V = as_rows(vectors)
    if V.shape[0] < 2:
        return math.nan
    return _gram_distance(V, simplex_etf_gram(V.shape[0]))


def orthogonal_frame_error(vectors: Any) -> float:
    r"""Distance of the normalised Gram of ``vectors`` to an orthogonal frame (Kini et al., 2024).

    .. math::

        \Delta_{OF}(V) = \left\lVert \frac{V V^\top}{\lVert V V^\top \rVert_F}
        - \frac{I_C}{\sqrt{C}} \right\rVert_F

    Uncentred by definition: pass the raw class means. Unequal norms count as error.

    Parameters
    ----------
    vectors : array-like of shape (C, D)

    Returns
    -------
    float
        In [0, 2]; 0 for C orthogonal vectors of equal norm; :math:`\sqrt{2 - 2/\sqrt{C}}`
        when all vectors coincide. NaN for C < 2 or all-zero vectors.

    References
    ----------
    .. [1] C. Kini, V. Vakilian, T. Behnia, J. Gill, C. Thrampoulidis, "Symmetric neural
       collapse representations with supervised contrastive loss: the impact of ReLU and
       batching", ICLR 2024.

    Examples
    --------
    >>> round(orthogonal_frame_error(3.0 * np.eye(3)), 12)
    0.0
    >>> V = np.array([[1.0, 0.0], [-1.0, 0.0]])   # two-point simplex ETF
    >>> round(orthogonal_frame_error(V), 6)
    0.765367
    """
    V = as_rows(vectors)
    C = V.shape[0]
    if C < 2:
        return math.nan
    return _gram_distance(V, np.eye(C) / math.sqrt(C))


def cosine_matrix(vectors: Any) -> np.ndarray:
    r"""Cosine similarity between every pair of rows.

    .. math::

        K_{cc'} = \frac{v_c^\top v_{c'}}{\lVert v_c \rVert\,\lVert v_{c'} \rVert}

    Parameters
    ----------
    vectors : array-like of shape (C, D)

    Returns
    -------
    ndarray of shape (C, C)
        Entries in [-1, 1], ones on the diagonal; rows and columns of zero vectors are NaN
        (their direction is undefined).

    Examples
    --------
    >>> cosine_matrix([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]).round(4).tolist()
    [[1.0, 0.7071, nan], [0.7071, 1.0, nan], [nan, nan, nan]]
    """
    V = as_rows(vectors)
    norms = row_norms(V)
    with np.errstate(invalid="ignore", divide="ignore"):
        U = V / np.where(norms > 0, norms, np.nan)[:, None]
    K = np.clip(U @ U.T, -1.0, 1.0)                  # NaN rows/columns stay NaN
    np.fill_diagonal(K, np.where(norms > 0, 1.0, np.nan))
    return K


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """Entries above the diagonal (each unordered pair c < c' once), shape (C(C-1)/2,)."""
    rows, cols = np.triu_indices(matrix.shape[0], k=1)
    return matrix[rows, cols]


def equinorm(vectors: Any) -> float:
    r"""Coefficient of variation of the row norms (NC2 equinorm, Papyan et al. 2020).

    .. math::

        \operatorname{CoV} = \frac{\operatorname{Std}_c \lVert v_c \rVert}{\operatorname{Avg}_c \lVert v_c \rVert}

    with the **unbiased** standard deviation (divide by C−1), as in the authors' code
    (``torch.std``); the biased one is smaller by :math:`\sqrt{(C-1)/C}`.

    Parameters
    ----------
    vectors : array-like of shape (C, D)
        For NC2, the centred class means.

    Returns
    -------
    float
        In [0, ∞); 0 when all norms are equal. NaN for C < 2 or all-zero vectors.

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, "Prevalence of neural collapse during the
       terminal phase of deep learning training", PNAS 2020, Fig. 2.

    Examples
    --------
    >>> round(equinorm([[3.0, 0.0], [0.0, 1.0]]), 6)   # norms 3, 1: std √2, mean 2
    0.707107
    """
    norms = row_norms(as_rows(vectors))
    if norms.size < 2 or not norms.mean() > 0:
        return math.nan
    return float(norms.std(ddof=1) / norms.mean())


def equiangularity(cosines: np.ndarray) -> float:
    r"""Spread of the pairwise cosines (NC2 equiangularity, Papyan et al. 2020).

    .. math::

        \operatorname{Std}_{c < c'} K_{cc'}

    the **population** standard deviation over the C(C−1)/2 unordered pairs (every pair
    is there; nothing is sampled).

    Parameters
    ----------
    cosines : ndarray of shape (C, C)
        A cosine matrix such as :func:`cosine_matrix` of the centred class means.

    Returns
    -------
    float
        In [0, 1]; 0 when all angles are equal. NaN for C < 2 or when a cosine is undefined.

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, PNAS 2020, Fig. 3.

    Examples
    --------
    >>> K = cosine_matrix(np.eye(3) - 1 / 3)   # simplex ETF: every cosine is -1/2
    >>> round(equiangularity(K), 12)
    0.0
    """
    values = off_diagonal(cosines)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return math.nan
    return float(values.std())


def max_angle_deviation(cosines: np.ndarray) -> float:
    r"""Mean distance of the pairwise cosines from the simplex value :math:`-1/(C-1)`.

    .. math::

        \operatorname{Avg}_{c \neq c'} \left| K_{cc'} + \frac{1}{C-1} \right|

    Papyan et al.'s "maximal-angle equiangularity" (their code's ``coherence``).

    Parameters
    ----------
    cosines : ndarray of shape (C, C)

    Returns
    -------
    float
        In [0, C/(C−1)]; 0 for a simplex ETF. NaN for C < 2 or an undefined cosine.

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, PNAS 2020, Fig. 4.

    Examples
    --------
    >>> round(max_angle_deviation(cosine_matrix(np.eye(3))), 6)   # cos 0 instead of -1/2
    0.5
    """
    C = cosines.shape[0]
    values = off_diagonal(cosines)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return math.nan
    return float(np.abs(values + 1.0 / (C - 1)).mean())


def mean_abs_cosine(cosines: np.ndarray) -> float:
    r"""Mean absolute off-diagonal cosine, :math:`\frac{1}{C(C-1)}\sum_{c \neq c'} |K_{cc'}|`.

    Parameters
    ----------
    cosines : ndarray of shape (C, C)

    Returns
    -------
    float
        In [0, 1]; 0 for an orthogonal frame, 1/(C−1) for a simplex ETF, 1 when all
        vectors are parallel. NaN for C < 2 or an undefined cosine.

    References
    ----------
    .. [1] Metrics-reference §5.3 (orthogonality scores); see also A. Bouhsine et al.,
       "SimO loss: anchor-free contrastive loss for fine-grained supervised contrastive
       learning", arXiv:2410.05233.

    Examples
    --------
    >>> round(mean_abs_cosine(cosine_matrix(np.eye(4) - 0.25)), 6)   # ETF: 1/3
    0.333333
    """
    values = off_diagonal(cosines)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return math.nan
    return float(np.abs(values).mean())


def max_abs_cosine(cosines: np.ndarray) -> float:
    r"""Mutual coherence: the largest absolute off-diagonal cosine, :math:`\max_{c \neq c'} |K_{cc'}|`.

    Parameters
    ----------
    cosines : ndarray of shape (C, C)

    Returns
    -------
    float
        In [0, 1]; compare with :func:`welch_bound` when C > D. NaN for C < 2 or an
        undefined cosine.

    References
    ----------
    .. [1] L. Welch, "Lower bounds on the maximum cross correlation of signals", IEEE
       Trans. Inf. Theory 20(3), 1974.

    Examples
    --------
    >>> round(max_abs_cosine(cosine_matrix([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])), 6)
    0.707107
    """
    values = off_diagonal(cosines)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return math.nan
    return float(np.abs(values).max())


def welch_bound(n_vectors: int, n_features: int) -> float:
    r"""Smallest possible mutual coherence of C unit vectors in :math:`\mathbb{R}^D`.

    .. math::

        \max_{c \neq c'} |\cos(v_c, v_{c'})| \;\ge\; \sqrt{\frac{C - D}{D\,(C-1)}}
        \quad (C > D)

    For C <= D the bound is 0 (an orthogonal frame exists). Equality holds for
    equiangular tight frames (e.g. the simplex, C = D + 1, bound 1/D).

    Parameters
    ----------
    n_vectors : int
        C >= 2.
    n_features : int
        D >= 1.

    Returns
    -------
    float
        In [0, 1].

    References
    ----------
    .. [1] L. Welch, "Lower bounds on the maximum cross correlation of signals", IEEE
       Trans. Inf. Theory 20(3), 1974.

    Examples
    --------
    >>> round(welch_bound(4, 3), 6)   # 4 vectors in 3-D: the tetrahedron reaches 1/3
    0.333333
    >>> welch_bound(3, 8)
    0.0
    """
    C, D = n_vectors, n_features
    if C <= D:
        return 0.0
    return math.sqrt((C - D) / (D * (C - 1)))


def hyperspherical_uniformity(vectors: Any) -> float:
    r"""GNC2: variance of the logarithmic energy of the directions of ``vectors`` (Liu et al., 2023).

    .. math::

        \operatorname{Var}_{c < c'} \; \log \frac{1}{\lVert \hat v_c - \hat v_{c'} \rVert},
        \qquad \hat v_c = v_c / \lVert v_c \rVert

    the population variance over unordered pairs, as in Wu & Papyan's measurement code.
    It is 0 when all directions are equally spaced, which for C > D + 1 (no simplex ETF
    fits in D dimensions) is the generalised form of NC2; smaller is more uniform.

    Parameters
    ----------
    vectors : array-like of shape (C, D)
        For GNC2, the centred class means.

    Returns
    -------
    float
        In [0, ∞). NaN for C < 2, a zero vector, or two coincident directions (infinite
        energy).

    References
    ----------
    .. [1] W. Liu, L. Yu, A. Weller, B. Schölkopf, "Generalizing and decoupling neural
       collapse via hyperspherical uniformity gap", ICLR 2023.
    .. [2] R. Wu, V. Papyan, "Linguistic collapse: neural collapse in (large) language
       models", NeurIPS 2024.

    Examples
    --------
    >>> round(hyperspherical_uniformity(np.eye(4) - 0.25), 12)   # simplex: equal spacing
    0.0
    """
    V = as_rows(vectors)
    norms = row_norms(V)
    if V.shape[0] < 2 or not np.all(norms > 0):
        return math.nan
    U = V / norms[:, None]
    distances = np.sqrt(np.clip(off_diagonal(2.0 - 2.0 * (U @ U.T)), 0.0, None))
    if not np.all(distances > 0):
        return math.nan
    return float(np.var(-np.log(distances)))


def squared_distances(vectors: Any) -> np.ndarray:
    r"""Squared Euclidean distances between rows, :math:`\lVert v_c - v_{c'} \rVert^2`, shape (C, C).

    Computed from the Gram of the rows after subtracting their mean (distances do not
    change, cancellation does), clipped at 0, with an exact zero diagonal.

    Parameters
    ----------
    vectors : array-like of shape (C, D)

    Returns
    -------
    ndarray of shape (C, C)

    Examples
    --------
    >>> squared_distances([[0.0, 0.0], [3.0, 4.0]]).tolist()
    [[0.0, 25.0], [25.0, 0.0]]
    """
    V = as_rows(vectors)
    V = V - V.mean(axis=0) if V.shape[0] else V
    sq = np.einsum("ij,ij->i", V, V)
    D2: np.ndarray = np.clip(sq[:, None] + sq[None, :] - 2.0 * (V @ V.T), 0.0, None)
    np.fill_diagonal(D2, 0.0)
    return D2


def simo_matrices(vectors: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""SimO's pair quantities between rows: squared dot products and squared distances.

    .. math::

        o_{cc'} = (v_c^\top v_{c'})^2, \qquad d_{cc'} = \lVert v_c - v_{c'} \rVert^2

    exactly as SimO's Theorem A.1 defines them, with no further normalisation; the
    diagonal is kept (:math:`o_{cc} = \lVert v_c \rVert^4`, :math:`d_{cc} = 0`). SimO's
    similarity ratio is :math:`o/(\varepsilon + d)` off the diagonal. For unit-norm rows
    (or class means of unit-norm embeddings, norm <= 1), o lies in [0, 1] and d in [0, 4].

    Parameters
    ----------
    vectors : array-like of shape (C, D)

    Returns
    -------
    sqdot : ndarray of shape (C, C)
    sqdist : ndarray of shape (C, C)

    References
    ----------
    .. [1] A. Bouhsine, I. El Aaroussi, A. Faysal, W. Huaxia, "SimO loss: anchor-free
       contrastive loss for fine-grained supervised contrastive learning",
       arXiv:2410.05233, 2024.

    Examples
    --------
    >>> o, d = simo_matrices([[1.0, 0.0], [0.6, 0.8]])
    >>> o.round(4).tolist(), d.round(4).tolist()
    ([[1.0, 0.36], [0.36, 1.0]], [[0.0, 0.8], [0.8, 0.0]])
    """
    V = as_rows(vectors)
    return np.square(V @ V.T), squared_distances(V)
