"""Null baselines: what a metric reads on structureless data of the same size.

Each baseline is computed, not guessed: a closed form where one exists, otherwise a seeded
simulation of an isotropic Gaussian (directions uniform on the sphere) with the same
number of rows and dimensions, cached per shape.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from geometry_probe.functional.spectrum import effective_rank_from_spectrum, eigvals_desc

SIMULATION_SEED = 12345


def uniformity_uniform_sphere(n_features: int, t: float = 2.0) -> float:
    r"""Uniformity of uniform points on :math:`S^{D-1}` in the large-N limit (Wang & Isola, 2020).

    .. math::

        \lim_{N\to\infty} \mathcal{L}_{\text{uniform}} = -2t + \ln {}_0F_1\!\left(; \tfrac{D}{2}; t^2\right)

    Parameters
    ----------
    n_features : int
        Dimension D (points on the unit sphere in R^D).
    t : float, default=2.0

    Returns
    -------
    float
        The smallest uniformity reachable at this D (e.g. −3.937530 for D = 128).

    References
    ----------
    .. [1] T. Wang and P. Isola, "Understanding contrastive representation learning through
       alignment and uniformity on the hypersphere", ICML 2020, appendix.

    Examples
    --------
    >>> round(uniformity_uniform_sphere(128), 6)
    -3.93753
    """
    a, z = n_features / 2.0, t * t
    term, total, k = 1.0, 1.0, 0
    while term > 1e-17 * total:               # 0F1(;a;z) = Σ z^k / ((a)_k k!)
        term *= z / ((a + k) * (k + 1))
        total += term
        k += 1
    return -2.0 * t + math.log(total)


@lru_cache(maxsize=64)
def isotropic_sphere_stats(n_samples: int, n_features: int) -> dict[str, float]:
    """Sphere statistics of a seeded isotropic Gaussian sample of the given shape.

    Returns the top-1 energy of the normalised rows, mean and mean-absolute pairwise cosine,
    and the effective rank (centred), i.e. what :func:`geometry_probe.diagnosis.diagnose`
    measures, on data with no structure at all.
    """
    rng = np.random.default_rng(SIMULATION_SEED)
    X = rng.standard_normal((n_samples, n_features))
    return sphere_stats(X)


@lru_cache(maxsize=64)
def isotropic_effective_rank(n_samples: int, n_features: int) -> float:
    """Effective rank (centred) of a seeded isotropic Gaussian with ``min(n_samples, 4096)`` rows.

    Beyond 4096 rows the spectrum of an N×D Gaussian changes only through the D/N
    Marchenko–Pastur spread, which shrinks as N grows, so 4096 rows bound it from below.
    """
    n = min(n_samples, 4096)
    X = torch.as_tensor(np.random.default_rng(SIMULATION_SEED).standard_normal((n, n_features)))
    centred = X - X.mean(dim=0)
    scatter = centred @ centred.T if n <= n_features else centred.T @ centred
    return effective_rank_from_spectrum(eigvals_desc(scatter))


def sphere_stats(X: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Top-1 energy, mean cosine, mean |cosine|, uniformity (t=2) of L2-normalised rows, and
    the effective rank of the centred rows; all pairs i < j, float64.

    Spectra come from the smaller of the n×n Gram and the D×D scatter (same non-zero
    eigenvalues), both solved in one stacked call. ``X`` must have no zero rows (callers
    check). O(n²) memory: use on a subsample (≤ 4096 rows). Computed in NumPy on the host (the
    rows are copied there once): on the small matrices it is given, that is about twice as
    fast as PyTorch's per-operation dispatch, which matters for the training monitor's
    snapshots.
    """
    A = X.detach().to(torch.float64).cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, np.float64)
    U = A / np.sqrt(np.einsum("ij,ij->i", A, A))[:, None]              # (n, D)
    n, D = U.shape
    G = U @ U.T                                                         # (n, n), n ≤ 4096
    trace, pairs = np.trace(G), n * (n - 1)                             # diagonal: squared unit norms, > 0
    centred = A - A.mean(axis=0)
    pair = (G, centred @ centred.T) if n <= D else (U.T @ U, centred.T @ centred)
    energy, scatter = eigvals_desc(np.stack(pair))
    # e^{-t‖û_i − û_j‖²} = e^{2t(cos − 1)}, t = 2, with cos ≤ 1 (rounding), summed over i ≠ j
    kernel = np.exp(4.0 * (np.minimum(G, 1.0) - 1.0))
    kernel_sum = kernel.sum() - np.trace(kernel)
    return {
        "top1_energy": float(energy[0] / energy.sum()),
        "mean_cosine": float((G.sum() - trace) / pairs),
        "mean_abs_cosine": float((np.abs(G).sum() - trace) / pairs),
        "uniformity": math.log(kernel_sum / pairs) if kernel_sum > 0 else -math.inf,
        "effective_rank": effective_rank_from_spectrum(scatter),
    }

