"""The CKA heatmaps of the guide (docs/guide/compare.md), from a real training run.

An MLP (64 → 256 → 256 → 128 → 10) is trained on scikit-learn's digits (1797 images, shipped
with scikit-learn) for 30 epochs, seed 0. Figures:

* layer × layer linear CKA of the trained network (``geoprobe layers … --compare``'s matrix),
* checkpoint × checkpoint linear CKA of the penultimate layer at epochs 0, 1, 2, 4, 8, 16, 30
  (``geoprobe compare ckpt_*.npy --matrix``'s matrix, here from in-memory checkpoints),

each as PNG, written to docs/guide/figures/ (``.plot('x.html')`` gives the interactive twin).

Run: python benchmarks/compare_heatmaps.py
"""

from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import geometry_probe as gp

OUT = Path(__file__).resolve().parent.parent / "docs" / "guide" / "figures"
EPOCHS = (0, 1, 2, 4, 8, 16, 30)


def main():
    torch.manual_seed(0)
    digits = load_digits()
    X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 128),
                          nn.ReLU(), nn.Linear(128, 10))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    penultimate = {}
    for epoch in range(max(EPOCHS) + 1):
        if epoch in EPOCHS:
            with torch.no_grad():
                penultimate[f"epoch_{epoch:02d}"] = model[:6](X).clone()
        for batch in torch.randperm(len(X)).split(64):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
            optimiser.step()
    OUT.mkdir(parents=True, exist_ok=True)
    sweep = gp.layer_sweep(model, torch.utils.data.TensorDataset(X, y), all_layers="Linear", device="cpu",
                           compare=True)
    sweep.cka.plot(OUT / "compare_layers.png")
    track = gp.cka_matrix(list(penultimate.values()), list(penultimate), kind="checkpoints", device="cpu")
    track.plot(OUT / "compare_checkpoints.png")
    print("layers:", sweep.cka.names)
    print(sweep.cka.values.round(3))
    print("checkpoints:", track.names)
    print(track.values.round(3))


if __name__ == "__main__":
    main()
