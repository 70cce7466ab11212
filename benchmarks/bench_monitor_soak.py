"""Monitor soak: 10,000 steps of ``CollapseMonitor.update`` with faults, checked for alerts and memory growth.

The stream (seeded): batch sizes cycling through 1, 7, 33, 64, 129 and 256 rows; labels of a random
subset of the ``n_classes`` classes in every batch (most batches miss classes); healthy windows are
class means plus isotropic noise. Faults, each on the last step of a window (the one batch the
adaptive stride always covers): a row of NaN at ``nan_step``, a row of +inf at ``inf_step``, and one
whole window fused onto a line ending at ``fused_step`` (over-fusion, then recovery one window later).
The default overhead budget is on, so the stride and snapshot rows adapt as in training.

Memory: at step ``measure_from`` and at the end (both right after a snapshot, nothing pending),
after ``gc.collect()``: the Python heap traced by ``tracemalloc``, the live ``torch.Tensor`` objects,
RssAnon of this process (tensor storage is not traced by tracemalloc), CUDA bytes allocated, and the
deep size of ``history``, ``alerts`` and ``episodes`` (records the monitor keeps by design).
Two runs separate the records from the rest: with the history kept, its growth per snapshot is
the records' cost; with each snapshot dropped from ``history`` once returned, anything left
("unexplained" = traced growth minus the alerts' and episodes' growth) is memory the monitor
holds beyond its records. A warm-up soak runs first (lazy imports and first-use caches).

Run: flock /tmp/bench.lock python benchmarks/bench_monitor_soak.py   (about 5 minutes; writes
benchmarks/results/bench_monitor_soak.txt)
"""

from __future__ import annotations

import gc
import math
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import torch

from geometry_probe.monitor import CollapseMonitor, CollapseWarning

RESULTS = Path(__file__).parent / "results" / "bench_monitor_soak.txt"
BATCH_SIZES = (1, 7, 33, 64, 129, 256)
STEPS, EVERY, MEASURE_FROM = 10_000, 100, 2_000


