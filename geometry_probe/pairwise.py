"""Tiled pairwise engine: reductions over all pairs of rows without an N×N matrix.

:func:`cosine_tiles` walks the upper triangle of the cosine matrix in square tiles
(``j ≥ i``: half the work), each one GEMM ``X_I X_Jᵀ``. :func:`run_pass` feeds every tile to
several consumers (:class:`~geometry_probe.functional.contrastive.PairSums`,
:class:`~geometry_probe.functional.knn.NeighbourLists`, ...), so uniformity, cosine
histograms and kNN share one pass and memory stays O(tile² + N·k).

Normalisation scales the two row blocks of each tile by their inverse norms (a copy of
``tile × D`` values, never of X); unit-norm input is used as is. Tile size comes from a
memory budget. Cosines come out of the GEMM unclamped (within a few ulp of [−1, 1]);
consumers that bin or take square roots clamp.

Precision (``dtype``): float32 by default (cosines accurate to ~1e-7). ``torch.bfloat16``
runs the GEMM in bfloat16, whose 8-bit mantissa gives cosines accurate to only ~4e-3
(means over pairs average the rounding out: uniformity within 1e-7 of float32 at 20,000 x 768;
kNN ranks among near-ties may swap: 10-NN recall 0.988 there); it is fast on GPUs and on CPUs
with AMX/AVX-512-BF16, and several times *slower* on plain AVX2 CPUs. TF32 (CUDA only, see
:func:`matmul_precision`) rounds the GEMM inputs to a 10-bit mantissa: cosines to ~1e-3.
Reductions accumulate per-tile float32 sums (pairwise summation) into float64 totals.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidEmbeddingsError, InvalidInputError

TILE_MEMORY_BYTES = 32 * 2**20          # CPU: a 2048² float32 tile (16 MiB) and one same-size temporary
CUDA_TILE_MEMORY_BYTES = 2**30          # GPU: 11,585² tiles, large enough to keep the tensor cores busy
PAIRWISE_PRECISIONS = ("float32", "bfloat16", "tf32")


def tile_size(n_rows: int, *, memory_bytes: int | None = None, device: torch.device | None = None) -> int:
    """Rows per tile so that one float32 tile (and a same-size temporary) fits ``memory_bytes``
    (default: ``TILE_MEMORY_BYTES``, or ``CUDA_TILE_MEMORY_BYTES`` on a CUDA ``device``)."""
    if memory_bytes is None:
        on_gpu = device is not None and torch.device(device).type == "cuda"
        memory_bytes = CUDA_TILE_MEMORY_BYTES if on_gpu else TILE_MEMORY_BYTES
    return max(1, min(n_rows, int(math.sqrt(memory_bytes / 8))))


def inverse_norms(X: Tensor, *, offset: int = 0) -> Tensor:
    """1/‖x_i‖ for every row; zero rows raise, naming them (their direction is undefined)."""
    norms = torch.linalg.vector_norm(X if X.dtype == torch.float64 else X.to(torch.float32), dim=1)
    zero = norms == 0
    if bool(zero.any()):
        rows = ", ".join(str(offset + int(i)) for i in zero.nonzero().flatten()[:5])
        raise InvalidEmbeddingsError(
            f"embeddings: rows {rows} have zero norm, so their cosine is undefined; drop them first.")
    return 1.0 / norms


@dataclass(frozen=True)
class Tile:
    """Cosines between rows ``rows`` and columns ``cols`` (``cols.start >= rows.start``)."""

    rows: slice
    cols: slice
    cosine: Tensor            # (len(rows), len(cols)), float32, unclamped

    @property
    def diagonal(self) -> bool:
        """True for tiles on the diagonal (they hold each pair twice and the self-pairs)."""
        return self.rows == self.cols


class TileConsumer(Protocol):
    """Anything that reduces tiles: ``add_tile`` is called once per upper-triangle tile (whose
    ``cosine`` lives in a reused buffer, valid only during the call)."""

    def add_tile(self, tile: Tile) -> None: ...


def _unit_blocks(X: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
    """X (rescaled if its magnitudes would overflow float32) and its inverse norms, or None
    when the rows are already unit-norm (no scaling needed)."""
    inv = inverse_norms(X)
    largest, smallest = float(1 / inv.min()), float(1 / inv.max())
    if largest > 1e15 or smallest < 1e-15:       # float32 products would overflow or underflow:
        X = X / largest                          # rescale a copy (cosines are scale-free)
        inv = inverse_norms(X)
    if bool(((inv - 1).abs() < 1e-6).all()):
        return X, None
    return X, inv.to(torch.float32)


def _block(X: Tensor, inv: Tensor | None, rows: slice, dtype: torch.dtype) -> Tensor:
    block = X[rows]
    if inv is not None:
        block = block.to(torch.float32) * inv[rows, None]
    return block.to(dtype)


def cosine_tiles(X: Tensor, *, tile: int | None = None, dtype: torch.dtype = torch.float32) -> Iterator[Tile]:
    """Yield the upper-triangle tiles of the cosine matrix of the rows of ``X`` (shape (N, D)).

    Every tile is written into one reused buffer: a consumer must not keep ``tile.cosine``
    beyond its ``add_tile`` call (copy what it needs).
    """
    N = X.shape[0]
    tile = tile or tile_size(N, device=X.device)
    X, inv = _unit_blocks(X, dtype)
    buffer = torch.empty(min(tile, N) ** 2, dtype=torch.float32, device=X.device)
    for i in range(0, N, tile):
        rows = slice(i, min(i + tile, N))
        left = _block(X, inv, rows, dtype)
        for j in range(i, N, tile):
            cols = slice(j, min(j + tile, N))
            right = left if j == i else _block(X, inv, cols, dtype)
            yield Tile(rows, cols, _product(left, right, buffer))


def _product(left: Tensor, right: Tensor, buffer: Tensor) -> Tensor:
    """``left @ right.T`` as float32, written into (a contiguous view of) ``buffer``."""
    out = buffer[:left.shape[0] * right.shape[0]].view(left.shape[0], right.shape[0])
    if left.dtype == torch.float32:
        return torch.mm(left, right.T, out=out)
    return out.copy_(left @ right.T)


def _rows_of(t: Tensor) -> Tensor:
    """``t`` as rows for short float32 reductions: a tile's own rows, or a float64 copy of a long vector."""
    if t.ndim > 1:
        return t.reshape(-1, t.shape[-1])
    return (t if t.numel() <= 4096 else t.to(torch.float64)).reshape(1, -1)


