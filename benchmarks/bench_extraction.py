"""Cost of gp.extract over a plain forward loop, in memory and spilled to memory-mapped files.

Run: ``flock /tmp/bench.lock python benchmarks/bench_extraction.py``. An MLP encoder
(768 → 1024 → 1024 → 512) on 100,000 × 768 float32 inputs in batches of 1,000, on the CPU:

* ``forward``: the model alone under no_grad, outputs thrown away;
* ``forward + fresh``: the same plus filling a fresh array the size of the features
  (first-touch page faults of 586 MB: the floor for any extractor that keeps them);
* ``extract (memory)``: two layers (1024 + 512 features) kept in RAM;
* ``extract (memmap)``: the same with a 64 MB budget, so features go batch by batch to
  ``.npy`` files (614 MB in all), then read back as memory maps.
"""

import tempfile
import time

import numpy as np
import torch
from torch import nn

import geometry_probe as gp

N, D_IN, BATCH = 100_000, 768, 1_000


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = nn.Sequential(nn.Linear(D_IN, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 512))
    model.eval()
    X = torch.randn(N, D_IN)
    layers = ["1", "4"]

    def forward() -> None:
        with torch.no_grad():
            for start in range(0, N, BATCH):
                model(X[start:start + BATCH])

    def in_memory() -> dict:
        return gp.extract(model, X, layers, batch_size=BATCH, device="cpu")

    def memmapped(folder: str) -> dict:
        return gp.extract(model, X, layers, batch_size=BATCH, device="cpu", memmap_dir=folder,
                          memory_bytes=64 * 2**20)

    def floor() -> None:
        # the forward pass plus writing the features into fresh memory: what any extractor must pay
        forward()
        np.empty((N, 1024 + 512), dtype=np.float32).fill(1.0)

    forward()  # warm-up
    timings = {"forward": _time(forward), "forward + fresh": _time(floor)}
    timings["extract (memory)"] = _time(in_memory)
    with tempfile.TemporaryDirectory() as folder:
        timings["extract (memmap)"] = _time(lambda: memmapped(folder))
        out = memmapped(folder)
        assert isinstance(out["4"].X, np.memmap)
        with torch.no_grad():
            expected = model(X[-BATCH:]).numpy()
        assert np.array_equal(np.asarray(out["4"].X[-BATCH:]), expected)
        del out
    size_mb = N * (1024 + 512) * 4 / 2**20
    print(f"{N} x {D_IN} inputs, batches of {BATCH}, layers {layers} ({size_mb:.0f} MB of features), 2 threads")
    for name, seconds in timings.items():
        print(f"{name:18} {seconds:6.2f} s   {N / seconds:9.0f} samples/s   "
              f"x{seconds / timings['forward']:.2f} of forward")


def _time(fn) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    main()
