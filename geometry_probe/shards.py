"""Sharded inputs: a folder, a glob or a list of files read as one (n_samples, n_features) matrix.

Row order is the shard order, then the row order inside each shard. A folder or a glob is
sorted **naturally** by its path (runs of digits compare as numbers: ``part-2`` before
``part-10``; other text case-insensitively, ties broken by the exact text); an explicit list
keeps the order given. The shard list, their row counts and the sort rule are recorded in
``Embeddings.meta``.

Every format :func:`geometry_probe.io.load` reads can be a shard, one format per data set. A
folder of Parquet files is one data set (each file a shard). Files whose names start with
``.`` or ``_`` (``_SUCCESS``, ``_metadata``) are skipped. Shards are opened lazily and read
only where rows are asked for: ``.npy`` shards (and uncompressed ``.npz`` members) are
memory-mapped, other formats are read one shard at a time (the last two are kept).

Labels (and views, pairs, groups) come as a matching folder/glob/list with one file per
embeddings shard and the same row counts (a mismatch is one error naming the shard), as the
name of an array or column inside every shard, as one file for all rows, or as values.
"""

from __future__ import annotations

import glob
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geometry_probe import io
from geometry_probe._optional import require
from geometry_probe._validation import describe_names, encode_labels
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import CorruptFileError, InputFileError, InvalidEmbeddingsError, InvalidLabelsError

SORT_RULE = "natural sort of the paths (digit runs compared as numbers, other text case-insensitively)"
LABEL_SUFFIXES = (".npy", ".txt", ".lst", ".csv", ".tsv")
OPEN_SHARDS = 2
_GLOB_CHARS = re.compile(r"[*?\[]")


def is_sharded(spec: Any) -> bool:
    """True for a list/tuple of paths, an existing directory, or a glob pattern that is not a file."""
    if isinstance(spec, (list, tuple)):
        return all(isinstance(p, (str, os.PathLike)) for p in spec) and len(spec) > 0
    if not isinstance(spec, (str, os.PathLike)):
        return False
    text = os.fspath(spec)
    if os.path.isdir(text):
        return True
    return bool(_GLOB_CHARS.search(text)) and not os.path.lexists(text)


def natural_key(path: Path | str) -> tuple[Any, ...]:
    """Sort key of :data:`SORT_RULE`: ``part-2`` before ``part-10``; exact text breaks ties."""
    text = os.fspath(path)
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts) + (text,)


def shard_paths(spec: Any, *, what: str = "embeddings", suffixes: Sequence[str] = io.EMBEDDING_SUFFIXES) -> list[Path]:
    """The shard files of a folder, glob or list, in row order (see the module doc).

    Raises
    ------
    InputFileError
        No shard found, a listed path that is missing or not a regular file, or several formats.
    """
    if isinstance(spec, (list, tuple)):
        paths = [Path(p) for p in spec]
    else:
        text = os.fspath(spec)
        if os.path.isdir(text):
            paths = [p for p in Path(text).iterdir() if not p.name.startswith((".", "_"))
                     and p.suffix.lower() in suffixes and not p.is_dir()]
            where = f"{text}: is a directory with"
        else:
            paths = [Path(p) for p in glob.glob(text) if not os.path.isdir(p)]
            where = f"pattern {text!r} matches"
        if not paths:
            raise InputFileError(f"{where} no {what} files ({' '.join(suffixes)}); give a folder of shards, a glob "
                                 f"such as 'shards/*.npy', or the {what} file itself.")
        paths.sort(key=natural_key)
    for p in paths:
        io.check_input_file(p, what=what)
    kinds = sorted({p.suffix.lower() for p in paths})
    if len(kinds) > 1:
        where = f"{os.fspath(spec)}: a directory of" if not isinstance(spec, (list, tuple)) and os.path.isdir(spec) \
            else f"{what}:"
        raise InputFileError(f"{where} shards in several formats ({', '.join(kinds)}); keep one format per data set, "
                             f"or give the {what} file itself.")
    return paths


@dataclass(frozen=True)
class Shard:
    """One shard: its file, the array chosen in it, and where its rows sit in the whole."""

    path: Path
    key: str
    start: int
    n_rows: int


