"""CollapseMonitor: onset and recovery, exact windowed and class statistics, overhead budget, NaN alerts,
robustness, no host sync, multi-process sums."""

import re
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.overrides import TorchFunctionMode

import geometry_probe.monitor as monitor_module
from geometry_probe.monitor import CollapseError, CollapseMonitor, CollapseWarning

# synthetic loops whose "steps" take microseconds: the budget's one-time warning is expected there
pytestmark = pytest.mark.filterwarnings("ignore:CollapseMonitor. one batch:RuntimeWarning")

D = 32


@pytest.fixture(params=["host", "device"])
def fold_path(request, monkeypatch):
    """Run a test through the NumPy fold CPU batches take and through the torch fold accelerator
    batches take (forced here on CPU tensors)."""
    if request.param == "device":
        monkeypatch.setattr(monitor_module, "_runs_on_host", lambda z: False)
    return request.param


def _healthy(g, n=64):
    return torch.randn(n, D, generator=g)


def _fused(g, direction, n=64):
    return direction * torch.randn(n, 1, generator=g) + 0.005 * torch.randn(n, D, generator=g)


def test_flags_over_fusion_at_onset_and_clears_on_recovery():
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(D, generator=g)
    monitor = CollapseMonitor(every_n_steps=10, on_collapse="ignore")
    for step in range(60):                                   # healthy 0-19, fused 20-39, healthy 40-59
        z = _fused(g, direction) if 20 <= step < 40 else _healthy(g)
        monitor.update(z)
    verdicts = [{f["name"]: f["verdict"] for f in snap["findings"]}["over_fusion"] for snap in monitor.history]
    assert verdicts == ["ok", "ok", "fail", "fail", "ok", "ok"]
    assert [a["step"] for a in monitor.alerts if a["name"] == "over_fusion"] == [30, 40]
    recovered = [a for a in monitor.alerts if a["name"] == "recovered"]
    assert sorted((a["step"], a["finding"], a["verdict"]) for a in recovered) == [
        (50, "dimensional_collapse", "ok"), (50, "over_fusion", "ok")]   # a line is rank 1 as well
    episodes = {e["name"]: e for e in monitor.episodes}
    assert (episodes["over_fusion"]["onset_step"], episodes["over_fusion"]["cleared_step"]) == (30, 50)
    assert episodes["over_fusion"]["worst"] > 0.95 and episodes["dimensional_collapse"]["worst"] < 0.05


def _naive_window(batches, labels, n_classes):
    """Window statistics recomputed directly in float64 NumPy from the rows."""
    Z = np.concatenate([b.numpy() for b in batches]).astype(np.float64)
    y = np.concatenate([lab.numpy() for lab in labels])
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    n = len(Z)
    cos = U @ U.T
    seen = [c for c in range(n_classes) if np.any(y == c)]
    M = np.stack([U[y == c].mean(0) for c in seen])
    centre = U[np.isin(y, seen)].mean(0)
    C = len(seen)

    def gram_distance(V, target):
        G = V @ V.T
        return np.linalg.norm(G / np.linalg.norm(G) - target)

    return {"window/n_samples": n, "window/mean_cosine": (cos.sum() - n) / (n * (n - 1)),
            "window/mean_norm_of_mean": np.linalg.norm(Z.mean(0)), "window/n_classes_seen": C,
            "window/class_of_distance": gram_distance(M, np.eye(C) / np.sqrt(C)),
            "window/class_etf_distance": gram_distance(M - centre, (np.eye(C) - 1.0 / C) / np.sqrt(C - 1))}


def test_window_and_class_statistics_are_exact_across_folds(fold_path):
    g = torch.Generator().manual_seed(6)
    sizes = (5, 17, 9, 12, 30)
    batches = [torch.randn(n, D, generator=g) + 0.5 for n in sizes]
    labels = [torch.randint(-1, 5, (n,), generator=g) for n in sizes]     # -1 and 4 are out of range
    monitor = CollapseMonitor(every_n_steps=len(sizes), n_classes=4, on_collapse="ignore", overhead_budget=None,
                              max_pending_bytes=20 * D * 4)               # folds mid-window too
    for z, y in zip(batches, labels):
        snap = monitor.update(z, y)
    expected = _naive_window(batches, labels, 4)
    for key, value in expected.items():
        assert snap["scalars"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int64])
