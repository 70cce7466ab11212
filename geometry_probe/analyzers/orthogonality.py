"""Streaming orthogonality analyzer: how close the class means are to an orthogonal frame."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from geometry_probe.analyzers.base import Analyzer
from geometry_probe.batch import Batch
from geometry_probe.exceptions import MissingLabelsError
from geometry_probe.functional import class_geometry as G
from geometry_probe.functional import class_pairs as P
from geometry_probe.result import Result
from geometry_probe.stats import ClassSums

MATRIX_MAX_CLASSES = 256


class Orthogonality(Analyzer):
    """Class-mean orthogonality: cosine and SimO matrices, distances to an orthogonal frame and a simplex ETF.

    One streaming pass sums the rows of each class (no D×D matrix). By default the rows
    are L2-normalised first (``normalize=True``), the convention of SupCon, SimO and CLOA
    (metrics-reference §5.2): a class mean is then the mean direction of its class, with
    norm <= 1 that shrinks with the within-class spread. Zero rows have no direction and
    raise, naming the rows; ``normalize=False`` uses the raw class means.

    Scalars (family ``orthogonality/``), all on the *uncentred* class means μ_c:

    * ``class_mean_abs_cosine``: mean ``|cos(μ_c, μ_c')|`` over c ≠ c' (0 for an orthogonal
      frame, 1/(C−1) for a simplex ETF, 1 when all means are parallel);
    * ``max_abs_cosine``: the largest of those (mutual coherence);
    * ``of_distance``: ‖G/‖G‖_F − I/√C‖_F with G = M Mᵀ (Kini et al.'s Δ_OF; unequal norms
      count);
    * ``etf_distance``: ‖G/‖G‖_F − (I − 11ᵀ/C)/√(C−1)‖_F on the same uncentred Gram, so an
      orthogonal frame and a simplex ETF are told apart (0.459506 vs 0 for C = 5 in either
      direction). The centred version is ``neural_collapse/nc2_etf_error``;
    * ``welch_bound`` (only when C > D, where C orthogonal directions cannot exist):
      the smallest possible ``max_abs_cosine`` of C unit vectors in D dimensions.

    Arrays (C × C in label-code order, NaN for classes without samples; left out with a
    note when there are more than ``matrix_max_classes`` classes):

    * ``class_mean_cosine``: cosines of the uncentred means (ideal: identity);
    * ``class_mean_cosine_centred``: cosines after subtracting the mean of the class means
      (neural-collapse convention; ideal: simplex ETF, off-diagonal −1/(C−1));
    * ``simo_sqdot`` = (μ_c·μ_c')² and ``simo_distance`` = ‖μ_c − μ_c'‖²: SimO's
      pair quantities on the same class means, unscaled, diagonal kept (‖μ_c‖⁴ and 0);
      with ``normalize=True`` they lie in [0, 1] and [0, 4];
    * ``class_mean_norm`` (C,): ‖μ_c‖.

    Parameters
    ----------
    n_classes : int, optional
        Number of label codes.
    normalize : bool, default=True
        Average L2-normalised rows (True) or raw rows (False).
    matrix_max_classes : int, default=256
        Largest C for which the C × C arrays are returned.
    seed : int, default=0
        Seed of the class-pair sample (see below).

    Many classes: above 2,048 classes no C × C matrix is formed
    (:mod:`~geometry_probe.functional.class_pairs`): ``of_distance`` and ``etf_distance`` in
    closed form from Tr G, ‖Σ μ_c‖² and ‖MᵀM‖_F; ``class_mean_abs_cosine`` and ``max_abs_cosine``
    over tiles of all pairs up to 5·10⁷ pairs, above that from 2·10⁵ seeded pairs
    (``class_mean_abs_cosine_std_error`` is added, and ``max_abs_cosine`` is then the largest
    value seen: a lower bound). ``params["pair_metrics"]`` says which ran.

    References
    ----------
    .. [1] C. Kini et al., "Symmetric neural collapse representations with supervised
       contrastive loss: the impact of ReLU and batching", ICLR 2024.
    .. [2] A. Bouhsine et al., "SimO loss: anchor-free contrastive loss for fine-grained
       supervised contrastive learning", arXiv:2410.05233, 2024.
    .. [3] L. Welch, "Lower bounds on the maximum cross correlation of signals", IEEE
       Trans. Inf. Theory 20(3), 1974.

    Examples
    --------
    >>> import numpy as np, geometry_probe as gp
    >>> X, y = np.repeat(np.eye(3, 5), 4, axis=0), np.repeat([0, 1, 2], 4)   # an orthogonal frame
    >>> res = gp.analyze(X, "orthogonality", labels=y)["orthogonality"]
    >>> round(res.scalars["of_distance"], 12), round(res.scalars["etf_distance"], 6)
    (0.0, 0.605811)
    """

    name: ClassVar[str] = "orthogonality"
    requires_labels: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = True
    invariances: ClassVar[frozenset[str]] = frozenset({"rotation", "scale", "permutation", "relabel"})

    def __init__(self, *, n_classes: int | None = None, normalize: bool = True,
                 matrix_max_classes: int = MATRIX_MAX_CLASSES, seed: int = 0) -> None:
        super().__init__(n_classes=n_classes)
        self.normalize = normalize
        self.matrix_max_classes = matrix_max_classes
        self.seed = seed

    def _stats(self, batch: Batch) -> ClassSums:
        if batch.labels is None:
            raise MissingLabelsError(f"{self.name!r} needs labels: pass labels=... (library) or --labels (CLI).")
        rows = batch.unit_rows if self.normalize else batch.X
        return batch.class_sums(rows)

    def _compute(self, state: ClassSums) -> Result:
        n = state.n.detach().cpu().numpy()
        present = np.flatnonzero(n > 0)
        K = state.n_classes
        s1 = state.s1.detach().cpu().numpy()
        M = (s1 if present.size == n.size else s1[present]) / n[present, None]   # (C, D), made once: C may be 10⁵
        C, D = M.shape
        if C > P.MATRIX_MAX_CLASSES:
            scalars, how = _pair_scalars(M, self.seed)
        else:
            cosines = G.cosine_matrix(M)
            scalars = {
                "class_mean_abs_cosine": G.mean_abs_cosine(cosines),
                "max_abs_cosine": G.max_abs_cosine(cosines),
                "of_distance": G.orthogonal_frame_error(M),
                "etf_distance": G.etf_error(M),
            }
            how = {"pair_metrics": "C x C cosine matrix"}
        if C > D:
            scalars["welch_bound"] = G.welch_bound(C, D)
        arrays = {"class_mean_norm": _scatter_vector(G.row_norms(M), present, K)}
        notes = _notes(K, present, M)
        if K <= self.matrix_max_classes:
            cosines = G.cosine_matrix(M)
            sqdot, sqdist = G.simo_matrices(M)
            arrays.update({
                "class_mean_cosine": _scatter_matrix(cosines, present, K),
                "class_mean_cosine_centred": _scatter_matrix(G.cosine_matrix(M - M.mean(axis=0)), present, K),
                "simo_sqdot": _scatter_matrix(sqdot, present, K),
                "simo_distance": _scatter_matrix(sqdist, present, K),
            })
        else:
            notes.append(f"{K} classes: the C x C matrices are left out (more than matrix_max_classes="
                         f"{self.matrix_max_classes}); raise it to keep them.")
        params: dict[str, Any] = {
            "normalize": self.normalize,
            "class_means": "means of L2-normalised rows" if self.normalize else "means of raw rows",
            "scalars_on": "uncentred class means",
            "of_distance": "|| G/||G||_F - I/sqrt(C) ||_F, G = M M^T",
            "etf_distance": "|| G/||G||_F - (I - 11^T/C)/sqrt(C-1) ||_F, same uncentred G",
            "class_mean_cosine_centred": "centred on the mean of the class means",
            "simo": "sqdot = (mu_c . mu_c')^2, distance = ||mu_c - mu_c'||^2; no rescaling, diagonal kept",
            "welch_bound": "sqrt((C-D) / (D (C-1))), reported when C > D",
            "matrix_max_classes": self.matrix_max_classes,
            "n_classes_used": int(C),
            **how,
        }
        return Result(self.name, scalars, arrays=arrays, params=params, notes=tuple(notes))


def _pair_scalars(M: np.ndarray, seed: int) -> tuple[dict[str, float], dict[str, str]]:
    """The four scores without a C × C matrix (closed forms, tiles or seeded pairs)."""
    norms = G.row_norms(M)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = P.pair_estimates(M, {"abs_cos": lambda d, i, j: np.abs(np.clip(d / (norms[i] * norms[j]), -1, 1))},
                               seed=seed)["abs_cos"]
    scalars = {"class_mean_abs_cosine": est.mean, "max_abs_cosine": est.maximum,
               "of_distance": P.gram_distance(M, "of", seed=seed), "etf_distance": P.gram_distance(M, "etf", seed=seed)}
    if not est.exact:
        scalars["class_mean_abs_cosine_std_error"] = est.std_error
    total = len(M) * (len(M) - 1) // 2
    how = {"pair_metrics": f"{len(M):,} classes: no C x C matrix; mean/max |cos|: {est.describe(total)}"
                           + ("" if est.exact else " (max_abs_cosine: the largest value seen, a lower bound)"),
           "pair_seed": str(seed)}
    return scalars, how


def _scatter_matrix(values: np.ndarray, present: np.ndarray, K: int) -> np.ndarray:
    full = np.full((K, K), math.nan)
    full[np.ix_(present, present)] = values
    return full


def _scatter_vector(values: np.ndarray, present: np.ndarray, K: int) -> np.ndarray:
    full = np.full(K, math.nan)
    full[present] = values
    return full


def _notes(K: int, present: np.ndarray, M: np.ndarray) -> list[str]:
    C, D = M.shape
    notes = []
    if C < K:
        empty = sorted(set(range(K)) - {int(k) for k in present})
        shown = ", ".join(str(k) for k in empty[:10]) + (", ..." if len(empty) > 10 else "")
        notes.append(f"{len(empty)} of {K} classes have no samples and were dropped (codes {shown}); "
                     "their matrix rows are NaN.")
    if C < 2:
        notes.append(f"only {C} class with samples: pairwise class-mean scores need two, so they are NaN.")
        return notes
    zero = int(np.sum(G.row_norms(M) == 0))
    if zero:
        notes.append(f"{zero} class means are exactly zero: their cosines are undefined (NaN), and so are the "
                     "cosine scores.")
    if C > D:
        notes.append(f"C = {C} classes in D = {D} dimensions: C mutually orthogonal means are impossible; "
                     f"the Welch bound {G.welch_bound(C, D):.6g} is the smallest achievable max_abs_cosine.")
    return notes
