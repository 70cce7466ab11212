"""Rows of features gathered batch by batch: kept in memory, or appended to an .npy file.

:class:`FeatureBuffer` holds one layer's rows. While the rows of all layers fit a memory
budget they stay in RAM; past it, :meth:`FeatureBuffer.spill` moves them to an ``.npy``
file on disk and every later batch is appended there, so memory stays bounded whatever
the number of samples. :meth:`FeatureBuffer.finish` returns a plain array or a read-only
:class:`numpy.memmap`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

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
    """One layer's rows, in memory until :meth:`spill` sends them to an ``.npy`` file."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.in_memory_bytes = 0
        self.appender: NpyAppender | None = None

    def append(self, rows: np.ndarray) -> None:
        """Add rows of shape ``(k, n_features)``; all blocks share dtype and width."""
        if self.appender is not None:
            self.appender.write(rows)
        else:
            self.chunks.append(rows)
            self.in_memory_bytes += rows.nbytes

    def spill(self, path: Path) -> None:
        """Move the rows held in memory to ``path`` and append every later block there."""
        if self.appender is not None or not self.chunks:
            return
        self.appender = NpyAppender(path, self.chunks[0].dtype, self.chunks[0].shape[1])
        for chunk in self.chunks:
            self.appender.write(chunk)
        self.chunks, self.in_memory_bytes = [], 0

    def finish(self) -> np.ndarray:
        """All rows: one in-memory array, or the read-only memory map of the spilled file."""
        if self.appender is not None:
            return self.appender.close()
        return np.concatenate(self.chunks) if len(self.chunks) != 1 else self.chunks[0]

    def abort(self) -> None:
        """Drop everything (after an error), deleting a partial file."""
        if self.appender is not None:
            self.appender.abort()
        self.chunks = []
