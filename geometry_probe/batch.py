"""`Batch`: one chunk of rows whose statistics are computed once and shared by all analyzers."""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidEmbeddingsError
from geometry_probe.stats import ClassMoments, ClassScatter, Moments


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
    """

    def __init__(self, X: Tensor, labels: Tensor | None = None, *, n_classes: int = 0, offset: int = 0) -> None:
        self.X = X
        self.labels = labels
        self.n_classes = n_classes
        self.offset = offset

    @cached_property
    def class_scatter(self) -> ClassScatter:
        """Per-class count, sum and second moment (needs labels)."""
        return ClassScatter.of(self.X, self._labels(), self.n_classes)

    @cached_property
    def class_moments(self) -> ClassMoments:
        """Per-class counts and sums with the pooled second moment (needs labels)."""
        if "class_scatter" in self.__dict__:
            return self.class_scatter.pooled()
        return ClassMoments.of(self.X, self._labels(), self.n_classes)

    @cached_property
    def moments(self) -> Moments:
        """Count, sum and second moment of all rows."""
        if "class_moments" in self.__dict__ or "class_scatter" in self.__dict__:
            return self.class_moments.total()
        return Moments.of(self.X)

    @cached_property
    def unit_rows(self) -> Tensor:
        """Rows scaled to unit L2 norm; zero rows raise (a direction is undefined for them)."""
        norms = torch.linalg.vector_norm(self.X, dim=1, keepdim=True)
        if bool((norms == 0).any()):
            bad = (norms[:, 0] == 0).nonzero().flatten()[:5].cpu().tolist()
            rows = ", ".join(str(self.offset + i) for i in bad)
            raise InvalidEmbeddingsError(
                f"embeddings: rows {rows} have zero norm, so their direction on the unit sphere is "
                "undefined; drop them or skip sphere-based analyzers (contrastive, cosine metrics)."
            )
        return self.X / norms

    @cached_property
    def unit_moments(self) -> Moments:
        """:class:`Moments` of the L2-normalised rows."""
        return Moments.of(self.unit_rows)

    @cached_property
    def norm_sums(self) -> tuple[Tensor, Tensor]:
        """``(Σ‖x‖, Σ‖x‖²)`` in float64: tells whether the input was unit-norm."""
        norms = torch.linalg.vector_norm(self.X.to(torch.float64), dim=1)
        return norms.sum(), (norms * norms).sum()

    def _labels(self) -> Tensor:
        if self.labels is None:
            raise InvalidEmbeddingsError("this statistic needs labels; pass labels=... or --labels.")
        return self.labels
