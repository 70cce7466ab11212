"""`contrastive` analyzer: uniformity, alignment and over-fusion cosine signals (pairwise)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from geometry_probe.analyzers.base import PairwiseAnalyzer
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import contrastive as F
from geometry_probe.pairwise import inverse_norms
from geometry_probe.result import Result

PAIR_BUDGET = 5 * 10**8           # all pairs up to N ≈ 31,600; above, an estimate from sampled pairs
SAMPLED_PAIRS = 2 * 10**6
MATRIX_MAX_ROWS = 500


class Contrastive(PairwiseAnalyzer):
    """Alignment & uniformity (Wang & Isola), cosine statistics and positive/negative separation.

    Parameters
    ----------
    t : float, default=2.0
        Uniformity temperature.
    alpha : float, default=2.0
        Alignment exponent.
    threshold : float, default=0.9
        ``frac_cosine_above`` counts pairs with cosine above it.
    exact : bool, optional
        All pairs (True) or a sampled estimate (False); default: exact up to ``pair_budget`` pairs.
    pair_budget : int, default=5e8
    pairs : array of shape (M, 2), optional
        Row indices of positive pairs.
    views : array of shape (n_samples, n_features), optional
        A second view, aligned row by row (row i of ``views`` is the positive of row i).
    groups : array of shape (n_samples,), optional
        Group ids: all pairs within a group are positives.
    batch_size_estimator : int, default=256
        Batch size of ``uniformity_batch_averaged`` (the training-time estimator).
    seed : int, default=0

    Notes
    -----
    Rows are L2-normalised first; ``input_unit_norm`` says whether they already were. The
    estimate samples ``2e6`` pairs uniformly with replacement among distinct pairs: the mean of
    the kernel is unbiased and its standard error is the sample standard deviation over
    √M; the log of it (uniformity) has a delta-method standard error.
    """

    name: ClassVar[str] = "contrastive"
    uses_labels: ClassVar[bool] = False
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale", "permutation"})

    def __init__(self, *, t: float = 2.0, alpha: float = 2.0, threshold: float = 0.9, exact: bool | None = None,
                 pair_budget: int = PAIR_BUDGET, pairs: Any = None, views: Any = None, groups: Any = None,
                 batch_size_estimator: int = 256, seed: int = 0) -> None:
        super().__init__()
        self.t, self.alpha, self.threshold, self.exact = t, alpha, threshold, exact
        self.pair_budget, self.pairs, self.views, self.groups = pair_budget, pairs, views, groups
        self.batch_size_estimator, self.seed = batch_size_estimator, seed

    def run(self, emb: Embeddings, *, device: torch.device, batch_size: int) -> Result:
        """All signals for ``emb`` (pairs/views/groups, if given, define the positives)."""
        N = emb.n_samples
        X = emb.rows(np.arange(N), device=device)
        inv = inverse_norms(X)
        n_pairs = N * (N - 1) / 2
        exact = self.exact if self.exact is not None else n_pairs <= self.pair_budget
        notes: list[str] = []
        unit_norm = bool(torch.allclose(inv, torch.ones_like(inv), atol=1e-3))
        if not unit_norm:
            notes.append("the input rows were not unit-norm: they were L2-normalised first, as sphere metrics "
                         "require (pass normalised embeddings to silence this).")
        scalars: dict[str, float] = {"mean_cosine": F.mean_cosine(X), "input_unit_norm": float(unit_norm)}
        if exact:
            sums = F.all_pair_sums(X, t=self.t, threshold=self.threshold)
            scalars.update(uniformity=sums.uniformity, mean_abs_cosine=sums.sum_abs / sums.count,
                           frac_cosine_above=sums.above / sums.count)
            histogram = sums.histogram
            scalars["uniformity_self_included"] = math.log(
                (2 * math.exp(sums.log_sum_exp) + N) / (N * N))
        else:
            est = _sampled(X, inv, self.t, self.threshold, self.seed)
            scalars.update(est["scalars"])
            histogram = est["histogram"]
            notes.append(f"N={N}: {n_pairs:.3g} pairs exceed the pair budget {self.pair_budget:.3g}; the pair "
                         f"statistics are estimated from {SAMPLED_PAIRS} random pairs (stderr given); "
                         "pass exact=True (--exact) for all pairs.")
        scalars["uniformity_batch_averaged"] = _batch_averaged(X, self.t, self.batch_size_estimator, self.seed)
        arrays: dict[str, np.ndarray] = {"cosine_hist_edges": np.linspace(-1, 1, F.HIST_BINS + 1),
                                         "cosine_hist_all": histogram}
        positives = self._positives(emb, X, inv, device)
        if positives is not None:
            pos_cos, alignment = positives
            pos_hist = np.histogram(pos_cos, bins=F.HIST_BINS, range=(-1, 1))[0].astype(float)
            neg_hist = np.clip(histogram - pos_hist, 0, None) if self.views is None else histogram
            neg_mean = float((neg_hist * (arrays["cosine_hist_edges"][:-1] + 1 / F.HIST_BINS)).sum()
                             / max(neg_hist.sum(), 1))
            scalars.update(alignment=alignment, pos_mean_cosine=float(np.mean(pos_cos)), neg_mean_cosine=neg_mean,
                           pos_neg_gap=float(np.mean(pos_cos)) - neg_mean,
                           pos_neg_auc=F.auc_from_histograms(pos_hist, neg_hist))
            arrays.update(cosine_hist_pos=pos_hist, cosine_hist_neg=neg_hist)
        if N <= MATRIX_MAX_ROWS:
            order = np.argsort(emb.labels, kind="stable") if emb.labels is not None else np.arange(N)
            U = X[torch.as_tensor(order)].to(torch.float64) * inv[torch.as_tensor(order)].to(torch.float64)[:, None]
            arrays.update(sample_cosine_matrix=(U @ U.T).cpu().numpy(), sample_order=order)
        return Result(self.name, scalars, arrays=arrays, notes=tuple(notes),
                      params={"t": self.t, "alpha": self.alpha, "threshold": self.threshold,
                              "estimator": "exact all pairs i<j" if exact else f"{SAMPLED_PAIRS} sampled pairs",
                              "batch_size_estimator": self.batch_size_estimator, "normalisation": "L2 rows",
                              "pairs": "i<j (self excluded)"})

    def _positives(self, emb: Embeddings, X: torch.Tensor, inv: torch.Tensor,
                   device: torch.device) -> tuple[np.ndarray, float] | None:
        if self.views is not None:
            views = self.views if isinstance(self.views, torch.Tensor) else torch.from_numpy(np.array(self.views))
            Y = views.to(device=device, dtype=X.dtype)
            if Y.shape != X.shape:
                raise InvalidInputError(f"views: shape {tuple(Y.shape)} does not match the embeddings "
                                        f"{tuple(X.shape)}; row i of views must be the positive of row i.")
            cos = ((X * Y).sum(1) * inv * inverse_norms(Y)).clamp(-1, 1)
            return cos.cpu().numpy(), F.alignment(X, Y, alpha=self.alpha)
        if self.pairs is not None:
            P = np.asarray(self.pairs)
            if P.ndim != 2 or P.shape[1] != 2 or P.dtype.kind not in "iu":
                raise InvalidInputError(f"pairs: expected an integer array of shape (M, 2), got {P.shape} {P.dtype}.")
            if P.size and (P.min() < 0 or P.max() >= emb.n_samples):
                raise InvalidInputError(f"pairs: row indices must lie in [0, {emb.n_samples}); got "
                                        f"[{P.min()}, {P.max()}].")
            a, b = X[torch.as_tensor(P[:, 0])], X[torch.as_tensor(P[:, 1])]
            cos = ((a * b).sum(1) * inv[torch.as_tensor(P[:, 0])] * inv[torch.as_tensor(P[:, 1])]).clamp(-1, 1)
            return cos.cpu().numpy(), F.alignment(a, b, alpha=self.alpha)
        if self.groups is not None:
            g = np.asarray(self.groups)
            if g.shape != (emb.n_samples,):
                raise InvalidInputError(f"groups: expected {emb.n_samples} ids, got shape {g.shape}.")
            pairs = np.array([(i, j) for members in _members(g) for k, i in enumerate(members)
                              for j in members[k + 1:]], dtype=np.int64).reshape(-1, 2)
            return Contrastive(pairs=pairs, alpha=self.alpha)._positives(emb, X, inv, device)
        return None


def _members(groups: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(groups, kind="stable")
    _, starts = np.unique(groups[order], return_index=True)
    return [m for m in np.split(order, starts[1:]) if m.size > 1]


def _sampled(X: torch.Tensor, inv: torch.Tensor, t: float, threshold: float, seed: int) -> dict[str, Any]:
    N = X.shape[0]
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, N, (SAMPLED_PAIRS,), generator=g)
    j = (i + torch.randint(1, N, (SAMPLED_PAIRS,), generator=g)) % N          # uniform over j ≠ i
    cos = torch.cat([((X[i[s:s + 65536]] * X[j[s:s + 65536]]).sum(1) * inv[i[s:s + 65536]] * inv[j[s:s + 65536]])
                     for s in range(0, SAMPLED_PAIRS, 65536)]).clamp(-1, 1).to(torch.float64)
    kernel = torch.exp(-t * (2 - 2 * cos))
    M = float(cos.numel())
    mean_kernel, se_kernel = float(kernel.mean()), float(kernel.std() / math.sqrt(M))
    above = (cos > threshold).to(torch.float64)
    return {"scalars": {"uniformity": math.log(mean_kernel), "uniformity_stderr": se_kernel / mean_kernel,
                        "mean_abs_cosine": float(cos.abs().mean()),
                        "mean_abs_cosine_stderr": float(cos.abs().std() / math.sqrt(M)),
                        "frac_cosine_above": float(above.mean()),
                        "frac_cosine_above_stderr": float(above.std() / math.sqrt(M))},
            "histogram": torch.histc(cos, bins=F.HIST_BINS, min=-1, max=1).numpy() * (N * (N - 1) / 2 / M)}


def _batch_averaged(X: torch.Tensor, t: float, batch: int, seed: int) -> float:
    """Wang & Isola's training estimator: the mean over random batches of each batch's uniformity."""
    N = X.shape[0]
    if N < 2:
        return math.nan
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    values = [F.all_pair_sums(X[order[s:s + batch]], t=t).uniformity for s in range(0, N, batch)
              if min(batch, N - s) >= 2]
    return float(np.mean(values))
