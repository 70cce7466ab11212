r"""f-MICL: f-mutual-information contrastive objectives with the f-Gaussian similarity (Lu et al., 2023).

For unit rows at squared distance :math:`t = \lVert \hat x - \hat y\rVert^2 = 2 - 2\cos \in [0, 4]`,
the Gaussian kernel is :math:`G_\sigma(t) = \mu\, e^{-t/(2\sigma^2)}` and the f-Gaussian similarity
is :math:`s_f = f'(G_\sigma(t))`. The batch objective (maximised) is

.. math::

    \mathcal O_f = \frac1M \sum_{m} s_f(\hat x_m, \hat y_m)
    - \alpha \, \frac{1}{N(N-1)} \sum_{i \ne j} f^*\bigl(s_f(\hat x_i, \hat x_j)\bigr),

positives over the M positive pairs, negatives over all pairs of distinct rows of the embeddings
(the other samples of the same view). :math:`f^* \circ f'` has a closed form for each divergence
(the paper's Table 1; :math:`u = G_\sigma(t)`):

================  ==================================  =============================================
divergence        :math:`f'(u)`                       :math:`f^*(f'(u))`
================  ==================================  =============================================
``kl``            :math:`\log u + 1`                  :math:`u`
``js``            :math:`\log 2 + \log\frac{u}{1+u}`  :math:`\log\frac{1+u}{2}`
``pearson``       :math:`2(u - 1)`                    :math:`u^2 - 1`
``sq_hellinger``  :math:`1 - u^{-1/2}`                :math:`u^{1/2} - 1`
``tsallis``       :math:`\frac{a}{a-1} u^{a-1}`       :math:`u^{a}`
``vlc``           :math:`1 - \frac{4}{(1+u)^2}`       :math:`3 - \frac{8}{1+u} + \frac{4}{(1+u)^2}`
================  ==================================  =============================================

(For VLC, :math:`f^*(t) = 4 - t - 4\sqrt{1-t}` at :math:`t = f'(u)` gives
:math:`(3u+1)(u-1)/(u+1)^2`; the shorter :math:`3 - 4/(1+u)` found in some transcriptions of the
table is not the conjugate, e.g. 1.857 instead of 1.041 at u = 2.5.)

The negative term's kernel :math:`h = f^*\circ f'\circ G_\sigma` is strictly convex on [0, 4]
for all six at μ = 1 and the default σ (checked numerically in tests/test_fmicl.py), so for
:math:`2 \le N \le d + 1` its minimisers are the regular simplex (all pairwise distances equal,
:math:`t = 2N/(N-1)`); reverse KL (:math:`h` linear) and Neyman χ² (:math:`h` concave) are not,
and collapse (paper, Theorem "uniformity").

References
----------
.. [1] Y. Lu, G. Zhang, S. Sun, H. Guo, Y. Yu, "f-MICL: Understanding and generalizing
   InfoNCE-based contrastive learning", TMLR 2023, arXiv:2402.10150.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from geometry_probe.exceptions import InvalidInputError
from geometry_probe.pairwise import Tile, run_pass, sum64, sum_sq64, unit_rows

DIVERGENCES = ("kl", "js", "pearson", "sq_hellinger", "tsallis", "vlc")
DEFAULT_SIGMA = 1 / math.sqrt(2)        # the paper's vision setting (2σ²)⁻¹ = 1
DEFAULT_TSALLIS_ALPHA = 1.5


def check_divergence(f: str) -> None:
    """Raise a clear error for an unknown divergence name."""
    if f not in DIVERGENCES:
        raise InvalidInputError(f"f-MICL divergence must be one of {', '.join(DIVERGENCES)}, got {f!r}.")


def check_kernel(sigma: float, mu: float, tsallis_alpha: float) -> None:
    """σ > 0, μ > 0 and Tsallis α > 0, α ≠ 1, all finite."""
    for name, value in (("sigma", sigma), ("mu", mu), ("tsallis_alpha", tsallis_alpha)):
        if not (math.isfinite(value) and value > 0):
            raise InvalidInputError(f"f-MICL {name} must be finite and > 0, got {value!r}.")
    if tsallis_alpha == 1:
        raise InvalidInputError("f-MICL tsallis_alpha must differ from 1 (α = 1 is KL).")


def gaussian_kernel(sq_dist: Tensor, *, sigma: float = DEFAULT_SIGMA, mu: float = 1.0) -> Tensor:
    r""":math:`G_\sigma(t) = \mu\, e^{-t/(2\sigma^2)}` of squared distances ``t``."""
    return mu * torch.exp(-sq_dist / (2 * sigma**2))


def f_prime(u: Tensor, f: str, *, tsallis_alpha: float = DEFAULT_TSALLIS_ALPHA) -> Tensor:
    """:math:`f'(u)` for ``u > 0`` (the f-Gaussian similarity when ``u = G_σ(t)``)."""
    check_divergence(f)
    a = tsallis_alpha
    return {"kl": lambda: torch.log(u) + 1,
            "js": lambda: math.log(2) + torch.log(u) - torch.log1p(u),
            "pearson": lambda: 2 * (u - 1),
            "sq_hellinger": lambda: 1 - u.rsqrt(),
            "tsallis": lambda: a / (a - 1) * u.pow(a - 1),
            "vlc": lambda: 1 - 4 / (1 + u) ** 2}[f]()


def conjugate_of_prime(u: Tensor, f: str, *, tsallis_alpha: float = DEFAULT_TSALLIS_ALPHA) -> Tensor:
    r""":math:`f^*(f'(u))` in closed form (the negative term of each pair)."""
    check_divergence(f)
    a = tsallis_alpha
    return {"kl": lambda: u.clone(),
            "js": lambda: torch.log1p(u) - math.log(2),
            "pearson": lambda: u * u - 1,
            "sq_hellinger": lambda: u.sqrt() - 1,
            "tsallis": lambda: u.pow(a),
            "vlc": lambda: 3 - 8 / (1 + u) + 4 / (1 + u) ** 2}[f]()


def f_gaussian_similarity(X: Tensor | np.ndarray, Y: Tensor | np.ndarray, f: str = "kl", *,
                          sigma: float = DEFAULT_SIGMA, mu: float = 1.0,
                          tsallis_alpha: float = DEFAULT_TSALLIS_ALPHA) -> np.ndarray:
    r"""Row-wise f-Gaussian similarity :math:`s_f = f'(\mu e^{-\lVert \hat x_m-\hat y_m\rVert^2/(2\sigma^2)})`.

    Parameters
    ----------
    X, Y : array or Tensor of shape (n_pairs, n_features)
        Row m of ``X`` and of ``Y`` form a pair; rows are L2-normalised first.
    f : {"kl", "js", "pearson", "sq_hellinger", "tsallis", "vlc"}
    sigma, mu : float
    tsallis_alpha : float

    Returns
    -------
    ndarray of shape (n_pairs,), float64

    Examples
    --------
    >>> import numpy as np
    >>> f_gaussian_similarity(np.eye(2), np.eye(2), "kl", mu=1.0).tolist()   # log 1 + 1
    [1.0, 1.0]
    """
    check_kernel(sigma, mu, tsallis_alpha)
    t = _paired_sq_dist(torch.as_tensor(X), torch.as_tensor(Y))
    return f_prime(gaussian_kernel(t, sigma=sigma, mu=mu), f, tsallis_alpha=tsallis_alpha).cpu().numpy()


def _paired_sq_dist(X: Tensor, Y: Tensor) -> Tensor:
    if X.shape != Y.shape:
        raise InvalidInputError(f"f-MICL pairs: shapes {tuple(X.shape)} and {tuple(Y.shape)} differ.")
    U, V = unit_rows(X).to(torch.float64), unit_rows(Y).to(torch.float64)
    return ((U - V) ** 2).sum(dim=1).clamp(0, 4)


class FmiclSums:
    r"""Float64 sums over pairs :math:`i < j` of :math:`f^*(s_f)` for every divergence, tile by tile.

    Each tile's kernel :math:`u = \mu e^{-(2 - 2\cos)/(2\sigma^2)}` is computed once (float32 on
    float32 tiles), then each divergence's closed form is summed (float32 within the tile,
    float64 across tiles). A diagonal tile counts its square without the diagonal, halved.
    """

    def __init__(self, *, sigma: float = DEFAULT_SIGMA, mu: float = 1.0,
                 tsallis_alpha: float = DEFAULT_TSALLIS_ALPHA, divergences: Sequence[str] = DIVERGENCES) -> None:
        check_kernel(sigma, mu, tsallis_alpha)
        for f in divergences:
            check_divergence(f)
        self.sigma, self.mu, self.tsallis_alpha = sigma, mu, tsallis_alpha
        self.divergences = tuple(divergences)
        self.count = 0.0
        self._sums: Tensor | None = None

    def add_tile(self, tile: Tile) -> None:
        """Add the pairs i < j of ``tile``."""
        self.add(tile.cosine, diagonal=tile.diagonal)

    def add(self, cos: Tensor, *, diagonal: bool = False) -> None:
        """Add the cosines of distinct pairs (``diagonal``: a square tile holding each pair twice
        and the self-pairs on its diagonal)."""
        if self._sums is None:
            self._sums = torch.zeros(len(self.divergences), dtype=torch.float64, device=cos.device)
        # u = μ exp(−(2 − 2cos)/(2σ²)) = μ exp((cos − 1)/σ²), cos clamped to [−1, 1]: one temporary
        u = torch.clamp(cos, -1.0, 1.0).sub_(1.0).div_(self.sigma**2).exp_().mul_(self.mu)
        weight = 0.5 if diagonal else 1.0
        self.count += weight * (cos.numel() - (cos.shape[0] if diagonal else 0))
        totals = torch.stack([_summed_conjugate(u, f, self.tsallis_alpha) for f in self.divergences])   # float64
        if diagonal:
            d = torch.diagonal(u)
            totals -= torch.stack([conjugate_of_prime(d, f, tsallis_alpha=self.tsallis_alpha).sum()
                                   for f in self.divergences]).to(torch.float64)
        self._sums += weight * totals

    def means(self) -> dict[str, float]:
        r"""Mean of :math:`f^*(s_f)` over the pairs added, per divergence."""
        if self._sums is None or not self.count:
            return {f: math.nan for f in self.divergences}
        return {f: float(self._sums[k]) / self.count for k, f in enumerate(self.divergences)}


def _summed_conjugate(u: Tensor, f: str, tsallis_alpha: float) -> Tensor:
    """:math:`\\sum f^*(f'(u))` over all entries of ``u``, as one transform and one reduction each
    (the constants of the closed forms are added once, in float64: e.g. Pearson :math:`\\lVert u\\rVert^2 - n`)."""
    n = u.numel()
    if f == "kl":
        return sum64(u)
    if f == "js":
        return sum64(torch.log1p(u)) - n * math.log(2)
    if f == "pearson":
        return sum_sq64(u) - n
    if f == "sq_hellinger":
        return sum64(torch.sqrt(u)) - n
    if f == "tsallis":
        return sum64(torch.pow(u, tsallis_alpha))
    # VLC: 3 − 8/(1+u) + 4/(1+u)² = 4 (1/(1+u) − 1)² − 1
    return 4 * sum_sq64(torch.add(u, 1.0).reciprocal_().sub_(1.0)) - n


def objectives(positive_sq_dist: np.ndarray | Tensor, negative_means: dict[str, float], *,
               sigma: float = DEFAULT_SIGMA, mu: float = 1.0, weight: float = 1.0,
               tsallis_alpha: float = DEFAULT_TSALLIS_ALPHA) -> dict[str, float]:
    r""":math:`\mathcal O_f` = mean positive :math:`s_f` − ``weight`` · mean negative :math:`f^*(s_f)`
    for every divergence in ``negative_means`` (from :class:`FmiclSums` or a sample)."""
    t = torch.as_tensor(positive_sq_dist, dtype=torch.float64)
    u = gaussian_kernel(t, sigma=sigma, mu=mu)
    return {f: float(f_prime(u, f, tsallis_alpha=tsallis_alpha).mean()) - weight * neg
            for f, neg in negative_means.items()}


def fmicl_objectives(X: Tensor | np.ndarray, Y: Tensor | np.ndarray, *, sigma: float = DEFAULT_SIGMA,
                     mu: float = 1.0, weight: float = 1.0, tsallis_alpha: float = DEFAULT_TSALLIS_ALPHA,
                     tile: int | None = None) -> dict[str, float]:
    r"""f-MICL objective :math:`\mathcal O_f` of paired views for every divergence (exact, tiled).

    Parameters
    ----------
    X, Y : array or Tensor of shape (n_samples, n_features)
        Row i of ``Y`` is the positive of row i of ``X``; negatives are the pairs of rows of ``X``.
    sigma, mu : float
        Kernel width and scale (μ = 1, :math:`(2\sigma^2)^{-1} = 1` by default, as in the paper).
    weight : float, default=1.0
        α, the weight of the negative term.
    tsallis_alpha : float, default=1.5
    tile : int, optional

    Returns
    -------
    dict of str to float
        One objective per divergence in ``DIVERGENCES`` (higher is better).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0]])        # antipodal pair, views identical
    >>> round(fmicl_objectives(X, X)["kl"], 6)          # (log 1 + 1) − e^{−4}
    0.981684
    """
    check_kernel(sigma, mu, tsallis_alpha)
    X = torch.as_tensor(X)
    if X.shape[0] < 2:
        raise InvalidInputError(f"f-MICL needs at least 2 rows (one negative pair), got {X.shape[0]}.")
    sums = FmiclSums(sigma=sigma, mu=mu, tsallis_alpha=tsallis_alpha)
    run_pass(X, [sums], tile=tile)
    return objectives(_paired_sq_dist(X, torch.as_tensor(Y)), sums.means(), sigma=sigma, mu=mu, weight=weight,
                      tsallis_alpha=tsallis_alpha)
