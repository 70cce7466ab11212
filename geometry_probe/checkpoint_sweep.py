"""One layer's embeddings at each checkpoint of a training run, in training order."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geometry_probe.checkpoints import load_checkpoint
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InputFileError, InvalidInputError
from geometry_probe.extraction import MEMORY_BYTES, Pool, extract


def checkpoint_paths(checkpoints: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand a glob pattern (or several paths/patterns) into files in natural order.

    Natural order compares the numbers inside names as numbers, so ``epoch_2.pt`` comes
    before ``epoch_10.pt``.

    Examples
    --------
    >>> [p.name for p in sorted(map(Path, ["e_10.pt", "e_2.pt", "e_1.pt"]), key=natural_key)]
    ['e_1.pt', 'e_2.pt', 'e_10.pt']
    """
    patterns = [checkpoints] if isinstance(checkpoints, (str, os.PathLike)) else list(checkpoints)
    found: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise InputFileError(f"checkpoint: no file matches {text!r}.")
        for match in matches:
            path = Path(match)
            if not path.is_file():
                raise InputFileError(f"checkpoint: {path}: no such file.")
            if path not in found:
                found.append(path)
    return sorted(found, key=natural_key)


def natural_key(path: Path) -> list[Any]:
    """Sort key of a path that reads runs of digits as integers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def iter_checkpoint_embeddings(model: nn.Module, data: Any, checkpoints: Any, layer: str, *,
                               pool: Pool = None, max_samples: int | None = None,
                               device: str | torch.device | None = "auto", batch_size: int = 256,
                               prefix: str | None = None, memmap_dir: str | Path | None = None,
                               memory_bytes: int = MEMORY_BYTES) -> Iterator[tuple[Path, int, Embeddings]]:
    """Load each checkpoint into ``model`` and yield ``(path, step, embeddings of layer)``.

    Checkpoints are taken in natural file-name order (:func:`checkpoint_paths`). ``step``
    is the ``global_step``/``step`` stored in the checkpoint, else the last number in its
    file name (``epoch_3.pt`` → 3, ``epoch=3-step=400.ckpt`` → 400), else its position.
    ``data`` is read once per checkpoint, so it must be re-iterable (a DataLoader, a
    Dataset, a tensor or a list), and in the same order every time (no shuffling), so that
    every checkpoint sees the same samples.

    Parameters
    ----------
    model : torch.nn.Module
        The architecture; its weights are replaced by each checkpoint's in turn.
    data : DataLoader, Dataset, Tensor or list of batches
    checkpoints : str, PathLike or iterable of them
        Files or glob patterns such as ``"ckpts/epoch_*.pt"``.
    layer : str
        Module name, as in :func:`geometry_probe.extract`.
    pool, max_samples, device, batch_size, memmap_dir, memory_bytes
        As in :func:`geometry_probe.extract`.
    prefix : str, optional
        As in :func:`geometry_probe.checkpoints.load_checkpoint`.

    Yields
    ------
    path : Path
    step : int
    embeddings : Embeddings
        ``meta`` also holds ``checkpoint`` and ``step``.
    """
    if iter(data) is data:
        raise InvalidInputError("data: a one-shot iterator cannot be read once per checkpoint; pass a DataLoader, "
                                "a Dataset, a tensor or a list of batches.")
    for position, path in enumerate(checkpoint_paths(checkpoints)):
        info = load_checkpoint(model, path, prefix=prefix)
        step = info.step if info.step is not None else _number_in_name(path, default=position)
        emb = extract(model, data, [layer], pool=pool, max_samples=max_samples, device=device,
                      batch_size=batch_size, memmap_dir=memmap_dir, memory_bytes=memory_bytes)[layer]
        meta = {**emb.meta, "checkpoint": str(path), "step": step}
        yield path, step, Embeddings(emb.X, labels=emb.labels, classes=emb.classes, name=f"{layer}@{path.name}",
                                     meta=meta)


def _number_in_name(path: Path, *, default: int) -> int:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else default
