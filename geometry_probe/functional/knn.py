r"""Exact k-nearest neighbours by cosine similarity, and the metrics built on them.

:class:`NeighbourLists` keeps a running top-k per row while the upper-triangle tiles of
the cosine matrix go by (each tile updates its rows and, transposed, its columns), so memory
is O(N·k + tile²) and the pass can be shared with other tile consumers. Self-matches are
excluded by position, so duplicate points still count as neighbours of each other
(metrics-reference §11 item 19).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from geometry_probe.pairwise import Tile, run_pass, tile_size, unit_rows

VOTE_CHUNK_BYTES = 32 * 2**20


class NeighbourLists:
    """Running top-``k`` cosine neighbours of every row, fed upper-triangle tiles.

    Each tile updates its rows (``topk`` along the tile's rows) and its columns (``topk``
    along the rows of a contiguous transposed copy: one tile-sized temporary, faster on CPU
    than a strided ``topk`` down the columns); the k winners merge with the running lists (a
    (rows, 2k) ``topk``) that ranks exactly tied similarities by the lower row index, so the lists do
    not depend on the order in which candidates are merged (``torch.distributed`` ranks merge them
    in another order than one process). Self-matches are excluded by position.

    Parameters
    ----------
    n_rows : int
        Number of lists (rows whose neighbours are sought).
    k : int
        Neighbours kept per row, ``1 <= k < n_candidates``.
    n_candidates : int, optional
        Number of rows searched (default ``n_rows``).
    device : torch.device, optional
    """

    def __init__(self, n_rows: int, k: int, *, n_candidates: int | None = None,
                 device: torch.device | None = None) -> None:
        n_candidates = n_rows if n_candidates is None else n_candidates
        if not 1 <= k < n_candidates:
            raise ValueError(f"k must be in [1, {n_candidates - 1}] for {n_candidates} rows, got {k}.")
        if n_candidates > 2**32:
            raise ValueError(f"{n_candidates} rows: neighbour lists rank ties by a 32-bit row index; search fewer "
                             "than 2**32 rows.")
        self.k = k
        self.similarities = torch.full((n_rows, k), -math.inf, device=device)
        self.indices = torch.zeros((n_rows, k), dtype=torch.long, device=device)
        self._transposed: Tensor | None = None          # reused buffer for the transposed tile

    def add_tile(self, tile: Tile) -> None:
        """Merge the candidates of one tile into the lists of its rows and columns."""
        sims = tile.cosine
        if tile.diagonal:
            sims = sims.clone()
            sims.fill_diagonal_(-math.inf)
        self._merge(tile.rows, *sims.topk(min(self.k, sims.shape[1]), dim=1), offset=tile.cols.start)
        if not tile.diagonal:      # a contiguous transposed copy: topk along rows is ~1.6x faster than down columns
            if self._transposed is None or self._transposed.numel() < sims.numel():
                self._transposed = torch.empty(sims.numel(), dtype=sims.dtype, device=sims.device)
            columns = self._transposed[:sims.numel()].view(sims.shape[1], sims.shape[0]).copy_(sims.T)
            self._merge(tile.cols, *columns.topk(min(self.k, sims.shape[0]), dim=1), offset=tile.rows.start)

    def add_query_block(self, rows: Tensor, cols: slice, sims: Tensor) -> None:
        """Merge a block of cosines between query rows ``rows`` (global indices, one list each
        at the same positions of this object) and columns ``cols``; self-matches dropped
        (``sims`` is overwritten there: pass a tensor the caller owns)."""
        inside = (rows >= cols.start) & (rows < cols.stop)       # O(len(rows)), no host sync
        position = torch.arange(rows.numel(), device=sims.device)
        column = (rows - cols.start).clamp(0, sims.shape[1] - 1)
        sims[position, column] = torch.where(inside, -math.inf, sims[position, column])   # in place
        self._merge(slice(0, rows.numel()), *sims.topk(min(self.k, sims.shape[1]), dim=1), offset=cols.start)

    def _merge(self, rows: slice, top: Tensor, pos: Tensor, *, offset: int) -> None:
        values = torch.cat([self.similarities[rows], top], dim=1)
        index = torch.cat([self.indices[rows], pos + offset], dim=1)
        where = _ranking_keys(values, index).topk(self.k, dim=1).indices
        self.similarities[rows], self.indices[rows] = values.gather(1, where), index.gather(1, where)


def _ranking_keys(values: Tensor, index: Tensor) -> Tensor:
    """int64 keys that order candidates by float32 similarity, exact ties by the lower row index (< 2³²):
    the float's bits mapped to an order-preserving int32 in the high half, ``2³² − 1 − index`` in the low
    half. The top k by these keys is the same whatever the order in which candidates were merged."""
    bits = values.contiguous().view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)      # negative floats: reverse their order
    return (ordered << 32) | (0xFFFFFFFF - index)


def knn_search(X: Tensor, k: int, *, tile: int | None = None) -> tuple[Tensor, Tensor]:
    """Top-``k`` cosine similarities and indices of every row among the other rows (exact).

    Returns
    -------
    similarities : Tensor of shape (N, k), float32, descending
    indices : Tensor of shape (N, k), int64
    """
    lists = NeighbourLists(X.shape[0], k, device=X.device)
    run_pass(X, [lists], tile=tile)
    return lists.similarities, lists.indices


def knn_search_queries(X: Tensor, queries: Tensor, k: int, *, tile: int | None = None,
                       dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Exact top-``k`` cosine neighbours among all rows of ``X`` for the rows ``queries`` only
    (global indices; self excluded): O(len(queries)·N·D) work for sampled estimates."""
    N = X.shape[0]
    tile = tile or tile_size(N, device=X.device)
    lists = NeighbourLists(queries.numel(), k, n_candidates=N, device=X.device)
    Q = unit_rows(X[queries]).to(dtype)
    for start in range(0, N, tile):
        cols = slice(start, min(start + tile, N))
        lists.add_query_block(queries, cols, (Q @ unit_rows(X[cols], offset=start).to(dtype).T).to(torch.float32))
    return lists.similarities, lists.indices


