"""Additive float64 sufficient statistics: the only state an analyzer keeps.

Every field is a sum over samples, so statistics of a union are the elementwise sum of
statistics of its parts: merging is ``+``, a multi-process sync is one ``all_reduce`` per
field, and streaming in batches equals one shot.

Precision. Each batch is first centred on its own mean; its scatter
:math:`\\sum_b (x_b-\\bar x)(x_b-\\bar x)^\\top` is one GEMM in the batch's precision (float32
for float32/float16/bfloat16 input unless float64 is asked for, float64 for float64 input) and the raw second moment is
rebuilt exactly in float64, :math:`S_2 = C + \\bar x s_c^\\top + s_c \\bar x^\\top + n \\bar x \\bar x^\\top`
with :math:`s_c = \\sum_b (x_b-\\bar x)` summed in float64. Centring per batch keeps the float32
GEMM free of the cancellation a large common offset causes, while the sums themselves live in
float64 (metrics-reference §1.2: statistics in float64).

The float32 GEMM puts a noise floor under small eigenvalues of about
``eps32 * sqrt(D / B) * λ_max``, i.e. singular values below roughly ``2e-4 * σ_max`` are not
resolved. Pass float64 rows (``analyze(..., precision="float64")``) when such tiny directions
matter, e.g. to see an exact rank-1 collapse as effective rank 1.000 instead of about 1.1.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

STATE_DTYPE = torch.float64

S = TypeVar("S", bound="SumStats")
P = TypeVar("P", bound="PerClassStats")


def compute_dtype(X: Tensor) -> torch.dtype:
    """GEMM precision for a batch: float64 stays float64, everything else runs in float32."""
    return torch.float64 if X.dtype == torch.float64 else torch.float32


def gram(A: Tensor) -> Tensor:
    """``Aᵀ A`` for a (B, D) tensor; on CPU through NumPy, whose BLAS call (syrk) halves the work."""
    if A.device.type == "cpu":
        a = A.contiguous().numpy()
        return torch.from_numpy(a.T @ a)
    return A.T @ A


def _column_sums64(A: Tensor) -> Tensor:
    """Column sums of a (B, D) tensor accumulated in float64; on CPU through NumPy (several times faster)."""
    if A.device.type == "cpu":
        return torch.from_numpy(A.contiguous().numpy().sum(axis=0, dtype=np.float64))
    return A.sum(dim=0, dtype=STATE_DTYPE)


def _row_squared_norms64(A: Tensor) -> Tensor:
    """Squared L2 norm of every row of a (B, D) tensor, shape (B,), returned in float64.

    Computed in the batch's precision: the rows given are centred on the batch mean, so a
    float32 sum of D squares is accurate to ~1e-7 relative, and the cross terms that restore
    the offset are added in float64 by the caller.
    """
    return torch.linalg.vector_norm(A, dim=1).square().to(STATE_DTYPE)


def _centred_sums(X: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(s1, s2)`` = (Σ x, Σ x xᵀ) in float64 for the rows of ``X``, via a centred GEMM."""
    return _sums_of_centred(*_centred(X))


def _centred(X: Tensor) -> tuple[Tensor, Tensor]:
    """``(shift, X - shift)`` in the compute dtype, with ``shift`` the batch mean, shape (D,)."""
    X = X.to(compute_dtype(X))
    shift = X.mean(dim=0)                                     # (D,) in the compute dtype
    return shift, X - shift                                   # (B, D)


def _sums_of_centred(shift: Tensor, Xc: Tensor) -> tuple[Tensor, Tensor]:
    """``(s1, s2)`` in float64 of the rows ``Xc + shift``."""
    scatter = gram(Xc).to(STATE_DTYPE)                        # (D, D)
    shift64 = shift.to(STATE_DTYPE)
    sc = _column_sums64(Xc)                                   # (D,) ≈ 0, kept for exactness
    n = Xc.shape[0]
    cross = torch.outer(shift64, sc)
    s2 = scatter + cross + cross.T + n * torch.outer(shift64, shift64)
    s1 = sc + n * shift64
    return s1, s2


@dataclass(frozen=True)
class SumStats:
    """Statistics that combine by elementwise addition (a commutative monoid)."""

    def __add__(self: S, other: S) -> S:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to(self: S, device: torch.device | str) -> S:
        """Copy of the statistics on ``device``."""
        return type(self)(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def all_reduced(self: S) -> S:
        """Copy summed over all ranks of ``torch.distributed``; the local state is untouched.

        Without an initialised process group this returns ``self``. Under a process group
        every rank must call it (it is a collective), with states of the same shapes.
        """
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self
        copy = type(self)(**{f.name: getattr(self, f.name).clone() for f in fields(self)})
        for f in fields(copy):
            torch.distributed.all_reduce(getattr(copy, f.name))
        return copy


@dataclass(frozen=True)
class PerClassStats(SumStats):
    """Statistics whose fields listed in ``per_class_fields`` have one row per class.

    Adding statistics with different numbers of classes pads the smaller one with empty
    classes, so a stream whose later batches show new classes still merges. Subclasses
    have fields ``n`` (counts) and ``s1`` (sums).
    """

    per_class_fields: ClassVar[tuple[str, ...]] = ("n", "s1")

    def __add__(self: P, other: P) -> P:
        if type(other) is not type(self):
            return NotImplemented
        a, b = self._padded(other.n_classes), other._padded(self.n_classes)
        return type(self)(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(self)})

    def _padded(self: P, n_classes: int) -> P:
        extra = n_classes - self.n_classes
        if extra <= 0:
            return self
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self.per_class_fields:
            value = values[name]
            values[name] = F.pad(value, (0, 0) * (value.ndim - 1) + (0, extra))
        return type(self)(**values)

    @property
    def n_classes(self) -> int:
        """Number of class slots (some may be empty)."""
        return int(self.n.shape[0])  # type: ignore[attr-defined]

    @property
    def means(self) -> Tensor:
        """Class means, shape (n_classes, n_features); empty classes give zero rows."""
        return self.s1 / self.n.clamp_min(1)[:, None]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Moments(SumStats):
    """Count, sum and raw second moment of a set of rows.

    Attributes
    ----------
    n : Tensor of shape ()
    s1 : Tensor of shape (n_features,)
        :math:`\\sum_i x_i`.
    s2 : Tensor of shape (n_features, n_features)
        :math:`\\sum_i x_i x_i^\\top`.
    """

    n: Tensor
    s1: Tensor
    s2: Tensor

    @classmethod
    def of(cls, X: Tensor) -> Moments:
        """Statistics of the rows of ``X`` (shape (n_samples, n_features))."""
        s1, s2 = _centred_sums(X)
        return cls(n=s1.new_tensor(float(X.shape[0])), s1=s1, s2=s2)

    @property
    def mean(self) -> Tensor:
        """Mean row, shape (n_features,)."""
        return self.s1 / self.n

    def scatter(self, *, center: bool = True) -> Tensor:
        """:math:`\\sum_i (x_i-\\bar x)(x_i-\\bar x)^\\top` (or the raw second moment), shape (D, D)."""
        if not center:
            return self.s2
        scatter = self.s2 - torch.outer(self.s1, self.mean)
        return (scatter + scatter.T) / 2


@dataclass(frozen=True)
class ClassMoments(PerClassStats):
    """Per-class counts and sums, with the second moment pooled over all rows.

    Attributes
    ----------
    n : Tensor of shape (n_classes,)
    s1 : Tensor of shape (n_classes, n_features)
    s2 : Tensor of shape (n_features, n_features)
        :math:`\\sum_i x_i x_i^\\top` over all rows.
    sq : Tensor of shape (n_classes,)
        :math:`\\sum_{i: y_i = k} \\lVert x_i \\rVert^2`: per-class total variance without a
        per-class D×D matrix (CDNV needs it).

    Adding statistics with different ``n_classes`` pads the smaller one with empty
    classes, so a stream whose later batches show new classes still merges.
    """

    n: Tensor
    s1: Tensor
    s2: Tensor
    sq: Tensor
    per_class_fields: ClassVar[tuple[str, ...]] = ("n", "s1", "sq")

    @classmethod
    def of(cls, X: Tensor, labels: Tensor, n_classes: int) -> ClassMoments:
        """Statistics of the rows of ``X`` grouped by integer ``labels`` in ``[0, n_classes)``."""
        shift, Xc = _centred(X)
        _, s2 = _sums_of_centred(shift, Xc)
        centred = ClassSums.of(Xc, labels, n_classes)              # centred: no float32 loss to an offset
        s1 = centred.s1 + centred.n[:, None] * shift.to(STATE_DTYPE)
        shift64 = shift.to(STATE_DTYPE)
        row_sq = _row_squared_norms64(Xc)                                        # (B,) ‖x − shift‖²
        sq_centred = torch.zeros(n_classes, dtype=STATE_DTYPE, device=X.device).index_add_(0, labels.long(), row_sq)
        # Σ‖x‖² = Σ‖x − shift‖² + 2 shift·Σ(x − shift) + n‖shift‖², per class, in float64
        sq = sq_centred + 2 * (centred.s1 @ shift64) + centred.n * shift64.dot(shift64)
        return cls(n=centred.n, s1=s1, s2=s2, sq=sq)

    def total(self) -> Moments:
        """The class-blind :class:`Moments` of the same rows."""
        return Moments(n=self.n.sum(), s1=self.s1.sum(dim=0), s2=self.s2)

    def class_variances(self) -> Tensor:
        """Per-class total variance :math:`\\frac{1}{n_k}\\sum_{i:y_i=k}\\lVert x_i-\\mu_k\\rVert^2`, shape (K,)."""
        return self.sq / self.n.clamp_min(1) - self.means.square().sum(dim=1)

    def within_scatter(self) -> Tensor:
        """:math:`\\sum_k \\sum_{i: y_i=k} (x_i-\\mu_k)(x_i-\\mu_k)^\\top`, shape (D, D)."""
        scatter = self.s2 - (self.means * self.n[:, None]).T @ self.means
        return (scatter + scatter.T) / 2


