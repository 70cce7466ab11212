"""Pairwise engine benchmark (issue 3), 2 CPU threads, each case in a fresh subprocess.

1. Exact uniformity, N = 20,000, D = 768: geometry-probe's tiled pass vs the reference code's
   way, ``torch.pdist(x).pow(2).mul(-2).exp().mean().log()``, in the same run.
2. Exact 10-NN at 20,000 x 768 vs faiss-cpu ``IndexFlatL2`` (the issue's baseline; on the unit
   sphere its ranking equals cosine ranking) and ``IndexFlatIP``.
3. One shared pass (uniformity + histograms + 10-NN lists, what ``analyze`` runs for
   ``contrastive,knn``) vs the two passes run separately, at 20,000 x 768.
4. The bare upper-triangle float32 GEMM of the same tiles: the floor of any exact pass.
5. ``--large``: the shared pass at 100,000 x 768 in float32 against the bare GEMM, and with
   bfloat16 tiles (results/bench_pairwise_large.txt).
6. ``--bf16``: the shared pass with bfloat16 tiles against float32 at 20,000 x 768, with the
   uniformity difference and the 10-NN recall (results/bench_pairwise_bf16.txt).

Memory: growth of the process's anonymous resident memory (``RssAnon`` high-water, sampled by
a thread every 5 ms) over its value after the input is in memory and the kernels have run
once on a tiny input (so library code pages and thread pools are not counted).

Run: flock /tmp/bench.lock python benchmarks/bench_pairwise.py [--large | --bf16]
"""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

D = 768


def _rss_anon():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) * 1024
    return 0


class PeakAnon:
    """High-water mark of RssAnon, sampled every 5 ms by a thread."""

    def __enter__(self):
        self.base = self.peak = _rss_anon()
        self._stop = False
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop:
            self.peak = max(self.peak, _rss_anon())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, _rss_anon())

    @property
    def extra(self):
        return self.peak - self.base