def rss_anon() -> int:
    """Anonymous resident memory of this process in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it holds through dicts, lists and tuples (each object once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        size += sum(deep_size(item, seen) for item in obj)
    return size


def fault_steps(steps: int, every: int) -> dict[str, int]:
    """Snapshot steps ending the NaN, inf and fused windows: the first at or after 0.5, 0.7 and 0.8 of the run
    whose batch has at least 33 rows (with the largest stride the snapshot sees only that last batch)."""
    def at(share: float) -> int:
        step = max(1, round(steps * share / every)) * every
        while BATCH_SIZES[step % len(BATCH_SIZES)] < 33:
            step += every
        return step
    return {"nan_step": at(0.5), "inf_step": at(0.7), "fused_step": at(0.8)}


def soak(steps: int = STEPS, every: int = EVERY, *, n_features: int = 32, n_classes: int = 10, device: str = "cpu",
         measure_from: int = MEASURE_FROM, keep_history: bool = True, seed: int = 0) -> dict[str, object]:
    """Drive one monitor through the faulty stream; return it, the fault steps, warnings and memory readings.

    With ``keep_history=False`` every snapshot is dropped from ``monitor.history`` once returned (as a
    training loop that logs and discards them would), so any growth left is memory the monitor holds
    beyond its records.
    """
    faults = fault_steps(steps, every)
    g = torch.Generator().manual_seed(seed)
    means = 0.5 * torch.randn(n_classes, n_features, generator=g)
    direction = torch.randn(n_features, generator=g)
    monitor = CollapseMonitor(every_n_steps=every, n_classes=n_classes, on_collapse="warn")
    readings, snapshots = {}, 0
    tracemalloc.start()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CollapseWarning)
        for step in range(1, steps + 1):
            n = BATCH_SIZES[step % len(BATCH_SIZES)]
            present = torch.randperm(n_classes, generator=g)[: int(torch.randint(1, n_classes + 1, (1,), generator=g))]
            labels = present[torch.randint(0, len(present), (n,), generator=g)]
            if faults["fused_step"] - every < step <= faults["fused_step"]:
                z = direction * torch.randn(n, 1, generator=g) + 0.005 * torch.randn(n, n_features, generator=g)
            else:
                z = means[labels] + torch.randn(n, n_features, generator=g)
            if step == faults["nan_step"]:
                z[-1] = math.nan
            if step == faults["inf_step"]:
                z[0] = math.inf
            if monitor.update(z.to(device), labels.to(device)) is not None:
                snapshots += 1
                if not keep_history:
                    monitor.history.clear()
            if step in (measure_from, steps):
                gc.collect()
                readings[step] = {"traced": tracemalloc.get_traced_memory()[0], "rss_anon": rss_anon(),
                                  "records": deep_size([monitor.history, monitor.alerts, monitor.episodes]),
                                  "snapshots": snapshots,
                                  "tensors": sum(isinstance(o, torch.Tensor) for o in gc.get_objects()),
                                  "cuda_allocated": torch.cuda.memory_allocated() if device != "cpu" else 0}
    elapsed = time.perf_counter() - started
    tracemalloc.stop()
    collapse_warnings = [str(w.message) for w in caught if w.category is CollapseWarning]
    return {"monitor": monitor, "faults": faults, "warnings": collapse_warnings, "readings": readings,
            "elapsed_s": elapsed}


def growth(run: dict[str, object]) -> dict[str, float]:
    """Growth between the two readings: traced, records (history, alerts, episodes), unexplained (traced minus
    records), RssAnon, live tensors, CUDA bytes, and the number of snapshots in between."""
    first, last = (run["readings"][k] for k in sorted(run["readings"]))
    grown = {key: last[key] - first[key] for key in ("traced", "records", "rss_anon", "tensors", "cuda_allocated",
                                                     "snapshots")}
    grown["unexplained"] = grown["traced"] - grown["records"]
    return grown


def describe(run: dict[str, object], label: str) -> list[str]:
    """Result lines of one soak run."""
    monitor, grown = run["monitor"], growth(run)
    per_snapshot = grown["traced"] / max(grown["snapshots"], 1)
    return [f"\n## {label}: {run['elapsed_s']:.1f} s ({1e6 * run['elapsed_s'] / STEPS:.0f} us/step with tracemalloc "
            "on, batch generation included)",
            f"faults at {run['faults']}",
            f"fail/recovered alerts (step, name): {[(a['step'], a['name']) for a in monitor.alerts]}",
            f"episodes (name, onset, cleared): "
            f"{[(e['name'], e['onset_step'], e['cleared_step']) for e in monitor.episodes]}",
            f"CollapseWarnings: {len(run['warnings'])}; monitor_error alerts: "
            f"{sum(a['name'] == 'monitor_error' for a in monitor.alerts)}; final stride {monitor.stride}, "
            f"snapshot rows {monitor.snapshot_rows}",
            f"step {MEASURE_FROM:,} -> {STEPS:,} ({grown['snapshots']} snapshots): Python heap (tracemalloc) "
            f"{grown['traced'] / 1024:+.1f} KiB ({per_snapshot:.0f} B per snapshot), of which history/alerts/"
            f"episodes {grown['records'] / 1024:+.1f} KiB (deep getsizeof); unexplained "
            f"{grown['unexplained'] / 1024:+.1f} KiB; live tensors {grown['tensors']:+d}; RssAnon "
            f"{grown['rss_anon'] / 1024:+.0f} KiB"]


def main() -> None:
    torch.set_num_threads(2)
    lines = [f"# CollapseMonitor soak: {STEPS:,} update() calls, snapshot every {EVERY}, 10 classes (labels of a "
             f"random subset per batch), batch sizes cycling {BATCH_SIZES},",
             "# default overhead budget (1%), on_collapse='warn'; NaN, inf and fused windows (module docstring).",
             "# 'dropped': each snapshot removed from monitor.history once returned, so growth is what the monitor "
             "holds beyond its records;",
             "# 'kept': history kept, so its growth per snapshot is the records' cost. A warm-up soak of 1,000 steps "
             "runs first (imports, caches).",
             "# CPU, torch threads 2, on a shared 2-core machine with other jobs running: timings are indicative only."]
    for n_features, keep in ((32, False), (32, True), (256, False)):
        soak(1_000, EVERY, n_features=n_features, measure_from=500)
        run = soak(STEPS, EVERY, n_features=n_features, measure_from=MEASURE_FROM, keep_history=keep)
        lines += describe(run, f"D={n_features}, history {'kept' if keep else 'dropped'}")
        print("\n".join(lines[-6:]), flush=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
