"""`Batch`: one chunk of rows whose statistics are computed once and shared by all analyzers."""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidEmbeddingsError
from geometry_probe.stats import (
    DEFAULT_PRECISION,
    ClassMoments,
    ClassNorms,
    ClassScatter,
    ClassSums,
    Moments,
    as_compute,
)


class Batch:
    """Rows ``X`` (float tensor) with optional integer ``labels`` and their global ``offset``.

    Statistics are cached properties, so several analyzers asking for the same one in the
    same pass cost one GEMM. When per-class scatter was computed, the pooled and class-blind
    statistics are derived from it instead of being recomputed.

    Parameters
    ----------
    X : Tensor of shape (batch_size, n_features)
    labels : Tensor of shape (batch_size,), optional
        Integer codes in ``[0, n_classes)``.
    n_classes : int, default=0
    offset : int, default=0
        Index of the first row in the whole data set (for error messages).
    precision : {"float64", "float32"}, default="float64"
        Arithmetic of the statistics (see :mod:`geometry_probe.stats`): float64 is exact,
        float32 is the fast mode.
    n_samples : int, optional
        Rows in the whole stream when known up front (:func:`geometry_probe.analyze` knows it):
        analyzers use it to choose between D×D statistics and the N×N dual of wide data.
    """

    def __init__(self, X: Tensor, labels: Tensor | None = None, *, n_classes: int = 0, offset: int = 0,
                 precision: str = DEFAULT_PRECISION, n_samples: int | None = None) -> None:
        self.X = X
        self.n_samples = n_samples
        self.labels = labels
        self.n_classes = n_classes
        self.offset = offset
        self.precision = precision

    @cached_property
    def class_scatter(self) -> ClassScatter:
        """Per-class count, sum and second moment (needs labels)."""
        return ClassScatter.of(self.X, self._labels(), self.n_classes, precision=self.precision)

    @cached_property
    def class_moments(self) -> ClassMoments:
        """Per-class counts and sums with the pooled second moment (needs labels)."""
        if "class_scatter" in self.__dict__:
            return self.class_scatter.pooled()
        return ClassMoments.of(self.X, self._labels(), self.n_classes, precision=self.precision)

    @cached_property
    def class_norms(self) -> ClassNorms:
        """Per-class counts, sums and squared norms, without a D×D matrix (needs labels)."""
        if "class_moments" in self.__dict__:
            m = self.class_moments
            return ClassNorms(n=m.n, s1=m.s1, sq=m.sq)
        return ClassNorms.of(self.X, self._labels(), self.n_classes, precision=self.precision)

    @cached_property
    def moments(self) -> Moments:
        """Count, sum and second moment of all rows."""
        if "class_moments" in self.__dict__ or "class_scatter" in self.__dict__:
            return self.class_moments.total()
        return Moments.of(self.X, precision=self.precision)

    @cached_property
    def unit_rows(self) -> Tensor:
        """Rows scaled to unit L2 norm; zero rows raise (a direction is undefined for them)."""
        X = as_compute(self.X, self.precision)
        norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
        if bool((norms == 0).any()):
            bad = (norms[:, 0] == 0).nonzero().flatten()[:5].cpu().tolist()
            rows = ", ".join(str(self.offset + i) for i in bad)
            raise InvalidEmbeddingsError(
                f"embeddings: rows {rows} have zero norm, so their direction on the unit sphere is "
                "undefined; drop them or skip sphere-based analyzers (contrastive, cosine metrics)."
            )
        return X / norms

    def class_sums(self, rows: Tensor) -> ClassSums:
        """:class:`~geometry_probe.stats.ClassSums` of ``rows`` (this batch's rows or a transform of them)."""
        return ClassSums.of(rows, self._labels(), self.n_classes, precision=self.precision)

    @cached_property
    def norm_sums(self) -> tuple[Tensor, Tensor]:
        """``(Σ‖x‖, Σ‖x‖²)`` in float64: tells whether the input was unit-norm."""
        norms = torch.linalg.vector_norm(self.X.to(torch.float64), dim=1)
        return norms.sum(), (norms * norms).sum()

    def _labels(self) -> Tensor:
        if self.labels is None:
            raise InvalidEmbeddingsError("this statistic needs labels; pass labels=... or --labels.")
        return self.labels
