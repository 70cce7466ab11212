r"""Alignment, uniformity and cosine statistics on the unit sphere (Wang & Isola, 2020).

Rows are L2-normalised first (sphere metrics are undefined otherwise); pairs are unordered
pairs :math:`i < j` unless a name says otherwise (metrics-reference §1.7, §3).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from geometry_probe.pairwise import Tile, inverse_norms, run_pass, sum64, sum_abs64, sum_sq64

HIST_BINS = 200


class PairSums:
    r"""Float64 reductions over all unordered pairs, filled tile by tile.

    Each tile is reduced in float32 (PyTorch's pairwise summation: relative error ~1e-7 for a
    tile) and the per-tile sums accumulate in float64 tensors on the tiles' device, so a pass
    on a GPU never waits for the host; the totals are read once, at the end. With
    ``full=False`` only the uniformity kernel is summed (the cheapest pass). The histogram has
    ``HIST_BINS`` equal bins on [−1, 1] (bin b holds −1 + b·w ≤ cos < −1 + (b+1)·w, the last bin
    also cos = 1); when ``threshold`` is a bin edge, ``above`` is read off the histogram,
    otherwise counted.

    Parameters
    ----------
    t : float
        Uniformity temperature: the kernel is :math:`e^{-t\lVert \hat x_i-\hat x_j\rVert^2} = e^{2t(\cos-1)}`.
    threshold : float
        ``above`` counts pairs with cosine above it.
    full : bool, default=True
        Also sum the absolute and squared cosines, the histogram and ``above``.
    """

    def __init__(self, *, t: float, threshold: float, full: bool = True) -> None:
        self.t, self.threshold, self.full = t, threshold, full
        self.count = 0.0
        self._shift = 2 * t if t > 40 else 0.0            # e^{2t cos} overflows float32 beyond t ≈ 44
        edge = (threshold + 1) * HIST_BINS / 2
        self._edge = int(round(edge)) if abs(edge - round(edge)) < 1e-9 and 0 <= round(edge) <= HIST_BINS else None
        self._sums: Tensor | None = None                  # Σ kernel, Σ|cos|, Σcos², #above (see properties)
        self._histogram: Tensor | None = None
        self._scratch: Tensor | None = None               # one tile-sized float32 buffer, reused by every tile

    def add(self, cos: Tensor) -> None:
        """Add the cosines of some distinct pairs (any shape)."""
        self._add(cos)

    def add_tile(self, tile: Tile) -> None:
        """Add the pairs i < j of a tile; a diagonal tile counts its square with the diagonal
        zeroed in the temporaries, halved (no masked copy of the tile)."""
        self._add(tile.cosine, diagonal=tile.diagonal)

    def _add(self, cos: Tensor, *, diagonal: bool = False) -> None:
        if self._sums is None:
            self._sums = torch.zeros(4, dtype=torch.float64, device=cos.device)   # kernel, |cos|, cos², above
            self._histogram = torch.zeros(HIST_BINS, dtype=torch.float64, device=cos.device)
        weight = 0.5 if diagonal else 1.0
        self.count += weight * (cos.numel() - (cos.shape[0] if diagonal else 0))
        tile_sums = torch.zeros(4, dtype=torch.float64, device=cos.device)
        kernel = self._scratch_like(cos)
        torch.mul(cos, 2 * self.t, out=kernel)
        if self._shift:
            kernel.sub_(self._shift)
        kernel.exp_()
        if diagonal:
            kernel.fill_diagonal_(0.0)
        tile_sums[0] = sum64(kernel)
        if self.full:                     # norms: one read of the tile each, no temporary
            tile_sums[1] = sum_abs64(cos)
            tile_sums[2] = sum_sq64(cos)
            if diagonal:
                tile_sums[1] -= torch.diagonal(cos).abs().sum()
                tile_sums[2] -= torch.diagonal(cos).square().sum()
            counts = _bin_counts(cos, kernel)
            if diagonal:
                counts -= _bin_counts(torch.diagonal(cos))
            self._histogram += weight * counts
            if self._edge is not None:
                tile_sums[3] = counts[self._edge:].sum()
            else:
                above = cos > self.threshold
                if diagonal:
                    above.fill_diagonal_(False)
                tile_sums[3] = above.sum()
        self._sums += weight * tile_sums

    def _scratch_like(self, cos: Tensor) -> Tensor:
        """A (reused) contiguous buffer of ``cos``'s shape, dtype and device."""
        if self._scratch is None or self._scratch.numel() < cos.numel() or self._scratch.dtype != cos.dtype \
                or self._scratch.device != cos.device:
            self._scratch = torch.empty(cos.numel(), dtype=cos.dtype, device=cos.device)
        return self._scratch[:cos.numel()].view(cos.shape)

    def _total(self, index: int) -> float:
        return float(self._sums[index]) if self._sums is not None else 0.0

    @property
    def sum_kernel(self) -> float:
        r""":math:`\sum_{i<j} e^{-t\lVert \hat x_i - \hat x_j\rVert^2} = \sum_{i<j} e^{2t(\cos_{ij} - 1)}`."""
        return self._total(0) * math.exp(self._shift - 2 * self.t)

    @property
    def sum_abs(self) -> float:
        r""":math:`\sum_{i<j} \lvert\cos_{ij}\rvert`."""
        return self._total(1)

    @property
    def sum_sq(self) -> float:
        r""":math:`\sum_{i<j} \cos_{ij}^2`."""
        return self._total(2)

    @property
    def above(self) -> float:
        """Number of pairs with cosine above ``threshold``."""
        return self._total(3)

    @property
    def histogram(self) -> np.ndarray:
        """Pair counts in ``HIST_BINS`` equal bins on [−1, 1]."""
        if self._histogram is None:
            return np.zeros(HIST_BINS)
        return self._histogram.cpu().numpy()

    @property
    def log_sum_exp(self) -> float:
        """log of the summed kernel."""
        total = self._total(0)
        return math.log(total) + self._shift - 2 * self.t if total > 0 else -math.inf

    @property
    def uniformity(self) -> float:
        r""":math:`\log \frac{1}{|P|}\sum_{i<j} e^{-t\lVert \hat x_i-\hat x_j\rVert^2}`."""
        return self.log_sum_exp - math.log(self.count) if self.count else math.nan


