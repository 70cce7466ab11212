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
        The path names an input file, a directory, or lies in a folder that does not exist,
        is a file, or cannot be written.
    """
    out = _not_an_input(Path(path), inputs)
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name for the output.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        blocker = _existing_ancestor(parent)
        if blocker.exists() and not blocker.is_dir():
            raise OutputError(f"{out}: {blocker} is a file, not a folder; choose an output path in a folder.")
        raise OutputError(f"{out}: the folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: the folder {parent} is not writable.")
    return out


def make_output_folder(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Create the output folder ``path`` (and missing parents) after checking it can be written.

    Raises
    ------
    OutputError
        The path names an input file or another file, lies under a file, or its nearest
        existing folder cannot be written.
    """
    folder = _not_an_input(Path(path), inputs)
    existing = _existing_ancestor(folder)
    if not existing.is_dir():
        where = "" if existing == folder else f"{existing} "
        raise OutputError(f"{folder}: {where}is a file, not a folder; choose another output folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: the folder {existing} is not writable.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{folder}: cannot create the output folder ({err.strerror}).") from err
    return folder


def _not_an_input(out: Path, inputs: Iterable[str | os.PathLike[str]]) -> Path:
    """``out``, after checking it is none of the existing ``inputs`` (symbolic links resolved)."""
    for given in inputs:
        if Path(given).exists() and out.exists() and out.resolve() == Path(given).resolve():
            raise OutputError(f"{out}: refusing to overwrite an input file; choose another output path.")
    return out


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent (``.`` for relative paths)."""
    return next((candidate for candidate in (path, *path.parents) if candidate.exists()), Path("."))


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
            os.fchmod(handle.fileno(), _file_mode(target))
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _file_mode(target: Path) -> int:
    """Permissions a plain ``open(target, "w")`` would leave: the existing file's, else
    0o666 minus the umask (``mkstemp`` creates its file 0o600, private to the owner)."""
    if target.exists():
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
