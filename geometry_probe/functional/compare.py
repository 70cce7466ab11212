r"""Similarity of two representations of the same inputs from streamed cross-moments.

Rows ``a_i`` of A (N × Dₐ) and ``b_i`` of B (N × D_b) describe the same input i. Linear CKA
(plain and debiased), the orthogonal Procrustes distance and CCA/SVCCA depend on the data only
through additive statistics, which :class:`CrossMoments` sums batch by batch in float64:

.. math::

    n,\; \textstyle\sum a_i,\; \sum b_i,\; A^\top A,\; B^\top B,\; A^\top B,\;
    \sum r^a_i,\; \sum r^b_i,\; \sum (r^a_i)^2,\; \sum (r^b_i)^2,\; \sum r^a_i r^b_i,\;
    A^\top r^a,\; A^\top r^b,\; B^\top r^a,\; B^\top r^b

with :math:`r^a_i = \lVert a_i\rVert^2`, :math:`r^b_i = \lVert b_i\rVert^2`. Memory is
O((Dₐ + D_b)²) whatever N; no N × N kernel is formed. Every row is shifted by the mean of the
first batch (a constant, so no metric changes) before it is summed: centred moments are then
differences of nearly centred sums, without the cancellation that a large common offset
would cause.

The debiased HSIC of Song et al. (2012) is a U-statistic over the N × N linear kernels
:math:`K = AA^\top`, :math:`L = BB^\top` with zeroed diagonals (:math:`\tilde K, \tilde L`),

.. math::

    \mathrm{HSIC}_u(K, L) = \frac{1}{n(n-3)}\Big[\operatorname{tr}(\tilde K\tilde L)
        + \frac{\mathbf 1^\top\tilde K\mathbf 1\;\mathbf 1^\top\tilde L\mathbf 1}{(n-1)(n-2)}
        - \frac{2}{n-2}\,\mathbf 1^\top\tilde K\tilde L\mathbf 1\Big],

and each of its three terms is a function of the sums above (:func:`debiased_hsic`), so it
streams too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidEmbeddingsError

#: Eigenvalues of a covariance below this fraction of the largest count as zero in CCA (the
#: whitening would divide by rounding noise).
CCA_RANK_RTOL = 1e-10
#: Share of the variance that SVCCA keeps in each representation by default (Raghu et al. 2017).
SVCCA_VARIANCE = 0.99


@dataclass
class CrossMoments:
    """Running float64 sums of two row-aligned representations (see the module docstring).

    Call :meth:`add` with row-aligned batches ``(A_batch, B_batch)``, in any number of calls.
    """

    n: int = 0
    shift_a: Tensor | None = None
    shift_b: Tensor | None = None
    sum_a: Tensor | None = None
    sum_b: Tensor | None = None
    aa: Tensor | None = None
    bb: Tensor | None = None
    ab: Tensor | None = None
    norm_sums: Tensor | None = None     # Σrᵃ, Σrᵇ, Σ(rᵃ)², Σ(rᵇ)², Σrᵃrᵇ
    a_ra: Tensor | None = None          # Aᵀrᵃ
    a_rb: Tensor | None = None          # Aᵀrᵇ
    b_ra: Tensor | None = None          # Bᵀrᵃ
    b_rb: Tensor | None = None          # Bᵀrᵇ

    def add(self, A: Tensor, B: Tensor) -> None:
        """Add row-aligned batches ``A`` (m × Dₐ) and ``B`` (m × D_b); summed in float64."""
        if A.shape[0] != B.shape[0]:
            raise InvalidEmbeddingsError(f"compare: batches of {A.shape[0]} and {B.shape[0]} rows; the two "
                                         "representations must have one row per input, in the same order.")
        if A.shape[0] == 0:
            return
        if self.shift_a is None:
            self._start(A.to(torch.float64), B.to(torch.float64))
        A = A.to(torch.float64, copy=True).sub_(self.shift_a)      # one float64 copy per side, shifted in place
        B = B.to(torch.float64, copy=True).sub_(self.shift_b)
        ra, rb = torch.linalg.vector_norm(A, dim=1).square_(), torch.linalg.vector_norm(B, dim=1).square_()
        self.n += A.shape[0]
        self.sum_a += A.sum(dim=0)
        self.sum_b += B.sum(dim=0)
        self.aa.addmm_(A.T, A)
        self.bb.addmm_(B.T, B)
        self.ab.addmm_(A.T, B)
        self.norm_sums += torch.stack([ra.sum(), rb.sum(), ra.dot(ra), rb.dot(rb), ra.dot(rb)])
        self.a_ra.addmv_(A.T, ra)
        self.a_rb.addmv_(A.T, rb)
        self.b_ra.addmv_(B.T, ra)
        self.b_rb.addmv_(B.T, rb)

    def _start(self, A: Tensor, B: Tensor) -> None:
        da, db = A.shape[1], B.shape[1]
        zeros = {"dtype": torch.float64, "device": A.device}
        self.shift_a, self.shift_b = A.mean(dim=0), B.mean(dim=0)
        self.sum_a, self.sum_b = torch.zeros(da, **zeros), torch.zeros(db, **zeros)
        self.aa, self.bb, self.ab = (torch.zeros(da, da, **zeros), torch.zeros(db, db, **zeros),
                                     torch.zeros(da, db, **zeros))
        self.norm_sums = torch.zeros(5, **zeros)
        self.a_ra, self.a_rb = torch.zeros(da, **zeros), torch.zeros(da, **zeros)
        self.b_ra, self.b_rb = torch.zeros(db, **zeros), torch.zeros(db, **zeros)

    def covariances(self) -> tuple[Tensor, Tensor, Tensor]:
        """The centred scatter matrices ``(ÃᵀÃ, B̃ᵀB̃, ÃᵀB̃)`` (sums, not divided by n)."""
        self._check_started()
        mean_a, mean_b = self.sum_a / self.n, self.sum_b / self.n
        return (self.aa - self.n * torch.outer(mean_a, mean_a), self.bb - self.n * torch.outer(mean_b, mean_b),
                self.ab - self.n * torch.outer(mean_a, mean_b))

    def _check_started(self) -> None:
        if self.n == 0:
            raise InvalidEmbeddingsError("compare: no rows were added; give at least 2 rows per representation.")


def cross_moments(A: Tensor, B: Tensor, *, batch_size: int = 16384) -> CrossMoments:
    """:class:`CrossMoments` of two in-memory, row-aligned tensors, ``batch_size`` rows at a time."""
    moments = CrossMoments()
    for start in range(0, A.shape[0], batch_size):
        moments.add(A[start:start + batch_size], B[start:start + batch_size])
    return moments


def linear_cka(moments: CrossMoments) -> float:
    r"""Linear CKA on centred columns (Kornblith et al., 2019).

    .. math::

        \mathrm{CKA}(A, B) = \frac{\lVert \tilde A^\top \tilde B\rVert_F^2}
            {\lVert \tilde A^\top \tilde A\rVert_F\,\lVert \tilde B^\top \tilde B\rVert_F}

    with :math:`\tilde A, \tilde B` the column-centred matrices. Equals the biased-HSIC CKA of the
    N × N linear kernels, computed here in feature space.

    Returns
    -------
    float
        In [0, 1]; 1 when B is an orthogonal transform of A times a scalar (plus an offset);
        NaN when a representation is constant.

    References
    ----------
    .. [1] S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity of neural network
       representations revisited", ICML 2019.

    Examples
    --------
    >>> import torch
    >>> A = torch.randn(50, 4, dtype=torch.float64)
    >>> round(linear_cka(cross_moments(A, 3 * A + 1)), 12)
    1.0
    """
    caa, cbb, cab = moments.covariances()
    denominator = float(torch.linalg.matrix_norm(caa) * torch.linalg.matrix_norm(cbb))
    return float(cab.pow(2).sum()) / denominator if denominator > 0 else math.nan


def debiased_hsic(moments: CrossMoments, which: str = "ab") -> float:
    r"""Unbiased HSIC of the linear kernels (Song et al., 2012) from streamed sums.

    With :math:`s_a = \sum_i a_i`, :math:`r^a_i = \lVert a_i\rVert^2` (rows in any common
    shift: the estimator does not change when a constant is added to every row) and likewise
    for B, the terms of the estimator in the module docstring are

    .. math::

        \operatorname{tr}(\tilde K\tilde L) = \lVert A^\top B\rVert_F^2 - \textstyle\sum_i r^a_i r^b_i,
        \qquad \mathbf 1^\top\tilde K\mathbf 1 = \lVert s_a\rVert^2 - \textstyle\sum_i r^a_i,

        \mathbf 1^\top\tilde K\tilde L\mathbf 1 = s_a^\top A^\top B\, s_b - s_a^\top A^\top r^b
            - s_b^\top B^\top r^a + \textstyle\sum_i r^a_i r^b_i .

    Parameters
    ----------
    moments : CrossMoments
    which : {"ab", "aa", "bb"}
        HSIC(K, L), HSIC(K, K) or HSIC(L, L).

    Returns
    -------
    float
        NaN for fewer than 4 rows (the estimator divides by n − 3).

    References
    ----------
    .. [1] L. Song, A. Smola, A. Gretton, J. Bedo, K. Borgwardt, "Feature selection via
       dependence maximization", JMLR 13, 2012 (eq. 5).
    """
    moments._check_started()
    n = moments.n
    if n < 4:
        return math.nan
    sum_ra, sum_rb, ra_ra, rb_rb, ra_rb = moments.norm_sums.tolist()
    if which == "ab":
        x_y, s_x, s_y, sum_rx, sum_ry, rx_ry = moments.ab, moments.sum_a, moments.sum_b, sum_ra, sum_rb, ra_rb
        x_ry, y_rx = moments.a_rb, moments.b_ra
    elif which == "aa":
        x_y, s_x, s_y, sum_rx, sum_ry, rx_ry = moments.aa, moments.sum_a, moments.sum_a, sum_ra, sum_ra, ra_ra
        x_ry = y_rx = moments.a_ra
    elif which == "bb":
        x_y, s_x, s_y, sum_rx, sum_ry, rx_ry = moments.bb, moments.sum_b, moments.sum_b, sum_rb, sum_rb, rb_rb
        x_ry = y_rx = moments.b_rb
    else:
        raise ValueError(f"which must be 'ab', 'aa' or 'bb', got {which!r}.")
    trace = float(x_y.pow(2).sum()) - rx_ry
    ones_k = float(s_x.dot(s_x)) - sum_rx
    ones_l = float(s_y.dot(s_y)) - sum_ry
    ones_kl = float(s_x @ x_y @ s_y) - float(s_x.dot(x_ry)) - float(s_y.dot(y_rx)) + rx_ry
    return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2 * ones_kl / (n - 2)) / (n * (n - 3))


def debiased_cka(moments: CrossMoments) -> float:
    r"""CKA from the unbiased HSIC estimator (Song et al. 2012; Nguyen, Raghu, Kornblith 2021).

    .. math::

        \mathrm{CKA}_u = \frac{\mathrm{HSIC}_u(K, L)}{\sqrt{\mathrm{HSIC}_u(K, K)\,\mathrm{HSIC}_u(L, L)}}

    Removes the upward bias of plain CKA when N is small relative to the dimensions (two
    independent random representations give CKA ≈ 0 instead of ≈ D/N). Equals the "debiased"
    linear CKA of Kornblith's reference notebook and anatome, and the single-batch value of
    torch_cka (which applies the estimator to uncentred features: it is shift-invariant).

    Returns
    -------
    float
        Near 0 for independent representations, 1 for identical ones; can be slightly
        negative; NaN when N < 4 or a self-HSIC is not positive.

    References
    ----------
    .. [1] T. Nguyen, M. Raghu, S. Kornblith, "Do wide and deep networks learn the same
       things?", ICLR 2021. [2] Song et al., JMLR 2012.
    """
    kl, kk, ll = debiased_hsic(moments, "ab"), debiased_hsic(moments, "aa"), debiased_hsic(moments, "bb")
    if not (kk > 0 and ll > 0):
        return math.nan
    return kl / math.sqrt(kk * ll)


def procrustes_distance(moments: CrossMoments) -> float:
    r"""Orthogonal Procrustes shape distance on centred, unit-Frobenius-norm inputs.

    .. math::

        d^2_{\mathrm{Proc}}(A, B) = \min_{Q^\top Q = I} \lVert \hat A - \hat B Q\rVert_F^2
            = 2 - 2\,\lVert \hat A^\top \hat B\rVert_*,
        \qquad \hat A = \tilde A / \lVert\tilde A\rVert_F

    (nuclear norm: the sum of singular values; unequal widths act as zero padding of the
    narrower one). Ding et al. (2021) and Williams et al. (2021) use the same quantity;
    anatome reports half of it, netrep the angle :math:`\arccos\lVert\hat A^\top\hat B\rVert_*`.

    Returns
    -------
    float
        In [0, 2]: 0 when B is a rotation/reflection of A (after centring and scaling).

    References
    ----------
    .. [1] F. Ding, J.-S. Denain, J. Steinhardt, "Grounding representation similarity with
       statistical testing", NeurIPS 2021. [2] A. Williams, E. Kunz, S. Kornblith,
       S. Linderman, "Generalized shape metrics on neural representations", NeurIPS 2021.
    """
    caa, cbb, cab = moments.covariances()
    scale = float(torch.trace(caa) * torch.trace(cbb))
    if not scale > 0:
        return math.nan
    nuclear = float(torch.linalg.svdvals(cab).sum())
    return max(0.0, 2.0 - 2.0 * min(1.0, nuclear / math.sqrt(scale)))


def canonical_correlations(moments: CrossMoments, *, directions: tuple[int | None, int | None] = (None, None)
                           ) -> Tensor:
    r"""Canonical correlations of A and B, optionally within their top principal directions.

    With the centred scatter matrices :math:`C_{aa}, C_{bb}, C_{ab}`, the canonical correlations
    are the singular values of :math:`W_a^\top C_{ab} W_b` where :math:`W = V\Lambda^{-1/2}`
    whitens each side (:math:`C = V\Lambda V^\top`). ``directions = (k_a, k_b)`` keeps only the
    top k principal directions of each side first (SVCCA); ``None`` keeps all whose eigenvalue
    exceeds :data:`CCA_RANK_RTOL` times the largest.

    Returns
    -------
    Tensor
        min(kₐ, k_b) correlations in [0, 1], descending (float64).

    References
    ----------
    .. [1] H. Hotelling, "Relations between two sets of variates", Biometrika 1936.
    """
    caa, cbb, cab = moments.covariances()
    whiten_a, whiten_b = _whitening(caa, directions[0]), _whitening(cbb, directions[1])
    if whiten_a.shape[1] == 0 or whiten_b.shape[1] == 0:
        return cab.new_zeros(0)
    return torch.linalg.svdvals(whiten_a.T @ cab @ whiten_b).clamp(0.0, 1.0)


def _whitening(scatter: Tensor, keep: int | None) -> Tensor:
    """Columns V_k Λ_k^{-1/2} for the top ``keep`` (or all non-null) eigenpairs of ``scatter``."""
    values, vectors = torch.linalg.eigh(scatter)
    values, vectors = values.flip(0), vectors.flip(1)
    largest = float(values[0]) if values.numel() else 0.0
    rank = int((values > CCA_RANK_RTOL * largest).sum()) if largest > 0 else 0
    keep = rank if keep is None else min(keep, rank)
    return vectors[:, :keep] / values[:keep].sqrt()


def svcca_directions(moments: CrossMoments, variance: float = SVCCA_VARIANCE) -> tuple[int, int]:
    """Numbers of top principal directions that keep ``variance`` of each side's total variance
    (the smallest k with cumulative eigenvalue share ≥ ``variance``), as in Raghu et al. 2017."""
    caa, cbb, _ = moments.covariances()
    return _directions_for(caa, variance), _directions_for(cbb, variance)


def _directions_for(scatter: Tensor, variance: float) -> int:
    values = torch.linalg.eigvalsh(scatter).flip(0).clamp_min(0)
    total = float(values.sum())
    if total <= 0:
        return 0
    share = values.cumsum(0) / total
    return min(int((share < variance - 1e-12).sum()) + 1, values.numel())
