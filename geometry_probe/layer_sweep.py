"""`layer_sweep()`: one row of geometry metrics per layer of a model, in depth order."""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geometry_probe import __version__
from geometry_probe._atomic import atomic_write_text
from geometry_probe.analysis import analyze
from geometry_probe.analyzers import ANALYZERS
from geometry_probe.compare import CkaMatrix, cka_matrix
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.extraction import MEMORY_BYTES, Pool, extract
from geometry_probe.result import Results, _clean, compact_json

#: Scalars put in each row when their analyzer ran (label-based ones need labels).
ROW_METRICS = ("spectrum/effective_rank", "spectrum/rankme", "contrastive/mean_cosine", "contrastive/uniformity",
               "neural_collapse/nc1", "neural_collapse/ncc_accuracy")
#: Analyzers run when registered (``spectrum`` always runs); the labelled ones only with labels.
LABEL_FREE_ANALYZERS = ("contrastive",)
LABELLED_ANALYZERS = ("neural_collapse",)


@dataclass
class LayerSweep:
    """Metrics of several layers of one model on the same data.

    Attributes
    ----------
    rows : list of dict
        One per layer in depth order: ``layer``, ``depth`` (0 for the layer whose output
        is produced first), ``module`` (class name), ``n_samples``, ``n_features``, ``pool``,
        the :data:`ROW_METRICS` that were computed, and ``over_fusion`` (the verdict of the
        diagnosis of :func:`geometry_probe.analyze`).
    results : dict of str to Results
        Everything every analyzer found, per layer.
    meta : dict
        Run description (versions, analyzers, pool, sample count, notes).
    cka : CkaMatrix, optional
        Layer × layer linear CKA, in depth order (``compare=True``).
    """

    rows: list[dict[str, Any]]
    results: dict[str, Results]
    meta: dict[str, Any] = field(default_factory=dict)
    cka: CkaMatrix | None = None

    @property
    def metric_keys(self) -> list[str]:
        """The metric columns present in the rows (in :data:`ROW_METRICS` order)."""
        return [k for k in ROW_METRICS if any(k in row for row in self.rows)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``meta``, ``rows`` and the full ``results`` per layer (NaN → null)."""
        data = {"meta": _clean(self.meta), "rows": _clean(self.rows),
                "results": {name: res.to_dict() for name, res in self.results.items()}}
        if self.cka is not None:
            data["cka"] = self.cka.to_dict()
        return data

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """JSON text; with ``path``, also written atomically."""
        text = compact_json(self.to_dict()) + "\n"
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """CSV text, one line per layer (NaN written as ``nan``); with ``path``, written atomically."""
        columns = ["layer", "depth", "module", "n_samples", "n_features", "pool", *self.metric_keys, "over_fusion"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        if path is not None:
            atomic_write_text(path, buffer.getvalue())
        return buffer.getvalue()

    def plot(self, path: str | os.PathLike[str] | None = None, keys: Sequence[str] | None = None) -> Any:
        """A figure of the metrics against depth (matplotlib); saved when ``path`` is given."""
        from geometry_probe.reporting.layer_sweep_figure import plot_layer_sweep

        figure = plot_layer_sweep(self.rows, list(keys) if keys is not None else self.metric_keys)
        if path is not None:
            from geometry_probe.reporting.layer_sweep_figure import save_figure

            save_figure(figure, path)
        return figure


def layer_sweep(model: nn.Module, data: Any, layers: Sequence[str] | None = None, *,
                all_layers: str | None = None, pool: Pool = None, max_samples: int | None = None,
                device: str | torch.device | None = "auto", batch_size: int = 256,
                memmap_dir: str | Path | None = None, memory_bytes: int = MEMORY_BYTES,
                precision: str = "float64", seed: int = 0, compare: bool = False,
                progress: Callable[[str, int, int | None], None] | None = None) -> LayerSweep:
    """Extract several layers in one pass over ``data`` and measure each one.

    Each layer gets effective rank and RankMe (``spectrum``), the mean cosine (anisotropy)
    and uniformity (``contrastive``, when installed), and, when the batches carry labels,
    NC1 and the nearest-class-centre accuracy (``neural_collapse``); then the over-fusion
    verdict of :func:`geometry_probe.diagnose` when available. Rows are sorted by depth: the
    order in which the layers' outputs are produced in a forward pass (a container module
    counts after its children).

    Parameters
    ----------
    model : torch.nn.Module
    data : DataLoader, Dataset, Tensor or iterable of ``x`` / ``(x, y)`` batches
        As in :func:`geometry_probe.extract`.
    layers : sequence of str, optional
        Module names. Either this or ``all_layers``, or both (the union).
    all_layers : str, optional
        A module class name, e.g. ``"Linear"`` or ``"Conv2d"``: every module of that class
        (or a subclass) is swept.
    pool, max_samples, device, batch_size, memmap_dir, memory_bytes
        As in :func:`geometry_probe.extract`.
    precision : {"float64", "float32"}, default="float64"
        Precision of :func:`geometry_probe.analyze`: float64 is exact; float32 is faster but
        resolves singular values only down to ~2e-4 of the largest (it inflates the rank of
        layers whose output has lower rank than width).
    seed : int, default=0
        Passed to :func:`geometry_probe.analyze`.
    compare : bool, default=False
        Also compute the layer × layer linear CKA matrix (:func:`geometry_probe.cka_matrix`,
        streamed, float64) into ``LayerSweep.cka``.
    progress : callable, optional
        ``progress(stage, done, total)``: ``"samples"`` during the extraction (as in
        :func:`geometry_probe.extract`), then ``"layers"`` after each layer is measured.

    Returns
    -------
    LayerSweep

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    >>> sweep = layer_sweep(model, torch.randn(500, 8), all_layers="Linear", device="cpu")
    >>> [(row["layer"], row["depth"], row["n_features"]) for row in sweep.rows]
    [('0', 0, 32), ('2', 1, 4)]
    >>> sweep.rows[0]["spectrum/effective_rank"] <= 8  # 32 features, but a linear map of 8 inputs
    True
    """
    names = list(layers or [])
    if all_layers is not None:
        names += [n for n in select_layers(model, all_layers) if n not in names]
    if not names:
        raise InvalidInputError("layer_sweep: give layers=[...] or all_layers='Linear' (a module class name).")
    embeddings = extract(model, data, names, pool=pool, max_samples=max_samples, device=device,
                         batch_size=batch_size, memmap_dir=memmap_dir, memory_bytes=memory_bytes, progress=progress)
    ordered = sorted(embeddings.values(), key=lambda emb: emb.meta["call_index"])
    labelled = ordered[0].labels is not None
    analyzers = ["spectrum"] + [a for a in LABEL_FREE_ANALYZERS if a in ANALYZERS] + \
        [a for a in LABELLED_ANALYZERS if labelled and a in ANALYZERS]
    rows, results = [], {}
    for depth, emb in enumerate(ordered):
        res = analyze(emb, analyzers, device=device, precision=precision, seed=seed)   # findings included
        results[emb.name] = res
        scalars = res.scalars()
        rows.append({"layer": emb.name, "depth": depth, "module": emb.meta["module"], "n_samples": emb.n_samples,
                     "n_features": emb.n_features, "pool": emb.meta["pool"],
                     **{k: scalars[k] for k in ROW_METRICS if k in scalars},
                     "over_fusion": _over_fusion(res.findings)})
        if progress is not None:
            progress("layers", depth + 1, len(ordered))
    notes = []
    if labelled and "neural_collapse" not in ANALYZERS:
        notes.append("NC1 and NCC accuracy skipped: the neural_collapse analyzer is not installed.")
    if not labelled:
        notes.append("no labels in the batches: NC1 and NCC accuracy need (x, y) batches.")
    meta = {"geometry_probe_version": __version__, "torch_version": torch.__version__, "analyzers": analyzers,
            "layers": [emb.name for emb in ordered], "n_samples": ordered[0].n_samples, "pool": pool if
            isinstance(pool, str) or pool is None else getattr(pool, "__name__", "callable"),
            "precision": precision, "seed": seed,
            "notes": notes}
    cka = cka_matrix(ordered, [emb.name for emb in ordered], kind="layers", device=device) if compare else None
    return LayerSweep(rows, results, meta, cka)


def select_layers(model: nn.Module, module_type: str) -> list[str]:
    """Names of the modules of class ``module_type`` (or a subclass), in registration order.

    ``module_type`` is a class name (``"Linear"``); a dotted name (``"torch.nn.Linear"``)
    is matched by its last part.
    """
    wanted = module_type.rsplit(".", 1)[-1]
    names = [name for name, module in model.named_modules()
             if name and any(cls.__name__ == wanted for cls in type(module).__mro__)]
    if not names:
        present = Counter(type(m).__name__ for name, m in model.named_modules() if name)
        raise InvalidInputError(f"all_layers: the model has no module of type {module_type!r}; it has "
                                f"{dict(present.most_common(12))}.")
    return names


def _over_fusion(findings: Sequence[dict[str, Any]]) -> str:
    for finding in findings:
        if finding.get("name") == "over_fusion":
            return str(finding.get("verdict"))
    return "not assessed"
