"""`compare()`: how two representations of the same inputs differ; `cka_matrix()`: many at once.

Two models, two layers, two checkpoints or two modalities embed the same N inputs, row i of
each describing input i. :func:`compare` streams both in row-aligned batches once for the
cross-moment metrics (CKA, debiased CKA, Procrustes, CCA, SVCCA: see
:mod:`geometry_probe.functional.compare`), then runs the tiled neighbour metrics (kNN overlap;
for paired modalities, retrieval and the modality gap: :mod:`geometry_probe.functional.retrieval`).
:func:`cka_matrix` gives linear CKA between every pair of several representations (layers of
one model, checkpoints along training) for heatmaps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geometry_probe import __version__
from geometry_probe._atomic import atomic_write_text
from geometry_probe._validation import check_positive_int, resolve_device
from geometry_probe.embeddings import Embeddings, as_embeddings
from geometry_probe.exceptions import InvalidEmbeddingsError, InvalidInputError
from geometry_probe.functional import compare as cm
from geometry_probe.functional import retrieval
from geometry_probe.result import Result, Results, _clean, compact_json

RECALL_KS = (1, 5, 10)
STREAM_BATCH_ROWS = 16384


def compare(a: Any, b: Any, *, paired: bool = False, knn_k: int | None = 10,
            svcca_variance: float = cm.SVCCA_VARIANCE, svcca_directions: tuple[int, int] | None = None,
            batch_size: int = STREAM_BATCH_ROWS, device: str | torch.device | None = "auto",
            names: tuple[str, str] | None = None) -> Results:
    """Compare two representations of the same inputs.

    Parameters
    ----------
    a, b : ndarray, Tensor, Embeddings or path, of shape (N, Dₐ) and (N, D_b)
        Row i of each describes input i; the widths may differ. NumPy arrays may be memory-mapped
        (the cross-moment metrics read them in batches); a path is read by :func:`geometry_probe.load`.
    paired : bool, default=False
        The two are paired modalities in one embedding space (same D, row i of A paired with
        row i of B, e.g. image and caption): add the modality gap, retrieval Recall@{1,5,10}
        both ways (also after removing the gap), cross-modal alignment and each modality's
        uniformity.
    knn_k : int or None, default=10
        Neighbours for ``knn_overlap``; None skips it (it needs both sets in memory and
        O(N²·D) work).
    svcca_variance : float, default=0.99
        Share of each side's variance that the SVCCA principal directions keep.
    svcca_directions : (int, int), optional
        Use this many top principal directions instead of ``svcca_variance``.
    batch_size : int, default=16384
        Rows per streamed batch.
    device : str or torch.device, default="auto"
    names : (str, str), optional
        Names for the report (default: the Embeddings' names).

    Returns
    -------
    Results
        One :class:`~geometry_probe.result.Result` named ``compare``: scalars ``linear_cka``,
        ``cka_debiased``, ``procrustes``, ``cca_mean``, ``svcca_mean``, ``knn_overlap`` and, when
        ``paired``, ``modality_gap``, ``recall_at_{1,5,10}_{a_to_b,b_to_a}`` (and ``..._gap_removed``),
        ``alignment``, ``uniformity_a``, ``uniformity_b``; arrays of the canonical correlations.

    Examples
    --------
    >>> import torch
    >>> A = torch.randn(200, 8, dtype=torch.float64)
    >>> Q = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]
    >>> s = compare(A, A @ Q + 1, device="cpu").scalars()      # a rotation plus an offset
    >>> round(s["compare/linear_cka"], 9), round(s["compare/procrustes"], 9), round(s["compare/cca_mean"], 9)
    (1.0, 0.0, 1.0)
    """
    ea, eb = _embeddings(a), _embeddings(b)
    check_aligned(ea, eb)
    check_positive_int(batch_size, name="batch_size")
    if not 0 < svcca_variance <= 1:
        raise InvalidInputError(f"svcca_variance: got {svcca_variance!r}; it must be in (0, 1].")
    if svcca_directions is not None:
        if len(svcca_directions) != 2:
            raise InvalidInputError(f"svcca_directions: got {svcca_directions!r}; give two counts (for A and B).")
        svcca_directions = tuple(check_positive_int(k, name="svcca_directions") for k in svcca_directions)
    if paired and ea.n_features != eb.n_features:
        raise InvalidEmbeddingsError(
            f"paired: A has {ea.n_features} features and B {eb.n_features}; paired modalities must share one "
            "embedding space (same D). Leave out paired/--paired to compare spaces of different widths.")
    dev = resolve_device(device)
    moments = stream_moments(ea, eb, batch_size=batch_size, device=dev)
    scalars, arrays, params, notes = _moment_metrics(moments, svcca_variance, svcca_directions)
    if knn_k is not None or paired:
        A, B = whole(ea, dev), whole(eb, dev)
        if knn_k is not None:
            scalars["knn_overlap"] = float(retrieval.knn_jaccard(A, B, check_positive_int(knn_k, name="knn_k")).mean())
            params["knn_k"] = knn_k
            params["knn_similarity"] = "cosine"
        if paired:
            scalars.update(paired_metrics(A, B))
            params["recall_tie_rule"] = "a candidate tying the true partner ranks above it (no hit on ties)"
    label_a, label_b = names or (ea.name, eb.name)
    meta = {"geometry_probe_version": __version__, "torch_version": torch.__version__, "name": f"{label_a} vs {label_b}",
            "a": {"name": label_a, "n_features": ea.n_features, **dict(ea.meta)},
            "b": {"name": label_b, "n_features": eb.n_features, **dict(eb.meta)},
            "n_samples": ea.n_samples, "paired": paired, "device": str(dev)}
    return Results([Result("compare", scalars, arrays=arrays, params=params, notes=tuple(notes))], meta=meta)


def _embeddings(data: Any) -> Embeddings:
    """An Embeddings from an array, tensor, Embeddings or file path (memory-mapped when it can be)."""
    if isinstance(data, (str, os.PathLike)):
        from geometry_probe.io import load

        return load(data)
    return as_embeddings(data)


def check_aligned(ea: Embeddings, eb: Embeddings) -> None:
    """The two sets must have one row per input (the same N, at least 2)."""
    if ea.n_samples != eb.n_samples:
        raise InvalidEmbeddingsError(
            f"compare: {ea.name} has {ea.n_samples} rows and {eb.name} has {eb.n_samples}; the rows must describe "
            "the same inputs in the same order (embed the same data set with both).")
    if ea.n_samples < 2:
        raise InvalidEmbeddingsError(f"compare: {ea.n_samples} rows; comparing representations needs at least 2.")


def stream_moments(ea: Embeddings, eb: Embeddings, *, batch_size: int = STREAM_BATCH_ROWS,
                   device: torch.device | None = None) -> cm.CrossMoments:
    """:class:`~geometry_probe.functional.compare.CrossMoments` of two row-aligned Embeddings, read
    batch by batch (memory-mapped input is never loaded whole)."""
    moments = cm.CrossMoments()
    for (A, _, _), (B, _, _) in zip(ea.batches(batch_size, device=device), eb.batches(batch_size, device=device)):
        moments.add(A, B)
    return moments


def _moment_metrics(moments: cm.CrossMoments, variance: float, directions: tuple[int, int] | None
                    ) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, Any], list[str]]:
    n = moments.n
    rho = cm.canonical_correlations(moments)
    keep = tuple(directions) if directions is not None else cm.svcca_directions(moments, variance)
    svcca = cm.canonical_correlations(moments, directions=keep)
    scalars = {"linear_cka": cm.linear_cka(moments), "cka_debiased": cm.debiased_cka(moments),
               "procrustes": cm.procrustes_distance(moments),
               "cca_mean": float(rho.mean()) if rho.numel() else math.nan,
               "svcca_mean": float(svcca.mean()) if svcca.numel() else math.nan}
    arrays = {"canonical_correlations": rho.cpu().numpy(), "svcca_correlations": svcca.cpu().numpy()}
    params = {"centring": "columns centred (CKA, Procrustes, CCA); debiased CKA is shift-invariant",
              "cka_estimator": "linear kernel; linear_cka biased HSIC (Kornblith 2019), cka_debiased unbiased HSIC "
                               "(Song 2012)",
              "procrustes": "2 - 2 * nuclear_norm(A^T B) on centred inputs scaled to unit Frobenius norm",
              "cca_rank_rtol": cm.CCA_RANK_RTOL, "n_canonical": int(rho.numel()),
              "svcca_directions": [int(k) for k in keep],
              "svcca_variance": None if directions is not None else variance, "precision": "float64"}
    notes = []
    if n < 4:
        notes.append(f"cka_debiased is NaN: the unbiased HSIC needs at least 4 rows, got {n}.")
    elif math.isnan(scalars["cka_debiased"]):
        notes.append("cka_debiased is NaN: a self-HSIC estimate is not positive (a representation is constant or "
                     "N is too small).")
    if math.isnan(scalars["linear_cka"]):
        notes.append("linear_cka, procrustes are NaN: a representation is constant (zero variance).")
    if rho.numel() and n <= rho.numel() * 2 + 1:
        notes.append(f"cca_mean: N = {n} rows is not much more than the {rho.numel()} canonical directions; CCA "
                     "overfits (correlations near 1 whatever the data). Prefer SVCCA or CKA, or use more rows.")
    return scalars, arrays, params, notes


def paired_metrics(A: Tensor, B: Tensor) -> dict[str, float]:
    """Modality gap, retrieval Recall@k both ways (raw and with the gap removed), cross-modal
    alignment and each modality's uniformity, for paired modalities ``A``, ``B`` (same shape)."""
    from geometry_probe.functional.contrastive import alignment, uniformity

    retrieval.check_paired(A, B)
    scalars = {"modality_gap": retrieval.modality_gap(A, B), "alignment": alignment(A, B),
               "uniformity_a": uniformity(A), "uniformity_b": uniformity(B)}
    for suffix, (X, Y) in (("", (A, B)), ("_gap_removed", (retrieval.remove_gap(A), retrieval.remove_gap(B)))):
        to_b, to_a = retrieval.paired_ranks(X, Y)
        for k in RECALL_KS:
            scalars[f"recall_at_{k}_a_to_b{suffix}"] = retrieval.recall_at(to_b, k)
            scalars[f"recall_at_{k}_b_to_a{suffix}"] = retrieval.recall_at(to_a, k)
    return scalars


