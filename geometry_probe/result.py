"""Plain-data results: floats and small arrays, JSON round-trip, flat scalars for loggers."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geometry_probe._atomic import atomic_write_text
from geometry_probe._results_schema import read_results_json

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Result:
    """What one analyzer found. Plain Python/NumPy only: no tensors, no figures.

    Attributes
    ----------
    analyzer : str
        Registry name; also the family prefix of its scalars (``spectrum/effective_rank``).
    scalars : mapping of str to float
        Headline numbers. NaN means "undefined for this input" and comes with a note.
    arrays : mapping of str to ndarray
        Small arrays for figures: O(D) or O(C²), never O(N).
    params : mapping
        The options and conventions used (centring, ε, estimator, ...).
    notes : tuple of str
        Warnings and explanations (e.g. why a value is NaN).
    tables : mapping of str to list of dict
        Small tables (e.g. one row per class).
    """

    analyzer: str
    scalars: Mapping[str, float]
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    tables: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf become ``null``)."""
        return {
            "analyzer": self.analyzer,
            "scalars": {k: _clean(v) for k, v in self.scalars.items()},
            "arrays": {k: _clean(np.asarray(v).tolist()) for k, v in self.arrays.items()},
            "params": _clean(dict(self.params)),
            "notes": list(self.notes),
            "tables": _clean({k: list(v) for k, v in self.tables.items()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_dict` (``null`` becomes NaN)."""
        return cls(
            analyzer=data["analyzer"],
            scalars={k: _float(v) for k, v in data.get("scalars", {}).items()},
            arrays={k: np.asarray(_unnull(v), dtype=float) for k, v in data.get("arrays", {}).items()},
            params=dict(data.get("params", {})),
            notes=tuple(data.get("notes", ())),
            tables={k: list(v) for k, v in data.get("tables", {}).items()},
        )


class Results(Mapping[str, Result]):
    """Results of several analyzers on the same embeddings, with run metadata and findings.

    Behaves as a read-only mapping from analyzer name to :class:`Result`.

    Examples
    --------
    >>> res = Results([Result("spectrum", {"effective_rank": 2.0})], meta={"n_samples": 3})
    >>> res.scalars()
    {'spectrum/effective_rank': 2.0}
    """

    def __init__(self, results: Iterable[Result], *, meta: Mapping[str, Any] | None = None,
                 findings: Iterable[Mapping[str, Any]] = ()) -> None:
        self._results = {r.analyzer: r for r in results}
        self.meta: dict[str, Any] = dict(meta or {})
        self.findings: list[dict[str, Any]] = [dict(f) for f in findings]

    def __getitem__(self, name: str) -> Result:
        return self._results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def scalars(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{"<prefix><family>/<metric>": value}`` for loggers and tables."""
        return {f"{prefix}{name}/{key}": float(value)
                for name, result in self._results.items() for key, value in result.scalars.items()}

    def notes(self) -> list[str]:
        """All notes, each prefixed with its analyzer name."""
        return [f"{name}: {note}" for name, result in self._results.items() for note in result.notes]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``schema``, ``meta``, ``scalars``, ``findings``, ``results``."""
        return {
            "schema": SCHEMA_VERSION,
            "meta": _clean(self.meta),
            "scalars": {k: _clean(v) for k, v in self.scalars().items()},
            "findings": _clean(self.findings),
            "results": {name: r.to_dict() for name, r in self._results.items()},
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """Serialise to JSON text; with ``path``, also write it atomically. Returns the text.

        Objects are indented by ``indent`` for reading; arrays (spectra, matrices, histograms,
        coordinates) are written compactly on one line each, so the file stays small.
        """
        text = compact_json(self.to_dict(), indent=indent) + "\n"
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Results:
        """Inverse of :meth:`to_dict`."""
        return cls((Result.from_dict(r) for r in data.get("results", {}).values()),
                   meta=data.get("meta", {}), findings=data.get("findings", ()))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Results:
        """Read results written by :meth:`to_json`, checked against the documented schema first.

        Raises
        ------
        InputFileError
            The file is missing, unreadable, not JSON, too large or too deeply nested, or a value
            breaks the schema of :mod:`geometry_probe._results_schema` (the message names its
            JSON path, e.g. ``results.spectrum.scalars.effective_rank``).
        """
        return cls.from_dict(read_results_json(path))

    def __repr__(self) -> str:
        return f"Results({list(self._results)}, n_findings={len(self.findings)})"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in self.scalars().items())
        return f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _unnull(value: Any) -> Any:
    if isinstance(value, list):
        return [_unnull(v) for v in value]
    return math.nan if value is None else value


def compact_json(value: Any, *, indent: int = 2, level: int = 0) -> str:
    """JSON text with objects (and lists of objects) indented and every other list written compactly
    on one line (strict: no NaN).

    Examples
    --------
    >>> print(compact_json({"a": [1, [2, 3]], "b": {"c": 1.5}}))
    {
      "a": [1,[2,3]],
      "b": {
        "c": 1.5
      }
    }
    """
    if isinstance(value, dict) and value:
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        items = ",\n".join(f"{inner}{json.dumps(str(key))}: {compact_json(item, indent=indent, level=level + 1)}"
                           for key, item in value.items())
        return "{\n" + items + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):     # e.g. findings: one per line
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        return "[\n" + ",\n".join(inner + compact_json(item, indent=indent, level=level + 1) for item in value) \
            + "\n" + pad + "]"
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _clean(value: Any) -> Any:
    """Recursively turn NumPy scalars/arrays into Python values and non-finite floats into None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value
