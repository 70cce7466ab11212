"""Reading embeddings and labels from files, safely.

Formats by suffix: ``.npy`` (memory-mapped), ``.npz``, ``.pt``/``.pth``
(``torch.load(weights_only=True)``), ``.safetensors``, ``.csv``/``.tsv``/``.parquet``
(numeric columns or one list-valued column), ``.h5``/``.hdf5``. Nothing is ever unpickled:
object arrays and pickled Python objects are refused.

Only what was asked for is read: container files (``.npz``, ``.h5``, ``.safetensors``) are
listed from their metadata, and only the chosen array is read, after its declared size was
checked; ``.npy`` files, uncompressed ``.npz`` members and ``.pt`` files are memory-mapped.
Paths that are not regular files (FIFOs, devices, sockets, directories) are refused before
anything is opened, and HDF5 datasets whose values live outside the file (external storage,
virtual datasets) are refused.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geometry_probe._optional import require
from geometry_probe._validation import describe_names, encode_labels, format_bytes, short_message
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import (
    AmbiguousKeyError,
    CorruptFileError,
    InputFileError,
    InputTooLargeError,
    InvalidEmbeddingsError,
    InvalidLabelsError,
    UnsafeFileError,
)

EMBEDDING_SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".safetensors", ".csv", ".tsv", ".parquet", ".h5", ".hdf5")
LABEL_COLUMN_NAMES = ("label", "labels", "y", "target", "targets", "class")
#: Deepest nesting of dicts read from a ``.pt`` file; deeper (or self-referencing) parts are skipped.
MAX_NESTING = 32

PathLike = str | os.PathLike[str]
Shape = tuple[int, ...]

_FILE_KINDS = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
               (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
_NPY_MAGIC = b"\x93NUMPY"


class ArrayFile(Mapping[str, Any]):
    """The arrays of one file by name; each is read on first access, the others never.

    Parameters
    ----------
    names : list of str
        Array names, in file order.
    read : callable
        ``read(name)`` returns the array (NumPy or tensor).
    shapes : callable
        Returns ``{name: shape}`` for every array, from metadata only (called once, when needed).
    """

    def __init__(self, names: list[str], read: Callable[[str], Any], shapes: Callable[[], dict[str, Shape]]) -> None:
        self._names, self._known, self._read, self._shapes_of = names, set(names), read, shapes
        self._loaded: dict[str, Any] = {}
        self._shapes: dict[str, Shape] | None = None
        self.notes: list[str] = []          # what the reader changed, e.g. a dropped index column

    @classmethod
    def of(cls, arrays: Mapping[str, Any]) -> ArrayFile:
        """An :class:`ArrayFile` over arrays already in memory."""
        arrays = dict(arrays)
        return cls(list(arrays), arrays.__getitem__, lambda: {k: _shape_of(v) for k, v in arrays.items()})

    def __getitem__(self, name: str) -> Any:
        if name not in self._known:
            raise KeyError(name)
        if name not in self._loaded:
            self._loaded[name] = self._read(name)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def shape(self, name: str) -> Shape:
        """The shape of array ``name`` without reading its values."""
        if self._shapes is None:
            self._shapes = self._shapes_of()
        return self._shapes[name]

    def describe(self, names: list[str] | None = None) -> str:
        """A few names with their shapes and ``"and N more"``: one short line."""
        names = self._names if names is None else names
        shown = [f"{describe_names([n])} {self.shape(n)}" for n in names[:5]]
        return ", ".join(shown or ["none"]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _shape_of(value: Any) -> Shape:
    """Shape of an array or tensor; a nested tensor (no fixed sizes) gives ``-1`` for ragged dimensions."""
    if isinstance(value, torch.Tensor) and value.is_nested:
        return (value.size(0),) + (-1,) * (value.dim() - 1)
    return tuple(int(n) for n in getattr(value, "shape", ()))


def load(path: PathLike, *, labels: Any = None, key: str | None = None, mmap: bool = True,
         header: bool | None = None) -> Embeddings:
    """Load embeddings (and optionally labels) from a file.

    Parameters
    ----------
    path : str, PathLike or list of them
        Embeddings file; the suffix selects the reader (see module docstring). A folder, a glob
        or a list of files is read as one data set of shards (:mod:`geometry_probe.shards`).
    labels : str, PathLike or array-like, optional
        A label file (``.npy``, ``.txt`` one label per line, ``.csv`` column), the name of an
        array/column inside the embeddings file, or the labels themselves. String labels
        become codes; their names are kept in ``Embeddings.classes``. The rules for
        missing labels, NUL characters and numbers written as text are those of
        :func:`geometry_probe._validation.encode_labels` and :func:`load_labels`.
    key : str, optional
        Which array of a container file (``.npz``, ``.pt`` dict, ``.safetensors``, ``.h5``)
        holds the embeddings; needed when it holds several 2-D arrays.
    mmap : bool, default=True
        Memory-map ``.npy`` files and uncompressed ``.npz`` members (``np.savez``) instead of
        reading them whole.
    header : bool, optional
        ``.csv``/``.tsv`` only: whether the first row names the columns. Default: detected, a
        first row of numbers only is data (:func:`has_header_row`). A first column without a
        name holding 0, 1, ..., N-1 (the index ``pandas.DataFrame.to_csv`` writes) is dropped,
        with a note in ``meta["notes"]``.

    Returns
    -------
    Embeddings

    Raises
    ------
    InputFileError
        Missing file, directory or other non-regular file, unreadable, or unknown format.
    CorruptFileError
        Truncated or corrupt file, or not the format its suffix names.
    UnsafeFileError
        The file needs pickle (object arrays, pickled Python objects), or an HDF5 dataset
        stores its values outside the file.
    InputTooLargeError
        The chosen array declares more bytes than the memory available.
    AmbiguousKeyError
        Several candidate arrays and no ``key``; the message lists a few.
    InvalidEmbeddingsError, InvalidLabelsError
        Wrong shape, dtype or length.
    """
    from geometry_probe import shards          # a folder, glob or list of shards (imports this module)

    if shards.is_sharded(path) or shards.is_sharded(labels):
        return shards.load(path, labels=labels, key=key, mmap=mmap)
    path = check_input_file(path)
    arrays = _read_container(path, mmap=mmap, header=header)
    label_key = labels if isinstance(labels, str) and labels in arrays and not _names_a_file(labels) else None
    chosen = _select_key(arrays, key=key, exclude=label_key, path=path)
    X = arrays[chosen]
    label_values = _label_values(labels, label_key, arrays, path)
    if label_values is not None:
        label_values = _as_label_vector(label_values, n_samples=int(X.shape[0]))
    meta: dict[str, Any] = {"path": str(path), "key": key if key is not None else (chosen or None)}
    if arrays.notes:
        meta["notes"] = list(arrays.notes)
    return Embeddings(X, labels=label_values, name=path.name, meta=meta)


def _label_values(labels: Any, label_key: str | None, arrays: ArrayFile, path: Path) -> Any:
    if label_key is not None:
        return _materialise(arrays[label_key])
    if isinstance(labels, str) and not os.path.lexists(labels):
        raise InvalidLabelsError(f"labels: {describe_names([labels])} is neither a file nor an array in {path.name} "
                                 f"(arrays: {describe_names(arrays)}).")
    if isinstance(labels, (str, os.PathLike)):
        return load_labels(labels)
    return labels


def _names_a_file(spec: PathLike) -> bool:
    """True when ``spec`` is a path to something other than a directory (a FIFO counts: it is refused later)."""
    return os.path.lexists(spec) and not os.path.isdir(spec)


def load_labels(path: PathLike) -> np.ndarray:
    """Read labels from ``.npy``, ``.txt`` (one per line) or ``.csv``/``.tsv`` (one column).

    A CSV with several columns must have one named ``label``, ``labels``, ``y``, ``target``
    or ``class``. In a text file, a blank line before the last label is a missing label and
    is refused, and labels that all parse as finite numbers are numbers (:func:`text_labels`):
    ``1`` and ``1.0`` are then one class. Empty CSV cells are missing labels (refused when
    the labels are encoded, naming the row). A CSV's first row is a header unless it holds
    only numbers (:func:`has_header_row`); a pandas index column is dropped.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    InputFileError, CorruptFileError
        Missing, non-regular, unreadable or corrupt file.
    InvalidLabelsError
        A blank line among the labels, or a CSV without a recognisable label column.
    """
    path = check_input_file(path, what="labels")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _materialise(_read_npy(path, mmap=False))
    if suffix in (".txt", ".lst", ""):
        return text_labels(_read_label_lines(path))
    if suffix in (".csv", ".tsv"):
        return _label_column(_drop_pandas_index(_read_table(path), path)[0], path)
    raise InputFileError(f"{path}: unknown label file type {suffix!r}; use .npy, .txt or .csv.")


def _read_label_lines(path: Path) -> list[str]:
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot read labels as UTF-8 text ({short_message(err)}).") from None
    while lines and not lines[-1]:
        lines.pop()
    with_nul = [i for i, line in enumerate(lines) if "\0" in line]
    if with_nul:
        raise InvalidLabelsError(f"{path}: {len(with_nul)} label(s) contain a NUL character (first: line "
                                 f"{with_nul[0] + 1}); NumPy drops trailing NULs, which would merge classes such as "
                                 "'a' and 'a\\0'. Remove the NULs from the labels.")
    blank = [i for i, line in enumerate(lines) if not line]
    if blank:
        raise InvalidLabelsError(f"{path}: {len(blank)} blank line(s) among the labels (first: line {blank[0] + 1}); "
                                 "every row needs a label, one per line, in the order of the embeddings.")
    return lines


def _label_column(frame: Any, path: Path) -> np.ndarray:
    if frame.shape[1] == 1:
        return frame.iloc[:, 0].to_numpy()
    for name in LABEL_COLUMN_NAMES:
        if name in frame.columns:
            return frame[name].to_numpy()
    raise InvalidLabelsError(f"{path}: several columns ({describe_names(frame.columns)}) and none named "
                             f"{list(LABEL_COLUMN_NAMES)}; keep one column or name it 'label'.")


def text_labels(lines: list[str]) -> np.ndarray:
    """Labels read as text: numbers when every one parses as a finite number, else the text.

    Integers stay exact (int64); otherwise, when every value is a whole number below 2**53
    in magnitude they become int64 (``'1'`` and ``'1.0'`` are one class), and when some are
    not whole each becomes the shortest text of its float value (``'0.5'`` and ``'.50'`` are
    one class). Text with any non-number stays text, compared exactly.

    Parameters
    ----------
    lines : list of str

    Returns
    -------
    ndarray of shape (len(lines),)

    Examples
    --------
    >>> text_labels(["1", "1.0", "2"]).tolist()
    [1, 1, 2]
    >>> text_labels(["0.5", ".50", "2"]).tolist()
    ['0.5', '0.5', '2.0']
    >>> text_labels(["1", "cat"]).tolist()
    ['1', 'cat']
    """
    values = np.array(lines, dtype=object).astype(str) if lines else np.array([], dtype=str)
    try:
        return values.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    try:
        numbers = values.astype(np.float64)
    except (ValueError, OverflowError):
        return values
    if not np.isfinite(numbers).all() or (np.abs(numbers) >= 2.0**53).any():
        return values
    if np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64)
    return np.array([repr(float(v)) for v in numbers])


def read_array_spec(spec: PathLike, *, container: PathLike) -> np.ndarray:
    """An array (labels, pairs, group ids) from its own file, or the array named ``spec`` inside ``container``."""
    from geometry_probe import shards

    if shards.is_sharded(spec) or shards.is_sharded(container):
        return shards.read_array_spec(spec, container=container)
    if _names_a_file(spec):
        return load_labels(spec)
    arrays = read_arrays(container)
    if str(spec) not in arrays:
        raise InvalidLabelsError(f"labels: {describe_names([spec])} is neither a file nor an array in "
                                 f"{Path(container).name} "
                                 f"(arrays: {describe_names(arrays)}).")
    return _materialise(arrays[str(spec)])


def read_arrays(path: PathLike, *, mmap: bool = True, what: str = "embeddings") -> ArrayFile:
    """All arrays of a file by name (a bare ``.npy`` gives ``{"": array}``), each read on first access.

    Parameters
    ----------
    path : str or PathLike
    mmap : bool, default=True
        Memory-map ``.npy`` files and uncompressed ``.npz`` members.
    what : str, default="embeddings"
        What the file should hold, for messages.

    Returns
    -------
    ArrayFile
        A read-only mapping; nothing is unpickled.
    """
    return _read_container(check_input_file(path, what=what), mmap=mmap)


def check_input_file(path: PathLike, *, what: str = "embeddings") -> Path:
    """``path`` if it is a readable regular file; refused (before any open) otherwise.

    FIFOs, devices and sockets are refused because reading them can block forever or
    never end; a directory is refused with a hint.

    Parameters
    ----------
    path : str or PathLike
    what : str, default="embeddings"
        What the file should hold, for messages.

    Returns
    -------
    Path

    Raises
    ------
    InputFileError
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such {what} file.") from None
    except OSError as err:
        raise InputFileError(f"{path}: cannot be examined ({short_message(err.strerror or err)}).") from None
    if stat.S_ISDIR(mode):
        raise InputFileError(f"{path}: is a directory; give the {what} file inside it.")
    kind = next((name for test, name in _FILE_KINDS if test(mode)), None if stat.S_ISREG(mode) else "special file")
    if kind is not None:
        raise InputFileError(f"{path}: is a {kind}, not a regular file; reading it could block or never end. "
                             f"Save the {what} to a regular file first.")
    if not os.access(path, os.R_OK):
        raise InputFileError(f"{path}: not readable (check its permissions).")
    return path