class ShardedArray:
    """Read-only (n_samples, n_features) array over shards, read lazily where rows are asked for.

    Supports ``len``, ``shape``, ``dtype``, ``ndim`` and row indexing (an int, a slice, an
    integer or boolean array, optionally followed by a column index); every read returns a
    NumPy array holding only the rows asked for.

    Parameters
    ----------
    shards : list of Shard
    n_features : int
    dtype : numpy.dtype
    """

    def __init__(self, shards: list[Shard], n_features: int, dtype: np.dtype) -> None:
        self.shards = shards
        self.dtype = np.dtype(dtype)
        self.shape = (sum(s.n_rows for s in shards), int(n_features))
        self.ndim = 2
        self._starts = np.array([s.start for s in shards] + [self.shape[0]], dtype=np.int64)
        self._open: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the whole matrix (none of them held)."""
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        rows = self[0:len(self)]
        return rows if dtype is None else rows.astype(dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        rest: tuple[Any, ...] = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, (int, np.integer)):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {index} out of range for {len(self)} rows")
            out = self._rows(np.array([i]))[0]
        elif isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            out = self._range(start, stop) if step == 1 else self._rows(np.arange(start, stop, step))
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = idx.astype(np.int64, copy=False)
            out = self._rows(np.where(idx < 0, idx + len(self), idx))
        return out[(slice(None), *rest)] if rest else out

    def _range(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        parts = []
        i = first
        while i < len(self.shards) and self.shards[i].start < stop:
            s = self.shards[i]
            lo, hi = max(start, s.start) - s.start, min(stop, s.start + s.n_rows) - s.start
            if hi > lo:
                parts.append(np.asarray(self._array(i)[lo:hi]))
            i += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _rows(self, idx: np.ndarray) -> np.ndarray:
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        out = np.empty((idx.size, self.shape[1]), dtype=self.dtype)
        which = np.searchsorted(self._starts, idx, side="right") - 1
        for i in np.unique(which):
            where = np.flatnonzero(which == i)
            local = idx[where] - self.shards[i].start
            array = self._array(int(i))
            lo, hi = int(local.min()), int(local.max()) + 1
            unique, inverse = np.unique(local, return_inverse=True)
            if unique.size == hi - lo:                       # a run of rows: one slice read
                out[where] = np.asarray(array[lo:hi])[local - lo]
            else:                                            # increasing indices (h5py needs them)
                out[where] = np.asarray(array[unique])[inverse.reshape(-1)]
        return out

    def _array(self, i: int) -> Any:
        """The array of shard ``i``, opened on first use (the last ``OPEN_SHARDS`` stay open)."""
        if i in self._open:
            self._open.move_to_end(i)
            return self._open[i]
        shard = self.shards[i]
        array = io.read_arrays(shard.path)[shard.key]
        if hasattr(array, "detach"):
            array = array.detach().cpu().numpy()
        shape = tuple(array.shape)
        if shape != (shard.n_rows, self.shape[1]) or np.dtype(array.dtype) != self.dtype:
            raise InvalidEmbeddingsError(
                f"shard {shard.path}: holds {shape} {np.dtype(array.dtype)}, but the data set expects "
                f"({shard.n_rows}, {self.shape[1]}) {self.dtype} (from the other shards); every shard needs the "
                "same number of features and dtype.")
        self._open[i] = array
        if len(self._open) > OPEN_SHARDS:
            self._open.popitem(last=False)
        return array


@dataclass(frozen=True, eq=False)
class ShardedEmbeddings(Embeddings):
    """:class:`~geometry_probe.embeddings.Embeddings` whose ``X`` is a :class:`ShardedArray` (never read whole)."""

    def __post_init__(self) -> None:
        if not isinstance(self.X, ShardedArray):
            super().__post_init__()
            return
        if self.X.shape[0] < 2 or self.X.shape[1] < 1:
            raise InvalidEmbeddingsError(f"{self.name}: need at least 2 rows and 1 column, got shape {self.X.shape}.")
        if self.X.dtype.kind not in "fiub":
            raise InvalidEmbeddingsError(f"{self.name}: shards hold {self.X.dtype} values; embeddings must be numeric.")
        if self.labels is not None:
            codes, names = encode_labels(self.labels, n_samples=self.X.shape[0])
            object.__setattr__(self, "labels", codes)
            object.__setattr__(self, "classes", names)


def load_sharded(spec: Any, *, labels: Any = None, key: str | None = None) -> ShardedEmbeddings:
    """Embeddings from a folder, glob or list of shard files (see the module doc).

    Parameters
    ----------
    spec : str, PathLike or list of them
    labels : str, PathLike, list or array-like, optional
        A matching folder/glob/list of label files (one per shard), the name of an array or
        column in every shard, one file for all rows, or the labels themselves.
    key : str, optional
        Which array of each container shard holds the embeddings.

    Raises
    ------
    InputFileError, CorruptFileError, AmbiguousKeyError, InvalidEmbeddingsError, InvalidLabelsError
        As :func:`geometry_probe.io.load`, naming the shard; shards of different widths or dtypes;
        label shards that do not match the embeddings shards.
    """
    paths = shard_paths(spec)
    label_key = labels if isinstance(labels, str) and not is_sharded(labels) and not os.path.lexists(labels) else None
    shards, n_features, dtype, start = [], None, None, 0
    for path in paths:
        chosen, n_rows, width, kind = _describe_shard(path, key=key, exclude=label_key)
        if n_features is None:
            n_features, dtype = width, kind
        elif width != n_features or (kind is not None and dtype is not None and kind != dtype):
            raise InvalidEmbeddingsError(
                f"shard {path}: {width} features of {kind}, but {paths[0]} has {n_features} of {dtype}; every shard "
                "needs the same number of features and dtype.")
        dtype = dtype if dtype is not None else kind
        shards.append(Shard(path, chosen, start, n_rows))
        start += n_rows
    if dtype is None:
        dtype = np.dtype(io.read_arrays(paths[0])[shards[0].key].dtype)
    X = ShardedArray(shards, int(n_features or 0), dtype)
    label_values = _sharded_labels(labels, label_key, shards) if labels is not None else None
    meta = {"path": os.fspath(spec) if not isinstance(spec, (list, tuple)) else f"{len(paths)} files",
            "key": key, "shards": [str(s.path) for s in shards], "shard_rows": [s.n_rows for s in shards],
            "shard_order": SORT_RULE if not isinstance(spec, (list, tuple)) else "as listed"}
    name = Path(os.fspath(spec)).name if not isinstance(spec, (list, tuple)) else paths[0].parent.name or "shards"
    return ShardedEmbeddings(X, labels=label_values, name=name or "shards", meta=meta)


def _describe_shard(path: Path, *, key: str | None, exclude: str | None) -> tuple[str, int, int, np.dtype | None]:
    """(array key, rows, features, dtype or None when only the full read would tell) from metadata."""
    if path.suffix.lower() == ".parquet":
        return _describe_parquet(path)
    arrays = io.read_arrays(path)
    chosen = io._select_key(arrays, key=key, exclude=exclude, path=path)
    shape = arrays.shape(chosen)
    if len(shape) != 2:
        raise InvalidEmbeddingsError(f"shard {path}: array {describe_names([chosen])} has shape {shape}; "
                                     "embeddings shards must be 2-D (n_rows, n_features).")
    dtype = np.dtype(arrays[chosen].dtype) if path.suffix.lower() == ".npy" else None
    return chosen, int(shape[0]), int(shape[1]), dtype


def _describe_parquet(path: Path) -> tuple[str, int, int, np.dtype | None]:
    """Rows from the Parquet footer; the width from the schema's numeric columns (list columns: from a read)."""
    pq = require("pyarrow.parquet", extra="io")
    try:
        schema = pq.read_schema(path)
        n_rows = pq.read_metadata(path).num_rows
    except Exception as err:  # pyarrow raises several types for a bad footer
        raise CorruptFileError(f"{path}: not a readable Parquet file: {err}") from None
    import pyarrow as pa

    features = [f for f in schema if f.name not in io.LABEL_COLUMN_NAMES and not f.name.startswith("__")]
    if features and all(pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)
                        for f in features):
        return "", int(n_rows), len(features), None
    array = io.read_arrays(path)[""]
    return "", int(n_rows), int(array.shape[1]), np.dtype(array.dtype)


