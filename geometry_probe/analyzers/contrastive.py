"""`contrastive` analyzer: uniformity, alignment and over-fusion cosine signals (pairwise)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from geometry_probe import distributed
from geometry_probe.analyzers.base import PairwiseAnalyzer
from geometry_probe.analyzers.positives import Positives, chunk_rows
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import contrastive as F
from geometry_probe.functional.infonce import infonce_terms
from geometry_probe.pairwise import Tile, inverse_norms, unit_rows
from geometry_probe.result import Result

PAIR_BUDGET = 5 * 10**8           # all pairs up to N ≈ 31,600; above, an estimate from sampled pairs
SAMPLED_PAIRS = 2 * 10**6
MATRIX_MAX_ROWS = 500
MAX_ESTIMATOR_BATCHES = 1024
ESTIMATOR_GROUP = 64              # batches of the batch-averaged estimator per batched product
SAMPLED_ANCHORS = 4096            # InfoNCE anchors above the pair budget (each against all N keys)


class Contrastive(PairwiseAnalyzer):
    r"""Alignment & uniformity (Wang & Isola), cosine statistics and positive/negative separation.

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
    temperature : float, default=0.1
        τ of the InfoNCE diagnostics (with positives; see
        :mod:`geometry_probe.functional.infonce`).
    nt_xent : bool, default=True
        Also NT-Xent (needs the within-view similarities of both views: twice the pair work).
    seed : int, default=0

    Notes
    -----
    Rows are L2-normalised first; ``input_unit_norm`` says whether they already were.
    With labels, ``tolerance`` is the mean cosine over same-label pairs i < j and
    ``tolerance_joint`` Wang & Liu's literal expectation over all pairs (exact, O(ND), from class
    sums). ``distance_cv`` is std/mean of the pairwise distances :math:`\lVert\hat x_i-\hat x_j\rVert`
    over pairs i < j (0 for a regular simplex), exact in the tile pass. With positives (views,
    pairs or groups) the InfoNCE family at ``temperature`` is added (the f-MICL objectives are
    the ``fmicl`` analyzer's); with ``pairs``/``groups`` the M pairs form the batch (anchors the
    first rows of the pairs, keys the second), as in CLIP/MoCo.
    ``mean_sq_cosine`` is :math:`\frac{2}{N(N-1)}\sum_{i<j}\cos^2\theta_{ij}`, which is
    :math:`1/D` for directions uniform on :math:`S^{D-1}` and 1 when every pair is parallel or
    antiparallel (it sees an antipodal line that the mean cosine misses). The
    estimate samples ``2e6`` pairs uniformly with replacement among distinct pairs: the mean of
    the kernel is unbiased and its standard error is the sample standard deviation over
    √M; the log of it (uniformity) has a delta-method standard error.
    """

    name: ClassVar[str] = "contrastive"
    uses_labels: ClassVar[bool] = True           # tolerance
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale", "permutation"})

    def __init__(self, *, t: float = 2.0, alpha: float = 2.0, threshold: float = 0.9, exact: bool | None = None,
                 pair_budget: int = PAIR_BUDGET, pairs: Any = None, views: Any = None, groups: Any = None,
                 batch_size_estimator: int = 256, temperature: float = 0.1, nt_xent: bool = True,
                 seed: int = 0) -> None:
        super().__init__()
        self.t, self.alpha, self.threshold, self.exact = t, alpha, threshold, exact
        self.pair_budget, self.positives = pair_budget, Positives(views, pairs, groups)
        self.batch_size_estimator, self.seed = batch_size_estimator, seed
        if not (math.isfinite(temperature) and temperature > 0):
            raise InvalidInputError(f"temperature must be finite and > 0, got {temperature!r}.")
        self.temperature, self.nt_xent = temperature, nt_xent

    def start(self, emb: Embeddings, *, device: torch.device) -> ContrastivePass | None:
        """All-pairs sums for the shared pass when exact, else ``None`` (sampled estimate)."""
        if not self._exact(emb.n_samples):
            return None
        unit_sum, _ = _unit_row_sum(emb, device)
        shift = F.rms_distance(F.mean_cosine_from_sum(unit_sum, emb.n_samples)) if emb.n_samples > 1 else 0.0
        return ContrastivePass(F.PairSums(t=self.t, threshold=self.threshold), F.DistanceSums(shift=shift))

    def _exact(self, n_samples: int) -> bool:
        return self.exact if self.exact is not None else n_samples * (n_samples - 1) / 2 <= self.pair_budget

    def finish(self, emb: Embeddings, X: torch.Tensor | None, consumer: ContrastivePass | None, *,
               device: torch.device, dtype: torch.dtype) -> Result:
        """All signals for ``emb`` (pairs/views/groups, if given, define the positives)."""
        N = emb.n_samples
        n_pairs = N * (N - 1) / 2
        notes: list[str] = []
        unit_sum, unit_norm = _unit_row_sum(emb, device)
        if not unit_norm:
            notes.append("the input rows were not unit-norm: they were L2-normalised first, as sphere metrics "
                         "require (pass normalised embeddings to silence this).")
        scalars: dict[str, float] = {"mean_cosine": F.mean_cosine_from_sum(unit_sum, N),
                                     "input_unit_norm": float(unit_norm)}
        if consumer is not None:
            sums = consumer.pair_sums
            scalars["distance_cv"] = consumer.distances.coefficient_of_variation
            scalars.update(uniformity=sums.uniformity, mean_abs_cosine=sums.sum_abs / sums.count,
                           mean_sq_cosine=sums.sum_sq / sums.count,
                           frac_cosine_above=sums.above / sums.count)
            histogram = sums.histogram
            scalars["uniformity_self_included"] = math.log(
                (2 * math.exp(sums.log_sum_exp) + N) / (N * N))
        else:
            est = _sampled(emb, device, self.t, self.threshold, self.seed)
            scalars.update(est["scalars"])
            scalars.update(_sampled_distance_cv(est["cosines"]))
            histogram = est["histogram"]
            notes.append(f"N={N}: {n_pairs:.3g} pairs exceed the pair budget {self.pair_budget:.3g}; the pair "
                         f"statistics are estimated from {SAMPLED_PAIRS} random pairs (stderr given); "
                         "pass exact=True (--exact) for all pairs.")
        averaged, n_batches = _batch_averaged(emb, device, self.t, self.batch_size_estimator, self.seed)
        scalars["uniformity_batch_averaged"] = averaged
        arrays: dict[str, np.ndarray] = {"cosine_hist_edges": np.linspace(-1, 1, F.HIST_BINS + 1),
                                         "cosine_hist_all": histogram}
        if emb.labels is not None:
            scalars["tolerance"], scalars["tolerance_joint"] = _tolerance(emb, device)
        params_extra: dict[str, Any] = {}
        positives = self.positives.cosines(emb, device, self.alpha)
        if positives is not None:
            params_extra = self._infonce(emb, device, dtype, scalars, notes)
            pos_cos, alignment = positives
            pos_hist = F.cosine_histogram(torch.from_numpy(pos_cos))
            neg_hist = np.clip(histogram - pos_hist, 0, None) if self.positives.views is None else histogram
            neg_mean = float((neg_hist * (arrays["cosine_hist_edges"][:-1] + 1 / F.HIST_BINS)).sum()
                             / max(neg_hist.sum(), 1))
            scalars.update(alignment=alignment, pos_mean_cosine=float(np.mean(pos_cos)), neg_mean_cosine=neg_mean,
                           pos_neg_gap=float(np.mean(pos_cos)) - neg_mean,
                           pos_neg_auc=F.auc_from_histograms(pos_hist, neg_hist))
            arrays.update(cosine_hist_pos=pos_hist, cosine_hist_neg=neg_hist)
        if N <= MATRIX_MAX_ROWS:
            order = np.argsort(emb.labels, kind="stable") if emb.labels is not None else np.arange(N)
            U = unit_rows(emb.rows(order, device=device)).to(torch.float64)
            arrays.update(sample_cosine_matrix=(U @ U.T).cpu().numpy(), sample_order=order)
            if emb.labels is not None:
                arrays.update(sample_labels=np.asarray(emb.labels)[order])
        return Result(self.name, scalars, arrays=arrays, notes=tuple(notes),
                      params={"t": self.t, "alpha": self.alpha, "threshold": self.threshold,
                              "estimator": "exact all pairs i<j" if consumer is not None
                              else f"{SAMPLED_PAIRS} sampled pairs",
                              "pairwise_precision": str(dtype).removeprefix("torch."),
                              "batch_size_estimator": self.batch_size_estimator,
                              "batch_averaged_batches": n_batches, "normalisation": "L2 rows",
                              "pairs": "i<j (self excluded)",
                              "tolerance": "mean cosine over same-label pairs i<j (exact, class sums); "
                                           "tolerance_joint: same sum over all N(N-1) ordered pairs",
                              "distance_cv": "population std/mean of |x_i - x_j| over pairs i<j" + (
                                  " (exact)" if consumer is not None else f" ({SAMPLED_PAIRS} sampled pairs)"),
                              **params_extra})

    def _infonce(self, emb: Embeddings, device: torch.device, dtype: torch.dtype, scalars: dict[str, float],
                 notes: list[str]) -> dict[str, Any]:
        """InfoNCE at ``temperature`` (into ``scalars``); returns its params."""
        anchors_view, keys_view = self.positives.paired_rows(emb, device)
        M = anchors_view.shape[0]
        sampled = not self._exact(emb.n_samples) and M > SAMPLED_ANCHORS
        params: dict[str, Any] = {"temperature": self.temperature}
        if M < 2:
            notes.append("InfoNCE needs at least 2 positive pairs; it was skipped.")
            return params
        rng = np.random.default_rng(self.seed)
        anchors = np.sort(rng.choice(M, SAMPLED_ANCHORS, replace=False)) if sampled else None
        terms = infonce_terms(anchors_view, keys_view, [self.temperature], anchors=anchors, nt_xent=self.nt_xent,
                              dtype=dtype)
        scalars.update(terms.at(0))
        if terms.stderr is not None:
            scalars.update({f"{k}_stderr": float(v[0]) for k, v in terms.stderr.items()})
        params["infonce"] = ("one direction (anchors -> keys), positive in the denominator (CLIP/MoCo); "
                             "infonce_symmetric: mean of both directions; nt_xent: 2N-1 candidates (SimCLR); "
                             "effective_negatives: mean over anchors of exp(entropy of the softmax over "
                             "negatives); " + (f"{SAMPLED_ANCHORS} sampled anchors x all keys" if sampled
                                               else "exact, all anchors x all keys"))
        return params


class ContrastivePass:
    """The analyzer's consumer of the shared tile pass: pair sums and distance sums."""

    def __init__(self, pair_sums: F.PairSums, distances: F.DistanceSums) -> None:
        self.pair_sums, self.distances = pair_sums, distances
        self._parts = [pair_sums, distances]

    def add_tile(self, tile: Tile) -> None:
        """Feed ``tile`` to every part."""
        for part in self._parts:
            part.add_tile(tile)

    @property
    def parts(self) -> list[F.PairSums | F.DistanceSums]:
        """The additive sums it feeds (``torch.distributed`` reduces each over the ranks)."""
        return list(self._parts)