def available_memory_bytes() -> int:
    """Memory the system can still give (``MemAvailable``; total physical memory where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**63 - 1


def _check_fits_memory(path: Path, name: str, nbytes: int) -> None:
    available = available_memory_bytes()
    if nbytes > available:
        raise InputTooLargeError(
            f"{path}: array {name!r} declares {format_bytes(nbytes)}, more than the {format_bytes(available)} of "
            "memory available; save it as a .npy file, which is memory-mapped and read in batches.")


def _read_container(path: Path, *, mmap: bool, header: bool | None = None) -> ArrayFile:
    suffix = path.suffix.lower()
    readers = {".npy": lambda: ArrayFile.of({"": _read_npy(path, mmap=mmap)}),
               ".npz": lambda: _read_npz(path, mmap=mmap), ".pt": lambda: _read_torch(path),
               ".pth": lambda: _read_torch(path),
               ".safetensors": lambda: _read_safetensors(path), ".csv": lambda: _read_frame(path, header),
               ".tsv": lambda: _read_frame(path, header), ".parquet": lambda: _read_frame(path),
               ".h5": lambda: _read_h5(path), ".hdf5": lambda: _read_h5(path)}
    if suffix not in readers:
        raise InputFileError(f"{path}: unknown file type {suffix!r}; expected one of {list(EMBEDDING_SUFFIXES)}.")
    return readers[suffix]()


# --- .npy and .npz -------------------------------------------------------------------------------


def _npy_header(handle: Any) -> tuple[Shape, np.dtype, bool]:
    """Shape, dtype and Fortran order from an ``.npy`` header, leaving ``handle`` at the first data byte."""
    version = np.lib.format.read_magic(handle)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = reader(handle)
    return tuple(int(n) for n in shape), dtype, bool(fortran_order)


def _declared_bytes(shape: Shape, dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _read_npy(path: Path, *, mmap: bool) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            shape, dtype, _ = _npy_header(handle)
            stored = os.fstat(handle.fileno()).st_size - handle.tell()
    except Exception as err:  # a corrupt header fails in many ways (ValueError, SyntaxError, ...)
        raise CorruptFileError(f"{path}: not a readable .npy file (truncated or corrupt?): "
                               f"{short_message(err)}") from None
    if dtype.hasobject:
        raise UnsafeFileError(f"{path}: holds a Python-object array, which needs pickle; refused. "
                              "Save numeric data (e.g. X.astype('float32')).")
    declared = _declared_bytes(shape, dtype)
    if stored < declared:
        raise CorruptFileError(f"{path}: truncated: its header declares {format_bytes(declared)} of data "
                               f"(shape {shape}, {dtype}) but the file holds {format_bytes(stored)}.")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as err:  # the header was read; this is an I/O failure or a race with a writer
        raise CorruptFileError(f"{path}: not a readable .npy file: {short_message(err)}") from None


def _read_npz(path: Path, *, mmap: bool) -> ArrayFile:
    if _starts_with(path, _NPY_MAGIC):
        return ArrayFile.of({"": _read_npy(path, mmap=False)})
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
    except Exception as err:  # BadZipFile, or a corrupt central directory (ValueError, struct.error, ...)
        raise CorruptFileError(f"{path}: not a valid .npz/zip archive (truncated or corrupt?): "
                               f"{short_message(err)}") from None
    return ArrayFile(list(members), lambda name: _npz_member(path, members[name], mmap=mmap),
                     lambda: _npz_shapes(path, members))


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError as err:
        raise InputFileError(f"{path}: cannot be read ({short_message(err)}).") from None


def _npz_shapes(path: Path, members: dict[str, zipfile.ZipInfo]) -> dict[str, Shape]:
    """Every member's shape from its ``.npy`` header (a few hundred bytes inflated each)."""
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = {}
            for name, info in members.items():
                with archive.open(info) as member:
                    shapes[name], dtype, _ = _npy_header(member)
                if dtype.hasobject:
                    raise UnsafeFileError(f"{path}: member {name!r} holds a Python-object array, which needs pickle; "
                                          "refused. Save numeric data (e.g. X.astype('float32')).")
            return shapes
    except UnsafeFileError:
        raise
    except Exception as err:  # corrupt member headers or streams
        raise CorruptFileError(f"{path}: not a readable .npz file (truncated or corrupt?): "
                               f"{short_message(err)}") from None


