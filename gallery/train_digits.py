"""
Collapse on real training runs: three small encoders on sklearn's digits
=========================================================================

Trains, on CPU in about a minute, the three runs the collapse verdicts were calibrated on:

(a) cross-entropy: neural collapse develops (NC1 falls, NCC accuracy rises);
(b) SimCLR / InfoNCE without a projector: healthy at learning rate 0.05; at a large learning
    rate (3 or 20, SGD with momentum) the embeddings over-fuse, the failure CLOA describes, and
    the monitor flags it at its first snapshot (step 14) and at every one after;
(c) supervised contrastive: the class means approach an orthogonal frame.

Run as a script: ``python gallery/train_digits.py`` prints one line per epoch.
"""

# %%
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import geometry_probe as gp


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Images scaled to [0, 1] (1797 × 64) and labels."""
    data = load_digits()
    return torch.tensor(data.data / 16.0, dtype=torch.float32), torch.tensor(data.target)


def augment(x: torch.Tensor) -> torch.Tensor:
    """A view of a batch of 8×8 digits: a random shift of up to one pixel, 20% masking, noise."""
    img = x.view(-1, 8, 8)
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,)))
    img = torch.roll(img, shifts=(dy, dx), dims=(1, 2))
    img = img * (torch.rand_like(img) > 0.2) + 0.1 * torch.randn_like(img)
    return img.reshape(-1, 64)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B views; the positive of view i is the other view of the same image."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(-1e9)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)


def sup_con(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al.): positives are all other samples of the class."""
    z = F.normalize(z, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool)
    logits = logits.masked_fill(self_mask, -1e9)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(log_prob * positives).sum(1).div(positives.sum(1).clamp_min(1)).mean()


def encoder(width: int = 64) -> torch.nn.Module:
    """64 → 256 → ``width`` MLP, no projector."""
    return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, width))


def train(kind: str, *, epochs: int = 8, lr: float = 0.05, cut_lr_at: int | None = None, seed: int = 0,
          every_n_steps: int = 14, log: bool = False) -> dict[str, object]:
    """Train one run; return per-epoch scalars/findings and the monitor's alerts.

    ``kind`` is ``"ce"``, ``"simclr"`` or ``"supcon"``; ``cut_lr_at`` divides the learning rate
    by 100 from that epoch on.
    """
    torch.manual_seed(seed)
    X, y = digits()
    net = encoder()
    head = torch.nn.Linear(64, 10)
    params = [*net.parameters(), *head.parameters()] if kind == "ce" else list(net.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    monitor = gp.CollapseMonitor(every_n_steps=every_n_steps, n_classes=10, on_collapse="ignore")
    epochs_out = []
    for epoch in range(epochs):
        if cut_lr_at is not None and epoch == cut_lr_at:
            for group in opt.param_groups:
                group["lr"] = lr / 100
        order = torch.randperm(len(X))
        for start in range(0, len(X), 128):
            index = order[start:start + 128]
            xb, yb = X[index], y[index]
            if kind == "simclr":
                z = net(augment(xb))
                loss = info_nce(z, net(augment(xb)), temperature=0.5)
            elif kind == "supcon":
                z = net(augment(xb))
                loss = sup_con(z, yb, temperature=0.1)
            else:
                z = net(xb)
                loss = F.cross_entropy(head(torch.relu(z)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            monitor.update(z.detach(), yb)
        with torch.no_grad():
            Z = net(X).numpy()
        analyzers = ["spectrum", "neural_collapse", "orthogonality"]
        results = gp.analyze(Z, analyzers, labels=y.numpy(), precision="float64")
        row = {"epoch": epoch, "loss": float(loss.detach()), "scalars": results.scalars(),
               "verdicts": {f["name"]: (f["verdict"], f["value"]) for f in results.findings}}
        epochs_out.append(row)
        if log:
            s = row["scalars"]
            print(f"{kind:6} lr={lr:<5} epoch {epoch}: loss {row['loss']:.3f}  "
                  f"over_fusion {row['verdicts']['over_fusion'][0]} ({row['verdicts']['over_fusion'][1]:.3f})  "
                  f"erank {s['spectrum/effective_rank']:.1f}  nc1 {s['neural_collapse/nc1']:.3f}  "
                  f"ncc {s['neural_collapse/ncc_accuracy']:.3f}  of_dist {s['orthogonality/of_distance']:.3f}")
    return {"epochs": epochs_out, "alerts": monitor.alerts, "history": monitor.history}


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
