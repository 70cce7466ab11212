"""Distributed analysis with gloo on CPU: 2 and 3 spawned processes on uneven shards give the
one-process answer (scalars to 1e-9, identical neighbour lists); a failing rank and a dead rank end
every rank with one clear message, without hanging."""

import json
import math
import os
import pickle
import shutil
import socket
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import geometry_probe as gp
import geometry_probe.analyzers.contrastive as contrastive
import geometry_probe.pairwise as pairwise
from geometry_probe.distributed import ROW_COST, BlockPlan, row_range
from geometry_probe.functional.contrastive import PairSums, all_pair_sums
from geometry_probe.functional.knn import NeighbourLists, knn_search

from .test_shards import write_shards

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")

ANALYZERS = "spectrum,neural_collapse,orthogonality,contrastive,knn"
TILE_BYTES = 8 * 64**2                         # 64-row tiles: 7 blocks for 400 rows
SAMPLED = {"knn": {"pair_budget": 2000, "k": 5}, "contrastive": {"pair_budget": 2000},
           "neural_collapse": {"ncc_max_work": 2000}}
SAMPLED_PAIRS = 20_000                         # the sampled uniformity's pairs (2e6 by default): seconds saved
RING_TILE, K = 16, 6
TIMEOUT_S = 20


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, folder):
    """One rank: the analyses, the ring pass, a failing rank, and (world 2) a rank that dies."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=TIMEOUT_S))
    from geometry_probe import distributed

    pairwise.TILE_MEMORY_BYTES, contrastive.SAMPLED_PAIRS = TILE_BYTES, SAMPLED_PAIRS
    out = {}
    emb = gp.load(folder / "emb", labels=folder / "lab")
    out["exact"] = gp.analyze(emb, ANALYZERS, device="cpu", verdicts=False).scalars()
    sampled = gp.analyze(emb, "neural_collapse,contrastive,knn", device="cpu", verdicts=False, params=SAMPLED)
    out["sampled"], out["meta"] = sampled.scalars(), sampled.meta
    lists, sums = distributed.ring_pass(emb, [NeighbourLists(emb.n_samples, K), PairSums(t=2.0, threshold=0.5)],
                                        device=torch.device("cpu"), tile=RING_TILE)
    lo, hi = distributed.BlockPlan(emb.n_samples, RING_TILE, world).rows(rank)
    assert (lists.start, lists.indices.shape[0]) == (lo, hi - lo)                 # this rank's rows only
    lists = lists.gathered()
    out["lists"] = (lists.similarities.numpy(), lists.indices.numpy())
    out["sums"] = _pair_sums(sums)
    bad = gp.Embeddings(np.load(folder / "bad.npy"))                  # NaN in the last rank's rows only
    try:
        gp.analyze(bad, "spectrum", device="cpu", verdicts=False)
    except Exception as err:  # noqa: BLE001  (the test reads the type and message)
        out["failure"] = (type(err).__name__, str(err))
    if world == 2:
        if rank == 1:
            os._exit(3)                                                   # dies before the next collective
        try:
            gp.analyze(emb, "spectrum", device="cpu", verdicts=False)
        except Exception as err:  # noqa: BLE001
            out["dead_peer"] = (type(err).__name__, str(err))
    (folder / f"rank{rank}.pkl").write_bytes(pickle.dumps(out))


def _pair_sums(sums):
    return [sums.sum_kernel, sums.sum_abs, sums.sum_sq, sums.above, sums.count, sums.histogram]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    y = rng.integers(0, 3, 400)
    X[y == 2] += 1.0
    return X, y


def _spawn(world, folder):
    ctx = mp.get_context("forkserver")            # torch is imported once, in the server, not per rank
    ctx.set_forkserver_preload(["torch", "torch.distributed", "geometry_probe.analysis", "geometry_probe.shards",
                                "geometry_probe.distributed"])
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, folder)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    return codes


@pytest.fixture(scope="module")
def reference(dataset):
    """The one-process answers, with the same tiles and one thread, as the ranks use."""
    X, y = dataset
    threads, tile_bytes, n_pairs = torch.get_num_threads(), pairwise.TILE_MEMORY_BYTES, contrastive.SAMPLED_PAIRS
    torch.set_num_threads(1)
    pairwise.TILE_MEMORY_BYTES, contrastive.SAMPLED_PAIRS = TILE_BYTES, SAMPLED_PAIRS
    try:
        emb = gp.Embeddings(X, labels=y)
        exact = gp.analyze(emb, ANALYZERS, device="cpu", verdicts=False).scalars()
        sampled = gp.analyze(emb, "neural_collapse,contrastive,knn", device="cpu", verdicts=False,
                             params=SAMPLED).scalars()
        rows = torch.from_numpy(X)
        sims, index = knn_search(rows, K, tile=RING_TILE)
        sums = _pair_sums(all_pair_sums(rows, t=2.0, threshold=0.5, tile=RING_TILE))
    finally:
        torch.set_num_threads(threads)
        pairwise.TILE_MEMORY_BYTES, contrastive.SAMPLED_PAIRS = tile_bytes, n_pairs
    return {"exact": exact, "sampled": sampled, "lists": (sims.numpy(), index.numpy()), "sums": sums}


def _assert_same(got, want):
    assert got.keys() == want.keys()
    for k, v in want.items():
        v, g = (math.nan if x is None else x for x in (v, got[k]))           # JSON writes NaN as null
        assert (math.isnan(v) and math.isnan(g)) or g == pytest.approx(v, rel=1e-9, abs=1e-12), k


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_give_the_one_process_answer(tmp_path, dataset, reference, world):
    X, y = dataset
    sizes = [37, 100, 1, 262]
    write_shards(tmp_path, X, y)
    assert sum(sizes) == len(X)
    bad = X.copy()
    bad[row_range(len(X), world - 1, world)[0] + 3, 2] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    codes = _spawn(world, tmp_path)
    expected_codes = [0, 3] if world == 2 else [0] * world
    assert codes == expected_codes
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(world) if codes[r] == 0]
    for out in ranks:
        _assert_same(out["exact"], reference["exact"])
        _assert_same(out["sampled"], reference["sampled"])
        np.testing.assert_array_equal(out["lists"][1], reference["lists"][1])        # identical neighbour lists
        np.testing.assert_array_equal(out["lists"][0], reference["lists"][0])
        for got, want in zip(out["sums"][:5], reference["sums"][:5]):
            assert got == pytest.approx(want, rel=1e-12)
        np.testing.assert_array_equal(out["sums"][5], reference["sums"][5])
        assert out["meta"]["world_size"] == world and out["meta"]["backend"] == "gloo"
    bad_row = row_range(len(X), world - 1, world)[0] + 3
    for rank, out in enumerate(ranks):              # one clear message on every rank, naming the rank and row
        kind, message = out["failure"]
        if rank == world - 1:
            assert kind == "InvalidEmbeddingsError" and f"first bad rows: {bad_row}" in message
        else:
            assert kind == "DistributedError"
            assert message.startswith(f"rank {world - 1} failed during the first pass:") and str(bad_row) in message
    if world == 2:
        kind, message = ranks[0]["dead_peer"]
        assert kind == "DistributedError" and "process group failed" in message


def test_block_plan_computes_every_tile_once():
    """Every upper-triangle tile of the one-process grid is computed by exactly one rank."""
    for N, tile, world in [(300, 16, 2), (300, 16, 3), (300, 16, 4), (100, 64, 3), (5000, 700, 5)]:
        plan = BlockPlan(N, tile, world)
        seen = {}
        for rank in range(world):
            own = plan.blocks(rank)
            for i in own:
                for j in own:
                    if j >= i:
                        seen[(i, j)] = seen.get((i, j), 0) + 1
            for step in range(1, world // 2 + 1):
                other = (rank + step) % world
                for i in own:
                    for j in plan.blocks(other):
                        if plan.computes(rank, step, i, j):
                            key = (min(i, j), max(i, j))
                            seen[key] = seen.get(key, 0) + 1
        B = plan.n_blocks
        assert seen == {(i, j): 1 for i in range(B) for j in range(i, B)}
        assert [plan.rows(r) for r in range(world)][-1][1] == N
        work = [plan.work(r) for r in range(world)]
        assert sum(work) == sum(plan.tile_cost(i, j) for i in range(B) for j in range(i, B))


@pytest.mark.parametrize("N, tile, world", [(40_000, 2048, 2), (100, 64, 2), (300, 16, 4), (10_000, 333, 2)])
def test_block_plan_shares_the_half_step_tiles_by_cost(N, tile, world):
    """Ranks that meet at the half-way step split their tiles so that their modelled work differs by at
    most one tile's, and the busiest rank has no more than under a split by parity; 40,000 rows in 2048-row
    tiles leave rank 1 a 1088-row last block: by parity rank 0 gets 5% more tile area than rank 1 (1.8%
    more modelled work than the mean), by cost 0.3% at most."""
    plan = BlockPlan(N, tile, world)
    second = min(tile, N - tile)                                                      # rows of block 1
    assert plan.tile_cost(0, 1) == tile * second + ROW_COST * (tile + second)         # |I||J| + c(|I| + |J|)
    assert plan.tile_cost(0, 0) == tile * tile + ROW_COST * tile                      # a diagonal tile
    work = [plan.work(r) for r in range(world)]
    for a in range(world // 2):
        assert abs(work[a] - work[a + world // 2]) <= plan.tile_cost(0, 1)
    by_parity = BlockPlan(N, tile, world)
    object.__setattr__(by_parity, "_half_step_tiles", {a: frozenset(
        (i, j) for i in by_parity.blocks(a) for j in by_parity.blocks(a + world // 2) if (i + j) % 2 == 0)
        for a in range(world // 2)})
    assert max(work) <= max(by_parity.work(r) for r in range(world))
    if (N, tile) == (40_000, 2048):
        mean = sum(work) / 2
        assert max(work) / mean < 1.003 and max(by_parity.work(r) for r in range(2)) / mean > 1.015


def test_neighbour_lists_break_ties_by_index_whatever_the_merge_order():
    """Exactly tied similarities rank the lower row index first, so the lists do not depend on the order
    in which tiles (or ranks' partial lists) are merged: 30 rows that are the basis vectors e_(i mod 4),
    k = 5, have cosines exactly 1 (same residue) or 0; the neighbours of row i are the five lowest other
    rows of its residue, in 7-row tiles fed in order and in reverse."""
    N, k = 30, 5
    X = torch.eye(4)[torch.arange(N) % 4]
    tiles = [pairwise.Tile(t.rows, t.cols, t.cosine.clone()) for t in pairwise.cosine_tiles(X, tile=7)]
    expected = np.array([[j for j in range(N) if j % 4 == i % 4 and j != i][:k] for i in range(N)])
    for order in (tiles, tiles[::-1]):
        lists = NeighbourLists(N, k)
        for t in order:
            lists.add_tile(t)
        np.testing.assert_array_equal(lists.indices.numpy(), expected)
        np.testing.assert_array_equal(lists.similarities.numpy(), np.ones((N, k), dtype=np.float32))
    with pytest.raises(ValueError, match="32-bit row index"):             # the tie key holds the index in 32 bits
        NeighbourLists(0, k, n_candidates=2**32 + 1)


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_torchrun_cli_gives_the_one_process_answer(tmp_path, dataset):
    """`torchrun --nproc-per-node 2 -m geometry_probe analyze shards/ --labels labels/` = one process; only
    rank 0 writes; a bad label shard is one line from rank 0, exit 2."""
    X, y = dataset
    emb_dir, lab_dir = write_shards(tmp_path, X, y)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    common = ["analyze", str(emb_dir), "--labels", str(lab_dir), "-a", "spectrum,neural_collapse,contrastive,knn"]
    torchrun = ["torchrun", "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "geometry_probe"]
    two = subprocess.run([*torchrun, *common, "--json", str(tmp_path / "two.json")], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("spectrum/effective_rank") <= 1 and two.stdout.count("wrote ") == 1   # rank 0 only
    second = json.loads((tmp_path / "two.json").read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                      # as each rank: the same float32 tile sums
    try:
        first = gp.analyze(gp.load(emb_dir, labels=lab_dir), common[-1]).scalars()
    finally:
        torch.set_num_threads(threads)
    _assert_same(second["scalars"], first)
    assert (second["meta"]["world_size"], second["meta"]["backend"]) == (2, "gloo")
    np.savetxt(lab_dir / "part-10.txt", np.zeros(5), fmt="%d")
    bad = subprocess.run([*torchrun, *common], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0
    ours = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert ours == [(f"error: labels: shard {lab_dir / 'part-10.txt'} holds 5 rows but embeddings shard "
                     f"{emb_dir / 'part-10.npy'} holds 262 (rows 138-399); the shards must match one to one, "
                     "in the same order.")]
