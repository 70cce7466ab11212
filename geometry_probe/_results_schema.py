"""The documented schema of the two JSON files ``geoprobe`` writes, checked before anything reads them.

A results JSON (``geoprobe analyze --json``, :meth:`Results.to_json`) and a trajectory JSON
(``geoprobe track --json``) are read by :func:`read_results_json` and :func:`read_trajectory_json`:
the file is parsed within bounds (at most :data:`MAX_JSON_BYTES`, nesting at most as deep as
Python's parser allows) and every field the library uses is checked for its type and, for the
arrays figures are drawn from, its shape. A problem is one :class:`InputFileError` line naming
the JSON path of the first bad value, e.g.
``r.json: results.spectrum.scalars.effective_rank: expected a number or null, got "abc".``

Results JSON
    ``{"schema": int, "meta": {...}, "scalars": {str: number|null}, "findings": [finding, ...],
    "results": {analyzer: result}}``; only ``results`` is required. ``meta.n_samples`` and
    ``meta.n_features`` are non-negative integers, ``meta.classes`` a list of strings, numbers,
    booleans or nulls. A result is ``{"analyzer": str, "scalars": {str: number|null},
    "arrays": {str: array}, "params": {...}, "notes": [str], "tables": {str: [object]}}``, only
    ``analyzer`` required; an array is a number, null or a rectangular nested list of them (at
    most :data:`MAX_DIMENSIONS` deep). A finding is ``{"name": str, "verdict": str, "value",
    "baseline": number|null, "threshold": {"warn", "fail": number|null}, "explanation": str}``,
    ``name`` and ``verdict`` required. The arrays figures use must have their shapes
    (:data:`ARRAY_SHAPES`); label codes are integers in ``[0, max(len(meta.classes), rows))``.
Trajectory JSON
    ``{"checkpoints": [{"path": str, "step": int, "scalars": {str: number|null},
    "findings": [finding]}, ...], "onsets": {finding: {"path": str, "step": int}}}``, at least
    one checkpoint, ``step`` and ``scalars`` required.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geometry_probe.exceptions import InputFileError

MAX_JSON_BYTES = 64 * 2**20
MAX_DIMENSIONS = 8
# analyzer -> array -> number of dimensions, for the arrays figures are drawn from
ARRAY_SHAPES = {
    "spectrum": {"covariance_eigenvalues": 1},
    "contrastive": {"cosine_hist_edges": 1, "cosine_hist_all": 1, "cosine_hist_pos": 1, "cosine_hist_neg": 1,
                    "sample_cosine_matrix": 2, "sample_order": 1, "sample_labels": 1},
    "orthogonality": {"class_mean_cosine": 2, "class_mean_cosine_centred": 2, "simo_sqdot": 2, "simo_distance": 2},
    "knn": {"knn_k_occurrence_hist": 1},
    "projection": {"coords": 2, "labels": 1},
}


class _Problem(Exception):
    """A value that breaks the schema, at a JSON path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where or '(top level)'}: {message}")


def read_results_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed results JSON at ``path``, checked against the schema (module docstring).

    Raises
    ------
    InputFileError
        The file is missing, unreadable, too large, not JSON, nested too deeply, or a value
        breaks the schema (the message names its JSON path).
    """
    return _checked(path, validate_results)


def read_trajectory_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed trajectory JSON at ``path``, checked against the schema (module docstring).

    Raises
    ------
    InputFileError
        As :func:`read_results_json`.
    """
    return _checked(path, validate_trajectory)


def read_results_or_trajectory_json(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bool]:
    """The parsed JSON at ``path``, checked as a trajectory if it has a ``checkpoints`` key, else
    as results; and whether it is a trajectory.

    Raises
    ------
    InputFileError
        As :func:`read_results_json`.
    """
    data = read_json(path)
    trajectory = is_trajectory(data)
    _check(path, data, validate_trajectory if trajectory else validate_results)
    return data, trajectory


