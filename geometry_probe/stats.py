"""Additive float64 sufficient statistics: the only state an analyzer keeps.

Every field is a sum over samples, so statistics of a union are the elementwise sum of
statistics of its parts: merging is ``+``, a multi-process sync is one ``all_reduce`` per
field, and streaming in batches equals one shot.

Precision (metrics-reference §1.2: statistics in float64). Each batch is first centred on
its own mean; its scatter :math:`\\sum_b (x_b-\\bar x)(x_b-\\bar x)^\\top` is one GEMM and the
raw second moment is rebuilt in float64,
:math:`S_2 = C + \\bar x s_c^\\top + s_c \\bar x^\\top + n \\bar x \\bar x^\\top` with
:math:`s_c = \\sum_b (x_b-\\bar x)`. ``precision`` chooses the arithmetic of that GEMM and of
the per-batch class sums:

* ``"float64"`` (the default, exact): every batch is converted to a float64 copy and all
  products and sums run in float64, so statistics of float32 input match a float64
  computation on the same numbers to float64 round-off. It is the only exact choice:
  products of float32 numbers are exact in float64 but float32 *accumulation* rounds, so
  no float32 GEMM trick (split operands, compensated sums inside BLAS) removes the error.
  On CPU it costs about 2x a float32 GEMM; on CUDA it runs in float64 as well, which is
  fast on data-centre GPUs (P100, V100, A100, H100, H200, B200: float64 at half the float32
  rate or better) and 32-64x slower on consumer GPUs (GeForce/RTX, 1/32-1/64 float64 rate),
  where ``precision="float32"`` is the practical choice. The nearest-centre pass of neural
  collapse is the exception: it scores float32 rows in float32 and recomputes in float64 only
  the rows a rounding bound cannot decide (same decisions as float64).
* ``"float32"`` (fast): float32, float16 and bfloat16 batches are multiplied and summed in
  float32 (float64 input stays float64). Centring per batch keeps the GEMM free of the
  cancellation a large offset causes, but the GEMM's rounding puts a noise floor of about
  ``eps32 * sqrt(D / B) * λ_max`` under the eigenvalues: singular values below roughly
  ``2e-4 * σ_max`` are not resolved. Measured on 4,000 x 256 float32 input, effective rank
  reads 2.4 % / 1.4 % / 0.35 % high for exact ranks 5 / 10 / 50 (5.09 for 4.97, 10.09 for
  9.95, 48.76 for 48.59), and NC1 is off by up to 3e-6 relative (docs/performance.md,
  "Exact by default"); the default's errors are below 1e-5 and 1e-12.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F
from torch import Tensor

from geometry_probe._threads import one_blas_thread

STATE_DTYPE = torch.float64

T = TypeVar("T")
S = TypeVar("S", bound="SumStats")
P = TypeVar("P", bound="PerClassStats")


PRECISIONS = ("float64", "float32")
DEFAULT_PRECISION = "float64"
_NUMPY_DTYPES = {torch.float64: np.float64, torch.float32: np.float32}
STATE_MEMORY_BYTES = 2 * 2**30


def primal_bytes(n_features: int) -> int:
    """Memory of a D×D statistic at its peak: the summed moment, one batch's, and two copies solved at the end."""
    return 4 * 8 * n_features**2


