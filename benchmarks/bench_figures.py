"""Every figure type at both print presets: pixel size at 300 dpi, smallest font, clipped text, time.

Data: seeded synthetic embeddings, 5 classes x 60 rows in 32 dims (simplex ETF plus noise),
analysed with spectrum, orthogonality, contrastive (classes as positive groups), knn and a PCA
map; a 4-epoch trajectory of them; a 3-layer sweep at two checkpoints. Each figure is drawn at
``--size column`` and ``--size full`` and written as PNG at 300 dpi and as PDF.

Recorded per figure and size: the PNG's width and height in pixels (read from its header), the
width in inches times 300 (what it must equal), the smallest font in points among the texts the
renderer draws (``figure_style.measure_print``), the texts that run past the figure's edge,
whether the PDF embeds TrueType (``/FontFile2``) and no Type 3 font, and the time to draw and
write it. Baseline, in the same process: the same curve drawn by bare matplotlib at its defaults
(``Figure()``, 6.4 x 4.8 in, one ``plot``, ``savefig`` PNG at 300 dpi), so the time column is a
ratio to a figure with no layout engine or text fitting; peak memory is the process's peak RSS.

Run: flock /tmp/bench.lock python benchmarks/bench_figures.py
Writes benchmarks/results/figures.json and figures.md.
"""

from __future__ import annotations

import io
import json
import resource
import struct
import time
from pathlib import Path

import numpy as np

import geometry_probe as gp
from geometry_probe.reporting import figure_style, paper_figures, static
from geometry_probe.reporting.figure_style import SIZES, measure_print, render

RESULTS = Path(__file__).resolve().parent / "results"
DPI = 300


def inputs():
    X, y = gp.datasets.make_simplex_etf(5, 32, 60, noise=0.4, random_state=0)
    names = np.array(["airplane", "automobile", "bird", "cat", "deer"])[y]
    res = gp.analyze(X, ["spectrum", "orthogonality", "contrastive", "knn"], labels=names,
                     params={"contrastive": {"groups": y}})
    projection = gp.project(gp.Embeddings(X, labels=names), "pca").to_result()
    results = gp.Results([*res.values(), projection], meta=res.meta, findings=res.findings)
    rng = np.random.default_rng(1)
    epochs = [(f"run/epoch_{e}.npy", e, gp.Embeddings(X * (1 + e) + rng.standard_normal(X.shape) / (e + 1), labels=y))
              for e in range(4)]
    trajectory = gp.track(epochs, ["spectrum", "contrastive"], params={"contrastive": {"groups": y}})
    trajectory["onsets"] = {"over_fusion": {"step": 2, "path": "a"}, "dimensional_collapse": {"step": 2, "path": "b"}}
    rows = [[{"layer": f"encoder.layer.{i}", "spectrum/effective_rank": 20.0 - 5 * i - k,
              "spectrum/rankme": 22.0 - 5 * i, "contrastive/uniformity": -3.5 + i + k / 2} for i in range(3)]
            for k in range(2)]
    return results, trajectory, rows


def figures(results, trajectory, rows, size):
    runs = {"simclr": results, "byol": results}
    return {**{name: (lambda make=make: make(results, size=size)) for name, make in static.FIGURES.items()},
            "trajectory": lambda: static.plot_trajectory(trajectory, ["spectrum/rankme", "contrastive/uniformity"],
                                                         size=size),
            "compare_spectra": lambda: paper_figures.plot_spectra(runs, size=size),
            "compare_cosine_histogram": lambda: paper_figures.plot_compare_cosine_histograms(runs, size=size),
            "compare_metrics": lambda: paper_figures.plot_compare_metrics(runs, size=size),
            "alignment_uniformity": lambda: paper_figures.plot_alignment_uniformity(
                {"simclr": results, "run": trajectory}, size=size),
            "compare_trajectory": lambda: paper_figures.plot_compare_trajectories({"a": trajectory, "b": trajectory},
                                                                                  size=size),
            "layer_curves": lambda: paper_figures.plot_layer_curves({"epoch 1": rows[0], "epoch 2": rows[1]},
                                                                    size=size)}


def baseline_seconds(repeats=3):
    """Bare matplotlib: default Figure, one line, PNG at 300 dpi; the fastest of ``repeats``."""
    from matplotlib.figure import Figure

    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        figure = Figure()
        figure.add_subplot().plot(np.arange(32), np.linspace(1, 0, 32))
        figure.savefig(io.BytesIO(), format="png", dpi=DPI)
        best = min(best, time.perf_counter() - started)
    return best


def main():
    results, trajectory, rows = inputs()
    baseline = baseline_seconds()
    records = []
    for size in SIZES:
        for name, make in figures(results, trajectory, rows, size).items():
            started = time.perf_counter()
            figure = make()
            png = render(figure, "png", dpi=DPI)
            seconds = time.perf_counter() - started
            pdf = render(figure, "pdf")
            measured = measure_print(figure, dpi=DPI)
            width, height = struct.unpack(">II", png[16:24])
            records.append({"figure": name, "size": size, "width_in": measured["width_in"],
                            "height_in": measured["height_in"], "png_px": [width, height],
                            "expected_width_px": round(figure_style.WIDTHS[size] * DPI),
                            "min_font_pt": measured["min_font_pt"], "n_texts": measured["n_texts"],
                            "clipped": measured["clipped"],
                            "pdf_truetype": b"/FontFile2" in pdf and b"/Type3" not in pdf,
                            "seconds": round(seconds, 3), "ratio_to_bare_matplotlib": round(seconds / baseline, 2)})
            print(f"{name:26s} {size:6s} {width:5d} x {height:<5d} px  min font {measured['min_font_pt']:.1f} pt  "
                  f"clipped {len(measured['clipped'])}  {seconds:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    summary = {"dpi": DPI, "baseline_bare_matplotlib_s": round(baseline, 4), "peak_rss_bytes": peak,
               "n_figures": len(records), "all_min_font_at_least_7pt": all(r["min_font_pt"] >= 7 for r in records),
               "any_clipped": any(r["clipped"] for r in records),
               "all_widths_exact": all(r["png_px"][0] == r["expected_width_px"] for r in records),
               "all_pdf_truetype": all(r["pdf_truetype"] for r in records), "figures": records}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "figures.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = ["# Figures at print size (benchmarks/bench_figures.py)", "",
             f"PNG at {DPI} dpi; baseline: bare matplotlib default figure, one line, PNG at {DPI} dpi: "
             f"{baseline:.3f} s; peak RSS {peak / 2**20:.0f} MiB.", "",
             "| figure | size | inches | PNG pixels | min font (pt) | clipped texts | PDF TrueType | time (s) | "
             "x bare |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['figure']} | {r['size']} | {r['width_in']:.2f} x {r['height_in']:.2f} | {r['png_px'][0]} x "
              f"{r['png_px'][1]} | {r['min_font_pt']:.1f} | {len(r['clipped'])} | "
              f"{'yes' if r['pdf_truetype'] else 'no'} | {r['seconds']:.2f} | {r['ratio_to_bare_matplotlib']:.1f} |"
              for r in records]
    (RESULTS / "figures.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "figures"}, indent=1))


if __name__ == "__main__":
    main()
