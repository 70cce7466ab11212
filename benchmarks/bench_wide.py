"""Benchmark of wide embeddings (N x D with D up to 200,000) and many classes (C from 10 to 100,000).

(a) Wide: float32 memory-mapped ``.npy`` files in /tmp (deleted afterwards), 10 classes,
    ``spectrum,neural_collapse,orthogonality`` at the default (exact, float64) precision, each
    size in a fresh subprocess reporting wall time, peak RSS (VmHWM, which also counts the
    mapped file's touched pages) and peak anonymous memory (RssAnon sampled every 5 ms). N < D
    takes the N x N dual; N >= D the D x D primal. 200,000 x 16,384 is a sparse (all-zero,
    free to create) file: neither exact form fits the 2 GiB budget, so the run measures the
    refusal, and the exact cost is extrapolated from the primal run's GEMM rate.
(b) Many classes: N rows in memory, one class per N / C rows, D = 256, the same three
    analyzers, and the issue's case (30,000 rows, 30,000 classes) also with every analyzer and
    the verdicts.

Run: ``flock /tmp/bench.lock python benchmarks/bench_wide.py`` (``--quick``: small sizes, prints only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import geometry_probe as gp

RESULTS = Path(__file__).parent / "results" / "bench_wide.txt"
ANALYZERS = "spectrum,neural_collapse,orthogonality"
CHILD = r"""
import json, sys, threading, time
import numpy as np
import geometry_probe as gp

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

peak = [0]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], status("RssAnon"))
        time.sleep(0.005)

kind, a, b, c, analyzers, verdicts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], \
    sys.argv[6] == "1"
if kind == "file":
    X = np.load(a, mmap_mode="r")
    y = np.arange(X.shape[0]) % c
else:
    n, d = int(a), b
    rng = np.random.default_rng(0)
    y = np.arange(n) % c
    X = np.empty((n, d), dtype=np.float32)
    centres = rng.standard_normal((c, d), dtype=np.float32)
    for lo in range(0, n, 10_000):
        X[lo:lo + 10_000] = centres[y[lo:lo + 10_000]] + 0.5 * rng.standard_normal((min(10_000, n - lo), d),
                                                                                   dtype=np.float32)
emb = gp.Embeddings(X, labels=y)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("RssAnon")
thread = threading.Thread(target=sample, daemon=True)
thread.start()
start = time.perf_counter()
out = {}
try:
    res = gp.analyze(emb, None if analyzers == "all" else analyzers, device="cpu", verdicts=verdicts)
    s = res.scalars()
    out = {"effective_rank": s.get("spectrum/effective_rank"), "nc1": s.get("neural_collapse/nc1"),
           "cdnv": s.get("neural_collapse/cdnv"), "ncc": s.get("neural_collapse/ncc_accuracy"),
           "ncc_se": s.get("neural_collapse/ncc_accuracy_std_error"),
           "form": res["spectrum"].params["form"].split(" (")[0] if "spectrum" in res.meta["analyzers"] else "",
           "pairs": res["neural_collapse"].params.get("pair_metrics", "C x C")[-90:]}
except gp.GeometryProbeError as err:
    out = {"refused": str(err)}
elapsed = time.perf_counter() - start
done.set()
thread.join()
print(json.dumps({"seconds": elapsed, "vm_hwm": status("VmHWM"), "peak_anon": peak[0], "base_anon": base, **out}))
"""


def child(*args):
    proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_file(path, n, d, *, zero=False):
    """A float32 .npy of n x d: rank-64 signal plus noise, written in chunks; ``zero``: a sparse all-zero file."""
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    if not zero:
        rng = np.random.default_rng(1)
        basis = rng.standard_normal((64, d), dtype=np.float32)
        step = max(1, 2**26 // (4 * d))
        for lo in range(0, n, step):
            m = min(step, n - lo)
            X[lo:lo + m] = rng.standard_normal((m, 64), dtype=np.float32) @ basis \
                + 0.1 * rng.standard_normal((m, d), dtype=np.float32)
    X.flush()
    del X


def describe(r):
    mib = 2**20
    if "error" in r:
        return f"ERROR {r['error']}"
    memory = (f"{r['seconds']:7.1f} s, peak anonymous {(r['peak_anon'] - r['base_anon']) / mib:7.0f} MiB over the "
              f"input, VmHWM {r['vm_hwm'] / mib:6.0f} MiB")
    if "refused" in r:
        return f"{memory}; refused: {r['refused']}"
    se = f" +- {r['ncc_se']:.4f}" if r.get("ncc_se") else ""
    return (f"{memory}; {r['form']}; erank {r['effective_rank']:.2f}, nc1 {r['nc1']:.4g}, cdnv {r['cdnv']:.4g}, "
            f"ncc {r['ncc']:.4f}{se}")


def wide(sizes, out):
    out("(a) wide: float32 .npy memory-mapped from /tmp, 10 classes, " + ANALYZERS + ", default precision")
    rate = None
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="bench_wide_") as tmp:
        for n, d, zero in sizes:
            path = Path(tmp) / f"X_{n}x{d}.npy"
            start = time.perf_counter()
            write_file(path, n, d, zero=zero)
            made = time.perf_counter() - start
            r = child("file", path, 0, 10, ANALYZERS, 0)
            out(f"    {n:>9,} x {d:>7,} ({n * d * 4 / 2**20:8.0f} MiB{', sparse zeros' if zero else ''}, "
                f"written in {made:5.1f} s): {describe(r)}")
            path.unlink()
            if not zero and n >= d and "seconds" in r:
                rate = (n * d * d + n * 10 * d) / r["seconds"]
    return rate


def many_classes(n_for, classes, d, out):
    out(f"(b) many classes: rows in memory, D = {d}, one class per N / C rows, {ANALYZERS}")
    for c in classes:
        n = n_for(c)
        out(f"    C = {c:>7,}, N = {n:>7,}: {describe(child('memory', n, d, c, ANALYZERS, 0))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    lines = []

    def out(line):
        print(line, flush=True)
        lines.append(line)

    out(f"bench_wide  {time.strftime('%Y-%m-%d %H:%M')}  geometry_probe {gp.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}; shared machine, flock-serialised benchmarks")
    if args.quick:
        wide([(4, 20_000, False), (500, 4_096, False), (2_000, 512, False), (20_000, 16_384, True)], out)
        many_classes(lambda c: 5_000, [10, 1_000, 5_000], 64, out)
        return
    rate = wide([(4, 200_000, False), (2_000, 16_384, False), (4_000, 16_384, False), (16_384, 4_096, False),
                 (200_000, 16_384, True)], out)
    if rate:
        n, d = 200_000, 16_384
        out(f"    200,000 x 16,384 exactly (memory_bytes raised to 9 GiB): the D x D form needs 8.0 GiB and "
            f"N D^2 = {n * d * d:.2e} multiply-adds; at the {rate / 1e9:.1f} G/s of the 16,384 x 4,096 run that is "
            f"about {n * d * d / rate / 3600:.1f} h on these 2 cores (extrapolated, not run)")
    many_classes(lambda c: 100_000 if c > 30_000 else 30_000, [10, 100, 1_000, 10_000, 30_000, 100_000], 256, out)
    out("    C = 30,000, N = 30,000, every analyzer (spectrum, neural_collapse, orthogonality, contrastive, knn) "
        f"and the verdicts: {describe(child('memory', 30_000, 256, 30_000, 'all', 1))}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
