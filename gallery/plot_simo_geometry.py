"""
Class geometry: orthogonal frame or simplex ETF? (SupCon and cross-entropy on digits)
======================================================================================

Two ideal arrangements of C class means are studied in the literature: the **orthogonal
frame** (OF), class means mutually orthogonal, which SimO-style losses aim for and which
ReLU features reach under supervised contrastive training (Kini et al., ICLR 2024); and the **simplex
equiangular tight frame** (ETF), pairwise cosine exactly :math:`-1/(C-1)`, the end point of
neural collapse. The ``orthogonality`` analyzer measures how far the class means of unit-norm
embeddings are from each, as the Frobenius distance between normalised Gram matrices
(0 at the ideal; at most √2, since the inner product of two positive semi-definite matrices is
never negative).

We train the same encoder on scikit-learn's digits with cross-entropy, with supervised
contrastive (SupCon) loss, and with SupCon on non-negative embeddings (a ReLU at the output),
and compare all three with the two ideals, generated exactly. Theory predicts that SupCon's
class means head for the simplex ETF (Graf et al., ICML 2021) unless the embeddings are
non-negative, in which case they head for the orthogonal frame (Kini et al.).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import geometry_probe as gp
from geometry_probe.reporting import static
from geometry_probe.examples import fast, save_figure, save_numbers, train, train_steps

# %%
# Three encoders
# --------------
# Cross-entropy as in the neural-collapse example; SupCon with learning rate 0.5, τ = 0.5 and
# batches of 512 for 600 SGD steps (about 170 epochs of digits), with and without a ReLU on
# the output.
EPOCHS, STEPS = (2, 60) if fast() else (30, 600)
C = 10
ce = train("ce", epochs=EPOCHS, lr=0.05, analyzers=None)
embeddings = {"cross-entropy": ce["epochs"][-1]["embeddings"]}
for name, relu in (("SupCon", False), ("SupCon + ReLU", True)):
    supcon = train_steps("supcon", lambda step: 0.5, STEPS, temperature=0.5, batch_size=512, output_relu=relu,
                         record_at=(STEPS,))
    embeddings[name] = supcon["embeddings"][STEPS]
TRAINED = list(embeddings)

# %%
# The two ideals, exactly
# -----------------------
# An orthogonal frame :math:`\mu_c = e_c` and a simplex ETF from
# :func:`geometry_probe.datasets.make_simplex_etf`, both noise-free in 64 dimensions. Each is
# at distance 0 from itself and at :math:`\sqrt{2 - 2\sqrt{(C-1)/C}}` (0.320 for C = 10) from
# the other: the two ideals are close as Gram matrices, so a distance of 1 is far from both.
labels = np.repeat(np.arange(C), 20)
frame = np.eye(64)[labels]
etf, _ = gp.datasets.make_simplex_etf(n_classes=C, n_features=64, n_per_class=20)
between_ideals = float(np.sqrt(2 - 2 * np.sqrt((C - 1) / C)))
data = {name: (Z, ce["labels"]) for name, Z in embeddings.items()}
data["ideal orthogonal frame"] = (frame, labels)
data["ideal simplex ETF"] = (etf, labels)

results = {name: gp.analyze(X, ["orthogonality", "neural_collapse"], labels=y, precision="float64", verdicts=False)
           for name, (X, y) in data.items()}
print(f"closed-form distance between the ideals: {between_ideals:.4f}")
for name, res in results.items():
    s = res.scalars()
    print(f"{name:24s} OF distance {s['orthogonality/of_distance']:.3f}  "
          f"ETF distance {s['orthogonality/etf_distance']:.3f}  "
          f"mean |cos| {s['orthogonality/class_mean_abs_cosine']:.3f}  centred ETF error (NC2) "
          f"{s['neural_collapse/nc2_etf_error']:.3f}")

# %%
# Class-mean cosines and distances
# --------------------------------
# The heatmaps show the cosine between the class means (of the unit-normalised embeddings).
# What to look for: an orthogonal frame is the identity (white off the diagonal), a simplex ETF
# has a uniform light blue off the diagonal (−1/9). The cross-entropy encoder shows a red
# off-diagonal: its class means share a common direction (mean absolute cosine about 0.5), so
# it sits about 1 from *either* ideal. SupCon with the ReLU comes closest to the orthogonal
# frame (distance about 0.44 against 0.66 to the ETF), as Kini et al. predict for non-negative
# embeddings; without the ReLU SupCon is slightly nearer the ETF than the frame (about 0.63
# against 0.67) but far from both: 600 steps start the path, they do not finish it. Judge
# orthogonality on these distances, not on accuracy: all three encoders classify digits well
# (nearest-class-centre accuracy above 0.9).
fig, axes = plt.subplots(1, 4, figsize=(15, 3.4), layout="constrained", width_ratios=[1, 1, 1, 1.4])
for ax, name in zip(axes, TRAINED):
    cosine = results[name]["orthogonality"].arrays["class_mean_cosine"]
    image = ax.imshow(cosine, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set(title=name, xticks=range(C), yticks=range(C), xlabel="digit", ylabel="digit")
    ax.tick_params(labelsize=7)
fig.colorbar(image, ax=axes[:3], shrink=0.8, label="cosine of class means")
names = list(results)
distances = {key: [results[name].scalars()[f"orthogonality/{key}"] for name in names]
             for key in ("of_distance", "etf_distance")}
positions = np.arange(len(names))
bars = axes[3]
bars.barh(positions - 0.2, distances["of_distance"], height=0.4, label="distance to orthogonal frame")
bars.barh(positions + 0.2, distances["etf_distance"], height=0.4, label="distance to simplex ETF")
bars.set_yticks(positions, names, fontsize=8)
bars.invert_yaxis()
bars.set(xlim=(0, np.sqrt(2)), xlabel="Frobenius distance of normalised Gram matrices")
bars.legend(fontsize=7, loc="lower right")
save_figure(fig, "simo_class_geometry")

# %%
# SimO's matrices
# ---------------
# :func:`geometry_probe.reporting.static.plot_simo` draws SimO's two class-mean matrices for
# the SupCon + ReLU encoder: squared dot products (0 off the diagonal for an orthogonal frame)
# and squared distances (2 off the diagonal for orthogonal unit means; the means of unit rows
# are shorter than 1, so the off-diagonal distances stay below 2 here).
save_figure(static.plot_simo(results["SupCon + ReLU"]), "simo_matrices_supcon_relu")

save_numbers({"epochs": EPOCHS, "steps": STEPS, "n_classes": C, "between_ideals": between_ideals,
              "runs": {name: {"scalars": res.scalars(),
                              "class_mean_cosine": res["orthogonality"].arrays["class_mean_cosine"],
                              "simo_sqdot": res["orthogonality"].arrays["simo_sqdot"],
                              "simo_distance": res["orthogonality"].arrays["simo_distance"]}
                       for name, res in results.items()}}, "simo_geometry")
