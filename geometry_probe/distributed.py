r"""Analysis over several processes with ``torch.distributed`` (``torchrun``; NCCL on GPUs, gloo on CPUs).

Under an initialised process group, :func:`geometry_probe.analyze` splits the work:

* **Streaming statistics** (spectrum, neural collapse, orthogonality): rank ``r`` of ``R``
  streams the rows ``[⌊rN/R⌋, ⌊(r+1)N/R⌋)`` (:func:`row_range`; a sharded input opens only the
  shards those rows live in), and the float64 statistics are summed with one ``all_reduce``
  per field (``SumStats.all_reduced``). The nearest-centre second pass of neural collapse runs
  on the same rows after the class means were all-reduced, and its counts are all-reduced.
* **The exact pairwise pass** (``contrastive`` and ``knn`` below their pair budget) keeps the
  tile grid of one process (tile ``T`` from :func:`geometry_probe.pairwise.tile_size` of the
  global N) and gives each rank a contiguous run of tile blocks. Each rank first pairs its own
  blocks, then the chunk of rows of another rank goes around a ring (``send``/``recv``), one
  chunk at a time: at step ``s = 1 … ⌊R/2⌋`` rank ``r`` holds the rows of rank ``r+s`` and
  computes the tiles between the two (when ``s = R/2`` both halves of the pair meet and share
  those tiles out so that the two ranks' modelled work comes out equal: :class:`BlockPlan`). Every
  tile of the upper triangle is computed exactly once, by the same GEMM on the same numbers as in
  one process; pair sums are all-reduced, and each rank's partial neighbour lists of the visiting
  rows go back to their owner and are merged by a top-k reduction. Each rank keeps the final
  lists of its own rows only (:class:`RankLists`): the kNN metrics sum their per-row terms
  (k-occurrence counts, correct votes, TwoNN log ratios) over the ranks in one ``all_reduce``.
* **Sampled estimators** draw their samples from global row indices with the analysis seed
  (pairs, query rows, batches, the nearest-centre Bernoulli sample), so the draws do not depend
  on the world size; every rank reads the rows it needs from the whole (sharded) input.

Same answer: every scalar equals the one-process run on the concatenated rows to float64
round-off (sums in another order: 1e-12 relative and better; tested at 1e-9), and neighbour lists
are identical: the top-k merges rank exactly tied similarities by the lower row index, so the
order in which the ranks' candidates are merged does not matter.

Failures: each phase between collectives runs under :func:`synchronised`: an error on any rank
is announced to every rank at the next synchronisation point, every rank raises (the failing
rank its own error, the others :class:`DistributedError` naming the rank and its message),
and the command line prints it once, on rank 0. A rank that dies outright is caught by the
process group's timeout (``GEOPROBE_DIST_TIMEOUT`` seconds, default 1800, for groups the
command line starts; gloo usually notices the closed connection at once).

Communication per rank (bytes, N rows, D features, K classes, k neighbours, R ranks):
spectrum 8(D² + D + 1); neural collapse 8(D² + K D + 2K) plus the same again for the class
means of the second pass; orthogonality 8(K D + K); the exact pairwise pass about
⌊R/2⌋·(N/R)·D·4 for the ring plus 12·k·(N/R)·⌊R/2⌋ for the returned lists and 8(N + 3) for the
kNN metrics' per-row sums (``docs/guide/distributed.md`` has the cost model).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from geometry_probe._validation import check_finite_batch
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import GeometryProbeError, InvalidInputError
from geometry_probe.functional.contrastive import HIST_BINS, DistanceSums, PairSums
from geometry_probe.functional.fmicl import FmiclSums
from geometry_probe.functional.knn import NeighbourLists
from geometry_probe.pairwise import Tile, _block, _product, inverse_norms, tile_size

DEFAULT_TIMEOUT_S = 1800.0
ROW_COST = 1250      # modelled work per row a tile touches, in pairs (top-k merges, row-wise reductions; see BlockPlan)


class DistributedError(GeometryProbeError, RuntimeError):
    """Another rank failed, or the process group broke (a rank died or timed out)."""


@dataclass(frozen=True)
class Context:
    """This process's place in the process group."""

    rank: int
    world_size: int
    backend: str


