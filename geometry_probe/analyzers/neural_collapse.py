"""Streaming neural-collapse analyzer: NC1–NC4 and variants from shared per-class statistics."""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import numpy as np
import torch

from geometry_probe._validation import check_choice
from geometry_probe.analyzers.base import Analyzer
from geometry_probe.batch import Batch
from geometry_probe.classifier import LinearClassifier, load_classifier
from geometry_probe.exceptions import EmptyAnalyzerError, InvalidInputError, MissingLabelsError
from geometry_probe.functional import class_geometry as G
from geometry_probe.functional import neural_collapse as F
from geometry_probe.result import Result
from geometry_probe.functional.class_pairs import MATRIX_MAX_CLASSES
from geometry_probe.stats import STATE_MEMORY_BYTES, ClassMoments, ClassNorms, primal_bytes

TABLE_MAX_ROWS = 1000
NCC_MAX_WORK = 5e10                # N·(C+K)·D multiply-adds of the second pass: about 10 s in float64 on 2 cores


class NeuralCollapse(Analyzer):
    """Neural collapse NC1–NC4 (Papyan et al. 2020), CDNV, GNC2 and the orthogonal-frame variant.

    One streaming pass accumulates :class:`~geometry_probe.stats.ClassMoments` (shared
    with other analyzers through :attr:`Batch.class_moments`: one GEMM per batch). NC1,
    CDNV, the trace ratio, NC2 and NC3 come from them. ``ncc_accuracy`` and
    ``nc4_agreement`` need the final class means, so they take a **second pass** over the
    batches (:meth:`update_second_pass`; :func:`geometry_probe.analyze` runs it): one GEMM
    of the rows against the C class means (and the K classifier rows) per batch, no
    rows kept in memory.

    Scalars (family ``neural_collapse/``):

    * ``nc1`` = Tr(Σ_W Σ_B†)/C, pseudo-inverse cut at rank
      r = min(C−1, D, #{λ > ``pinv_rtol``·λ_max}) (``nc1_pinv_rank`` = r);
    * ``cdnv`` (Galanti et al.), mean over class pairs, biased per-class variance;
    * ``trace_ratio`` = Tr Σ_W / Tr Σ_B;
    * ``nc2_equinorm`` (CoV of centred-mean norms, unbiased std), ``nc2_equiangular``
      (population std of off-diagonal cosines of centred means),
      ``nc2_equiangular_mean_abs`` (mean ``|cos + 1/(C−1)|``), ``nc2_etf_error``
      (normalised-Gram distance of centred means to the simplex ETF);
    * ``gnc2`` (variance of the log inverse distance of the normalised centred means,
      Liu et al. 2023), only when C > D + 1, where an exact ETF cannot exist;
    * ``nc2_of_error`` (Kini et al. 2024): normalised-Gram distance of the *uncentred* class
      means to an orthogonal frame; their setting has unit-norm embeddings (SupCon), so
      pass normalised embeddings for their reading (the ``orthogonality`` analyzer does
      that by default);
    * with ``classifier``: ``nc3`` (Papyan's squared distance between W/‖W‖_F and
      M̃/‖M̃‖_F) and ``nc3_w_etf_error`` (ETF error of the rows of W as given);
    * second pass: ``ncc_accuracy``, and with ``classifier`` ``nc4_agreement`` (share of
      samples where argmax(W h + b) equals the nearest class centre).

    Conventions (also in ``Result.params``): features as given; classes without samples
    dropped (C counts classes with samples); μ_G = mean of class means (``global_mean=
    "class"``) or the sample mean (``"sample"``); Σ_W averaged over all N samples
    (biased); Σ_B averaged over the C classes (divide by C); float64 throughout. The
    ``per_class`` table lists code, count, within-class variance (Var_c) and the norm of
    the centred mean.

    Parameters
    ----------
    n_classes : int, optional
        Number of label codes.
    classifier : array, tuple, mapping, nn.Linear or path, optional
        Linear classifier (C × D weight, optional bias) for NC3/NC4; rows in label-code
        order. See :func:`geometry_probe.classifier.load_classifier`.
    global_mean : {"class", "sample"}, default="class"
    pinv_rtol : float, default=1e-10
        Relative eigenvalue cutoff of Σ_B's pseudo-inverse in NC1.
    ncc : bool, default=True
        Compute ``ncc_accuracy``/``nc4_agreement`` (asks for the second pass).
    seed : int, default=0
        Seed of the class-pair samples (more than 2048 classes and over 5·10⁷ pairs).
    memory_bytes : int, default=2 GiB
        Budget of the D×D within-class scatter; above it (or with fewer rows than features) the
        wide form below is used.
    ncc_max_work : float, default=5e10
        Multiply-adds the second pass may spend on scoring rows against the C class centres
        (and K classifier rows): N·(C+K)·D. Above it ``ncc_accuracy``/``nc4_agreement`` come
        from a seeded Bernoulli sample of the rows, with ``*_std_error`` scalars
        (:math:`\\sqrt{p(1-p)/m}`) and ``params["ncc_pass"]`` saying so (e.g. 30,000 rows in
        30,000 classes at D = 256: 6,500 rows scored).

    Notes
    -----
    Wide embeddings (N < D, or a D×D matrix above ``memory_bytes``): the state is
    :class:`~geometry_probe.stats.ClassNorms` (counts, sums, squared norms: no D×D matrix) and
    NC1 is exact in its dual form: :math:`\\Sigma_B^\\dagger` lives on the r ≤ C−1 directions
    :math:`v_k` of the centred means (an SVD of the C×D means), so
    :math:`\\mathrm{NC1} = \\frac1C\\sum_{k\\le r} v_k^\\top\\Sigma_W v_k/\\lambda_k` needs only
    :math:`v_k^\\top\\Sigma_W v_k = \\frac1N\\sum_i ((h_i-\\mu_{y_i})^\\top v_k)^2`, which the second pass
    accumulates (r extra columns in its GEMM; it runs even with ``ncc=False``). CDNV, the trace
    ratio, NC2 and NC3 need no D×D matrix. ``params["form"]`` says which form ran.

    Many classes (C > 2048): no C×C matrix (see
    :func:`~geometry_probe.functional.neural_collapse.pair_scalars`): closed forms for
    ``nc2_equiangular``, ``nc2_etf_error``, ``nc2_of_error``; exact tiles or, above 5·10⁷ pairs,
    seeded pair samples with standard errors for CDNV, ``nc2_equiangular_mean_abs`` and GNC2. The
    ``per_class`` table lists the first 1,000 classes (a note says so); the second pass costs
    N·C·D.

    Streaming and merging add the per-class statistics exactly. Second-pass counts refer
    to the class means frozen at the first :meth:`update_second_pass` call (summed over
    all ``torch.distributed`` ranks, so every rank must make that call); a later
    :meth:`update` or :meth:`merge` changes the means and discards them.

    With the default ``precision="float64"`` every statistic is float64 arithmetic on the
    given numbers (NC1 within 1e-6 of a float64 reference on float32 input). The fast
    ``precision="float32"`` mode sums classes and multiplies in float32 within a batch:
    its NC1 is off by up to about 3e-6 relative on float32 input (docs/performance.md).

    References
    ----------
    .. [1] V. Papyan, X. Y. Han, D. L. Donoho, "Prevalence of neural collapse during the
       terminal phase of deep learning training", PNAS 117(40), 2020.
    .. [2] T. Galanti, A. György, M. Hutter, "On the role of neural collapse in transfer
       learning", ICLR 2022.
    .. [3] C. Kini et al., "Symmetric neural collapse representations with supervised
       contrastive loss: the impact of ReLU and batching", ICLR 2024.

    Examples
    --------
    >>> import geometry_probe as gp
    >>> X, y = gp.datasets.make_simplex_etf(n_classes=4, n_features=6, noise=0.05)
    >>> res = gp.analyze(X, "neural_collapse", labels=y)["neural_collapse"]
    >>> res.scalars["ncc_accuracy"], res.scalars["nc2_etf_error"] < 0.05, res.params["global_mean"]
    (1.0, True, 'class')
    """

    name: ClassVar[str] = "neural_collapse"
    requires_labels: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale", "permutation", "relabel"})

    def __init__(self, *, n_classes: int | None = None, classifier: Any = None, global_mean: str = "class",
                 pinv_rtol: float = F.PINV_RTOL, ncc: bool = True, seed: int = 0,
                 memory_bytes: int = STATE_MEMORY_BYTES, ncc_max_work: float = NCC_MAX_WORK) -> None:
        super().__init__(n_classes=n_classes)
        self.classifier: LinearClassifier | None = None if classifier is None else load_classifier(classifier)
        if self.classifier is not None and n_classes:
            self.classifier.check_shape(n_classes=n_classes)
        self.global_mean = check_choice(global_mean, F.GLOBAL_MEANS, name="global_mean")
        self.pinv_rtol = pinv_rtol
        self.ncc = ncc
        self.seed = seed
        self.memory_bytes = memory_bytes
        self.ncc_max_work = ncc_max_work
        self._rule: F.DecisionRule | None = None
        self._decisions: F.DecisionCounts | None = None

    def _wide(self, batch: Batch) -> bool:
        """Whether this stream takes the wide form (decided at the first batch)."""
        if self._state is not None:
            return isinstance(self._state, ClassNorms)
        D, N = batch.X.shape[1], batch.n_samples
        return (N is not None and N < D) or primal_bytes(D) > self.memory_bytes

    def wants_class_moments(self, batch: Batch) -> bool:
        """Unless the data are wide: the per-class statistics are this analyzer's whole state."""
        return not self._wide(batch)

    def _stats(self, batch: Batch) -> ClassMoments | ClassNorms:
        if self.classifier is not None and self._state is None:
            self.classifier.check_shape(n_features=batch.X.shape[1])
        return batch.class_norms if self._wide(batch) else batch.class_moments

    def update_batch(self, batch: Batch) -> None:
        """Add a batch to the first pass; second-pass counts (if any) no longer apply."""
        super().update_batch(batch)
        self._forget_second_pass()

    def needs_second_pass(self) -> bool:
        """True when ``ncc`` is on or the data are wide, and the second pass has not run on the current means."""
        wide = isinstance(self._state, ClassNorms)
        return (self.ncc or wide) and self._state is not None and self._decisions is None

    def update_second_pass(self, batch: Batch) -> None:
        """Count nearest-centre hits and classifier agreement for a batch, against the final class means."""
        if self._state is None:
            raise EmptyAnalyzerError("NeuralCollapse.update_second_pass() was called before any update().")
        if self._rule is None:
            self._rule = self._decision_rule(batch.X.device)
        if batch.labels is None:
            raise MissingLabelsError(f"{self.name!r} needs labels in the second pass too.")
        counts = self._rule.counts(batch.X, batch.labels, precision=batch.precision, offset=batch.offset)
        self._decisions = counts if self._decisions is None else self._decisions + counts

    def _decision_rule(self, device: torch.device) -> F.DecisionRule:
        """The frozen centres of the second pass (the class statistics it is built from are freed on return:
        with C = 10⁵ classes each (C, D) array counts)."""
        state = cast(ClassMoments | ClassNorms, self._state).all_reduced()
        stats = F.ClassStatistics.of(state, global_mean=self.global_mean)
        weight = bias = None
        if self.classifier is not None:
            _check_label_range(self.classifier, stats.n_slots)
            weight, bias = self.classifier.weight, self.classifier.bias
        directions = F.nc1_directions(stats, rtol=self.pinv_rtol)[0] if isinstance(state, ClassNorms) else None
        return F.DecisionRule.of(stats, weight, bias, device=device, directions=directions,
                                 fraction=self._ncc_fraction(stats), seed=self.seed)

    def end_second_pass(self) -> None:
        """Drop the frozen centres (a (C, D) float64 matrix and its float32 copy) once every batch was scored;
        a later :meth:`update_second_pass` rebuilds the same rule from the state."""
        self._rule = None

    def _ncc_fraction(self, stats: F.ClassStatistics) -> float:
        """Share of rows the second pass scores: all while N·(C + K)·D ≤ ``ncc_max_work``."""
        K = 0 if self.classifier is None else self.classifier.n_classes
        return min(1.0, self.ncc_max_work / max(stats.n_samples * (stats.n_classes + K) * stats.n_features, 1))

    def merge(self, other: Analyzer) -> Analyzer:
        """Add the first-pass state of ``other``; second-pass counts are discarded (the means changed)."""
        super().merge(other)
        self._forget_second_pass()
        return self

    def reset(self) -> None:
        """Forget all statistics, including second-pass counts."""
        super().reset()
        self._forget_second_pass()

    def _forget_second_pass(self) -> None:
        self._rule = None
        self._decisions = None

    def _compute(self, state: ClassMoments | ClassNorms) -> Result:
        stats = F.ClassStatistics.of(state, global_mean=self.global_mean)
        C, D = stats.n_classes, stats.n_features
        M = stats.centred_means
        decisions = self._decisions.all_reduced() if self._decisions is not None else None
        projected = None
        if isinstance(state, ClassNorms) and decisions is not None:
            projected = decisions.within_projected.cpu().numpy() / stats.n_samples
        nc1, rank = F.nc1_from_stats(stats, rtol=self.pinv_rtol, projected_within=projected)
        scalars: dict[str, float] = {"nc1": nc1, "nc1_pinv_rank": float(rank),
                                     "trace_ratio": F.trace_ratio_from_stats(stats),
                                     "nc2_equinorm": G.equinorm(M)}
        how: dict[str, str] = {}
        if C > MATRIX_MAX_CLASSES:
            pairs, how, coincident = F.pair_scalars(stats, seed=self.seed)
            scalars.update(pairs)
            if C <= D + 1:
                del scalars["gnc2"]
        else:
            cosines = G.cosine_matrix(M)
            scalars["cdnv"], coincident = F.cdnv_from_stats(stats)
            scalars.update(nc2_equiangular=G.equiangularity(cosines),
                           nc2_equiangular_mean_abs=G.max_angle_deviation(cosines),
                           nc2_etf_error=G.etf_error(M), nc2_of_error=G.orthogonal_frame_error(stats.means))
            if C > D + 1:
                scalars["gnc2"] = G.hyperspherical_uniformity(M)
        if self.classifier is not None:
            _check_label_range(self.classifier, stats.n_slots)
            W = self.classifier.weight[stats.classes]
            scalars["nc3"] = F.nc3_from_stats(stats, W)
            scalars["nc3_w_etf_error"] = (G.etf_error(W) if C <= MATRIX_MAX_CLASSES
                                          else F.gram_distance(W, "etf", seed=self.seed))
        order = ("nc1", "nc1_pinv_rank", "cdnv", "trace_ratio", "nc2_equinorm", "nc2_equiangular")
        scalars = {**{k: scalars[k] for k in order}, **scalars}
        notes = _notes(stats, scalars, coincident)
        if isinstance(state, ClassNorms) and decisions is None:
            notes.append("wide data: NC1 needs the second pass over the data (update_second_pass for every "
                         "batch; geometry_probe.analyze does this); it is NaN here.")
        if self.ncc:
            sampled = self._ncc_fraction(stats) < 1
            scalars.update(_decision_scalars(decisions, with_classifier=self.classifier is not None, sampled=sampled))
            if decisions is None:
                notes.append("ncc_accuracy/nc4_agreement need a second pass over the data with the final class "
                             "means: call update_second_pass(batch) for every batch after the first pass "
                             "(geometry_probe.analyze does this); they are NaN here.")
        rows = _per_class_rows(stats, TABLE_MAX_ROWS)
        if stats.n_slots > TABLE_MAX_ROWS:
            notes.append(f"per_class table: the first {TABLE_MAX_ROWS:,} of {stats.n_slots:,} classes (the cap of the "
                         "outputs; the scalars use every class).")
        params = {**self._params(stats), **how, "form": "wide: class sums and norms, NC1 on the span of the class "
                  "means from the second pass" if isinstance(state, ClassNorms) else "D x D within-class scatter",
                  "per_class_table_max_rows": TABLE_MAX_ROWS}
        return Result(self.name, scalars, params=params, notes=tuple(notes),
                      tables={"per_class": rows})

    def _params(self, stats: F.ClassStatistics) -> dict[str, Any]:
        return {
            "global_mean": self.global_mean,
            "features": "as given (not centred, not normalised)",
            "sigma_w": "sum over all N samples of (h - mu_class)(h - mu_class)^T, divided by N (biased)",
            "sigma_b": "sum over classes of (mu_c - mu_G)(mu_c - mu_G)^T, divided by C",
            "n_classes_used": stats.n_classes,
            "empty_classes": "dropped",
            "nc1": "Tr(Sigma_W Sigma_B^+) / C, float64",
            "nc1_pinv": "rank-r truncation, r = min(C-1, D, #{lambda > pinv_rtol * lambda_max})",
            "pinv_rtol": self.pinv_rtol,
            "cdnv": "mean over class pairs of (Var_i + Var_j) / (2 ||mu_i - mu_j||^2), Var_c biased (1/n_c)",
            "trace_ratio": "Tr(Sigma_W) / Tr(Sigma_B)",
            "nc2_equinorm": "std(ddof=1) / mean of ||mu_c - mu_G||",
            "nc2_equiangular": "population std of cos(mu_c - mu_G, mu_c' - mu_G) over pairs c < c'",
            "nc2_equiangular_mean_abs": "mean over c != c' of |cos + 1/(C-1)|",
            "nc2_etf_error": "|| G/||G||_F - (I - 11^T/C)/sqrt(C-1) ||_F, G = Gram of centred means",
            "nc2_of_error": "|| G/||G||_F - I/sqrt(C) ||_F, G = Gram of uncentred class means",
            "gnc2": "population variance over pairs of log(1/||u_c - u_c'||), u = normalised centred means; "
                    "reported when C > D+1",
            "nc3_variant": "papyan_squared: || W/||W||_F - M~/||M~||_F ||_F^2, rows of classes with samples",
            "nc3_w_etf_error": "ETF error of the classifier rows as given (not centred)",
            "nc4": "agreement (1 - Papyan's mismatch): argmax(W h + b) over all K rows, bias included, vs "
                   "argmin ||h - mu_c|| over classes with samples; ties to the lowest code; on the data given",
            "ncc_pass": _ncc_pass(self.ncc, self._ncc_fraction(stats), stats.n_samples, self.seed),
            "classifier": None if self.classifier is None else self.classifier.describe(),
        }


