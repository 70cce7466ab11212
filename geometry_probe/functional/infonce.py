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

Each row's log-sum-exp is accumulated online across tiles (running maximum in cosine units,
rescaled sums, float64), for all temperatures in one pass over the tiles.

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
_MASKED = -1e30                         # an excluded candidate: e^{(_MASKED)/τ} = 0 and 0·_MASKED = 0


class SoftmaxRows:
    r"""Per-row online softmax sums over candidate columns, for several temperatures at once.

    For row :math:`i`, with :math:`m_i` the largest cosine seen so far and
    :math:`d_{ij} = s_{ij} - m_i`, it keeps :math:`S_{ki} = \sum_j e^{d_{ij}/\tau_k}` and
    :math:`W_{ki} = \sum_j e^{d_{ij}/\tau_k}\, d_{ij}/\tau_k` in float64; a larger maximum
    rescales both. Then :math:`\mathrm{LSE} = m/\tau + \log S` and the softmax entropy is
    :math:`\log S - W/S`.

    Parameters
    ----------
    n_rows : int
    taus : sequence of float
        Temperatures (> 0).
    device : torch.device
    """

    def __init__(self, n_rows: int, taus: Sequence[float], device: torch.device) -> None:
        self.taus = torch.tensor([float(t) for t in taus], dtype=torch.float64, device=device)
        self.max = torch.full((n_rows,), -math.inf, dtype=torch.float64, device=device)
        self.sum = torch.zeros((len(taus), n_rows), dtype=torch.float64, device=device)
        self.weighted = torch.zeros_like(self.sum)
        self._scratch: Tensor | None = None

    def add(self, rows: slice, cols: slice, cosine: Tensor, exclude: Tensor | None) -> None:
        """Add the candidates ``cols`` of rows ``rows`` (``cosine``: (rows, cols), any strides);
        ``exclude[r]`` is the one column (global index) row ``rows.start + r`` must skip."""
        d = self._scratch_for(cosine)
        d.copy_(cosine)
        if exclude is not None:
            local = exclude[rows] - cols.start
            hit = (local >= 0) & (local < d.shape[1])
            d[hit.nonzero().flatten(), local[hit]] = _MASKED
        tile_max = d.max(dim=1).values.to(torch.float64).clamp_(min=-1.5)   # cosines ≥ −1: a fully
        #                                      excluded row keeps S = 0 instead of counting e^0 for _MASKED
        old = self.max[rows]
        new = torch.maximum(old, tile_max)
        shift = torch.where(torch.isfinite(old), old - new, torch.zeros_like(old))     # ≤ 0
        d.sub_(new.to(d.dtype)[:, None])
        e = self._exp_for(d)
        for k, tau in enumerate(self.taus.tolist()):
            scale = torch.exp(shift / tau)
            s_old = self.sum[k, rows]
            self.weighted[k, rows] = scale * (self.weighted[k, rows] + shift / tau * s_old)
            torch.div(d, tau, out=e).exp_()
            tile_sum = e.sum(dim=1, dtype=torch.float64) if e.dtype != torch.float64 else e.sum(dim=1)
            weighted = torch.bmm(e.unsqueeze(1), d.unsqueeze(2)).flatten().to(torch.float64) / tau
            self.sum[k, rows] = scale * s_old + tile_sum
            self.weighted[k, rows] += weighted
        self.max[rows] = new

    def _scratch_for(self, cosine: Tensor) -> Tensor:
        n = cosine.numel()
        if self._scratch is None or self._scratch.numel() < 2 * n or self._scratch.dtype != cosine.dtype:
            self._scratch = torch.empty(2 * n, dtype=cosine.dtype, device=cosine.device)
        return self._scratch[:n].view(cosine.shape)

    def _exp_for(self, d: Tensor) -> Tensor:
        """The second half of the scratch buffer, shaped like ``d`` (the exponentials)."""
        return self._scratch[d.numel():2 * d.numel()].view(d.shape)

    def log_sum_exp(self) -> Tensor:
        """(n_taus, n_rows) float64: log Σ_j e^{s_ij/τ} over the candidates added."""
        return self.max[None, :] / self.taus[:, None] + torch.log(self.sum)

    def entropy(self) -> Tensor:
        """(n_taus, n_rows) float64: entropy of each row's softmax over its candidates."""
        return torch.log(self.sum) - self.weighted / self.sum


def cross_pass(A: Tensor, B: Tensor, taus: Sequence[float], *, exclude_a: Tensor, exclude_b: Tensor | None = None,
               same: bool = False, tile: int | None = None) -> tuple[SoftmaxRows, SoftmaxRows | None]:
    """Softmax sums of the rows of ``A`` over the rows of ``B`` (and of ``B`` over ``A`` when
    ``exclude_b`` is given), one GEMM per tile of ``A Bᵀ``.

    ``A`` and ``B`` are unit rows in the GEMM dtype. ``same=True`` (``A is B``) walks the upper
    triangle only and feeds each off-diagonal tile to both of its row blocks.
    """
    tile = tile or tile_size(max(A.shape[0], B.shape[0]), device=A.device)
    rows_acc = SoftmaxRows(A.shape[0], taus, A.device)
    cols_acc = SoftmaxRows(B.shape[0], taus, A.device) if exclude_b is not None and not same else None
    buffer = torch.empty(tile * tile, dtype=A.dtype, device=A.device)
    for i in range(0, A.shape[0], tile):
        I = slice(i, min(i + tile, A.shape[0]))
        for j in range(i if same else 0, B.shape[0], tile):
            J = slice(j, min(j + tile, B.shape[0]))
            C = torch.mm(A[I], B[J].T, out=buffer[:(I.stop - I.start) * (J.stop - J.start)].view(
                I.stop - I.start, J.stop - J.start))
            rows_acc.add(I, J, C, exclude_a)
            if same and j != i:
                rows_acc.add(J, I, C.T, exclude_a)
            if cols_acc is not None:
                cols_acc.add(J, I, C.T, exclude_b)
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
        xy, yx = cross_pass(U, V, taus, exclude_a=idx, exclude_b=idx, tile=tile)
        xx = cross_pass(U, U, taus, exclude_a=idx, same=True, tile=tile)[0] if nt_xent else None
        yy = cross_pass(V, V, taus, exclude_a=idx, same=True, tile=tile)[0] if nt_xent else None
    else:
        idx = torch.as_tensor(np.asarray(anchors), dtype=torch.int64, device=U.device)
        pos = _positive_cosines(X, Y, idx)
        xy = cross_pass(U[idx], V, taus, exclude_a=idx, tile=tile)[0]
        yx = cross_pass(V[idx], U, taus, exclude_a=idx, tile=tile)[0]
        xx = cross_pass(U[idx], U, taus, exclude_a=idx, tile=tile)[0] if nt_xent else None
        yy = cross_pass(V[idx], V, taus, exclude_a=idx, tile=tile)[0] if nt_xent else None
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


def _per_anchor(pos: Tensor, xy: SoftmaxRows, yx: SoftmaxRows, xx: SoftmaxRows | None, yy: SoftmaxRows | None,
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