def context() -> Context | None:
    """The running process group, or ``None`` without one."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return Context(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))


def describe() -> dict[str, Any]:
    """``{"world_size", "backend"}`` for ``Results.meta`` (1 and ``"none"`` in one process)."""
    ctx = context()
    return {"world_size": 1 if ctx is None else ctx.world_size, "backend": "none" if ctx is None else ctx.backend}


def is_writer() -> bool:
    """True on the process that prints and writes outputs: rank 0, or the only process."""
    ctx = context()
    return ctx is None or ctx.rank == 0


def init_from_environment(*, device: str | None = "auto") -> Context | None:
    """Start the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), once.

    Backend: ``GEOPROBE_DIST_BACKEND`` if set, else NCCL when CUDA is available and ``device``
    is not ``"cpu"``, else gloo. With NCCL each process takes the GPU ``LOCAL_RANK``
    (``torch.cuda.set_device``), so ``device="auto"`` resolves to it. The group's timeout is
    ``GEOPROBE_DIST_TIMEOUT`` seconds (default 1800). The NCCL path is written to the PyTorch
    documentation but was not run on GPUs here (no GPU was available when it was written).

    Returns
    -------
    Context or None
        ``None`` when not launched by ``torchrun`` (or with one process).
    """
    if context() is not None:
        return context()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    use_cuda = torch.cuda.is_available() and str(device) not in ("cpu",) and not str(device).startswith("cpu")
    backend = os.environ.get("GEOPROBE_DIST_BACKEND") or ("nccl" if use_cuda else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = timedelta(seconds=float(os.environ.get("GEOPROBE_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    dist.init_process_group(backend=backend, timeout=timeout)
    return context()


def shutdown() -> None:
    """Destroy the process group if this module's caller started one (safe to call twice)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def settle() -> None:
    """Wait until every rank got here (after an error, so rank 0 has printed before any rank exits);
    a broken group is ignored: the error is already being reported."""
    try:
        dist.barrier()
    except Exception:  # noqa: BLE001  (a dead peer: nothing left to wait for)
        pass


def row_range(n_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[⌊rN/R⌋, ⌊(r+1)N/R⌋)`` of rank ``r``: contiguous, sizes differ by at most one."""
    return n_samples * rank // world_size, n_samples * (rank + 1) // world_size


def check_rows(n_samples: int) -> None:
    """Refuse fewer rows than processes (every rank must take part in every pass)."""
    ctx = context()
    if ctx is not None and n_samples < ctx.world_size:
        raise InvalidInputError(f"{n_samples} rows for {ctx.world_size} processes: every process needs at least one "
                                "row; run fewer processes.")


def local_batches(emb: Embeddings, batch_size: int, *, device: torch.device | None = None,
                  dtype: torch.dtype | None = None) -> Iterator[tuple[Tensor, Tensor | None, int]]:
    """``emb.batches(...)`` restricted to this rank's :func:`row_range` (all rows in one process).

    Offsets are global row indices, so messages name rows of the whole data set.
    """
    ctx = context()
    if ctx is None:
        yield from emb.batches(batch_size, device=device, dtype=dtype)
        return
    lo, hi = row_range(emb.n_samples, ctx.rank, ctx.world_size)
    for start in range(lo, hi, batch_size):
        stop = min(start + batch_size, hi)
        X = emb._rows(slice(start, stop), device, dtype)
        check_finite_batch(X, offset=start, name=emb.name)
        y = None if emb.labels is None else torch.as_tensor(emb.labels[start:stop], device=X.device)
        yield X, y, start


def block_batches(emb: Embeddings, block: int, *, device: torch.device | None = None
                  ) -> Iterator[tuple[Tensor, Tensor | None, int]]:
    """``emb.batches(block)``, this rank taking a contiguous run of those same blocks (:func:`row_range`
    over the block count), so every block is the one a single process reads, with the same GEMM shapes."""
    ctx = context()
    if ctx is None:
        yield from emb.batches(block, device=device)
        return
    first, last = row_range(math.ceil(emb.n_samples / block), ctx.rank, ctx.world_size)
    for b in range(first, last):
        start, stop = b * block, min((b + 1) * block, emb.n_samples)
        yield emb.rows(np.arange(start, stop), device=device), None, start


def shared_concat(sizes: Sequence[int], compute: Any, *, dtype: torch.dtype) -> Tensor:
    """``torch.cat([compute(i) for i in range(len(sizes))])`` (CPU), item ``i`` computed by rank ``i mod R`` only.

    Each rank writes its items into a zero vector and the vectors are summed over the ranks
    (``x + 0`` is exact), so every rank gets the one-process values; ``sizes[i]`` is the length
    of ``compute(i)``.
    """
    ctx = context()
    if ctx is None:
        return torch.cat([compute(i).cpu() for i in range(len(sizes))]) if sizes else torch.zeros(0, dtype=dtype)
    ends = np.cumsum([0, *sizes])
    out = torch.zeros(int(ends[-1]), dtype=dtype)
    for i in range(ctx.rank, len(sizes), ctx.world_size):
        out[ends[i]:ends[i + 1]] = compute(i).cpu()
    return all_reduce_(out)


def sum_over_ranks(tensor: Tensor) -> Tensor:
    """``tensor`` summed over the ranks (a new tensor; ``tensor`` itself without a process group)."""
    return tensor if context() is None else all_reduce_(tensor.clone())


def merge_top_k(lists: NeighbourLists) -> NeighbourLists:
    """Merge every rank's partial neighbour lists of the same query rows into ``lists`` (a top-k reduction,
    ranks in order); the result is the same on every rank. No-op without a process group."""
    ctx = context()
    if ctx is None:
        return lists
    comm = _comm_device()
    parts = []
    for values in (lists.similarities, lists.indices):
        chunks = [torch.empty_like(values, device=comm) for _ in range(ctx.world_size)]
        dist.all_gather(chunks, values.to(comm).contiguous())
        parts.append([c.to(values.device) for c in chunks])
    n = lists.similarities.shape[0]
    lists.similarities.fill_(-math.inf)
    lists.indices.zero_()
    for sims, index in zip(*parts):
        lists._merge(slice(0, n), sims, index, offset=0)
    return lists


def _comm_device() -> torch.device:
    """Where collective buffers live: the current GPU under NCCL, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextlib.contextmanager