def _npz_member(path: Path, info: zipfile.ZipInfo, *, mmap: bool) -> np.ndarray:
    """One member, after its header's size was checked against the archive: memory-mapped in place when
    stored uncompressed (``np.savez``) and ``mmap``, else inflated when it fits the memory available."""
    name = info.filename[:-4]
    try:
        with zipfile.ZipFile(path) as archive:
            with archive.open(info) as member:
                shape, dtype, fortran_order = _npy_header(member)
                header_bytes = member.tell()
            _check_member_size(path, name, info, shape, dtype, header_bytes)
            if mmap and _mappable(info, shape, dtype):
                return _mapped_member(path, info, shape, dtype, fortran_order)
            _check_fits_memory(path, name, _declared_bytes(shape, dtype))
            with archive.open(info) as member:
                return np.lib.format.read_array(member, allow_pickle=False)
    except (UnsafeFileError, CorruptFileError, InputTooLargeError):
        raise
    except Exception as err:  # a corrupt header, a stream shorter than declared, a bad CRC, ...
        raise CorruptFileError(f"{path}: member {name!r} is truncated or corrupt: {short_message(err)}") from None


def _check_member_size(path: Path, name: str, info: zipfile.ZipInfo, shape: Shape, dtype: np.dtype,
                       header_bytes: int) -> None:
    if dtype.hasobject:
        raise UnsafeFileError(f"{path}: member {name!r} holds a Python-object array, which needs pickle; refused.")
    declared = _declared_bytes(shape, dtype)
    if declared != info.file_size - header_bytes:
        raise CorruptFileError(f"{path}: member {name!r} declares {format_bytes(declared)} (shape {shape}, {dtype}) "
                               f"but the archive says it holds {format_bytes(info.file_size - header_bytes)}; "
                               "the file is corrupt.")


