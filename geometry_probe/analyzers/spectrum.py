"""Streaming spectral analyzer: every rank metric from one pass of additive statistics."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from geometry_probe.analyzers.base import Analyzer
from geometry_probe.batch import Batch
from geometry_probe.functional import spectrum as F
from geometry_probe.result import Result
from geometry_probe.stats import ClassScatter, Moments

PER_CLASS_MAX_FLOPS = 2e10       # K·D³: about 5 s of eigendecompositions on 2 cores
PER_CLASS_MAX_BYTES = 512 * 2**20


class Spectrum(Analyzer):
    """Rank and effective dimension: effective rank, RankMe, stable rank, PR, α-ReQ, ...

    Parameters
    ----------
    n_classes : int, optional
        Number of label codes (per-class effective rank needs it).
    rankme_eps : float, default=1e-7
        ε of RankMe.
    alpha_fit_ranks : (int, int), default=(11, 100)
        Rank range of the α-ReQ fit.
    collapsed_threshold : float, default=1e-6
        Relative eigenvalue threshold of ``collapsed_dims``.
    per_class : bool, optional
        Per-class effective rank when labels are given. Default: on when the per-class
        covariances fit 512 MB and their eigendecompositions take seconds
        (``n_classes * n_features**3 <= 2e10``).

    Notes
    -----
    Conventions: effective rank, stable rank, numerical rank and collapsed dimensions use
    singular values of the *centred* matrix; participation ratio and α-ReQ use the centred
    covariance eigenvalues; RankMe and top-1 energy use the *raw* matrix (see
    :mod:`geometry_probe.functional.spectrum`).
    """

    name: ClassVar[str] = "spectrum"
    uses_labels: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale", "permutation", "relabel"})

    def __init__(self, *, n_classes: int | None = None, rankme_eps: float = F.RANKME_EPS,
                 alpha_fit_ranks: tuple[int, int] = F.ALPHA_FIT_RANKS,
                 collapsed_threshold: float = F.COLLAPSED_DIM_THRESHOLD, per_class: bool | None = None) -> None:
        super().__init__(n_classes=n_classes)
        self.rankme_eps = rankme_eps
        self.alpha_fit_ranks = tuple(alpha_fit_ranks)
        self.collapsed_threshold = collapsed_threshold
        self.per_class = per_class

    def wants_class_scatter(self, batch: Batch) -> bool:
        """Whether per-class covariances are accumulated for this batch's shape."""
        if batch.labels is None or self.per_class is False:
            return False
        if self.per_class:
            return True
        K, D = batch.n_classes, batch.X.shape[1]
        return K * D**3 <= PER_CLASS_MAX_FLOPS and K * D * D * 8 <= PER_CLASS_MAX_BYTES

    def _stats(self, batch: Batch) -> Moments | ClassScatter:
        if isinstance(self._state, ClassScatter) or (self._state is None and self.wants_class_scatter(batch)):
            return batch.class_scatter
        return batch.moments

    def _compute(self, state: Moments | ClassScatter) -> Result:
        moments = state.pooled().total() if isinstance(state, ClassScatter) else state
        spectra = F.Spectra.of(moments)
        N, D = spectra.n_samples, spectra.n_features
        lam = spectra.centred
        scalars = {
            "effective_rank": F.effective_rank_from_spectrum(lam),
            "rankme": F.rankme_from_spectrum(spectra.raw, N, eps=self.rankme_eps),
            "stable_rank": F.stable_rank_from_spectrum(lam),
            "participation_ratio": F.participation_ratio_from_spectrum(lam),
            "numerical_rank": float(F.numerical_rank_from_spectrum(lam, N, eps=1.1920929e-07)),
            "alpha_req": F.alpha_req_from_spectrum(lam, fit_ranks=self.alpha_fit_ranks),
            "top1_energy": F.top1_energy_from_spectrum(spectra.raw),
            "collapsed_dims": float(F.collapsed_dims_from_spectrum(lam, N, threshold=self.collapsed_threshold)),
            "rank_ceiling": float(spectra.rank_ceiling),
        }
        scalars["effective_rank_ratio"] = scalars["effective_rank"] / max(spectra.rank_ceiling, 1)
        notes = _notes(scalars, N, D, self.alpha_fit_ranks)
        tables: dict[str, list[dict[str, Any]]] = {}
        if isinstance(state, ClassScatter):
            rows = _per_class_rows(state)
            tables["per_class"] = rows
            values = [r["effective_rank"] for r in rows if not math.isnan(r["effective_rank"])]
            scalars["class_effective_rank_mean"] = sum(values) / len(values) if values else math.nan
        return Result(
            self.name, scalars,
            arrays={"covariance_eigenvalues": lam / max(N - 1, 1), "raw_eigenvalues": spectra.raw / N},
            params={"rankme_eps": self.rankme_eps, "alpha_fit_ranks": list(self.alpha_fit_ranks),
                    "collapsed_threshold": self.collapsed_threshold, "numerical_rank_eps": "float32",
                    "centring": "effective/stable/numerical rank, PR, alpha-ReQ: centred; "
                                "RankMe, top1_energy: raw",
                    "covariance_normalisation": "N-1"},
            notes=tuple(notes), tables=tables)


def _per_class_rows(state: ClassScatter) -> list[dict[str, Any]]:
    rows = []
    for k in range(state.n_classes):
        count = int(state.n[k])
        erank = math.nan
        if count >= 2:
            erank = F.effective_rank_from_spectrum(F.eigvals_desc(state.class_scatter(k)))
        rows.append({"class": k, "count": count, "effective_rank": erank})
    return rows


def _notes(scalars: dict[str, float], N: int, D: int, fit: tuple[int, int]) -> list[str]:
    notes = []
    if N <= D:
        notes.append(f"N={N} <= D={D}: centred ranks are capped at N-1={N - 1}; a low value here is "
                     "not collapse. Use more samples than dimensions for rank metrics.")
    if math.isnan(scalars["effective_rank"]):
        notes.append("all rows are identical: the centred spectrum is zero, so centred ranks are undefined (NaN).")
    if math.isnan(scalars["alpha_req"]) and not math.isnan(scalars["effective_rank"]):
        notes.append(f"alpha_req is NaN: its fit needs {fit[1]} positive covariance eigenvalues "
                     f"(ranks {fit[0]}-{fit[1]}); this input has at most {min(N - 1, D)}.")
    return notes
