"""
Alignment and uniformity versus temperature (SimCLR on digits)
===============================================================

Wang & Isola (ICML 2020) split a contrastive loss into two properties of the unit-normalised
embeddings: **alignment**, the mean squared distance between the two views of an image
(0 is perfect), and **uniformity**, :math:`\\log` of the mean Gaussian potential
:math:`e^{-2\\lVert \\hat z_i - \\hat z_j\\rVert^2}` over pairs (0 when everything sits on
one point, about −4 when the points fill a high-dimensional sphere evenly).

The temperature τ of InfoNCE trades one for the other. Here one small encoder is trained with
SimCLR on scikit-learn's digits at each of several temperatures, and
:func:`geometry_probe.analyze` places each run in the alignment–uniformity plane, coloured by
the leave-one-out kNN accuracy of its embeddings (a label-aware check the loss never sees).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy.special import hyp0f1

import geometry_probe as gp
from geometry_probe.examples import fast, positive_views, save_figure, save_numbers, train

TEMPERATURES = [0.1, 1.0] if fast() else [0.05, 0.1, 0.2, 0.5, 1.0]
EPOCHS = 2 if fast() else 25
LR_PER_TAU = 0.1

# %%
# Train and measure
# -----------------
# The gradient of InfoNCE scales as 1/τ, so the learning rate is scaled with τ
# (``lr = 0.1 τ``) to keep the step size comparable; with one learning rate for all (0.05),
# τ ≤ 0.1 fuses the embeddings onto nearly one point (τ = 0.05: alignment 0.001, uniformity
# −0.003): the over-fusion failure, not a temperature effect. Alignment needs positive pairs:
# two fresh augmented views of every digit through the trained encoder, passed as ``views``.
# Uniformity is computed on the first view over all 1797·1796/2 pairs (exactly); the kNN
# accuracy on the clean images.
rows = []
for tau in TEMPERATURES:
    run = train("simclr", epochs=EPOCHS, lr=LR_PER_TAU * tau, temperature=tau, analyzers=None)
    first, second = positive_views(run["encoder"])
    pairs = gp.analyze(first, ["contrastive"], params={"contrastive": {"views": second}}, verdicts=False).scalars()
    clean = gp.analyze(run["epochs"][-1]["embeddings"], ["knn", "spectrum"], labels=run["labels"],
                       verdicts=False).scalars()
    rows.append({"temperature": tau, "alignment": pairs["contrastive/alignment"],
                 "uniformity": pairs["contrastive/uniformity"], "pos_neg_gap": pairs["contrastive/pos_neg_gap"],
                 "knn_accuracy": clean["knn/accuracy"], "effective_rank": clean["spectrum/effective_rank"]})
    print(f"tau = {tau:<5}  alignment {rows[-1]['alignment']:.3f}  uniformity {rows[-1]['uniformity']:.3f}  "
          f"kNN accuracy {rows[-1]['knn_accuracy']:.3f}  effective rank {rows[-1]['effective_rank']:.1f}")

# %%
# Reference values
# ----------------
# Two closed forms frame the uniformity axis. Points spread uniformly on the sphere
# :math:`S^{m-1}` have :math:`-2t + \ln {}_0F_1(; m/2; t^2)` with t = 2 (−3.875 for m = 64).
# No N points can go below :math:`-4N/(N-1)`: by Jensen's inequality the mean potential is at
# least :math:`e^{-4 + 4\bar c}`, and the mean pairwise cosine :math:`\bar c` is at least
# :math:`-1/(N-1)` because :math:`\lVert \sum_i \hat z_i\rVert^2 \ge 0`.
n_rows, dim = first.shape
uniform_sphere = -4.0 + float(np.log(hyp0f1(dim / 2, 4.0)))
lower_bound = -4.0 * n_rows / (n_rows - 1)
print(f"uniform on S^{dim - 1}: {uniform_sphere:.3f};  lower bound for N = {n_rows}: {lower_bound:.4f}")

# %%
# The alignment–uniformity plane
# ------------------------------
# Down and to the left is better on both axes, and no run gets both. From τ = 0.2 upwards the
# runs show Wang & Isola's trade-off: a larger τ holds the two views of an image closer
# (alignment falls from about 0.64 to 0.54) and lets the cloud spread less evenly (uniformity
# rises from about −2.5 to −2.1, against −3.9 for a uniform spread). Below τ = 0.2, with the
# learning rate scaled down, 25 epochs have not spread the cloud yet: the views agree best
# there but the embeddings still sit in a cap of the sphere (uniformity about −1.1 at
# τ = 0.05). The kNN accuracy, which the loss never sees, is highest at small τ and falls as τ
# grows, together with the effective rank: on digits, views that agree matter more than a
# sphere filled evenly.
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
ax = axes[0]
x = [row["uniformity"] for row in rows]
y = [row["alignment"] for row in rows]
points = ax.scatter(x, y, c=[row["knn_accuracy"] for row in rows], cmap="viridis", s=60, zorder=3)
ax.plot(x, y, color="0.6", lw=0.8, zorder=2)
for i, row in enumerate(rows):      # labels alternate sides so that neighbouring runs stay readable
    ax.annotate(f"τ={row['temperature']:g}", (row["uniformity"], row["alignment"]), textcoords="offset points",
                xytext=(-6, 4) if i % 2 else (6, 4), ha="right" if i % 2 else "left", fontsize=8)
ax.axvline(uniform_sphere, color="k", ls="--", lw=0.8, label=f"uniform on S^{dim - 1} ({uniform_sphere:.2f})")
ax.set(xlabel="uniformity (lower = more uniform)", ylabel="alignment (lower = views closer)",
       title="Wang–Isola plane, SimCLR on digits")
ax.set_xlim(lower_bound - 0.1, 0.1)
ax.margins(y=0.15)
ax.legend(fontsize=7, loc="lower left")
fig.colorbar(points, ax=ax, label="kNN accuracy")
ax = axes[1]
taus = [row["temperature"] for row in rows]
ax.semilogx(taus, [row["knn_accuracy"] for row in rows], marker="o", label="kNN accuracy")
ax.semilogx(taus, [row["effective_rank"] / dim for row in rows], marker="s", label=f"effective rank / {dim}")
ax.set(xlabel="temperature τ", ylim=(0, 1.05), title="downstream quality and rank")
ax.legend(fontsize=7)
save_figure(fig, "uniformity_temperature")

save_numbers({"epochs": EPOCHS, "lr_per_tau": LR_PER_TAU, "n_samples": n_rows, "n_features": dim, "runs": rows,
              "uniform_sphere": uniform_sphere, "lower_bound": lower_bound}, "uniformity_temperature")