@dataclass(frozen=True)
class ClassSums(PerClassStats):
    """Per-class counts and sums only: class means without any D×D matrix.

    Attributes
    ----------
    n : Tensor of shape (n_classes,)
    s1 : Tensor of shape (n_classes, n_features)

    The sums are scattered row by row (``index_add_``, O(B·D) work) instead of a one-hot
    GEMM (O(B·K·D)), so many classes cost nothing extra. Adding statistics with different
    ``n_classes`` pads the smaller one with empty classes, as :class:`ClassMoments` does.
    """

    n: Tensor
    s1: Tensor

    @classmethod
    def of(cls, X: Tensor, labels: Tensor, n_classes: int) -> ClassSums:
        """Counts and sums of the rows of ``X`` grouped by integer ``labels`` in ``[0, n_classes)``."""
        X = X.to(compute_dtype(X))
        index = labels.long()
        s1 = torch.zeros(n_classes, X.shape[1], dtype=X.dtype, device=X.device).index_add_(0, index, X)
        n = torch.bincount(index, minlength=n_classes).to(STATE_DTYPE)
        return cls(n=n, s1=s1.to(STATE_DTYPE))


@dataclass(frozen=True)
class ClassScatter(PerClassStats):
    """Per-class counts, sums and second moments: what per-class spectra need.

    Memory is ``n_classes * n_features**2`` float64 numbers, so analyzers ask for it only
    when that fits their budget.

    Attributes
    ----------
    n : Tensor of shape (n_classes,)
    s1 : Tensor of shape (n_classes, n_features)
    s2 : Tensor of shape (n_classes, n_features, n_features)
    """

    n: Tensor
    s1: Tensor
    s2: Tensor
    per_class_fields: ClassVar[tuple[str, ...]] = ("n", "s1", "s2")

    @classmethod
    def of(cls, X: Tensor, labels: Tensor, n_classes: int) -> ClassScatter:
        """Per-class statistics of the rows of ``X`` grouped by integer ``labels``."""
        D = X.shape[1]
        n = torch.zeros(n_classes, dtype=STATE_DTYPE, device=X.device)
        s1 = torch.zeros(n_classes, D, dtype=STATE_DTYPE, device=X.device)
        s2 = torch.zeros(n_classes, D, D, dtype=STATE_DTYPE, device=X.device)
        order = torch.argsort(labels)
        present, counts = torch.unique_consecutive(labels[order], return_counts=True)
        for k, rows in zip(present.tolist(), torch.split(order, counts.tolist())):
            s1[k], s2[k] = _centred_sums(X[rows])
            n[k] = float(rows.numel())
        return cls(n=n, s1=s1, s2=s2)

    def pooled(self) -> ClassMoments:
        """The same rows as :class:`ClassMoments` (second moment summed over classes)."""
        sq = torch.diagonal(self.s2, dim1=1, dim2=2).sum(dim=1)
        return ClassMoments(n=self.n, s1=self.s1, s2=self.s2.sum(dim=0), sq=sq)

    def class_scatter(self, k: int) -> Tensor:
        """Centred scatter of class ``k``, shape (D, D)."""
        return Moments(n=self.n[k].clamp_min(1), s1=self.s1[k], s2=self.s2[k]).scatter()
