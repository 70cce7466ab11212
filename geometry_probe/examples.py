"""Code the gallery's examples share, public so that an example copied on its own runs.

**Digits encoders trained in seconds.** Small MLP encoders on scikit-learn's bundled digits
(1797 images of 8×8 pixels, 10 classes), on CPU: cross-entropy, SimCLR (InfoNCE over two
augmented views) and supervised contrastive (SupCon), measured every epoch
(:func:`train`) or step by step under a learning-rate schedule (:func:`train_steps`).

**Where an example writes.** Run as a script, an example saves its figures (PDF and PNG) and a
small JSON of its key numbers into the folder named by the environment variable
``GEOPROBE_GALLERY_OUT`` (default ``./gallery_output``); ``GEOPROBE_GALLERY_FAST=1`` asks for a
shorter run (:func:`fast`), as the tests do.

>>> from geometry_probe.examples import digits
>>> X, y = digits()
>>> tuple(X.shape), int(y.max())
((1797, 64), 9)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from geometry_probe.analysis import analyze
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.monitor import CollapseMonitor

__all__ = ["KINDS", "augment", "digits", "encoder", "fast", "info_nce", "output_folder", "positive_views",
           "save_figure", "save_numbers", "sup_con", "train", "train_steps"]

KINDS = ("ce", "simclr", "supcon")
DEFAULT_TEMPERATURE = {"simclr": 0.5, "supcon": 0.1}
BATCH_SIZE = 128
DEFAULT_ANALYZERS = ("spectrum", "neural_collapse", "orthogonality")


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Images scaled to [0, 1], shape (1797, 64), and their labels, shape (1797,)."""
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


