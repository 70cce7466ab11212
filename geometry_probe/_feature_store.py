"""Rows of features gathered batch by batch: kept in memory, or appended to an .npy file.

:class:`FeatureBuffer` holds one layer's rows. While the rows of all layers fit a memory
budget they stay in RAM; past it (or from the start, when the expected size is known to
exceed it) they go to an ``.npy`` file on disk, batch by batch, so memory stays bounded
whatever the number of samples. :meth:`FeatureBuffer.finish` returns a plain array or a
read-only :class:`numpy.memmap`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from geometry_probe.exceptions import OutputError

_HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + dict padded with spaces + "\n"


class NpyAppender:
    """Write an ``(n_rows, n_features)`` ``.npy`` file row block by row block.

    The row count is unknown until :meth:`close`, so a fixed-size header is written first
    and rewritten with the final shape at the end (format version 1.0, the layout
    :func:`numpy.load` reads). Data go to ``<path>.partial`` and are renamed onto ``path``
    on close, so a reader never sees half a file.
    """

    def __init__(self, path: Path, dtype: np.dtype, n_features: int) -> None:
        self.path, self.dtype, self.n_features, self.n_rows = path, np.dtype(dtype), n_features, 0
        self._partial = path.with_name(path.name + ".partial")
        try:
            self._handle = open(self._partial, "wb")  # noqa: SIM115 (closed in close()/abort())
        except OSError as err:
            raise OutputError(f"{path.parent}: cannot write memory-mapped features there ({err}).") from None
        self._handle.write(self._header())

    def write(self, rows: np.ndarray) -> None:
        """Append rows of shape ``(k, n_features)`` (converted to the file's dtype)."""
        self._handle.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.n_rows += rows.shape[0]

    def close(self) -> np.memmap:
        """Write the final header, move the file into place and map it read-only."""
        self._handle.seek(0)
        self._handle.write(self._header())
        self._handle.close()
        os.replace(self._partial, self.path)
        return np.load(self.path, mmap_mode="r")

    def abort(self) -> None:
        """Close and delete the partial file (after an error)."""
        self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._partial)

    def _header(self) -> bytes:
        fields = (f"{{'descr': {np.lib.format.dtype_to_descr(self.dtype)!r}, 'fortran_order': False, "
                  f"'shape': ({self.n_rows}, {self.n_features}), }}")
        body_len = _HEADER_BYTES - 10
        text = fields.ljust(body_len - 1) + "\n"
        if len(text) != body_len:
            raise OutputError(f"{self.path}: array header too long for {self.n_rows} x {self.n_features}.")
        return np.lib.format.magic(1, 0) + body_len.to_bytes(2, "little") + text.encode("latin1")


class FeatureBuffer:
    """One layer's rows: in a preallocated array, in chunks, or appended to an ``.npy`` file.

    With a known ``capacity`` (the number of samples, when the data tell it) rows are
    copied straight into one preallocated array, so nothing is concatenated at the end;
    otherwise they are kept as chunks. :meth:`spill` moves them to a file at any point.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.array: np.ndarray | None = None
        self.chunks: list[np.ndarray] = []
        self.appender: NpyAppender | None = None
        self.n_rows = 0
        self.width: int | None = None
        self.dtype: torch.dtype | None = None

    @property
    def in_memory_bytes(self) -> int:
        """Bytes held in RAM (the whole preallocated array counts)."""
        return (self.array.nbytes if self.array is not None else 0) + sum(c.nbytes for c in self.chunks)

    def start(self, width: int, dtype: torch.dtype, *, spill_to: Path | None = None) -> None:
        """Fix width and dtype from the first block; open ``spill_to`` or preallocate ``capacity`` rows."""
        self.width, self.dtype = width, storage_dtype(dtype)
        if spill_to is not None:
            self.appender = NpyAppender(spill_to, _numpy_dtype(self.dtype), width)
        elif self.capacity is not None:
            self.array = np.empty((self.capacity, width), dtype=_numpy_dtype(self.dtype))

    def append(self, rows: torch.Tensor) -> None:
        """Copy rows of shape ``(k, width)`` (any device) now: later in-place ops cannot change them."""
        k = int(rows.shape[0])
        if self.appender is not None:
            self.appender.write(rows.detach().to("cpu", self.dtype).numpy())
        elif self.array is not None and self.n_rows + k <= len(self.array):
            torch.from_numpy(self.array[self.n_rows:self.n_rows + k]).copy_(rows.detach())
        else:
            if self.array is not None:  # more rows than announced: go on in chunks
                self.chunks, self.array = [self.array[:self.n_rows]], None
            self.chunks.append(rows.detach().to("cpu", self.dtype, copy=True).numpy())
        self.n_rows += k

    def spill(self, path: Path) -> None:
        """Move the rows held in memory to ``path`` and append every later block there."""
        if self.appender is not None or self.width is None:
            return
        self.appender = NpyAppender(path, _numpy_dtype(self.dtype), self.width)
        for block in ([self.array[:self.n_rows]] if self.array is not None else self.chunks):
            self.appender.write(block)
        self.array, self.chunks = None, []

    def finish(self) -> np.ndarray:
        """All rows: one in-memory array, or the read-only memory map of the spilled file."""
        if self.appender is not None:
            return self.appender.close()
        if self.array is not None:
            return self.array if self.n_rows == len(self.array) else self.array[:self.n_rows].copy()
        return np.concatenate(self.chunks) if len(self.chunks) != 1 else self.chunks[0]

    def abort(self) -> None:
        """Drop everything (after an error), deleting a partial file."""
        if self.appender is not None:
            self.appender.abort()
        self.array, self.chunks = None, []


def storage_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype rows are stored in: the tensor's own, or float32 where NumPy has no equivalent (bfloat16)."""
    try:
        torch.empty(0, dtype=dtype).numpy()
    except TypeError:
        return torch.float32
    return dtype


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype
