"""`analyze()`: all chosen analyzers over one streaming pass of the data."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from geometry_probe import __version__, distributed
from geometry_probe._validation import as_sequence, check_choice, check_positive_int, resolve_device
from geometry_probe.analyzers import ANALYZERS, Analyzer, PairwiseAnalyzer, get_analyzer
from geometry_probe.analyzers.base import run_pairwise
from geometry_probe.batch import Batch
from geometry_probe.diagnosis import diagnose
from geometry_probe.embeddings import Embeddings, as_embeddings
from geometry_probe.exceptions import MissingLabelsError
from geometry_probe.pairwise import PAIRWISE_PRECISIONS
from geometry_probe.result import Results
from geometry_probe.stats import DEFAULT_PRECISION, PRECISIONS, release_scratch

BATCH_MEMORY_BYTES = 128 * 2**20

Progress = Callable[[str, int, "int | None"], None]
"""A progress callback: ``progress(stage, done, total)``, called after each unit of work of a stage
(``"rows"``, ``"rows, second pass"``: rows streamed so far; ``"tiles"``: pairwise tiles done;
``"samples"``: rows extracted by :func:`geometry_probe.extract`, whose ``total`` is None when the
data cannot tell its length)."""


def default_batch_size(n_features: int, *, precision: str = DEFAULT_PRECISION,
                       memory_bytes: int = BATCH_MEMORY_BYTES) -> int:
    """Rows per batch so that a batch in the compute dtype of ``precision`` and its centred copy fit ``memory_bytes``.

    float64 (the default) has 8-byte numbers, float32 4: 128 MB holds 10,922 rows of 768
    features in float64 and 21,845 in float32.
    """
    itemsize = 4 if precision == "float32" else 8
    return max(256, memory_bytes // (2 * itemsize * max(n_features, 1)))


def analyze(data: Any, analyzers: str | Sequence[str | Analyzer | PairwiseAnalyzer] | None = None, *,
            labels: Any = None, device: str | torch.device | None = "auto", batch_size: int | None = None,
            precision: str = DEFAULT_PRECISION, pairwise_precision: str = "float32", seed: int = 0,
            params: Mapping[str, Mapping[str, Any]] | None = None, coarse_labels: Any = None,
            verdicts: bool = True, progress: Progress | None = None) -> Results:
    """Run analyzers on embeddings in one streaming pass and return their :class:`Results`.

    Parameters
    ----------
    data : Embeddings, ndarray or Tensor of shape (n_samples, n_features)
        Tensors may live on any device; NumPy arrays may be memory-mapped.
    analyzers : str or sequence of str/analyzer, optional
        Registry names (``"spectrum"``, or ``"spectrum,neural_collapse"``) or instances.
        Default: every registered analyzer that applies (those needing labels only when
        labels are present; ``fmicl`` only when ``params["fmicl"]`` names positives:
        ``views``, ``pairs`` or ``groups``).
    labels : array-like of shape (n_samples,), optional
        Overrides the labels stored in ``data``.
    device : str or torch.device, default="auto"
        Where batches are processed: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:1"``.
    batch_size : int, optional
        Rows per batch; default from a 128 MB budget for a batch and its centred copy in
        the compute dtype (:func:`default_batch_size`).
    precision : {"float64", "float32"}, default="float64"
        Arithmetic of the streaming statistics (spectra, class moments, neural collapse,
        orthogonality). ``"float64"`` is exact: each batch is copied to float64 and every
        GEMM and sum runs in float64, so effective rank and RankMe match a float64 SVD of
        the same data to 1e-5 relative and NC1 a float64 reference to 1e-6, on float32
        input too; it also runs in float64 on CUDA (fast on data-centre GPUs, 32-64x slower
        on consumer GPUs). ``"float32"`` is the fast mode (about 1.5x faster on CPU): GEMMs
        and per-batch class sums round in float32 (only the running sums are float64), which
        resolves singular values only down to about 2e-4 of the largest: effective rank of
        exact rank 5 / 10 / 50 reads 2.4 % / 1.4 % / 0.35 % high, NC1 is off by up to 3e-6
        relative (docs/performance.md). float64 input is always processed in float64.
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
    progress : callable, optional
        ``progress(stage, done, total)``, called after every batch of the streaming pass
        (stage ``"rows"``, then ``"rows, second pass"`` when an analyzer needs one; ``done``
        and ``total`` count rows) and after every tile of the pairwise pass (``"tiles"``).
        Default: nothing is reported (the library prints nothing).

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
    distributed.check_rows(emb.n_samples)
    check_choice(precision, PRECISIONS, name="precision")
    check_choice(pairwise_precision, PAIRWISE_PRECISIONS, name="pairwise_precision")
    dev = resolve_device(device)
    batch_size = check_positive_int(batch_size, name="batch_size") if batch_size is not None \
        else default_batch_size(emb.n_features, precision=precision)
    chosen = _instantiate(emb, analyzers, params or {}, seed)
    streaming = [a for a in chosen if isinstance(a, Analyzer)]
    pairwise = [a for a in chosen if not isinstance(a, Analyzer)]
    if streaming:
        try:
            _stream(emb, streaming, batch_size=batch_size, device=dev, precision=precision, progress=progress)
        finally:
            release_scratch()                        # the reused batch buffer of the float64 conversion
    with distributed.collective("combining the statistics"):
        results = [a.compute() for a in streaming]
    if pairwise:
        results += run_pairwise(emb, pairwise, device=dev, precision=pairwise_precision, progress=progress)
    meta = {
        **emb.summary(),
        "geometry_probe_version": __version__,
        "torch_version": torch.__version__,
        "device": str(dev),
        "precision": precision,
        "pairwise_precision": pairwise_precision,
        "batch_size": batch_size,
        "seed": seed,
        **distributed.describe(),
        "analyzers": [r.analyzer for r in results],
        "elapsed_s": round(time.perf_counter() - started, 4),
    }
    out = Results(results, meta=meta)
    if verdicts:
        out.findings = diagnose(out, emb, coarse_labels=coarse_labels, random_state=seed)
    return out