def _sharded_labels(labels: Any, label_key: str | None, shards: list[Shard]) -> Any:
    """Labels for all rows, in shard order (see :func:`load_sharded`)."""
    n = sum(s.n_rows for s in shards)
    if label_key is not None:
        parts = []
        for s in shards:
            arrays = io.read_arrays(s.path)
            if label_key not in arrays:
                raise InvalidLabelsError(f"labels: shard {s.path} has no array or column {describe_names([label_key])} "
                                         f"(arrays: {describe_names(arrays)}).")
            parts.append(_check_rows(io._materialise(arrays[label_key]), s, what="labels", source=s.path))
        return np.concatenate(parts)
    if is_sharded(labels):
        return read_matching(labels, shards, what="labels")
    if isinstance(labels, (str, os.PathLike)):
        values = io.load_labels(labels)
        if len(values) != n:
            raise InvalidLabelsError(f"labels: {labels} holds {len(values)} labels for {n} rows in {len(shards)} "
                                     "shards; give one label per row, or a folder of label files matching the shards.")
        return values
    return labels


def read_matching(spec: Any, shards: list[Shard], *, what: str = "labels") -> np.ndarray:
    """One label-like file per embeddings shard, same row counts, concatenated in shard order.

    Text files (``.txt``) are read together, so numbers-or-text is decided over all rows as
    for one file (:func:`geometry_probe.io.text_labels`).
    """
    paths = shard_paths(spec, what=what, suffixes=LABEL_SUFFIXES)
    if len(paths) != len(shards):
        raise InvalidLabelsError(f"{what}: {len(paths)} files for {len(shards)} embeddings shards; give one "
                                 f"{what} file per shard (same sort order), e.g. {paths[0].name} for "
                                 f"{shards[0].path.name}.")
    if paths[0].suffix.lower() in (".txt", ".lst"):
        lines = []
        for path, shard in zip(paths, shards):
            lines.extend(_check_rows(io._read_label_lines(path), shard, what=what, source=path))
        return io.text_labels(lines)
    return np.concatenate([_check_rows(io.load_labels(p), s, what=what, source=p) for p, s in zip(paths, shards)])


