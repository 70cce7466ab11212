"""
Effective rank and dimensional collapse
=======================================

How many of its D directions does an embedding really use? The effective rank (Roy &
Vetterli 2007) is :math:`\\exp H(p)`, the exponential of the entropy of the normalised
singular values :math:`p_k = \\sigma_k / \\sum_j \\sigma_j`; RankMe (Garrido et al. 2023) is the
same quantity on the uncentred matrix. Both equal k when exactly k singular values are equal
and the rest are zero, so they read as "number of directions used".

We first check both against their closed form on generated data whose spectrum we set
exactly, then watch a SimCLR encoder without a projector (the setting in which Jing et al.,
ICLR 2022, describe dimensional collapse) on scikit-learn's digits, against the isotropic null:
a Gaussian of the same size, the value a healthy, structureless embedding would have.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import geometry_probe as gp
from geometry_probe.reporting import static
from geometry_probe.examples import fast, save_figure, save_numbers, train

N, D = (500, 32) if fast() else (2000, 64)
TAILS = (1e-6, 1e-2)      # singular value of every "collapsed" direction, relative to 1 for a live one
rng = np.random.default_rng(0)


def with_spectrum(singular_values: np.ndarray) -> np.ndarray:
    """N rows, centred columns, whose singular values are exactly ``singular_values``."""
    centred = rng.standard_normal((N, D))
    left, _ = np.linalg.qr(centred - centred.mean(axis=0))        # (N, D) orthonormal, columns centred
    right, _ = np.linalg.qr(rng.standard_normal((D, D)))           # a random rotation
    return (left * singular_values) @ right.T


def closed_form(singular_values: np.ndarray) -> float:
    p = singular_values / singular_values.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def ranks(X: np.ndarray) -> tuple[float, float]:
    scalars = gp.analyze(X, ["spectrum"], precision="float64", verdicts=False).scalars()   # no findings needed
    return scalars["spectrum/effective_rank"], scalars["spectrum/rankme"]


# %%
# k live directions out of D
# --------------------------
# k singular values equal to 1 and D − k equal to a small ``tail``: the embedding has collapsed
# onto k directions. The closed form is :math:`\exp H(p)` of that spectrum. With a tail of
# 1e-6 it is k; with a tail of 1 % the many small directions carry enough entropy to lift the
# count far above k when k is small (about 9.7 for k = 1 in 64 dims): the singular-value
# entropy is sensitive to a floor of noise, so compare with a null, never with k alone.
live = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= D]
collapsed = {tail: {"effective_rank": [], "rankme": [], "closed_form": []} for tail in TAILS}
for tail in TAILS:
    for k in live:
        spectrum = np.where(np.arange(D) < k, 1.0, tail)
        er, rankme = ranks(with_spectrum(spectrum))
        collapsed[tail]["effective_rank"].append(er)
        collapsed[tail]["rankme"].append(rankme)
        collapsed[tail]["closed_form"].append(closed_form(spectrum))
        print(f"tail {tail:g}, k = {k:2d}: effective rank {er:7.3f}  RankMe {rankme:7.3f}  "
              f"closed form {closed_form(spectrum):7.3f}")

# %%
# A power-law spectrum
# --------------------
# :math:`\sigma_i \propto i^{-\alpha}`: no direction is exactly dead, but the faster the decay,
# the fewer directions carry the variance. α = 0 is a perfectly isotropic spectrum (rank D).
alphas = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]
decay = {"effective_rank": [], "rankme": [], "closed_form": []}
for alpha in alphas:
    spectrum = np.arange(1, D + 1, dtype=np.float64) ** -alpha
    er, rankme = ranks(with_spectrum(spectrum))
    decay["effective_rank"].append(er)
    decay["rankme"].append(rankme)
    decay["closed_form"].append(closed_form(spectrum))
    print(f"alpha = {alpha:4.2f}: effective rank {er:7.3f}  closed form {closed_form(spectrum):7.3f}")

# %%
# The isotropic null
# ------------------
# A standard Gaussian of the same N × D does *not* reach D: its sample singular values spread
# (Marchenko–Pastur), so the isotropic null is a little below D. That, not D, is the value to
# compare a healthy embedding with.
null_er, null_rankme = ranks(gp.datasets.make_isotropic(N, D, random_state=1))
print(f"isotropic Gaussian {N} x {D}: effective rank {null_er:.2f}, RankMe {null_rankme:.2f}")

# %%
# SimCLR without a projector on digits
# ------------------------------------
# The encoder's output (1797 × 64) is measured after every epoch; the dashed line is the
# isotropic null of the same size. A researcher should see the effective rank sit far below
# the null: the contrastive loss uses a few dominant directions and leaves most of the 64
# nearly empty, the dimensional collapse a projector is meant to absorb.
EPOCHS = 2 if fast() else 12
simclr = train("simclr", epochs=EPOCHS, lr=0.05, analyzers=None)
simclr_er, simclr_rankme = (list(values) for values in zip(*(ranks(row["embeddings"]) for row in simclr["epochs"])))
digits_null, _ = ranks(gp.datasets.make_isotropic(1797, 64, random_state=1))
final = gp.analyze(simclr["epochs"][-1]["embeddings"], ["spectrum"], precision="float64", verdicts=False)
print("SimCLR effective rank per epoch:", np.round(simclr_er, 2))
print(f"isotropic null 1797 x 64: {digits_null:.2f}; "
      f"collapsed dims at the end: {final.scalars()['spectrum/collapsed_dims']:.0f}")

# %%
# The figure
# ----------
# Left and middle: the measured values lie on the closed form (markers on the line); right:
# a real encoder against its null.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), layout="constrained")
ax = axes[0]
for tail, colour in zip(TAILS, ("C0", "C1")):
    ax.plot(live, collapsed[tail]["closed_form"], color="k", lw=1)
    ax.plot(live, collapsed[tail]["effective_rank"], "o", color=colour, label=f"effective rank, tail {tail:g}")
    ax.plot(live, collapsed[tail]["rankme"], "x", color=colour, ms=8, label=f"RankMe, tail {tail:g}")
ax.plot([], [], color="k", lw=1, label="closed form exp H(p)")
ax.axhline(null_er, color="C2", ls="--", label=f"isotropic null ({null_er:.1f})")
ax.set(xscale="log", yscale="log", xlabel="live directions k", ylabel="rank", title=f"k of {D} directions live")
ax.legend(fontsize=7)
ax = axes[1]
ax.plot(alphas, decay["closed_form"], color="k", lw=1, label="closed form")
ax.plot(alphas, decay["effective_rank"], "o", label="effective rank")
ax.plot(alphas, decay["rankme"], "x", label="RankMe")
ax.axhline(null_er, color="C2", ls="--", label="isotropic null")
ax.set(yscale="log", xlabel="decay exponent α (σᵢ ∝ i^−α)", title="power-law spectrum")
ax.legend(fontsize=7)
ax = axes[2]
ax.plot(range(EPOCHS), simclr_er, marker="o", ms=3, label="effective rank")
ax.plot(range(EPOCHS), simclr_rankme, marker="x", ms=4, label="RankMe")
ax.axhline(digits_null, color="C2", ls="--", label=f"isotropic null ({digits_null:.1f})")
ax.set(ylim=(0, 70), xlabel="epoch", title="SimCLR on digits, no projector (D = 64)")
ax.legend(fontsize=7)
save_figure(fig, "effective_rank")

# %%
# The spectrum behind the last number: eigenvalues of the SimCLR embeddings against an
# isotropic Gaussian of the same N, D and total variance.
save_figure(static.plot_spectrum(final), "effective_rank_simclr_spectrum")

save_numbers({"n_samples": N, "n_features": D, "live": live,
              "collapsed": [{"tail": tail, **collapsed[tail]} for tail in TAILS],
              "alphas": alphas, "decay": decay, "isotropic_null": null_er, "isotropic_null_rankme": null_rankme,
              "simclr_effective_rank": simclr_er, "simclr_rankme": simclr_rankme, "digits_null": digits_null},
             "effective_rank")
