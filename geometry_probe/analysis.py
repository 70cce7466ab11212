"""`analyze()`: all chosen analyzers over one streaming pass of the data."""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from geometry_probe import __version__
from geometry_probe._validation import as_sequence, check_choice, check_positive_int, resolve_device
from geometry_probe.analyzers import ANALYZERS, Analyzer, PairwiseAnalyzer, get_analyzer
from geometry_probe.analyzers.base import run_pairwise
from geometry_probe.batch import Batch
from geometry_probe.diagnosis import diagnose
from geometry_probe.embeddings import Embeddings, as_embeddings
from geometry_probe.exceptions import MissingLabelsError
from geometry_probe.pairwise import PAIRWISE_PRECISIONS
from geometry_probe.result import Results

BATCH_MEMORY_BYTES = 128 * 2**20
PRECISIONS = ("float32", "float64")


def default_batch_size(n_features: int, *, memory_bytes: int = BATCH_MEMORY_BYTES) -> int:
    """Rows per batch so that a float32 batch and its centred copy fit ``memory_bytes``."""
    return max(256, memory_bytes // (2 * 4 * max(n_features, 1)))


def analyze(data: Any, analyzers: str | Sequence[str | Analyzer | PairwiseAnalyzer] | None = None, *,
            labels: Any = None, device: str | torch.device | None = "auto", batch_size: int | None = None,
            precision: str = "float32", pairwise_precision: str = "float32", seed: int = 0,
            params: Mapping[str, Mapping[str, Any]] | None = None, coarse_labels: Any = None,
            verdicts: bool = True) -> Results:
    """Run analyzers on embeddings in one streaming pass and return their :class:`Results`.

    Parameters
    ----------
    data : Embeddings, ndarray or Tensor of shape (n_samples, n_features)
        Tensors may live on any device; NumPy arrays may be memory-mapped.
    analyzers : str or sequence of str/analyzer, optional
        Registry names (``"spectrum"``, or ``"spectrum,neural_collapse"``) or instances.
        Default: every registered analyzer that applies (those needing labels only when
        labels are present).
    labels : array-like of shape (n_samples,), optional
        Overrides the labels stored in ``data``.
    device : str or torch.device, default="auto"
        Where batches are processed: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:1"``.
    batch_size : int, optional
        Rows per batch; default from a 128 MB budget.
    precision : {"float32", "float64"}, default="float32"
        Precision of the per-batch GEMMs (sums are float64 either way). float64 input is
        always processed in float64.
    pairwise_precision : {"float32", "bfloat16", "tf32"}, default="float32"
        Precision of the pairwise tile GEMMs (``contrastive``, ``knn``). bfloat16 gives cosines
        to ~4e-3 (errors average out in pair means: uniformity within 1e-7 of float32, 10-NN recall
        0.988 at 20,000 x 768) and pays off only on GPUs or CPUs with AMX/AVX-512-BF16;
        tf32 (CUDA only; plain float32 elsewhere) gives cosines to ~1e-3. See
        :mod:`geometry_probe.pairwise`.
    seed : int, default=0
        Seed for every subsample an analyzer takes.
    params : mapping, optional
        Per-analyzer keyword arguments, e.g. ``{"spectrum": {"rankme_eps": 1e-5}}``.
    coarse_labels : array-like of shape (n_samples,), optional
        Super-class labels; with ``labels`` they enable the ``class_collapse`` finding.
    verdicts : bool, default=True
        Attach collapse findings (about 0.1 s: sphere statistics of a 1024-row subsample).

    The returned ``Results.findings`` hold the collapse verdicts of
    :func:`geometry_probe.diagnosis.diagnose`.

    Returns
    -------
    Results

    Examples
    --------
    >>> import numpy as np
    >>> res = analyze(np.random.default_rng(0).normal(size=(500, 8)), "spectrum")
    >>> 7.5 < res.scalars()["spectrum/effective_rank"] <= 8
    True
    """
    started = time.perf_counter()
    emb = as_embeddings(data, labels)
    check_choice(precision, PRECISIONS, name="precision")
    check_choice(pairwise_precision, PAIRWISE_PRECISIONS, name="pairwise_precision")
    dev = resolve_device(device)
    batch_size = check_positive_int(batch_size, name="batch_size") if batch_size is not None \
        else default_batch_size(emb.n_features)
    chosen = _instantiate(emb, analyzers, params or {}, seed)
    streaming = [a for a in chosen if isinstance(a, Analyzer)]
    pairwise = [a for a in chosen if not isinstance(a, Analyzer)]
    dtype = torch.float64 if precision == "float64" else None

    if streaming:
        _stream(emb, streaming, batch_size=batch_size, device=dev, dtype=dtype)
    results = [a.compute() for a in streaming]
    if pairwise:
        results += run_pairwise(emb, pairwise, device=dev, precision=pairwise_precision)
    meta = {
        **emb.summary(),
        "geometry_probe_version": __version__,
        "torch_version": torch.__version__,
        "device": str(dev),
        "precision": precision,
        "pairwise_precision": pairwise_precision,
        "batch_size": batch_size,
        "seed": seed,
        "analyzers": [r.analyzer for r in results],
        "elapsed_s": round(time.perf_counter() - started, 4),
    }
    out = Results(results, meta=meta)
    if verdicts:
        out.findings = diagnose(out, emb, coarse_labels=coarse_labels, random_state=seed)
    return out


def _stream(emb: Embeddings, analyzers: list[Analyzer], *, batch_size: int, device: torch.device,
            dtype: torch.dtype | None) -> None:
    for X, y, offset in emb.batches(batch_size, device=device, dtype=dtype):
        batch = Batch(X, y, n_classes=emb.n_classes, offset=offset)
        if any(a.wants_class_scatter(batch) for a in analyzers):
            _ = batch.class_scatter                  # compute once; the rest derives from it
        elif any(a.wants_class_moments(batch) for a in analyzers):
            _ = batch.class_moments                  # one GEMM also serves batch.moments
        for a in analyzers:
            a.update_batch(batch)
    second = [a for a in analyzers if a.needs_second_pass()]
    if second:
        for X, y, offset in emb.batches(batch_size, device=device, dtype=dtype):
            batch = Batch(X, y, n_classes=emb.n_classes, offset=offset)
            for a in second:
                a.update_second_pass(batch)


def _instantiate(emb: Embeddings, analyzers: Any, params: Mapping[str, Mapping[str, Any]],
                 seed: int) -> list[Analyzer | PairwiseAnalyzer]:
    names = as_sequence(analyzers) if isinstance(analyzers, str) else analyzers
    if names is None:
        names = [n for n, cls in ANALYZERS.items() if emb.labels is not None or not cls.requires_labels]
    chosen = []
    for spec in names:
        if isinstance(spec, str):
            cls = ANALYZERS.get(spec)
            kwargs = dict(params.get(spec, {}))
            if cls is not None:
                accepted = inspect.signature(cls.__init__).parameters
                if "n_classes" in accepted:
                    kwargs.setdefault("n_classes", emb.n_classes)
                if "seed" in accepted:
                    kwargs.setdefault("seed", seed)
            analyzer = get_analyzer(spec, **kwargs)
        else:
            analyzer = get_analyzer(spec)
        if analyzer.requires_labels and emb.labels is None:
            raise MissingLabelsError(
                f"analyzer {analyzer.name!r} needs labels: pass labels=... (library) or --labels (CLI).")
        chosen.append(analyzer)
    return chosen
