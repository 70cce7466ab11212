r"""Spectral and rank metrics of an embedding matrix (metrics-reference §2).

Every metric here is a function of one of two spectra, both taken from additive
statistics (:class:`~geometry_probe.stats.Moments`) so they stream:

* the **centred** spectrum: eigenvalues :math:`\lambda_k` of the scatter
  :math:`Z_c^\top Z_c` (singular values :math:`\sigma_k = \sqrt{\lambda_k}` of the centred
  matrix :math:`Z_c`), used by effective rank, stable rank, participation ratio,
  numerical rank, α-ReQ and collapsed dimensions;
* the **raw** spectrum of :math:`Z^\top Z` (uncentred, unnormalised), used by RankMe and the
  top-1 energy, as in Garrido et al.

σ-based and λ-based versions of "the same" metric differ (σ vs σ²); each docstring names
which one it uses. All arithmetic is float64, the GEMMs included (float32 input is
converted batch by batch), so the spectra match a float64 SVD of the same numbers; the
analyzers' ``precision="float32"`` fast mode trades that for speed (:mod:`geometry_probe.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geometry_probe._threads import one_blas_thread
from geometry_probe._validation import check_embeddings
from geometry_probe.exceptions import InvalidEmbeddingsError
from geometry_probe.stats import DEFAULT_PRECISION, Moments, as_compute, compute_dtype, gram, map_parallel

RANKME_EPS = 1e-7
ALPHA_FIT_RANKS = (11, 100)
COLLAPSED_DIM_THRESHOLD = 1e-6
DUAL_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Spectra:
    r"""Eigenvalues (descending, float64, clipped at 0) of the centred and raw scatter.

    Attributes
    ----------
    centred : ndarray of shape (min(n_samples, n_features),) or (n_features,)
        Eigenvalues of :math:`Z_c^\top Z_c` (squared singular values of the centred matrix).
    raw : ndarray, same shape
        Eigenvalues of :math:`Z^\top Z` (squared singular values of the raw matrix).
    n_samples : int
    n_features : int
        D. From the N×N dual (:meth:`of_rows`) only the N eigenvalues that can be non-zero
        are listed; the other D − N are exactly 0.
    """

    centred: np.ndarray
    raw: np.ndarray
    n_samples: int
    n_features: int

    @classmethod
    def of(cls, m: Moments) -> Spectra:
        """Both spectra from summed :class:`Moments` (the D×D primal form)."""
        D = int(m.s1.shape[0])

        def solve(center: bool) -> np.ndarray:
            return eigvals_desc(m.scatter(center=center))

        if D <= PARALLEL_SOLVE_MAX:                  # side by side, one BLAS thread each (memory: 2 more D×D)
            with one_blas_thread():
                centred, raw = map_parallel(solve, [True, False])
        else:
            centred, raw = solve(True), solve(False)
        return cls(centred=centred, raw=raw, n_samples=int(m.n), n_features=D)

    @classmethod
    def of_rows(cls, rows: Tensor | Sequence[Tensor], *, precision: str = DEFAULT_PRECISION) -> Spectra:
        r"""Both spectra of the rows of ``rows`` (N × D) from the N×N dual: exact, for N < D.

        :math:`Z^\top Z` and :math:`Z Z^\top` have the same non-zero eigenvalues, so the N×N
        Grams :math:`K_c = Z_c Z_c^\top` and :math:`K = Z Z^\top` give both spectra in
        :math:`O(N^2)` memory and :math:`O(N^2 D)` work. They are built over blocks of
        columns (``DUAL_BLOCK_BYTES`` of compute-dtype values each), each block centred on the
        column means :math:`a` (a float64 sum of all rows) before its GEMM, and the raw Gram is
        rebuilt exactly as :math:`K = K_c + v\mathbf 1^\top + \mathbf 1 v^\top + \lVert a\rVert^2
        \mathbf 1\mathbf 1^\top` with :math:`v = Z_c a`, as the primal form does per batch.
        ``rows`` may be a sequence of row blocks (e.g. the batches of a stream): only one block of
        columns of all rows is ever gathered, never a copy of all rows.
        """
        parts = (rows,) if isinstance(rows, Tensor) else tuple(rows)
        N, D = sum(int(p.shape[0]) for p in parts), int(parts[0].shape[1])
        dtype = compute_dtype(parts[0], precision)
        shift = (sum(p.sum(dim=0, dtype=torch.float64) for p in parts) / N).to(dtype)   # rounded as blocks see it
        shift64 = shift.to(torch.float64)
        device = parts[0].device
        Kc = torch.zeros(N, N, dtype=torch.float64, device=device)
        v = torch.zeros(N, dtype=torch.float64, device=device)
        width = max(1, DUAL_BLOCK_BYTES // (torch.finfo(dtype).bits // 8 * N))
        for start in range(0, D, width):
            cols = slice(start, start + width)
            gathered = parts[0][:, cols] if len(parts) == 1 else torch.cat([p[:, cols] for p in parts])
            block = as_compute(gathered, precision) - shift[cols]            # (N, w) centred
            Kc += gram(block.T).to(torch.float64)
            v += block.to(torch.float64) @ shift64[cols]
        K = (Kc + Kc.T) / 2                                                  # one more N x N at a time
        del Kc
        centred = eigvals_desc(K)
        K += v[:, None]                                                      # raw Gram, in place: K_c + v1ᵀ + 1vᵀ + ‖a‖²
        K += v[None, :]
        K += shift64.dot(shift64)
        return cls(centred=centred, raw=eigvals_desc(K), n_samples=N, n_features=D)

    @property
    def rank_ceiling(self) -> int:
        r""":math:`\min(N-1, D)`: the largest rank a centred N×D matrix can have."""
        return min(self.n_samples - 1, self.n_features)


PARALLEL_SOLVE_MAX = 4096         # D up to which the two spectra of Spectra.of are solved side by side


def eigvals_desc(S: Tensor | np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric matrix, or of each matrix of a stack ``(..., n, n)``, in
    float64, descending, clipped at 0.

    Eigenvalues below ``λ_max · D · eps64`` (``λ_max`` of the same matrix) are round-off of the
    eigensolver and are set to exactly 0, so a rank-deficient matrix has exact zeros (needed
    for the 0·ln 0 convention). Arrays and CPU tensors are solved by NumPy's LAPACK on one BLAS
    thread (``_threads.one_blas_thread``: a 768 x 768 solve takes 0.13 s there, 1-1.5 s through
    ``torch.linalg.eigvalsh`` beside torch's threads on a loaded 2-core machine); CUDA tensors
    on their device.
    """
    if isinstance(S, Tensor) and S.device.type == "cpu":
        S = S.detach().numpy()
    on_host = isinstance(S, np.ndarray)
    S = S.astype(np.float64, copy=False) if on_host else S.to(torch.float64)
    if not bool(np.isfinite(S).all() if on_host else torch.isfinite(S).all()):
        raise InvalidEmbeddingsError(
            "embeddings: values are so large that their second moments overflow (inf); rescale them "
            "(e.g. divide by their largest absolute value).")
    try:
        if on_host:
            with one_blas_thread():
                values = np.linalg.eigvalsh(S)[..., ::-1].clip(0)
        else:
            values = torch.linalg.eigvalsh(S).flip(-1).clamp_min(0).cpu().numpy()
    except (torch.linalg.LinAlgError, np.linalg.LinAlgError) as err:
        raise InvalidEmbeddingsError(f"embeddings: the covariance eigensolver did not converge ({err}); "
                                     "rescale the embeddings.") from None
    if values.size:
        values[values < values[..., :1] * values.shape[-1] * np.finfo(np.float64).eps] = 0.0
    return values