def _tolerance(emb: Embeddings, device: torch.device) -> tuple[float, float]:
    """Tolerance (conditional, joint) from per-class sums of unit rows, streamed (under
    ``torch.distributed`` each rank its own rows, the sums added over the ranks)."""
    C = emb.n_classes
    sums = torch.zeros((C, emb.n_features), dtype=torch.float64, device=device)
    counts = torch.zeros(C, dtype=torch.float64)
    for X, y, offset in distributed.local_batches(emb, chunk_rows(emb.n_features), device=device):
        U = X.to(torch.float64) * inverse_norms(X, offset=offset).to(torch.float64)[:, None]
        sums.index_add_(0, y.to(device=device, dtype=torch.int64), U)
        counts += torch.bincount(y.cpu(), minlength=C).to(torch.float64)
    totals = distributed.sum_over_ranks(torch.cat([sums.cpu().flatten(), counts]))
    return F.tolerance_from_class_sums(totals[:-C].view(C, -1).numpy(), totals[-C:].numpy())


def _sampled_distance_cv(cos: torch.Tensor) -> dict[str, float]:
    """distance_cv from sampled pair cosines, with a delta-method standard error."""
    d = torch.sqrt(torch.clamp(2 - 2 * cos, min=0)).to(torch.float64)
    M = d.numel()
    m1, m2 = float(d.mean()), float((d * d).mean())
    var = max(m2 - m1 * m1, 0.0)
    cv = math.sqrt(var) / m1 if m1 > 0 else math.nan
    if not (cv > 0) or M < 2:
        return {"distance_cv": cv, "distance_cv_stderr": math.nan}
    # cv = sqrt(m2 - m1²)/m1: gradient w.r.t. (m1, m2), covariance of (d, d²)/M
    g1 = -m2 / (m1 * m1 * math.sqrt(var))
    g2 = 1 / (2 * m1 * math.sqrt(var))
    cov = np.cov(np.stack([d.cpu().numpy(), (d * d).cpu().numpy()]))
    se = math.sqrt(max(g1 * g1 * cov[0, 0] + 2 * g1 * g2 * cov[0, 1] + g2 * g2 * cov[1, 1], 0.0) / M)
    return {"distance_cv": cv, "distance_cv_stderr": se}


