"""Benchmark of the exact (float64) default of the streaming statistics against NumPy.

100,000 x 768 float32 rows with 100 classes, in memory. Four arms, each in a fresh subprocess
(so every arm's peak memory is its own), ``--repeats`` runs per arm interleaved, the fastest kept:

* NumPy float64: ``X64.T @ X64`` + ``np.linalg.eigvalsh`` on a float64 copy made beforehand
  (the copy's time is reported separately and not counted);
* geometry_probe ``spectrum,neural_collapse`` at the default precision (float64 GEMMs on a
  float64 copy of each batch), nearest-class-centre second pass included, verdicts off;
* NumPy float32: ``X.T @ X`` + ``np.linalg.eigvalsh`` in float32;
* geometry_probe at ``precision="float32"``.

Targets (issue 15): default <= 2x NumPy float64; float32 mode <= 3x NumPy float32; peak memory of
the default over the in-memory input <= 0.75x the input's size (peak RSS, ``VmHWM``, minus the
RSS once the input and a warm-up call exist; VmHWM is reset there through ``/proc/self/clear_refs``).
The exact arm's effective rank, RankMe and NC1 are
compared with a float64 SVD / NumPy reference of the same data.

Run: ``flock /tmp/bench.lock python benchmarks/bench_exact.py`` (``--quick``: 20,000 rows, prints
only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import geometry_probe as gp

RESULTS = Path(__file__).parent / "results" / "bench_exact.txt"
CHILD = r"""
import json, sys, time
import numpy as np
import geometry_probe as gp

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

arm, n, d, c, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = np.random.default_rng(0)
y = rng.integers(0, c, n)
X = (rng.standard_normal((c, d), dtype=np.float32) * 0.5)[y] + rng.standard_normal((n, d), dtype=np.float32)
X *= np.linspace(0.2, 2.0, d, dtype=np.float32)
gp.analyze(X[:2000], "spectrum,neural_collapse", labels=y[:2000], verdicts=False, device="cpu")   # warm-up
extra = {}
if arm == "numpy64":
    start = time.perf_counter()
    X64 = X.astype(np.float64)
    extra["copy_s"] = time.perf_counter() - start
    run = lambda: np.linalg.eigvalsh(X64.T @ X64)
elif arm == "numpy32":
    run = lambda: np.linalg.eigvalsh(X.T @ X)
else:
    precision = "float64" if arm == "exact" else "float32"
    run = lambda: gp.analyze(X, "spectrum,neural_collapse", labels=y, precision=precision, verdicts=False,
                             device="cpu")
with open("/proc/self/clear_refs", "w") as f:      # reset VmHWM: data generation peaked above the input
    f.write("5")
base = status("VmRSS")
times, out = [], None
for _ in range(repeats):
    start = time.perf_counter()
    out = run()
    times.append(time.perf_counter() - start)
if arm in ("exact", "fast"):
    s = out.scalars()
    extra.update(erank=s["spectrum/effective_rank"], rankme=s["spectrum/rankme"], nc1=s["neural_collapse/nc1"],
                 batch_size=out.meta["batch_size"])
print(json.dumps({"arm": arm, "seconds": min(times), "all": times, "base_rss": base, "vm_hwm": status("VmHWM"),
                  "input_bytes": X.nbytes, **extra}))
