"""Checkpoint trajectories: analyse embeddings of successive checkpoints and find collapse onsets."""

from __future__ import annotations

import csv
import io as _io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from geometry_probe._atomic import atomic_write_text
from geometry_probe._results_schema import read_trajectory_json
from geometry_probe.analysis import analyze
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.io import load
from geometry_probe.result import _clean, compact_json

_STEP_PATTERN = re.compile(r"(?:epoch|step|iter|it|ckpt|checkpoint|e|s)[_\-=]?(\d+)", re.IGNORECASE)
_UNIT_PATTERNS = (("epoch", re.compile(r"(?:^|[^a-z])(?:epoch|ep|e)[_\-=]?\d", re.IGNORECASE)),
                  ("step", re.compile(r"(?:^|[^a-z])(?:step|iter|it|global_step|s)[_\-=]?\d", re.IGNORECASE)))
STEP_UNITS = ("epoch", "step", "checkpoint")


def step_from_name(name: str, *, default: int) -> int:
    """Epoch/step number in a file name: ``epoch_07.npy`` → 7, ``step-1200.pt`` → 1200.

    Falls back to the last number in the name, then to ``default``.

    Examples
    --------
    >>> step_from_name("run/epoch_07.npy", default=0), step_from_name("step-1200.pt", default=0)
    (7, 1200)
    >>> step_from_name("final.npy", default=3)
    3
    """
    stem = Path(name).name
    match = _STEP_PATTERN.search(stem)
    if match:
        return int(match.group(1))
    numbers = re.findall(r"\d+", stem)
    return int(numbers[-1]) if numbers else default


def step_unit(names: Iterable[str]) -> str:
    """What the checkpoints' numbers count, from their names: ``"epoch"`` when every name says
    epoch (``epoch_07.npy``, ``e3.pt``), ``"step"`` when every one says step or iteration
    (``step-1200.pt``, ``iter_5``), else ``"checkpoint"`` (unknown or mixed).

    Examples
    --------
    >>> step_unit(["run/epoch_1.npy", "run/epoch_2.npy"]), step_unit(["x.npz:step_100"]), step_unit(["a.npy"])
    ('epoch', 'step', 'checkpoint')
    """
    units = {next((unit for unit, pattern in _UNIT_PATTERNS if pattern.search(Path(name).name)), "checkpoint")
             for name in names}
    return units.pop() if len(units) == 1 else "checkpoint"


def track(sources: Iterable[tuple[str, int, Embeddings]], analyzers: Any = None, *,
          progress: Callable[[str, int, int | None], None] | None = None, **analyze_kwargs: Any) -> dict[str, Any]:
    """Analyse each checkpoint's embeddings in order and find when each finding first fails.

    Parameters
    ----------
    sources : iterable of (name, step, Embeddings)
        One entry per checkpoint, e.g. from :func:`track_files` or
        :func:`geometry_probe.checkpoint_sweep.iter_checkpoint_embeddings`. Sorted by step
        (stable for equal steps).
    analyzers, **analyze_kwargs
        Passed to :func:`geometry_probe.analyze` for every checkpoint.
    progress : callable, optional
        ``progress(stage, done, total)``: each checkpoint's ``"rows"`` and ``"tiles"`` (as in
        :func:`geometry_probe.analyze`), and ``"checkpoints"`` after each one is analysed.

    Returns
    -------
    dict
        ``{"checkpoints": [{"path", "step", "scalars", "findings"}], "onsets": {finding: {"path", "step"}},
        "step_unit": "epoch" | "step" | "checkpoint"}`` where the onset of a finding is the first
        checkpoint whose verdict is ``fail`` and ``step_unit`` what the steps count
        (:func:`step_unit`, from the checkpoints' names; figures label their x axis with it).
    """
    checkpoints = []
    ordered = sorted(sources, key=lambda item: item[1])
    for position, (name, step, emb) in enumerate(ordered, start=1):
        results = analyze(emb, analyzers, progress=progress, **analyze_kwargs)
        if progress is not None:
            progress("checkpoints", position, len(ordered))
        checkpoints.append({"path": str(name), "step": int(step), "scalars": results.scalars(),
                            "findings": results.findings})
    if not checkpoints:
        raise InvalidInputError("track: no checkpoints given.")
    onsets: dict[str, dict[str, Any]] = {}
    for checkpoint in checkpoints:
        for finding in checkpoint["findings"]:
            if finding["verdict"] == "fail" and finding["name"] not in onsets:
                onsets[finding["name"]] = {"path": checkpoint["path"], "step": checkpoint["step"]}
    return {"checkpoints": checkpoints, "onsets": onsets, "step_unit": step_unit(c["path"] for c in checkpoints)}


def track_files(paths: Sequence[str | os.PathLike[str]], *, labels: Any = None, key: str | None = None,
                header: bool | None = None) -> list[tuple[str, int, Embeddings]]:
    """Checkpoint sources from embeddings files; one file holding several steps expands into
    one source per step (arrays named like ``step_100`` or ``epoch_3``, selected by name).
    ``header`` is :func:`geometry_probe.load`'s, for CSV/TSV files."""
    if not paths:
        raise InvalidInputError("track: give at least one embeddings file.")
    from geometry_probe.io import read_arrays

    sources: list[tuple[str, int, Embeddings]] = []
    for position, path in enumerate(paths):
        arrays = read_arrays(path) if len(paths) == 1 and key is None else {}
        stepped = {name: step_from_name(name, default=-1) for name in arrays if _STEP_PATTERN.search(name)}
        if len(stepped) > 1:
            for name, step in stepped.items():
                sources.append((f"{path}:{name}", step, load(path, key=name, labels=labels, header=header)))
        else:
            emb = load(path, key=key, labels=labels, header=header)
            sources.append((str(path), step_from_name(str(path), default=position), emb))
    return sources


def write_track_json(trajectory: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a trajectory as strict JSON (NaN → null), atomically."""
    atomic_write_text(path, compact_json(_clean(trajectory)) + "\n")


def read_track_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a trajectory written by :func:`write_track_json`, checked against the documented schema.

    Raises
    ------
    InputFileError
        The file is missing, unreadable, not JSON, too large or too deeply nested, or a value
        breaks the schema (:mod:`geometry_probe._results_schema`; the message names its JSON path).
    """
    return read_trajectory_json(path)


def write_track_csv(trajectory: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """One row per checkpoint: path, step, every scalar, and each finding's verdict."""
    keys = sorted({k for c in trajectory["checkpoints"] for k in c["scalars"]})
    names = sorted({f["name"] for c in trajectory["checkpoints"] for f in c["findings"]})
    buffer = _io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "step", *keys, *(f"verdict/{n}" for n in names)])
    for c in trajectory["checkpoints"]:
        verdicts = {f["name"]: f["verdict"] for f in c["findings"]}
        writer.writerow([c["path"], c["step"], *(c["scalars"].get(k, "") for k in keys),
                         *(verdicts.get(n, "") for n in names)])
    atomic_write_text(path, buffer.getvalue())
