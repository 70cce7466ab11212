"""Analyzer base classes: thin streaming shells over the functional kernels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from geometry_probe._threads import one_blas_thread
from geometry_probe.batch import Batch
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import EmptyAnalyzerError, MissingLabelsError
from geometry_probe.pairwise import TileConsumer, matmul_precision, precision_dtype, run_pass
from geometry_probe.result import Result
from geometry_probe.stats import SumStats


class Analyzer(ABC):
    """Accumulates additive statistics batch by batch, then computes a :class:`Result`.

    Subclasses set the class metadata and implement ``_stats`` (statistics of one batch,
    usually a cached property of :class:`~geometry_probe.batch.Batch`) and ``_compute``
    (the functional kernel applied to the summed state). ``update``/``merge``/``reset``/
    ``compute`` are shared, so every analyzer streams, merges and syncs the same way.

    Parameters
    ----------
    n_classes : int, optional
        Number of label codes; needed only by analyzers that use labels.
    """

    name: ClassVar[str]
    requires_labels: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = False
    requires_positives: ClassVar[bool] = False      # views, pairs or groups (see analyzers.positives)
    streamable: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, n_classes: int | None = None) -> None:
        self.n_classes = n_classes
        self._state: SumStats | None = None
        self._owns_state = False                 # whether ``_state`` is this analyzer's own accumulator

    def update(self, X: Tensor, labels: Tensor | None = None) -> None:
        """Add one batch of rows (shape (batch_size, n_features)) and optional label codes."""
        n_classes = self.n_classes or 0
        if labels is not None and self.n_classes is None and labels.numel():
            n_classes = int(labels.max()) + 1    # one host sync; pass n_classes to avoid it
        self.update_batch(Batch(X.detach(), labels, n_classes=n_classes))

    def update_batch(self, batch: Batch) -> None:
        """Add a shared :class:`Batch` (used by :func:`geometry_probe.analyze` for one pass)."""
        if self.requires_labels and batch.labels is None:
            raise MissingLabelsError(
                f"{self.name!r} needs labels: pass labels=... (library) or --labels (CLI).")
        stats = self._stats(batch)
        if self._state is None:                  # the batch's statistics may be shared with other analyzers
            self._state, self._owns_state = stats, False
        elif self._owns_state and isinstance(self._state, SumStats):
            self._state = self._state.accumulate(stats)   # in place: no new (C, D) state per batch
        else:
            self._state, self._owns_state = self._state + stats, True

    def wants_class_scatter(self, batch: Batch) -> bool:
        """Whether this analyzer will ask ``batch`` for per-class covariances (see :class:`Batch`)."""
        return False

    def wants_class_moments(self, batch: Batch) -> bool:
        """Whether this analyzer will ask ``batch`` for :class:`~geometry_probe.stats.ClassMoments`.

        :func:`geometry_probe.analyze` then computes them before any analyzer runs, so the
        class-blind moments other analyzers ask for derive from them: one GEMM per batch.
        """
        return False

    def needs_second_pass(self) -> bool:
        """Whether :meth:`update_second_pass` must see every batch again after the first pass."""
        return False

    def update_second_pass(self, batch: Batch) -> None:
        """Second look at a batch, for statistics that need first-pass results (e.g. class means)."""

    def end_second_pass(self) -> None:
        """Called once after the last :meth:`update_second_pass`: release what only that pass needed."""

    def merge(self, other: Analyzer) -> Analyzer:
        """Add the state of ``other`` (same class) into this analyzer; returns ``self``."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other._state is not None:
            self._state = other._state if self._state is None else self._state + other._state
            self._owns_state = self._state is not other._state
        return self

    def reset(self) -> None:
        """Forget all statistics."""
        self._state = None

    @property
    def state(self) -> SumStats | None:
        """The accumulated statistics (``None`` before the first update): the live accumulator, which later
        updates may add into in place; copy its tensors to keep a snapshot."""
        return self._state

    def compute(self) -> Result:
        """Result from the statistics summed over all processes of ``torch.distributed``."""
        if self._state is None:
            raise EmptyAnalyzerError(f"{type(self).__name__}.compute() was called before update().")
        state = self._state.all_reduced()
        with one_blas_thread():                  # small dense NumPy algebra beside torch's threads
            return self._compute(state)

    @abstractmethod
    def _stats(self, batch: Batch) -> SumStats: ...

    @abstractmethod
    def _compute(self, state: Any) -> Result: ...


class PairwiseAnalyzer(ABC):
    """An analyzer over pairs of rows (O(N²) work), run on the whole :class:`Embeddings`.

    It is not streamable. :func:`run_pairwise` asks every chosen pairwise analyzer for a tile
    consumer (:meth:`start`), walks the tiles of the cosine matrix **once** for all of them
    (so uniformity, histograms and kNN share one GEMM per tile), then calls :meth:`finish`.
    Analyzers that estimate from samples above their pair budget return no consumer, and the
    rows are then never all loaded at once.
    """

    name: ClassVar[str]
    requires_labels: ClassVar[bool] = False
    uses_labels: ClassVar[bool] = False
    requires_positives: ClassVar[bool] = False      # views, pairs or groups (see analyzers.positives)
    streamable: ClassVar[bool] = False
    invariances: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **params: Any) -> None:
        self.params = params

    def start(self, emb: Embeddings, *, device: torch.device) -> TileConsumer | None:
        """The consumer to feed with the exact tile pass, or ``None`` when none is needed."""
        return None

    @abstractmethod
    def finish(self, emb: Embeddings, X: Tensor | None, consumer: TileConsumer | None, *,
               device: torch.device, dtype: torch.dtype) -> Result:
        """The result, from the fed ``consumer`` (``X``: all rows, loaded only for the pass)."""

    def run(self, emb: Embeddings, *, device: torch.device, batch_size: int | None = None,
            precision: str = "float32") -> Result:
        """Compute the result on all of ``emb`` (``batch_size`` is accepted for symmetry)."""
        return run_pairwise(emb, [self], device=device, precision=precision)[0]


def run_pairwise(emb: Embeddings, analyzers: Sequence[PairwiseAnalyzer], *, device: torch.device,
                 precision: str = "float32", progress: Callable[[str, int, int], None] | None = None) -> list[Result]:
    """Run pairwise analyzers with one shared tile pass; ``precision`` is the tile GEMM's
    (``float32``, ``bfloat16`` or ``tf32``, see :mod:`geometry_probe.pairwise`); ``progress`` as
    in :func:`geometry_probe.pairwise.run_pass` (one process only)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from geometry_probe import distributed       # tiles split across the ranks (ring exchange)

        return distributed.run_pairwise(emb, analyzers, device=device, precision=precision)
    dtype = precision_dtype(precision)
    with matmul_precision(precision):
        consumers = [a.start(emb, device=device) for a in analyzers]
        active = [c for c in consumers if c is not None]
        X = emb.rows(np.arange(emb.n_samples), device=device) if active else None
        if active:
            run_pass(X, active, dtype=dtype, progress=progress)
        return [a.finish(emb, X, c, device=device, dtype=dtype) for a, c in zip(analyzers, consumers)]
