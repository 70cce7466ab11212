"""`fmicl` analyzer: f-MICL objectives of positive pairs for six f-divergences (pairwise)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from geometry_probe.analyzers.base import PairwiseAnalyzer
from geometry_probe.analyzers.positives import Positives, chunk_rows
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import fmicl as FM
from geometry_probe.pairwise import unit_rows
from geometry_probe.result import Result

PAIR_BUDGET = 5 * 10**8           # all pairs up to N ≈ 31,600; above, an estimate from sampled pairs
SAMPLED_PAIRS = 2 * 10**6
DISTANCE_SAMPLE = 2000            # positive and negative distances kept for the sorted-distance figure


class FMICL(PairwiseAnalyzer):
    r"""f-MICL objectives (Lu et al., TMLR 2023) of positive pairs, one per f-divergence.

    For unit rows at squared distance :math:`t = 2 - 2\cos`, the f-Gaussian similarity is
    :math:`s_f = f'(\mu e^{-t/(2\sigma^2)})` and

    .. math::

        \texttt{objective\_<f>} = \frac1M \sum_m s_f(\hat x_m, \hat y_m)
        - \alpha\,\frac{1}{N(N-1)}\sum_{i\ne j} f^*\bigl(s_f(\hat z_i, \hat z_j)\bigr)

    (maximised; higher is better) for ``f`` in ``kl``, ``js``, ``pearson``, ``sq_hellinger``,
    ``tsallis`` and ``vlc``: positives over the M positive pairs, negatives over all pairs of
    distinct rows of the embeddings, exact in the shared tile pass up to ``pair_budget`` pairs
    and estimated from ``2e6`` random pairs above it. Definitions and closed forms:
    :mod:`geometry_probe.functional.fmicl`.

    Parameters
    ----------
    views, pairs, groups
        The positives, as for :class:`~geometry_probe.analyzers.contrastive.Contrastive`
        (``views``: row i is the positive of row i; ``pairs``: (M, 2) row indices; ``groups``:
        every pair within a group). One of them is required.
    sigma : float, default=1/√2
        Kernel width σ (the paper's vision setting :math:`(2\sigma^2)^{-1} = 1`).
    mu : float, default=1.0
        Kernel scale μ.
    weight : float, default=1.0
        Weight α of the negative term.
    tsallis_alpha : float, default=1.5
        α of the Tsallis divergence (≠ 1).
    exact : bool, optional
        All pairs (True) or sampled pairs (False) for the negative term; default: exact up to
        ``pair_budget`` pairs.
    pair_budget : int, default=5e8
    seed : int, default=0

    Notes
    -----
    ``arrays`` also hold up to 2,000 sorted positive and random-pair distances, the data of the
    paper's sorted pairwise-distance figure
    (:func:`geometry_probe.reporting.contrastive_figures.plot_sorted_distances`).

    References
    ----------
    .. [1] Y. Lu, G. Zhang, S. Sun, H. Guo, Y. Yu, "f-MICL: Understanding and generalizing
       InfoNCE-based contrastive learning", TMLR 2023, arXiv:2402.10150.
    """

    name: ClassVar[str] = "fmicl"
    requires_positives: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale", "permutation"})

    def __init__(self, *, views: Any = None, pairs: Any = None, groups: Any = None, sigma: float = FM.DEFAULT_SIGMA,
                 mu: float = 1.0, weight: float = 1.0, tsallis_alpha: float = FM.DEFAULT_TSALLIS_ALPHA,
                 exact: bool | None = None, pair_budget: int = PAIR_BUDGET, seed: int = 0) -> None:
        super().__init__()
        self.positives = Positives(views, pairs, groups)
        if not self.positives.given:
            raise InvalidInputError("analyzer 'fmicl' needs positive pairs: pass views=, pairs= or groups= "
                                    "(library) or --views, --pairs or --groups (CLI).")
        FM.check_kernel(sigma, mu, tsallis_alpha)
        self.sigma, self.mu, self.weight, self.tsallis_alpha = sigma, mu, weight, tsallis_alpha
        self.exact, self.pair_budget, self.seed = exact, pair_budget, seed

    def start(self, emb: Embeddings, *, device: torch.device) -> FM.FmiclSums | None:
        """The negative-term sums for the shared tile pass when exact, else ``None`` (sampled)."""
        if not self._exact(emb.n_samples):
            return None
        return FM.FmiclSums(sigma=self.sigma, mu=self.mu, tsallis_alpha=self.tsallis_alpha)

    def _exact(self, n_samples: int) -> bool:
        return self.exact if self.exact is not None else n_samples * (n_samples - 1) / 2 <= self.pair_budget

    def finish(self, emb: Embeddings, X: torch.Tensor | None, consumer: FM.FmiclSums | None, *,
               device: torch.device, dtype: torch.dtype) -> Result:
        """The six objectives and the sorted-distance samples."""
        rng = np.random.default_rng(self.seed)
        pos_cos, _ = self.positives.cosines(emb, device)
        pos_t = np.clip(2 - 2 * pos_cos, 0, 4)
        if consumer is not None:
            negatives, estimator = consumer.means(), "exact, all pairs i<j of the embeddings"
        else:
            negatives = self._sampled_negatives(emb, device, rng)
            estimator = f"{SAMPLED_PAIRS} sampled pairs i!=j of the embeddings"
        objectives = FM.objectives(pos_t, negatives, sigma=self.sigma, mu=self.mu, weight=self.weight,
                                   tsallis_alpha=self.tsallis_alpha)
        arrays = {"distance_sample_pos": np.sort(np.sqrt(rng.choice(pos_t, min(DISTANCE_SAMPLE, len(pos_t)),
                                                                    replace=False))),
                  "distance_sample_neg": np.sort(_random_pair_distances(emb, device, DISTANCE_SAMPLE, rng))}
        return Result(self.name, {f"objective_{f}": v for f, v in objectives.items()}, arrays=arrays,
                      params={"sigma": self.sigma, "mu": self.mu, "weight": self.weight,
                              "tsallis_alpha": self.tsallis_alpha, "negatives": estimator,
                              "positives": f"{len(pos_t)} pairs", "normalisation": "L2 rows",
                              "distance_samples": f"up to {DISTANCE_SAMPLE} positive pairs and {DISTANCE_SAMPLE} "
                                                  "random pairs i!=j, sorted"})

    def _sampled_negatives(self, emb: Embeddings, device: torch.device, rng: np.random.Generator) -> dict[str, float]:
        """Mean f*(s_f) per divergence over ``SAMPLED_PAIRS`` random pairs of distinct rows."""
        sums = FM.FmiclSums(sigma=self.sigma, mu=self.mu, tsallis_alpha=self.tsallis_alpha)
        rows = chunk_rows(emb.n_features)
        i, j = random_pairs(emb.n_samples, SAMPLED_PAIRS, rng)
        for s in range(0, SAMPLED_PAIRS, rows):
            U = unit_rows(emb.rows(i[s:s + rows], device=device)).to(torch.float64)
            V = unit_rows(emb.rows(j[s:s + rows], device=device)).to(torch.float64)
            sums.add((U * V).sum(dim=1).clamp(-1, 1))
        return sums.means()


def random_pairs(N: int, M: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """M pairs (i, j), i != j, uniform among ordered pairs of distinct rows."""
    i = rng.integers(0, N, M)
    return i, (i + rng.integers(1, N, M)) % N


def _random_pair_distances(emb: Embeddings, device: torch.device, M: int, rng: np.random.Generator) -> np.ndarray:
    """Distances between unit rows of M random pairs of distinct rows (float64)."""
    i, j = random_pairs(emb.n_samples, M, rng)
    U = unit_rows(emb.rows(i, device=device)).to(torch.float64)
    V = unit_rows(emb.rows(j, device=device)).to(torch.float64)
    return torch.linalg.vector_norm(U - V, dim=1).cpu().numpy()