def collective(phase: str) -> Iterator[None]:
    """Turn a broken process group (a dead rank, a timeout) into one :class:`DistributedError`."""
    try:
        yield
    except NotImplementedError as err:                # a statistic that cannot be combined (the N x N dual)
        raise InvalidInputError(str(err)) from None
    except RuntimeError as err:
        if isinstance(err, GeometryProbeError):
            raise
        ctx = context()
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(f"rank {ctx.rank if ctx else '?'}: the process group failed during {phase} (another "
                               f"process stopped or timed out): {first}") from None


@contextlib.contextmanager
def synchronised(phase: str) -> Iterator[None]:
    """Run a local phase; then every rank learns whether any rank failed in it.

    One ``all_reduce`` (MIN of the failing ranks) per phase; on a failure the first failing
    rank broadcasts its message. The failing rank re-raises its own error; every other rank
    raises :class:`DistributedError` ``"rank r failed during <phase>: <message>"``. Without a
    process group this is a no-op.
    """
    ctx = context()
    if ctx is None:
        yield
        return
    error: BaseException | None = None
    try:
        yield
    except Exception as err:  # any failure must reach the other ranks before they wait on a collective
        error = err
    device = _comm_device()
    with collective(phase):
        first = torch.tensor([ctx.rank if error is not None else ctx.world_size], dtype=torch.int64, device=device)
        dist.all_reduce(first, op=dist.ReduceOp.MIN)
        failed = int(first.item())
        if failed == ctx.world_size:
            return
        message = _broadcast_text(str(error) if ctx.rank == failed else "", failed, device)
    if error is not None:
        raise error
    raise DistributedError(f"rank {failed} failed during {phase}: {message}")


def _broadcast_text(text: str, source: int, device: torch.device) -> str:
    data = torch.tensor(list(text.encode("utf-8")[:4000]), dtype=torch.uint8, device=device)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=device)
    dist.broadcast(size, src=source)
    if dist.get_rank() != source:
        data = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    if data.numel():
        dist.broadcast(data, src=source)
    return bytes(data.cpu().tolist()).decode("utf-8", errors="replace")


def all_reduce_(tensor: Tensor, op: Any = None) -> Tensor:
    """In-place ``all_reduce`` (SUM by default) through the communication device; returns ``tensor``."""
    device = _comm_device()
    buffer = tensor if tensor.device == device else tensor.to(device)
    dist.all_reduce(buffer, op=op or dist.ReduceOp.SUM)
    if buffer is not tensor:
        tensor.copy_(buffer.to(tensor.device))
    return tensor


