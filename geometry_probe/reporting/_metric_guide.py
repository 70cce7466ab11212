"""What each analyzer computes (formula), and for the headline metrics a null baseline and what
the value means, for the report's per-analyzer sections.

Baselines are computed for the analysed shape (N, D, C from ``Results.meta``): an isotropic
Gaussian for spectra, uniform points on the sphere for pair statistics, chance for accuracies,
the ideal configuration where one exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from geometry_probe.baselines import uniformity_uniform_sphere
from geometry_probe.reporting._figure_data import isotropic_spectrum

FORMULAS = {
    "spectrum": "effective rank exp(H(σ/Σσ)) of the centred matrix (Roy & Vetterli 2007); RankMe on the raw matrix "
                "(Garrido et al. 2023); stable rank Σσ²/σ₁²; participation ratio (Σλ)²/Σλ²; α-ReQ power-law slope.",
    "contrastive": "uniformity log mean exp(−t‖x̂ᵢ−x̂ⱼ‖²) over pairs i<j and alignment mean ‖x̂−ŷ‖^α "
                   "(Wang & Isola 2020); cosine statistics of L2-normalised rows; tolerance = mean same-label "
                   "cosine (Wang & Liu 2021); distance_cv = std/mean of pairwise distances; with positives, "
                   "InfoNCE at τ split into −mean sᵢᵢ/τ + mean log Σⱼ exp(sᵢⱼ/τ), effective negatives "
                   "exp(entropy of the softmax over negatives), and f-MICL objectives (Lu et al. 2023).",
    "knn": "weighted kNN accuracy (DINO protocol), skewness of the k-occurrence (Radovanović et al. 2010), "
           "TwoNN intrinsic dimension (Facco et al. 2017).",
    "neural_collapse": "NC1 = Tr(Σ_W Σ_B†)/C, NC2 ETF/equinorm/equiangularity, NC3 self-duality, NC4 agreement "
                       "with the nearest class centre (Papyan, Han & Donoho 2020).",
    "orthogonality": "cosine between class means (uncentred and centred), distances to an orthogonal frame and a "
                     "simplex ETF, SimO matrices (μ_c·μ_c')² and ‖μ_c − μ_c'‖², Welch bound.",
    "projection": "2-D map (PCA, t-SNE or UMAP) of a stratified subsample; trustworthiness measures how well "
                  "it keeps each point's nearest neighbours (Venna & Kaski 2001).",
}


@dataclass(frozen=True)
class Shape:
    """The analysed shape: rows, features, classes."""

    n: int
    d: int
    c: int

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> Shape:
        """From ``Results.meta`` (0 where unknown)."""
        return cls(int(meta.get("n_samples") or 0), int(meta.get("n_features") or 0), int(meta.get("n_classes") or 0))


@lru_cache(maxsize=8)
def _isotropic(shape: Shape) -> np.ndarray:
    return isotropic_spectrum(max(shape.n, 2), shape.d, 1.0)


def _isotropic_erank(shape: Shape) -> float:
    sigma = np.sqrt(np.clip(_isotropic(shape), 0, None))
    p = sigma / sigma.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def _isotropic_pr(shape: Shape) -> float:
    lam = _isotropic(shape)
    return float(lam.sum() ** 2 / (lam**2).sum())


def _isotropic_stable(shape: Shape) -> float:
    lam = _isotropic(shape)
    return float(lam.sum() / lam.max())


def _chance(shape: Shape) -> float:
    return 1.0 / shape.c if shape.c else float("nan")


# metric key -> (baseline name, baseline from the shape, what the value means)
GUIDE: dict[str, tuple[str, Callable[[Shape], float], str]] = {
    "spectrum/effective_rank": ("isotropic Gaussian, same N × D", _isotropic_erank,
                                "how many directions carry the variance; far below the baseline means dimensional "
                                "collapse"),
    "spectrum/rankme": ("isotropic Gaussian, same N × D", _isotropic_erank,
                        "effective rank of the raw matrix; compare runs of one method"),
    "spectrum/participation_ratio": ("isotropic Gaussian, same N × D", _isotropic_pr,
                                     "number of dominant directions (eigenvalue-weighted)"),
    "spectrum/stable_rank": ("isotropic Gaussian, same N × D", _isotropic_stable,
                             "total variance over the top direction's; near 1 means one direction dominates"),
    "contrastive/uniformity": ("uniform on the sphere (lowest reachable)", lambda s: uniformity_uniform_sphere(s.d),
                               "how evenly the normalised rows cover the sphere; 0 means all rows coincide"),
    "contrastive/mean_cosine": ("uniform on the sphere", lambda s: 0.0,
                                "anisotropy: rows sharing one direction push it towards 1"),
    "contrastive/tolerance": ("uniform on the sphere", lambda s: 0.0,
                              "mean cosine of same-label pairs; 1 means each class has collapsed to a point"),
    "contrastive/infonce": ("complete collapse, ln N", lambda s: float(np.log(s.n)) if s.n > 1 else float("nan"),
                            "InfoNCE at the chosen τ (positive in the denominator); near ln N the embeddings "
                            "cannot tell positives from negatives"),
    "contrastive/effective_negatives": ("all negatives equally hard, N − 1", lambda s: float(s.n - 1),
                                        "how many negatives share the loss's penalty; N − 1 on a fused geometry, "
                                        "near 1 when one hard negative dominates"),
    "knn/accuracy": ("chance, 1/C", _chance, "label agreement of each row's nearest neighbours"),
    "knn/hubness_skew": ("no hubs", lambda s: 0.0, "a few rows being everyone's neighbour makes it large"),
    "neural_collapse/nc1": ("full collapse", lambda s: 0.0,
                            "within-class spread relative to between-class spread; → 0 as classes collapse to means"),
    "neural_collapse/ncc_accuracy": ("chance, 1/C", _chance, "accuracy of the nearest class mean classifier"),
    "orthogonality/class_mean_abs_cosine": ("orthogonal frame", lambda s: 0.0,
                                            "how much class means overlap in direction; 1 means over-fusion"),
    "orthogonality/etf_distance": ("simplex ETF", lambda s: 0.0, "distance of the class-mean Gram to a simplex ETF"),
    "orthogonality/of_distance": ("orthogonal frame", lambda s: 0.0,
                                  "distance of the class-mean Gram to an orthogonal frame"),
    "projection/trustworthiness": ("perfect neighbourhoods", lambda s: 1.0,
                                   "share of 2-D neighbours that are true neighbours; below ~0.9, read the map "
                                   "with care"),
}


def explain(key: str, shape: Shape) -> tuple[str, str]:
    """``(baseline text, meaning)`` for a metric key, empty strings for metrics without a guide entry."""
    if key not in GUIDE or shape.d == 0:
        return "", ""
    name, baseline, meaning = GUIDE[key]
    value = baseline(shape)
    return (f"{value:.4g} ({name})" if np.isfinite(value) else name), meaning
