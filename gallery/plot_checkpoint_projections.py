"""
One run, many checkpoints, one map
==================================

Maps of successive checkpoints are only comparable if they share a layout: fitted anew, PCA
may flip or rotate its axes and t-SNE or UMAP may place the clusters anywhere. Passing
``reference=`` to :func:`geometry_probe.project` places a later checkpoint's embeddings into
the map fitted on an earlier one (PCA keeps the first checkpoint's mean and axes; t-SNE and
UMAP use their ``transform``), so motion in the figure is motion of the embeddings.

Here an encoder is trained with cross-entropy on scikit-learn's digits, its embeddings are
kept after every epoch, and every checkpoint is drawn in the PCA map of the first one.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import geometry_probe as gp
from geometry_probe.examples import fast, save_figure, save_numbers, train

EPOCHS = 3 if fast() else 20
CHECKPOINTS = [0, 1, 2] if fast() else [0, 1, 2, 4, 9, 19]
run = train("ce", epochs=EPOCHS, lr=0.05, analyzers=None)
checkpoints = {epoch: gp.Embeddings(run["epochs"][epoch]["embeddings"], labels=run["labels"], name=f"epoch {epoch}")
               for epoch in CHECKPOINTS}

# %%
# Fit the first map, reuse it for the others
# ------------------------------------------
# The first checkpoint placed into its own map gives back exactly its coordinates; a
# checkpoint's own PCA would capture more variance than the fixed layout does (by Ky Fan's
# maximum principle, no 2-D projection beats the top two principal axes), and the gap says
# how far the embeddings have turned away from the first map's axes.
first = gp.project(checkpoints[CHECKPOINTS[0]], "pca")
maps = {epoch: gp.project(emb, "pca", reference=first) for epoch, emb in checkpoints.items()}
self_placement_error = float(np.max(np.abs(maps[CHECKPOINTS[0]].coords - first.coords)))
captured, best, trust = [], [], []
for epoch, emb in checkpoints.items():
    X = np.asarray(emb.X, dtype=np.float64)
    eigenvalues = np.linalg.eigvalsh(np.cov(X, rowvar=False))[::-1]
    captured.append(float(np.var(maps[epoch].coords, axis=0, ddof=1).sum() / eigenvalues.sum()))
    best.append(float(eigenvalues[:2].sum() / eigenvalues.sum()))
    trust.append(maps[epoch].trustworthiness)
    print(f"epoch {epoch:2d}: variance in the fixed map {captured[-1]:.3f} (own top-2 PCs {best[-1]:.3f}), "
          f"trustworthiness {trust[-1]:.3f}")
print(f"first checkpoint placed into its own map: max |difference| = {self_placement_error:.2e}")

# %%
# The figure
# ----------
# One panel per checkpoint, same axes everywhere. What to look for: the digits start as
# overlapping clouds and separate into tight clusters that move outwards along the first
# map's axes as training proceeds; the share of variance the fixed map shows drops below the
# checkpoint's own best when the embeddings grow new directions the first map cannot see.
all_coords = np.concatenate([m.coords for m in maps.values()])
low, high = np.percentile(all_coords, [0.5, 99.5], axis=0)
pad = 0.05 * (high - low)
fig, axes = plt.subplots(1, len(CHECKPOINTS), figsize=(2.3 * len(CHECKPOINTS), 2.6), layout="constrained",
                         sharex=True, sharey=True, squeeze=False)
for ax, (epoch, projection) in zip(axes[0], maps.items()):
    points = ax.scatter(*projection.coords.T, c=projection.labels, cmap="tab10", s=2, vmin=-0.5, vmax=9.5,
                        rasterized=True)
    ax.set_title(f"epoch {epoch}", fontsize=9)
    ax.set(xlim=(low[0] - pad[0], high[0] + pad[0]), ylim=(low[1] - pad[1], high[1] + pad[1]))
    ax.tick_params(labelsize=7)
axes[0, 0].set_ylabel(f"PC 2 of epoch {CHECKPOINTS[0]}")
axes[0, len(CHECKPOINTS) // 2].set_xlabel(f"PC 1 of epoch {CHECKPOINTS[0]}")
fig.colorbar(points, ax=axes[0].tolist(), ticks=range(10), label="digit", shrink=0.9)
save_figure(fig, "checkpoint_projections")

save_numbers({"checkpoints": CHECKPOINTS, "variance_in_fixed_map": captured, "variance_in_own_top2": best,
              "trustworthiness": trust, "self_placement_error": self_placement_error,
              "reused_layout": [maps[e].params["reused_layout"] for e in CHECKPOINTS]}, "checkpoint_projections")