def compute_dtype(X: Tensor, precision: str = DEFAULT_PRECISION) -> torch.dtype:
    """Arithmetic of a batch's GEMMs and sums: float64 unless ``precision="float32"`` and ``X`` is not float64."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.float32 if precision == "float32" and X.dtype != torch.float64 else torch.float64


def gram(A: Tensor) -> Tensor:
    """``Aᵀ A`` for a (B, D) tensor; on CPU through NumPy, whose BLAS call (syrk) halves the work.

    On CPU each row range (:func:`_row_ranges`) gets its own single-threaded syrk, on the same
    thread pool as the batch's other NumPy work, and the partial products are summed: BLAS's
    own worker threads, which keep spinning after a call, would otherwise hold the cores that
    torch's thread pool needs next (a 2-core machine under load: 0.18 s instead of 0.31 s for
    10,922 x 768).
    """
    if A.device.type == "cpu":
        a = A.contiguous().numpy()
        parts = _row_ranges(len(a))
        if len(parts) == 1:
            return torch.from_numpy(a.T @ a)
        with one_blas_thread():
            partial = map_parallel(lambda rows: a[rows].T @ a[rows], parts)
        return torch.from_numpy(sum(partial[1:], partial[0]))
    return A.T @ A


def _column_sums64(A: Tensor) -> Tensor:
    """Column sums of a (B, D) tensor accumulated in float64; on CPU through NumPy (several times faster)."""
    if A.device.type == "cpu":
        return torch.from_numpy(A.contiguous().numpy().sum(axis=0, dtype=np.float64))
    return A.sum(dim=0, dtype=STATE_DTYPE)


def row_squared_norms(A: Tensor) -> Tensor:
    """Squared L2 norm of every row of a (B, D) tensor, shape (B,), returned in float64.

    Computed in the rows' dtype: the rows given are centred on the batch mean, so even a
    float32 sum of D squares is accurate to ~1e-7 relative, and the cross terms that restore
    the offset are added in float64 by the caller. On CPU a NumPy row-wise dot product on
    row ranges in parallel (:func:`map_parallel`), like the rest of a batch's NumPy work, so
    torch's thread pool is not woken between BLAS calls.
    """
    if A.device.type == "cpu":
        a = A.numpy()
        squares = np.concatenate(map_parallel(lambda rows: np.einsum("ij,ij->i", a[rows], a[rows]), _row_ranges(len(a))))
        return torch.from_numpy(squares).to(STATE_DTYPE)
    return torch.linalg.vector_norm(A, dim=1).square().to(STATE_DTYPE)


def _centred_sums(X: Tensor, precision: str = DEFAULT_PRECISION) -> tuple[Tensor, Tensor]:
    """Return ``(s1, s2)`` = (Σ x, Σ x xᵀ) in float64 for the rows of ``X``, via a centred GEMM."""
    return _sums_of_centred(*_centred(X, precision))


SHIFT_ROWS = 1024                 # rows whose mean is a batch's shift


def _centred(X: Tensor, precision: str = DEFAULT_PRECISION) -> tuple[Tensor, Tensor]:
    """``(shift, X - shift)`` in the compute dtype, shape (D,) and (B, D).

    ``shift`` is the mean of at most ``SHIFT_ROWS`` evenly spaced rows of the batch. Every sum
    built on the centred rows adds the shift back exactly (:func:`_sums_of_centred`,
    :meth:`ClassNorms.of_centred`), so any shift gives the same statistics; one near the batch
    mean (within :math:`\sigma/32` of it) keeps the centred GEMM free of the cancellation an
    offset would cause, without a pass over the whole batch to find it.

    On CPU the conversion and the centring are one ``np.subtract`` into this thread's reused batch buffer
    (:func:`_scratch_rows`): no fresh batch-sized array, whose page faults cost as much as
    the conversion itself. Both run on row ranges in parallel (:func:`map_parallel`: NumPy
    releases the GIL), as the GEMM that follows does. The returned rows are valid until the
    next call on the same thread; every caller in this module reduces them to sums first.
    """
    dtype = compute_dtype(X, precision)
    if X.device.type == "cpu":
        x, numpy_dtype = X.numpy(), _NUMPY_DTYPES[dtype]
        parts = _row_ranges(len(x))
        sample = x[::max(1, len(x) // SHIFT_ROWS)]
        shift = sample.sum(axis=0, dtype=numpy_dtype) / numpy_dtype(len(sample))
        centred = _scratch_rows(x.shape, numpy_dtype)
        map_parallel(lambda rows: np.subtract(x[rows], shift, out=centred[rows], dtype=numpy_dtype), parts)
        return torch.from_numpy(shift), torch.from_numpy(centred)
    X = X.to(dtype)
    shift = X[::max(1, X.shape[0] // SHIFT_ROWS)].mean(dim=0)  # (D,) in the compute dtype
    return shift, X - shift                                   # (B, D)


_ROWS_PER_THREAD = 4096
_POOL: ThreadPoolExecutor | None = None


def _row_ranges(n_rows: int) -> list[slice]:
    """Row ranges for element-wise NumPy work: one per torch intra-op thread, at least 4,096 rows each."""
    parts = max(1, min(torch.get_num_threads(), n_rows // _ROWS_PER_THREAD))
    bounds = np.linspace(0, n_rows, parts + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def map_parallel(work: Callable[[Any], T], parts: list[Any]) -> list[T]:
    """``work`` on every part (row ranges, matrices), on a shared thread pool when there are several
    and torch may use more than one thread (``torch.set_num_threads``, ``OMP_NUM_THREADS``: the
    budget every rank of ``torchrun`` gets).

    The pool's threads run NumPy work that releases the GIL (element-wise passes, BLAS on one
    thread), so a batch's NumPy work uses every core without waking BLAS's own thread pool.
    """
    global _POOL
    if len(parts) == 1 or torch.get_num_threads() == 1:
        return [work(part) for part in parts]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="geometry_probe_rows")
    return list(_POOL.map(work, parts))


_SCRATCH = threading.local()


def _scratch_rows(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A (B, D) array of ``dtype`` reused across batches by the calling thread (grown when too small).

    It holds one batch (the batch size is chosen by a memory budget), and is released by
    :func:`release_scratch` at the end of an analysis.
    """
    size = shape[0] * shape[1]
    buffer = getattr(_SCRATCH, "rows", None)
    if buffer is None or buffer.dtype != dtype or buffer.size < size:
        _SCRATCH.rows = buffer = np.empty(size, dtype=dtype)
    return buffer[:size].reshape(shape)


