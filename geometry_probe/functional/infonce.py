r"""InfoNCE diagnostics of paired views at one or several temperatures, in tiles (no N×N matrix).

Rows :math:`\hat x_i` and :math:`\hat y_i` (L2-normalised) are two views of sample :math:`i`;
:math:`s_{ij} = \hat x_i^\top \hat y_j` is the cross-view cosine. For a temperature
:math:`\tau`, with :math:`\mathrm{LSE}_i = \log \sum_{j=1}^{N} e^{s_{ij}/\tau}` (the positive
:math:`j = i` included in the denominator, as in CLIP and MoCo):

.. math::

    \mathcal L_{\text{InfoNCE}} = \frac1N\sum_i \Bigl(-\frac{s_{ii}}{\tau} + \mathrm{LSE}_i\Bigr)
    = \underbrace{-\frac{1}{N\tau}\sum_i s_{ii}}_{\text{alignment}}
    + \underbrace{\frac1N\sum_i \mathrm{LSE}_i}_{\text{uniformity}} .

``infonce`` is the one-direction loss (views ``X`` as anchors, ``Y`` as keys);
``infonce_symmetric`` averages it with the ``Y → X`` direction (CLIP); ``nt_xent`` is SimCLR's
loss over the :math:`2N` rows, each anchor against its :math:`2N - 1` other rows (the other view
of its sample is the positive). ``effective_negatives`` is :math:`\frac1N\sum_i e^{H_i}`, where
:math:`H_i` is the entropy of the softmax over the negatives of anchor :math:`i`,
:math:`r_{ij} = e^{s_{ij}/\tau} / \sum_{k\ne i} e^{s_{ik}/\tau}` (Wang & Liu's relative
penalty): 1 when one negative takes all the penalty, :math:`N - 1` when all share it equally.
Complete collapse (every row identical) gives ``infonce`` :math:`= \ln N`, ``nt_xent``
:math:`= \ln(2N-1)` and ``effective_negatives`` :math:`= N - 1` at every temperature.

Each row's sum of exponentials is accumulated across tiles in float64, for all temperatures in
one pass over the tiles. Cosines are bounded, so no running maximum is needed: the exponentials
are taken in float32 for τ ≥ 1/64 and in float64 down to τ = 1/640 (smaller τ are refused).

References
----------
.. [1] A. van den Oord, Y. Li, O. Vinyals, "Representation learning with contrastive predictive
   coding", arXiv:1807.03748, 2018.
.. [2] T. Chen et al., "A simple framework for contrastive learning of visual representations"
   (SimCLR, NT-Xent), ICML 2020.
.. [3] F. Wang and H. Liu, "Understanding the behaviour of contrastive loss", CVPR 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidInputError
from geometry_probe.pairwise import tile_size, unit_rows

INFONCE_QUANTITIES = ("infonce", "infonce_alignment", "infonce_uniformity", "infonce_symmetric", "nt_xent",
                      "effective_negatives")
# Largest |s/τ| whose exponential, summed over a tile row (and times s/τ), stays finite and normal:
# float32 e^{±64} (6e27 · 64 · 11,585 columns < 3e38), float64 e^{±640}.
MAX_LOGIT = {torch.float32: 64.0, torch.float64: 640.0}
MIN_TAU = 1 / MAX_LOGIT[torch.float64]


class SoftmaxSums:
    r"""Per-row sums of :math:`e^{s_{ij}/\tau_k}` over candidate columns, for several temperatures.

    It keeps :math:`S_{ki} = \sum_j e^{s_{ij}/\tau_k}` in float64. Cosines are bounded
    (:math:`|s_{ij}| \le 1`), so no running maximum is needed: every term lies between
    :math:`e^{-1/\tau}` and :math:`e^{1/\tau}`, which float32 holds for τ ≥ 1/64 and float64
    for τ ≥ 1/640; :math:`\mathrm{LSE} = \log S`. With a per-row reference cosine
    :math:`c_i` (``entropy_shift``) it also keeps
    :math:`W_{ki} = \sum_j e^{s_{ij}/\tau_k}\,(s_{ij} - c_i)/\tau_k`, and the softmax entropy is
    :math:`\log S - c/\tau - W/S`. The entropy is a difference of two terms of size
    :math:`\sim|s - c|/\tau`, so a reference near the row's largest cosines (the positive's)
    keeps it accurate in float32 where :math:`c = 0` would lose :math:`\sim 10^{-7}/\tau`.

    Parameters
    ----------
    n_rows : int
    taus : sequence of float
    device : torch.device
    entropy_shift : Tensor of shape (n_rows,), optional
        float64 reference cosines :math:`c_i`; keep the entropy sums.
    """

    def __init__(self, n_rows: int, taus: Sequence[float], device: torch.device, *,
                 entropy_shift: Tensor | None = None) -> None:
        self.taus = torch.tensor([float(t) for t in taus], dtype=torch.float64, device=device)
        self.sum = torch.zeros((len(taus), n_rows), dtype=torch.float64, device=device)
        self.shift = entropy_shift
        self.weighted = torch.zeros_like(self.sum) if entropy_shift is not None else None

    def log_sum_exp(self) -> Tensor:
        """(n_taus, n_rows) float64: log Σ_j e^{s_ij/τ} over the candidates added."""
        return torch.log(self.sum)

    def entropy(self) -> Tensor:
        """(n_taus, n_rows) float64: entropy of each row's softmax over its candidates."""
        if self.weighted is None:
            raise RuntimeError("SoftmaxSums without entropy_shift keeps no entropy sums.")
        return torch.log(self.sum) - self.shift[None, :] / self.taus[:, None] - self.weighted / self.sum


