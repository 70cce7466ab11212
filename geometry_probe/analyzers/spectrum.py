"""Streaming spectral analyzer: every rank metric from one pass of additive statistics."""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

from geometry_probe.analyzers.base import Analyzer
from geometry_probe.batch import Batch
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import spectrum as F
from geometry_probe.result import Result
from geometry_probe.stats import STATE_MEMORY_BYTES, ClassScatter, Moments, RowStack, primal_bytes

PER_CLASS_MAX_FLOPS = 2e9        # K·D³: 100 classes at D = 256 took 9 s in float64 on a loaded 2-core machine
PER_CLASS_MAX_BYTES = 128 * 2**20
GIB = 2**30
TABLE_MAX_ROWS = 1000


def dual_bytes(n_samples: int, n_features: int, itemsize: int = 4) -> int:
    """Memory of the N×N dual: the rows as they arrive plus the two N×N float64 Grams and a solver copy."""
    return itemsize * n_samples * n_features + 3 * 8 * n_samples**2


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
        covariances fit 128 MiB and their eigendecompositions take seconds
        (``n_classes * n_features**3 <= 2e9``; 1,000 classes at D = 256 took 45 s in float64);
        never on wide data (the dual form).
    memory_bytes : int, default=2 GiB
        Budget of the exact spectral state (see Notes).

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
                 collapsed_threshold: float = F.COLLAPSED_DIM_THRESHOLD, per_class: bool | None = None,
                 memory_bytes: int = STATE_MEMORY_BYTES) -> None:
        super().__init__(n_classes=n_classes)
        self.rankme_eps = rankme_eps
        self.alpha_fit_ranks = tuple(alpha_fit_ranks)
        self.collapsed_threshold = collapsed_threshold
        self.per_class = per_class
        self.memory_bytes = memory_bytes

    def _dual(self, batch: Batch) -> bool:
        """Whether the rows are kept for the N×N dual (decided at the first batch)."""
        if self._state is not None:
            return isinstance(self._state, RowStack)
        D, N = batch.X.shape[1], batch.n_samples
        primal = primal_bytes(D)
        if N is not None and N >= D and primal > self.memory_bytes:
            self._refuse(N, D, batch.X.element_size())
        return (N is not None and N < D) or primal > self.memory_bytes

    def _refuse(self, N: int, D: int, itemsize: int) -> None:
        raise InvalidInputError(
            f"spectrum of {N:,} x {D:,}: the exact D x D form needs {_size(primal_bytes(D))} and the N x N dual "
            f"{_size(dual_bytes(N, D, itemsize))}, above the {_size(self.memory_bytes)} budget; raise it "
            "(params={'spectrum': {'memory_bytes': ...}}) or analyse a subsample of rows.")

    def wants_class_scatter(self, batch: Batch) -> bool:
        """Whether per-class covariances are accumulated for this batch's shape."""
        if batch.labels is None or self.per_class is False or self._dual(batch):
            return False
        if self.per_class:
            return True
        K, D = batch.n_classes, batch.X.shape[1]
        return K * D**3 <= PER_CLASS_MAX_FLOPS and K * D * D * 8 <= PER_CLASS_MAX_BYTES

    def _stats(self, batch: Batch) -> Moments | ClassScatter | RowStack:
        if self._dual(batch):
            held = 0 if self._state is None else cast(RowStack, self._state).nbytes
            N = (held + batch.X.numel() * batch.X.element_size()) // (batch.X.element_size() * batch.X.shape[1])
            if dual_bytes(N, batch.X.shape[1], batch.X.element_size()) > self.memory_bytes:
                self._refuse(batch.n_samples or N, batch.X.shape[1], batch.X.element_size())
            return RowStack((batch.X,), batch.precision)
        if isinstance(self._state, ClassScatter) or (self._state is None and self.wants_class_scatter(batch)):
            return batch.class_scatter
        return batch.moments

    def _compute(self, state: Moments | ClassScatter | RowStack) -> Result:
        if isinstance(state, RowStack):
            spectra = F.Spectra.of_rows(state.rows, precision=state.precision)     # no copy of all rows
        else:
            spectra = F.Spectra.of(state.pooled().total() if isinstance(state, ClassScatter) else state)
        N, D = spectra.n_samples, spectra.n_features
        lam = spectra.centred
        scalars = {
            "effective_rank": F.effective_rank_from_spectrum(lam),
            "rankme": F.rankme_from_spectrum(spectra.raw, N, eps=self.rankme_eps),
            "stable_rank": F.stable_rank_from_spectrum(lam),
            "participation_ratio": F.participation_ratio_from_spectrum(lam),
            "numerical_rank": float(F.numerical_rank_from_spectrum(lam, N, eps=1.1920929e-07, n_features=D)),
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
            tables["per_class"] = rows[:TABLE_MAX_ROWS]
            if len(rows) > TABLE_MAX_ROWS:
                notes.append(f"per_class table: the first {TABLE_MAX_ROWS:,} of {len(rows):,} classes (the cap of the "
                             "outputs; class_effective_rank_mean uses every class).")
            values = [r["effective_rank"] for r in rows if not math.isnan(r["effective_rank"])]
            scalars["class_effective_rank_mean"] = sum(values) / len(values) if values else math.nan
        return Result(
            self.name, scalars,
            arrays={"covariance_eigenvalues": lam / max(N - 1, 1), "raw_eigenvalues": spectra.raw / N},
            params={"rankme_eps": self.rankme_eps, "alpha_fit_ranks": list(self.alpha_fit_ranks),
                    "collapsed_threshold": self.collapsed_threshold, "numerical_rank_eps": "float32",
                    "centring": "effective/stable/numerical rank, PR, alpha-ReQ: centred; "
                                "RankMe, top1_energy: raw",
                    "covariance_normalisation": "N-1",
                    "form": ("N x N dual (rows kept; exact, same non-zero eigenvalues; arrays list the N eigenvalues "
                             "that can be non-zero)" if isinstance(state, RowStack) else "D x D primal"),
                    "memory_bytes": self.memory_bytes},
            notes=tuple(notes), tables=tables)


def _size(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB" if n_bytes >= GIB / 10 else f"{n_bytes / 2**20:.1f} MiB"


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
