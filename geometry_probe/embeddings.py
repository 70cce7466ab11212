"""`Embeddings`: the one input type, validated once and read lazily in batches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geometry_probe._validation import check_embeddings, check_finite_batch, encode_labels, native_rows

_TORCH_DTYPE_NAMES = {torch.bfloat16: "bfloat16", torch.float16: "float16"}


@dataclass(frozen=True, eq=False)
class Embeddings:
    """An (n_samples, n_features) matrix with optional labels.

    ``X`` stays as given, a NumPy array (possibly memory-mapped) or a tensor on any
    device; rows are converted to float per batch in :meth:`batches`, so files larger than
    host or device memory can be analysed and nothing is upcast or centred whole. Other
    layouts are converted once on construction
    (:func:`~geometry_probe._validation.as_plain_array`): tensors that require grad are
    detached, sparse, quantized and regular nested tensors made dense within a memory
    budget; a big-endian or long-double memory map is converted batch by batch.

    Parameters
    ----------
    X : ndarray or Tensor of shape (n_samples, n_features)
        Float (16/32/64, bfloat16), integer or boolean values.
    labels : array-like of shape (n_samples,), optional
        Class ids of any type (ints, sparse ints, strings); stored as codes ``0..C-1``.
    classes : tuple of str, optional
        Names of the codes. Computed from ``labels`` when not given.
    name : str, default="embeddings"
        Used in messages and reports (e.g. the file name).
    meta : mapping, default={}
        Free-form provenance (path, key, ...), copied into results.

    Examples
    --------
    >>> import numpy as np
    >>> emb = Embeddings(np.eye(3), labels=["b", "a", "b"])
    >>> emb.n_samples, emb.n_features, emb.classes, emb.labels.tolist()
    (3, 3, ('a', 'b'), [1, 0, 1])
    """

    X: np.ndarray | Tensor
    labels: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    name: str = "embeddings"
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "X", check_embeddings(self.X, name=self.name))
        if self.labels is not None:
            codes, names = encode_labels(self.labels, n_samples=self.X.shape[0])
            if self.classes is not None and _already_codes(self.labels, self.classes):
                codes, names = np.asarray(self.labels, dtype=np.int64), tuple(self.classes)
            object.__setattr__(self, "labels", codes)
            object.__setattr__(self, "classes", names)

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of columns."""
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of distinct label codes (0 without labels)."""
        return 0 if self.labels is None else len(self.classes or ())

    @property
    def dtype(self) -> str:
        """Storage dtype of ``X`` as a string."""
        if isinstance(self.X, Tensor):
            return _TORCH_DTYPE_NAMES.get(self.X.dtype, str(self.X.dtype).removeprefix("torch."))
        return str(self.X.dtype)

    def batches(self, batch_size: int = 16384, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None) -> Iterator[tuple[Tensor, Tensor | None, int]]:
        """Yield ``(X_batch, labels_batch, offset)`` with float rows on ``device``.

        By default float64 input stays float64 and every other dtype becomes float32, per
        batch; ``dtype`` forces one. Each batch is checked for NaN/inf, and the error names
        the first bad rows.
        """
        for start in range(0, self.n_samples, batch_size):
            X = self._rows(slice(start, start + batch_size), device, dtype)
            check_finite_batch(X, offset=start, name=self.name)
            y = None
            if self.labels is not None:
                y = torch.as_tensor(self.labels[start:start + batch_size], device=X.device)
            yield X, y, start

    def rows(self, index: np.ndarray, *, device: torch.device | str | None = None) -> Tensor:
        """Rows ``index`` as a float tensor on ``device`` (checked for NaN/inf)."""
        X = self._rows(np.asarray(index), device, None)
        check_finite_batch(X, offset=0, name=self.name)
        return X

    def _rows(self, index: slice | np.ndarray, device: torch.device | str | None,
              dtype: torch.dtype | None) -> Tensor:
        if isinstance(self.X, Tensor):
            X = self.X[torch.as_tensor(index) if isinstance(index, np.ndarray) else index]
            X = X.to(device) if device is not None else X
        else:
            offset = index.start if isinstance(index, slice) else 0
            rows = native_rows(np.ascontiguousarray(self.X[index]), name=self.name, offset=offset)
            if not rows.flags.writeable:          # read-only memory map: copy this batch only
                rows = rows.copy()
            X = torch.from_numpy(rows)
            X = X.to(device) if device is not None else X
        if dtype is None:
            dtype = torch.float64 if X.dtype == torch.float64 else torch.float32
        return X.to(dtype)

    def subsample(self, n: int, *, random_state: int = 0) -> Embeddings:
        """A seeded uniform subsample of ``n`` rows without replacement (sorted indices)."""
        if n >= self.n_samples:
            return self
        rng = np.random.default_rng(random_state)
        index = np.sort(rng.choice(self.n_samples, size=n, replace=False))
        X = self.X[torch.as_tensor(index)] if isinstance(self.X, Tensor) else np.asarray(self.X[index])
        labels = None if self.labels is None else self.labels[index]
        return Embeddings(X, labels=labels, classes=self.classes, name=self.name,
                          meta={**self.meta, "subsample": n, "subsample_seed": random_state})

    def summary(self) -> dict[str, Any]:
        """Plain-data description: shape, dtype, classes and ``meta``."""
        info: dict[str, Any] = {"name": self.name, "n_samples": self.n_samples,
                                "n_features": self.n_features, "dtype": self.dtype}
        if self.labels is not None:
            info["n_classes"] = self.n_classes
            info["classes"] = list(self.classes or ())
        info.update(self.meta)
        return info


def _already_codes(labels: Any, classes: tuple[str, ...]) -> bool:
    """True when ``labels`` are int codes into an explicitly given ``classes`` tuple."""
    arr = np.asarray(labels)
    return arr.dtype.kind in "iu" and (arr.size == 0 or (arr.min() >= 0 and arr.max() < len(classes)))


def as_embeddings(data: Any, labels: Any = None) -> Embeddings:
    """Wrap an array, tensor or :class:`Embeddings` (labels given here override stored ones)."""
    if isinstance(data, Embeddings):
        if labels is None:
            return data
        return type(data)(data.X, labels=labels, name=data.name, meta=data.meta)     # sharded stays sharded
    if isinstance(data, Tensor):
        data = data.detach()
    return Embeddings(data, labels=labels)