def _check_rows(values: Any, shard: Shard, *, what: str, source: Path) -> Any:
    if len(values) != shard.n_rows:
        raise InvalidLabelsError(f"{what}: shard {source} holds {len(values)} rows but embeddings shard "
                                 f"{shard.path} holds {shard.n_rows} (rows {shard.start}-{shard.start + shard.n_rows - 1}"
                                 "); the shards must match one to one, in the same order.")
    return values


def read_array_spec(spec: Any, *, container: Any) -> np.ndarray:
    """Pairs, groups or labels for sharded embeddings: files matching the shards, an array/column in
    every shard, or one file (see :func:`geometry_probe.io.read_array_spec`)."""
    if not is_sharded(container):
        if is_sharded(spec):
            return np.concatenate([io.load_labels(p) for p in shard_paths(spec, what="array",
                                                                             suffixes=LABEL_SUFFIXES)])
        return io.read_array_spec(spec, container=container)
    shards = load_sharded(container).X.shards
    if is_sharded(spec):
        return read_matching(spec, shards, what="array")
    if io._names_a_file(spec):
        return io.load_labels(spec)
    return _sharded_labels(str(spec), str(spec), shards)


def load(path: Any, *, labels: Any = None, key: str | None = None, mmap: bool = True) -> Embeddings:
    """:func:`geometry_probe.io.load` for sharded embeddings or sharded labels (its dispatch calls this)."""
    if is_sharded(path):
        return load_sharded(path, labels=labels, key=key)
    values = np.concatenate([io.load_labels(p) for p in shard_paths(labels, what="labels", suffixes=LABEL_SUFFIXES)])
    return io.load(path, labels=values, key=key, mmap=mmap)
