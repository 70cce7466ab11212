"""
Over-fusion during training: onset and clearing seen by the monitor
===================================================================

CLOA/CLOP (Li & Pimentel-Alarcón, 2024) report a learning-rate threshold beyond which
InfoNCE-style losses *over-fuse*: the embeddings merge onto one point or one line. Here a
SimCLR encoder without a projector (64 → 256 → 64, τ = 0.5, batch 128, SGD with momentum
0.9) trains on scikit-learn's digits for 60 healthy steps at learning rate 0.05, then the
learning rate jumps to 1.0. A :class:`~geometry_probe.CollapseMonitor` (snapshot every 10
steps) watches the embeddings; its over-fusion signal is the top-1 energy of the
L2-normalised, uncentred buffer rows (fail at 0.9, no warning band; isotropic value about 0.03).

Two runs share the first 90 steps:

* **held**: the learning rate stays at 1.0. The embeddings fuse onto one point right after
  the jump (the first snapshot after it fails) and then escape the fused state by
  themselves: the monitor closes the episode and records a ``recovered`` alert;
* **cut back**: the learning rate returns to 0.05 at step 90. The fusion freezes (the
  gradients of a normalised loss at a fused state are small, and a small learning rate
  moves too little to leave it): the episode stays open.

On this seed (3) the held run clears at step 120. Over seeds 0-4 the escape at a held rate
of 1.0 or 1.25 took between 20 and more than 150 steps, and lowering the learning rate
(0.5, 0.2, 0.05), lowering the temperature, adding weight decay or rescaling the last layer
did not bring the geometry back faster (docs/collapse-calibration.md).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import geometry_probe as gp
from geometry_probe.examples import fast, save_figure, save_numbers, train_steps

SEED, WARM_UP, JUMP_LR, BASE_LR, CUT_AT = 3, 60, 1.0, 0.05, 90
STEPS = 130 if fast() else 200
SCHEDULES = {"held": lambda step: BASE_LR if step < WARM_UP else JUMP_LR,
             "cut back": lambda step: BASE_LR if step < WARM_UP else JUMP_LR if step < CUT_AT else BASE_LR}
if fast():
    SCHEDULES = {"held": SCHEDULES["held"]}
RECORD = (WARM_UP, 80, STEPS)


def full_top1_energy(Z: np.ndarray) -> float:
    """The same over-fusion signal on all 1797 embeddings (the diagnosis' 1024-row subsample)."""
    emb = gp.Embeddings(Z)
    [finding] = [f for f in gp.diagnose(gp.analyze(emb, "spectrum"), emb) if f["name"] == "over_fusion"]
    return finding["value"]


runs = {name: train_steps("simclr", schedule, STEPS, seed=SEED, record_at=RECORD)
        for name, schedule in SCHEDULES.items()}

# %%
# What the monitor saw
# --------------------
# One line per snapshot, and the episodes (onset, clearing) it recorded.
for name, run in runs.items():
    print(f"{name}: episodes {[(e['name'], e['onset_step'], e['cleared_step']) for e in run['episodes']]}")
    print("  step  lr     top-1 energy  effective rank  over_fusion")
    for snap in run["history"]:
        verdict = {f["name"]: f["verdict"] for f in snap["findings"]}["over_fusion"]
        print(f"  {snap['step']:4d}  {run['lr'][snap['step'] - 1]:<5g}  {snap['scalars']['buffer/top1_energy']:12.3f}  "
              f"{snap['scalars']['buffer/effective_rank']:14.1f}  {verdict}")
    print("  all 1797 digits:", {step: round(full_top1_energy(Z), 3) for step, Z in run["embeddings"].items()})

# %%
# Signals over steps
# ------------------
# Top: the over-fusion signal of each snapshot with its fail threshold; a dashed line marks
# the onset of an episode, a solid one its clearing. Middle: the effective rank of the
# buffer (a fused embedding uses a handful of directions). Bottom: the learning rates.
fail = gp.diagnosis.THRESHOLDS["over_fusion"][1]
fig, axes = plt.subplots(3, 1, figsize=(6, 5.5), sharex=True, layout="constrained",
                         gridspec_kw={"height_ratios": (2, 1.3, 1)})
for (name, run), colour in zip(runs.items(), ("C0", "C1")):
    steps = [snap["step"] for snap in run["history"]]
    axes[0].plot(steps, [snap["scalars"]["buffer/top1_energy"] for snap in run["history"]], marker="o", ms=3,
                 color=colour, label=name)
    axes[1].plot(steps, [snap["scalars"]["buffer/effective_rank"] for snap in run["history"]], marker="o", ms=3,
                 color=colour)
    axes[2].plot(range(1, STEPS + 1), run["lr"], color=colour, drawstyle="steps-post")
    for episode in run["episodes"]:
        if episode["name"] != "over_fusion":
            continue
        axes[0].axvline(episode["onset_step"], color=colour, ls="--", lw=1)
        if episode["cleared_step"] is not None:
            axes[0].axvline(episode["cleared_step"], color=colour, lw=1.5)
axes[0].plot([], [], color="k", ls="--", lw=1, label="episode onset")
axes[0].plot([], [], color="k", lw=1.5, label="episode cleared")
axes[0].axhline(fail, color="k", ls=":", lw=0.8, label=f"fail ({fail})")
axes[0].set(ylabel="top-1 energy", ylim=(0, 1.02),
            title=f"SimCLR on digits, lr {BASE_LR} → {JUMP_LR} at step {WARM_UP}")
axes[0].legend(fontsize=7, loc="lower left")
axes[1].set(ylabel="effective rank")
axes[2].set(ylabel="learning rate", yscale="log", xlabel="training step")
save_figure(fig, "overfusion_monitor")

save_numbers({name: {"episodes": run["episodes"], "lr_at_snapshot": [run["lr"][s["step"] - 1] for s in run["history"]],
                     "steps": [s["step"] for s in run["history"]],
                     "top1_energy": [s["scalars"]["buffer/top1_energy"] for s in run["history"]],
                     "effective_rank": [s["scalars"]["buffer/effective_rank"] for s in run["history"]],
                     "full_top1_energy": {str(step): full_top1_energy(Z) for step, Z in run["embeddings"].items()}}
              for name, run in runs.items()}, "overfusion_monitor")