def cross_pass(A: Tensor, B: Tensor, taus: Sequence[float], *, exclude: Tensor, columns: bool = False,
               same: bool = False, entropy_shift: Tensor | None = None,
               tile: int | None = None) -> tuple[SoftmaxSums, SoftmaxSums | None]:
    """Softmax sums of the rows of ``A`` over the rows of ``B``, one GEMM per tile of ``A Bᵀ``
    and one exponential per tile and temperature.

    ``A`` and ``B`` are unit rows in the GEMM dtype; ``exclude[r]`` is the one column (global
    index) row ``r`` of ``A`` skips. ``columns=True`` also sums over the rows of ``A`` for each
    row of ``B`` (the ``B → A`` direction), from the same exponentials; it needs a symmetric
    exclusion (``exclude[i] = i``, as for paired views). ``same=True`` (``A is B``) walks the
    upper triangle only and feeds each off-diagonal tile to both of its row blocks.
    ``entropy_shift`` (float64 cosines, one per row of ``A``) keeps the rows' entropy sums
    (see :class:`SoftmaxSums`).
    """
    tile = tile or tile_size(max(A.shape[0], B.shape[0]), device=A.device)
    taus = [float(t) for t in taus]
    exp_dtype = torch.float64 if A.dtype == torch.float64 or 1 / min(taus) > MAX_LOGIT[torch.float32] \
        else torch.float32
    rows_acc = SoftmaxSums(A.shape[0], taus, A.device, entropy_shift=entropy_shift)
    cols_acc = SoftmaxSums(B.shape[0], taus, A.device) if columns and not same else None
    A = A * (1 / taus[0])                                   # the tile GEMM gives s/τ₀ directly
    gemm = torch.empty(tile * tile, dtype=A.dtype, device=A.device)
    logits = torch.empty(tile * tile, dtype=exp_dtype, device=A.device)
    exps = torch.empty(tile * tile, dtype=exp_dtype, device=A.device)
    for i in range(0, A.shape[0], tile):
        I = slice(i, min(i + tile, A.shape[0]))
        for j in range(i if same else 0, B.shape[0], tile):
            J = slice(j, min(j + tile, B.shape[0]))
            shape = (I.stop - I.start, J.stop - J.start)
            C = torch.mm(A[I], B[J].T, out=gemm[:shape[0] * shape[1]].view(shape))
            local = exclude[I] - J.start
            hit = ((local >= 0) & (local < shape[1])).nonzero().flatten()
            for k, tau in enumerate(taus):
                if k == 0 and C.dtype == exp_dtype and (entropy_shift is None or len(taus) == 1):
                    L = C                                       # s/τ₀ itself (not needed after this τ)
                else:
                    L = torch.mul(C, taus[0] / tau, out=logits[:C.numel()].view(shape))
                E = torch.exp(L, out=exps[:C.numel()].view(shape))
                E[hit, local[hit]] = 0
                rows_acc.sum[k, I] += E.sum(dim=1).to(torch.float64)
                if same and j != i:
                    rows_acc.sum[k, J] += E.sum(dim=0).to(torch.float64)
                elif cols_acc is not None:
                    cols_acc.sum[k, J] += E.sum(dim=0).to(torch.float64)
                if entropy_shift is not None:                   # W += Σ_j e^{L} (L − c/τ), in place of L
                    L = L.sub_((entropy_shift[I] / tau).to(L.dtype)[:, None])
                    rows_acc.weighted[k, I] += torch.bmm(E.unsqueeze(1), L.unsqueeze(2)).flatten().to(torch.float64)
    return rows_acc, cols_acc


