"""Checks at the boundaries: shapes, dtypes, labels, finiteness, option values.

Messages say what was expected, what was received, and how to fix it.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from geometry_probe.exceptions import (
    InputTooLargeError,
    InvalidEmbeddingsError,
    InvalidInputError,
    InvalidLabelsError,
)

ArrayLike = Any  # np.ndarray | torch.Tensor | nested sequences

_NUMERIC_KINDS = "fiub"  # float, signed int, unsigned int, bool

#: Largest dense array (bytes) made from a sparse, quantized, nested or stride-0 input.
DENSE_BUDGET_BYTES = 2**30


def check_embeddings(X: ArrayLike, *, name: str = "embeddings") -> np.ndarray | torch.Tensor:
    """Return ``X`` as a 2-D numeric NumPy array or strided tensor with at least two rows.

    Arrays and tensors go through :func:`as_plain_array` (byte order, long double,
    requires-grad, sparse, quantized and nested layouts); plain native arrays and strided
    tensors (memory-mapped ones included) are kept as they are, never copied or upcast.
    Finiteness is checked batch by batch when the data are read
    (:meth:`Embeddings.batches`), so a memory-mapped file is scanned only once.

    Raises
    ------
    InvalidEmbeddingsError
        Not 2-D, fewer than two rows, zero columns, or not numeric.
    InputTooLargeError
        A sparse, quantized or nested tensor whose dense form exceeds ``DENSE_BUDGET_BYTES``.
    """
    X = as_plain_array(X, name=name)
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise InvalidEmbeddingsError(
            f"{name}: expected a 2-D array of shape (n_samples, n_features), got shape {_shape_text(shape)}."
            f"{_shape_hint(shape)}"
        )
    if shape[0] < 2:
        raise InvalidEmbeddingsError(
            f"{name}: need at least 2 rows (samples) to measure geometry, got {shape[0]}."
        )
    if shape[1] < 1:
        raise InvalidEmbeddingsError(f"{name}: need at least 1 column (feature), got shape {shape}.")
    return X


def _shape_text(shape: tuple[int, ...]) -> str:
    if len(shape) <= 6:
        return str(shape)
    return f"({', '.join(map(str, shape[:4]))}, ...) with {len(shape)} dimensions"


def _shape_hint(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return (" If these are per-token embeddings (n_samples, n_tokens, n_features), pool them "
                "first: X.mean(axis=1) for mean pooling or X[:, 0] for the CLS token.")
    if len(shape) == 1:
        return " A single vector is one sample: reshape to (1, n_features) and add more rows."
    return ""


def as_plain_array(X: ArrayLike, *, name: str = "embeddings") -> np.ndarray | torch.Tensor:
    """The one conversion layer: whatever array arrives, a numeric NumPy array or strided tensor.

    * NumPy: non-native byte order (``>f4``) and long double (``float128``) become native
      ``float32``/``float64`` (long double only when every value fits float64). A
      memory-mapped file larger than ``DENSE_BUDGET_BYTES`` is kept as it is and converted
      batch by batch (:func:`native_rows`), never copied whole. Masked arrays are accepted
      when nothing is masked. Complex, object, string, structured and date dtypes are refused.
    * PyTorch: tensors that require grad are detached; sparse (COO, CSR, ...), quantized and
      regular nested tensors become dense when their dense size fits ``DENSE_BUDGET_BYTES``;
      meta, ragged nested and complex tensors are refused.
    * Anything else goes through :func:`numpy.asarray`.

    Parameters
    ----------
    X : array-like, ndarray or Tensor
    name : str, default="embeddings"
        Used in messages.

    Returns
    -------
    ndarray or Tensor
        Same values; a copy only where the layout or dtype had to change.

    Raises
    ------
    InvalidEmbeddingsError
        Values that are not real numbers, or a layout without values.
    InputTooLargeError
        A dense form larger than ``DENSE_BUDGET_BYTES``; the message gives its size.
    """
    if isinstance(X, torch.Tensor):
        return _plain_tensor(X, name)
    if not isinstance(X, np.ndarray):
        X = _asarray(X, name)
    return _plain_ndarray(X, name)


def _asarray(X: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(X)
    except (ValueError, TypeError, RecursionError) as err:
        raise InvalidEmbeddingsError(f"{name}: could not read as a numeric array ({short_message(err)}).") from None


def _plain_ndarray(X: np.ndarray, name: str) -> np.ndarray:
    if isinstance(X, np.ma.MaskedArray):
        if np.ma.is_masked(X):
            raise InvalidEmbeddingsError(f"{name}: a masked array with masked entries; fill or drop them first "
                                         "(X.filled(...) or X[~X.mask.any(axis=1)]).")
        X = X.data
    _check_numpy_dtype(X.dtype, name)
    if _needs_conversion(X.dtype) and not (_is_memory_mapped(X) and X.nbytes > DENSE_BUDGET_BYTES):
        return native_rows(X, name=name)
    return X


_DTYPE_ADVICE = {
    "c": "complex values are not supported; pass the real part (X.real) or the magnitude (abs(X))",
    "O": "Python-object arrays are refused: they need pickle",
    "U": "text is not numeric; parse it into numbers first",
    "S": "bytes are not numeric; parse them into numbers first",
    "V": "structured or raw-bytes arrays are not supported; select the numeric fields as a 2-D float array",
    "M": "dates are not features; convert them to numbers first",
    "m": "time deltas are not features; convert them to numbers first",
}


def _check_numpy_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind in _NUMERIC_KINDS:
        return
    advice = _DTYPE_ADVICE.get(dtype.kind, "not a numeric dtype")
    raise InvalidEmbeddingsError(
        f"{name}: expected a numeric array, got dtype {dtype} ({advice}). "
        "Save embeddings as float32/float64 (np.save(path, X.astype('float32')))."
    )


def _needs_conversion(dtype: np.dtype) -> bool:
    return not dtype.isnative or (dtype.kind == "f" and dtype.itemsize > 8)


def _is_memory_mapped(X: np.ndarray) -> bool:
    base: Any = X
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


def native_rows(rows: np.ndarray, *, name: str = "embeddings", offset: int = 0) -> np.ndarray:
    """``rows`` in native byte order, long double narrowed to float64 (a copy only when needed).

    Parameters
    ----------
    rows : ndarray
    name : str, default="embeddings"
        Used in messages.
    offset : int, default=0
        Index of ``rows[0]`` in the whole array, so messages name global rows.

    Raises
    ------
    InvalidEmbeddingsError
        A finite long-double value beyond float64's range (about ±1.8e308).
    """
    if rows.dtype.kind == "f" and rows.dtype.itemsize > 8:
        with np.errstate(over="ignore"):  # overflow is reported below, naming the rows
            narrowed = rows.astype(np.float64)
        overflow = np.isinf(narrowed) & np.isfinite(rows)
        if overflow.any():
            rows_hit = np.flatnonzero(overflow.reshape(len(rows), -1).any(axis=1))[:5]
            bad = ", ".join(str(offset + int(i)) for i in rows_hit)
            raise InvalidEmbeddingsError(
                f"{name}: long-double values beyond float64's range (about ±1.8e308) in rows {bad}; "
                "rescale the data before analysing.")
        return narrowed
    if not rows.dtype.isnative:
        return rows.astype(rows.dtype.newbyteorder("="))
    return rows


_DENSE_HINT = ("reduce it (fewer rows or columns), or densify it in row blocks and save them as a .npy file, "
               "which is read lazily.")


def _plain_tensor(X: torch.Tensor, name: str) -> torch.Tensor:
    if X.is_meta:
        raise InvalidEmbeddingsError(f"{name}: a meta tensor has a shape but no values; load or compute the real "
                                     "tensor first (e.g. load the weights, or build the model on 'cpu').")
    if X.requires_grad:
        X = X.detach()
    if X.is_nested:
        X = _unnested(X, name)
    if X.is_quantized:
        check_dense_size(tuple(X.shape), 4, name=name, what="quantized tensor")
        X = X.dequantize()
    if X.layout != torch.strided:
        check_dense_size(tuple(X.shape), X.element_size(), name=name, what=f"{X.layout} tensor")
        X = X.to_dense()
    if X.is_complex():
        raise InvalidEmbeddingsError(f"{name}: complex tensors are not supported; pass the real part (X.real).")
    return X


def _unnested(X: torch.Tensor, name: str) -> torch.Tensor:
    parts = X.unbind()
    shapes = {tuple(part.shape) for part in parts}
    if len(shapes) != 1:
        raise InvalidEmbeddingsError(
            f"{name}: a ragged nested tensor ({len(parts)} components of {len(shapes)} different shapes); pad or "
            "pool the components to one shape first (e.g. torch.stack([t.mean(0) for t in X.unbind()])).")
    check_dense_size((len(parts), *shapes.pop()), X.element_size(), name=name, what="nested tensor")
    return torch.stack(parts)


def check_dense_size(shape: tuple[int, ...], itemsize: int, *, name: str, what: str,
                     hint: str = _DENSE_HINT, budget: int | None = None) -> int:
    """Raise :class:`InputTooLargeError` before materialising ``shape`` elements beyond ``budget`` bytes.

    Parameters
    ----------
    shape : tuple of int
        Logical shape of the dense result.
    itemsize : int
        Bytes per element of the dense result.
    name, what : str
        The input's name and a description of its layout, for the message.
    hint : str
        How to fix it, ending the message.
    budget : int, optional
        Bytes allowed; default ``DENSE_BUDGET_BYTES``.

    Returns
    -------
    int
        The dense size in bytes.
    """
    budget = DENSE_BUDGET_BYTES if budget is None else budget
    nbytes = math.prod(shape) * itemsize
    if nbytes > budget:
        raise InputTooLargeError(
            f"{name}: the {what} of shape {shape} would take {format_bytes(nbytes)} as a dense array, more than "
            f"the {format_bytes(budget)} allowed; {hint}")
    return nbytes


def format_bytes(nbytes: int) -> str:
    """``nbytes`` as text with a binary unit.

    Examples
    --------
    >>> format_bytes(800), format_bytes(3 * 2**30), format_bytes(10**7 * 1024 * 8)
    ('800 B', '3.0 GiB', '76.3 GiB')
    """
    if nbytes < 1024:
        return f"{nbytes} B"
    value = nbytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def short_message(err: BaseException | str, *, limit: int = 300) -> str:
    """An error's text on one line, at most ``limit`` characters (for messages quoting a parser)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_names(names: Iterable[Any], *, shown: int = 5, limit: int = 60) -> str:
    """A few names quoted (each cut to ``limit`` characters) and ``"and N more"``: one short line."""
    names = list(names)
    quoted = [repr(str(n)) if len(str(n)) <= limit else repr(str(n)[: limit - 1] + "…") for n in names[:shown]]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return (", ".join(quoted) or "none") + more


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

    Rules (the same for every source; see the user guide's page on inputs):

    * **Missing labels are refused**, naming the first rows: ``None``, float NaN/inf and the
      text ``'nan'`` (any case) are never a class.
    * **NUL characters are refused**: NumPy's text dtypes drop trailing NULs, so ``'a'`` and
      ``'a\\0'`` would silently become one class. Labels given as a Python list or an object
      array are checked before any conversion; a NumPy ``U``/``S`` array has already lost its
      trailing NULs when it arrives, so only embedded ones can be found there.
    * **Numbers are compared as numbers**: integer, boolean and float labels (also a list or
      object array holding only numbers) are classes by value, so ``1`` and ``1.0`` are one
      class; floats must be whole numbers below 2**53 in magnitude.
    * **Text is compared as text**: strings are class names, compared exactly (``'1'`` and
      ``'1.0'`` are two classes); an object array mixing numbers and text is compared as
      text. Label *files* are read by :func:`geometry_probe.io.load_labels`, which turns
      text that is all numbers into numbers first.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Integers (possibly sparse, e.g. ``{3, 17}``), strings, or booleans. A column vector
        of shape (n_samples, 1) is accepted.
    n_samples : int, optional
        Expected length; a mismatch raises.
    name : str, default="labels"
        Used in messages.

    Returns
    -------
    codes : ndarray of shape (n_samples,), int64
    classes : tuple of str
        ``classes[code]`` is the original label, as text.

    Raises
    ------
    InvalidLabelsError
        Wrong shape or length, a missing label, a NUL character, or a non-whole float.

    Examples
    --------
    >>> encode_labels(["b", "a", "b"])
    (array([1, 0, 1]), ('a', 'b'))
    >>> encode_labels([1, 1.0, 3])
    (array([0, 0, 1]), ('1', '3'))
    """
    arr = _label_array(labels, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidLabelsError(f"{name}: expected a 1-D array of length n_samples, got shape {arr.shape}.")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise InvalidLabelsError(
            f"{name}: got {arr.shape[0]} labels for {n_samples} embeddings; "
            "labels must have one entry per row, in the same order."
        )
    if arr.dtype.kind == "O":
        arr = _object_labels(arr, name)
    if arr.dtype.kind == "f":
        arr = _whole_float_labels(arr, name)
    if arr.dtype.kind in "US":
        _check_text_labels(arr, name)
    if arr.dtype.kind in "iu" and arr.size and int(arr.max()) - int(arr.min()) < max(arr.size, 2**16):
        return _encode_dense_integers(arr)
    uniques, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), tuple(_label_name(u) for u in uniques)


def _label_name(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _label_array(labels: ArrayLike, name: str) -> np.ndarray:
    """Labels as an ndarray; Python sequences of text become object arrays so NULs stay visible."""
    if isinstance(labels, torch.Tensor):
        return as_plain_array(labels, name=name).cpu().numpy()
    if isinstance(labels, np.ndarray):
        return labels
    try:
        arr = np.asarray(labels)
        return np.asarray(labels, dtype=object) if arr.dtype.kind in "US" else arr
    except (ValueError, TypeError, RecursionError) as err:
        raise InvalidLabelsError(f"{name}: could not read as a 1-D array ({short_message(err)}).") from None


def _object_labels(arr: np.ndarray, name: str) -> np.ndarray:
    """Object labels: refuse missing ones and NULs; all numbers → a numeric array, else text."""
    values = arr.tolist()
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        raise InvalidLabelsError(_missing_message(name, missing))
    with_nul = [i for i, v in enumerate(values) if _has_nul(v)]
    if with_nul:
        raise InvalidLabelsError(_nul_message(name, with_nul))
    if values and all(isinstance(v, (int, float, np.number)) for v in values):
        numeric = np.asarray(values)
        if numeric.dtype.kind in "biufc":
            return numeric
    return np.asarray([_label_name(v) for v in values])


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    return isinstance(value, bytes) and b"\0" in value


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower() == "nan"


def _missing_message(name: str, rows: Sequence[int]) -> str:
    shown = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    return (f"{name}: {len(rows)} missing label(s) (None, NaN, inf or 'nan'), first in row(s) {shown}; drop those rows "
            "or give them a class name.")


def _nul_message(name: str, rows: Sequence[int]) -> str:
    shown = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    return (f"{name}: {len(rows)} label(s) contain a NUL character ('\\0'), first in row(s) {shown}; NumPy drops "
            "trailing NULs, which would merge classes such as 'a' and 'a\\0'. Remove the NULs from the labels.")


def _whole_float_labels(arr: np.ndarray, name: str) -> np.ndarray:
    missing = np.flatnonzero(~np.isfinite(arr))
    if missing.size:
        raise InvalidLabelsError(_missing_message(name, missing.tolist()))
    bad = np.flatnonzero((arr != np.round(arr)) | (np.abs(arr) >= np.float64(2.0**53)))  # float64: no float16 overflow
    if bad.size:
        raise InvalidLabelsError(f"{name}: float labels must be whole numbers (class ids) below 2**53, got e.g. "
                                 f"{float(arr[bad[0]])!r} in row {bad[0]}.")
    return arr.astype(np.int64)


def _check_text_labels(arr: np.ndarray, name: str) -> None:
    """Refuse NUL characters (only embedded ones survive in a NumPy text array) and 'nan' text."""
    for start in range(0, arr.shape[0], _TEXT_CHUNK):
        chunk = arr[start:start + _TEXT_CHUNK]
        nul = np.flatnonzero(_embedded_nul(chunk))
        if nul.size:
            raise InvalidLabelsError(_nul_message(name, (nul + start).tolist()))
        lowered = np.strings.lower(np.strings.strip(chunk))
        missing = np.flatnonzero(lowered == ("nan" if arr.dtype.kind == "U" else b"nan"))
        if missing.size:
            raise InvalidLabelsError(_missing_message(name, (missing + start).tolist()))


_TEXT_CHUNK = 65536


def _embedded_nul(chunk: np.ndarray) -> np.ndarray:
    """Per row: a zero code unit followed by a non-zero one (NumPy pads text with zeros)."""
    unit = np.dtype(np.uint32 if chunk.dtype.kind == "U" else np.uint8)
    width = chunk.dtype.itemsize // unit.itemsize
    if width < 2 or chunk.size == 0:
        return np.zeros(chunk.shape[0], dtype=bool)
    codes = np.ascontiguousarray(chunk).view(unit).reshape(chunk.shape[0], width) != 0
    later = np.logical_or.accumulate(codes[:, ::-1], axis=1)[:, ::-1]
    return (~codes[:, :-1] & later[:, 1:]).any(axis=1)


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
