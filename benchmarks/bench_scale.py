"""Scale benchmark: `geoprobe analyze` on memory-mapped inputs far larger than one batch.

Inputs (float32 ``.npy`` written in /tmp with ``open_memmap``, int64 labels of 100 classes):
10,000,000 x 64 (2.4 GiB), 1,000,000 x 768 (2.9 GiB), and 1,000,000 x 64 (the same D at a
tenth of N, to see whether memory grows with N). Each case runs
``geoprobe analyze FILE --labels LABELS --analyzers ... --json OUT -q`` in a subprocess, once
for the streaming analyzers (spectrum, neural_collapse) and once for the pairwise ones
(contrastive, knn), which above their pair budget must use their sampled estimators (the JSON
``params.estimator`` is recorded and checked).

Memory: the child's /proc/<pid>/status is sampled every 50 ms (VmHWM, RssAnon, RssFile).
Pages of the memory-mapped input count as RssFile (page cache, reclaimable), so the bound is
checked on the peak RssAnon:

    bound = baseline + state + batch + labels

* baseline: peak RssAnon of the same command on a 2,000-row input of the same D (interpreter,
  torch, libraries, results and verdicts on a 1,024-row subsample);
* state: float64 statistics, per analyzer set (see ``_state_bytes``);
* batch: ``batch_size x D`` float32 rows times ``BATCH_COPIES`` (the read copy, its float32/
  float64 working copies and the GEMM output), or for the pairwise estimators their largest
  row chunk and tile;
* labels: N int64 codes plus the temporaries of encoding them (``LABEL_COPIES`` x N x 8 bytes),
  the one O(N) array the library keeps by design.

The labels phase is also measured alone (load the input, read and encode the labels, nothing
else, minus a bare ``import geometry_probe``), to show how much of the peak it sets.

Run: flock /tmp/bench.lock python benchmarks/bench_scale.py   (10-25 minutes with the load, 6 GiB in /tmp,
deleted at the end unless --keep).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from geometry_probe.analysis import default_batch_size
from geometry_probe.analyzers.contrastive import SAMPLED_PAIRS
from geometry_probe.analyzers.positives import chunk_rows
from geometry_probe.analyzers.spectrum import PER_CLASS_MAX_BYTES, PER_CLASS_MAX_FLOPS
from geometry_probe.analyzers.knn import QUERY_BLOCK_BYTES
from geometry_probe.pairwise import tile_size

ROOT = Path("/tmp/geoprobe_bench_scale")
RESULTS = Path(__file__).parent / "results" / "bench_scale.txt"
RAW = Path("/tmp/geoprobe_bench_scale_raw.json")      # every measured number, for re-reading the run
N_CLASSES = 100
TINY_ROWS = 2_000
SAMPLE_S = 0.05
BATCH_COPIES = 4
LABEL_COPIES = 4
SHAPES = {"10M x 64": (10_000_000, 64), "1M x 768": (1_000_000, 768), "1M x 64": (1_000_000, 64)}
ANALYZER_SETS = {"streaming": "spectrum,neural_collapse", "pairwise": "contrastive,knn"}
GEN_CHUNK = 250_000
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def make_input(name, n_rows, n_features):
    """Write ``name``.npy (float32, class means + noise) and ``name``_y.npy (int64 labels) in chunks."""
    path, label_path = ROOT / f"{name}.npy", ROOT / f"{name}_y.npy"
    if path.exists() and label_path.exists():
        return path, label_path
    rng = np.random.default_rng(0)
    means = rng.standard_normal((N_CLASSES, n_features)).astype(np.float32)
    X = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32,
                                  shape=(n_rows, n_features))
    y = rng.integers(0, N_CLASSES, n_rows)
    for start in range(0, n_rows, GEN_CHUNK):
        stop = min(n_rows, start + GEN_CHUNK)
        X[start:stop] = rng.standard_normal((stop - start, n_features), dtype=np.float32) + means[y[start:stop]]
    X.flush()
    del X
    os.replace(path.with_suffix(".tmp.npy"), path)
    np.save(label_path, y)
    return path, label_path


def _status(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    fields[key] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return fields


def run_sampled(command):
    """Run ``command`` in a subprocess, sampling its memory; return wall time and peak memory fields."""
    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0, "samples": 0}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample():
        while child.poll() is None:
            status = _status(child.pid)
            for key in ("VmHWM", "RssAnon", "RssFile"):
                peaks[key] = max(peaks[key], status.get(key, 0))
            peaks["samples"] += 1
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = child.communicate()
    elapsed = time.perf_counter() - started
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{stdout}\n{stderr}")
    return elapsed, peaks


def run_analyze(path, label_path, analyzers, out):
    """Run the CLI in a subprocess; return wall time, peak memory fields and the parsed JSON."""
    command = [shutil.which("geoprobe") or "geoprobe", "analyze", str(path), "--labels", str(label_path),
               "--analyzers", analyzers, "--json", str(out), "-q"]
    elapsed, peaks = run_sampled(command)
    results = json.loads(Path(out).read_text())
    out.unlink()
    return elapsed, peaks, results


def label_phase(path, label_path):
    """Peak RssAnon of loading the input and reading + encoding its labels alone, minus that of the imports."""
    _, imports = run_sampled([sys.executable, "-c", "import geometry_probe"])
    _, loaded = run_sampled([sys.executable, "-c", "import sys, geometry_probe as gp; "
                             "gp.load(sys.argv[1], labels=sys.argv[2])", str(path), str(label_path)])
    return loaded["RssAnon"] - imports["RssAnon"]


def _state_bytes(kind, n_rows, n_features, results):
    """Bytes of the statistics an analyzer set keeps, its largest per-batch working set, and the batch rows.

    The terms follow the code paths (constants are read from the library, so the bound follows them):

    * streaming: ``Moments`` (spectrum, D x D + D) and ``ClassMoments`` (neural_collapse, D x D + C x D + 2 C),
      plus ``ClassScatter`` (C x D x D) when spectrum keeps per-class covariances, the same again for the
      batch's own statistics before they are added, and 4 D x D eigendecomposition copies at compute time;
      the batch is ``BATCH_COPIES`` float32 copies of ``batch_rows x D`` (the read, the centred copy, the
      per-class gathers, the second-pass distances' input) plus the (B, C) distance block;
    * pairwise: the largest of contrastive's unit-row sum (a float32 chunk of ``chunk_rows(D)`` rows, its
      float64 copy and the float64 product), its pair sampler (four float32 chunk x D arrays: one end's unit
      rows, the other end's read and unit rows, their product; plus the ``SAMPLED_PAIRS`` index pairs and
      cosine/kernel/indicator vectors) and knn's query scan (queries and their unit copy, ``BATCH_COPIES``
      copies of a candidate block sized as the library sizes it, the query x block cosines, the merged top-k).
      The knn term is the smallest of the three at these shapes.
    """
    D, C = n_features, N_CLASSES
    if kind == "streaming":
        batch_rows = min(n_rows, default_batch_size(D))
        state = 2 * 8 * (2 * D * D + D + C * D + 2 * C) + 8 * 4 * D * D
        if C * D**3 <= PER_CLASS_MAX_FLOPS and C * D * D * 8 <= PER_CLASS_MAX_BYTES:
            state += 2 * 8 * (C * D * D + C * D + C)
        batch = BATCH_COPIES * batch_rows * D * 4 + 8 * batch_rows * C
        return state, batch, batch_rows
    chunk = chunk_rows(D)
    unit_row_sum = chunk * D * (4 + 8 + 8)
    sampler = 4 * chunk * D * 4 + SAMPLED_PAIRS * (2 * 8 + 2 * 4 + 4 * 8)
    queries, k = results["knn"]["n_queries"], results["knn"]["params"]["k"]
    block = max(tile_size(n_rows), QUERY_BLOCK_BYTES // (4 * queries))
    knn = 2 * queries * D * 4 + BATCH_COPIES * block * D * 4 + queries * block * 4 + 3 * queries * 2 * k * (4 + 8)
    return 0, max(unit_row_sum, sampler, knn), chunk


def measure(names, keep):
    ROOT.mkdir(exist_ok=True)
    lines = [f"# geoprobe analyze on memory-mapped float32 .npy inputs, {N_CLASSES} int64 label classes, "
             f"2 threads (OMP/BLAS), CPU; memory sampled every {SAMPLE_S * 1000:.0f} ms from /proc/<pid>/status",
             "# bound = baseline (same command, 2,000 rows) + float64 state + batch working set + labels "
             f"({LABEL_COPIES} x N x 8 B); the bound applies to RssAnon (RssFile = page cache of the mapped input)"]
    records = []
    try:
        for name in names:
            n_rows, n_features = SHAPES[name]
            started = time.perf_counter()
            path, label_path = make_input(name.replace(" ", ""), n_rows, n_features)
            lines.append(f"\n## {name} ({n_rows * n_features * 4 / 2**30:.2f} GiB float32; "
                         f"generated in {time.perf_counter() - started:.0f} s)")
            tiny, tiny_labels = make_input(f"tiny{n_features}", TINY_ROWS, n_features)
            labels_alone = label_phase(path, label_path)
            lines.append(f"labels phase alone (load + read + encode the labels, no analyzer): peak RssAnon "
                         f"{labels_alone / 2**20:.0f} MiB above the imports = {labels_alone / (8 * n_rows):.1f} "
                         f"x N x 8 B (the bound's labels term counts {LABEL_COPIES})")
            print(lines[-1], flush=True)
            for kind, analyzers in ANALYZER_SETS.items():
                first_line = len(lines)
                _, base_peaks, _ = run_analyze(tiny, tiny_labels, analyzers, ROOT / "out.json")
                elapsed, peaks, raw = run_analyze(path, label_path, analyzers, ROOT / "out.json")
                results = raw["results"]
                estimators = {k: results[k]["params"].get("estimator", "-") for k in ("contrastive", "knn")
                              if k in results}
                if "knn" in results:
                    results["knn"]["n_queries"] = _knn_queries(results["knn"], n_rows)
                state, batch, batch_rows = _state_bytes(kind, n_rows, n_features, results)
                labels = LABEL_COPIES * n_rows * 8
                bound = base_peaks["RssAnon"] + state + batch + labels
                ratio = peaks["RssAnon"] / bound
                lines.append(
                    f"{kind:9} ({analyzers}): {elapsed:7.1f} s; peak RssAnon {peaks['RssAnon'] / 2**20:7.0f} MiB, "
                    f"RssFile {peaks['RssFile'] / 2**20:6.0f} MiB, VmHWM {peaks['VmHWM'] / 2**20:6.0f} MiB "
                    f"({peaks['samples']} samples)")
                lines.append(
                    f"          bound {bound / 2**20:7.0f} MiB = baseline {base_peaks['RssAnon'] / 2**20:.0f} "
                    f"+ state {state / 2**20:.1f} + batch {batch / 2**20:.0f} ({batch_rows} rows) "
                    f"+ labels {labels / 2**20:.0f}; peak/bound = {ratio:.2f} "
                    f"({'within' if ratio <= 1 else 'ABOVE'} the bound)")
                records.append({"case": name, "kind": kind, "elapsed_s": elapsed, "peaks": peaks,
                                "baseline_peaks": base_peaks, "state": state, "batch": batch, "labels": labels,
                                "bound": bound, "estimators": estimators, "labels_alone": labels_alone})
                RAW.write_text(json.dumps(records, indent=1))
                for analyzer, estimator in estimators.items():
                    lines.append(f"          {analyzer} estimator: {estimator}")
                if kind == "pairwise" and not all("sampled" in e for e in estimators.values()):
                    lines.append("          ERROR: an exact all-pairs estimator ran at this N without --exact")
                print("\n".join(lines[first_line:]), flush=True)
    finally:
        if not keep:
            shutil.rmtree(ROOT, ignore_errors=True)
    return lines


def _knn_queries(result, n_rows):
    estimator = result["params"]["estimator"]
    return int(estimator.split()[3]) if estimator.startswith("exact neighbours of") else n_rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(SHAPES), help=f"comma-separated, from {list(SHAPES)}")
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs in /tmp")
    args = parser.parse_args()
    lines = measure([c.strip() for c in args.cases.split(",")], args.keep)
    runs = sum("peak/bound" in line for line in lines)
    failures = [line.strip() for line in lines if "ABOVE the bound" in line or "ERROR" in line]
    exact = any("ERROR" in f for f in failures)
    lines.append(f"\n# summary: {runs - sum('ABOVE' in f for f in failures)} of {runs} runs within the bound; "
                 + ("an exact all-pairs estimator ran" if exact else "every pairwise run used its sampled estimators"))
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
