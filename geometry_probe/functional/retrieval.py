r"""Neighbour-based comparisons of two row-aligned representations, exact and tiled.

* :func:`paired_ranks`: for paired modalities (row i of A is paired with row i of B, same D),
  the rank of each true partner among all N candidates of the other modality, both ways, in
  one pass over N × N cosine tiles (each tile one GEMM into a reused buffer; memory O(tile² + N)).
* :func:`knn_jaccard`: the Jaccard overlap of each row's k-nearest-neighbour sets in A and
  in B (the tiled kNN engine of :mod:`geometry_probe.functional.knn`).
* :func:`modality_gap`: the distance between the centroids of the L2-normalised rows.

Tie rule of the ranks: a candidate whose cosine *equals* the true partner's counts as ranked
above it (``rank_i = #{j ≠ i : s_ij ≥ s_ii}``), so a tie never gives a hit: Recall@k is a lower
bound when ties occur (e.g. duplicated rows) and exact otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidEmbeddingsError, InvalidInputError
from geometry_probe.functional.knn import knn_search
from geometry_probe.pairwise import inverse_norms, tile_size, unit_rows

JACCARD_CHUNK_ROWS = 65536
COMPARE_CHUNK_BYTES = 2 * 2**20   # CPU: tile rows compared at a time, sized to stay in cache (2048 rows: 256)


def paired_ranks(A: Tensor, B: Tensor, *, tile: int | None = None) -> tuple[Tensor, Tensor]:
    r"""Rank of the true partner in cross-modal retrieval, both directions (exact, tiled).

    .. math::

        \mathrm{rank}^{a\to b}_i = \#\{j \ne i : \cos(a_i, b_j) \ge \cos(a_i, b_i)\},\qquad
        \mathrm{rank}^{b\to a}_j = \#\{i \ne j : \cos(a_i, b_j) \ge \cos(a_j, b_j)\}

    Both come from the same tiles :math:`\hat A_I \hat B_J^\top` (float32 GEMMs, or float64 when
    either input is float64): rows of a tile count for a→b, its columns for b→a, so the N² cosines
    are computed once for both directions. The partners' cosines come from the diagonal tiles,
    computed once first. Every tile, its unit-row blocks and its comparison masks are written into
    buffers allocated once: memory is O(tile² + tile·D + N) beyond the inputs (on CPU at the
    default 2048-row tile, N = 100,000 and D = 256: about 25 MB), and no top-k lists are kept.

    Parameters
    ----------
    A, B : Tensor of shape (N, D)
        Row i of A is paired with row i of B. Rows are L2-normalised; zero rows raise.
    tile : int, optional
        Rows per tile (default from the memory budget of :func:`geometry_probe.pairwise.tile_size`).

    Returns
    -------
    rank_a_to_b, rank_b_to_a : Tensor of shape (N,), int64
        0 when the partner is the unique best match.

    Examples
    --------
    >>> import torch
    >>> A = torch.eye(3); B = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]])
    >>> [r.tolist() for r in paired_ranks(A, B)]   # query 1: b_2 beats its partner, b_0 ties it (cos 0)
    [[0, 2, 2], [0, 2, 2]]
    """
    check_paired(A, B)
    N = A.shape[0]
    tile = min(tile or tile_size(N, device=A.device), N)
    dtype = torch.float64 if torch.float64 in (A.dtype, B.dtype) else torch.float32
    left, right = _UnitBlocks(A, tile, dtype), _UnitBlocks(B, tile, dtype)
    product = torch.empty(tile * tile, dtype=dtype, device=A.device)
    blocks = [slice(start, min(start + tile, N)) for start in range(0, N, tile)]
    partner = torch.empty(N, dtype=dtype, device=A.device)
    for rows in blocks:
        partner[rows] = _product(left.load(rows), right.load(rows), product).diagonal()
    counter = _RankCounter(partner, tile)
    for rows in blocks:
        u = left.load(rows)
        for cols in blocks:
            sims = _product(u, right.load(cols), product)
            if rows == cols:
                sims.fill_diagonal_(-torch.inf)
            counter.add(sims, rows, cols)
    return counter.a_to_b.to(torch.long), counter.b_to_a.to(torch.long)


class _UnitBlocks:
    """Blocks of rows of ``X`` scaled to unit norm, each written into one reused (tile × D) buffer."""

    def __init__(self, X: Tensor, tile: int, dtype: torch.dtype):
        self.X, self.inv = X, inverse_norms(X)
        self.buffer = torch.empty(tile, X.shape[1], dtype=dtype, device=X.device)

    def load(self, rows: slice) -> Tensor:
        out = self.buffer[:rows.stop - rows.start]
        return out.copy_(self.X[rows]).mul_(self.inv[rows, None])


def _product(left: Tensor, right: Tensor, buffer: Tensor) -> Tensor:
    """``left @ right.T`` written into (a contiguous view of) ``buffer``."""
    return torch.mm(left, right.T, out=buffer[:left.shape[0] * right.shape[0]].view(left.shape[0], right.shape[0]))


class _RankCounter:
    """Counts, per query, the candidates at least as similar as its partner, tile by tile.

    A tile is compared in chunks of rows small enough to stay in the CPU cache
    (``COMPARE_CHUNK_BYTES``; the whole tile on GPU): a 0/1 mask against the row partners times
    a vector of ones gives the a→b counts, one against the column partners the b→a counts
    (GEMVs, exact: a count of at most ``tile`` < 2²⁴ ones). Totals are float64 (exact below 2⁵³).
    """

    def __init__(self, partner: Tensor, tile: int):
        N, device, dtype = partner.shape[0], partner.device, partner.dtype
        self.partner = partner
        on_gpu = device.type == "cuda"
        self.chunk = tile if on_gpu else max(1, min(tile, COMPARE_CHUNK_BYTES // (tile * partner.element_size())))
        self.mask = torch.empty(self.chunk * tile, dtype=dtype, device=device)
        self.ones = torch.ones(tile, dtype=dtype, device=device)
        self.row_counts = torch.empty(tile, dtype=dtype, device=device)
        self.col_counts = torch.empty(tile, dtype=dtype, device=device)
        self.totals = torch.empty(tile, dtype=torch.float64, device=device)
        self.a_to_b = torch.zeros(N, dtype=torch.float64, device=device)
        self.b_to_a = torch.zeros(N, dtype=torch.float64, device=device)

    def add(self, sims: Tensor, rows: slice, cols: slice) -> None:
        n_rows, n_cols = sims.shape
        col_counts = self.col_counts[:n_cols].zero_()
        for start in range(0, n_rows, self.chunk):
            block = sims[start:start + self.chunk]
            m = block.shape[0]
            mask = self.mask[:m * n_cols].view(m, n_cols)
            torch.ge(block, self.partner[rows.start + start:rows.start + start + m, None], out=mask)
            torch.mv(mask, self.ones[:n_cols], out=self.row_counts[start:start + m])
            torch.ge(block, self.partner[None, cols], out=mask)
            col_counts.addmv_(mask.T, self.ones[:m])
        self.a_to_b[rows] += self.totals[:n_rows].copy_(self.row_counts[:n_rows])   # cast in a buffer, not a
        self.b_to_a[cols] += self.totals[:n_cols].copy_(col_counts)                 # per-tile temporary


def recall_at(ranks: Tensor, k: int) -> float:
    """Share of queries whose partner ranks among the top ``k`` (``rank < k``)."""
    return float((ranks < k).to(torch.float64).mean())


def check_paired(A: Tensor, B: Tensor) -> None:
    """Paired modalities need the same number of rows and the same dimension."""
    if A.shape != B.shape:
        raise InvalidEmbeddingsError(
            f"paired comparison: A is {tuple(A.shape)} and B is {tuple(B.shape)}; paired modalities need the same "
            "shape (row i of A paired with row i of B, in one shared embedding space).")
    if A.shape[0] < 2:
        raise InvalidEmbeddingsError(f"paired comparison: {A.shape[0]} rows; retrieval needs at least 2 pairs.")


def modality_gap(A: Tensor, B: Tensor) -> float:
    r"""Modality gap (Liang et al., 2022): distance between the centroids of the unit rows.

    .. math::

        \Delta = \Big\lVert \frac1N\sum_i \hat a_i - \frac1N\sum_i \hat b_i \Big\rVert_2

    Returns
    -------
    float
        In [0, 2]; 0 when both modalities have the same centroid on the sphere.

    References
    ----------
    .. [1] W. Liang, Y. Zhang, Y. Kwon, S. Yeung, J. Zou, "Mind the gap: understanding the
       modality gap in multi-modal contrastive representation learning", NeurIPS 2022.

    Examples
    --------
    >>> import torch
    >>> modality_gap(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])) == 2 ** 0.5
    True
    """
    return float(torch.linalg.vector_norm(unit_rows(A.to(torch.float64)).mean(dim=0)
                                          - unit_rows(B.to(torch.float64)).mean(dim=0)))


def remove_gap(X: Tensor) -> Tensor:
    """Unit rows minus their centroid, renormalised (the modality's mean direction removed).

    Raises
    ------
    InvalidEmbeddingsError
        A row equals the centroid (it has no direction left).
    """
    U = unit_rows(X)                             # the one copy, centred and renormalised in place
    U -= U.mean(dim=0)
    return U.mul_(inverse_norms(U)[:, None])


def knn_jaccard(A: Tensor, B: Tensor, k: int, *, tile: int | None = None) -> Tensor:
    r"""Jaccard overlap of the k-nearest-neighbour sets of each row in A and in B.

    .. math::

        J_i = \frac{|\mathcal N^A_k(i) \cap \mathcal N^B_k(i)|}{|\mathcal N^A_k(i) \cup \mathcal N^B_k(i)|}
            = \frac{m_i}{2k - m_i}

    with :math:`\mathcal N^X_k(i)` the k rows most cosine-similar to row i in X (itself
    excluded; exact, tiled). The mutual-neighbour alignment of Huh et al. (2024) is
    :math:`m_i / k` on the same sets.

    Returns
    -------
    Tensor of shape (N,), float64
        1 when the neighbourhoods coincide; about k/N for unrelated representations.

    References
    ----------
    .. [1] M. Huh, B. Cheung, T. Wang, P. Isola, "The platonic representation hypothesis", ICML 2024.

    Examples
    --------
    >>> import torch
    >>> X = torch.randn(30, 5)
    >>> bool((knn_jaccard(X, 2 * X, 3) == 1).all())
    True
    """
    if A.shape[0] != B.shape[0]:
        raise InvalidEmbeddingsError(f"knn overlap: A has {A.shape[0]} rows and B {B.shape[0]}; "
                                     "the rows must describe the same inputs.")
    if not 1 <= k < A.shape[0]:
        raise InvalidInputError(f"knn overlap: k must be in [1, {A.shape[0] - 1}] for {A.shape[0]} rows, got {k}.")
    _, near_a = knn_search(A, k, tile=tile)
    _, near_b = knn_search(B, k, tile=tile)
    shared = torch.cat([(near_a[s, :, None] == near_b[s, None, :]).any(dim=2).sum(dim=1)
                        for s in _chunks(A.shape[0])]).to(torch.float64)
    return shared / (2 * k - shared)


def _chunks(n: int) -> list[slice]:
    return [slice(start, start + JACCARD_CHUNK_ROWS) for start in range(0, n, JACCARD_CHUNK_ROWS)]