def weighted_knn_accuracy(similarities: Tensor, indices: Tensor, labels: Tensor, n_classes: int, *,
                          temperature: float = 0.07) -> float:
    r"""Leave-one-out weighted kNN accuracy (Wu et al. 2018; DINO protocol).

    .. math::

        \hat y_i = \arg\max_c \sum_{j \in \mathcal{N}_k(i)} e^{s_{ij}/T}\,[y_j = c]

    with :math:`s_{ij}` the cosine similarity and :math:`\mathcal{N}_k(i)` the k nearest other rows.

    Returns
    -------
    float
        In [0, 1]; about 1/C for structureless embeddings.

    References
    ----------
    .. [1] Z. Wu, Y. Xiong, S. Yu, D. Lin, "Unsupervised feature learning via non-parametric
       instance discrimination", CVPR 2018. [2] M. Caron et al., "Emerging properties in
       self-supervised vision transformers" (DINO), ICCV 2021, ``eval_knn.py``.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> s, i = knn_search(X, 1)
    >>> weighted_knn_accuracy(s, i, torch.tensor([0, 0, 1, 1]), 2)
    1.0
    """
    return float(weighted_knn_correct(similarities, indices, labels, labels, n_classes,
                                      temperature=temperature).mean())


def weighted_knn_correct(similarities: Tensor, indices: Tensor, labels: Tensor, query_labels: Tensor,
                         n_classes: int, *, temperature: float = 0.07) -> Tensor:
    """Per-query correctness (float64 0/1) of the weighted kNN vote of
    :func:`weighted_knn_accuracy`; ``labels`` index the neighbours, ``query_labels`` the queries."""
    weights = torch.exp(similarities.to(torch.float64) / temperature)                  # (M, k)
    k = weights.shape[1]
    by_class = n_classes <= k * k                    # (rows, C) votes; with many classes (k, k) label matches
    rows = max(1, VOTE_CHUNK_BYTES // (8 * (max(n_classes, 1) if by_class else k * k)))   # never an M x C array
    correct = []
    for start in range(0, len(query_labels), rows):
        part = slice(start, start + rows)
        neighbour_labels = labels[indices[part]]                                         # (rows, k)
        if by_class:
            votes = torch.zeros(weights[part].shape[0], n_classes, dtype=torch.float64, device=weights.device)
            votes.scatter_add_(1, neighbour_labels, weights[part])
            winner = votes.argmax(dim=1)             # the first maximum: ties go to the lowest class code
        else:                                        # vote of neighbour j's class: Σ_j' w_j' [y_j' = y_j]
            same = neighbour_labels[:, :, None] == neighbour_labels[:, None, :]
            votes = (same * weights[part][:, None, :]).sum(dim=2)                         # (rows, k)
            best = votes == votes.max(dim=1, keepdim=True).values
            winner = torch.where(best, neighbour_labels, n_classes).min(dim=1).values    # ties: lowest code
        correct.append((winner == query_labels[part]).to(torch.float64))
    return torch.cat(correct) if correct else weights.new_zeros(0)


def hubness_skewness(indices: Tensor, n_samples: int) -> float:
    r"""Skewness of the k-occurrence distribution (Radovanović et al., 2010).

    .. math::

        S_{N_k} = \frac{\mathbb{E}[(N_k - \mu)^3]}{\sigma^3}, \qquad
        N_k(x) = \#\{y : x \in \mathcal{N}_k(y)\}

    (population skewness, as scipy.stats.skew with bias=True).

    Returns
    -------
    float
        0 for a symmetric distribution, large positive when a few hubs appear in many
        neighbour lists; NaN when every point occurs equally often (σ = 0).

    References
    ----------
    .. [1] M. Radovanović, A. Nanopoulos, M. Ivanović, "Hubs in space: popular nearest
       neighbors in high-dimensional data", JMLR 2010.

    Examples
    --------
    >>> import torch
    >>> hubness_skewness(torch.tensor([[1], [0], [3], [2]]), 4)  # every point occurs once
    nan
    """
    return occurrence_skewness(k_occurrence(indices, n_samples))


def occurrence_skewness(occurrence: np.ndarray) -> float:
    """Population skewness of k-occurrence counts (:func:`k_occurrence`): :func:`hubness_skewness`
    from counts that may have been summed over the row shards of several processes."""
    centred = occurrence - occurrence.mean()
    sigma = math.sqrt(float((centred**2).mean()))
    return float((centred**3).mean()) / sigma**3 if sigma > 1e-12 else math.nan


def k_occurrence(indices: Tensor, n_samples: int) -> np.ndarray:
    """How often each row appears in the others' neighbour lists, shape (n_samples,)."""
    return torch.bincount(indices.flatten().cpu(), minlength=n_samples).to(torch.float64).numpy()


def twonn_dimension(similarities: Tensor) -> float:
    r"""TwoNN intrinsic dimension (Facco et al., 2017), maximum-likelihood form.

    .. math::

        \hat d = \frac{N'}{\sum_i \ln(r_{2,i}/r_{1,i})}

    with :math:`r_1, r_2` the chord distances :math:`\sqrt{2 - 2 s}` on the unit sphere to the
    first and second neighbours; rows with :math:`r_1 = 0` (duplicates) are left out (N' rows kept).

    References
    ----------
    .. [1] E. Facco, M. d'Errico, A. Rodriguez, A. Laio, "Estimating the intrinsic dimension of
       datasets by a minimal neighborhood information", Scientific Reports 2017.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[0.5, -0.125]] * 4)    # chord r = sqrt(2 - 2s): r1 = 1, r2 = 1.5
    >>> round(twonn_dimension(s), 6) == round(1 / math.log(1.5), 6)
    True
    """
    kept, log_ratios = twonn_sums(similarities)
    return kept / log_ratios if log_ratios > 0 else math.nan


def twonn_sums(similarities: Tensor) -> tuple[float, float]:
    r"""``(N', Σ ln(r₂/r₁))`` of :func:`twonn_dimension` (additive over rows: a row shard's share)."""
    r = torch.sqrt((2 - 2 * similarities[:, :2].to(torch.float64)).clamp_min(0))
    keep = r[:, 0] > 0
    return float(keep.sum()), float(torch.log(r[keep, 1] / r[keep, 0]).sum())