def _mappable(info: zipfile.ZipInfo, shape: Shape, dtype: np.dtype) -> bool:
    encrypted = bool(info.flag_bits & 0x1)
    return info.compress_type == zipfile.ZIP_STORED and not encrypted and len(shape) > 0 and \
        _declared_bytes(shape, dtype) > 0


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, 22 bytes of fields, file name and extra field lengths


def _mapped_member(path: Path, info: zipfile.ZipInfo, shape: Shape, dtype: np.dtype, fortran_order: bool
                   ) -> np.memmap:
    """A stored member memory-mapped where its data lie in the archive (like a ``.npy`` file)."""
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
        if signature != b"PK\x03\x04":
            raise ValueError("bad local file header")
        handle.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
        _npy_header(handle)
        offset, file_size = handle.tell(), os.fstat(handle.fileno()).st_size
    if offset + _declared_bytes(shape, dtype) > file_size:
        raise ValueError("the member's data run past the end of the file")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")


# --- PyTorch and safetensors ---------------------------------------------------------------------


def _read_torch(path: Path) -> ArrayFile:
    obj = torch_load(path)
    if isinstance(obj, torch.Tensor):
        return ArrayFile.of({"": obj})
    if isinstance(obj, Mapping):
        flat = flatten_tensors(obj)
        if flat:
            return ArrayFile.of(flat)
    raise InvalidEmbeddingsError(f"{path}: expected a tensor or a dict of tensors, got {type(obj).__name__}.")