def test_low_precision_and_integer_batches_fold_as_their_float64_values(fold_path, dtype):
    """bfloat16 has no NumPy dtype: the NumPy fold converts it first; the values are exact either way."""
    g = torch.Generator().manual_seed(9)
    batches = [(3 * torch.randn(n, D, generator=g)).to(dtype) for n in (7, 12)]
    labels = [torch.randint(0, 3, (n,), generator=g) for n in (7, 12)]
    monitor = CollapseMonitor(every_n_steps=2, n_classes=3, on_collapse="ignore", overhead_budget=None)
    for z, y in zip(batches, labels):
        snap = monitor.update(z, y)
    expected = _naive_window([b.double() for b in batches], labels, 3)
    for key, value in expected.items():
        assert snap["scalars"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_the_numpy_fold_in_chunks_equals_one_fold(monkeypatch):
    g = torch.Generator().manual_seed(10)
    batches = [torch.randn(n, D, generator=g) + 0.2 for n in (40, 3, 25, 64, 9)]
    labels = [torch.randint(0, 4, (len(z),), generator=g) for z in batches]
    monkeypatch.setattr(monitor_module, "HOST_CHUNK_BYTES", 30 * D * 8)      # chunks of 1-2 batches
    assert [len(c) for c in monitor_module._host_chunks(list(zip(batches, labels)))] == [1, 2, 1, 1]
    monitor = CollapseMonitor(every_n_steps=len(batches), n_classes=4, buffer_size=50, on_collapse="ignore",
                              overhead_budget=None)
    for z, y in zip(batches[:-1], labels[:-1]):
        monitor.update(z, y)
    monitor._fold()
    ring = np.roll(monitor._buffer, -monitor._cursor, axis=0)              # oldest row first
    np.testing.assert_array_equal(ring, torch.cat(batches[:-1])[-50:].double().numpy())
    snap = monitor.update(batches[-1], labels[-1])
    for key, value in _naive_window(batches, labels, 4).items():
        assert snap["scalars"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_a_stride_covers_every_kth_batch_counted_back_from_the_snapshot(fold_path):
    g = torch.Generator().manual_seed(7)
    batches = [torch.randn(8, D, generator=g) + 0.3 * i for i in range(10)]
    labels = [torch.randint(0, 3, (8,), generator=g) for _ in batches]
    monitor = CollapseMonitor(every_n_steps=10, n_classes=3, on_collapse="ignore", overhead_budget=None)
    monitor.stride = 3
    for z, y in zip(batches, labels):
        snap = monitor.update(z, y)
    covered = [9, 6, 3, 0]                                                 # steps 10, 7, 4, 1
    expected = _naive_window([batches[i] for i in covered], [labels[i] for i in covered], 3)
    for key, value in expected.items():
        assert snap["scalars"][key] == pytest.approx(value, rel=1e-9), key


def test_the_overhead_budget_thins_out_the_work_when_it_is_exceeded():
    g = torch.Generator().manual_seed(8)
    monitor = CollapseMonitor(every_n_steps=4, buffer_size=128, on_collapse="ignore", overhead_budget=1e-9)
    for _ in range(16):
        snap = monitor.update(torch.randn(32, D, generator=g))
    assert monitor.stride == 4 and monitor.snapshot_rows == 32           # one batch per window, fewest rows
    assert snap["scalars"]["window/n_samples"] == 32 and snap["scalars"]["buffer/n_rows"] == 32
    assert snap["scalars"]["monitor/overhead"] > 0
    generous = CollapseMonitor(every_n_steps=4, buffer_size=128, on_collapse="ignore", overhead_budget=1e9)
    for _ in range(16):
        generous.update(torch.randn(32, D, generator=g))
    assert generous.stride == 1 and generous.snapshot_rows == 128


def test_a_long_pause_between_steps_is_not_counted_as_training_time():
    monitor = CollapseMonitor(every_n_steps=6, on_collapse="ignore")
    for step in range(6):
        if step == 3:
            time.sleep(0.3)                                   # an evaluation pass or a checkpoint
        snap = monitor.update(torch.randn(16, D))
    # the loop time is the median interval (microseconds here) times 6, not 0.3 s: the monitor's
    # own millisecond of work is then far more than its budget, and it says so
    assert snap["scalars"]["monitor/overhead"] > 0.5


def test_a_batch_modified_in_place_after_update_is_left_out():
    monitor = CollapseMonitor(every_n_steps=2, on_collapse="ignore", overhead_budget=None)
    reused = torch.randn(16, D)
    monitor.update(reused)
    reused.mul_(0.0)                                                       # the caller recycles its tensor
    snap = monitor.update(torch.randn(8, D))
    assert snap["scalars"]["window/n_samples"] == 8
    assert "modified in place" in monitor.alerts[0]["message"]


def test_window_mean_cosine_is_exact(fold_path):
    g = torch.Generator().manual_seed(1)
    monitor = CollapseMonitor(every_n_steps=3, on_collapse="ignore")
    batches = [torch.randn(n, D, generator=g) + 0.5 for n in (5, 17, 9)]   # varying batch sizes
    for z in batches:
        snap = monitor.update(z)
    Z = torch.cat(batches).double()
    U = Z / Z.norm(dim=1, keepdim=True)
    cos = U @ U.T
    n = len(Z)
    naive = float((cos.sum() - n) / (n * (n - 1)))
    assert snap["scalars"]["window/mean_cosine"] == pytest.approx(naive, rel=1e-6)   # float32 rows
    assert snap["scalars"]["window/n_samples"] == n


def test_nan_embeddings_become_an_alert_not_a_crash():
    """NaN embeddings in a training step become a non_finite alert, never an exception."""
    g = torch.Generator().manual_seed(2)
    monitor = CollapseMonitor(every_n_steps=4, on_collapse="warn")
    with pytest.warns(CollapseWarning, match="NaN or inf"):
        for step in range(8):
            z = _healthy(g)
            if step == 2:
                z[3, 0] = float("nan")
            monitor.update(z)
    assert [a["name"] for a in monitor.alerts] == ["non_finite"]
    assert monitor.history[1]["scalars"]["window/non_finite"] == 0.0          # next window is clean again


def test_bad_shapes_and_missing_classes_never_crash():
    """Wrong-rank and empty batches become monitor_error alerts, batches missing classes are fine; never raises."""
    monitor = CollapseMonitor(every_n_steps=3, on_collapse="ignore", n_classes=5)
    monitor.update(torch.randn(4, 3, 2))                    # wrong rank
    monitor.update(torch.randn(0, D))                       # empty batch
    monitor.update(torch.randn(8, D), torch.zeros(8, dtype=torch.long))
    assert [a["name"] for a in monitor.alerts][:2] == ["monitor_error", "monitor_error"]
    assert len(monitor.history) == 1


def test_raise_and_stop_policies():
    g = torch.Generator().manual_seed(3)
    direction = torch.randn(D, generator=g)
    raising = CollapseMonitor(every_n_steps=2, on_collapse="raise")
    raising.update(_fused(g, direction))
    with pytest.raises(CollapseError, match="over_fusion"):
        raising.update(_fused(g, direction))
    seen = []
    stopping = CollapseMonitor(every_n_steps=2, on_collapse="stop", hook=seen.append)
    for _ in range(2):
        stopping.update(_fused(g, direction))
    assert stopping.should_stop and seen and seen[0]["name"] == "over_fusion"
    diverged = CollapseMonitor(every_n_steps=2, on_collapse="raise")
    diverged.update(torch.randn(8, D, generator=g))
    with pytest.raises(CollapseError, match="NaN or inf"):
        diverged.update(torch.full((8, D), float("nan")))


class _SyncCounter(TorchFunctionMode):
    SYNCS = {"item", "tolist", "__bool__", "__int__", "__float__", "cpu", "numpy", "nonzero"}

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.SYNCS:
            self.calls.append(func.__name__)
        return func(*args, **(kwargs or {}))


def test_update_between_snapshots_makes_no_host_sync(fold_path):
    """The torch fold launches kernels only; the NumPy fold of CPU batches only takes zero-copy
    ``Tensor.numpy`` views (there is no device to wait for)."""
    monitor = CollapseMonitor(every_n_steps=1000, n_classes=3, on_collapse="ignore", max_pending_bytes=3 * 16 * D * 4)
    monitor.update(torch.randn(16, D))
    with _SyncCounter() as counter:
        for _ in range(20):                                 # folds every 4th update
            monitor.update(torch.randn(16, D), torch.randint(0, 3, (16,)))
    assert set(counter.calls) == ({"numpy"} if fold_path == "host" else set())
    assert monitor.additive_state[1] == 16 * 20             # folded rows (the first batch's window included)


def test_memory_does_not_grow_over_many_steps():
    monitor = CollapseMonitor(every_n_steps=500, buffer_size=256, on_collapse="ignore")
    g = torch.Generator().manual_seed(4)
    for _ in range(2000):
        monitor.update(torch.randn(8, D, generator=g))
    assert monitor._buffer.shape == (256, D) and not monitor._pending
    assert len(monitor.history) == 4 and all(len(s["findings"]) > 0 for s in monitor.history)


def _worker(rank, world, init_file, parts, out):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    monitor = CollapseMonitor(every_n_steps=len(parts[rank]), on_collapse="ignore")
    for z in parts[rank]:
        snap = monitor.update(z)
    if rank == 0:
        out.put(snap["scalars"])
    torch.distributed.destroy_process_group()


def test_two_processes_merge_to_the_single_process_statistics(tmp_path):
    g = torch.Generator().manual_seed(5)
    batches = [torch.randn(10, D, generator=g) + 1.0 for _ in range(4)]
    single = CollapseMonitor(every_n_steps=2, on_collapse="ignore")
    # the single process sees the union: concatenate pairs so both runs have 2 steps
    for z in (torch.cat(batches[0:3:2]), torch.cat(batches[1:4:2])):
        expected = single.update(z)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    parts = [batches[0:2], batches[2:4]]
    procs = [ctx.Process(target=_worker, args=(r, 2, str(tmp_path / "init"), parts, out)) for r in range(2)]
    for p in procs:
        p.start()
    merged = out.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
    for key in ("window/n_samples", "window/mean_cosine", "window/mean_norm_of_mean"):
        assert merged[key] == pytest.approx(expected["scalars"][key], rel=1e-6)   # float32 batch sums


def test_budget_names_the_snapshot_period_that_fits_when_even_the_floor_exceeds_it():
    """Back-to-back updates (microsecond 'steps'): a minimal window still costs more than 1% of
    it, so the monitor warns once, naming an every_n_steps that would fit."""
    monitor = CollapseMonitor(every_n_steps=5, buffer_size=64, on_collapse="ignore")
    z = torch.randn(16, D, generator=torch.Generator().manual_seed(5))
    with pytest.warns(RuntimeWarning, match=r"every_n_steps >= \d+ keeps the monitor within it") as caught:
        for _ in range(60):
            monitor.update(z)
    assert sum("every_n_steps >=" in str(w.message) for w in caught) == 1
    assert monitor.snapshot_rows == 32
    enough = int(re.search(r"every_n_steps >= (\d+)", str(caught[0].message)).group(1))
    assert enough > 5


def test_the_monitors_numpy_work_runs_on_one_blas_thread_and_restores_the_count(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    seen = []
    real_sphere_stats = monitor_module.sphere_stats
    monkeypatch.setattr(monitor_module, "sphere_stats", lambda rows: (seen.append(blas_threads()),
                                                                      real_sphere_stats(rows))[1])
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        monitor = CollapseMonitor(every_n_steps=2, on_collapse="ignore", overhead_budget=None)
        for _ in range(2):
            snap = monitor.update(torch.randn(16, D))
        assert before and all(n == 2 for n in before)
        assert seen == [[1] * len(before)] and blas_threads() == before
    assert "buffer/top1_energy" in snap["scalars"]


def test_the_plan_uses_median_costs_and_80_percent_of_the_budget():
    """stride = ceil(c_batch N / (0.8 b t N - c_snapshot)) with medians of the last three windows:
    batch costs 0.10, 0.30, 0.16 ms -> 0.16 ms; 0.8 x 1% x 1 s - 1 ms = 7 ms; ceil(16 / 7) = 3
    (the minimum, 0.10 ms, would give 2, and the whole budget, 9 ms, would give 2)."""
    monitor = CollapseMonitor(every_n_steps=100, buffer_size=64, on_collapse="ignore")
    monitor.snapshot_rows = 64
    for per_batch in (0.10e-3, 0.30e-3, 0.16e-3):
        monitor._sampled = 100
        monitor._adapt(statistics_cost=100 * per_batch, snapshot_cost=1e-3, loop_time=1.0)
    assert monitor.stride == 3 and monitor.snapshot_rows == 64             # 1 ms is within [A/8, A/2]


# ---- compute() and reset(), in the torchmetrics sense ----------------------------------------------------------
def _naive_pair_stats(batches):
    """n, mean cosine over pairs i != j, and the norm of the mean, float64, from the rows themselves."""
    Z = torch.cat(batches).double().numpy()
    U = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    n = len(Z)
    G = U @ U.T
    return n, (G.sum() - np.trace(G)) / (n * (n - 1)), np.linalg.norm(Z.mean(axis=0))


def test_compute_measures_the_current_window_without_side_effects(fold_path):
    g = torch.Generator().manual_seed(7)
    direction = torch.randn(D, generator=g)
    batches = [_fused(g, direction) for _ in range(3)]          # a failing window: compute must not alert
    monitor = CollapseMonitor(every_n_steps=5, on_collapse="raise", overhead_budget=None)
    twin = CollapseMonitor(every_n_steps=5, on_collapse="ignore", overhead_budget=None)
    for z in batches:
        monitor.update(z.clone())
        twin.update(z.clone())
    now = monitor.compute()
    n, mean_cosine, norm_of_mean = _naive_pair_stats(batches)
    assert now["step"] == 3
    assert now["scalars"]["window/n_samples"] == n
    assert now["scalars"]["window/mean_cosine"] == pytest.approx(mean_cosine, abs=1e-9)
    assert now["scalars"]["window/mean_norm_of_mean"] == pytest.approx(norm_of_mean, rel=1e-9)
    assert {f["name"]: f["verdict"] for f in now["findings"]}["over_fusion"] == "fail"
    assert monitor.compute() == now                               # idempotent
    assert monitor.history == [] and monitor.alerts == [] and not monitor.should_stop and monitor.step == 3
    more = [_healthy(g) for _ in range(2)]
    for z in more:
        twin.update(z.clone())
    monitor.on_collapse = "ignore"
    for z in more:
        monitor.update(z.clone())
    strip = lambda s: {k: v for k, v in s["scalars"].items() if not k.startswith("monitor/")}  # noqa: E731
    # the snapshot is what it would have been (the early fold only regroups float64 sums)
    assert strip(monitor.history[0]) == pytest.approx(strip(twin.history[0]), rel=1e-12, abs=1e-15)
    assert [a["name"] for a in monitor.alerts] == [a["name"] for a in twin.alerts]


def test_compute_with_an_empty_window_returns_the_last_snapshot_or_nothing():
    g = torch.Generator().manual_seed(8)
    monitor = CollapseMonitor(every_n_steps=2, on_collapse="ignore", overhead_budget=None)
    assert monitor.compute() == {"step": 0, "scalars": {}, "findings": []}
    monitor.update(_healthy(g))
    snapshot = monitor.update(_healthy(g))
    result = monitor.compute()
    assert result == snapshot and result is not monitor.history[-1]
    result["scalars"].clear()
    assert monitor.history[-1]["scalars"]                          # a copy: the history is untouched


def test_reset_clears_accumulated_state_and_keeps_the_settings():
    g = torch.Generator().manual_seed(9)
    direction = torch.randn(D, generator=g)
    monitor = CollapseMonitor(every_n_steps=2, on_collapse="stop", n_classes=3, overhead_budget=None)
    for _ in range(3):
        monitor.update(_fused(g, direction), torch.randint(0, 3, (64,), generator=g))
    assert monitor.history and monitor.alerts and monitor.should_stop and monitor.episodes
    monitor.reset()
    assert (monitor.step, monitor.history, monitor.alerts, monitor.episodes, monitor.should_stop) == (0, [], [], [],
                                                                                                      False)
    assert monitor.compute() == {"step": 0, "scalars": {}, "findings": []}
    assert (monitor.every_n_steps, monitor.n_classes, monitor.on_collapse) == (2, 3, "stop")
    batches = [_healthy(g), _healthy(g)]
    for z in batches:
        monitor.update(z)
    n, mean_cosine, _ = _naive_pair_stats(batches)                     # the pre-reset rows are gone
    assert monitor.history[0]["step"] == 2 and monitor.history[0]["scalars"]["window/n_samples"] == n
    assert monitor.history[0]["scalars"]["window/mean_cosine"] == pytest.approx(mean_cosine, abs=1e-9)
