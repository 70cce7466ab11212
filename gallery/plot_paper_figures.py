"""
Paper figures from saved JSON, at both print sizes
==================================================

The figures papers show, each drawn from the JSON files ``geoprobe analyze``, ``track`` and
``layers`` save, so a figure can be redrawn for a paper without re-running anything. Every
figure comes in the two widths of a two-column paper: ``--size column`` (3.25 in) and
``--size full`` (6.75 in, the text width), with text at 7 pt or more at that size, PNGs at
300 dpi, and PDFs with their TrueType fonts embedded. Each section prints the exact
``geoprobe figures`` command that writes the figures it shows; here the same library call
the command makes draws them (:func:`geometry_probe.reporting.paper_figures.figures_for`).

This script uses only the public API, so it runs when copied on its own: figures (PDF and
PNG) and the JSON inputs go to the folder named by ``GEOPROBE_GALLERY_OUT`` (default
``./gallery_output``).
"""

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import geometry_probe as gp
from geometry_probe.reporting.figure_inputs import read_runs
from geometry_probe.reporting.figure_style import SIZES, render
from geometry_probe.reporting.paper_figures import figures_for
from geometry_probe.trajectory import write_track_json

OUT = Path(os.environ.get("GEOPROBE_GALLERY_OUT") or "gallery_output")
OUT.mkdir(parents=True, exist_ok=True)
FAST = os.environ.get("GEOPROBE_GALLERY_FAST", "").strip().lower() in {"1", "true", "yes"}
PER_CLASS = 30 if FAST else 120
shown = {}
plt.rcParams["figure.max_open_warning"] = 0          # this page shows every figure at both sizes


def show(files, *, compare, stem, command, only=None):
    """Draw the figures ``geoprobe figures FILES [--compare] --size SIZE`` writes (those named in
    ``only``, else all), at both sizes: print the command, save each figure as PDF and PNG
    (300 dpi), hand it to pyplot to display."""
    runs = read_runs([OUT / name for name in files])
    for size in SIZES:
        print(f"$ cd {OUT} && {command} --size {size} -o figures/{size}")
        for name, make in figures_for(runs, compare=compare, size=size).items():
            if only is not None and name not in only:
                print(f"  {name}.pdf/.png (not shown here)")
                continue
            figure = make()
            png = render(figure, "png")                        # 300 dpi, as the command writes it
            (OUT / f"{stem}_{name}_{size}.png").write_bytes(png)
            (OUT / f"{stem}_{name}_{size}.pdf").write_bytes(render(figure, "pdf"))
            width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            shown[f"{stem}_{name}_{size}"] = {"command": f"{command} --size {size} -o figures/{size}",
                                              "inches": [round(v, 3) for v in figure.get_size_inches()],
                                              "pixels": [width, height]}
            print(f"  {name}.pdf/.png: {figure.get_figwidth():.2f} x {figure.get_figheight():.2f} in, "
                  f"PNG {width} x {height} px")
            plt.figure(figure)                                 # pyplot shows it (sphinx-gallery collects it)


# %%
# Three methods, compared
# -----------------------
# Three "methods" produce embeddings of the same five classes: a well-spread one, a noisier
# one, and one squeezed into two directions. Each is analysed with its classes as positive
# groups (so alignment is measured) and saved as JSON with ``--json``; the third file carries a
# ``"name"`` key, which the legend uses instead of the file name.
X, y = gp.datasets.make_simplex_etf(5, 32, PER_CLASS, noise=0.35, random_state=0)
rng = np.random.default_rng(0)
methods = {"simclr": X, "byol": X + 0.6 * rng.standard_normal(X.shape),
           "collapsed": X @ np.linalg.qr(rng.standard_normal((32, 2)))[0] @ rng.standard_normal((2, 32))}
for stem, embeddings in methods.items():
    results = gp.analyze(embeddings, ["spectrum", "contrastive", "knn"], labels=y,
                         params={"contrastive": {"groups": y}})
    saved = results.to_dict()
    if stem == "collapsed":
        saved["name"] = "low-rank $baseline$"        # drawn as written: user text is never mathtext
    (OUT / f"{stem}.json").write_text(json.dumps(saved))
    print(f"{stem}: effective rank {results.scalars()['spectrum/effective_rank']:.1f}, "
          f"alignment {results.scalars()['contrastive/alignment']:.3f}, "
          f"uniformity {results.scalars()['contrastive/uniformity']:.3f}")

# %%
# Overlaid: spectra on one axis (each normalised to its total variance), the pair-cosine
# densities, the headline metrics side by side, and the alignment–uniformity plane of Wang &
# Isola (lower left is better).
show(["simclr.json", "byol.json", "collapsed.json"], compare=True, stem="methods",
     command="geoprobe figures simclr.json byol.json collapsed.json --compare")

# %%
# One run in full: the verdicts
# -----------------------------
# Without ``--compare`` one results file gives every figure it holds the data for (the other
# gallery pages show them); the verdicts are small multiples, each finding on its own scale with
# its null baseline and the warn and fail bands on the side that fails.
show(["simclr.json"], compare=False, stem="single", command="geoprobe figures simclr.json", only=["verdicts"])

# %%
# Runs over training
# ------------------
# :func:`geometry_probe.track` analyses checkpoints in order and records what their numbers
# count (``"step_unit"``: here epochs, from the names ``epoch_3.npy``), which the x axis says.
# Two runs are overlaid, one line per run and metric; the alignment–uniformity plane follows
# each run's path over its checkpoints.
for run, spread in (("run_a", 1.0), ("run_b", 0.4)):
    sources = [(f"{run}/epoch_{epoch}.npy", epoch,
                gp.Embeddings(X * (1 + spread * epoch) + rng.standard_normal(X.shape) / (epoch + 1), labels=y))
               for epoch in range(4)]
    write_track_json(gp.track(sources, ["spectrum", "contrastive"], params={"contrastive": {"groups": y}}),
                     OUT / f"{run}.json")
show(["run_a.json", "run_b.json"], compare=True, stem="training",
     command="geoprobe figures run_a.json run_b.json --compare")

# %%
# Layers across checkpoints
# -------------------------
# ``geoprobe layers --json`` saves one row of metrics per layer. The layer-sweep files of
# three checkpoints, overlaid, give per-layer curves across checkpoints; one file alone also
# gives the spectra of its layers on one axis.
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                            torch.nn.Linear(32, 8))
data = torch.utils.data.TensorDataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y))
for epoch in range(3):
    gp.layer_sweep(model, data, all_layers="Linear", device="cpu").to_json(OUT / f"layers_epoch{epoch}.json")
    with torch.no_grad():
        model[2].weight.mul_(0.5)                 # a middle layer shrinks: its geometry changes downstream
show(["layers_epoch0.json", "layers_epoch1.json", "layers_epoch2.json"], compare=True, stem="layers",
     command="geoprobe figures layers_epoch0.json layers_epoch1.json layers_epoch2.json --compare")
show(["layers_epoch0.json"], compare=False, stem="layer", command="geoprobe figures layers_epoch0.json",
     only=["layer_spectra"])

(OUT / "paper_figures.json").write_text(json.dumps(shown, indent=1) + "\n")