def _ncc_pass(ncc: bool, fraction: float, n_samples: int, seed: int) -> str:
    if not ncc:
        return "off"
    if fraction >= 1:
        return "second pass over the data (one GEMM per batch against the class means)"
    return (f"second pass; rows scored against the centres: a seeded Bernoulli sample (fraction {fraction:.4g}, "
            f"about {fraction * n_samples:,.0f} of {n_samples:,} rows, seed {seed}) because N (C + K) D exceeds "
            "ncc_max_work; *_std_error = sqrt(p (1 - p) / m)")


def _check_label_range(classifier: LinearClassifier, n_slots: int) -> None:
    """Label codes must index classifier rows (the exact count is checked when ``n_classes`` is known)."""
    if n_slots > classifier.n_classes:
        raise InvalidInputError(
            f"classifier ({classifier.source}): {classifier.n_classes} rows, but label codes go up to "
            f"{n_slots - 1}; NC3/NC4 need one row per class, in label-code order.")


def _decision_scalars(decisions: F.DecisionCounts | None, *, with_classifier: bool,
                      sampled: bool) -> dict[str, float]:
    hits = agreements = math.nan
    m = 0.0 if decisions is None else float(decisions.n)
    if m > 0:
        hits = float(decisions.ncc_hits) / m
        agreements = float(decisions.agreements) / m
    out = {"ncc_accuracy": hits, **({"nc4_agreement": agreements} if with_classifier else {})}
    if sampled:
        out.update({f"{k}_std_error": math.sqrt(v * (1 - v) / m) if m > 0 else math.nan for k, v in list(out.items())})
    return out