def _entropy_rank(p: np.ndarray) -> float:
    """exp of the Shannon entropy (nats) of weights ``p`` with 0·ln 0 = 0."""
    positive = p[p > 0]
    return float(np.exp(-np.sum(positive * np.log(positive))))


def effective_rank_from_spectrum(eigenvalues: np.ndarray) -> float:
    r"""Roy–Vetterli effective rank from squared singular values (see :func:`effective_rank`)."""
    sigma = np.sqrt(np.clip(eigenvalues, 0, None))
    total = sigma.sum()
    if not total > 0:
        return math.nan
    return _entropy_rank(sigma / total)


def effective_rank(X: Tensor | np.ndarray) -> float:
    r"""Effective rank of the centred embedding matrix (Roy & Vetterli, 2007).

    .. math::

        \operatorname{erank}(Z) = \exp\Big(-\sum_k p_k \ln p_k\Big), \qquad
        p_k = \frac{\sigma_k}{\sum_j \sigma_j},

    with :math:`\sigma_k` the singular values of the column-centred matrix :math:`Z_c`
    (σ-based, not λ-based) and :math:`0 \ln 0 = 0`. Centring makes it translation
    invariant; it is also rotation, scale and row-permutation invariant.

    Parameters
    ----------
    X : array or Tensor of shape (n_samples, n_features)

    Returns
    -------
    float
        In :math:`[1, \min(N-1, D)]`; NaN when all rows are identical (zero spectrum).

    References
    ----------
    .. [1] O. Roy and M. Vetterli, "The effective rank: a measure of effective
       dimensionality", EUSIPCO 2007.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    >>> round(effective_rank(X), 10)  # singular values (3√2, √2): p = (3/4, 1/4)
    1.7547653506
    """
    return effective_rank_from_spectrum(_spectra(X).centred)