def _unit_row_sum(emb: Embeddings, device: torch.device) -> tuple[torch.Tensor, bool]:
    """Float64 sum of the unit rows (streamed) and whether the input rows were unit-norm."""
    total = torch.zeros(emb.n_features, dtype=torch.float64, device=device)
    unit_norm = True
    for X, _, offset in distributed.local_batches(emb, chunk_rows(emb.n_features), device=device):
        inv = inverse_norms(X, offset=offset).to(torch.float64)
        unit_norm &= bool(((inv - 1).abs() < 1e-3).all())
        total += (X.to(torch.float64) * inv[:, None]).sum(dim=0)
    not_unit = distributed.sum_over_ranks(torch.tensor([0.0 if unit_norm else 1.0], dtype=torch.float64))
    return distributed.sum_over_ranks(total), bool(not_unit[0] == 0)


def _sampled(emb: Embeddings, device: torch.device, t: float, threshold: float, seed: int) -> dict[str, Any]:
    """Unbiased estimates from ``SAMPLED_PAIRS`` pairs drawn uniformly among distinct pairs;
    rows are fetched chunk by chunk (never all at once)."""
    N = emb.n_samples
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, N, (SAMPLED_PAIRS,), generator=g)
    j = (i + torch.randint(1, N, (SAMPLED_PAIRS,), generator=g)) % N          # uniform over j ≠ i
    rows = chunk_rows(emb.n_features)
    starts = range(0, SAMPLED_PAIRS, rows)                     # chunks shared out over torch.distributed ranks
    cos = distributed.shared_concat(
        [min(rows, SAMPLED_PAIRS - s) for s in starts],
        lambda c: (unit_rows(emb.rows(i[starts[c]:starts[c] + rows].numpy(), device=device))
                   * unit_rows(emb.rows(j[starts[c]:starts[c] + rows].numpy(), device=device))).sum(1),
        dtype=torch.float32).clamp(-1, 1).to(torch.float64)
    kernel = torch.exp(-t * (2 - 2 * cos))
    M = float(cos.numel())
    mean_kernel, se_kernel = float(kernel.mean()), float(kernel.std() / math.sqrt(M))
    above = (cos > threshold).to(torch.float64)
    return {"scalars": {"uniformity": math.log(mean_kernel), "uniformity_stderr": se_kernel / mean_kernel,
                        "mean_abs_cosine": float(cos.abs().mean()),
                        "mean_abs_cosine_stderr": float(cos.abs().std() / math.sqrt(M)),
                        "mean_sq_cosine": float(cos.square().mean()),
                        "mean_sq_cosine_stderr": float(cos.square().std() / math.sqrt(M)),
                        "frac_cosine_above": float(above.mean()),
                        "frac_cosine_above_stderr": float(above.std() / math.sqrt(M))},
            "histogram": F.cosine_histogram(cos) * (N * (N - 1) / 2 / M), "cosines": cos}


