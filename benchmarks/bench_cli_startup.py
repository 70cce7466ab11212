"""Start-up time of ``geoprobe --help`` and ``geoprobe --version`` against ``python -c "import torch"``.

The commands import torch only when they run, so help and version should take well under half
the time of importing torch (target <= 0.5x). Each command runs in a fresh interpreter, alternated
with the baseline (A B A B ...) so that drift of a shared machine hits both; medians of REPEATS.
The worktree's code is used (PYTHONPATH = the repository root).

Run: flock /tmp/bench.lock python benchmarks/bench_cli_startup.py [REPEATS]
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
OUT = Path(__file__).parent / "results" / "bench_cli_startup.txt"
CASES = {
    "python -c 'import torch' (baseline)": [sys.executable, "-c", "import torch"],
    "geoprobe --help": [sys.executable, "-m", "geometry_probe.cli.main", "--help"],
    "geoprobe analyze --help": [sys.executable, "-m", "geometry_probe.cli.main", "analyze", "--help"],
    "geoprobe --version": [sys.executable, "-m", "geometry_probe.cli.main", "--version"],
    "python -c 'pass' (interpreter alone)": [sys.executable, "-c", "pass"],
}


def seconds(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    for command in CASES.values():                      # warm the page cache once
        seconds(command)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(REPEATS):
        for name, command in CASES.items():
            times[name].append(seconds(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["python -c 'import torch' (baseline)"]
    lines = [f"bench_cli_startup: medians of {REPEATS} fresh interpreters, alternated; load "
             f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs"]
    for name, median in medians.items():
        lines.append(f"  {name:40} {median:6.3f} s   {median / baseline:5.2f}x import torch")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    OUT.write_text(text)


if __name__ == "__main__":
    main()
