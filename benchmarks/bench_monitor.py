"""Monitor overhead: CollapseMonitor.update on every training step, snapshots every 100 steps.

Workloads (CPU, 2 threads): an MLP 768 -> 2048 -> 768, batch 256, forward + backward + SGD;
and the digits encoder (64 -> 128 -> 128, batch 256). Baseline: the same loop without the
monitor, measured in the same run, alternating blocks to cancel drift. Target: <= 1% amortised.
Host syncs: counted with a TorchFunctionMode. Between snapshots, any Tensor.item/tolist/__bool__/
cpu/numpy call would be a sync (expected 0). At a snapshot, the device-to-host transfers are the
Tensor.cpu calls: one moves the packed statistics and buffer; the others (in the eigensolver
helper) act on those host copies, where they are no-ops and never wait for a device.

Run: python benchmarks/bench_monitor.py
"""

import os
import time

import torch
from torch.overrides import TorchFunctionMode

import geometry_probe as gp

STEPS, EVERY = 400, 100
SYNCS = {"item", "tolist", "__bool__", "__int__", "__float__", "cpu", "numpy"}


class SyncCounter(TorchFunctionMode):
    def __init__(self, names):
        super().__init__()
        self.names, self.count = names, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") in self.names
        return func(*args, **(kwargs or {}))


def loop(model, width_in, monitor, steps, g):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(256, width_in, generator=g)
    started = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        z = model(x)
        z.pow(2).mean().backward()
        opt.step()
        if monitor is not None:
            monitor.update(z)
    return time.perf_counter() - started


def measure(name, make_model, width_in):
    g = torch.Generator().manual_seed(0)
    model = make_model()
    loop(model, width_in, None, 20, g)
    base = mon = 0.0
    for _ in range(2):                                # alternate blocks
        base += loop(model, width_in, None, STEPS, g)
        mon += loop(model, width_in, gp.CollapseMonitor(every_n_steps=EVERY, on_collapse="ignore"), STEPS, g)
    monitor = gp.CollapseMonitor(every_n_steps=EVERY, on_collapse="ignore")
    z = make_model()(torch.randn(256, width_in)).detach()
    between, at_snapshot = SyncCounter(SYNCS), SyncCounter({"cpu"})
    with between:
        for _ in range(EVERY - 1):
            monitor.update(z)
    with at_snapshot:
        monitor.update(z)
    overhead = (mon - base) / base
    return (f"{name}: step {base / (2 * STEPS) * 1e3:.2f} ms without, {mon / (2 * STEPS) * 1e3:.2f} ms with the "
            f"monitor -> overhead {overhead * 100:+.2f}% amortised; sync-like calls in {EVERY - 1} plain updates: "
            f"{between.count}; device-to-host transfers at the logged step: {at_snapshot.count}")


def main():
    torch.set_num_threads(2)
    lines = ["# CollapseMonitor overhead (CPU, 2 threads, every_n_steps=100, buffer 256)",
             measure("MLP 768-2048-768, batch 256", lambda: torch.nn.Sequential(
                 torch.nn.Linear(768, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 768)), 768),
             measure("digits encoder 64-128-128, batch 256", lambda: torch.nn.Sequential(
                 torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128)), 64)]
    text = "\n".join(lines)
    print(text)
    out = os.path.join(os.path.dirname(__file__), "results", "bench_monitor.txt")
    with open(out, "w") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
