"""
Collapse on real training runs: three small encoders on sklearn's digits
=========================================================================

Trains, on CPU in about a minute, the three runs the collapse verdicts were calibrated on:

(a) cross-entropy: neural collapse develops (NC1 falls, NCC accuracy rises);
(b) SimCLR / InfoNCE without a projector: healthy at learning rate 0.05; at a large learning
    rate (3 or 20, SGD with momentum) the embeddings over-fuse, the failure CLOA describes, and
    the monitor flags it at its first snapshot (step 14) and at every one after (onset and
    clearing after a learning-rate jump: ``plot_overfusion_monitor.py``);
(c) supervised contrastive: at these settings (linear output, τ 0.1, batch 128, 8 epochs) the
    class means barely move; with a ReLU before the normalisation, τ 0.5, lr 0.5 and batch 512
    they approach an orthogonal frame (``train_steps``; docs/collapse-calibration.md).

Run as a script: ``python gallery/train_digits.py`` prints one line per epoch.
"""

# %%
from __future__ import annotations

import numpy as np

import geometry_probe as gp
from geometry_probe.examples import augment, digits, encoder, info_nce, sup_con, train, train_steps

__all__ = ["augment", "digits", "encoder", "info_nce", "sup_con", "train", "train_steps"]


# %%
# Run all four settings and draw the over-fusion signal per epoch.
if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {
        "cross-entropy": train("ce", lr=0.05, epochs=12, log=True),
        "SimCLR lr=0.05": train("simclr", lr=0.05, log=True),
        "SimCLR lr=3": train("simclr", lr=3.0, log=True),
        "SimCLR lr=20": train("simclr", lr=20.0, log=True),
        "SupCon": train("supcon", lr=0.05, log=True),
    }
    for name, run in runs.items():
        steps = [a["step"] for a in run["alerts"] if a["name"] == "over_fusion"]
        print(f"{name}: monitor over-fusion alerts at steps {steps}")
    fig, ax = plt.subplots(figsize=(3.3, 2.4))
    for name, run in runs.items():
        ax.plot([e["verdicts"]["over_fusion"][1] for e in run["epochs"]], marker="o", ms=3, label=name)
    ax.axhline(gp.diagnosis.THRESHOLDS["over_fusion"][1], color="k", lw=0.8, ls="--", label="fail threshold")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 energy on the sphere")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig("digits_over_fusion.png", dpi=150)
    print(np.round([e["scalars"]["neural_collapse/nc1"] for e in runs["cross-entropy"]["epochs"]], 3))