def is_trajectory(data: Any) -> bool:
    """Whether parsed JSON is meant as a trajectory: an object with a ``checkpoints`` key.

    Examples
    --------
    >>> is_trajectory({"checkpoints": []}), is_trajectory({"results": {}}), is_trajectory([1])
    (True, False, False)
    """
    return isinstance(data, dict) and "checkpoints" in data


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse the JSON file at ``path`` within bounds: at most :data:`MAX_JSON_BYTES`, UTF-8.

    Raises
    ------
    InputFileError
        Missing, unreadable, too large, not UTF-8, not JSON, or nested too deeply to parse.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise InputFileError(f"{path}: no such file." if not path.exists() else f"{path}: not a regular file.")
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise InputFileError(f"{path}: {size:,} bytes, more than the {MAX_JSON_BYTES:,} a results or "
                                 "trajectory JSON may have.")
        return json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise InputFileError(f"{path}: not a geometry-probe JSON (nested too deeply to read).") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:     # JSONDecodeError is a ValueError
        raise InputFileError(f"{path}: not a geometry-probe JSON ({_first_line(err)}).") from None


def validate_results(data: Any) -> None:
    """Check parsed results JSON against the schema.

    Raises
    ------
    _Problem
        At the first value that breaks it (:func:`read_results_json` turns it into one line).
    """
    top = _object(data, "")
    if "results" not in top:
        raise _Problem("", "no 'results' key: not a results JSON" + (" (a trajectory: it has 'checkpoints')"
                                                                      if "checkpoints" in top else ""))
    meta = _optional(top, "meta", "", _object) or {}
    classes = _meta(meta)
    _optional(top, "scalars", "", _numbers)
    _findings(top.get("findings", []), "findings")
    for name, result in _object(top["results"], "results").items():
        _result(result, _child("results", name), n_classes=classes)


def validate_trajectory(data: Any) -> None:
    """Check parsed trajectory JSON against the schema.

    Raises
    ------
    _Problem
        At the first value that breaks it.
    """
    top = _object(data, "")
    checkpoints = _list(top.get("checkpoints"), "checkpoints")
    if not checkpoints:
        raise _Problem("checkpoints", "expected at least one checkpoint, got an empty list")
    for index, checkpoint in enumerate(checkpoints):
        where = _child("checkpoints", index)
        entry = _object(checkpoint, where)
        _integer(_required(entry, "step", where), _child(where, "step"))
        _numbers(_required(entry, "scalars", where), _child(where, "scalars"))
        _optional(entry, "path", where, _string)
        _findings(entry.get("findings", []), _child(where, "findings"))
    for name, onset in (_optional(top, "onsets", "", _object) or {}).items():
        where = _child("onsets", name)
        _integer(_required(_object(onset, where), "step", where), _child(where, "step"))
        _optional(onset, "path", where, _string)


def _checked(path: str | os.PathLike[str], validate: Callable[[Any], None]) -> dict[str, Any]:
    """The JSON at ``path``, parsed and checked by ``validate``."""
    data = read_json(path)
    _check(path, data, validate)
    return data


def _check(path: str | os.PathLike[str], data: Any, validate: Callable[[Any], None]) -> None:
    """``validate(data)``, its problem as one :class:`InputFileError` line naming ``path``."""
    try:
        validate(data)
    except _Problem as problem:
        raise InputFileError(f"{path}: {problem}.") from None


def _meta(meta: dict[str, Any]) -> int:
    """Check the fields of ``meta`` the library reads; return how many class names it holds."""
    for key in ("n_samples", "n_features"):
        if key in meta:
            _integer(meta[key], _child("meta", key), minimum=0)
    classes = _optional(meta, "classes", "meta", _list) or []
    for index, name in enumerate(classes):
        if isinstance(name, (dict, list)):
            raise _Problem(_child(_child("meta", "classes"), index), f"expected a class name, got {_show(name)}")
    return len(classes)