def _bin_counts(cos: Tensor, scratch: Tensor | None = None) -> Tensor:
    """Float64 counts (on ``cos``'s device) of ``cos`` in HIST_BINS equal bins on [−1, 1]
    (``scratch``: an optional same-shape, same-dtype buffer to reuse)."""
    scratch = torch.empty_like(cos) if scratch is None else scratch
    half = torch.tensor(HIST_BINS / 2, dtype=cos.dtype, device=cos.device)
    scaled = torch.addcmul(half, cos, half, out=scratch)          # (cos + 1)·B/2 in one pass
    # Truncation to uint8 (B < 256: 4x less memory than int32, ~3x faster bincount on CPU) puts
    # −1 − ε (GEMM rounding, within 1% of −1 for float32 and bfloat16 tiles) in bin 0 and 1 + ε
    # in bin B, folded into the last bin below; no clamping pass is needed.
    index = scaled.to(torch.uint8).flatten()
    counts = torch.bincount(index, minlength=HIST_BINS + 1).to(torch.float64)
    counts[HIST_BINS - 1] += counts[HIST_BINS:].sum()  # cos = 1 (and rounding above it) → last bin
    return counts[:HIST_BINS]


def cosine_histogram(cos: Tensor) -> np.ndarray:
    """Counts of ``cos`` in HIST_BINS equal bins on [−1, 1], as a NumPy array."""
    return _bin_counts(cos).cpu().numpy()


def all_pair_sums(X: Tensor, *, t: float = 2.0, threshold: float = 0.9, tile: int | None = None,
                  dtype: torch.dtype = torch.float32, full: bool = True) -> PairSums:
    """Exact reductions over all N(N−1)/2 pairs in one tiled pass."""
    sums = PairSums(t=t, threshold=threshold, full=full)
    run_pass(X, [sums], tile=tile, dtype=dtype)
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
    total = (X.to(torch.float64) * inverse_norms(X)[:, None].to(torch.float64)).sum(dim=0)
    return mean_cosine_from_sum(total, X.shape[0])


def mean_cosine_from_sum(unit_sum: Tensor, n_samples: int) -> float:
    """:func:`mean_cosine` from the float64 sum of the N unit rows (streamable form)."""
    return float((unit_sum.dot(unit_sum) - n_samples) / (n_samples * (n_samples - 1)))


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


def tolerance_from_class_sums(unit_sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    r"""Tolerance (Wang & Liu, 2021), conditional and joint, from per-class sums of unit rows.

    For unit rows, :math:`\sum_{i \ne j \in c} \hat x_i^\top \hat x_j = \lVert s_c\rVert^2 - n_c`, so

    .. math::

        T = \frac{\sum_c (\lVert s_c\rVert^2 - n_c)}{\sum_c n_c(n_c - 1)}, \qquad
        T_{\text{joint}} = \frac{\sum_c (\lVert s_c\rVert^2 - n_c)}{N(N-1)}

    (:math:`T`: mean cosine over same-label pairs :math:`i<j`, each pair weighted equally;
    :math:`T_\text{joint}`: Wang & Liu's literal :math:`E[\hat x^\top \hat y \, 1\{l(x)=l(y)\}]` over
    pairs of distinct rows). NaN when no class has two rows.
    """
    counts = np.asarray(counts, dtype=np.float64)
    within = float(((np.asarray(unit_sums, dtype=np.float64) ** 2).sum(axis=1) - counts).sum())
    same_pairs = float((counts * (counts - 1)).sum())
    n = counts.sum()
    if same_pairs == 0:
        return math.nan, math.nan
    return within / same_pairs, within / (n * (n - 1))


def tolerance(X: Tensor | np.ndarray, labels: np.ndarray) -> float:
    r"""Mean cosine over same-label pairs :math:`i < j` of L2-normalised rows (Wang & Liu, 2021).

    Exact in O(ND) from per-class sums (:func:`tolerance_from_class_sums`). In [−1, 1]; 1 when
    every class has collapsed to a point (high tolerance is not sufficient: read it with
    uniformity).

    References
    ----------
    .. [1] F. Wang and H. Liu, "Understanding the behaviour of contrastive loss", CVPR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> tolerance(np.array([[1.0, 0], [2.0, 0], [0, 1.0], [0, -1.0]]), np.array([0, 0, 1, 1]))
    0.0
    """
    X = torch.as_tensor(X)
    U = (X.to(torch.float64) * inverse_norms(X)[:, None].to(torch.float64)).cpu().numpy()
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(classes), U.shape[1]))
    np.add.at(sums, codes, U)
    return tolerance_from_class_sums(sums, np.bincount(codes, minlength=len(classes)))[0]


