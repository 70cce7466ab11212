"""Cost of the CLI's progress display: ``gp.analyze`` on 300,000 x 256 float32, memory-mapped, with
and without the progress callback that ``geoprobe analyze`` passes when stderr is a terminal.

The display renders for real: a rich ``Console`` that believes it is a terminal writes the bars
(one redraw a second on rich's own thread) into memory, so the figure counts the callback calls
and the redraws. Baseline, in the same run: the same call with ``progress=None``. The two are
interleaved (A B A B ...) so that drift of a shared machine hits both; the wall-time ratio of the
medians is the headline, with process CPU time as a second view. Because the difference is
far below the machine's run-to-run noise, the callback's own cost is also measured directly
(calls x the time of one call, timed over 100,000 calls) and given as a share of the run.

Run: flock /tmp/bench.lock python benchmarks/bench_progress.py [N] [D] [REPEATS]
"""

import io
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import geometry_probe as gp  # noqa: E402
from geometry_probe.cli._progress import ProgressDisplay, progress_display  # noqa: E402
from rich.console import Console  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
D = int(sys.argv[2]) if len(sys.argv) > 2 else 256
REPEATS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
OUT = Path(__file__).parent / "results" / "bench_progress.txt"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(path: Path, with_progress: bool) -> tuple[float, float, int]:
    """Wall and CPU seconds of one analyze call, and how many progress calls it made."""
    emb = gp.load(path)
    calls = 0
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    wall, cpu = time.perf_counter(), _cpu()
    if with_progress:
        with progress_display(quiet=False, console=console) as display:
            def counting(stage, done, total):
                nonlocal calls
                calls += 1
                display(stage, done, total)
            gp.analyze(emb, device="cpu", progress=counting)
    else:
        gp.analyze(emb, device="cpu")
    return time.perf_counter() - wall, _cpu() - cpu, calls


def one_call_seconds() -> float:
    """The time of one callback call on a live display (median of 5 x 100,000 calls)."""
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    timings = []
    with progress_display(quiet=False, console=console) as display:
        assert isinstance(display, ProgressDisplay)
        for _ in range(5):
            start = time.perf_counter()
            for i in range(100_000):
                display("rows", i, 100_000)
            timings.append((time.perf_counter() - start) / 100_000)
    return statistics.median(timings)


def display_thread_cpu(seconds: int = 10) -> float:
    """CPU seconds the display's redraw thread uses per second of a run (main thread asleep)."""
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    start = _cpu()
    with progress_display(quiet=False, console=console) as display:
        for i in range(seconds):
            display("rows", i, seconds)
            time.sleep(1)
    return (_cpu() - start) / seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.npy"
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(N, D))
        rng = np.random.default_rng(0)
        for start in range(0, N, 50_000):
            X[start:start + 50_000] = rng.standard_normal((min(50_000, N - start), D), dtype=np.float32)
        X.flush()
        del X
        float(np.load(path, mmap_mode="r").sum(dtype=np.float64))          # warm-up: the page cache
        gp.analyze(np.load(path, mmap_mode="r")[:20_000], device="cpu")     # and the imports and kernels
        base, prog, base_cpu, prog_cpu, calls = [], [], [], [], 0
        for _ in range(REPEATS):
            wall, cpu, _ = run(path, False)
            base.append(wall)
            base_cpu.append(cpu)
            wall, cpu, calls = run(path, True)
            prog.append(wall)
            prog_cpu.append(cpu)
    per_call = one_call_seconds()
    redraw = display_thread_cpu()
    median_base, median_prog = statistics.median(base), statistics.median(prog)
    lines = [
        f"bench_progress: gp.analyze (default analyzers, CPU) on {N:,} x {D} float32, memory-mapped; "
        f"{REPEATS} interleaved runs each after a warm-up (page cache, a 20,000-row run); load {os.getloadavg()[0]:.2f}, "
        f"{os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()}",
        f"  without progress (baseline): wall {', '.join(f'{t:.2f}' for t in base)} s (median {median_base:.2f}); "
        f"CPU {statistics.median(base_cpu):.2f} s",
        f"  with the rich display:       wall {', '.join(f'{t:.2f}' for t in prog)} s (median {median_prog:.2f}); "
        f"CPU {statistics.median(prog_cpu):.2f} s",
        f"  wall ratio with/without: {median_prog / median_base:.4f}; CPU ratio: "
        f"{statistics.median(prog_cpu) / statistics.median(base_cpu):.4f}",
        f"  callback: {calls} calls per run x {per_call * 1e6:.1f} us = {calls * per_call * 1e3:.2f} ms, "
        f"{calls * per_call / median_base:.2e} of the run",
        f"  redraw thread: {redraw * 1e3:.1f} ms of CPU per second of run = {redraw:.2%} of one core "
        f"(of {os.cpu_count()} busy with the analysis)",
        f"  peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB "
        f"(input {N * D * 4 / 2**20:.0f} MiB, mapped)",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    OUT.write_text(text)


if __name__ == "__main__":
    main()
