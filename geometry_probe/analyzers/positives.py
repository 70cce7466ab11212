"""Positive pairs of a contrastive setting, from views, explicit pairs or groups.

The ``contrastive`` and ``fmicl`` analyzers take the same three ways of naming positives:

- ``views`` (N, D): row i of ``views`` is the positive of row i of the embeddings;
- ``pairs`` (M, 2): row indices ``(i, j)`` of positive pairs;
- ``groups`` (N,): group ids; every pair of rows within a group is a positive pair.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.pairwise import unit_rows

ROW_CHUNK = 65536                 # rows per chunk at most; fewer when D > 256 (ROW_CHUNK_BYTES)
ROW_CHUNK_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Positives:
    """Which rows are positives of which (at most one of ``views``, ``pairs``, ``groups`` is used,
    in that order)."""

    views: Any = None
    pairs: Any = None
    groups: Any = None

    @property
    def given(self) -> bool:
        """Whether any positives were given."""
        return any(v is not None for v in (self.views, self.pairs, self.groups))

    def cosines(self, emb: Embeddings, device: torch.device, alpha: float = 2.0) -> tuple[np.ndarray, float] | None:
        """float64 cosines of the positive pairs and their alignment
        :math:`\\frac1M\\sum_m \\lVert \\hat x_m - \\hat y_m\\rVert^\\alpha` (unit rows), or ``None``
        without positives. Raises :class:`InvalidInputError` on shapes or indices that do not fit."""
        rows = chunk_rows(emb.n_features)
        if self.views is not None:
            views = self._views(emb)
            return _paired_cosines(lambda s: emb.rows(np.arange(s.start, s.stop), device=device),
                                   lambda s: views[s].to(device=device, dtype=torch.float64),
                                   emb.n_samples, alpha, rows)
        if self.pairs is not None or self.groups is not None:
            P = self.pair_indices(emb)
            return _paired_cosines(lambda s: emb.rows(P[s, 0], device=device),
                                   lambda s: emb.rows(P[s, 1], device=device), len(P), alpha, rows)
        return None

    def paired_rows(self, emb: Embeddings, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchors and their keys, row by row: (embeddings, views), or the two rows of each pair."""
        if self.views is not None:
            return emb.rows(np.arange(emb.n_samples), device=device), self._views(emb).to(device)
        P = self.pair_indices(emb)
        return emb.rows(P[:, 0], device=device), emb.rows(P[:, 1], device=device)

    def pair_indices(self, emb: Embeddings) -> np.ndarray:
        """The (M, 2) int64 row indices of the positive pairs (``pairs``, or all pairs within each group)."""
        if self.pairs is not None:
            P = np.asarray(self.pairs)
            if P.ndim != 2 or P.shape[1] != 2 or P.dtype.kind not in "iu":
                raise InvalidInputError(f"pairs: expected an integer array of shape (M, 2), got {P.shape} {P.dtype}.")
            if P.size and (P.min() < 0 or P.max() >= emb.n_samples):
                raise InvalidInputError(f"pairs: row indices must lie in [0, {emb.n_samples}); got "
                                        f"[{P.min()}, {P.max()}].")
            return P.astype(np.int64, copy=False)
        g = np.asarray(self.groups)
        if g.shape != (emb.n_samples,):
            raise InvalidInputError(f"groups: expected {emb.n_samples} ids, got shape {g.shape}.")
        return group_pairs(g)

    def _views(self, emb: Embeddings) -> torch.Tensor:
        views = self.views if isinstance(self.views, torch.Tensor) else torch.from_numpy(np.array(self.views))
        if tuple(views.shape) != (emb.n_samples, emb.n_features):
            raise InvalidInputError(f"views: shape {tuple(views.shape)} does not match the embeddings "
                                    f"{(emb.n_samples, emb.n_features)}; row i of views must be the positive of row i.")
        return views


def group_pairs(groups: np.ndarray) -> np.ndarray:
    """All pairs (i, j), i before j, within each group, as an (M, 2) int64 array."""
    return np.array([(i, j) for members in _members(groups) for k, i in enumerate(members)
                     for j in members[k + 1:]], dtype=np.int64).reshape(-1, 2)


def chunk_rows(n_features: int) -> int:
    """Rows per streamed chunk: ``ROW_CHUNK``, fewer when a float64 copy of it would exceed ``ROW_CHUNK_BYTES``."""
    return max(256, min(ROW_CHUNK, ROW_CHUNK_BYTES // (8 * max(n_features, 1))))


def _members(groups: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(groups, kind="stable")
    _, starts = np.unique(groups[order], return_index=True)
    return [m for m in np.split(order, starts[1:]) if m.size > 1]


def _paired_cosines(first: Callable[[slice], torch.Tensor], second: Callable[[slice], torch.Tensor], n_pairs: int,
                    alpha: float, rows: int) -> tuple[np.ndarray, float]:
    """Cosines and alignment of ``n_pairs`` positive pairs, rows fetched in chunks of ``rows``."""
    cosines, distances = [], 0.0
    for start in range(0, n_pairs, rows):
        chunk = slice(start, min(start + rows, n_pairs))
        a = unit_rows(first(chunk), offset=start).to(torch.float64)
        b = unit_rows(second(chunk), offset=start).to(torch.float64)
        cosines.append((a * b).sum(1).clamp(-1, 1).cpu())
        distances += float(torch.linalg.vector_norm(a - b, dim=1).pow(alpha).sum())
    return torch.cat(cosines).numpy(), distances / n_pairs if n_pairs else math.nan