class DistanceSums:
    r"""Sums over pairs :math:`i<j` of :math:`d - c` and :math:`(d - c)^2`, with
    :math:`d = \lVert \hat x_i - \hat x_j\rVert = \sqrt{\max(2 - 2\cos, 0)}`, tile by tile.

    The shift ``c`` (pass a value near the mean distance, e.g. the exact root-mean-square
    distance) keeps the variance free of cancellation: a regular simplex gives a coefficient of
    variation at float32 rounding level (~1e-7), not the ~3e-4 of unshifted sums.
    """

    def __init__(self, *, shift: float = math.sqrt(2)) -> None:
        self.shift = shift
        self.count = 0.0
        self._sums: Tensor | None = None
        self._scratch: Tensor | None = None

    def add_tile(self, tile: Tile) -> None:
        """Add the pairs i < j of ``tile`` (a diagonal tile: its square without the diagonal, halved)."""
        self.add(tile.cosine, diagonal=tile.diagonal)

    def add(self, cos: Tensor, *, diagonal: bool = False) -> None:
        """Add the cosines of distinct pairs (any shape)."""
        if self._sums is None:
            self._sums = torch.zeros(2, dtype=torch.float64, device=cos.device)
        if self._scratch is None or self._scratch.numel() < cos.numel() or self._scratch.dtype != cos.dtype:
            self._scratch = torch.empty(cos.numel(), dtype=cos.dtype, device=cos.device)
        dev = self._scratch[:cos.numel()].view(cos.shape)
        two = torch.tensor(2.0, dtype=cos.dtype, device=cos.device)
        torch.add(two, cos, alpha=-2.0, out=dev).clamp_(min=0.0).sqrt_().sub_(self.shift)    # d − c
        if diagonal:
            dev.fill_diagonal_(0.0)
        weight = 0.5 if diagonal else 1.0
        self.count += weight * (cos.numel() - (cos.shape[0] if diagonal else 0))
        # float32 row sums of small centred values, added in float64; the zeroed diagonal adds 0
        self._sums += weight * torch.stack([sum64(dev), sum_sq64(dev)])

    @property
    def mean(self) -> float:
        """Mean pairwise distance."""
        return float(self._sums[0]) / self.count + self.shift if self.count else math.nan

    @property
    def coefficient_of_variation(self) -> float:
        r"""std/mean of the pairwise distances (std over all pairs, divided by their number)."""
        if not self.count:
            return math.nan
        m1, m2 = float(self._sums[0]) / self.count, float(self._sums[1]) / self.count
        mean = m1 + self.shift
        return math.sqrt(max(m2 - m1 * m1, 0.0)) / mean if mean > 0 else math.nan


def distance_cv(X: Tensor | np.ndarray, *, tile: int | None = None) -> float:
    r"""Coefficient of variation of the pairwise distances of L2-normalised rows (f-MICL's
    uniformity test, Lu et al. 2023).

    .. math::

        \mathrm{CV} = \frac{\sqrt{\frac1P\sum_{i<j} (d_{ij} - \bar d)^2}}{\bar d},
        \quad d_{ij} = \lVert \hat x_i - \hat x_j \rVert, \quad P = \tfrac{N(N-1)}{2}

    0 for a regular simplex (all distances equal); NaN when every row is identical.
    Exact, in one tiled pass.

    References
    ----------
    .. [1] Y. Lu et al., "f-MICL", TMLR 2023, arXiv:2402.10150.

    Examples
    --------
    >>> import numpy as np
    >>> round(distance_cv(np.eye(4)), 6)
    0.0
    """
    X = torch.as_tensor(X)
    sums = DistanceSums(shift=rms_distance(mean_cosine(X)))
    run_pass(X, [sums], tile=tile)
    return sums.coefficient_of_variation


def rms_distance(mean_cos: float) -> float:
    r"""Root-mean-square pairwise distance of unit rows, :math:`\sqrt{2 - 2\bar c}`, from the mean cosine."""
    return math.sqrt(max(2.0 - 2.0 * mean_cos, 0.0))