def _stream(emb: Embeddings, analyzers: list[Analyzer], *, batch_size: int, device: torch.device,
            precision: str, progress: Progress | None = None) -> None:
    """One pass (two when an analyzer asks) over the batches.

    float32, float16 and bfloat16 rows arrive as float32 (exact; in-memory float32 batches are
    views, no copy) and each statistic converts what it needs to its compute dtype; other
    dtypes (integers) are converted to float64 on loading when ``precision="float64"``.
    """
    exact_in_float32 = emb.dtype in ("float32", "float16", "bfloat16")
    dtype = torch.float64 if precision == "float64" and not exact_in_float32 else None
    with distributed.synchronised("the first pass"):  # under torch.distributed: this rank's rows only
        for X, y, offset in distributed.local_batches(emb, batch_size, device=device, dtype=dtype):
            batch = Batch(X, y, n_classes=emb.n_classes, offset=offset, precision=precision, n_samples=emb.n_samples)
            _share_statistics(batch, analyzers)
            for a in analyzers:
                a.update_batch(batch)
            if progress is not None:
                progress("rows", offset + X.shape[0], emb.n_samples)
            del X, y, batch                              # free this batch before the next one is read
    second = [a for a in analyzers if a.needs_second_pass()]
    if second:
        with distributed.synchronised("the second pass"):
            for X, y, offset in distributed.local_batches(emb, batch_size, device=device, dtype=dtype):
                batch = Batch(X, y, n_classes=emb.n_classes, offset=offset, precision=precision,
                              n_samples=emb.n_samples)
                for a in second:
                    a.update_second_pass(batch)
                if progress is not None:
                    progress("rows, second pass", offset + X.shape[0], emb.n_samples)
                del X, y, batch
        for a in second:
            a.end_second_pass()


def _share_statistics(batch: Batch, analyzers: list[Analyzer]) -> None:
    """Compute once the per-class statistics an analyzer will ask ``batch`` for; the others derive from them.

    A function of its own so that no local name keeps the batch's statistics (with C = 10⁵ classes a
    (C, D) array) alive after the batch.
    """
    if any(a.wants_class_scatter(batch) for a in analyzers):
        _ = batch.class_scatter                      # compute once; the rest derives from it
    elif any(a.wants_class_moments(batch) for a in analyzers):
        _ = batch.class_moments                      # one GEMM also serves batch.moments


def _instantiate(emb: Embeddings, analyzers: Any, params: Mapping[str, Mapping[str, Any]],
                 seed: int) -> list[Analyzer | PairwiseAnalyzer]:
    names = as_sequence(analyzers) if isinstance(analyzers, str) else analyzers
    if names is None:
        names = [n for n, cls in ANALYZERS.items() if (emb.labels is not None or not cls.requires_labels)
                 and (not cls.requires_positives or _names_positives(params.get(n, {})))]
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


def _names_positives(params: Mapping[str, Any]) -> bool:
    return any(params.get(key) is not None for key in ("views", "pairs", "groups"))
