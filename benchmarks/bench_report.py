"""HTML report generation time and file size at 100,000 and 1,000,000 points, with a 2-D map.

Data: a seeded N x 64 float32 Gaussian mixture of 10 classes. Per size, in its own process:
analyze (spectrum, orthogonality, contrastive), a PCA map of the stratified 50,000-row subsample
(gp.project's default limit), then the interactive report (plotly.js inlined once, the map drawn
from 10,000 points) and the static one (PNGs). Baseline, measured in the same process: plotly's
own offline export of the same 2-D map with every stored point (``fig.write_html``, plotly.js
inlined), i.e. what one gets without the report's downsampling. Peak memory is the process's
peak resident set. Target: <= 15 MB at 1,000,000 points.

Run: flock /tmp/bench.lock python benchmarks/bench_report.py
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (100_000, 1_000_000)
D, CLASSES, SEED = 64, 10, 0


def mixture(n):
    rng = np.random.default_rng(SEED)
    centres = 3.0 * rng.standard_normal((CLASSES, D))
    labels = rng.integers(0, CLASSES, n)
    return (centres[labels] + rng.standard_normal((n, D))).astype(np.float32), labels


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def run_size(n):
    """Every timing and size for ``n`` rows, measured in this process."""
    import geometry_probe as gp
    from geometry_probe.reporting.html_report import write_report
    from geometry_probe.reporting.interactive import plot_projection

    X, y = mixture(n)
    emb = gp.Embeddings(X, labels=y)
    res, t_analyze = timed(gp.analyze, emb, ["spectrum", "orthogonality", "contrastive"])
    proj, t_project = timed(gp.project, emb, "pca")
    res = gp.Results([*res.values(), proj.to_result()], meta=res.meta, findings=res.findings)
    out = Path(tempfile.mkdtemp())
    json_text = res.to_json(out / "r.json")
    _, t_report = timed(write_report, res, out / "report.html")
    _, t_static = timed(write_report, res, out / "static.html", interactive=False)
    _, t_baseline = timed(lambda: plot_projection(res).write_html(out / "plotly.html", include_plotlyjs=True))
    size = {name: os.path.getsize(out / name) / 2**20 for name in ("report.html", "static.html", "plotly.html")}
    return {"n": n, "analyze_s": t_analyze, "project_s": t_project, "report_s": t_report, "static_s": t_static,
            "baseline_s": t_baseline, "report_mib": size["report.html"], "static_mib": size["static.html"],
            "baseline_mib": size["plotly.html"], "json_mib": len(json_text.encode()) / 2**20,
            "n_shown": proj.params["n_shown"],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    print(f"# N x {D} float32, {CLASSES}-class Gaussian mixture, 2 threads, one process per size")
    for n in SIZES:
        out = subprocess.run([sys.executable, __file__, str(n)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"N={n}: interactive report {r['report_s']:.2f} s, {r['report_mib']:.2f} MiB "
              f"(map: 10000 of {n} points drawn; {r['n_shown']} stored in the results JSON of "
              f"{r['json_mib']:.2f} MiB); "
              f"static report {r['static_s']:.2f} s, {r['static_mib']:.2f} MiB; "
              f"baseline plotly write_html of the map with all {r['n_shown']} stored points {r['baseline_s']:.2f} s, "
              f"{r['baseline_mib']:.2f} MiB; report/baseline time ratio {r['report_s'] / r['baseline_s']:.2f}; "
              f"target <= 15 MB: {'met' if r['report_mib'] * 2**20 <= 15e6 else 'missed'}; "
              f"(analyze {r['analyze_s']:.1f} s, PCA map {r['project_s']:.2f} s; peak RSS {r['peak_rss_mib']:.0f} MiB)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(run_size(int(sys.argv[1]))))
    else:
        main()
