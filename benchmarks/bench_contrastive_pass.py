"""Cost of the issue-19 additions against the existing pairwise pass, 20,000 x 768, 2 CPU threads,
each case in a fresh subprocess, all in the same run.

Baseline: the existing contrastive tile pass (``PairSums``: uniformity, |cos|, cos², histogram).
1. + ``DistanceSums`` (distance_cv): what ``analyze --labels`` now runs (tolerance is O(ND), outside
   the pass). Goal: at most 1.3x the baseline.
2. + ``FmiclSums`` (the six f-MICL negative terms; only with positives).
3. InfoNCE at one τ on the cross-view cosines (N² ordered pairs: twice the baseline's GEMM work),
   without and with NT-Xent (which adds both within-view triangles), and the five-τ sweep of
   ``geoprobe temperature`` in one pass.
4. The bare upper-triangle float32 GEMM of the baseline's tiles (the floor of any exact pass), and
   the bare full square GEMM of X Yᵀ (the floor of the cross-view InfoNCE pass).

Memory: growth of RssAnon over its value after the inputs are in memory (see bench_pairwise.py).

Run: flock /tmp/bench.lock python benchmarks/bench_contrastive_pass.py [--labels-only]
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
from bench_pairwise import PeakAnon

N, D = 20_000, 768
CASES = ("baseline", "distance", "distance_fmicl", "gemm", "gemm_full", "infonce_1tau", "infonce_1tau_ntxent",
         "sweep_5tau")


def child(case):
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.standard_normal((N, D), dtype=np.float32))
    X = X / X.norm(dim=1, keepdim=True)
    Y = X + 0.3 * torch.from_numpy(rng.standard_normal((N, D), dtype=np.float32)) / D**0.5
    from geometry_probe.functional.contrastive import DistanceSums, PairSums
    from geometry_probe.functional.fmicl import FmiclSums
    from geometry_probe.functional.infonce import infonce_terms
    from geometry_probe.pairwise import run_pass, tile_size

    run_pass(X[:300], [PairSums(t=2.0, threshold=0.9), DistanceSums(), FmiclSums()])    # warm kernels
    infonce_terms(X[:300], Y[:300], [0.1])
    with PeakAnon() as memory:
        started = time.perf_counter()
        if case == "baseline":
            run_pass(X, [PairSums(t=2.0, threshold=0.9)])
        elif case == "distance":
            run_pass(X, [PairSums(t=2.0, threshold=0.9), DistanceSums()])
        elif case == "distance_fmicl":
            run_pass(X, [PairSums(t=2.0, threshold=0.9), DistanceSums(), FmiclSums()])
        elif case == "gemm":
            tile = tile_size(N)
            for i in range(0, N, tile):
                for j in range(i, N, tile):
                    X[i:i + tile] @ X[j:j + tile].T
        elif case == "gemm_full":                       # every tile of X Yᵀ: the floor of the cross-view pass
            tile = tile_size(N)
            for i in range(0, N, tile):
                for j in range(0, N, tile):
                    X[i:i + tile] @ Y[j:j + tile].T
        elif case == "infonce_1tau":
            infonce_terms(X, Y, [0.1], nt_xent=False)
        elif case == "infonce_1tau_ntxent":
            infonce_terms(X, Y, [0.1], nt_xent=True)
        elif case == "sweep_5tau":
            infonce_terms(X, Y, [0.05, 0.1, 0.2, 0.5, 1.0], nt_xent=True)
        elapsed = time.perf_counter() - started
    print(json.dumps({"s": elapsed, "extra": memory.extra}))


def run(case):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(cases=CASES):
    results = {case: run(case) for case in cases}
    base, gemm = results["baseline"], results["gemm"]
    lines = [f"bench_contrastive_pass: N = {N:,}, D = {D}, float32 tiles, 2 threads, load "
             f"{os.getloadavg()[0]:.1f} (1-min average at the end)"]
    for case, r in results.items():
        lines.append(f"  {case:22s} {r['s']:7.2f} s  {r['s'] / base['s']:5.2f}x baseline  "
                     f"{r['s'] / gemm['s']:5.2f}x bare triangle GEMM  extra anon peak {r['extra'] / 2**20:6.0f} MiB")
    if "gemm_full" in results:
        full = results["gemm_full"]["s"]
        lines.append("  InfoNCE against the bare full GEMM X Yᵀ: " + ", ".join(
            f"{case} {results[case]['s'] / full:.2f}x" for case in ("infonce_1tau", "infonce_1tau_ntxent", "sweep_5tau")))
    ratio = results["distance"]["s"] / base["s"]
    lines.append(f"  analyze --labels pass (baseline + distance_cv): {ratio:.2f}x the existing pass "
                 f"(goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")
    text = "\n".join(lines)
    print(text)
    name = "bench_contrastive_pass.txt" if tuple(cases) == CASES else "bench_contrastive_pass_labels.txt"
    with open(os.path.join(os.path.dirname(__file__), "results", name), "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        child(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "--labels-only":      # the analyze --labels pass and its baselines
        main(("baseline", "distance", "gemm"))
    else:
        main()