@dataclass(frozen=True)
class InfoNCETerms:
    """Per-temperature InfoNCE quantities (each an array over ``taus``) and, for a sampled
    estimate, their standard errors (``None`` when every anchor was used).

    Attributes
    ----------
    taus : ndarray
    values : dict of str to ndarray
        One array per name in ``INFONCE_QUANTITIES``.
    stderr : dict of str to ndarray or None
    n_anchors : int
    """

    taus: np.ndarray
    values: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray] | None
    n_anchors: int

    def at(self, index: int) -> dict[str, float]:
        """The quantities at ``taus[index]`` as plain floats."""
        return {name: float(v[index]) for name, v in self.values.items()}


def infonce_terms(X: Tensor | np.ndarray, Y: Tensor | np.ndarray, taus: Sequence[float] = (0.1,), *,
                  anchors: np.ndarray | None = None, nt_xent: bool = True, tile: int | None = None,
                  dtype: torch.dtype = torch.float32) -> InfoNCETerms:
    r"""InfoNCE, its alignment/uniformity decomposition, symmetric and NT-Xent variants, and
    the effective number of negatives, for every temperature in one pass.

    Parameters
    ----------
    X, Y : array or Tensor of shape (n_samples, n_features)
        Two views: row i of ``Y`` is the positive of row i of ``X``. Rows are L2-normalised.
    taus : sequence of float, default=(0.1,)
        Temperatures, each > 0.
    anchors : array of int, optional
        Use only these anchor rows (each still against all N keys): an unbiased estimate of
        every mean, with standard errors. Default: all rows (exact).
    nt_xent : bool, default=True
        Also the NT-Xent loss (needs the within-view similarities: twice the work).
    tile : int, optional
        Rows per tile (default from the memory budget).
    dtype : torch.dtype, default=torch.float32
        GEMM dtype (``torch.float64`` for exact reference values).

    Returns
    -------
    InfoNCETerms

    Examples
    --------
    >>> import numpy as np
    >>> X = np.ones((4, 3))
    >>> terms = infonce_terms(X, X, taus=[0.5])
    >>> round(terms.at(0)["infonce"], 6), round(float(np.log(4)), 6)       # complete collapse: ln N
    (1.386294, 1.386294)
    >>> round(terms.at(0)["effective_negatives"], 6)                     # N − 1
    3.0
    """
    taus = _check_taus(taus)
    X, Y = torch.as_tensor(X), torch.as_tensor(Y)
    if X.ndim != 2 or X.shape != Y.shape:
        raise InvalidInputError(f"views: shape {tuple(Y.shape)} does not match the embeddings {tuple(X.shape)}; "
                                "row i of the views must be the positive of row i.")
    N = X.shape[0]
    if N < 2:
        raise InvalidInputError(f"InfoNCE needs at least 2 pairs (one negative per anchor), got {N}.")
    U, V = unit_rows(X).to(dtype), unit_rows(Y).to(dtype)
    if anchors is None:
        idx = torch.arange(N, device=U.device)
        pos = _positive_cosines(X, Y, idx)
        xy, yx = cross_pass(U, V, taus, exclude=idx, columns=True, entropy_shift=pos, tile=tile)
        xx = cross_pass(U, U, taus, exclude=idx, same=True, tile=tile)[0] if nt_xent else None
        yy = cross_pass(V, V, taus, exclude=idx, same=True, tile=tile)[0] if nt_xent else None
    else:
        idx = torch.as_tensor(np.asarray(anchors), dtype=torch.int64, device=U.device)
        pos = _positive_cosines(X, Y, idx)
        xy = cross_pass(U[idx], V, taus, exclude=idx, entropy_shift=pos, tile=tile)[0]
        yx = cross_pass(V[idx], U, taus, exclude=idx, tile=tile)[0]
        xx = cross_pass(U[idx], U, taus, exclude=idx, tile=tile)[0] if nt_xent else None
        yy = cross_pass(V[idx], V, taus, exclude=idx, tile=tile)[0] if nt_xent else None
    per_anchor = _per_anchor(pos, xy, yx, xx, yy, torch.tensor(taus, dtype=torch.float64, device=pos.device))
    values = {name: v.mean(dim=1).cpu().numpy() for name, v in per_anchor.items()}
    stderr = None
    if anchors is not None:
        m = len(idx)
        stderr = {name: (v.std(dim=1) / math.sqrt(m)).cpu().numpy() if m > 1 else np.full(len(taus), np.nan)
                  for name, v in per_anchor.items()}
    return InfoNCETerms(np.asarray(taus), values, stderr, len(idx))


