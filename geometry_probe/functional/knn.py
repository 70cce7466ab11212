r"""Exact k-nearest neighbours by cosine similarity, and the metrics built on them.

:func:`knn_search` keeps a running top-k per row while walking the upper-triangle tiles of
the cosine matrix (each tile updates its rows and, transposed, its columns), so memory is
O(N·k + tile²). Self-matches are excluded by position, so duplicate points still count as
neighbours of each other (metrics-reference §11 item 19).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from geometry_probe.pairwise import cosine_tiles


def knn_search(X: Tensor, k: int, *, tile: int | None = None) -> tuple[Tensor, Tensor]:
    """Top-``k`` cosine similarities and indices of every row among the other rows.

    Returns
    -------
    similarities : Tensor of shape (N, k), float32, descending
    indices : Tensor of shape (N, k), int64
    """
    N = X.shape[0]
    if not 1 <= k < N:
        raise ValueError(f"k must be in [1, {N - 1}] for {N} rows, got {k}.")
    best = torch.full((N, k), -math.inf, device=X.device)
    where = torch.zeros((N, k), dtype=torch.long, device=X.device)

    def merge(rows: slice, sims: Tensor, cols: slice) -> None:
        cand_idx = torch.arange(cols.start, cols.stop, device=X.device).expand(sims.shape[0], -1)
        values = torch.cat([best[rows], sims], dim=1)
        index = torch.cat([where[rows], cand_idx], dim=1)
        top, pos = values.topk(k, dim=1)
        best[rows], where[rows] = top, index.gather(1, pos)

    for t in cosine_tiles(X, tile=tile):
        sims = t.cosine
        if t.diagonal:
            sims = sims.clone()
            sims.fill_diagonal_(-math.inf)
            merge(t.rows, sims, t.cols)
        else:
            merge(t.rows, sims, t.cols)
            merge(t.cols, sims.T, t.rows)
    return best, where


def weighted_knn_accuracy(similarities: Tensor, indices: Tensor, labels: Tensor, n_classes: int, *,
                          temperature: float = 0.07) -> float:
    r"""Leave-one-out weighted kNN accuracy (Wu et al. 2018; DINO protocol).

    .. math::

        \hat y_i = \arg\max_c \sum_{j \in \mathcal{N}_k(i)} e^{s_{ij}/T}\,[y_j = c]

    with :math:`s_{ij}` the cosine similarity and :math:`\mathcal{N}_k(i)` the k nearest other rows.

    Returns
    -------
    float
        In [0, 1]; about 1/C for structureless embeddings.

    References
    ----------
    .. [1] Z. Wu, Y. Xiong, S. Yu, D. Lin, "Unsupervised feature learning via non-parametric
       instance discrimination", CVPR 2018. [2] M. Caron et al., "Emerging properties in
       self-supervised vision transformers" (DINO), ICCV 2021, ``eval_knn.py``.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> s, i = knn_search(X, 1)
    >>> weighted_knn_accuracy(s, i, torch.tensor([0, 0, 1, 1]), 2)
    1.0
    """
    weights = torch.exp(similarities.to(torch.float64) / temperature)                  # (N, k)
    votes = torch.zeros(len(labels), n_classes, dtype=torch.float64, device=weights.device)
    votes.scatter_add_(1, labels[indices], weights)
    return float((votes.argmax(dim=1) == labels).to(torch.float64).mean())


def hubness_skewness(indices: Tensor, n_samples: int) -> float:
    r"""Skewness of the k-occurrence distribution (Radovanović et al., 2010).

    .. math::

        S_{N_k} = \frac{\mathbb{E}[(N_k - \mu)^3]}{\sigma^3}, \qquad
        N_k(x) = \#\{y : x \in \mathcal{N}_k(y)\}

    (population skewness, as scipy.stats.skew with bias=True).

    Returns
    -------
    float
        0 for a symmetric distribution, large positive when a few hubs appear in many
        neighbour lists; NaN when every point occurs equally often (σ = 0).

    References
    ----------
    .. [1] M. Radovanović, A. Nanopoulos, M. Ivanović, "Hubs in space: popular nearest
       neighbors in high-dimensional data", JMLR 2010.

    Examples
    --------
    >>> import torch
    >>> hubness_skewness(torch.tensor([[1], [0], [3], [2]]), 4)  # every point occurs once
    nan
    """
    occurrence = k_occurrence(indices, n_samples)
    centred = occurrence - occurrence.mean()
    sigma = math.sqrt(float((centred**2).mean()))
    return float((centred**3).mean()) / sigma**3 if sigma > 1e-12 else math.nan


def k_occurrence(indices: Tensor, n_samples: int) -> np.ndarray:
    """How often each row appears in the others' neighbour lists, shape (n_samples,)."""
    return torch.bincount(indices.flatten().cpu(), minlength=n_samples).to(torch.float64).numpy()


def twonn_dimension(similarities: Tensor) -> float:
    r"""TwoNN intrinsic dimension (Facco et al., 2017), maximum-likelihood form.

    .. math::

        \hat d = \frac{N'}{\sum_i \ln(r_{2,i}/r_{1,i})}

    with :math:`r_1, r_2` the chord distances :math:`\sqrt{2 - 2 s}` on the unit sphere to the
    first and second neighbours; rows with :math:`r_1 = 0` (duplicates) are left out (N' rows kept).

    References
    ----------
    .. [1] E. Facco, M. d'Errico, A. Rodriguez, A. Laio, "Estimating the intrinsic dimension of
       datasets by a minimal neighborhood information", Scientific Reports 2017.

    Examples
    --------
    >>> import torch
    >>> s = torch.tensor([[0.5, -0.125]] * 4)    # chord r = sqrt(2 - 2s): r1 = 1, r2 = 1.5
    >>> round(twonn_dimension(s), 6) == round(1 / math.log(1.5), 6)
    True
    """
    r = torch.sqrt((2 - 2 * similarities[:, :2].to(torch.float64)).clamp_min(0))
    keep = r[:, 0] > 0
    ratio = torch.log(r[keep, 1] / r[keep, 0])
    return float(keep.sum() / ratio.sum()) if ratio.sum() > 0 else math.nan
