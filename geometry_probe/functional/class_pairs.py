r"""Pair statistics of many class vectors without a C×C matrix (instance discrimination, face ids).

Up to :data:`MATRIX_MAX_CLASSES` vectors the analyzers use the C×C functions of
:mod:`geometry_probe.functional.class_geometry` (32 MiB of float64). Above that:

* **exact closed forms** where the metric is a polynomial in the pair terms. With :math:`V`
  the (C, D) rows, :math:`G = V V^\top` and :math:`\hat v` the unit rows,

  .. math::

      \sum_{c \ne c'} \cos(v_c, v_{c'}) = \Big\lVert \sum_c \hat v_c \Big\rVert^2 - C, \qquad
      \sum_{c \ne c'} \cos^2 = \lVert \hat V^\top \hat V \rVert_F^2 - C, \qquad
      \lVert G \rVert_F = \lVert V^\top V \rVert_F,

  so the std of the cosines (NC2 equiangularity) and the Gram distances to a simplex ETF and
  to an orthogonal frame (:func:`gram_distance`) need a D×D matrix, not a C×C one;
* **exact tiles** for the other pair means (|cos|, CDNV, the log-energy of GNC2, the largest
  |cos|) while C(C−1)/2 ≤ :data:`EXACT_MAX_PAIRS`: blocks of :data:`TILE_ROWS` rows against
  blocks, never more than one tile in memory;
* **seeded pair samples** above: :data:`SAMPLED_PAIRS` uniform unordered pairs, the mean with its
  standard error (std/√m), and the largest value *seen* (a lower bound of the true maximum).

:class:`PairEstimate` says which ran; the analyzers copy it into ``Result.params``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

MATRIX_MAX_CLASSES = 2048
EXACT_MAX_PAIRS = 50_000_000
SAMPLED_PAIRS = 200_000
TILE_ROWS = 1024
SAMPLE_CHUNK = 20_000
GRAM_MAX_FEATURES = 4096

PairFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairEstimate:
    """Mean (and largest value) of a function over the unordered pairs c < c'.

    Attributes
    ----------
    mean : float
    std_error : float
        0 when exact; std/√m over m sampled pairs otherwise.
    maximum : float
        Over all pairs when exact; over the sampled pairs otherwise (a lower bound).
    second_moment : float
        Mean of the squared values (for variances).
    n_pairs : int
        Pairs evaluated.
    exact : bool
    """

    mean: float
    std_error: float
    maximum: float
    second_moment: float
    n_pairs: int
    exact: bool

    def describe(self, total: int) -> str:
        """How the value was obtained, for ``Result.params``."""
        if self.exact:
            return f"exact over all {total:,} pairs (tiles of {TILE_ROWS} rows)"
        return f"estimate from {self.n_pairs:,} seeded uniform pairs of {total:,}; std_error = std / sqrt(m)"


def pair_estimates(vectors: np.ndarray, functions: Mapping[str, PairFunction], *, seed: int = 0,
                   max_exact_pairs: int = EXACT_MAX_PAIRS, n_sampled: int = SAMPLED_PAIRS) -> dict[str, PairEstimate]:
    """Means over pairs c < c' of ``f(dots, I, J)`` for each function (exact tiles or seeded samples).

    Each function maps the dot products ``dots`` of rows ``I`` and ``J`` (broadcastable index
    arrays) to values of the same shape; it must be elementwise, so tiles and samples agree.
    """
    C = vectors.shape[0]
    total = C * (C - 1) // 2
    sums = {name: np.zeros(3) for name in functions}            # Σf, Σf², count
    peaks = dict.fromkeys(functions, -math.inf)
    exact = total <= max_exact_pairs
    for dots, I, J in (_tiles(vectors) if exact else _samples(vectors, n_sampled, seed)):
        for name, f in functions.items():
            values = f(dots, I, J)
            sums[name] += (values.sum(), np.square(values).sum(), values.size)
            peaks[name] = max(peaks[name], float(values.max())) if values.size else peaks[name]
    out = {}
    for name, (s, s2, m) in sums.items():
        mean = s / m if m else math.nan
        var = max(s2 / m - mean**2, 0.0) if m else math.nan
        se = 0.0 if exact else math.sqrt(var * m / max(m - 1, 1) / m) if m else math.nan
        out[name] = PairEstimate(mean=float(mean), std_error=float(se), maximum=peaks[name],
                                 second_moment=float(s2 / m) if m else math.nan, n_pairs=int(m), exact=exact)
    return out


def _tiles(V: np.ndarray):
    """Upper-triangle tiles: ``(dots[mask], I[mask], J[mask])`` for every block pair."""
    C = V.shape[0]
    for a in range(0, C, TILE_ROWS):
        for b in range(a, C, TILE_ROWS):
            dots = V[a:a + TILE_ROWS] @ V[b:b + TILE_ROWS].T
            I, J = np.meshgrid(np.arange(a, a + dots.shape[0]), np.arange(b, b + dots.shape[1]), indexing="ij")
            mask = I < J
            yield dots[mask], I[mask], J[mask]


def _samples(V: np.ndarray, n: int, seed: int):
    """Seeded uniform unordered pairs (i != j), in chunks of :data:`SAMPLE_CHUNK`."""
    rng = np.random.default_rng(seed)
    C = V.shape[0]
    for start in range(0, n, SAMPLE_CHUNK):
        m = min(SAMPLE_CHUNK, n - start)
        I = rng.integers(0, C, m)
        J = rng.integers(0, C - 1, m)
        J += J >= I
        yield np.einsum("ij,ij->i", V[I], V[J]), I, J


def gram_frobenius(vectors: np.ndarray, *, seed: int = 0) -> tuple[float, PairEstimate | None]:
    r""":math:`\lVert V V^\top \rVert_F` without the C×C matrix.

    Exact as :math:`\lVert V^\top V \rVert_F` (a D×D product) when D ≤ :data:`GRAM_MAX_FEATURES`;
    otherwise :math:`\sqrt{\sum_c \lVert v_c\rVert^4 + 2\sum_{c<c'} (v_c^\top v_{c'})^2}` with the pair
    sum from :func:`pair_estimates` (returned, so the caller can state how it was obtained).
    """
    if vectors.shape[1] <= GRAM_MAX_FEATURES:
        return float(np.linalg.norm(vectors.T @ vectors)), None
    C = vectors.shape[0]
    est = pair_estimates(vectors, {"dot2": lambda d, i, j: d * d}, seed=seed)["dot2"]
    diagonal = float(np.sum(np.einsum("ij,ij->i", vectors, vectors) ** 2))
    return math.sqrt(diagonal + 2 * est.mean * (C * (C - 1) // 2)), est


def gram_distance(vectors: np.ndarray, target: str, *, seed: int = 0) -> float:
    r"""``‖G/‖G‖_F − B‖_F`` for ``target`` "etf" (:math:`B = (I - \mathbf 1\mathbf 1^\top/C)/\sqrt{C-1}`) or
    "of" (:math:`B = I/\sqrt C`), from :math:`\langle G, B\rangle` in closed form.

    .. math::

        \lVert G/g - B\rVert_F^2 = 2 - 2\langle G, B\rangle / g, \quad
        \langle G, I\rangle = \sum_c \lVert v_c\rVert^2, \quad
        \langle G, \mathbf 1\mathbf 1^\top\rangle = \Big\lVert \sum_c v_c \Big\rVert^2

    Exact to about :math:`\sqrt{\epsilon_{64}} \approx 10^{-8}` absolute (the subtraction), against
    :math:`10^{-16}` for the C×C form used up to :data:`MATRIX_MAX_CLASSES`.
    """
    C = vectors.shape[0]
    g, _ = gram_frobenius(vectors, seed=seed)
    if C < 2 or not g > 0:
        return math.nan
    trace = float(np.einsum("ij,ij->", vectors, vectors))
    if target == "etf":
        inner = (trace - float(np.sum(vectors.sum(axis=0) ** 2)) / C) / math.sqrt(C - 1)
    else:
        inner = trace / math.sqrt(C)
    return math.sqrt(max(2.0 - 2.0 * inner / g, 0.0))


def cosine_moments(vectors: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    r"""Mean and population std of :math:`\cos(v_c, v_{c'})` over pairs c < c', without a C×C matrix.

    Mean from :math:`\lVert\sum_c \hat v_c\rVert^2`, mean square from :math:`\lVert\hat V^\top\hat V\rVert_F^2`
    (see the module doc); NaN when a vector is zero.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))   # no (C, D) temporary
    C = vectors.shape[0]
    if C < 2 or not np.all(norms > 0):
        return math.nan, math.nan
    U = vectors / norms[:, None]
    pairs = C * (C - 1)                                                   # ordered pairs
    mean = (float(np.sum(U.sum(axis=0) ** 2)) - C) / pairs
    frob, _ = gram_frobenius(U, seed=seed)
    mean_sq = (frob**2 - C) / pairs
    return mean, math.sqrt(max(mean_sq - mean**2, 0.0))