def rankme_from_spectrum(raw_eigenvalues: np.ndarray, n_samples: int, *, eps: float = RANKME_EPS) -> float:
    r"""RankMe from the raw spectrum (see :func:`rankme`)."""
    m = min(n_samples, raw_eigenvalues.shape[0])
    sigma = np.sqrt(np.clip(raw_eigenvalues[:m], 0, None))
    total = sigma.sum()
    if not total > 0:
        return math.nan
    return _entropy_rank(sigma / total + eps)


def rankme(X: Tensor | np.ndarray, *, eps: float = RANKME_EPS) -> float:
    r"""RankMe: smoothed effective rank of the raw embedding matrix (Garrido et al., 2023).

    .. math::

        \operatorname{RankMe}(Z) = \exp\Big(-\sum_{k=1}^{\min(N,D)} p_k \ln p_k\Big), \qquad
        p_k = \frac{\sigma_k(Z)}{\lVert \sigma(Z) \rVert_1} + \varepsilon,

    on :math:`Z` **as given** (no centring, no normalisation). Because ε is added after
    normalisation, :math:`\sum p_k = 1 + m\varepsilon` and the value can exceed
    :math:`\min(N, D)` slightly.

    Parameters
    ----------
    X : array or Tensor of shape (n_samples, n_features)
    eps : float, default=1e-7
        The paper's float32 constant (tf-gnn uses 1e-12, stable-pretraining 1e-5).

    Returns
    -------
    float
        About 1 at complete collapse (1.000205 for a rank-1 128×128 matrix), up to about
        :math:`\min(N,D)`; NaN for an all-zero matrix.

    References
    ----------
    .. [1] Q. Garrido, R. Balestriero, L. Najman, Y. LeCun, "RankMe: Assessing the downstream
       performance of pretrained self-supervised representations by their rank", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> round(rankme(torch.eye(64, dtype=torch.float64)), 4)
    64.0013
    """
    spectra = _spectra(X)
    return rankme_from_spectrum(spectra.raw, spectra.n_samples, eps=eps)


def stable_rank_from_spectrum(eigenvalues: np.ndarray) -> float:
    r"""Stable rank from squared singular values (see :func:`stable_rank`)."""
    top = eigenvalues[0] if eigenvalues.size else 0.0
    return float(eigenvalues.sum() / top) if top > 0 else math.nan


def stable_rank(X: Tensor | np.ndarray) -> float:
    r"""Stable rank of the centred matrix (Rudelson & Vershynin, 2007).

    .. math::

        \operatorname{srank}(Z_c) = \frac{\lVert Z_c \rVert_F^2}{\lVert Z_c \rVert_2^2}
        = \frac{\sum_k \sigma_k^2}{\sigma_1^2}.

    This is what tf-gnn calls ``numerical_rank``; ours is :func:`numerical_rank`.

    Returns
    -------
    float
        In :math:`[1, \operatorname{rank}]`; NaN when all rows are identical.

    References
    ----------
    .. [1] M. Rudelson and R. Vershynin, "Sampling from large matrices: an approach through
       geometric functional analysis", J. ACM 2007.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    >>> round(stable_rank(X), 7)  # (18 + 2) / 18
    1.1111111
    """
    return stable_rank_from_spectrum(_spectra(X).centred)


def participation_ratio_from_spectrum(eigenvalues: np.ndarray) -> float:
    r"""Participation ratio from covariance eigenvalues (see :func:`participation_ratio`)."""
    sq = float(np.sum(eigenvalues**2))
    return float(eigenvalues.sum() ** 2 / sq) if sq > 0 else math.nan