def torch_load(path: Path, *, what: str = "PyTorch file") -> Any:
    """``torch.load(weights_only=True)``, memory-mapped for zip-format files; every failure is one line.

    Parameters
    ----------
    path : Path
        A regular file (see :func:`check_input_file`).
    what : str, default="PyTorch file"
        What the file should be, for messages.

    Returns
    -------
    object
        Tensors and plain containers only.

    Raises
    ------
    UnsafeFileError
        The file needs pickled Python objects (could run code); refused.
    CorruptFileError
        Anything else the unpickler or the zip reader fails on (truncated, corrupt, mutated).
    """
    try:
        with warnings.catch_warnings():  # e.g. torch's beta warnings for sparse layouts
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        culprit = next((line for line in lines if "GLOBAL" in line or "Unsupported global" in line), "")
        if culprit:
            raise UnsafeFileError(
                f"{path}: refused: it contains pickled Python objects whose loading could run code (e.g. a whole "
                "model saved with torch.save(model)); only tensors and plain containers are read "
                f"(weights_only=True). Save the weights alone: torch.save(model.state_dict(), path). "
                f"{short_message(culprit, limit=200)}") from None
        detail = next((line for line in lines if line.startswith("Unsupported")), lines[-1] if lines else "")
        raise _corrupt_torch(path, what, f"UnpicklingError: {detail}") from None
    except Exception as err:  # the unpickler and zip reader fail on corrupt bytes in many ways
        raise _corrupt_torch(path, what, f"{type(err).__name__}: {err}") from None


