"""Monitor overhead: CollapseMonitor.update on every training step, a snapshot every 100 steps.

Workloads (CPU): an MLP 768 -> 2048 -> 768, batch 256, forward + backward + SGD on a fixed
batch (loss mean(z^2)); the digits SimCLR step the gallery trains (``gallery/_digits.py``:
encoder 64 -> 256 -> 64, two augmented views of 128 digits, InfoNCE, SGD with momentum; the
monitor gets the first view's embeddings and the labels, ``n_classes=10``); and a synthetic
encoder 64 -> 128 -> 128 stepped like the MLP, a stress case whose 0.7 ms steps make a
100-step window last 67 ms. Arms:

* ``base``: the loop without a monitor;
* ``budget``: ``CollapseMonitor(every_n_steps=100)`` with its default 1% ``overhead_budget``;
* ``full``: ``overhead_budget=None`` (every batch folded, all 256 buffer rows in every snapshot).

The arms run in blocks of 100 steps (one monitor window, so every monitored block holds one
snapshot), interleaved in rotating order within each round so that drift in the machine's load
hits them alike; each monitored arm keeps one monitor across its blocks, as a training run
would (the budget arm's first block is its calibration window, stride 1). Direct cost: the wall
time inside ``monitor.update`` (timed around each call) over the rest of the block. Per round,
overhead = t_arm / t_base - 1 on wall time (perf_counter) and on process CPU time (process_time, less
sensitive to other processes taking the cores); the medians over rounds are reported (wall
time with a bootstrap standard error), all rounds listed for wall time; and, as noise from
other work only adds time, the slowdown of the arm's 10th-percentile block time over the
base's ("fastest tenth of blocks"). Separately timed (medians of repeats): a plain update, the fold
per batch, a snapshot at the rows the budget arm settled on and at 256 rows. Host syncs:
counted with a TorchFunctionMode; between snapshots any Tensor.item/tolist/__bool__/cpu/numpy
call would be one (expected 0, including folds forced by a small ``max_pending_bytes``); at a
snapshot the device-to-host transfers are the Tensor.cpu calls (expected 1: the packed
statistics and buffer). Counted through the torch fold that accelerator batches take (forced
on CPU tensors here); the NumPy fold of CPU batches only takes zero-copy Tensor.numpy views.

Longer periods: for the synthetic encoder the budget arm is also run against the base loop at
every_n_steps = 200 and 500, 40,000 steps per arm. Why the in-loop costs exceed the separately
timed ones: on this shared machine, code that last ran 10 ms or more ago runs about 3x slower on
its next call (``sphere_stats`` on 32 x 128: 0.17 ms back to back, 0.42-0.57 ms after 10-200 ms
of other work, whether that work sleeps, spins or streams memory), and a monitor's snapshot
always runs after a window of training.

Threads: ``--threads`` (default 1). On the shared 2-core machine (load 6-9 from other
workers) two intra-op threads made small operations wait for a preempted partner thread: a
fold of one batch took 80-95 ms instead of under 1 ms, and the 768-2048-768 step 204 ms instead
of 42 ms, so two-thread timings measured the scheduler, not the monitor.

Run: flock /tmp/bench.lock python benchmarks/bench_monitor.py [--threads N]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

import geometry_probe as gp
import geometry_probe.monitor as monitor_module

ROOT = Path(__file__).resolve().parents[1]
EVERY = 100
SETTLE = 5          # rounds the budget arm needs to settle (it plans each window from the last three)
SYNCS = {"item", "tolist", "__bool__", "__int__", "__float__", "cpu", "numpy"}
SYNTHETIC = "synthetic encoder 64-128-128, batch 256"
SIMCLR = "digits SimCLR step (gallery/_digits.py), batch 128, 10-class labels"


class SyncCounter(TorchFunctionMode):
    def __init__(self, names):
        super().__init__()
        self.names, self.count = names, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") in self.names
        return func(*args, **(kwargs or {}))


class Workload:
    """A training step returning ``(z, labels)`` and the monitor settings it is measured with."""

    def __init__(self, name, step, n_features, batch_size, n_classes, rounds):
        self.name, self.step, self.n_features, self.batch_size = name, step, n_features, batch_size
        self.n_classes, self.rounds = n_classes, rounds

    def monitor(self, every, **options):
        return gp.CollapseMonitor(every_n_steps=every, n_classes=self.n_classes, on_collapse="ignore", **options)

    def sample(self):
        """A batch of the step's shape, with labels when the workload has classes."""
        z = torch.randn(self.batch_size, self.n_features)
        return z, torch.randint(0, self.n_classes, (self.batch_size,)) if self.n_classes else None