def participation_ratio(X: Tensor | np.ndarray) -> float:
    r"""Participation ratio of the covariance spectrum (Gao et al., 2017).

    .. math::

        \operatorname{PR} = \frac{(\sum_k \lambda_k)^2}{\sum_k \lambda_k^2}
        = \frac{(\operatorname{tr}\Sigma)^2}{\operatorname{tr}(\Sigma^2)},

    with :math:`\lambda_k` the eigenvalues of the centred covariance (λ-based). The
    normalisation of Σ (N or N−1) cancels.

    Returns
    -------
    float
        In :math:`[1, \operatorname{rank}]`; NaN when all rows are identical.

    References
    ----------
    .. [1] P. Gao et al., "A theory of multineuronal dimensionality, dynamics and
       measurement", bioRxiv 2017. See also Recanatesi et al. 2019.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    >>> round(participation_ratio(X), 7)  # λ ∝ (9, 1): 100 / 82
    1.2195122
    """
    return participation_ratio_from_spectrum(_spectra(X).centred)


def numerical_rank_from_spectrum(eigenvalues: np.ndarray, n_samples: int, *, eps: float,
                                 n_features: int | None = None) -> int:
    """Threshold rank from squared singular values (see :func:`numerical_rank`); ``n_features``
    defaults to the number of eigenvalues (pass D when they come from the N×N dual)."""
    if eigenvalues.size == 0 or not eigenvalues[0] > 0:
        return 0
    sigma = np.sqrt(eigenvalues)
    tol = sigma[0] * max(n_samples, n_features or eigenvalues.shape[0]) * eps
    return int(np.sum(sigma > tol))


def numerical_rank(X: Tensor | np.ndarray, *, eps: float | None = None) -> int:
    r"""Threshold rank of the centred matrix: the number of singular values above a tolerance.

    .. math::

        \operatorname{rank}_{tol}(Z_c) = \#\{k : \sigma_k > \sigma_1 \cdot \max(N, D) \cdot \epsilon\}

    the NumPy/LAPACK convention (metrics-reference §2.3, meaning 1).

    Parameters
    ----------
    X : array or Tensor of shape (n_samples, n_features)
    eps : float, optional
        Machine epsilon of the data. Default: that of float32 (1.19e-7), the precision
        embeddings are stored and multiplied in, unless ``X`` is float64 (2.2e-16).

    Returns
    -------
    int
        In :math:`[0, \min(N-1, D)]`.

    References
    ----------
    .. [1] G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., §5.4.1.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> X = torch.randn(50, 3, dtype=torch.float64) @ torch.randn(3, 8, dtype=torch.float64)
    >>> numerical_rank(X)
    3
    """
    spectra = _spectra(X)
    if eps is None:
        eps = float(torch.finfo(torch.float64 if _is_float64(X) else torch.float32).eps)
    return numerical_rank_from_spectrum(spectra.centred, spectra.n_samples, eps=eps, n_features=spectra.n_features)


def alpha_req_from_spectrum(eigenvalues: np.ndarray, *, fit_ranks: tuple[int, int] = ALPHA_FIT_RANKS) -> float:
    r"""α-ReQ from covariance eigenvalues (see :func:`alpha_req`)."""
    first, last = fit_ranks
    if last > eigenvalues.shape[0] or eigenvalues.sum() <= 0:
        return math.nan
    ratio = eigenvalues / eigenvalues.sum()
    fitted = ratio[first - 1:last]
    if not np.all(fitted > ratio[0] * 1e-12):
        return math.nan
    ranks = np.arange(first, last + 1, dtype=np.float64)
    design = np.stack([-np.log(ranks), np.ones_like(ranks)], axis=1)     # (R, 2)
    weights = 1.0 / ranks                                                # (R,)
    lhs = design.T @ (design * weights[:, None])
    rhs = (design * weights[:, None]).T @ np.log(fitted)
    return float(np.linalg.solve(lhs, rhs)[0])