def _corrupt_torch(path: Path, what: str, detail: str) -> CorruptFileError:
    return CorruptFileError(f"{path}: not a readable {what} (truncated or corrupt?): "
                            f"{short_message(detail, limit=200)}")


def flatten_tensors(obj: Mapping[Any, Any], *, max_depth: int = MAX_NESTING) -> dict[str, Any]:
    """Tensors (and flat lists of ints/strings) of nested dicts, by dotted name.

    Iterative, so deep nesting cannot overflow the stack; a dict met again (self-reference)
    and dicts deeper than ``max_depth`` are skipped.

    Parameters
    ----------
    obj : mapping
    max_depth : int, default=MAX_NESTING

    Returns
    -------
    dict of str to Tensor or ndarray
    """
    flat: dict[str, Any] = {}
    seen = {id(obj)}
    stack: list[tuple[str, Mapping[Any, Any], int]] = [("", obj, 0)]
    while stack:
        prefix, mapping, depth = stack.pop()
        for name, value in mapping.items():
            full = f"{prefix}{name}"
            if isinstance(value, torch.Tensor):
                flat[full] = value
            elif isinstance(value, Mapping) and id(value) not in seen and depth < max_depth:
                seen.add(id(value))
                stack.append((f"{full}.", value, depth + 1))
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, int)) for v in value):
                flat[full] = np.asarray(value)
    return flat


def _read_safetensors(path: Path) -> ArrayFile:
    safetensors = require("safetensors", extra="io", package="safetensors")
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as handle:
            shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except Exception as err:  # safetensors raises its own SafetensorError (not exported stably)
        raise CorruptFileError(f"{path}: not a readable .safetensors file (truncated or corrupt?): "
                               f"{short_message(err)}") from None
    return ArrayFile(list(shapes), lambda name: _safetensors_tensor(path, name), lambda: shapes)


