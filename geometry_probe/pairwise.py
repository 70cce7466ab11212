"""Tiled pairwise engine: reductions over all pairs of rows without an N×N matrix.

:func:`cosine_tiles` walks the upper triangle of the cosine matrix in square tiles
(``j ≥ i``: half the work), each one GEMM ``X_I X_Jᵀ`` scaled by precomputed inverse row
norms — rows are never copied normalised. Tile size comes from a memory budget. Consumers
reduce each tile on the fly (log-sum-exp, sums, histograms, running top-k), so several
reductions share one pass and memory stays O(tile²).

Precision: tiles are float32 by default (cosines accurate to ~1e-7); ``dtype=torch.bfloat16``
runs the GEMM in bfloat16, whose 8-bit mantissa gives cosines accurate to only ~4e-3 — fine for
histograms and kNN ranks, not for uniformity in the −3.9 … −4 range. Reductions accumulate in
float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidEmbeddingsError

TILE_MEMORY_BYTES = 32 * 2**20


def tile_size(n_rows: int, *, memory_bytes: int = TILE_MEMORY_BYTES) -> int:
    """Rows per tile so that one float32 tile (and a same-size temporary) fits ``memory_bytes``."""
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
    cosine: Tensor            # (len(rows), len(cols)), float32

    @property
    def diagonal(self) -> bool:
        """True for tiles on the diagonal (they hold each pair twice and the self-pairs)."""
        return self.rows == self.cols


def cosine_tiles(X: Tensor, *, tile: int | None = None, dtype: torch.dtype = torch.float32) -> Iterator[Tile]:
    """Yield the upper-triangle tiles of the cosine matrix of the rows of ``X`` (shape (N, D))."""
    N = X.shape[0]
    tile = tile or tile_size(N)
    inv = inverse_norms(X)
    largest, smallest = float(1 / inv.min()), float(1 / inv.max())
    if largest > 1e15 or smallest < 1e-15:       # float32 products would overflow or underflow:
        X = X / largest                          # rescale a copy (cosines are scale-free)
        inv = inverse_norms(X)
    inv = inv.to(torch.float32)
    Xc = X.to(dtype)
    for i in range(0, N, tile):
        rows = slice(i, min(i + tile, N))
        left = Xc[rows]
        for j in range(i, N, tile):
            cols = slice(j, min(j + tile, N))
            cos = (left @ Xc[cols].T).to(torch.float32)
            cos.mul_(inv[rows, None]).mul_(inv[None, cols]).clamp_(-1.0, 1.0)
            yield Tile(rows, cols, cos)
