"""Atomic output: write a temporary file beside the target, then rename it into place.

A reader (or an interrupted run) sees either the old file or the complete new one, never
half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from geometry_probe.exceptions import OutputError


def check_output_path(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Return ``path`` as a Path after checking it can be written and is not an input.

    Raises
    ------
    OutputError
        The path names an input file, a directory, or lies in a folder that does not exist
        or cannot be written.
    """
    out = Path(path)
    for given in inputs:
        if Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise OutputError(f"{out}: refusing to overwrite an input file; choose another output path.")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name for the output.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: the folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: the folder {parent} is not writable.")
    return out


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: object) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it onto ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left untouched.
    """
    target = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:  # type: ignore[call-overload]
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)