def _result(value: Any, where: str, *, n_classes: int) -> None:
    """Check one analyzer's result, its arrays' types and the shapes figures rely on."""
    result = _object(value, where)
    _string(_required(result, "analyzer", where), _child(where, "analyzer"))
    _optional(result, "scalars", where, _numbers)
    _optional(result, "params", where, _object)
    for index, note in enumerate(_optional(result, "notes", where, _list) or []):
        _string(note, _child(_child(where, "notes"), index))
    for name, rows in (_optional(result, "tables", where, _object) or {}).items():
        for index, row in enumerate(_list(rows, _child(_child(where, "tables"), name))):
            _object(row, _child(_child(_child(where, "tables"), name), index))
    arrays = {name: _array(array, _child(_child(where, "arrays"), name))
              for name, array in (_optional(result, "arrays", where, _object) or {}).items()}
    shapes = ARRAY_SHAPES.get(result["analyzer"], {})
    for name, array in arrays.items():
        if name in shapes and array.ndim != shapes[name]:
            raise _Problem(_child(_child(where, "arrays"), name),
                           f"expected a {shapes[name]}-D array, got shape {list(array.shape)}")
    _consistent(result["analyzer"], arrays, _child(where, "arrays"), n_classes=n_classes)
    if result["analyzer"] == "knn" and "k" in result.get("params", {}):
        _integer(result["params"]["k"], _child(_child(where, "params"), "k"), minimum=1)


def _consistent(analyzer: str, arrays: dict[str, np.ndarray], where: str, *, n_classes: int) -> None:
    """Cross-array shapes of the figures' data: square matrices, matching lengths, label codes."""
    for name in ("class_mean_cosine", "class_mean_cosine_centred", "simo_sqdot", "simo_distance",
                 "sample_cosine_matrix"):
        if name in arrays and arrays[name].shape[0] != arrays[name].shape[1]:
            raise _Problem(_child(where, name), f"expected a square matrix, got shape {list(arrays[name].shape)}")
    sizes = {name: arrays[name].shape[0] for name in ("simo_sqdot", "simo_distance") if name in arrays}
    if sizes and "class_mean_cosine" in arrays:
        _same_length(sizes, arrays["class_mean_cosine"].shape[0], "class_mean_cosine", where)
    if analyzer == "contrastive":
        _histograms(arrays, where)
        if "sample_cosine_matrix" in arrays:
            rows = arrays["sample_cosine_matrix"].shape[0]
            _same_length({n: arrays[n].shape[0] for n in ("sample_order", "sample_labels") if n in arrays}, rows,
                         "sample_cosine_matrix", where)
            _codes(arrays, "sample_order", where, bound=rows)
            _codes(arrays, "sample_labels", where, bound=max(n_classes, rows))
    if analyzer == "projection" and "coords" in arrays:
        coords = arrays["coords"]
        if coords.ndim == 2 and coords.shape[1] != 2:
            raise _Problem(_child(where, "coords"), f"expected 2 columns, got shape {list(coords.shape)}")
        _same_length({n: arrays[n].shape[0] for n in ("labels",) if n in arrays}, coords.shape[0], "coords", where)
        _codes(arrays, "labels", where, bound=max(n_classes, coords.shape[0]))


def _histograms(arrays: dict[str, np.ndarray], where: str) -> None:
    """Cosine histograms: ``edges`` one longer than every count array."""
    if "cosine_hist_edges" not in arrays:
        return
    bins = arrays["cosine_hist_edges"].shape[0] - 1
    if bins < 1:
        raise _Problem(_child(where, "cosine_hist_edges"), "expected at least two bin edges")
    counts = {n: arrays[n].shape[0] for n in ("cosine_hist_all", "cosine_hist_pos", "cosine_hist_neg") if n in arrays}
    _same_length(counts, bins, "cosine_hist_edges minus one", where)


