"""
Neural collapse over training (cross-entropy on digits)
========================================================

Papyan, Han & Donoho (PNAS 2020) observed four things in the last-layer features of networks
trained with cross-entropy past zero training error:

* **NC1** the within-class variability shrinks relative to the between-class spread;
* **NC2** the centred class means approach a simplex equiangular tight frame (ETF);
* **NC3** the classifier rows line up with the class means (self-duality);
* **NC4** the classifier acts as a nearest-class-centre rule.

Here a small MLP (64 → 256 → 64, ReLU, linear head) is trained with cross-entropy on
scikit-learn's digits, and :func:`geometry_probe.analyze` measures all four on the features the
head reads, :math:`h = \\mathrm{ReLU}(z)`, after every epoch, with the head's weights and bias
as the classifier.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import geometry_probe as gp
from geometry_probe.examples import fast, save_figure, save_numbers, train

EPOCHS = 4 if fast() else 30
run = train("ce", epochs=EPOCHS, lr=0.05, analyzers=None)
labels = run["labels"]

# %%
# Measure every epoch
# -------------------
# ``params={"neural_collapse": {"classifier": (W, b)}}`` adds NC3 and NC4 to NC1, NC2 and the
# nearest-class-centre (NCC) accuracy. The training error is that of the head itself.
KEYS = ("nc1", "nc2_etf_error", "nc2_equinorm", "nc2_equiangular", "nc3", "nc4_agreement", "ncc_accuracy")
curves: dict[str, list[float]] = {key: [] for key in (*KEYS, "train_error")}
for row in run["epochs"]:
    features = np.maximum(row["embeddings"], 0.0).astype(np.float64)
    weight, bias = row["classifier"]
    scalars = gp.analyze(features, ["neural_collapse"], labels=labels, precision="float64", verdicts=False,
                         params={"neural_collapse": {"classifier": (weight, bias)}}).scalars()
    for key in KEYS:
        curves[key].append(scalars[f"neural_collapse/{key}"])
    curves["train_error"].append(float(np.mean(np.argmax(features @ weight.T + bias, axis=1) != labels)))

print("epoch   nc1    nc2_etf  nc3    nc4_agree  ncc_acc  train_err")
for epoch in range(EPOCHS):
    print(f"{epoch:5d}  {curves['nc1'][epoch]:.3f}  {curves['nc2_etf_error'][epoch]:.3f}    "
          f"{curves['nc3'][epoch]:.3f}  {curves['nc4_agreement'][epoch]:.3f}      "
          f"{curves['ncc_accuracy'][epoch]:.3f}    {curves['train_error'][epoch]:.4f}")

# %%
# Four panels, one per phenomenon
# -------------------------------
# What to look for: NC1 falls steeply while the training error goes to zero and then levels
# off; NC3 (the distance between the normalised classifier and the normalised centred means,
# 0 when they coincide) drops from about 0.9 to under 0.2 within a few epochs; NC4's mismatch
# (1 − agreement between the head and the nearest class centre) falls to about 1-2 %. NC2 is
# the slow one: the ETF error of the centred means stays near 0.8 (0 is a simplex ETF, about
# 1.4 is as far as it gets) in this short run without weight decay. Papyan et al. reach the
# ETF after hundreds of epochs in the terminal phase; a short run shows the first three
# phenomena, not the fourth, and the numbers say so.
epochs = np.arange(EPOCHS)
fig, axes = plt.subplots(1, 4, figsize=(13, 3.0), layout="constrained")
axes[0].semilogy(epochs, curves["nc1"], marker="o", ms=3)
axes[0].set_title("NC1: Tr(Σ_W Σ_B⁺)/C")
axes[1].plot(epochs, curves["nc2_etf_error"], marker="o", ms=3, label="ETF error")
axes[1].plot(epochs, curves["nc2_equinorm"], marker="s", ms=3, label="equinorm (CV of norms)")
axes[1].plot(epochs, curves["nc2_equiangular"], marker="^", ms=3, label="equiangular (std of cosines)")
axes[1].set_title("NC2: centred class means vs simplex ETF")
axes[1].legend(fontsize=7)
axes[2].plot(epochs, curves["nc3"], marker="o", ms=3)
axes[2].set_title("NC3: ‖W/‖W‖ − M/‖M‖‖²")
mismatch = 1.0 - np.asarray(curves["nc4_agreement"])
axes[3].semilogy(epochs, np.maximum(mismatch, 1e-4), marker="o", ms=3, label="head ≠ nearest centre")
axes[3].semilogy(epochs, np.maximum(curves["train_error"], 1e-4), marker="s", ms=3, label="training error")
axes[3].set_title("NC4 and training error")
axes[3].legend(fontsize=7)
for ax in axes:
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
save_figure(fig, "neural_collapse_epochs")

save_numbers({"epochs": EPOCHS, **curves}, "neural_collapse")
