"""What the collapse verdicts cost, idle and under load (issue: verdicts ≤ 0.3 s on any input).

For each input, :func:`geometry_probe.diagnose` is timed 7 times (median and max), first with
the machine as it is, then while a second process runs torch matrix products on every core
(a training loop beside the analysis). The named baseline in the same run is the former
diagnosis' core step: a full ``np.linalg.eigvalsh`` of the 1024 × 1024 Gram of the subsample
with NumPy's default BLAS threads.

Run: ``flock /tmp/bench.lock python benchmarks/bench_verdicts.py``; writes
``benchmarks/results/bench_verdicts.txt``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import numpy as np

import geometry_probe as gp

RESULTS = Path(__file__).parent / "results" / "bench_verdicts.txt"
REPEATS = 7


def _load(stop: mp.Event) -> None:
    """Torch matrix products on every core until ``stop`` is set."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    a = torch.randn(1024, 1024)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def _cases() -> list[tuple[str, gp.Embeddings, gp.Results]]:
    rng = np.random.default_rng(0)
    digits = gp.datasets.load_digits_embeddings()
    cases = [("digits MLP 1797 x 128, labels", digits)]
    X = rng.standard_normal((20_000, 768)).astype(np.float32)
    cases += [("20,000 x 768, 10 labels", gp.Embeddings(X, labels=rng.integers(0, 10, 20_000))),
              ("20,000 x 768, no labels", gp.Embeddings(X)),
              ("30,000 x 256, 3,000 labels", gp.Embeddings(rng.standard_normal((30_000, 256)).astype(np.float32),
                                                           labels=rng.integers(0, 3000, 30_000))),
              ("2,000 x 16,384, no labels", gp.Embeddings(rng.standard_normal((2000, 16_384)).astype(np.float32))),
              ("4 x 200,000, no labels", gp.Embeddings(rng.standard_normal((4, 200_000)).astype(np.float32)))]
    return [(name, emb, gp.Results([], meta={"n_samples": emb.n_samples, "n_features": emb.n_features}))
            for name, emb in cases]


def _times(fn) -> tuple[float, float]:
    fn()                                                                     # warm caches, as in a real run
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def _baseline() -> tuple[float, float]:
    X = np.random.default_rng(1).standard_normal((1024, 768))
    G = X @ X.T
    return _times(lambda: np.linalg.eigvalsh(G))


def main() -> None:
    cases = _cases()
    lines = [f"bench_verdicts: diagnose() median / max of {REPEATS} runs, seconds; {os.cpu_count()} cores",
             f"load average at start: {os.getloadavg()[0]:.2f}", ""]
    header = f"{'input':34s} {'as is':>15s} {'under load':>15s}"
    lines += [header, "-" * len(header)]
    idle = {name: _times(lambda e=emb, r=res: gp.diagnose(r, e)) for name, emb, res in cases}
    idle_base = _baseline()
    context = mp.get_context("spawn")             # a forked child of a process that ran torch can hang
    stop = context.Event()
    worker = context.Process(target=_load, args=(stop,))
    worker.start()
    time.sleep(5.0)                                # the child imports torch before it loads the cores
    try:
        loaded = {name: _times(lambda e=emb, r=res: gp.diagnose(r, e)) for name, emb, res in cases}
        loaded_base = _baseline()
    finally:
        stop.set()
        worker.join()
    for name, _, _ in cases:
        lines.append(f"{name:34s} {idle[name][0]:6.3f} / {idle[name][1]:5.3f} {loaded[name][0]:7.3f} / "
                     f"{loaded[name][1]:5.3f}")
    lines += ["", "named baseline (the former core step): np.linalg.eigvalsh of a 1024 x 1024 Gram, default threads",
              f"{'':34s} {idle_base[0]:6.3f} / {idle_base[1]:5.3f} {loaded_base[0]:7.3f} / {loaded_base[1]:5.3f}",
              f"worst diagnose() under load: {max(v[1] for v in loaded.values()):.3f} s"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
