"""Pairwise engine benchmark (issue 3), 2 CPU threads.

1. Exact uniformity, N = 20,000, D = 768: geometry-probe's tiled pass vs the reference code's
   way, ``torch.pdist(x).pow(2).mul(-2).exp().mean().log()``, in the same run (time and peak
   extra memory, VmHWM growth in a fresh subprocess).
2. Exact 10-NN at 20,000 x 768 (cosine = inner product of normalised rows) vs faiss-cpu
   ``IndexFlatIP`` on the same normalised rows (the IndexFlatL2 ranking is identical on the
   unit sphere), or sklearn brute force when faiss is not installed.

Run: python benchmarks/bench_pairwise.py
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

N, D = 20_000, 768


def _hwm():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    return 0


def _rss():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def child(case):
    import torch

    torch.set_num_threads(2)
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((N, D), dtype=np.float32))
    X = X / X.norm(dim=1, keepdim=True)
    from geometry_probe.functional.contrastive import uniformity
    from geometry_probe.functional.knn import knn_search

    before = _rss()
    started = time.perf_counter()
    if case == "ours":
        value = uniformity(X)
    elif case == "pdist":
        value = float(torch.pdist(X).pow(2).mul(-2).exp().mean().log())
    elif case == "knn_ours":
        knn_search(X, 10)
        value = 0.0
    elif case == "knn_faiss":
        try:
            import faiss

            faiss.omp_set_num_threads(2)
            index = faiss.IndexFlatIP(D)
            index.add(X.numpy())
            index.search(X.numpy(), 11)
        except ImportError:
            from sklearn.neighbors import NearestNeighbors

            NearestNeighbors(n_neighbors=11, algorithm="brute", metric="cosine", n_jobs=2).fit(X.numpy()).kneighbors()
        value = 0.0
    elapsed = time.perf_counter() - started
    print(json.dumps({"s": elapsed, "value": value, "extra": _hwm() - before}))


def run(case):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, __file__, case], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1:
        child(sys.argv[1])
        return
    try:
        import faiss  # noqa: F401

        knn_baseline = "faiss-cpu IndexFlatIP"
    except ImportError:
        knn_baseline = "sklearn brute force (faiss-cpu not installed)"
    ours, ref = run("ours"), run("pdist")
    k_ours, k_ref = run("knn_ours"), run("knn_faiss")
    lines = [f"# {N} x {D} float32 (rows unit-norm), 2 threads",
             f"exact uniformity: geometry-probe {ours['s']:.2f} s, extra peak {ours['extra'] / 2**20:.0f} MiB, "
             f"value {ours['value']:.6f}",
             f"               torch.pdist reference {ref['s']:.2f} s, extra peak {ref['extra'] / 2**20:.0f} MiB, "
             f"value {ref['value']:.6f}; speed-up {ref['s'] / ours['s']:.1f}x",
             f"exact 10-NN: geometry-probe {k_ours['s']:.2f} s vs {knn_baseline} {k_ref['s']:.2f} s "
             f"(ratio {k_ours['s'] / k_ref['s']:.2f}x)"]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(os.path.dirname(__file__), "results", "bench_pairwise.txt"), "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