"""
ARMS = {
    "numpy64": "NumPy float64 X64.T @ X64 + eigvalsh (baseline)",
    "exact": "spectrum + neural_collapse, default (float64)",
    "numpy32": "NumPy float32 X.T @ X + eigvalsh (baseline)",
    "fast": "spectrum + neural_collapse, precision=float32",
}


def run_arm(arm, n, d, c):
    proc = subprocess.run([sys.executable, "-c", CHILD, arm, str(n), str(d), str(c), "1"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_arms(n, d, c, repeats):
    """Every arm ``repeats`` times, interleaved (load on the shared machine hits every arm alike); the fastest
    run of each arm, with all its times and its largest peak memory."""
    runs = {arm: [] for arm in ARMS}
    for _ in range(repeats):
        for arm in ARMS:
            runs[arm].append(run_arm(arm, n, d, c))
    best = {}
    for arm, rows in runs.items():
        fastest = min(rows, key=lambda r: r["seconds"])
        worst = max(rows, key=lambda r: r["vm_hwm"] - r["base_rss"])
        best[arm] = {**fastest, "all": [r["seconds"] for r in rows], "vm_hwm": worst["vm_hwm"],
                     "base_rss": worst["base_rss"]}
    return best


def references(n, d, c):
    """Float64 effective rank, RankMe (SVD) and NC1 (class loop) of the children's data."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, n)
    X = (rng.standard_normal((c, d), dtype=np.float32) * 0.5)[y] + rng.standard_normal((n, d), dtype=np.float32)
    X *= np.linspace(0.2, 2.0, d, dtype=np.float32)
    X64 = X.astype(np.float64)

    def entropy_rank(s, eps=0.0):
        p = s / s.sum() + eps
        return float(np.exp(-np.sum(p * np.log(p))))
    erank = entropy_rank(np.linalg.svd(X64 - X64.mean(axis=0), compute_uv=False))
    rankme = entropy_rank(np.linalg.svd(X64, compute_uv=False), eps=1e-7)
    means = np.stack([X64[y == k].mean(axis=0) for k in range(c)])
    within = sum((X64[y == k] - means[k]).T @ (X64[y == k] - means[k]) for k in range(c)) / n
    centred = means - means.mean(axis=0)
    nc1 = np.trace(within @ np.linalg.pinv(centred.T @ centred / c, rcond=1e-10, hermitian=True)) / c
    return erank, rankme, float(nc1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows, print only")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, d, c = (20_000, 768, 100) if args.quick else (100_000, 768, 100)
    lines = []

    def out(line):
        print(line, flush=True)
        lines.append(line)

    out(f"bench_exact  {time.strftime('%Y-%m-%d %H:%M')}  geometry_probe {gp.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}; shared machine, flock-serialised benchmarks")
    out(f"{n:,} x {d} float32, {c} classes, in memory ({n * d * 4 / 2**20:.0f} MiB); each arm in a fresh process, "
        f"{args.repeats} interleaved runs per arm, fastest shown, largest peak; analyze(..., verdicts=False), "
        "NCC second pass included")
    rows = run_arms(n, d, c, args.repeats)
    mib = 2**20
    for arm, label in ARMS.items():
        r = rows[arm]
        over = (r["vm_hwm"] - r["base_rss"]) / mib
        out(f"  {label:50s} {r['seconds']:7.3f} s  (runs {', '.join(f'{t:.2f}' for t in r['all'])}); "
            f"peak RSS over input + warm-up {over:7.1f} MiB = {over * mib / r['input_bytes']:.2f}x input"
            + (f"; batch {r['batch_size']} rows" if "batch_size" in r else ""))
    out(f"  (NumPy's float64 copy of the input, not counted above: {rows['numpy64']['copy_s']:.3f} s)")
    exact_ratio = rows["exact"]["seconds"] / rows["numpy64"]["seconds"]
    fast_ratio = rows["fast"]["seconds"] / rows["numpy32"]["seconds"]
    memory = (rows["exact"]["vm_hwm"] - rows["exact"]["base_rss"]) / rows["exact"]["input_bytes"]
    out(f"  default vs NumPy float64: {exact_ratio:.2f}x (target <= 2x: {'met' if exact_ratio <= 2 else 'NOT met'})")
    out(f"  float32 vs NumPy float32: {fast_ratio:.2f}x (target <= 3x: {'met' if fast_ratio <= 3 else 'NOT met'})")
    out(f"  default peak memory over the input: {memory:.2f}x its size (target <= 0.75x: "
        f"{'met' if memory <= 0.75 else 'NOT met'})")
    erank, rankme, nc1 = references(n, d, c)
    for arm in ("exact", "fast"):
        r = rows[arm]
        out(f"  {arm:5s}: effective rank {r['erank']:.6f} (float64 SVD {erank:.6f}, rel. error "
            f"{abs(r['erank'] / erank - 1):.1e}); RankMe {r['rankme']:.6f} ({rankme:.6f}, "
            f"{abs(r['rankme'] / rankme - 1):.1e}); NC1 {r['nc1']:.9f} (float64 reference {nc1:.9f}, "
            f"{abs(r['nc1'] / nc1 - 1):.1e})")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
