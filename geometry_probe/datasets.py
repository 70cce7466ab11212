"""Small data sets for examples, tests and the default job; nothing is downloaded."""

from __future__ import annotations

import numpy as np
import torch

from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError


def make_isotropic(n_samples: int = 1000, n_features: int = 64, *, random_state: int = 0) -> np.ndarray:
    """Standard Gaussian rows: the isotropic null baseline. Shape (n_samples, n_features)."""
    return np.random.default_rng(random_state).standard_normal((n_samples, n_features))


def make_low_rank(n_samples: int = 1000, n_features: int = 64, rank: int = 4, *,
                  random_state: int = 0) -> np.ndarray:
    """Gaussian rows confined to a random ``rank``-dimensional subspace (dimensional collapse)."""
    rng = np.random.default_rng(random_state)
    return rng.standard_normal((n_samples, rank)) @ rng.standard_normal((rank, n_features))


def make_collapsed(n_samples: int = 1000, n_features: int = 64, *, kind: str = "point",
                   noise: float = 0.0, random_state: int = 0) -> np.ndarray:
    """Over-fused embeddings: all rows at one point (``"point"``) or on one line through the
    origin with random signs (``"line"``, the antipodal rank-1 collapse), plus optional noise."""
    rng = np.random.default_rng(random_state)
    direction = rng.standard_normal(n_features)
    direction /= np.linalg.norm(direction)
    if kind == "point":
        X = np.tile(direction, (n_samples, 1))
    elif kind == "line":
        X = rng.choice([-1.0, 1.0], size=(n_samples, 1)) * direction
    else:
        raise InvalidInputError(f"kind: got {kind!r}; choose 'point' or 'line'.")
    return X + noise * rng.standard_normal((n_samples, n_features))


def make_simplex_etf(n_classes: int = 5, n_features: int = 8, n_per_class: int = 20, *,
                     noise: float = 0.0, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class means on a simplex equiangular tight frame (unit norm) plus Gaussian noise.

    Returns ``(X, labels)`` with X of shape (n_classes * n_per_class, n_features).
    Needs ``n_features >= n_classes - 1`` (:class:`~geometry_probe.InvalidInputError` otherwise);
    with ``n_features == n_classes - 1`` the frame fills the whole space.
    """
    rng = np.random.default_rng(random_state)
    if n_features < n_classes - 1:
        raise InvalidInputError(f"n_features: got {n_features}; a simplex ETF of {n_classes} classes needs "
                                f"n_features >= {n_classes - 1}.")
    centred = np.eye(n_classes) - 1.0 / n_classes
    vertices = centred * np.sqrt(n_classes / (n_classes - 1))   # (C, C): the ETF in the hyperplane ⟂ 1 of R^C
    if n_features >= n_classes:
        basis, _ = np.linalg.qr(rng.standard_normal((n_features, n_classes)))   # (D, C) orthonormal columns
    else:   # D = C − 1: map only the hyperplane ⟂ 1, through an orthonormal basis of it, into R^D
        hyperplane = np.linalg.eigh(centred)[1][:, 1:]                        # (C, C − 1), eigenvalue 1
        rotation, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
        basis = rotation @ hyperplane.T                                       # (D, C), isometric on ⟂ 1
    means = vertices @ basis.T                                                # (C, D), unit norm
    labels = np.repeat(np.arange(n_classes), n_per_class)
    X = means[labels] + noise * rng.standard_normal((labels.size, n_features))
    return X, labels


def load_digits_embeddings(*, n_features: int = 128, epochs: int = 60, random_state: int = 0) -> Embeddings:
    """Embeddings of sklearn's bundled digits (1797 images of 10 classes) from a small MLP.

    The MLP (64 → 128 → ``n_features`` → 10) is trained with cross-entropy on CPU for
    ``epochs`` full-batch Adam steps (well under a second); the embeddings are its
    penultimate layer. Deterministic for a given ``random_state``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = torch.as_tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.as_tensor(digits.target, dtype=torch.long)
    generator = torch.Generator().manual_seed(random_state)
    encoder = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, n_features))
    head = torch.nn.Linear(n_features, 10)
    with torch.no_grad():
        for param in [*encoder.parameters(), *head.parameters()]:
            param.copy_(torch.randn(param.shape, generator=generator) * param.shape[-1] ** -0.5)
    optimiser = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(torch.relu(encoder(X))), y)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        Z = encoder(X).numpy().astype(np.float32)
    return Embeddings(Z, labels=digits.target, name="digits-mlp",
                      meta={"dataset": "sklearn digits", "model": f"MLP 64-128-{n_features}, {epochs} Adam steps"})
