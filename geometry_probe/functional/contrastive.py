r"""Alignment, uniformity and cosine statistics on the unit sphere (Wang & Isola, 2020).

Rows are L2-normalised first (sphere metrics are undefined otherwise); pairs are unordered
pairs :math:`i < j` unless a name says otherwise (metrics-reference §1.7, §3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from geometry_probe.pairwise import Tile, cosine_tiles, inverse_norms

HIST_BINS = 200


@dataclass
class PairSums:
    """Float64 reductions over all unordered pairs, filled tile by tile.

    With ``full=False`` only the uniformity kernel is summed (the cheapest pass).
    """

    t: float
    threshold: float
    full: bool = True
    count: float = 0.0
    sum_kernel: float = 0.0                 # Σ exp(-t ‖x̂_i − x̂_j‖²) = Σ exp(2t (cos − 1))
    sum_abs: float = 0.0
    sum_sq: float = 0.0
    above: float = 0.0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS))

    def add(self, cos: Tensor) -> None:
        """Add the cosines of some distinct pairs (any shape)."""
        self._add(cos, weight=1.0)

    def add_tile(self, tile: Tile) -> None:
        """Add the pairs i < j of a tile; a diagonal tile counts its full square minus the
        diagonal, halved (no masked copy)."""
        if not tile.diagonal:
            self._add(tile.cosine, weight=1.0)
            return
        self._add(tile.cosine, weight=0.5)
        self._add(torch.diagonal(tile.cosine), weight=-0.5)

    def _add(self, cos: Tensor, *, weight: float) -> None:
        self.count += weight * cos.numel()
        kernel = cos.mul(2 * self.t).sub_(2 * self.t).exp_()             # float32 temporary
        self.sum_kernel += weight * float(kernel.sum(dtype=torch.float64))
        if not self.full:
            return
        self.sum_abs += weight * float(kernel.copy_(cos).abs_().sum(dtype=torch.float64))
        self.sum_sq += weight * float(kernel.copy_(cos).square_().sum(dtype=torch.float64))
        self.above += weight * float((cos > self.threshold).sum())
        self.histogram += weight * torch.histc(cos, bins=HIST_BINS, min=-1.0, max=1.0).cpu().numpy()

    @property
    def log_sum_exp(self) -> float:
        """log of the summed kernel."""
        return math.log(self.sum_kernel) if self.sum_kernel > 0 else -math.inf

    @property
    def uniformity(self) -> float:
        """:math:`\\log \\frac{1}{|P|}\\sum_{i<j} e^{-t\\lVert \\hat x_i-\\hat x_j\\rVert^2}`."""
        return self.log_sum_exp - math.log(self.count) if self.count else math.nan


def all_pair_sums(X: Tensor, *, t: float = 2.0, threshold: float = 0.9, tile: int | None = None,
                  dtype: torch.dtype = torch.float32, full: bool = True) -> PairSums:
    """Exact reductions over all N(N−1)/2 pairs in one tiled pass."""
    sums = PairSums(t=t, threshold=threshold, full=full)
    for tile_ in cosine_tiles(X, tile=tile, dtype=dtype):
        sums.add_tile(tile_)
    return sums


def uniformity(X: Tensor | np.ndarray, *, t: float = 2.0) -> float:
    r"""Uniformity loss of Wang & Isola over all pairs :math:`i<j` (exact, tiled).

    .. math::

        \mathcal{L}_{\text{uniform}} = \log \frac{2}{N(N-1)} \sum_{i<j} e^{-t \lVert \hat x_i - \hat x_j \rVert^2},
        \qquad \hat x = x / \lVert x \rVert

    Parameters
    ----------
    X : array or Tensor of shape (n_samples, n_features)
        Rows are L2-normalised first; zero rows raise.
    t : float, default=2.0

    Returns
    -------
    float
        In :math:`[-2t + \ln {}_0F_1(;D/2;t^2), 0]` as N → ∞; 0 when all points coincide;
        −4C/(C−1) for a C-point simplex (t = 2).

    References
    ----------
    .. [1] T. Wang and P. Isola, "Understanding contrastive representation learning through
       alignment and uniformity on the hypersphere", ICML 2020.

    Examples
    --------
    >>> import torch
    >>> round(uniformity(torch.eye(5)), 6)   # orthonormal basis: every squared distance is 2
    -4.0
    """
    return all_pair_sums(torch.as_tensor(X), t=t, full=False).uniformity


def mean_cosine(X: Tensor | np.ndarray) -> float:
    r"""Exact mean pairwise cosine in O(ND) (anisotropy, Ethayarajh 2019).

    .. math::

        \bar c = \frac{\lVert \sum_i \hat x_i \rVert^2 - N}{N(N-1)}

    Returns
    -------
    float
        In :math:`[-1/(N-1), 1]`; 1 when all rows point the same way.

    References
    ----------
    .. [1] K. Ethayarajh, "How contextual are contextualized word representations?", EMNLP 2019.

    Examples
    --------
    >>> import torch
    >>> mean_cosine(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    -1.0
    """
    X = torch.as_tensor(X)
    N = X.shape[0]
    total = (X.to(torch.float64) * inverse_norms(X)[:, None].to(torch.float64)).sum(dim=0)
    return float((total.dot(total) - N) / (N * (N - 1)))


def alignment(X: Tensor | np.ndarray, Y: Tensor | np.ndarray, *, alpha: float = 2.0) -> float:
    r"""Alignment of positive pairs (Wang & Isola, 2020).

    .. math::

        \mathcal{L}_{\text{align}} = \frac{1}{M}\sum_{m} \lVert \hat x_m - \hat y_m \rVert^{\alpha}

    Parameters
    ----------
    X, Y : array or Tensor of shape (n_pairs, n_features)
        Row m of X and row m of Y form a positive pair.
    alpha : float, default=2.0

    Returns
    -------
    float
        In :math:`[0, 2^\alpha]`: 0 for identical views (and also at complete collapse), 4 for
        antipodal views (α = 2).

    References
    ----------
    .. [1] T. Wang and P. Isola, ICML 2020.

    Examples
    --------
    >>> import torch
    >>> alignment(torch.eye(3), -torch.eye(3))
    4.0
    """
    X, Y = torch.as_tensor(X), torch.as_tensor(Y)
    U = X.to(torch.float64) * inverse_norms(X)[:, None].to(torch.float64)
    V = Y.to(torch.float64) * inverse_norms(Y)[:, None].to(torch.float64)
    return float(torch.linalg.vector_norm(U - V, dim=1).pow(alpha).mean())


def auc_from_histograms(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(cos of a positive pair > cos of a negative pair) from binned counts (ties count ½)."""
    p, n = positive.astype(np.float64), negative.astype(np.float64)
    if p.sum() == 0 or n.sum() == 0:
        return math.nan
    below = np.concatenate([[0.0], np.cumsum(n)[:-1]])
    return float((p * (below + 0.5 * n)).sum() / (p.sum() * n.sum()))


def group_alignment(unit_sums: np.ndarray, counts: np.ndarray) -> float:
    r"""Alignment (α = 2) over all within-group pairs from per-group sums of unit rows.

    For unit rows, :math:`\sum_{i<j \in g} \lVert \hat x_i-\hat x_j\rVert^2 = n_g^2 - \lVert s_g \rVert^2`.
    """
    pairs = counts * (counts - 1) / 2
    if pairs.sum() == 0:
        return math.nan
    return float((counts**2 - (unit_sums**2).sum(axis=1)).sum() / pairs.sum())
