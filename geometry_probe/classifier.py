"""Linear classifier weights for NC3/NC4: read from arrays, state dicts or files, checked once.

A classifier is the last layer :math:`h \\mapsto W h + b` of a network, with one row of
``W`` per class (the layout of :class:`torch.nn.Linear`). Its rows must follow the order
of the label codes, i.e. the sorted distinct labels (``Embeddings.classes``).

Accepted sources (:func:`load_classifier`):

* a (C, D) array or tensor: the weight, no bias;
* a ``(weight, bias)`` tuple (bias may be ``None``);
* a mapping with ``weight`` and optional ``bias``, also under a prefix such as
  ``fc.weight``/``fc.bias`` (an ``nn.Linear`` state dict or a model's);
* an ``nn.Linear`` (its current weight and bias);
* a file: ``.npy`` (the weight), ``.npz``/``.pt``/``.pth``/``.safetensors`` holding a
  mapping as above. Files are read with :func:`geometry_probe.io.read_arrays`: PyTorch
  files with ``weights_only=True``, nothing is ever unpickled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geometry_probe._validation import as_plain_array, check_dense_size, describe_names, short_message
from geometry_probe.exceptions import AmbiguousKeyError, InvalidInputError
from geometry_probe.io import ArrayFile, read_arrays


@dataclass(frozen=True)
class LinearClassifier:
    """Weight (C, D) and optional bias (C,) of a linear classifier, float64 NumPy.

    Attributes
    ----------
    weight : ndarray of shape (n_classes, n_features)
    bias : ndarray of shape (n_classes,) or None
    source : str
        Where it came from (file and keys), for messages and ``Result.params``.

    Examples
    --------
    >>> clf = LinearClassifier(np.eye(3, 4), np.zeros(3))
    >>> clf.n_classes, clf.n_features, clf.describe()
    (3, 4, {'source': 'array', 'shape': [3, 4], 'bias': True})
    """

    weight: np.ndarray
    bias: np.ndarray | None = None
    source: str = "array"

    def __post_init__(self) -> None:
        weight = _as_float_array(self.weight, what=f"classifier weight ({self.source})")
        if weight.ndim != 2:
            raise InvalidInputError(
                f"classifier weight ({self.source}): expected a 2-D array of shape (n_classes, n_features) "
                f"as in nn.Linear, got shape {weight.shape}.")
        bias = None
        if self.bias is not None:
            bias = _as_float_array(self.bias, what=f"classifier bias ({self.source})")
            if bias.shape != (weight.shape[0],):
                raise InvalidInputError(
                    f"classifier bias ({self.source}): expected shape ({weight.shape[0]},), one entry per "
                    f"weight row, got {bias.shape}.")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)

    @property
    def n_classes(self) -> int:
        """Number of rows of the weight."""
        return int(self.weight.shape[0])

    @property
    def n_features(self) -> int:
        """Number of columns of the weight."""
        return int(self.weight.shape[1])

    def check_shape(self, *, n_classes: int | None = None, n_features: int | None = None) -> None:
        """Raise :class:`~geometry_probe.exceptions.InvalidInputError` if the shape does not match the data."""
        C, D = self.weight.shape
        transposed = D == n_classes and n_features in (None, C)
        hint = " It looks transposed (n_features, n_classes): pass weight.T." if transposed else ""
        if n_features is not None and D != n_features:
            raise InvalidInputError(
                f"classifier ({self.source}): weight has shape ({C}, {D}) but the embeddings have "
                f"{n_features} features; expected ({n_classes or 'n_classes'}, {n_features}).{hint}")
        if n_classes is not None and C != n_classes:
            raise InvalidInputError(
                f"classifier ({self.source}): weight has {C} rows (classes) but the labels have {n_classes} "
                "distinct classes. NC3/NC4 need one row per class, in the order of the sorted distinct "
                f"labels; if some classes are absent from these data, select the matching rows.{hint}")

    def describe(self) -> dict[str, Any]:
        """Plain-data summary for ``Result.params``."""
        return {"source": self.source, "shape": [self.n_classes, self.n_features], "bias": self.bias is not None}


def load_classifier(source: Any, *, key: str | None = None) -> LinearClassifier:
    """Read a linear classifier from an array, a ``(weight, bias)`` pair, a mapping, a module or a file.

    Parameters
    ----------
    source : array-like, tuple, mapping, torch.nn.Linear, str or PathLike
        See the module docstring for the accepted forms.
    key : str, optional
        Which weight of a mapping or file with several: a prefix (``"fc"`` finds
        ``fc.weight`` and ``fc.bias``) or the full name of the weight.

    Returns
    -------
    LinearClassifier

    Raises
    ------
    InputFileError
        The file is missing, unreadable or would need pickle.
    AmbiguousKeyError
        Several candidate weights and no ``key``; the message lists them.
    InvalidInputError
        No weight found, or a weight/bias of the wrong shape or with NaN/inf.

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(4, 3)
    >>> clf = load_classifier({"fc.weight": layer.weight, "fc.bias": layer.bias})
    >>> clf.weight.shape, clf.bias.shape, clf.source
    ((3, 4), (3,), 'mapping[fc.weight, fc.bias]')
    """
    if isinstance(source, LinearClassifier):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        arrays = read_arrays(path, mmap=False, what="classifier")
        return _from_mapping(arrays, key=key, origin=str(path))
    if isinstance(source, torch.nn.Module):
        return _from_mapping(source.state_dict(), key=key, origin=type(source).__name__)
    if isinstance(source, Mapping):
        return _from_mapping(source, key=key, origin="mapping")
    if isinstance(source, tuple):
        if len(source) != 2:
            raise InvalidInputError(f"classifier: a tuple must be (weight, bias), got {len(source)} items.")
        return LinearClassifier(source[0], source[1], source="(weight, bias)")
    return LinearClassifier(source, None, source="array")


def _from_mapping(arrays: Mapping[str, Any], *, key: str | None, origin: str) -> LinearClassifier:
    weight_key = _weight_key(arrays, key=key, origin=origin)
    prefix = weight_key[: -len("weight")] if weight_key.endswith("weight") else None
    bias_key = f"{prefix}bias" if prefix is not None and f"{prefix}bias" in arrays else None
    keys = weight_key if bias_key is None else f"{weight_key}, {bias_key}"
    return LinearClassifier(arrays[weight_key], None if bias_key is None else arrays[bias_key],
                            source=f"{origin}[{keys}]" if weight_key else origin)


def _weight_key(arrays: Mapping[str, Any], *, key: str | None, origin: str) -> str:
    names = [str(name) for name in arrays]
    if key is not None:
        for candidate in (key, f"{key}.weight", f"{key}weight"):
            if candidate in arrays:
                return candidate
        raise InvalidInputError(f"classifier ({origin}): no weight named {key!r} or {key + '.weight'!r}; "
                                f"available: {describe_names(names)}.")
    if "weight" in arrays:
        return "weight"
    candidates = [name for name in names if name.endswith(".weight") and _ndim(arrays, name) == 2]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and len(names) == 1 and _ndim(arrays, names[0]) == 2:
        return names[0]                      # a bare .npy, or a container of one matrix
    if candidates:
        raise AmbiguousKeyError(
            f"classifier ({origin}): several candidate weights ({describe_names(candidates)}); name one with key=... "
            "(CLI: --classifier-key), e.g. the prefix of the last layer such as 'fc'.")
    raise InvalidInputError(f"classifier ({origin}): found no 'weight' (or '<prefix>.weight') among "
                            f"{describe_names(names)}; "
                            "save the last layer's state dict, e.g. torch.save(model.fc.state_dict(), path).")


def _ndim(arrays: Mapping[str, Any], name: str) -> int:
    """Number of dimensions of ``arrays[name]``, from metadata when the arrays come from a file."""
    return len(arrays.shape(name)) if isinstance(arrays, ArrayFile) else int(np.ndim(arrays[name]))


def _as_float_array(values: Any, *, what: str) -> np.ndarray:
    """``values`` as float64 NumPy; non-strided and stride-0 (expanded) inputs are size-checked first."""
    if isinstance(values, (np.ndarray, torch.Tensor)):
        values = as_plain_array(values, name=what)
        if _is_expanded(values):
            check_dense_size(tuple(values.shape), 8, name=what, what="expanded (stride-0) array",
                             hint="save the real (n_classes, n_features) weight, one row per class.")
    if isinstance(values, torch.Tensor):
        values = values.to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, RecursionError) as err:
        raise InvalidInputError(f"{what}: not a numeric array ({short_message(err)}).") from None
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{what}: contains NaN or inf.")
    return array


def _is_expanded(values: np.ndarray | torch.Tensor) -> bool:
    """True when some dimension of length > 1 has stride 0 (``expand``/``broadcast_to``)."""
    strides = values.stride() if isinstance(values, torch.Tensor) else values.strides
    return any(step == 0 and size > 1 for step, size in zip(strides, values.shape))