def _loss(kind: str, net: torch.nn.Module, head: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor,
          temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss of one batch and the embeddings the monitor sees."""
    if kind == "simclr":
        z = net(augment(xb))
        return info_nce(z, net(augment(xb)), temperature), z
    if kind == "supcon":
        z = net(augment(xb))
        return sup_con(z, yb, temperature), z
    z = net(xb)
    return F.cross_entropy(head(torch.relu(z)), yb), z


def train(kind: str, *, epochs: int = 8, lr: float = 0.05, temperature: float | None = None,
          cut_lr_at: int | None = None, seed: int = 0, every_n_steps: int = 14,
          analyzers: Sequence[str] | None = DEFAULT_ANALYZERS, log: bool = False) -> dict[str, object]:
    """Train one encoder on digits with SGD (momentum 0.9, batch 128) and measure it every epoch.

    Parameters
    ----------
    kind : {"ce", "simclr", "supcon"}
        Cross-entropy (through a linear head on ReLU(z)), SimCLR/InfoNCE or SupCon.
    epochs : int, default=8
    lr : float, default=0.05
    temperature : float, optional
        Of InfoNCE (default 0.5) or SupCon (default 0.1); unused for cross-entropy.
    cut_lr_at : int, optional
        Divide the learning rate by 100 from this epoch on.
    seed : int, default=0
    every_n_steps : int, default=14
        Snapshot period of the :class:`~geometry_probe.CollapseMonitor` in the loop.
    analyzers : sequence of str or None
        Run :func:`geometry_probe.analyze` (float64, with labels) on all 1797 embeddings at the
        end of every epoch; ``None`` skips it (the embeddings are still recorded).
    log : bool, default=False
        Print one line per epoch (needs the default analyzers).

    Returns
    -------
    dict
        ``epochs``: one dict per epoch (``epoch``, ``loss``, ``embeddings`` of shape (1797, 64),
        for cross-entropy ``classifier``, the head's (weight, bias) that reads ReLU(embeddings),
        and with analyzers ``scalars`` and ``verdicts`` {finding: (verdict, value)});
        ``alerts`` and ``history`` of the monitor; ``encoder``, the trained module;
        ``labels``, the digit labels as a NumPy array.
    """
    if kind not in KINDS:
        raise InvalidInputError(f"kind: got {kind!r}; choose one of {list(KINDS)}.")
    with one_thread():
        return _train(kind, epochs=epochs, lr=lr, temperature=temperature, cut_lr_at=cut_lr_at,
                      seed=seed, every_n_steps=every_n_steps, analyzers=analyzers, log=log)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: these networks are tiny, and two threads on a
    loaded 2-core machine made training 5-10 times slower in our measurements."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train(kind: str, *, epochs: int, lr: float, temperature: float | None, cut_lr_at: int | None,
           seed: int, every_n_steps: int, analyzers: Sequence[str] | None,
           log: bool) -> dict[str, object]:
    temperature = DEFAULT_TEMPERATURE.get(kind, 1.0) if temperature is None else temperature
    torch.manual_seed(seed)
    X, y = digits()
    net = encoder()
    head = torch.nn.Linear(64, 10)
    params = [*net.parameters(), *head.parameters()] if kind == "ce" else list(net.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    # every batch covered: these runs are demonstrations of the signals, with steps too short for a 1% budget
    monitor = CollapseMonitor(every_n_steps=every_n_steps, n_classes=10, on_collapse="ignore",
                                 overhead_budget=None)
    epochs_out = []
    for epoch in range(epochs):
        if cut_lr_at is not None and epoch == cut_lr_at:
            for group in opt.param_groups:
                group["lr"] = lr / 100
        order = torch.randperm(len(X))
        for start in range(0, len(X), BATCH_SIZE):
            index = order[start:start + BATCH_SIZE]
            loss, z = _loss(kind, net, head, X[index], y[index], temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            monitor.update(z.detach(), y[index])
        with torch.no_grad():
            Z = net(X).numpy()
        row: dict[str, object] = {"epoch": epoch, "loss": float(loss.detach()), "embeddings": Z}
        if kind == "ce":
            row["classifier"] = (head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy())
        if analyzers:
            results = analyze(Z, list(analyzers), labels=y.numpy(), precision="float64")
            row["scalars"] = results.scalars()
            row["verdicts"] = {f["name"]: (f["verdict"], f["value"]) for f in results.findings}
        epochs_out.append(row)
        if log:
            _print_epoch(kind, lr, row)
    return {"epochs": epochs_out, "alerts": monitor.alerts, "history": monitor.history, "encoder": net,
            "labels": y.numpy()}


def train_steps(kind: str, lr_at: Callable[[int], float], steps: int, *, seed: int = 0, every_n_steps: int = 10,
                temperature: float | Callable[[int], float] | None = None, width: int = 64,
                batch_size: int = BATCH_SIZE, output_relu: bool = False, record_at: Sequence[int] = (),
                before_step: Callable[[int, torch.nn.Module, torch.optim.Optimizer], None] | None = None,
                ) -> dict[str, object]:
    """Train one encoder on digits for ``steps`` SGD steps under a per-step learning-rate schedule.

    Unlike :func:`train` (whole epochs, a constant or cut learning rate), each step reads its
    learning rate from ``lr_at(step)``, epochs drop their last partial batch, and the
    :class:`~geometry_probe.CollapseMonitor` runs with ``overhead_budget=None`` so that every
    batch is covered and runs are reproducible.

    Parameters
    ----------
    kind : {"ce", "simclr", "supcon"}
    lr_at : callable
        ``lr_at(step)`` for step 0, 1, ...; SGD with momentum 0.9.
    steps : int
    seed : int, default=0
    every_n_steps : int, default=10
        Monitor snapshot period.
    temperature : float or callable, optional
        Of InfoNCE (default 0.5) or SupCon (default 0.1); a callable is read as ``temperature(step)``.
    width : int, default=64
        Embedding dimension of the encoder.
    batch_size : int, default=128
    output_relu : bool, default=False
        End the encoder with a ReLU, so that the embeddings are non-negative (the setting of
        Kini et al.'s orthogonal-frame result for SupCon).
    record_at : sequence of int
        Steps (counted after the update, as the monitor's snapshots are) at which the
        embeddings of all 1797 digits are recorded.
    before_step : callable, optional
        Called as ``before_step(step, encoder, optimizer)`` before every step, after the
        learning rate is set (an intervention such as a weight-decay change or a rescaling).

    Returns
    -------
    dict
        ``history``, ``alerts`` and ``episodes`` of the monitor; ``lr``: the rate of every step;
        ``embeddings``: {step: array of shape (1797, width)}; ``labels``; ``encoder``.
    """
    if kind not in KINDS:
        raise InvalidInputError(f"kind: got {kind!r}; choose one of {list(KINDS)}.")
    fixed = DEFAULT_TEMPERATURE.get(kind, 1.0) if temperature is None else temperature
    temperature_at = fixed if callable(fixed) else (lambda step: fixed)
    with one_thread():
        torch.manual_seed(seed)
        X, y = digits()
        net, head = encoder(width), torch.nn.Linear(width, 10)
        if output_relu:
            net = torch.nn.Sequential(*net, torch.nn.ReLU())
        params = [*net.parameters(), *head.parameters()] if kind == "ce" else list(net.parameters())
        opt = torch.optim.SGD(params, lr=lr_at(0), momentum=0.9)
        monitor = CollapseMonitor(every_n_steps=every_n_steps, n_classes=10, on_collapse="ignore",
                                     overhead_budget=None)
        lrs, recorded, step = [], {}, 0
        while step < steps:
            order = torch.randperm(len(X))
            for start in range(0, len(X) - batch_size + 1, batch_size):
                lrs.append(lr_at(step))
                for group in opt.param_groups:
                    group["lr"] = lrs[-1]
                if before_step is not None:
                    before_step(step, net, opt)
                index = order[start:start + batch_size]
                loss, z = _loss(kind, net, head, X[index], y[index], temperature_at(step))
                opt.zero_grad()
                loss.backward()
                opt.step()
                monitor.update(z.detach(), y[index])
                step += 1
                if step in record_at:
                    with torch.no_grad():
                        recorded[step] = net(X).numpy()
                if step == steps:
                    break
    return {"history": monitor.history, "alerts": monitor.alerts, "episodes": monitor.episodes, "lr": lrs,
            "embeddings": recorded, "labels": y.numpy(), "encoder": net}


def positive_views(net: torch.nn.Module, *, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two augmented views of every digit through ``net``: row i of each is a positive pair."""
    torch.manual_seed(seed)
    X, _ = digits()
    with torch.no_grad():
        return net(augment(X)).numpy(), net(augment(X)).numpy()


def _print_epoch(kind: str, lr: float, row: dict) -> None:
    s, fusion = row["scalars"], row["verdicts"]["over_fusion"]
    print(f"{kind:6} lr={lr:<5} epoch {row['epoch']}: loss {row['loss']:.3f}  over_fusion {fusion[0]} "
          f"({fusion[1]:.3f})  erank {s['spectrum/effective_rank']:.1f}  nc1 {s['neural_collapse/nc1']:.3f}  "
          f"ncc {s['neural_collapse/ncc_accuracy']:.3f}  of_dist {s['orthogonality/of_distance']:.3f}")


# ---- where examples write ------------------------------------------------------------------------
OUT_ENV = "GEOPROBE_GALLERY_OUT"
FAST_ENV = "GEOPROBE_GALLERY_FAST"
DEFAULT_OUT = "gallery_output"


def fast() -> bool:
    """True when ``GEOPROBE_GALLERY_FAST`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes"}


def output_folder() -> Path:
    """The folder for figures and numbers (created if missing)."""
    folder = Path(os.environ.get(OUT_ENV) or DEFAULT_OUT)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig: Any, name: str) -> list[Path]:
    """Save ``fig`` as ``<name>.pdf`` and ``<name>.png`` in :func:`output_folder`.

    A figure built without pyplot (the library's :mod:`geometry_probe.reporting.static`
    functions) is handed to pyplot as well, so that sphinx-gallery shows it.

    Returns
    -------
    list of Path
        The two files written.
    """
    import matplotlib.pyplot as plt

    if fig.canvas.manager is None:
        try:
            plt.figure(fig)
        except (TypeError, ValueError):        # matplotlib < 3.10 cannot adopt a figure
            pass
    paths = [output_folder() / f"{name}.{fmt}" for fmt in ("pdf", "png")]
    for path in paths:
        fig.savefig(path, dpi=200)
    return paths


def save_numbers(numbers: dict[str, Any], name: str) -> Path:
    """Write ``numbers`` (floats, lists, dicts; NumPy scalars and arrays allowed) as ``<name>.json``."""
    path = output_folder() / f"{name}.json"
    path.write_text(json.dumps(numbers, indent=1, default=_plain) + "\n")
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
