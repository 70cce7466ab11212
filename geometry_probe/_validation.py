"""Checks at the boundaries: shapes, dtypes, labels, finiteness, option values.

Messages say what was expected, what was received, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from geometry_probe.exceptions import (
    InvalidEmbeddingsError,
    InvalidInputError,
    InvalidLabelsError,
)

ArrayLike = Any  # np.ndarray | torch.Tensor | nested sequences

_NUMERIC_KINDS = "fiub"  # float, signed int, unsigned int, bool


def check_embeddings(X: ArrayLike, *, name: str = "embeddings") -> np.ndarray | torch.Tensor:
    """Return ``X`` as a 2-D numeric NumPy array or tensor with at least two rows.

    NumPy arrays (memory-mapped ones included) and tensors are kept as they are, never
    copied or upcast; other sequences are converted with :func:`numpy.asarray`.
    Finiteness is checked batch by batch when the data are read
    (:meth:`Embeddings.batches`), so a memory-mapped file is scanned only once.

    Raises
    ------
    InvalidEmbeddingsError
        Not 2-D, fewer than two rows, zero columns, or not numeric.
    """
    if not isinstance(X, (np.ndarray, torch.Tensor)):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as err:
            raise InvalidEmbeddingsError(f"{name}: could not read as a numeric array ({err}).") from None
    if isinstance(X, np.ndarray) and X.dtype.kind not in _NUMERIC_KINDS:
        hint = " Object arrays are refused: they need pickle." if X.dtype.kind == "O" else ""
        raise InvalidEmbeddingsError(
            f"{name}: expected a numeric array, got dtype {X.dtype}.{hint} "
            "Save embeddings as float32/float64 (np.save(path, X.astype('float32')))."
        )
    if isinstance(X, torch.Tensor) and X.is_complex():
        raise InvalidEmbeddingsError(f"{name}: complex tensors are not supported; pass the real part.")
    shape = tuple(X.shape)
    if len(shape) != 2:
        hint = ""
        if len(shape) == 3:
            hint = (
                " If these are per-token embeddings (n_samples, n_tokens, n_features), pool them "
                "first: X.mean(axis=1) for mean pooling or X[:, 0] for the CLS token."
            )
        elif len(shape) == 1:
            hint = " A single vector is one sample: reshape to (1, n_features) and add more rows."
        raise InvalidEmbeddingsError(
            f"{name}: expected a 2-D array of shape (n_samples, n_features), got shape {shape}.{hint}"
        )
    if shape[0] < 2:
        raise InvalidEmbeddingsError(
            f"{name}: need at least 2 rows (samples) to measure geometry, got {shape[0]}."
        )
    if shape[1] < 1:
        raise InvalidEmbeddingsError(f"{name}: need at least 1 column (feature), got shape {shape}.")
    return X


def check_finite_batch(X: torch.Tensor, *, offset: int, name: str = "embeddings") -> None:
    """Raise if a batch holds NaN or inf, naming the first bad rows (global indices).

    Fast path: a finite sum proves every entry finite (NaN and inf propagate); only when the
    sum is not finite (bad entries, or an overflowing sum) is the batch scanned entry by entry.
    """
    if not X.dtype.is_floating_point or bool(torch.isfinite(X.sum())):
        return
    if not bool(torch.isfinite(X).all()):
        bad = (~torch.isfinite(X)).any(dim=1).nonzero().flatten()[:5].cpu().tolist()
        rows = ", ".join(str(offset + i) for i in bad)
        raise InvalidEmbeddingsError(
            f"{name}: rows contain NaN or inf (first bad rows: {rows}). "
            "Remove or fix these rows before analysing; they usually mean the model diverged."
        )


def encode_labels(labels: ArrayLike, *, n_samples: int | None = None, name: str = "labels"
                  ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Turn labels of any type into int64 codes ``0..C-1`` and the sorted class names.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Integers (possibly sparse, e.g. ``{3, 17}``), strings, or booleans. A column vector
        of shape (n_samples, 1) is accepted.
    n_samples : int, optional
        Expected length; a mismatch raises.

    Returns
    -------
    codes : ndarray of shape (n_samples,), int64
    classes : tuple of str
        ``classes[code]`` is the original label, as text.
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidLabelsError(f"{name}: expected a 1-D array of length n_samples, got shape {arr.shape}.")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise InvalidLabelsError(
            f"{name}: got {arr.shape[0]} labels for {n_samples} embeddings; "
            "labels must have one entry per row, in the same order."
        )
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidLabelsError(f"{name}: labels contain NaN or inf.")
        if not np.all(arr == np.round(arr)):
            example = arr[arr != np.round(arr)][0]
            raise InvalidLabelsError(f"{name}: float labels must be whole numbers (class ids), got e.g. {example}.")
        arr = arr.astype(np.int64)
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    if arr.dtype.kind in "iu" and arr.size and int(arr.max()) - int(arr.min()) < max(arr.size, 2**16):
        return _encode_dense_integers(arr)
    uniques, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), tuple(str(u) for u in uniques)


def _encode_dense_integers(arr: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """:func:`encode_labels` for integers spanning fewer values than there are labels: a
    counting pass and a lookup table (two N-sized temporaries instead of the ~6 of a sort)."""
    low = int(arr.min())
    shifted = np.subtract(arr, low, dtype=np.int64)
    present = np.bincount(shifted) > 0
    lookup = np.cumsum(present, dtype=np.int64) - 1
    return lookup[shifted], tuple(str(value + low) for value in np.flatnonzero(present))


def check_choice(value: str, choices: Iterable[str], *, name: str) -> str:
    """Return ``value`` if it is one of ``choices``; raise a message listing them otherwise."""
    choices = list(choices)
    if value not in choices:
        raise InvalidInputError(f"{name}: got {value!r}; choose one of {choices}.")
    return value


def check_positive_int(value: int, *, name: str) -> int:
    """Return ``value`` if it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{name}: expected a positive integer, got {value!r}.")
    return int(value)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` → CUDA when available, else CPU; validate explicit names."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"device: got {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device: 'cuda' was asked for but no CUDA device is available; use --device cpu.")
    return dev


def as_sequence(value: str | Sequence[str] | None) -> list[str] | None:
    """Split ``"a,b"`` or a list of such strings into names."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]
