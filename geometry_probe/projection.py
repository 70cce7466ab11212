"""2-D maps of embeddings: PCA (torch), t-SNE (openTSNE, FFT) and UMAP (umap-learn).

Computation only; figures take the returned :class:`Projection`. Above ``max_samples`` rows a
stratified (per-label) seeded subsample is projected and the count is recorded. Each map
reports its trustworthiness (sklearn, on a seeded sample of at most 2000 of the projected rows,
so its cost stays fixed at any size). A map can be reused as a fixed layout for later
checkpoints (``reference=``): PCA keeps its basis, t-SNE uses openTSNE's ``transform`` and UMAP
its ``transform`` into the first map.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from geometry_probe._optional import require
from geometry_probe._validation import check_choice, check_positive_int
from geometry_probe.embeddings import as_embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.result import Result

METHODS = ("pca", "tsne", "umap")
TRUST_SAMPLES = 2000


@dataclass(frozen=True)
class Projection:
    """A 2-D map: ``coords[i]`` is row ``indices[i]`` of the embeddings."""

    coords: np.ndarray
    indices: np.ndarray
    labels: np.ndarray | None
    method: str
    trustworthiness: float
    params: dict[str, Any] = field(default_factory=dict)
    model: Any = field(default=None, repr=False, compare=False)

    def to_result(self) -> Result:
        """As a ``projection`` :class:`Result`, coordinates rounded to 1e-5 of the map's extent
        (far below a pixel) so the JSON stays compact."""
        arrays = {"coords": compact_coordinates(self.coords), "indices": self.indices}
        if self.labels is not None:
            arrays["labels"] = self.labels
        return Result("projection", {"trustworthiness": self.trustworthiness}, arrays=arrays,
                      params={"method": self.method, **self.params})


def compact_coordinates(coords: np.ndarray, *, resolution: float = 1e-5) -> np.ndarray:
    """``coords`` rounded to the decimal at ``resolution`` times the largest absolute coordinate."""
    coords = np.asarray(coords, dtype=np.float64)
    extent = float(np.max(np.abs(coords))) if coords.size else 0.0
    if not np.isfinite(extent) or extent == 0.0:
        return coords
    return np.round(coords, max(0, int(-np.floor(np.log10(extent * resolution)))))


def stratified_sample(labels: np.ndarray | None, n_total: int, n: int, *, random_state: int = 0) -> np.ndarray:
    """Sorted row indices: exactly ``n`` rows drawn uniformly, or per label in proportion to its
    size (largest remainders round the shares; every label keeps a row while ``n`` allows)."""
    rng = np.random.default_rng(random_state)
    if n >= n_total:
        return np.arange(n_total)
    if labels is None:
        return np.sort(rng.choice(n_total, size=n, replace=False))
    codes, sizes = np.unique(labels, return_counts=True)
    takes = _proportional_shares(sizes, n)
    picked = [rng.choice(np.flatnonzero(labels == code), size=take, replace=False)
              for code, take in zip(codes, takes) if take]
    return np.sort(np.concatenate(picked))


def _proportional_shares(sizes: np.ndarray, n: int) -> np.ndarray:
    quotas = n * sizes / sizes.sum()
    takes = np.floor(quotas).astype(int)
    takes[np.argsort(takes - quotas, kind="stable")[: n - takes.sum()]] += 1      # largest remainders
    if n >= sizes.size:                                                            # no label left out
        for empty in np.flatnonzero(takes == 0):
            takes[np.argmax(takes)] -= 1
            takes[empty] = 1
    return takes


def project(data: Any, method: str = "pca", *, max_samples: int = 50_000, random_state: int = 0,
            reference: Projection | None = None, **params: Any) -> Projection:
    """Project embeddings to 2-D.

    Parameters
    ----------
    data : Embeddings, array or Tensor of shape (n_samples, n_features)
    method : {"pca", "tsne", "umap"}, default="pca"
    max_samples : int, default=50000
        Rows above this are subsampled (stratified by label), the count kept in ``params``.
    random_state : int, default=0
    reference : Projection, optional
        A map of an earlier checkpoint (same method) to place these rows into.
    **params
        Passed to openTSNE.TSNE (e.g. ``perplexity``; ``n_jobs`` defaults to the CPU count) or
        umap.UMAP (``n_neighbors``, ``min_dist``).

    Returns
    -------
    Projection
    """
    emb = as_embeddings(data)
    check_choice(method, METHODS, name="method")
    check_positive_int(max_samples, name="max_samples")
    index = stratified_sample(emb.labels, emb.n_samples, max_samples, random_state=random_state)
    X = emb.rows(index).cpu().numpy()
    if reference is not None:
        if reference.method != method:
            raise InvalidInputError(f"reference map is {reference.method!r}, not {method!r}.")
        if reference.model is None:
            raise InvalidInputError("reference map has no fitted model (a map read back from JSON cannot place "
                                    "new rows); pass the Projection that gp.project returned.")
        coords, model = _transform(reference, X), reference.model
    else:
        coords, model = _fit(method, X, random_state, params)
    labels = None if emb.labels is None else emb.labels[index]
    return Projection(coords=np.asarray(coords, dtype=np.float64), indices=index, labels=labels, method=method,
                      trustworthiness=_trustworthiness(X, coords, random_state), model=model,
                      params={"n_total": emb.n_samples, "n_shown": int(index.size), "seed": random_state,
                              "trustworthiness_rows": min(TRUST_SAMPLES, int(index.size)),
                              "reused_layout": reference is not None, **params})


def _fit(method: str, X: np.ndarray, seed: int, params: dict[str, Any]) -> tuple[np.ndarray, Any]:
    if method == "pca":
        rows = torch.from_numpy(X).to(torch.float64)
        mean = rows.mean(dim=0)
        _, _, Vh = torch.linalg.svd(rows - mean, full_matrices=False)
        basis = (mean.numpy(), Vh[:2].T.numpy())
        return ((rows - mean) @ Vh[:2].T).numpy(), basis
    if method == "tsne":
        open_tsne = require("openTSNE", extra="tsne", package="openTSNE")
        options = {"n_jobs": os.cpu_count() or 1, **params}
        embedding = open_tsne.TSNE(n_components=2, random_state=seed, **options).fit(X)
        return np.asarray(embedding), embedding
    umap = require("umap", extra="umap", package="umap-learn")
    model = umap.UMAP(n_components=2, random_state=seed, **params).fit(X)
    return model.embedding_, model


def _transform(reference: Projection, X: np.ndarray) -> np.ndarray:
    if reference.method == "pca":
        mean, basis = reference.model
        return (X.astype(np.float64) - mean) @ basis
    return np.asarray(reference.model.transform(X))


def _trustworthiness(X: np.ndarray, coords: np.ndarray, seed: int) -> float:
    from sklearn.manifold import trustworthiness

    index = np.random.default_rng(seed).permutation(len(X))[:TRUST_SAMPLES]
    k = min(5, len(index) // 2 - 1)
    return float(trustworthiness(X[index], np.asarray(coords)[index], n_neighbors=max(k, 1)))