def _same_length(lengths: Mapping[str, int], expected: int, reference: str, where: str) -> None:
    for name, length in lengths.items():
        if length != expected:
            raise _Problem(_child(where, name), f"expected {expected} entries (as {reference}), got {length}")


def _codes(arrays: dict[str, np.ndarray], name: str, where: str, *, bound: int) -> None:
    """Integer codes in ``[0, bound)``."""
    if name not in arrays:
        return
    values = arrays[name]
    bad = ~(np.isfinite(values) & (values == np.round(values)) & (values >= 0) & (values < bound))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise _Problem(_child(_child(where, name), index),
                       f"expected an integer code from 0 to {bound - 1}, got {_show(values[index].item())}")


def _findings(value: Any, where: str) -> None:
    for index, finding in enumerate(_list(value, where)):
        at = _child(where, index)
        entry = _object(finding, at)
        _string(_required(entry, "name", at), _child(at, "name"))
        _string(_required(entry, "verdict", at), _child(at, "verdict"))
        for key in ("value", "baseline"):
            if key in entry:
                _number(entry[key], _child(at, key))
        _optional(entry, "threshold", at, _numbers)
        _optional(entry, "explanation", at, _string)


def _required(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise _Problem(where, f"missing the required key {key!r}")
    return entry[key]


def _optional(entry: dict[str, Any], key: str, where: str, check: Callable[[Any, str], Any]) -> Any:
    """``check(entry[key])`` when ``key`` is present (its result), else None."""
    return check(entry[key], _child(where, key)) if key in entry else None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Problem(where, f"expected an object, got {_show(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Problem(where, f"expected a list, got {_show(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Problem(where, f"expected a string, got {_show(value)}")
    return value


def _number(value: Any, where: str) -> None:
    if not _is_number(value):
        raise _Problem(where, f"expected a number or null, got {_show(value)}")


def _numbers(value: Any, where: str) -> None:
    """An object whose every value is a number or null."""
    for key, item in _object(value, where).items():
        _number(item, _child(where, key))


def _integer(value: Any, where: str, *, minimum: int | None = None) -> None:
    is_whole = _is_number(value) and value is not None and math.isfinite(value) and float(value).is_integer()
    if not is_whole or (minimum is not None and value < minimum):
        lowest = "" if minimum is None else f" of at least {minimum}"
        raise _Problem(where, f"expected an integer{lowest}, got {_show(value)}")


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _array(value: Any, where: str) -> np.ndarray:
    """A number, null, or rectangular nested list of them, as a float array (null as NaN)."""
    level, shape = [value], []
    while level and all(isinstance(item, list) for item in level):
        lengths = {len(item) for item in level}
        if len(lengths) > 1:
            raise _Problem(where, f"rows of different lengths {sorted(lengths)[:2]} at depth {len(shape) + 1}: "
                                  "not a rectangular array")
        if len(shape) == MAX_DIMENSIONS:
            raise _Problem(where, f"nested deeper than {MAX_DIMENSIONS} levels")
        shape.append(lengths.pop())
        level = [entry for item in level for entry in item]
    bad = next((index for index, item in enumerate(level) if not _is_number(item)), None)
    if bad is not None:
        position = np.unravel_index(bad, shape) if shape else ()
        at = "".join(f"[{int(i)}]" for i in position)
        raise _Problem(where + at, f"expected a number or null, got {_show(level[bad])}")
    return np.array([np.nan if item is None else item for item in level], dtype=float).reshape(shape)


def _child(where: str, key: str | int) -> str:
    """The JSON path of ``key`` under ``where``: ``a.b``, ``a[0]``, or ``a["odd key"]``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    if key.isidentifier():
        return f"{where}.{key}" if where else key
    return f"{where}[{json.dumps(key)}]"


def _show(value: Any) -> str:
    """A short description of a JSON value for a message."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:40] + "...")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