def _per_class_rows(stats: F.ClassStatistics, limit: int) -> list[dict[str, Any]]:
    """The per-class table of the first ``limit`` label codes (the outputs' cap)."""
    present = {int(k): i for i, k in enumerate(stats.classes[:limit])}
    norms = G.row_norms(stats.centred_means)
    rows = []
    for k in range(min(stats.n_slots, limit)):
        i = present.get(k)
        rows.append({
            "class": k,
            "count": 0 if i is None else int(stats.counts[i]),
            "within_class_variance": math.nan if i is None else float(stats.class_variances[i]),
            "centred_mean_norm": math.nan if i is None else float(norms[i]),
        })
    return rows


def _notes(stats: F.ClassStatistics, scalars: dict[str, float], coincident: int) -> list[str]:
    C, D, K = stats.n_classes, stats.n_features, stats.n_slots
    notes = []
    empty = sorted(set(range(K)) - {int(k) for k in stats.classes})
    if empty:
        notes.append(f"{len(empty)} of {K} classes have no samples and were dropped "
                     f"(codes {_preview(empty)}); C = {C}.")
    single = [int(k) for k, n in zip(stats.classes, stats.counts) if n < 2]
    if single:
        notes.append(f"{len(single)} classes have a single sample (codes {_preview(single)}): their "
                     "within-class variance is 0 by construction, which pulls NC1/CDNV toward collapse.")
    if C < 2:
        notes.append(f"only {C} class with samples: between-class quantities need two, so NC1, CDNV, the "
                     "trace ratio, NC2 and NC3 are NaN.")
        return notes
    if not np.any(G.row_norms(stats.centred_means) > 0):
        notes.append("all class means coincide (Sigma_B = 0): NC1, the trace ratio and NC2 are undefined (NaN).")
    elif math.isnan(scalars["nc2_equiangular"]):
        notes.append("a class mean equals the global mean, so its direction (cosine) is undefined: "
                     "nc2_equiangular and nc2_equiangular_mean_abs are NaN.")
    if coincident:
        notes.append(f"{coincident} pairs of classes have coincident means: their CDNV is infinite, so cdnv is NaN.")
    if C > D + 1:
        notes.append(f"C = {C} classes in D = {D} dimensions: an exact simplex ETF needs D >= C-1, so "
                     "nc2_etf_error cannot reach 0; gnc2 (hyperspherical uniformity) is reported instead.")
    return notes


def _preview(codes: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(c) for c in codes[:limit])
    return shown + (", ..." if len(codes) > limit else "")
