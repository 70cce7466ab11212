"""Representation comparison benchmark (issue 20), 2 CPU threads, each case in a fresh subprocess.

1. ``cka``: linear CKA of A (N x 1024) against B (N x 768), both memory-mapped float32 ``.npy``
   files on disk (N = 1,000,000 by default: 7.2 GB), streamed by
   :func:`geometry_probe.compare.stream_moments` (every cross-moment of CKA, debiased CKA,
   Procrustes and CCA) against the baseline: the same batches read from the same maps,
   converted to float64, and the three GEMMs AᵀA, BᵀB, AᵀB, nothing else. Run in the order
   baseline, geometry-probe, baseline, geometry-probe (the first read warms the page cache);
   the ratio is of the medians. The CKA of the baseline's GEMMs is checked against ours.
2. ``recall``: exact paired retrieval Recall@{1,5,10} both ways at 100,000 pairs x 256 against
   faiss-cpu ``IndexFlatIP`` (a brute-force top-10 search for each direction), alternating
   faiss, geometry-probe, ... (--pairs times each), the ratio of the medians, with the number
   of queries on which the two disagree about a hit.

Memory: growth of the process's anonymous resident memory (``RssAnon`` high-water, sampled by a
thread every 5 ms) over its value before the run: what the computation allocates. Mapped file
pages read through the memory maps are page cache, not counted (they would be in ``ru_maxrss``).

Run: flock /tmp/bench.lock python benchmarks/bench_compare.py [--rows N] [--pairs P] [--skip-recall]
Writes results/bench_compare.txt and results/bench_compare.json (results/bench_compare_<rows>.* for
other sizes; each line also to results/bench_compare.partial.txt as soon as it is measured). A run
of one section (--skip-cka or --skip-recall) keeps the other section of the last run at that size.
Each section records the ``uptime`` load averages at its start and end (the CPUs may be shared).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_pairwise import PeakAnon

DA, DB = 1024, 768
BATCH = 16384
DATA = Path(os.environ.get("GEOPROBE_BENCH_DIR", "/tmp/geoprobe_bench_compare"))
RESULTS = Path(__file__).parent / "results"
RECALL_N, RECALL_D = 100_000, 256


def make_files(rows):
    """A (rows x 1024) and B = A[:, :768] mixed with noise (rows x 768), float32 .npy; kept for reruns."""
    DATA.mkdir(parents=True, exist_ok=True)
    paths = DATA / f"a_{rows}.npy", DATA / f"b_{rows}.npy"
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((DA, DB)).astype(np.float32) / np.sqrt(DA)
    a = np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float32, shape=(rows, DA))
    b = np.lib.format.open_memmap(paths[1], mode="w+", dtype=np.float32, shape=(rows, DB))
    for start in range(0, rows, 65536):
        stop = min(rows, start + 65536)
        block = rng.standard_normal((stop - start, DA), dtype=np.float32) * np.linspace(2, 0.1, DA, dtype=np.float32)
        a[start:stop] = block + 0.5
        b[start:stop] = block @ mix + rng.standard_normal((stop - start, DB), dtype=np.float32)
    a.flush(), b.flush()
    del a, b
    return paths


def case_cka(which, rows):
    import torch

    torch.set_num_threads(2)
    import geometry_probe as gp
    from geometry_probe.compare import stream_moments
    from geometry_probe.functional.compare import linear_cka

    pa, pb = DATA / f"a_{rows}.npy", DATA / f"b_{rows}.npy"
    A, B = np.load(pa, mmap_mode="r"), np.load(pb, mmap_mode="r")
    with PeakAnon() as peak:
        start = time.perf_counter()
        if which == "geoprobe":
            moments = stream_moments(gp.Embeddings(A, name="A"), gp.Embeddings(B, name="B"), batch_size=BATCH,
                                     device=torch.device("cpu"))
            cka = linear_cka(moments)
        else:
            aa = torch.zeros(DA, DA, dtype=torch.float64)
            bb = torch.zeros(DB, DB, dtype=torch.float64)
            ab = torch.zeros(DA, DB, dtype=torch.float64)
            sa = torch.zeros(DA, dtype=torch.float64)
            sb = torch.zeros(DB, dtype=torch.float64)
            for s in range(0, rows, BATCH):
                x = torch.from_numpy(np.ascontiguousarray(A[s:s + BATCH])).to(torch.float64)
                y = torch.from_numpy(np.ascontiguousarray(B[s:s + BATCH])).to(torch.float64)
                aa.addmm_(x.T, x)
                bb.addmm_(y.T, y)
                ab.addmm_(x.T, y)
            elapsed_gemm = time.perf_counter() - start
            for s in range(0, rows, BATCH):                # the column sums, outside the timed GEMMs
                sa += torch.from_numpy(np.asarray(A[s:s + BATCH], dtype=np.float64).sum(0))
                sb += torch.from_numpy(np.asarray(B[s:s + BATCH], dtype=np.float64).sum(0))
            ma, mb = sa / rows, sb / rows
            caa, cbb = aa - rows * torch.outer(ma, ma), bb - rows * torch.outer(mb, mb)
            cab = ab - rows * torch.outer(ma, mb)
            cka = float(cab.pow(2).sum() / (torch.linalg.matrix_norm(caa) * torch.linalg.matrix_norm(cbb)))
        elapsed = time.perf_counter() - start
    if which != "geoprobe":
        elapsed = elapsed_gemm
    return {"seconds": elapsed, "peak_anon_mb": peak.extra / 2**20, "cka": cka}


def paired_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, d), dtype=np.float32)
    gap = rng.standard_normal(d, dtype=np.float32)
    a = shared + 1.2 * rng.standard_normal((n, d), dtype=np.float32) + 1.5 * gap
    b = shared + 1.2 * rng.standard_normal((n, d), dtype=np.float32) - 1.5 * gap
    return a, b


def case_recall(which):
    import torch

    torch.set_num_threads(2)
    a, b = paired_data(RECALL_N, RECALL_D)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    with PeakAnon() as peak:
        start = time.perf_counter()
        if which == "geoprobe":
            from geometry_probe.functional.retrieval import paired_ranks

            to_b, to_a = (r.numpy() for r in paired_ranks(torch.from_numpy(a), torch.from_numpy(b)))
            hits = {f"{k}_{d}": (r < k) for k in (1, 5, 10) for d, r in (("a_to_b", to_b), ("b_to_a", to_a))}
        else:
            import faiss

            faiss.omp_set_num_threads(2)
            hits = {}
            for direction, (queries, base) in (("a_to_b", (a, b)), ("b_to_a", (b, a))):
                index = faiss.IndexFlatIP(RECALL_D)
                index.add(base)
                _, found = index.search(queries, 10)
                truth = np.arange(RECALL_N)[:, None]
                for k in (1, 5, 10):
                    hits[f"{k}_{direction}"] = (found[:, :k] == truth).any(axis=1)
        elapsed = time.perf_counter() - start
    np.savez(DATA / f"hits_{which}.npz", **hits)
    return {"seconds": elapsed, "peak_anon_mb": peak.extra / 2**20,
            "recall": {key: float(value.mean()) for key, value in hits.items()}}


def _subprocess(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, __file__, "--case", *args], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument("--skip-cka", action="store_true")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--case", nargs="+")
    args = parser.parse_args()
    if args.case:
        kind, *rest = args.case
        result = case_cka(rest[0], int(rest[1])) if kind == "cka" else case_recall(rest[0])
        print(json.dumps(result))
        return
    RESULTS.mkdir(exist_ok=True)
    name = "bench_compare" if args.rows == 1_000_000 else f"bench_compare_{args.rows}"
    report = _previous(RESULTS / f"{name}.json", args.rows)
    report.update({"threads": 2, "cpu_count": os.cpu_count(), "rows": args.rows})
    lines = Lines(RESULTS / "bench_compare.partial.txt")
    if not args.skip_cka:
        report["cka"] = run_cka(args, lines)
    if not args.skip_recall:
        report["recall"] = run_recall(args, lines)
    text = "\n\n".join("\n".join(report[section]["lines"]) for section in ("cka", "recall") if section in report)
    print(text)
    atomic_write(RESULTS / f"{name}.txt", text + "\n")
    atomic_write(RESULTS / f"{name}.json", json.dumps(report, indent=2) + "\n")
    lines.path.unlink()


def _previous(path, rows):
    """The sections of an earlier run at the same size (a run of one section keeps the other's)."""
    if path.exists():
        report = json.loads(path.read_text())
        if report.get("rows") == rows and all("lines" in report.get(s, {"lines": 0}) for s in ("cka", "recall")):
            return report
    return {}


def uptime():
    """The ``uptime`` line (the load averages over 1, 5 and 15 minutes: other processes sharing the CPUs)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def run_cka(args, lines):
    first = len(lines)
    lines.append(f"linear CKA, streamed (2 threads); at start: {uptime()}")
    start = time.perf_counter()
    make_files(args.rows)
    lines.append(f"input: A {args.rows} x {DA}, B {args.rows} x {DB}, float32 .npy on disk "
                 f"({args.rows * (DA + DB) * 4 / 1e9:.1f} GB), memory-mapped; ready in "
                 f"{time.perf_counter() - start:.0f} s; batches of {BATCH} rows")
    runs = {"baseline": [], "geoprobe": []}
    for which in ("geoprobe", "baseline") * args.pairs:
        runs[which].append(_subprocess("cka", which, str(args.rows)))
        lines.append(f"  {which:9s} {runs[which][-1]['seconds']:8.1f} s  peak anon +"
                     f"{runs[which][-1]['peak_anon_mb']:.0f} MB  CKA {runs[which][-1]['cka']:.12f}  "
                     f"(load {os.getloadavg()[0]:.1f})")
    med = {k: float(np.median([r["seconds"] for r in v])) for k, v in runs.items()}
    ratio = med["geoprobe"] / med["baseline"]
    lines.append(f"linear CKA streamed: {med['geoprobe']:.1f} s vs the three float64 GEMMs alone "
                 f"{med['baseline']:.1f} s (medians): ratio {ratio:.2f} (target <= 2); CKA agrees to "
                 f"{abs(runs['geoprobe'][0]['cka'] - runs['baseline'][0]['cka']):.1e}")
    lines.append(f"at end: {uptime()}")
    return {"rows": args.rows, "runs": runs, "median_seconds": med, "ratio": ratio, "lines": lines[first:]}


def run_recall(args, lines):
    first = len(lines)
    lines.append(f"paired retrieval, {RECALL_N} pairs x {RECALL_D}, Recall@1/5/10 both ways (2 threads); "
                 f"at start: {uptime()}")
    keys = [f"{k}_{d}" for d in ("a_to_b", "b_to_a") for k in (1, 5, 10)]
    runs = {"faiss": [], "geoprobe": []}
    disagree = {}
    for which in ("faiss", "geoprobe") * args.pairs:
        runs[which].append(r := _subprocess("recall", which))
        lines.append(f"  {which:9s} {r['seconds']:8.1f} s  peak anon +{r['peak_anon_mb']:.0f} MB  " +
                     " ".join(f"R@{key}={r['recall'][key]:.4f}" for key in keys) +
                     f"  (load {os.getloadavg()[0]:.1f})")
        if which == "geoprobe":
            ours, theirs = np.load(DATA / "hits_geoprobe.npz"), np.load(DATA / "hits_faiss.npz")
            disagree = {key: int((ours[key] != theirs[key]).sum()) for key in keys}
    med = {k: float(np.median([r["seconds"] for r in v])) for k, v in runs.items()}
    peak = {k: max(r["peak_anon_mb"] for r in v) for k, v in runs.items()}
    lines.append(f"  geoprobe/faiss: time {med['geoprobe']:.1f} / {med['faiss']:.1f} s (medians) = "
                 f"{med['geoprobe'] / med['faiss']:.2f}, peak memory {peak['geoprobe'] / peak['faiss']:.2f}; "
                 f"queries where the hits differ: {disagree}")
    lines.append(f"at end: {uptime()}")
    return {"n": RECALL_N, "d": RECALL_D, "runs": runs, "median_seconds": med, "peak_anon_mb": peak,
            "ratio": med["geoprobe"] / med["faiss"], "disagreements": disagree, "lines": lines[first:]}


def atomic_write(path, text):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Lines(list):
    """Report lines, each also appended to ``path`` at once (a partial record if the run is stopped)."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        path.write_text("")

    def append(self, line):
        super().append(line)
        with self.path.open("a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