def _safetensors_tensor(path: Path, name: str) -> torch.Tensor:
    safetensors = require("safetensors", extra="io", package="safetensors")
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as handle:
            return handle.get_tensor(name)
    except Exception as err:
        raise CorruptFileError(f"{path}: tensor {name!r} is not readable (corrupt?): {short_message(err)}") from None


# --- tables --------------------------------------------------------------------------------------


def _read_table(path: Path, header: bool | None = None) -> Any:
    """A ``.parquet``, ``.csv`` or ``.tsv`` file as a DataFrame; a CSV's first row is a header when
    ``header`` says so or, by default, when :func:`has_header_row` finds a non-number in it."""
    pd = require("pandas", extra="io")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        if header is None:
            header = has_header_row(path, sep=sep)
        frame = pd.read_csv(path, sep=sep, header=0 if header else None)
    except Exception as err:  # pandas/pyarrow parser errors have many types
        raise CorruptFileError(f"{path}: not a readable table: {short_message(err)}") from None
    if not header:
        frame.columns = [str(c) for c in frame.columns]
    return frame


def has_header_row(path: PathLike, *, sep: str = ",") -> bool:
    """True when the first row of a delimited text file has a field that is not a number.

    A first row of numbers only (``0.5,1,-2e-3``) is data, not column names; an empty first
    field (the index column of ``pandas.DataFrame.to_csv``) counts as a name.
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        first = handle.readline(1 << 20)
    fields = next(csv.reader([first], delimiter=sep), [])
    if not fields:
        return False
    for field in fields:
        try:
            float(field)
        except ValueError:
            return True
    return False


def _drop_pandas_index(frame: Any, path: Path) -> tuple[Any, str | None]:
    """Drop a first column with no name (``Unnamed: 0``) holding exactly 0..N-1: the index that
    ``DataFrame.to_csv()`` writes unless ``index=False``. Returns the frame and a note."""
    if frame.shape[1] < 2 or not str(frame.columns[0]).startswith("Unnamed: 0"):
        return frame, None
    first = frame.iloc[:, 0]
    if first.dtype.kind not in "iu" or not np.array_equal(first.to_numpy(), np.arange(len(frame))):
        return frame, None
    return frame.iloc[:, 1:], (f"{path.name}: dropped the first column (no name, values 0..{len(frame) - 1}): "
                               "the row index pandas' to_csv() writes; save with index=False to keep it out.")


def _read_frame(path: Path, header: bool | None = None) -> ArrayFile:
    """A table as arrays: ``""`` for the numeric block (or the one list column), plus each column."""
    frame, note = _drop_pandas_index(_read_table(path, header), path)
    files = _frame_arrays(frame, path)
    if note is not None:
        files.notes.append(note)
    return files


def _frame_arrays(frame: Any, path: Path) -> ArrayFile:
    arrays: dict[str, Any] = {str(c): frame[c].to_numpy() for c in frame.columns}
    label_cols = [c for c in frame.columns if str(c) in LABEL_COLUMN_NAMES]
    features = frame.drop(columns=label_cols)
    numeric = features.select_dtypes(include="number")
    if numeric.shape[1] == features.shape[1] and numeric.shape[1] > 0:
        arrays[""] = numeric.to_numpy()
        return ArrayFile.of(arrays)
    listed = [c for c in features.columns if _is_list_column(features[c])]
    if len(listed) == 1:
        arrays[""] = _stack_list_column(features[listed[0]], path, listed[0])
        return ArrayFile.of(arrays)
    other = [str(c) for c in features.columns if c not in numeric.columns]
    raise InvalidEmbeddingsError(
        f"{path}: non-numeric columns ({describe_names(other)}): keep only numeric feature columns (plus a 'label' "
        "column), or one column whose cells are lists of numbers.")


def _is_list_column(column: Any) -> bool:
    first = column.iloc[0] if len(column) else None
    return isinstance(first, (list, tuple, np.ndarray)) or (isinstance(first, str) and first.strip().startswith("["))


def _stack_list_column(column: Any, path: Path, name: Any) -> np.ndarray:
    rows = [_list_cell(value, path, name, row) for row, value in enumerate(column)]
    lengths = {len(row) for row in rows}
    if len(lengths) > 1:
        raise InvalidEmbeddingsError(f"{path}: column {name!r} holds lists of {len(lengths)} different lengths "
                                     f"({describe_names(sorted(lengths))}); every row needs the same number of values.")
    return np.asarray(rows, dtype=np.float64)


def _list_cell(value: Any, path: Path, name: Any, row: int) -> np.ndarray:
    """One cell as a flat float vector; nested or non-numeric cells are refused (JSON nesting is bounded)."""
    try:
        cell = np.asarray(json.loads(value) if isinstance(value, str) else value)
        if cell.ndim == 1 and cell.dtype.kind in "biuf":
            return cell.astype(np.float64)
    except (ValueError, TypeError, RecursionError):
        pass
    raise InvalidEmbeddingsError(f"{path}: column {name!r}, row {row}: expected a flat list of numbers such as "
                                 "[0.1, 2.5]; got something else (text, nested lists or a malformed list).")


# --- HDF5 ----------------------------------------------------------------------------------------


def _read_h5(path: Path) -> ArrayFile:
    h5py = require("h5py", extra="io")
    try:
        with h5py.File(path, "r") as handle:
            shapes: dict[str, Shape] = {}
            handle.visititems(lambda name, obj: _note_dataset(shapes, name, obj, h5py))
    except Exception as err:  # h5py raises OSError, KeyError or ValueError on corrupt files
        raise CorruptFileError(f"{path}: not a readable HDF5 file: {short_message(err)}") from None
    return ArrayFile(list(shapes), lambda name: _h5_dataset(path, name), lambda: shapes)


def _note_dataset(shapes: dict[str, Shape], name: str, obj: Any, h5py: Any) -> None:
    if isinstance(obj, h5py.Dataset):
        shapes[name] = tuple(obj.shape or ())


def _h5_dataset(path: Path, name: str) -> np.ndarray:
    """One dataset's values; external or virtual storage (outside the file) is refused first."""
    h5py = require("h5py", extra="io")
    try:
        with h5py.File(path, "r") as handle:
            dataset = handle[name]
            _check_h5_storage(path, name, dataset)
            _check_fits_memory(path, name, _declared_bytes(tuple(dataset.shape or ()), dataset.dtype))
            return dataset[()]
    except (UnsafeFileError, InputTooLargeError):
        raise
    except Exception as err:
        raise CorruptFileError(f"{path}: dataset {name!r} is not readable (corrupt?): {short_message(err)}") from None


