"""Reading embeddings and labels from files, safely.

Formats by suffix: ``.npy`` (memory-mapped), ``.npz``, ``.pt``/``.pth``
(``torch.load(weights_only=True)``), ``.safetensors``, ``.csv``/``.tsv``/``.parquet``
(numeric columns or one list-valued column), ``.h5``/``.hdf5``. Nothing is ever unpickled:
object arrays and pickled Python objects are refused.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geometry_probe._optional import require
from geometry_probe._validation import encode_labels
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import (
    AmbiguousKeyError,
    InputFileError,
    InvalidEmbeddingsError,
    InvalidLabelsError,
    UnsafeFileError,
)

EMBEDDING_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".safetensors", ".csv", ".tsv", ".parquet", ".h5", ".hdf5")
LABEL_COLUMN_NAMES = ("label", "labels", "y", "target", "targets", "class")

PathLike = str | os.PathLike[str]


def load(path: PathLike, *, labels: Any = None, key: str | None = None, mmap: bool = True) -> Embeddings:
    """Load embeddings (and optionally labels) from a file.

    Parameters
    ----------
    path : str or PathLike
        Embeddings file; the suffix selects the reader (see module docstring).
    labels : str, PathLike or array-like, optional
        A label file (``.npy``, ``.txt`` one label per line, ``.csv`` column), the name of an
        array/column inside the embeddings file, or the labels themselves. String labels
        become codes; their names are kept in ``Embeddings.classes``.
    key : str, optional
        Which array of a container file (``.npz``, ``.pt`` dict, ``.safetensors``, ``.h5``)
        holds the embeddings; needed when it holds several 2-D arrays.
    mmap : bool, default=True
        Memory-map ``.npy`` files instead of reading them whole.

    Returns
    -------
    Embeddings

    Raises
    ------
    InputFileError
        Missing file, directory, unreadable, truncated or unknown format.
    UnsafeFileError
        The file needs pickle (object arrays, pickled Python objects).
    AmbiguousKeyError
        Several candidate arrays and no ``key``; the message lists them.
    InvalidEmbeddingsError, InvalidLabelsError
        Wrong shape, dtype or length.
    """
    path = _check_file(path)
    label_key = labels if isinstance(labels, str) and not Path(labels).is_file() else None
    arrays = _read_container(path, mmap=mmap)
    X = _select_embeddings(arrays, key=key, exclude=label_key, path=path)
    label_values = None
    if label_key is not None:
        if label_key not in arrays:
            raise InvalidLabelsError(
                f"labels: {label_key!r} is neither a file nor an array in {path.name} "
                f"(arrays: {sorted(arrays)}).")
        label_values = _materialise(arrays[label_key])
    elif labels is not None:
        label_values = load_labels(labels) if isinstance(labels, (str, os.PathLike)) else labels
    if label_values is not None:
        label_values = _as_label_vector(label_values, n_samples=int(X.shape[0]))
    meta = {"path": str(path), "key": key if key is not None else _chosen_key(arrays, X)}
    return Embeddings(X, labels=label_values, name=path.name, meta=meta)


def load_labels(path: PathLike) -> np.ndarray:
    """Read labels from ``.npy``, ``.txt`` (one per line) or ``.csv``/``.tsv`` (one column).

    A CSV with several columns must have one named ``label``, ``labels``, ``y``, ``target``
    or ``class``.
    """
    path = _check_file(path, what="labels")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _materialise(_read_npy(path, mmap=False))
    if suffix in (".txt", ".lst", ""):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise InputFileError(f"{path}: cannot read labels as UTF-8 text ({err}).") from None
        values = np.array([line.strip() for line in lines if line.strip()])
        return _maybe_numeric(values)
    if suffix in (".csv", ".tsv"):
        frame = _read_table(path)
        if frame.shape[1] == 1:
            return frame.iloc[:, 0].to_numpy()
        for name in LABEL_COLUMN_NAMES:
            if name in frame.columns:
                return frame[name].to_numpy()
        raise InvalidLabelsError(f"{path}: several columns {list(frame.columns)} and none named "
                                 f"{list(LABEL_COLUMN_NAMES)}; keep one column or name it 'label'.")
    raise InputFileError(f"{path}: unknown label file type {suffix!r}; use .npy, .txt or .csv.")


def read_array_spec(spec: PathLike, *, container: PathLike) -> np.ndarray:
    """An array (labels, pairs, group ids) from its own file, or the array named ``spec`` inside ``container``."""
    if Path(spec).is_file():
        return load_labels(spec)
    arrays = read_arrays(container)
    if str(spec) not in arrays:
        raise InvalidLabelsError(f"labels: {str(spec)!r} is neither a file nor an array in {Path(container).name} "
                                 f"(arrays: {sorted(arrays)}).")
    return _materialise(arrays[str(spec)])


def read_arrays(path: PathLike, *, mmap: bool = True) -> dict[str, Any]:
    """All arrays of a file by name (a bare ``.npy`` gives ``{"": array}``); nothing unpickled."""
    return _read_container(_check_file(path), mmap=mmap)


def _check_file(path: PathLike, *, what: str = "embeddings") -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such {what} file.")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory; give the {what} file inside it.")
    if not os.access(path, os.R_OK):
        raise InputFileError(f"{path}: not readable (check its permissions).")
    return path


def _read_container(path: Path, *, mmap: bool) -> dict[str, Any]:
    suffix = path.suffix.lower()
    readers = {".npy": lambda: {"": _read_npy(path, mmap=mmap)}, ".npz": lambda: _read_npz(path),
               ".pt": lambda: _read_torch(path), ".pth": lambda: _read_torch(path),
               ".safetensors": lambda: _read_safetensors(path), ".csv": lambda: _read_frame(path),
               ".tsv": lambda: _read_frame(path), ".parquet": lambda: _read_frame(path),
               ".h5": lambda: _read_h5(path), ".hdf5": lambda: _read_h5(path)}
    if suffix not in readers:
        raise InputFileError(f"{path}: unknown file type {suffix!r}; expected one of {list(EMBEDDING_SUFFIXES)}.")
    return readers[suffix]()


def _read_npy(path: Path, *, mmap: bool) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(handle)
        if header[2].hasobject:
            raise UnsafeFileError(f"{path}: holds a Python-object array, which needs pickle; refused. "
                                  "Save numeric data (e.g. X.astype('float32')).")
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except UnsafeFileError:
        raise
    except Exception as err:  # a corrupt header can fail in many ways (ValueError, SyntaxError, ...)
        raise InputFileError(f"{path}: not a readable .npy file (truncated or corrupt?): {err}") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise UnsafeFileError(f"{path}: holds a Python-object array, which needs pickle; refused.") from None
        raise InputFileError(f"{path}: not a readable .npz file: {err}") from None
    except Exception as err:  # zip and npy parsing of a corrupt file fail in many ways
        raise InputFileError(f"{path}: not a readable .npz file (truncated or corrupt?): {err}") from None


def _read_torch(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        culprit = next((line.strip() for line in str(err).splitlines()
                        if "GLOBAL" in line or "Unsupported global" in line), "")
        raise UnsafeFileError(
            f"{path}: refused: it contains pickled Python objects whose loading could run code; only "
            f"tensors and plain containers are read (weights_only=True). {culprit}".rstrip()
        ) from None
    except Exception as err:  # torch's unpickler fails on corrupt bytes with IndexError, KeyError, ...
        raise InputFileError(f"{path}: not a readable PyTorch file (truncated or corrupt?): {err}") from None
    if isinstance(obj, torch.Tensor):
        return {"": obj}
    if isinstance(obj, Mapping):
        flat = _flatten_tensors(obj)
        if flat:
            return flat
    raise InvalidEmbeddingsError(f"{path}: expected a tensor or a dict of tensors, got {type(obj).__name__}.")


def _flatten_tensors(obj: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in obj.items():
        full = f"{prefix}{name}"
        if isinstance(value, torch.Tensor):
            flat[full] = value
        elif isinstance(value, Mapping):
            flat.update(_flatten_tensors(value, prefix=f"{full}."))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, int)) for v in value):
            flat[full] = np.asarray(value)
    return flat


def _read_safetensors(path: Path) -> dict[str, Any]:
    safetensors_torch = require("safetensors.torch", extra="io", package="safetensors")
    try:
        return dict(safetensors_torch.load_file(str(path), device="cpu"))
    except Exception as err:  # safetensors raises its own SafetensorError (not exported stably)
        raise InputFileError(f"{path}: not a readable .safetensors file (truncated or corrupt?): {err}") from None


def _read_table(path: Path) -> Any:
    pd = require("pandas", extra="io")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as err:  # pandas/pyarrow parser errors have many types
        raise InputFileError(f"{path}: not a readable table: {err}") from None


def _read_frame(path: Path) -> dict[str, Any]:
    """A table as arrays: ``""`` for the numeric block (or the one list column), plus each column."""
    frame = _read_table(path)
    arrays: dict[str, Any] = {str(c): frame[c].to_numpy() for c in frame.columns}
    label_cols = [c for c in frame.columns if str(c) in LABEL_COLUMN_NAMES]
    features = frame.drop(columns=label_cols)
    numeric = features.select_dtypes(include="number")
    if numeric.shape[1] == features.shape[1] and numeric.shape[1] > 0:
        arrays[""] = numeric.to_numpy()
        return arrays
    listed = [c for c in features.columns if _is_list_column(features[c])]
    if len(listed) == 1:
        arrays[""] = _stack_list_column(features[listed[0]], path, listed[0])
        return arrays
    other = [str(c) for c in features.columns if c not in numeric.columns]
    raise InvalidEmbeddingsError(
        f"{path}: non-numeric columns {other}: keep only numeric feature columns (plus a 'label' "
        "column), or one column whose cells are lists of numbers.")


def _is_list_column(column: Any) -> bool:
    first = column.iloc[0] if len(column) else None
    return isinstance(first, (list, tuple, np.ndarray)) or (isinstance(first, str) and first.strip().startswith("["))


def _stack_list_column(column: Any, path: Path, name: Any) -> np.ndarray:
    import json

    try:
        rows = [json.loads(v) if isinstance(v, str) else list(v) for v in column]
        return np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise InvalidEmbeddingsError(f"{path}: column {name!r} is not a list of numbers in every row: {err}") from None


def _read_h5(path: Path) -> dict[str, Any]:
    h5py = require("h5py", extra="io")
    try:
        with h5py.File(path, "r") as handle:
            arrays: dict[str, Any] = {}
            handle.visititems(
                lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
            return arrays
    except Exception as err:  # h5py raises OSError, KeyError or ValueError on corrupt files
        raise InputFileError(f"{path}: not a readable HDF5 file: {err}") from None


def _select_embeddings(arrays: dict[str, Any], *, key: str | None, exclude: str | None, path: Path) -> Any:
    if key is not None:
        if key not in arrays:
            raise AmbiguousKeyError(f"{path.name}: no array named {key!r}; available: {_describe(arrays)}.")
        return arrays[key]
    if "" in arrays:
        return arrays[""]
    candidates = {k: v for k, v in arrays.items() if k != exclude and len(getattr(v, "shape", ())) >= 2}
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if not candidates:
        raise InvalidEmbeddingsError(f"{path.name}: no 2-D array found; arrays: {_describe(arrays)}.")
    raise AmbiguousKeyError(
        f"{path.name} holds several arrays: {_describe(candidates)}; choose one with --key NAME (key=...).")


def _chosen_key(arrays: dict[str, Any], X: Any) -> str | None:
    return next((k for k, v in arrays.items() if v is X and k), None)


def _describe(arrays: dict[str, Any]) -> str:
    return ", ".join(f"{k!r} {tuple(getattr(v, 'shape', ()))}" for k, v in arrays.items())


def _materialise(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _as_label_vector(values: Any, *, n_samples: int) -> np.ndarray:
    arr = _materialise(values)
    encode_labels(arr, n_samples=n_samples)  # validates length/shape now, with a clear message
    return arr


def _maybe_numeric(values: np.ndarray) -> np.ndarray:
    try:
        as_int = values.astype(np.int64)
        return as_int
    except ValueError:
        return values
