"""Foundation benchmark: spectral metrics + per-class statistics on 100,000 x 768 float32, 100 classes.

Baseline, measured in the same run: NumPy ``X.T @ X`` (float32, BLAS syrk) + ``np.linalg.eigvalsh``
in float64 -- the least work any exact covariance-spectrum tool must do.
Targets (issue 2): <= 1.5 s and <= 3x the baseline; peak memory above the loaded input <= 1.5x its size.

Memory is measured in a fresh subprocess per case as the growth of the peak resident set
(VmHWM from /proc/self/status) from just before the call to its end, so it counts every
allocation (NumPy, torch, BLAS workspaces). For the memory-mapped case the mapped file's pages
count in RSS too, so that figure also includes the page cache of the data that was read.

Run: python benchmarks/bench_streaming.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

N, D, C = 100_000, 768, 100
REPEATS = 3


def _vm(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, D), dtype=np.float32), rng.integers(0, C, N)


def child(case, path):
    import torch

    import geometry_probe as gp

    torch.set_num_threads(2)
    if case == "mmap":
        emb = gp.load(path, labels=np.load(path.replace(".npy", "_y.npy")))
    else:
        X, y = _data()
        emb = gp.Embeddings(X, labels=y)
    analyzers = ["spectrum", "neural_collapse"]         # spectrum + per-class statistics (NC, incl. NC4/NCC pass)
    gp.analyze(emb, analyzers)                          # warm-up (thread pools, allocator, baseline cache)
    before = _vm("VmRSS")
    times, plain = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        gp.analyze(emb, analyzers)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        gp.analyze(emb, analyzers, verdicts=False)
        plain.append(time.perf_counter() - started)
    peak = _vm("VmHWM")
    print(json.dumps({"best_s": min(times), "times": times, "plain_s": min(plain),
                      "peak_extra_bytes": max(0, peak - before)}))


def baseline():
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
    X, _ = _data()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        G = X.T @ X
        np.linalg.eigvalsh(G.astype(np.float64))
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    if len(sys.argv) > 1:
        child(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
        return
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    base = baseline()
    input_bytes = N * D * 4
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        X, y = _data()
        np.save(path, X)
        np.save(path.replace(".npy", "_y.npy"), y)
        del X
        lines = [f"# {N} x {D} float32, {C} classes, 2 threads; analyzers: spectrum + neural_collapse "
                 "(per-class statistics, NC1-NC4) + collapse verdicts",
                 f"baseline numpy X.T@X + eigvalsh: {base:.3f} s"]
        for case in ("in-memory", "mmap"):
            out = subprocess.run([sys.executable, __file__, case, path], capture_output=True, text=True, env=env,
                                 check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            lines.append(f"{case:9}: {r['best_s']:.3f} s (runs {', '.join(f'{t:.3f}' for t in r['times'])}), "
                         f"ratio {r['best_s'] / base:.2f}x baseline; without verdicts {r['plain_s']:.3f} s "
                         f"({r['plain_s'] / base:.2f}x); peak extra memory "
                         f"{r['peak_extra_bytes'] / 2**20:.0f} MiB = {r['peak_extra_bytes'] / input_bytes:.2f}x input "
                         f"({input_bytes / 2**20:.0f} MiB)")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "bench_streaming.txt"), "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