def _check_h5_storage(path: Path, name: str, dataset: Any) -> None:
    if dataset.external:
        raise UnsafeFileError(f"{path}: dataset {name!r} keeps its values in external file(s) "
                              f"({describe_names(e[0] for e in dataset.external)}); reading them would read outside "
                              "the input, so it is refused. Copy the values into the file (h5py: f[name] = values).")
    if dataset.is_virtual:
        sources = describe_names(source.file_name for source in dataset.virtual_sources())
        raise UnsafeFileError(f"{path}: dataset {name!r} is a virtual dataset whose values come from {sources}; "
                              "reading it would read outside the input (and missing sources read as fill values), "
                              "so it is refused. Copy the values into a plain dataset.")


# --- selection -----------------------------------------------------------------------------------


def _select_key(arrays: ArrayFile, *, key: str | None, exclude: str | None, path: Path) -> str:
    if key is not None:
        if key not in arrays:
            raise AmbiguousKeyError(f"{path.name}: no array named {describe_names([key])}; "
                                    f"available: {arrays.describe()}.")
        return key
    if "" in arrays:
        return ""
    candidates = [k for k in arrays if k != exclude and len(arrays.shape(k)) >= 2]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InvalidEmbeddingsError(f"{path.name}: no 2-D array found; arrays: {arrays.describe()}.")
    raise AmbiguousKeyError(
        f"{path.name} holds several arrays: {arrays.describe(candidates)}; choose one with --key NAME (key=...).")


def _materialise(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _as_label_vector(values: Any, *, n_samples: int) -> np.ndarray:
    arr = _materialise(values)
    encode_labels(arr, n_samples=n_samples)  # validates length/shape now, with a clear message
    return arr