def whole(emb: Embeddings, device: torch.device) -> Tensor:
    """All rows as one float tensor on ``device`` (float64 input stays float64)."""
    return torch.cat([X for X, _, _ in emb.batches(STREAM_BATCH_ROWS, device=device)])


@dataclass
class CkaMatrix:
    """Linear CKA between every pair of several representations of the same inputs.

    Attributes
    ----------
    names : list of str
        One per representation, in the order given (depth, training step).
    values : ndarray of shape (L, L)
        Symmetric, ones on the diagonal (NaN for a constant representation).
    meta : dict
        What was compared (``kind``: "layers" or "checkpoints", sample count, dimensions).
    """

    names: list[str]
    values: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``names``, ``values`` (NaN → null), ``meta``."""
        return {"names": list(self.names), "values": _clean(self.values), "meta": _clean(self.meta)}

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """JSON text; with ``path``, also written atomically."""
        text = compact_json(self.to_dict()) + "\n"
        if path is not None:
            atomic_write_text(path, text)
        return text

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """The heatmap: a matplotlib figure, or with a ``.html`` path an interactive plotly page."""
        from geometry_probe.reporting.compare_figures import save_heatmap, static_heatmap

        if path is not None:
            return save_heatmap(self, path)
        return static_heatmap(self)


def cka_matrix(representations: Sequence[Any], names: Sequence[str] | None = None, *, kind: str = "representations",
               batch_size: int = STREAM_BATCH_ROWS, device: str | torch.device | None = "auto") -> CkaMatrix:
    r"""Linear CKA (Kornblith et al. 2019) between every pair of ``representations``, streamed.

    Pass i reads representation i with every later one in row-aligned batches and sums the
    float64 cross-products :math:`X_i^\top X_j` (j ≥ i): memory O(Dᵢ·ΣD), never N × N.

    Parameters
    ----------
    representations : sequence of ndarray, Tensor, Embeddings or path
        All with the same N rows, in the same input order; widths may differ.
    names : sequence of str, optional
        Labels (default: the Embeddings' names, or "0", "1", ...).
    kind : str, default="representations"
        What they are ("layers", "checkpoints"), stored in ``meta`` and used in figure titles.

    Returns
    -------
    CkaMatrix

    Examples
    --------
    >>> import torch
    >>> X = torch.randn(100, 4, dtype=torch.float64)
    >>> m = cka_matrix([X, 2 * X, torch.randn(100, 3)], device="cpu")
    >>> round(float(m.values[0, 1]), 9), m.values.shape
    (1.0, (3, 3))
    """
    embs = [_embeddings(r) for r in representations]
    if len(embs) < 2:
        raise InvalidInputError(f"cka_matrix: got {len(embs)} representation(s); a matrix needs at least 2.")
    for other in embs[1:]:
        check_aligned(embs[0], other)
    labels = list(names) if names is not None else [e.name if e.name != "embeddings" else str(i)
                                                    for i, e in enumerate(embs)]
    if len(labels) != len(embs):
        raise InvalidInputError(f"cka_matrix: {len(labels)} names for {len(embs)} representations.")
    dev = resolve_device(device)
    shifts = [next(e.batches(batch_size, device=dev))[0].to(torch.float64).mean(dim=0) for e in embs]
    L, n = len(embs), embs[0].n_samples
    hsic = np.full((L, L), np.nan)
    for i in range(L):
        sums, products = _pass(embs[i:], shifts[i:], batch_size, dev)
        for offset, product in enumerate(products):
            j = i + offset
            centred = product - torch.outer(sums[0], sums[offset]) / n
            hsic[i, j] = hsic[j, i] = float(centred.pow(2).sum())
    scale = np.sqrt(np.diag(hsic).copy())
    with np.errstate(invalid="ignore", divide="ignore"):
        values = hsic / np.outer(scale, scale)
    values[:, scale == 0] = np.nan
    values[scale == 0, :] = np.nan
    meta = {"kind": kind, "metric": "linear_cka", "n_samples": n, "n_features": [e.n_features for e in embs],
            "precision": "float64", "geometry_probe_version": __version__}
    return CkaMatrix(labels, values, meta)


def _pass(embs: Sequence[Embeddings], shifts: Sequence[Tensor], batch_size: int, device: torch.device
          ) -> tuple[list[Tensor], list[Tensor]]:
    """Sums of every representation and the products X₀ᵀXⱼ of the first with each, in one read."""
    sums = [torch.zeros(e.n_features, dtype=torch.float64, device=device) for e in embs]
    products = [torch.zeros(embs[0].n_features, e.n_features, dtype=torch.float64, device=device) for e in embs]
    for batches in zip(*(_shifted(e, s, batch_size, device) for e, s in zip(embs, shifts))):
        for j, X in enumerate(batches):
            sums[j] += X.sum(dim=0)
            products[j].addmm_(batches[0].T, X)
    return sums, products


def _shifted(emb: Embeddings, shift: Tensor, batch_size: int, device: torch.device) -> Iterator[Tensor]:
    for X, _, _ in emb.batches(batch_size, device=device):
        yield X.to(torch.float64) - shift