def mlp_workload(name, widths, rounds):
    """fwd + bwd + SGD of a two-layer MLP on a fixed batch of 256, loss mean(z^2)."""
    x = torch.randn(256, widths[0], generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Linear(widths[0], widths[1]), torch.nn.ReLU(),
                                torch.nn.Linear(widths[1], widths[2]))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        z = model(x)
        z.pow(2).mean().backward()
        opt.step()
        return z, None

    return Workload(name, step, widths[-1], 256, 0, rounds)


def simclr_workload(rounds):
    """The gallery's SimCLR step on digits: encoder 64-256-64, two augmented views of a batch of
    128, InfoNCE (temperature 0.5), SGD with momentum; the monitor sees the first view's
    embeddings and the digit labels."""
    sys.path.insert(0, str(ROOT / "gallery"))
    from _digits import BATCH_SIZE, augment, digits, encoder, info_nce

    torch.manual_seed(0)
    X, y = digits()
    net = encoder()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    order = torch.randperm(len(X))
    position = [0]

    def step():
        start = position[0] % (len(X) - BATCH_SIZE)
        position[0] += BATCH_SIZE
        index = order[start:start + BATCH_SIZE]
        xb = X[index]
        opt.zero_grad()
        z = net(augment(xb))
        info_nce(z, net(augment(xb)), 0.5).backward()
        opt.step()
        return z, y[index]

    return Workload(SIMCLR, step, 64, BATCH_SIZE, 10, rounds)


def block(workload, monitor, steps):
    """Wall time, process CPU time and wall time inside ``monitor.update`` of ``steps`` training steps."""
    inside = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        z, labels = workload.step()
        if monitor is not None:
            started = time.perf_counter()
            monitor.update(z, labels)
            inside += time.perf_counter() - started
    return time.perf_counter() - wall, time.process_time() - cpu, inside


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def component_costs(workload, monitor):
    z, labels = workload.sample()
    plain = workload.monitor(10**9, overhead_budget=None, max_pending_bytes=2**40)
    plain.update(z, labels)

    def staged():
        for _ in range(200):
            plain.update(z, labels)
        plain._pending.clear()

    staged_us = median_time(staged, 5) / 200 * 1e6
    plain.stride = 10**9                                                 # no batch of this window is taken
    skipped_us = median_time(lambda: [plain.update(z, labels) for _ in range(1000)], 5) / 1000 * 1e6

    def fold(n_batches):
        m = workload.monitor(10**9, overhead_budget=None)
        for _ in range(n_batches):
            m.update(z, labels)
        return median_time(m._fold, 1)

    fold_ms = statistics.median(fold(20) for _ in range(5)) / 20 * 1e3

    def snapshot(rows):
        m = workload.monitor(2, overhead_budget=None)
        m.snapshot_rows = rows
        m.update(z, labels)
        return median_time(lambda: m.update(z, labels), 1)

    for rows in {monitor.snapshot_rows, 256}:
        snapshot(rows)                                                   # cache the null baselines of the shape
    snap = {rows: statistics.median(snapshot(rows) for _ in range(7)) * 1e3 for rows in (monitor.snapshot_rows, 256)}
    return staged_us, skipped_us, fold_ms, snap