def sum64(t: Tensor) -> Tensor:
    r"""float64 :math:`\sum t`: per-row sums in ``t``'s dtype, added in float64."""
    return _rows_of(t).sum(dim=1).to(torch.float64).sum()


def sum_abs64(t: Tensor) -> Tensor:
    r"""float64 :math:`\sum |t|` from per-row 1-norms.

    A float32 ``vector_norm`` over a whole 2048² tile is off by ~4e-4 relative (it does not sum
    pairwise); row by row it is within 2e-8.
    """
    return torch.linalg.vector_norm(_rows_of(t), ord=1, dim=1).to(torch.float64).sum()


def sum_sq64(t: Tensor) -> Tensor:
    r"""float64 :math:`\sum t^2` from per-row 2-norms (see :func:`sum_abs64`)."""
    return torch.linalg.vector_norm(_rows_of(t), dim=1).to(torch.float64).square().sum()


def unit_rows(X: Tensor, *, offset: int = 0) -> Tensor:
    """The rows of ``X`` scaled to unit norm, float32 (float64 input stays float64); zero rows
    raise, named by ``offset + i``."""
    inv = inverse_norms(X, offset=offset)
    return X.to(inv.dtype) * inv[:, None]


def run_pass(X: Tensor, consumers: Sequence[TileConsumer], *, tile: int | None = None,
             dtype: torch.dtype = torch.float32, progress: Callable[[str, int, int], None] | None = None) -> None:
    """One walk over the upper-triangle tiles of ``X``, each tile fed to every consumer;
    ``progress("tiles", done, total)`` after each tile when given."""
    tile = tile or tile_size(X.shape[0], device=X.device)
    blocks = -(-X.shape[0] // tile)
    total = blocks * (blocks + 1) // 2
    for done, t in enumerate(cosine_tiles(X, tile=tile, dtype=dtype), start=1):
        for consumer in consumers:
            consumer.add_tile(t)
        if progress is not None:
            progress("tiles", done, total)


def precision_dtype(precision: str) -> torch.dtype:
    """Tile GEMM dtype for a ``pairwise_precision`` name (``tf32`` keeps float32 tensors)."""
    if precision not in PAIRWISE_PRECISIONS:
        raise InvalidInputError(f"pairwise_precision must be one of {', '.join(PAIRWISE_PRECISIONS)}, "
                                f"got {precision!r}.")
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Allow TF32 GEMMs on CUDA inside the block when ``precision == "tf32"``; restore after."""
    if precision != "tf32":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