# --- the exact pairwise pass ------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockPlan:
    """The one-process tile grid and which rank owns which blocks of it.

    Block ``b`` holds rows ``[bT, min((b+1)T, N))``; rank ``r`` owns blocks
    ``[⌊rB/R⌋, ⌊(r+1)B/R⌋)`` of the ``B = ⌈N/T⌉`` blocks. Tiles between the blocks of two ranks
    that meet at the half-way ring step (``2s = R``) are shared out so that the two ranks' work
    (own triangle, earlier steps and this share) comes out as equal as the tiles allow
    (:meth:`computes`). The work of a tile is modelled as its pairs plus ``ROW_COST`` = 1,250 per
    row and column it touches (:meth:`tile_cost`): one thread on CPU, ``contrastive`` and ``knn``
    with k = 20, took 105 ms for a 2,048 × 2,048 tile, 73 ms for 2,048 × 1,088, 41 ms for
    1,024 × 1,024 and 80 ms for a 2,048-row diagonal tile (the top-k merges and row-wise reductions
    cost per row, not per pair).
    """

    n_samples: int
    tile: int
    world_size: int

    @property
    def n_blocks(self) -> int:
        """B = ⌈N/T⌉."""
        return math.ceil(self.n_samples / self.tile)

    def blocks(self, rank: int) -> range:
        """Blocks owned by ``rank``."""
        return range(self.n_blocks * rank // self.world_size, self.n_blocks * (rank + 1) // self.world_size)

    def rows(self, rank: int) -> tuple[int, int]:
        """Rows ``[lo, hi)`` owned by ``rank`` (empty when it owns no block)."""
        b = self.blocks(rank)
        lo = min(b.start * self.tile, self.n_samples)
        return lo, min(b.stop * self.tile, self.n_samples)

    def block_rows(self, block: int) -> slice:
        """Global rows of ``block``."""
        return slice(block * self.tile, min((block + 1) * self.tile, self.n_samples))

    def computes(self, rank: int, step: int, own: int, visiting: int) -> bool:
        """Whether ``rank`` computes the tile of blocks ``own`` × ``visiting`` at ring step ``step``."""
        if 2 * step != self.world_size:
            return True                          # 2s < R: the pair meets only at this rank's step s
        first = min(rank, (rank + step) % self.world_size)
        pair = (own, visiting) if rank == first else (visiting, own)
        return (pair in self._half_step_tiles[first]) == (rank == first)

    def work(self, rank: int) -> int:
        """Modelled work (:meth:`tile_cost`) of the tiles ``rank`` computes."""
        own = self.blocks(rank)
        total = sum(self.tile_cost(i, j) for i in own for j in own if j >= i)
        for step in range(1, self.world_size // 2 + 1):
            other = self.blocks((rank + step) % self.world_size)
            total += sum(self.tile_cost(i, j) for i in own for j in other if self.computes(rank, step, i, j))
        return total

    def tile_cost(self, i: int, j: int) -> int:
        """Modelled work of the tile of blocks ``i`` × ``j``: ``|I|·|J| + ROW_COST·(|I| + |J|)``, a diagonal
        tile ``|I|² + ROW_COST·|I|`` (its rows are its columns)."""
        rows, cols = self.block_rows(i), self.block_rows(j)
        r, c = rows.stop - rows.start, cols.stop - cols.start
        return r * c + ROW_COST * (r + (c if i != j else 0))

    @cached_property
    def _half_step_tiles(self) -> dict[int, frozenset[tuple[int, int]]]:
        """For each pair of ranks ``a < b = a + R/2`` (even R): the tiles ``(block of a, block of b)`` that
        ``a`` computes; ``b`` computes the others. Greedy, costliest tiles first, each to the rank with less
        work so far: every rank runs the same deterministic assignment, so no message is needed."""
        if self.world_size % 2:
            return {}
        half = self.world_size // 2
        shares = {}
        for a in range(half):
            b = a + half
            load = {}
            for r in (a, b):
                own = self.blocks(r)
                load[r] = sum(self.tile_cost(i, j) for i in own for j in own if j >= i)
                for step in range(1, half):
                    load[r] += sum(self.tile_cost(i, j) for i in own
                                   for j in self.blocks((r + step) % self.world_size))
            tiles = sorted(((i, j) for i in self.blocks(a) for j in self.blocks(b)),
                           key=lambda t: (-self.tile_cost(*t), t))
            mine = set()
            for i, j in tiles:
                taker = a if load[a] <= load[b] else b
                load[taker] += self.tile_cost(i, j)
                if taker == a:
                    mine.add((i, j))
            shares[a] = frozenset(mine)
        return shares


def run_pairwise(emb: Embeddings, analyzers: Sequence[Any], *, device: torch.device,
                 precision: str = "float32") -> list[Any]:
    """:func:`geometry_probe.analyzers.base.run_pairwise` across the ranks (see the module doc)."""
    from geometry_probe.pairwise import matmul_precision, precision_dtype

    dtype = precision_dtype(precision)
    with matmul_precision(precision):
        consumers = [a.start(emb, device=device) for a in analyzers]
        active = [c for c in consumers if c is not None]
        for c in active:
            if not all(isinstance(part, (PairSums, DistanceSums, FmiclSums, NeighbourLists)) for part in _parts(c)):
                raise DistributedError(f"{type(c).__name__}: this tile consumer has no distributed reduction; run "
                                       "its analyzer in one process.")
        done = ring_pass(emb, active, device=device, dtype=dtype) if active else []
        reduced = iter(done)
        consumers = [next(reduced) if c is not None else None for c in consumers]
        with synchronised("the pairwise metrics"):
            return [a.finish(emb, None, c, device=device, dtype=dtype) for a, c in zip(analyzers, consumers)]


@dataclass
class RankLists:
    """Final neighbour lists of this rank's rows ``[start, start + len)``, what
    :class:`~geometry_probe.analyzers.knn.Knn` reads (it sums its per-row terms over the ranks)."""

    similarities: Tensor
    indices: Tensor
    start: int

    def gathered(self) -> RankLists:
        """The lists of all rows, in row order, on every rank (an ``all_gather``: N·k·12 bytes each)."""
        ctx = context()
        assert ctx is not None
        comm = _comm_device()
        sizes = torch.tensor([self.start, self.indices.shape[0]], dtype=torch.int64, device=comm)
        spans = [torch.empty_like(sizes) for _ in range(ctx.world_size)]
        dist.all_gather(spans, sizes)
        longest = max(int(n) for _, n in spans)
        parts = []
        for values, fill in ((self.similarities, -math.inf), (self.indices, 0)):
            padded = torch.full((longest, values.shape[1]), fill, dtype=values.dtype, device=comm)
            padded[:values.shape[0]] = values.to(comm)
            chunks = [torch.empty_like(padded) for _ in range(ctx.world_size)]
            dist.all_gather(chunks, padded)
            order = sorted(range(ctx.world_size), key=lambda r: int(spans[r][0]))
            parts.append(torch.cat([chunks[r][:int(spans[r][1])] for r in order]).to(values.device))
        return RankLists(*parts, start=0)


def ring_pass(emb: Embeddings, consumers: Sequence[Any], *, device: torch.device,
              dtype: torch.dtype = torch.float32, tile: int | None = None) -> list[Any]:
    """One distributed walk over the upper-triangle tiles; returns the reduced consumers.

    Pair sums come back all-reduced (the same on every rank); neighbour lists come back as
    :class:`RankLists` of this rank's rows (``.gathered()`` collects all N rows).
    """
    ctx = context()
    assert ctx is not None
    N = emb.n_samples
    plan = BlockPlan(N, tile or tile_size(N, device=device), ctx.world_size)
    lo, hi = plan.rows(ctx.rank)
    with synchronised("reading the rows for the pairwise pass"):
        X = emb.rows(np.arange(lo, hi), device=device) if hi > lo else None
        inv = inverse_norms(X, offset=lo) if X is not None else None
    with collective("the pairwise pass"):
        U = _unit_rows_like_one_process(X, inv, dtype, device, emb.n_features)
        X = inv = None                                   # keep the scaled rows only
        buffer = torch.empty(min(plan.tile, N) ** 2, dtype=torch.float32, device=device)   # reused by every tile
        lists = [_RingLists(c.k, plan, ctx.rank, device) for c in consumers if isinstance(c, NeighbourLists)]
        feeds: list[Any] = [c for c in consumers if not isinstance(c, NeighbourLists)] + lists
        for i in plan.blocks(ctx.rank):                  # step 0: own blocks, upper triangle
            left = U[_local(plan.block_rows(i), lo)]
            for j in range(i, plan.blocks(ctx.rank).stop):
                right = left if j == i else U[_local(plan.block_rows(j), lo)]
                _feed(feeds, plan.block_rows(i), plan.block_rows(j), left, right, buffer)
        visiting = U
        for step in range(1, ctx.world_size // 2 + 1):
            visiting = _shift(visiting, plan, ctx, step, emb.n_features, dtype, device)
            other = (ctx.rank + step) % ctx.world_size
            v_lo = plan.rows(other)[0]
            for ring in lists:
                ring.visit(other)
            for i in plan.blocks(ctx.rank):
                for j in plan.blocks(other):
                    if not plan.computes(ctx.rank, step, i, j):
                        continue
                    mine, theirs = U[_local(plan.block_rows(i), lo)], visiting[_local(plan.block_rows(j), v_lo)]
                    first, second = (i, j) if i < j else (j, i)
                    left, right = (mine, theirs) if i < j else (theirs, mine)
                    _feed(feeds, plan.block_rows(first), plan.block_rows(second), left, right, buffer)
            for ring in lists:
                ring.return_visitors(step)
        out: list[Any] = []
        for c in consumers:
            if not isinstance(c, NeighbourLists):
                for part in _parts(c):
                    _reduce_pair_sums(part, device) if isinstance(part, PairSums) else _reduce_sums(part, device)
                out.append(c)
            else:
                ring = lists.pop(0)
                out.append(RankLists(ring.own.similarities, ring.own.indices, ring.lo))
        return out


def _local(rows: slice, start: int) -> slice:
    return slice(rows.start - start, rows.stop - start)


def _feed(consumers: Sequence[Any], rows: slice, cols: slice, left: Tensor, right: Tensor, buffer: Tensor) -> None:
    """The tile ``rows × cols`` (one GEMM into ``buffer``, as :func:`geometry_probe.pairwise.cosine_tiles`)
    to every consumer."""
    tile = Tile(rows, cols, _product(left, right, buffer))
    for c in consumers:
        c.add_tile(tile)


def _unit_rows_like_one_process(X: Tensor | None, inv: Tensor | None, dtype: torch.dtype, device: torch.device,
                                n_features: int) -> Tensor:
    """This rank's rows scaled exactly as :func:`geometry_probe.pairwise._unit_blocks` scales all rows.

    The rescaling and the unit-norm shortcut depend on the extremes over *all* rows, so
    they are all-reduced first; the scaling itself is per row, hence identical to one process.
    """
    largest = float(1 / inv.min()) if inv is not None else -math.inf
    smallest = float(1 / inv.max()) if inv is not None else math.inf
    extremes = torch.tensor([largest, -smallest], dtype=torch.float64)
    all_reduce_(extremes, dist.ReduceOp.MAX)
    largest, smallest = float(extremes[0]), -float(extremes[1])
    if X is not None and (largest > 1e15 or smallest < 1e-15):
        X = X / largest
        inv = inverse_norms(X)
    unit = torch.tensor([1.0 if inv is None or bool(((inv - 1).abs() < 1e-6).all()) else 0.0], dtype=torch.float64)
    all_reduce_(unit, dist.ReduceOp.MIN)
    if X is None:
        return torch.empty(0, n_features, dtype=dtype, device=device)
    scale = None if bool(unit[0] == 1) else inv.to(torch.float32)
    return _block(X, scale, slice(None), dtype).contiguous()


def _shift(current: Tensor, plan: BlockPlan, ctx: Context, step: int, n_features: int, dtype: torch.dtype,
           device: torch.device) -> Tensor:
    """Ring step: send the chunk held to rank − 1, receive the chunk of rank + step from rank + 1."""
    left, right = (ctx.rank - 1) % ctx.world_size, (ctx.rank + 1) % ctx.world_size
    incoming = (ctx.rank + step) % ctx.world_size
    lo, hi = plan.rows(incoming)
    received = torch.empty(hi - lo, n_features, dtype=dtype, device=device)
    _exchange(current, left, received, right)
    return received


def _exchange(send: Tensor, to: int, receive: Tensor, source: int) -> None:
    """Send ``send`` to rank ``to`` while receiving ``receive`` from ``source`` (empty tensors skipped)."""
    comm = _comm_device()
    out = send.to(comm) if send.device != comm else send
    buffer = receive if receive.device == comm else torch.empty_like(receive, device=comm)
    ops = []
    if out.numel():
        ops.append(dist.P2POp(dist.isend, out.contiguous(), to))
    if buffer.numel():
        ops.append(dist.P2POp(dist.irecv, buffer, source))
    if ops:
        for request in dist.batch_isend_irecv(ops):
            request.wait()
    if buffer is not receive:
        receive.copy_(buffer)


def _parts(consumer: Any) -> list[Any]:
    """The additive sums a tile consumer is made of (itself, or e.g. the contrastive pass's parts)."""
    return list(getattr(consumer, "parts", [consumer]))


def _reduce_sums(sums: DistanceSums | FmiclSums, device: torch.device) -> None:
    """Sum a pair-sum consumer's ``count`` and float64 ``_sums`` over all ranks, in place."""
    length = 2 if isinstance(sums, DistanceSums) else len(sums.divergences)
    totals = sums._sums if sums._sums is not None else torch.zeros(length, dtype=torch.float64, device=device)
    packed = torch.cat([totals.to(device), torch.tensor([sums.count], dtype=torch.float64, device=device)])
    all_reduce_(packed)
    sums._sums, sums.count = packed[:length].clone(), float(packed[-1])


def _reduce_pair_sums(sums: PairSums, device: torch.device) -> PairSums:
    """Sum the per-rank pair sums (count, the four totals and the histogram) over all ranks."""
    totals = sums._sums if sums._sums is not None else torch.zeros(4, dtype=torch.float64, device=device)
    histogram = sums._histogram if sums._histogram is not None else torch.zeros(HIST_BINS, dtype=torch.float64,
                                                                                device=device)
    packed = torch.cat([totals.to(device), histogram.to(device),
                        torch.tensor([sums.count], dtype=torch.float64, device=device)])
    all_reduce_(packed)
    sums._sums, sums._histogram, sums.count = packed[:4].clone(), packed[4:4 + HIST_BINS].clone(), float(packed[-1])
    return sums


class _RingLists(NeighbourLists):
    """Top-k neighbour lists of this rank's rows, plus partial lists of the visiting rows.

    Tiles arrive with global slices; :meth:`NeighbourLists.add_tile` (inherited: the same top-k
    along the tile's rows and along a transposed copy for its columns as in one process) hands the
    winners to :meth:`_merge`, which sends them to the lists of this rank's rows or of the visiting
    rows. The inherited ``similarities``/``indices`` hold no rows: the lists live in ``own`` and ``guest``.
    """

    def __init__(self, k: int, plan: BlockPlan, rank: int, device: torch.device) -> None:
        super().__init__(0, k, n_candidates=plan.n_samples, device=device)
        self.plan, self.rank, self.device = plan, rank, device
        self.lo, self.hi = plan.rows(rank)
        self.own = NeighbourLists(self.hi - self.lo, k, n_candidates=plan.n_samples, device=device)
        self.guest: NeighbourLists | None = None
        self.guest_lo = self.guest_hi = 0
        self.guest_rank = rank

    def visit(self, other: int) -> None:
        """Start partial lists for the rows of rank ``other``."""
        self.guest_lo, self.guest_hi = self.plan.rows(other)
        self.guest_rank = other
        self.guest = NeighbourLists(self.guest_hi - self.guest_lo, self.k, n_candidates=self.plan.n_samples,
                                    device=self.device)

    def _merge(self, rows: slice, top: Tensor, pos: Tensor, *, offset: int) -> None:
        if self.lo <= rows.start < self.hi:
            self.own._merge(_local(rows, self.lo), top, pos, offset=offset)
        else:
            assert self.guest is not None and self.guest_lo <= rows.start < self.guest_hi
            self.guest._merge(_local(rows, self.guest_lo), top, pos, offset=offset)

    def return_visitors(self, step: int) -> None:
        """Send the visiting rows' partial lists to their owner; merge the partial lists of this
        rank's rows that rank − step computed (a top-k reduction)."""
        assert self.guest is not None
        world = self.plan.world_size
        source = (self.rank - step) % world
        n_own = self.hi - self.lo
        sims_in = torch.empty(n_own, self.k, dtype=torch.float32, device=self.device)
        index_in = torch.empty(n_own, self.k, dtype=torch.long, device=self.device)
        _exchange(self.guest.similarities, self.guest_rank, sims_in, source)
        _exchange(self.guest.indices, self.guest_rank, index_in, source)
        if n_own:
            self.own._merge(slice(0, n_own), sims_in, index_in, offset=0)
        self.guest = None