def release_scratch() -> None:
    """Free the calling thread's batch buffer of :func:`_centred` (called when a stream ends)."""
    _SCRATCH.rows = None


def as_compute(X: Tensor, precision: str = DEFAULT_PRECISION) -> Tensor:
    """``X`` in the compute dtype of ``precision`` (no copy when it already is; NumPy conversion on CPU)."""
    dtype = compute_dtype(X, precision)
    if X.dtype == dtype:
        return X
    if X.device.type == "cpu":
        return torch.from_numpy(X.numpy().astype(_NUMPY_DTYPES[dtype]))
    return X.to(dtype)


def _sums_of_centred(shift: Tensor, Xc: Tensor, column_sums: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(s1, s2)`` in float64 of the rows ``Xc + shift``.

    :math:`S_2 = C + a s_c^\\top + s_c a^\\top + n a a^\\top = C + a u^\\top + u a^\\top` with
    :math:`u = s_c + \\tfrac n2 a` (``a`` the shift), added as one rank-2 GEMM update.
    ``column_sums`` is :math:`s_c` when the caller already has it (from class sums).
    """
    scatter = gram(Xc).to(STATE_DTYPE)                        # (D, D)
    shift64 = shift.to(STATE_DTYPE)
    sc = _column_sums64(Xc) if column_sums is None else column_sums   # (D,) ≈ 0, kept for exactness
    n = Xc.shape[0]
    u = sc + (n / 2) * shift64
    s2 = torch.addmm(scatter, torch.stack([shift64, u], dim=1), torch.stack([u, shift64]))
    s1 = sc + n * shift64
    return s1, s2


def _scatter_rows(X: Tensor, index: Tensor, n_classes: int) -> Tensor:
    """Row sums per class, shape (n_classes, D), in ``X``'s dtype.

    On CPU a CSR one-hot (n_classes × B) times ``X`` through SciPy: the same sequential sums as
    ``index_add_``, 10x faster (0.01 s against 0.1 s for 10,922 × 768 float64 rows in 100 classes).
    """
    if X.device.type == "cpu":
        B = X.shape[0]
        one_hot = scipy.sparse.csr_matrix((np.ones(B, dtype=_NUMPY_DTYPES[X.dtype]), (index.numpy(), np.arange(B))),
                                          shape=(n_classes, B))
        return torch.from_numpy(np.asarray(one_hot @ X.numpy()))
    return torch.zeros(n_classes, X.shape[1], dtype=X.dtype, device=X.device).index_add_(0, index, X)


@dataclass(frozen=True)
class SumStats:
    """Statistics that combine by elementwise addition (a commutative monoid)."""

    def __add__(self: S, other: S) -> S:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def accumulate(self: S, other: S) -> S:
        """Add ``other`` into these statistics in place and return them (for an accumulator its owner
        alone holds: no new state per batch, which matters when a field is (C, D) with C = 10⁵)."""
        for f in fields(self):
            getattr(self, f.name).add_(getattr(other, f.name))
        return self

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

    def accumulate(self: P, other: P) -> P:
        """In-place :meth:`SumStats.accumulate`; a new (padded) sum when ``other`` has more classes."""
        if other.n_classes > self.n_classes:
            return self + other
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            (mine[:theirs.shape[0]] if f.name in self.per_class_fields else mine).add_(theirs)
        return self

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
    def of(cls, X: Tensor, *, precision: str = DEFAULT_PRECISION) -> Moments:
        """Statistics of the rows of ``X`` (shape (n_samples, n_features)); ``precision`` as in the module doc."""
        s1, s2 = _centred_sums(X, precision)
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
    def of(cls, X: Tensor, labels: Tensor, n_classes: int, *, precision: str = DEFAULT_PRECISION) -> ClassMoments:
        """Statistics of the rows of ``X`` grouped by integer ``labels`` in ``[0, n_classes)``."""
        shift, Xc = _centred(X, precision)
        centred = ClassSums.of(Xc, labels, n_classes, precision=precision)
        exact_sums = centred.s1.sum(dim=0) if Xc.dtype == torch.float64 else None   # float32 mode: float64 sums
        _, s2 = _sums_of_centred(shift, Xc, column_sums=exact_sums)
        norms = ClassNorms.of_centred(shift, Xc, labels, n_classes, precision=precision, centred=centred)
        return cls(n=norms.n, s1=norms.s1, s2=s2, sq=norms.sq)

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
class ClassNorms(PerClassStats):
    """Per-class counts, sums and sums of squared norms: :class:`ClassMoments` without the D×D moment.

    What neural collapse needs when a D×D matrix does not fit (wide embeddings): class means,
    per-class variances and, through a second pass, Σ_W on the span of the class means.

    Attributes
    ----------
    n : Tensor of shape (n_classes,)
    s1 : Tensor of shape (n_classes, n_features)
    sq : Tensor of shape (n_classes,)
        :math:`\\sum_{i: y_i = k} \\lVert x_i \\rVert^2`.
    """

    n: Tensor
    s1: Tensor
    sq: Tensor
    per_class_fields: ClassVar[tuple[str, ...]] = ("n", "s1", "sq")

    @classmethod
    def of(cls, X: Tensor, labels: Tensor, n_classes: int, *, precision: str = DEFAULT_PRECISION) -> ClassNorms:
        """Statistics of the rows of ``X`` grouped by integer ``labels`` in ``[0, n_classes)``."""
        return cls.of_centred(*_centred(X, precision), labels, n_classes, precision=precision)

    @classmethod
    def of_centred(cls, shift: Tensor, Xc: Tensor, labels: Tensor, n_classes: int, *,
                   precision: str = DEFAULT_PRECISION, centred: ClassSums | None = None) -> ClassNorms:
        """Statistics of the rows ``Xc + shift`` (``Xc`` centred on ``shift``, near the batch mean);
        ``centred`` is the :class:`ClassSums` of ``Xc`` when the caller already has it."""
        if centred is None:
            centred = ClassSums.of(Xc, labels, n_classes, precision=precision)   # centred: no loss to an offset
        shift64 = shift.to(STATE_DTYPE)
        row_sq = row_squared_norms(Xc)                                        # (B,) ‖x − shift‖²
        sq_centred = torch.zeros(n_classes, dtype=STATE_DTYPE, device=Xc.device).index_add_(0, labels.long(), row_sq)
        # Σ‖x‖² = Σ‖x − shift‖² + 2 shift·Σ(x − shift) + n‖shift‖², per class, in float64
        sq = sq_centred + 2 * (centred.s1 @ shift64) + centred.n * shift64.dot(shift64)
        s1 = centred.s1.addr_(centred.n, shift64)          # Σ x = Σ(x − shift) + n shift, in place: (C, D) once
        return cls(n=centred.n, s1=s1, sq=sq)

    def class_variances(self) -> Tensor:
        """Per-class total variance :math:`\\frac{1}{n_k}\\sum_{i:y_i=k}\\lVert x_i-\\mu_k\\rVert^2`, shape (K,)."""
        return self.sq / self.n.clamp_min(1) - self.means.square().sum(dim=1)


@dataclass(frozen=True)
class RowStack:
    """The rows themselves, for statistics whose exact form needs them (the N×N dual of wide data).

    Not a sum: adding two stacks concatenates them (row order does not matter to the
    statistics built on it). Rows are kept as they arrive (float32 input stays float32,
    so the stack costs the input's size); the float64 arithmetic happens when it is used.

    Attributes
    ----------
    rows : tuple of Tensor of shape (n_i, n_features)
    precision : {"float64", "float32"}
        Arithmetic to use on them.
    """

    rows: tuple[Tensor, ...]
    precision: str = DEFAULT_PRECISION

    def __add__(self, other: RowStack) -> RowStack:
        if type(other) is not type(self):
            return NotImplemented
        return RowStack(self.rows + other.rows, self.precision)

    @property
    def n_samples(self) -> int:
        """Rows held."""
        return sum(int(r.shape[0]) for r in self.rows)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return sum(r.numel() * r.element_size() for r in self.rows)

    def all_reduced(self) -> RowStack:
        """``self``; under ``torch.distributed`` the rows would have to be gathered, which is refused."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            raise NotImplementedError("the N x N dual of wide embeddings keeps the rows; it does not run under "
                                      "torch.distributed. Gather the rows on one process or pass fewer features.")
        return self


@dataclass(frozen=True)
class ClassSums(PerClassStats):
    """Per-class counts and sums only: class means without any D×D matrix.

    Attributes
    ----------
    n : Tensor of shape (n_classes,)
    s1 : Tensor of shape (n_classes, n_features)

    The sums are scattered row by row (O(B·D) work: a sparse one-hot product on CPU,
    ``index_add_`` elsewhere) instead of a dense one-hot GEMM (O(B·K·D)), so many classes cost
    nothing extra. Adding statistics with different
    ``n_classes`` pads the smaller one with empty classes, as :class:`ClassMoments` does.
    """

    n: Tensor
    s1: Tensor

    @classmethod
    def of(cls, X: Tensor, labels: Tensor, n_classes: int, *, precision: str = DEFAULT_PRECISION) -> ClassSums:
        """Counts and sums of the rows of ``X`` grouped by integer ``labels`` in ``[0, n_classes)``.

        The sums accumulate in the compute dtype of ``precision`` (float64 by default; with
        ``"float32"`` they round in float32 within the batch, then add up in float64).
        """
        X = as_compute(X, precision)
        index = labels.long()
        n = torch.bincount(index, minlength=n_classes).to(STATE_DTYPE)
        return cls(n=n, s1=_scatter_rows(X, index, n_classes).to(STATE_DTYPE))


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
    def of(cls, X: Tensor, labels: Tensor, n_classes: int, *, precision: str = DEFAULT_PRECISION) -> ClassScatter:
        """Per-class statistics of the rows of ``X`` grouped by integer ``labels``."""
        D = X.shape[1]
        n = torch.zeros(n_classes, dtype=STATE_DTYPE, device=X.device)
        s1 = torch.zeros(n_classes, D, dtype=STATE_DTYPE, device=X.device)
        s2 = torch.zeros(n_classes, D, D, dtype=STATE_DTYPE, device=X.device)
        order = torch.argsort(labels)
        present, counts = torch.unique_consecutive(labels[order], return_counts=True)
        for k, rows in zip(present.tolist(), torch.split(order, counts.tolist())):
            s1[k], s2[k] = _centred_sums(X[rows], precision)
            n[k] = float(rows.numel())
        return cls(n=n, s1=s1, s2=s2)

    def pooled(self) -> ClassMoments:
        """The same rows as :class:`ClassMoments` (second moment summed over classes)."""
        sq = torch.diagonal(self.s2, dim1=1, dim2=2).sum(dim=1)
        return ClassMoments(n=self.n, s1=self.s1, s2=self.s2.sum(dim=0), sq=sq)

    def class_scatter(self, k: int) -> Tensor:
        """Centred scatter of class ``k``, shape (D, D)."""
        return Moments(n=self.n[k].clamp_min(1), s1=self.s1[k], s2=self.s2[k]).scatter()
