"""Exceptions raised by geometry_probe.

Every error subclasses :class:`GeometryProbeError` (the one class the command line
catches) *and* the builtin it refines, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class GeometryProbeError(Exception):
    """Base class for every error raised by geometry_probe."""


class InvalidInputError(GeometryProbeError, ValueError):
    """An input array, file content or option value is not usable as given."""


class InvalidEmbeddingsError(InvalidInputError):
    """Embeddings have the wrong shape or dtype, or contain NaN/inf."""


class InvalidLabelsError(InvalidInputError):
    """Labels have the wrong length or cannot be turned into class codes."""


class InputFileError(GeometryProbeError, OSError):
    """A file is missing, is a directory, is unreadable, truncated or of an unknown type."""


class UnsafeFileError(InputFileError):
    """A file would need code execution (pickle) to be read; it is refused, never unpickled."""


class AmbiguousKeyError(InvalidInputError, KeyError):
    """A container holds several arrays and the one to use was not named."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class MissingLabelsError(InvalidInputError):
    """An analyzer that needs labels was given none."""


class UnknownAnalyzerError(InvalidInputError):
    """An analyzer name is not in the registry."""


class EmptyAnalyzerError(GeometryProbeError, RuntimeError):
    """``compute()`` was called before any ``update()``."""


class MissingDependencyError(GeometryProbeError, ImportError):
    """An optional dependency is needed for this feature and is not installed."""


class OutputError(GeometryProbeError, OSError):
    """An output could not be written (unwritable place, or it would overwrite an input)."""


class CorruptFileError(InputFileError):
    """A file's bytes do not parse as the format its name claims (truncated, corrupt or not that format)."""


class InputTooLargeError(InvalidInputError):
    """An input would need more memory than allowed to read or densify; the message gives the size."""
