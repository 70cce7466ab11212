"""Atomic output: write a temporary file beside the target, then rename it into place.

A reader (or an interrupted run) sees either the old file or the complete new one, never
half of one. Outputs are regular files: a path that exists as anything else (a character
device such as ``/dev/null`` or a terminal, a FIFO, a socket, a link to one of these such as
``/proc/self/fd/1``) is refused rather than replaced by a regular file, and so is a file name
longer than the file system allows. Every error of the operating system while writing (no
space, the ``ulimit -f`` limit, permissions) becomes one :class:`OutputError` line, the
previous file kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

from geometry_probe._interrupts import deferred
from geometry_probe.exceptions import OutputError

DEFAULT_NAME_MAX = 255
_RANDOM_CHARACTERS = 8          # tempfile's random part of a name
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large: the file-size limit (ulimit -f) or the file system's was reached",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted; in a sticky folder such as /tmp only a file's owner may replace it",
    errno.ENAMETOOLONG: "file name too long",
}
_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"))


def check_output_path(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Return ``path`` as a Path after checking it can be written and is not an input.

    Raises
    ------
    OutputError
        The path names an input file, a directory, something else that is not a regular file
        (a device, FIFO or socket, or a link to one), a file name too long for the file system,
        or lies in a folder that does not exist, is a file, or cannot be written.
    """
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    _name_fits(out, parent)                 # first: a name that is too long cannot even be examined
    _not_an_input(out, inputs)
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name for the output.")
    _regular_or_missing(out)
    if not parent.is_dir():
        blocker = _existing_ancestor(parent)
        if blocker.exists() and not blocker.is_dir():
            raise OutputError(f"{out}: {blocker} is a file, not a folder; choose an output path in a folder.")
        raise OutputError(f"{out}: the folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: the folder {parent} is not writable.")
    return out


def _regular_or_missing(out: Path) -> None:
    """Refuse an existing ``out`` that is not a regular file (links followed), or a dangling link."""
    try:
        mode = out.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):       # missing (the folder checks come next)
        if out.is_symlink():
            raise OutputError(f"{out}: is a symbolic link to a missing file; give a file path.") from None
        return
    except OSError as err:
        raise OutputError(f"{out}: cannot be examined ({err.strerror}).") from None
    kind = next((name for test, name in _KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")
    if kind is None and out.is_symlink() and not os.path.isfile(os.path.realpath(out)):
        kind = "a file with no name of its own (deleted, or open only through /proc)"
    if kind is not None:
        via = f" (a link to {os.path.realpath(out)})" if out.is_symlink() else ""
        raise OutputError(f"{out}: exists and is {kind}{via}; outputs are written to regular files only, "
                          "give a file path.")


def _name_fits(out: Path, folder: Path) -> None:
    """Refuse a file name longer (in bytes) than the longest ``folder``'s file system allows."""
    size, limit = len(os.fsencode(out.name)), _name_max(folder)
    if size > limit:
        raise OutputError(f"{out.name[:40]}...: the file name is {size} bytes, longer than the {limit} "
                          "the file system allows; choose a shorter name.")


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, ``folder``'s file system allows (255 if it does not say)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX


def make_output_folder(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Create the output folder ``path`` (and missing parents) after checking it can be written.

    Raises
    ------
    OutputError
        The path names an input file or another file, lies under a file, or its nearest
        existing folder cannot be written.
    """
    folder = Path(path)
    _name_fits(folder, folder.parent)       # first: a name that is too long cannot even be examined
    _not_an_input(folder, inputs)
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

    A symbolic link to a regular file is followed: the file it points to is replaced and the
    link kept. On any exception (including KeyboardInterrupt and
    :class:`~geometry_probe._interrupts.Terminated`) the temporary file is removed and ``path``
    is left untouched.

    Raises
    ------
    OutputError
        ``path`` cannot be written (see :func:`check_output_path`), or the operating system
        refused a step of the write (no space, file-size limit, permissions, ...).
    """
    target = _destination(check_output_path(path))
    existed = target.exists()
    handle = tmp = None
    try:
        with deferred():            # a signal between creating the file and naming it would leak it
            handle, tmp = _temporary_beside(target, mode, kwargs)
        with handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), _file_mode(target))
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        with deferred():
            _discard(handle, tmp)
        if isinstance(err, OSError):
            raise OutputError(_write_failure(target, err, existed=existed)) from None
        raise


def check_distinct_outputs(outputs: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """Refuse two outputs of one command that name the same file (symbolic links resolved).

    Parameters
    ----------
    outputs : mapping of str to path-like or None
        Each output's option name (e.g. ``"--json"``) and the path given, ``None`` when left out.

    Raises
    ------
    OutputError
        Two options name the same path; the second would silently replace the first.

    Examples
    --------
    >>> check_distinct_outputs({"--json": "a.json", "--report": None, "--csv": "a.csv"})
    >>> check_distinct_outputs({"--json": "o", "--report": "o"})
    Traceback (most recent call last):
    ...
    geometry_probe.exceptions.OutputError: --json and --report both name o; give each output its own path.
    """
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise OutputError(f"{seen[key]} and {option} both name {path}; give each output its own path.")
        seen[key] = option


def _destination(target: Path) -> Path:
    """The file a write to ``target`` replaces: the file a symbolic link points to, else ``target``."""
    return target.resolve() if target.is_symlink() else target


def _temporary_beside(target: Path, mode: str, kwargs: dict[str, object]) -> tuple[IO, str]:
    """A new hidden file in ``target``'s folder, opened with ``mode``, and its path.

    Its name (``.<name>.<8 random characters>.tmp``) keeps within the folder's longest file name:
    a long ``target`` name is shortened in the temporary name.
    """
    folder = target.parent
    stem = os.fsencode(target.name)[:_name_max(folder) - len(b"..") - _RANDOM_CHARACTERS - len(b".tmp")]
    fd, tmp = tempfile.mkstemp(prefix=f".{os.fsdecode(stem)}.", suffix=".tmp", dir=folder)
    try:
        return os.fdopen(fd, mode, **kwargs), tmp  # type: ignore[call-overload]
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise


def _discard(handle: IO | None, tmp: str | None) -> None:
    """Close ``handle`` (errors ignored: the file is being thrown away) and remove ``tmp``."""
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()
    if tmp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _write_failure(target: Path, err: OSError, *, existed: bool) -> str:
    """One line saying which output failed, why, and that the previous file is unchanged."""
    reason = _REASONS.get(err.errno or 0) or err.strerror or str(err)
    kept = "the previous file is unchanged" if existed else "nothing was written"
    return f"{target}: could not write the output ({reason}); {kept}."


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