def sync_counts(workload, on_host):
    """Sync-like calls in EVERY - 1 plain updates and Tensor.cpu calls at the snapshot, through the
    torch fold accelerator batches take (``on_host=False``, forced here on CPU tensors) or the
    NumPy fold of CPU batches."""
    z, labels = workload.sample()
    monitor = workload.monitor(EVERY, max_pending_bytes=4 * z.numel() * 4)
    between, at_snapshot = SyncCounter(SYNCS), SyncCounter({"cpu"})
    runs_on_host, monitor_module._runs_on_host = monitor_module._runs_on_host, lambda _: on_host
    try:
        with between:
            for _ in range(EVERY - 1):                                   # folds every 5 batches here
                monitor.update(z, labels)
        with at_snapshot:
            monitor.update(z, labels)
    finally:
        monitor_module._runs_on_host = runs_on_host
    return between.count, at_snapshot.count


def measure(workload):
    name, rounds = workload.name, workload.rounds
    monitors = {"base": None, "budget": workload.monitor(EVERY), "full": workload.monitor(EVERY, overhead_budget=None)}
    block(workload, None, 20)                                            # warm-up
    times = {arm: [] for arm in monitors}
    arms = list(monitors)
    for r in range(rounds):
        for arm in arms[r % 3:] + arms[:r % 3]:                          # rotate the order every round
            times[arm].append(block(workload, monitors[arm], EVERY))
    ratio = {(arm, clock): [times[arm][i][clock] / times["base"][i][clock] - 1 for i in range(SETTLE, rounds)]
             for arm in ("budget", "full") for clock in (0, 1)}
    budget = monitors["budget"]
    self_reported = [s["scalars"]["monitor/overhead"] for s in budget.history[SETTLE:]]
    direct = {arm: [t[2] / (t[0] - t[2]) for t in times[arm][SETTLE:]] for arm in ("budget", "full")}
    first = times["budget"][0][2] / (times["budget"][0][0] - times["budget"][0][2])
    update_us, skipped_us, fold_ms, snap = component_costs(workload, budget)
    between, transfers = sync_counts(workload, on_host=False)
    numpy_views = sync_counts(workload, on_host=True)[0]
    base_ms = statistics.median(t[0] for t in times["base"]) / EVERY * 1e3
    base_cpu_ms = statistics.median(t[1] for t in times["base"]) / EVERY * 1e3
    lines = [f"## {name}: {rounds} rounds x {EVERY} steps per arm; step {base_ms:.2f} ms wall, {base_cpu_ms:.2f} ms "
             "CPU without the monitor (medians)"]
    for arm, label in (("budget", "default overhead_budget=0.01"), ("full", "overhead_budget=None (every batch)")):
        rows = ", ".join(f"{100 * v:+.1f}" for v in ratio[arm, 0])
        lines.append(f"{label}: time inside update() {100 * statistics.median(direct[arm]):.2f}% of the rest of the "
                     f"loop; A/B overhead {_ab(ratio[arm, 0])} wall, {100 * statistics.median(ratio[arm, 1]):+.2f}% "
                     f"CPU; fastest tenth of blocks {_fastest_tenth(times, arm)} (wall per round: {rows})")
    lines += [f"(medians over rounds {SETTLE + 1}-{rounds}; the budget arm's first window, stride 1 while it "
              f"calibrates: {100 * first:.2f}% inside update())",
              f"budget arm settled on stride {budget.stride}, snapshot rows {budget.snapshot_rows}; its own "
              f"measured share per window (monitor/overhead), median {100 * statistics.median(self_reported):.2f}%",
              f"components: plain update {update_us:.2f} us (batch taken), {skipped_us:.2f} us (skipped); "
              f"fold {fold_ms:.3f} ms per batch of {workload.batch_size} x {workload.n_features} (20 at once); "
              + "; ".join(f"snapshot at {rows} rows {ms:.2f} ms" for rows, ms in snap.items()),
              f"per window of {EVERY} steps, every batch folded: {EVERY} x {update_us / 1e3:.4f} + {EVERY} x "
              f"{fold_ms:.3f} + {snap[256]:.2f} ms = "
              f"{100 * (update_us / 1e3 + fold_ms + snap[256] / EVERY) / base_ms:.2f}% of the steps; at the budget "
              f"arm's settings: {100 * _planned(budget, update_us, skipped_us, fold_ms, snap) / base_ms:.2f}%",
              f"torch fold (accelerator batches; forced on CPU tensors): sync-like calls in {EVERY - 1} plain "
              f"updates (with folds) {between}, Tensor.cpu calls at the logged step {transfers}; NumPy fold "
              f"(CPU batches): {numpy_views} zero-copy Tensor.numpy views in the same updates"]
    return "\n".join(lines)