def child(case, n):
    import torch

    torch.set_num_threads(2)
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((n, D), dtype=np.float32))
    X = X / X.norm(dim=1, keepdim=True)
    from geometry_probe.functional.contrastive import PairSums, uniformity
    from geometry_probe.functional.knn import NeighbourLists, knn_search, knn_search_queries
    from geometry_probe.pairwise import run_pass, tile_size

    def one_pass(consumers, dtype=torch.float32):
        run_pass(X, consumers, dtype=dtype)

    warm = X[:300].clone()
    uniformity(warm), knn_search(warm, 10)                  # load kernels, spin up thread pools
    value, extra = 0.0, {}
    sums, lists = PairSums(t=2.0, threshold=0.9), NeighbourLists(n, 10)
    with PeakAnon() as memory:
        started = time.perf_counter()
        if case == "ours":
            value = uniformity(X)
        elif case == "pdist":
            value = float(torch.pdist(X).pow(2).mul(-2).exp().mean().log())
        elif case == "knn_ours":
            knn_search(X, 10)
        elif case in ("faiss_l2", "faiss_ip"):
            import faiss

            faiss.omp_set_num_threads(2)
            index = faiss.IndexFlatL2(D) if case == "faiss_l2" else faiss.IndexFlatIP(D)
            index.add(X.numpy())
            index.search(X.numpy(), 11)
        elif case == "sums_full":
            one_pass([sums])
        elif case == "two_passes":
            one_pass([sums])
            one_pass([lists])
        elif case in ("fused", "fused_bf16"):
            one_pass([sums, lists], torch.bfloat16 if case == "fused_bf16" else torch.float32)
        elif case == "gemm":
            tile = tile_size(n)
            for i in range(0, n, tile):
                for j in range(i, n, tile):
                    X[i:i + tile] @ X[j:j + tile].T
        elapsed = time.perf_counter() - started
    if case.startswith(("sums", "two", "fused")):
        value = sums.uniformity
    if case.startswith(("two", "fused")):
        queries = torch.arange(0, n, max(1, n // 1000))     # 1,000 rows checked against an exact float32 search
        _, exact = knn_search_queries(X, queries, 10)
        found = lists.indices[queries]
        extra["recall@10"] = float((found[:, :, None] == exact[:, None, :]).any(2).double().mean())
    print(json.dumps({"s": elapsed, "value": value, "extra": memory.extra, **extra}))


def run(case, n):
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, __file__, "--child", case, str(n)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line(name, r, base=None):
    ratio = f", {r['s'] / base['s']:.2f}x of {base['name']}" if base else ""
    value = f", value {r['value']:.6f}" if r["value"] else ""
    recall = f", recall@10 {r['recall@10']:.4f}" if "recall@10" in r else ""
    return f"  {name:46s} {r['s']:7.2f} s  extra anon peak {r['extra'] / 2**20:6.0f} MiB{value}{recall}{ratio}"


def _write(name, lines):
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(os.path.dirname(__file__), "results", name), "w") as handle:
        handle.write(text + "\n")


def standard(n=20_000):
    """Sections 1-4 at 20,000 x 768 -> results/bench_pairwise.txt."""
    gemm = {**run("gemm", n), "name": "bare GEMM"}
    ours, ref = run("ours", n), {**run("pdist", n), "name": "torch.pdist"}
    k_ours = run("knn_ours", n)
    l2, ip = {**run("faiss_l2", n), "name": "faiss IndexFlatL2"}, {**run("faiss_ip", n), "name": "faiss IndexFlatIP"}
    full = run("sums_full", n)
    two, fused = {**run("two_passes", n), "name": "two passes"}, run("fused", n)
    _write("bench_pairwise.txt", [
        f"# {n} x {D} float32, unit-norm rows, 2 threads (machine shared with other work: compare ratios)",
        _line("upper-triangle float32 GEMM only (floor)", gemm),
        _line("exact uniformity, geometry-probe", ours, gemm),
        _line("exact uniformity, torch.pdist reference", ref),
        f"  -> geometry-probe is {ref['s'] / ours['s']:.1f}x faster than torch.pdist",
        _line("exact 10-NN, geometry-probe", k_ours, l2),
        _line("exact 10-NN, faiss IndexFlatL2", l2),
        _line("exact 10-NN, faiss IndexFlatIP", ip),
        f"  -> geometry-probe 10-NN / faiss IndexFlatIP = {k_ours['s'] / ip['s']:.2f}x",
        _line("uniformity + |cos| + histogram + share above", full, gemm),
        _line("the same + 10-NN, two passes", two, gemm),
        _line("the same + 10-NN, one shared pass", fused, two),
        f"  -> one pass = {fused['s'] / gemm['s']:.2f}x of the bare GEMM"])


def large(n=100_000):
    """Section 5 at 100,000 x 768, float32 and bfloat16 -> results/bench_pairwise_large.txt."""
    gemm = {**run("gemm", n), "name": "bare GEMM"}
    fused = {**run("fused", n), "name": "float32 pass"}
    bf16 = run("fused_bf16", n)
    _write("bench_pairwise_large.txt", [
        f"# {n} x {D}, unit-norm rows, 2 threads (machine shared with other work: compare ratios)",
        _line("upper-triangle float32 GEMM only (floor)", gemm),
        _line("uniformity + histograms + 10-NN, one pass", fused, gemm),
        _line("the same with bfloat16 tiles", bf16, fused)])


def bfloat16(n=20_000):
    """bfloat16 tiles vs float32 at 20,000 x 768 -> results/bench_pairwise_bf16.txt."""
    fp32 = {**run("fused", n), "name": "float32"}
    bf16 = run("fused_bf16", n)
    _write("bench_pairwise_bf16.txt", [
        f"# {n} x {D}, uniformity + histograms + 10-NN in one pass, 2 threads "
        "(recall@10: share of the exact float32 10-NN of 1,000 rows found)",
        _line("float32", fp32),
        _line("bfloat16", bf16, fp32),
        f"  -> |uniformity(bf16) - uniformity(fp32)| = {abs(bf16['value'] - fp32['value']):.2e}"])


def main():
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
        return
    if "--large" in sys.argv:
        large()
    elif "--bf16" in sys.argv:
        bfloat16()
    else:
        standard()


if __name__ == "__main__":
    main()
