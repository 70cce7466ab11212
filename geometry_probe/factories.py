"""Resolving ``PKG.MODULE:FACTORY`` and ``path/to/file.py:FACTORY`` strings to callables."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from geometry_probe.exceptions import InputFileError, InvalidInputError


def resolve_factory(spec: str, *, what: str = "factory") -> Callable[..., Any]:
    """Return the callable named by ``spec``.

    ``spec`` is ``"package.module:name"`` (imported as usual; the current folder is
    importable, as when running ``python -m``) or ``"path/to/file.py:name"`` (the file is
    imported as a module and its folder is put on ``sys.path`` so that it can import its
    neighbours, as when running the file as a script). ``name`` may be dotted
    (``"Model.from_config"``).

    Parameters
    ----------
    spec : str
    what : str, default="factory"
        Used in messages (e.g. ``"--model"``).

    Returns
    -------
    callable

    Raises
    ------
    InvalidInputError
        No ``:`` in ``spec``, the module does not import (the message gives the error and
        where it happened), no such name in it (close names are listed), or not callable.
    InputFileError
        The file does not exist.

    Examples
    --------
    >>> resolve_factory("collections:OrderedDict").__name__
    'OrderedDict'
    """
    location, sep, name = spec.rpartition(":")
    if not sep or not location or not name:
        raise InvalidInputError(f"{what}: got {spec!r}; expected PKG.MODULE:FACTORY or path/to/file.py:FACTORY.")
    is_file = location.endswith(".py") or "/" in location or os.sep in location
    module = _import_file(Path(location), what) if is_file else _import_module(location, what)
    target: Any = module
    for i, part in enumerate(name.split(".")):
        if not hasattr(target, part):
            where = ".".join([location, *name.split(".")[:i]]) if i else location
            names = [n for n in dir(target) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=5, cutoff=0.5)
            hint = f"close matches: {close}" if close else f"it defines {names[:10]}"
            raise InvalidInputError(f"{what}: {where} has no attribute {part!r}; {hint}.")
        target = getattr(target, part)
    if not callable(target):
        raise InvalidInputError(f"{what}: {spec} is not callable (got {type(target).__name__}); "
                                "name a factory function or class.")
    return target


def call_factory(spec: str, *, what: str = "factory") -> Any:
    """Resolve ``spec`` with :func:`resolve_factory` and call it with no arguments."""
    return resolve_factory(spec, what=what)()


def _import_module(name: str, what: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and name.startswith(err.name):
            raise InvalidInputError(
                f"{what}: cannot import {name!r}: no module named {err.name!r}. Is it installed, or on PYTHONPATH? "
                "A file can be given as path/to/file.py:FACTORY.") from err
        raise InvalidInputError(f"{what}: importing {name!r} failed: {_describe(err)}") from err
    except Exception as err:  # any error raised while the user's module runs
        raise InvalidInputError(f"{what}: importing {name!r} failed: {_describe(err)}") from err


def _import_file(path: Path, what: str) -> ModuleType:
    if not path.is_file():
        raise InputFileError(f"{what}: {path}: no such Python file.")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    module_name = f"_geoprobe_user_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"{what}: {path} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # SyntaxError, ImportError or anything the file raises
        del sys.modules[module_name]
        raise InvalidInputError(f"{what}: importing {path} failed: {_describe(err)}") from err
    return module


def _describe(err: BaseException) -> str:
    """``Type: message (file, line N)`` for the innermost frame of the error."""
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, SyntaxError):
        return text
    frames = traceback.extract_tb(err.__traceback__)
    if frames:
        text += f" ({frames[-1].filename}, line {frames[-1].lineno})"
    return text
