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


def load_digits_overfused_embeddings(*, random_state: int = 0) -> Embeddings:
    """Embeddings of sklearn's digits from the encoder of :func:`load_digits_embeddings` trained into
    InfoNCE over-fusion: a real, complete failure to show beside the healthy model.

    The encoder (64 → 128 → 128, ReLU, no projector) is trained with SimCLR's InfoNCE (τ = 0.5) on
    two augmented views of each image (a random shift of up to one pixel, 20% of the pixels
    masked, Gaussian noise 0.1) for 600 SGD steps of 128 images, momentum 0.9, at a learning rate
    of 3 with weight decay 0.5. From about step 200 the loss sits at ln(2B − 1) = 5.541, the value
    at which every logit is equal: the rows have fused to one point. A fused state gives the loss
    almost no gradient, so weight decay wears the weights down (mean embedding norm 0.007 at the
    end) and with them what distinguished the digits: the rows agree to float32 rounding and the
    class information is gone. For seeds 0, 1 and 2, on all 1797 rows: top-1 energy of the
    L2-normalised rows 1.000000, held-out cosine 20-NN accuracy 0.100-0.102 (chance 0.10, the
    healthy model 0.985), nearest-class-mean accuracy 0.10-0.14, linear probe 0.10-0.14.

    Runs on one torch thread (the caller's thread count is restored) in a few seconds on CPU;
    the augmentations and the initialisation draw from a private generator seeded with
    ``random_state``, so the result is deterministic and torch's global RNG is untouched.

    Parameters
    ----------
    random_state : int, default=0

    Returns
    -------
    Embeddings
        Shape (1797, 128), float32, with the digit labels; ``meta`` names the dataset, the model
        and the training recipe.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = torch.as_tensor(digits.data / 16.0, dtype=torch.float32)
    generator = torch.Generator().manual_seed(random_state)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):        # building the layers draws from the global RNG
            encoder = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128))
        with torch.no_grad():
            for param in encoder.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * param.shape[-1] ** -0.5)
        optimiser = torch.optim.SGD(encoder.parameters(), lr=3.0, momentum=0.9, weight_decay=0.5)
        for _ in range(600):
            batch = X[torch.randperm(len(X), generator=generator)[:128]]
            loss = _info_nce(encoder(_augment(batch, generator)), encoder(_augment(batch, generator)), 0.5)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            Z = encoder(X).numpy().astype(np.float32)
    finally:
        torch.set_num_threads(threads)
    recipe = ("SimCLR InfoNCE (tau 0.5) on two augmented views, 600 SGD steps of batch 128, momentum 0.9, "
              "learning rate 3, weight decay 0.5")
    return Embeddings(Z, labels=digits.target, name="digits-overfused",
                      meta={"dataset": "sklearn digits", "model": "MLP 64-128-128 (ReLU), no projector",
                            "recipe": recipe, "final_loss": float(loss.detach())})


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A view of a batch of 8×8 digits: a shift of up to one pixel, 20% of the pixels masked, noise 0.1."""
    img = x.view(-1, 8, 8)
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=generator))
    img = torch.roll(img, shifts=(dy, dx), dims=(1, 2))
    img = img * (torch.rand(img.shape, generator=generator) > 0.2) + 0.1 * torch.randn(img.shape, generator=generator)
    return img.reshape(-1, 64)


def _info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over the 2B views; the positive of view i is the other view of the same image."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(-1e9)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return torch.nn.functional.cross_entropy(logits, targets)