def _positive_cosines(X: Tensor, Y: Tensor, rows: Tensor, chunk: int = 4096) -> Tensor:
    """float64 cosines of the positive pairs (X[i], Y[i]) for ``rows``, a chunk of rows at a time."""
    out = []
    for start in range(0, len(rows), chunk):
        r = rows[start:start + chunk]
        a, b = X[r].to(torch.float64), Y[r].to(torch.float64)
        out.append((a * b).sum(dim=1) / (torch.linalg.vector_norm(a, dim=1) * torch.linalg.vector_norm(b, dim=1)))
    return torch.cat(out)


def _per_anchor(pos: Tensor, xy: SoftmaxSums, yx: SoftmaxSums, xx: SoftmaxSums | None, yy: SoftmaxSums | None,
                taus: Tensor) -> dict[str, Tensor]:
    """(n_taus, n_anchors) float64 per-anchor values of every quantity."""
    p = pos[None, :] / taus[:, None]                             # s_ii / τ
    neg_xy, neg_yx = xy.log_sum_exp(), yx.log_sum_exp()
    lse_x, lse_y = torch.logaddexp(neg_xy, p), torch.logaddexp(neg_yx, p)
    out = {"infonce": lse_x - p, "infonce_alignment": -p, "infonce_uniformity": lse_x,
           "infonce_symmetric": 0.5 * ((lse_x - p) + (lse_y - p)),
           "effective_negatives": torch.exp(xy.entropy())}
    if xx is not None and yy is not None:
        nt_x = torch.logaddexp(lse_x, xx.log_sum_exp()) - p
        nt_y = torch.logaddexp(lse_y, yy.log_sum_exp()) - p
        out["nt_xent"] = 0.5 * (nt_x + nt_y)
    return out


def _check_taus(taus: Sequence[float]) -> list[float]:
    values = [float(t) for t in taus]
    if not values:
        raise InvalidInputError("temperatures: give at least one, e.g. 0.1.")
    bad = [t for t in values if not (math.isfinite(t) and t > 0)]
    if bad:
        raise InvalidInputError(f"temperatures must be finite and > 0, got {bad[0]!r}.")
    small = [t for t in values if t < MIN_TAU]
    if small:
        raise InvalidInputError(f"temperature {small[0]!r} is below {MIN_TAU:.5f}: e^(1/τ) overflows float64; "
                                "give τ >= 1/640 (CLIP's smallest learned τ is 0.01).")
    return values


def parse_taus(text: str) -> list[float]:
    """Temperatures from a comma-separated list such as ``"0.05,0.1,0.2,0.5,1"`` (each > 0)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(f"temperatures: {text!r} is not a comma-separated list of numbers, "
                                "e.g. 0.05,0.1,0.2,0.5,1.") from None
    return _check_taus(values)


def sweep_record(terms: InfoNCETerms, *, n_samples: int, n_features: int, nt_xent: bool) -> dict:
    """A JSON-ready record of a temperature sweep: the temperatures, one list per quantity, the
    conventions used and, for a sampled estimate, the standard errors."""
    record = {"schema": "geometry-probe/temperature-sweep/1", "n_samples": n_samples, "n_features": n_features,
              "taus": terms.taus.tolist(),
              "quantities": {name: values.tolist() for name, values in terms.values.items()},
              "params": {"infonce": "one direction X -> views, positive in the denominator (CLIP/MoCo)",
                         "infonce_symmetric": "mean of both directions",
                         "nt_xent": "2N-1 candidates per anchor (SimCLR)" if nt_xent else "not computed",
                         "effective_negatives": "mean over anchors of exp(entropy of the softmax over negatives)",
                         "normalisation": "L2 rows", "anchors": terms.n_anchors,
                         "estimator": "exact" if terms.stderr is None else "sampled anchors x all keys"}}
    if terms.stderr is not None:
        record["stderr"] = {name: values.tolist() for name, values in terms.stderr.items()}
    return record