def period_sweep(workload, periods, steps):
    """A/B wall overhead, time inside update() and the monitor's own measured share with the
    default budget at longer snapshot periods: ``steps`` steps per arm, in blocks of one period."""
    lines = []
    for every in periods:
        monitor = workload.monitor(every)
        rounds = steps // every
        times = {"base": [], "budget": []}
        for r in range(rounds):
            for arm in (("base", "budget") if r % 2 else ("budget", "base")):
                times[arm].append(block(workload, monitor if arm == "budget" else None, every))
        wall = [times["budget"][i][0] / times["base"][i][0] - 1 for i in range(SETTLE, rounds)]
        inside = [t[2] / (t[0] - t[2]) for t in times["budget"][SETTLE:]]
        own = [snap["scalars"]["monitor/overhead"] for snap in monitor.history[SETTLE:]]
        lines.append(f"every_n_steps={every}: {rounds} rounds; A/B overhead {_ab(wall)} wall, fastest tenth "
                     f"of blocks {_fastest_tenth(times, 'budget')}, "
                     f"time inside update() {100 * statistics.median(inside):.2f}%, monitor/overhead "
                     f"{100 * statistics.median(own):.2f}% (stride {monitor.stride}, snapshot rows "
                     f"{monitor.snapshot_rows})")
    return "\n".join(lines)


def _ab(ratios):
    """Median of the per-round ratios minus 1, with its bootstrap standard error."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(ratios, size=(2000, len(ratios))), axis=1)
    return f"{100 * statistics.median(ratios):+.2f}% (+-{100 * medians.std():.2f})"


def _fastest_tenth(times, arm):
    """Slowdown of the arm's 10th-percentile block wall time over the base's: noise from other
    work only ever adds time, so the fastest blocks show the monitor's cost with less of it."""
    settled = {name: [t[0] for t in times[name][SETTLE:]] for name in (arm, "base")}
    return f"{100 * (np.quantile(settled[arm], 0.1) / np.quantile(settled['base'], 0.1) - 1):+.2f}%"


def _planned(monitor, update_us, skipped_us, fold_ms, snap):
    """Per-step cost in ms predicted from the components at the monitor's stride and snapshot rows."""
    taken = -(-EVERY // monitor.stride)
    return (taken * (update_us / 1e3 + fold_ms) + (EVERY - taken) * skipped_us / 1e3
            + snap[monitor.snapshot_rows]) / EVERY


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    threads = parser.parse_args().threads
    torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    lines = [f"# CollapseMonitor overhead (CPU, {threads} thread(s), every_n_steps={EVERY}, buffer 256); "
             f"load average at start {load:.1f} on {os.cpu_count()} cores (shared machine: timings are noisy)"]
    synthetic = mlp_workload(SYNTHETIC, (64, 128, 128), 200)
    for workload in (mlp_workload("MLP 768-2048-768, batch 256", (768, 2048, 768), 14), simclr_workload(200),
                     synthetic):
        lines.append(measure(workload))
    lines.append(f"## {SYNTHETIC}, longer snapshot periods, default overhead_budget "
                 f"(medians over rounds {SETTLE + 1}-)")
    lines.append(period_sweep(synthetic, (200, 500), 40_000))
    text = "\n".join(lines)
    print(text)
    out = os.path.join(os.path.dirname(__file__), "results", "bench_monitor.txt")
    with open(out, "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
