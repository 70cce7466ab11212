"""The saved JSON files figures are drawn from, read as named runs.

``geoprobe figures`` reads three kinds of file, told apart by their keys: a results JSON
(``geoprobe analyze --json``, :meth:`~geometry_probe.Results.to_json`), a trajectory JSON
(``geoprobe track --json``: a ``checkpoints`` key) and a layer-sweep JSON (``geoprobe layers
--json``, :meth:`~geometry_probe.layer_sweep.LayerSweep.to_json`: a ``rows`` key). Each is
checked against its schema before anything is drawn. A run's name, shown in legends, is the
file's top-level ``"name"`` string when it has one, else the file name without its suffix
(with its folder when two files share a name).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geometry_probe._results_schema import (_check, _child, _list, _number, _object, _Problem, _required, is_trajectory,
                                            read_json, validate_results, validate_trajectory)
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.result import Results

KINDS = ("results", "trajectory", "layers")
_ROW_TEXT = ("layer", "module", "pool", "over_fusion")


@dataclass(frozen=True)
class Run:
    """One saved file: its ``name`` (legend text), ``kind`` (one of :data:`KINDS`) and parsed ``data``."""

    name: str
    kind: str
    data: dict[str, Any]

    def results(self) -> Results:
        """The results of a results JSON."""
        return Results.from_dict(self.data)


def kind_of(data: Any) -> str:
    """Which of :data:`KINDS` parsed JSON is meant as.

    Examples
    --------
    >>> kind_of({"checkpoints": []}), kind_of({"rows": [], "results": {}}), kind_of({"results": {}})
    ('trajectory', 'layers', 'results')
    """
    if is_trajectory(data):
        return "trajectory"
    return "layers" if isinstance(data, dict) and "rows" in data else "results"


def validate_layer_sweep(data: Any) -> None:
    """Check a parsed layer-sweep JSON: ``rows``, a non-empty list of objects each with a
    ``layer``, the metric values numbers or null; ``results``, layer → results JSON.

    Raises
    ------
    geometry_probe._results_schema._Problem
        At the first value that breaks it.
    """
    top = _object(data, "")
    rows = _list(top["rows"], "rows")
    if not rows:
        raise _Problem("rows", "expected at least one layer, got an empty list")
    for index, row in enumerate(rows):
        where = _child("rows", index)
        entry = _object(row, where)
        _required(entry, "layer", where)
        for key, value in entry.items():
            if key not in _ROW_TEXT:
                _number(value, _child(where, key))
    for name, results in _object(top.get("results", {}), "results").items():
        try:
            validate_results(results)
        except _Problem as problem:
            raise _Problem(_child("results", name), str(problem)) from None


_VALIDATORS = {"results": validate_results, "trajectory": validate_trajectory, "layers": validate_layer_sweep}


def read_run(path: str | os.PathLike[str], *, name: str | None = None) -> Run:
    """The run saved at ``path``, checked against the schema of its kind.

    Raises
    ------
    InputFileError
        Missing, unreadable, not JSON, or a value breaks the schema (the message names its JSON path).
    """
    data = read_json(path)
    kind = kind_of(data)
    _check(path, data, _VALIDATORS[kind])
    stored = data.get("name")
    return Run(name if name is not None else stored if isinstance(stored, str) and stored else Path(path).stem,
               kind, data)


def read_runs(paths: Sequence[str | os.PathLike[str]], *, names: Sequence[str] | None = None) -> list[Run]:
    """The runs saved at ``paths``, all of one kind; files that share a name are told apart by
    their folder.

    Raises
    ------
    InvalidInputError
        No path, ``names`` not one per path, or files of different kinds.
    InputFileError
        As :func:`read_run`.
    """
    if not paths:
        raise InvalidInputError("figures: give at least one JSON file.")
    if names is not None and len(names) != len(paths):
        raise InvalidInputError(f"--name: got {len(names)} names for {len(paths)} files; give one per file, in order.")
    runs = [read_run(path, name=None if names is None else names[i]) for i, path in enumerate(paths)]
    kinds = {run.kind for run in runs}
    if len(kinds) > 1:
        found = ", ".join(f"{Path(p).name}: {run.kind}" for p, run in zip(paths, runs))
        raise InvalidInputError(f"figures: the files are of different kinds ({found}); compare results with results, "
                                "trajectories with trajectories, layer sweeps with layer sweeps.")
    counts = Counter(run.name for run in runs)
    return [Run(str(Path(path).with_suffix("")) if counts[run.name] > 1 and names is None else run.name, run.kind,
                run.data) for path, run in zip(paths, runs)]