def _batch_averaged(emb: Embeddings, device: torch.device, t: float, batch: int, seed: int) -> tuple[float, int]:
    """Wang & Isola's training estimator: the mean over random batches of each batch's
    uniformity (at most ``MAX_ESTIMATOR_BATCHES`` batches: its expectation does not depend on N).

    Full batches go through batched matrix products, ``ESTIMATOR_GROUP`` batches at a time
    (a few large operations instead of a dozen small ones per batch); a last, shorter batch
    (at least 2 rows) through :func:`~geometry_probe.functional.contrastive.all_pair_sums`.
    """
    N = emb.n_samples
    if N < 2:
        return math.nan, 0
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed)).numpy()
    starts = [s for s in range(0, N, batch) if min(batch, N - s) >= 2][:MAX_ESTIMATOR_BATCHES]
    full = [s for s in starts if s + batch <= N]
    groups = [full[g:g + ESTIMATOR_GROUP] for g in range(0, len(full), ESTIMATOR_GROUP)]

    def group_values(g: int) -> torch.Tensor:
        index = np.concatenate([order[s:s + batch] for s in groups[g]])
        U = unit_rows(emb.rows(index, device=device)).to(torch.float32).view(len(groups[g]), batch, -1)
        kernel = torch.bmm(U, U.transpose(1, 2)).sub_(1).mul_(2 * t).exp_()        # e^{-t‖u_i − u_j‖²}
        kernel.diagonal(dim1=1, dim2=2).zero_()
        per_batch = kernel.sum(dim=(1, 2)).to(torch.float64) / (batch * (batch - 1))
        return torch.log(per_batch)

    values = distributed.shared_concat([len(g) for g in groups], group_values, dtype=torch.float64).tolist()
    values += [F.all_pair_sums(emb.rows(order[s:], device=device), t=t, full=False).uniformity
               for s in starts if s + batch > N]
    return float(np.mean(values)), len(values)