def alpha_req(X: Tensor | np.ndarray, *, fit_ranks: tuple[int, int] = ALPHA_FIT_RANKS) -> float:
    r"""α-ReQ: power-law decay exponent of the covariance eigenspectrum (Agrawal et al., 2022).

    Fits :math:`\lambda_i \propto i^{-\alpha}` by weighted least squares of
    :math:`\ln \lambda_i` on :math:`[-\ln i, 1]` with weights :math:`1/i` over ranks
    ``fit_ranks`` (inclusive, 1-based), as the authors' reference code does; λ are the
    centred covariance eigenvalues (λ-based: a σ-based fit would halve α).

    Parameters
    ----------
    X : array or Tensor of shape (n_samples, n_features)
    fit_ranks : (int, int), default=(11, 100)
        First and last rank of the fit.

    Returns
    -------
    float
        α; larger means faster decay (toward collapse), white noise gives about 0.15.
        NaN when fewer than ``fit_ranks[1]`` eigenvalues exist or some in the range are 0
        (N or D below 100 with the default range).

    References
    ----------
    .. [1] K. K. Agrawal, A. K. Mondal, A. Ghosh, B. A. Richards, "α-ReQ: Assessing
       representation quality in self-supervised learning by measuring eigenspectrum decay",
       NeurIPS 2022.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> A = torch.randn(60, 30, dtype=torch.float64)
    >>> Q, _ = torch.linalg.qr(A - A.mean(0))  # orthonormal columns orthogonal to 1: centred
    >>> X = Q * (torch.arange(1, 31, dtype=torch.float64) ** -1.3).sqrt()  # covariance eigenvalues i^-1.3
    >>> round(alpha_req(X, fit_ranks=(2, 20)), 6)
    1.3
    """
    return alpha_req_from_spectrum(_spectra(X).centred, fit_ranks=fit_ranks)


def top1_energy_from_spectrum(raw_eigenvalues: np.ndarray) -> float:
    """Top-1 energy share from the raw spectrum (see :func:`top1_energy`)."""
    total = raw_eigenvalues.sum()
    return float(raw_eigenvalues[0] / total) if total > 0 else math.nan


def top1_energy(X: Tensor | np.ndarray) -> float:
    r"""Share of the energy in the top direction of the raw (uncentred) matrix.

    .. math::

        \rho_1 = \frac{\sigma_1(Z)^2}{\sum_k \sigma_k(Z)^2}

    Uncentred on purpose: it tends to 1 both when all rows merge into one point and when
    they spread along one line through the origin (an antipodal rank-1 collapse), the two
    over-fusion failures (metrics-reference §2.8, §6.1). Isotropic data give about 1/D.

    Returns
    -------
    float
        In :math:`[1/D, 1]`; NaN for an all-zero matrix.

    References
    ----------
    .. [1] L. Jing, P. Vincent, Y. LeCun, Y. Tian, "Understanding dimensional collapse in
       contrastive self-supervised learning", ICLR 2022 (spectrum as collapse diagnostic).

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]])
    >>> top1_energy(X)
    1.0
    """
    return top1_energy_from_spectrum(_spectra(X).raw)


def collapsed_dims_from_spectrum(eigenvalues: np.ndarray, n_samples: int,
                                 *, threshold: float = COLLAPSED_DIM_THRESHOLD) -> int:
    """Collapsed dimensions from covariance eigenvalues (see :func:`collapsed_dims`)."""
    ceiling = min(n_samples - 1, eigenvalues.shape[0])
    if not eigenvalues[0] > 0:
        return ceiling
    return int(np.sum(eigenvalues[:ceiling] < threshold * eigenvalues[0]))


def collapsed_dims(X: Tensor | np.ndarray, *, threshold: float = COLLAPSED_DIM_THRESHOLD) -> int:
    r"""Number of collapsed directions of the covariance (Jing et al., 2022).

    .. math::

        \#\{k \le \min(N-1, D) : \lambda_k < \tau\,\lambda_1\}

    Only ranks up to :math:`\min(N-1, D)` count, so N < D is not mistaken for collapse.
    The default :math:`\tau = 10^{-6}` (singular values below 0.1% of the largest) sits
    above the float32 noise floor of the streamed covariance.

    Returns
    -------
    int
        In :math:`[0, \min(N-1, D)]`.

    References
    ----------
    .. [1] L. Jing, P. Vincent, Y. LeCun, Y. Tian, "Understanding dimensional collapse in
       contrastive self-supervised learning", ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> X = torch.randn(100, 4, dtype=torch.float64) @ torch.randn(4, 10, dtype=torch.float64)
    >>> collapsed_dims(X)
    6
    """
    spectra = _spectra(X)
    return collapsed_dims_from_spectrum(spectra.centred, spectra.n_samples, threshold=threshold)


def _is_float64(X: Tensor | np.ndarray) -> bool:
    return X.dtype in (torch.float64, np.float64)


def _spectra(X: Tensor | np.ndarray) -> Spectra:
    """Spectra of a whole matrix: the D×D primal form, or the N×N dual when N < D."""
    T = torch.as_tensor(check_embeddings(X))
    return Spectra.of_rows(T) if T.shape[0] < T.shape[1] else Spectra.of(Moments.of(T))
