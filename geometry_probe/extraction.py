"""`extract()`: a model's intermediate outputs as :class:`Embeddings`, via forward hooks."""

from __future__ import annotations

import contextlib
import difflib
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from geometry_probe._feature_store import FeatureBuffer, storage_dtype
from geometry_probe._validation import check_positive_int, resolve_device
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidInputError, OutputError

POOLS = ("mean", "cls", "flatten")
MEMORY_BYTES = 2**30
Pool = str | Callable[[Any], Tensor] | None


def extract(model: nn.Module, data: Any, layers: str | Sequence[str], *, pool: Pool = None,
            max_samples: int | None = None, device: str | torch.device | None = "auto",
            batch_size: int = 256, memmap_dir: str | Path | None = None,
            memory_bytes: int = MEMORY_BYTES,
            progress: Callable[[str, int, int | None], None] | None = None) -> dict[str, Embeddings]:
    """Run ``data`` through ``model`` and return the outputs of the named modules.

    A forward hook on each named module records its output batch by batch. The model runs
    in eval mode under :func:`torch.no_grad`; afterwards every module's train/eval flag is
    restored, the hooks are removed and the model is back on its device, also after an error.

    Module outputs are turned into one row per sample as follows.

    * A tensor is used as is; a tuple or list gives its first element (the hidden states of
      a transformer block or an LSTM); a mapping gives ``last_hidden_state`` if present,
      else its only tensor (several → error). A callable ``pool`` receives the raw output.
    * A 2-D output ``(batch, features)`` is kept. A 3-D or higher output needs ``pool``:

      ``"mean"``
          3-D ``(batch, tokens, features)`` → mean over tokens; 4-D and higher
          ``(batch, channels, *spatial)`` (PyTorch's convolution layout) → mean over the
          spatial axes (global average pooling). For other layouts (``Conv1d``'s
          ``(batch, channels, length)``, channels-last maps) pass a callable.
      ``"cls"``
          3-D only: the first token, ``output[:, 0]``.
      ``"flatten"``
          ``output.reshape(batch, -1)``.
      callable
          ``pool(output)`` must return a ``(batch, n_features)`` tensor; it is applied to
          every output, 2-D ones included.

    The rule used is recorded in each result's ``meta`` (``pool``, ``pooled_axes``,
    ``output_shape``); a 3-D+ output with ``pool=None`` raises instead of guessing.

    Parameters
    ----------
    model : torch.nn.Module
    data : DataLoader, Dataset, Tensor, ndarray or iterable of batches
        Each batch is ``x`` or ``(x, y)`` (a tuple or list of two); ``y`` becomes the labels.
        ``x`` is passed as ``model(x)``, or ``model(**x)`` when it is a mapping (tokenizer
        output). A Dataset is read in order with a DataLoader of ``batch_size``; a tensor or
        array is cut into batches of ``batch_size`` rows.
    layers : str or sequence of str
        Module names as in ``model.named_modules()``, e.g. ``"encoder.4"``.
    pool : {"mean", "cls", "flatten"}, callable or None, default=None
        How outputs with more than 2 dimensions become rows (see above).
    max_samples : int, optional
        Stop after this many samples (the last batch is cut).
    device : str, torch.device or None, default="auto"
        Where the model runs: ``"auto"`` is CUDA when available, else CPU. The model is
        moved there and back afterwards. ``None`` leaves the model where it is and sends the
        inputs to the device of its first parameter (for models spread over devices).
    batch_size : int, default=256
        Batch size used when ``data`` is a Dataset, tensor or array.
    memmap_dir : str or Path, optional
        Folder for memory-mapped features (``<layer>.npy``, kept). Default: a temporary
        folder whose files are deleted once the arrays are released (POSIX).
    memory_bytes : int, default=2**30
        Memory budget for the features of all layers. When the number of samples is known
        beforehand (a tensor, a Dataset, a DataLoader, or ``max_samples``), each layer's rows
        go into one preallocated array, or, for layers that would not fit in what is left of
        the budget, batch by batch into an ``.npy`` file from the start; otherwise rows are
        kept in memory until the budget is passed, then moved to files. Files come back as
        read-only :class:`numpy.memmap`.
    progress : callable, optional
        ``progress("samples", rows_so_far, total)`` after every batch; ``total`` is the
        number of samples when known beforehand, else None. Default: nothing is reported.

    Returns
    -------
    dict of str to Embeddings
        One entry per layer, in the order given, each ``(n_samples, n_features)`` on the CPU
        (bfloat16 becomes float32, other dtypes are kept) with the labels when batches have
        ``y``. ``meta`` holds ``layer``, ``module``, ``pool``, ``pooled_axes``,
        ``output_shape`` (one sample's raw shape), ``call_index`` (order in which the
        hooked modules first ran: depth), ``storage`` and ``memmap_path``.

    Raises
    ------
    InvalidInputError
        Unknown layer (the message lists close matches), an output that needs ``pool``,
        a module that did not run or ran twice in one forward pass, inconsistent batches.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> X, y = torch.randn(10, 4), torch.arange(10) % 2
    >>> out = extract(model, torch.utils.data.TensorDataset(X, y), ["0", "2"], device="cpu")
    >>> out["0"].n_samples, out["0"].n_features, out["2"].n_features, out["0"].n_classes
    (10, 8, 2, 2)
    >>> torch.equal(torch.as_tensor(out["2"].X), model(X).detach())
    True
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    modules = resolve_layers(model, names)
    if pool is not None and not callable(pool) and pool not in POOLS:
        raise InvalidInputError(f"pool: got {pool!r}; use one of {list(POOLS)}, a callable, or None.")
    if max_samples is not None:
        max_samples = check_positive_int(max_samples, name="max_samples")
    batch_size = check_positive_int(batch_size, name="batch_size")
    memory_bytes = check_positive_int(memory_bytes, name="memory_bytes")
    capacity = _sample_count(data)
    if max_samples is not None:
        capacity = max_samples if capacity is None else min(capacity, max_samples)
    run = _Run(names, pool, max_samples, capacity, memory_bytes, Path(memmap_dir) if memmap_dir is not None else None)
    if run.memmap_dir is not None and not run.memmap_dir.is_dir():
        raise OutputError(f"memmap_dir: {run.memmap_dir} is not an existing folder; create it first.")
    try:
        with _prepared(model, modules, run, device) as target:
            for x, y in _batches(data, batch_size):
                going = run.step(model, x, y, target)
                if progress is not None:
                    progress("samples", run.n_rows, capacity)
                if not going:
                    break
        return run.finish(modules)
    except BaseException:
        run.abort()
        raise


def resolve_layers(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    """Map module names to modules; an unknown name raises listing the closest names."""
    if not names:
        raise InvalidInputError("layers: give at least one module name (see model.named_modules()).")
    available = dict(model.named_modules())
    available.pop("", None)
    modules = {}
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, list(available), n=5, cutoff=0.5)
            hint = f"close matches: {close}" if close else f"first modules: {list(available)[:8]}"
            raise InvalidInputError(
                f"layer {name!r}: the model has no module of that name; {hint} "
                f"({len(available)} modules; list them with model.named_modules() or `geoprobe layers --model ...`).")
        modules[name] = available[name]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"layers: names repeated in {list(names)}; give each layer once.")
    return modules


class _AllCaptured(BaseException):
    """Raised by the last hook of a forward pass to skip the rest of the model (never escapes)."""


@dataclass
class _Run:
    """State of one extraction: per-layer buffers written by the hooks, labels, counters."""

    names: list[str]
    pool: Pool
    max_samples: int | None
    capacity: int | None
    memory_bytes: int
    memmap_dir: Path | None
    buffers: dict[str, FeatureBuffer] = field(default_factory=dict)
    captured: dict[str, int] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    call_order: list[str] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    n_rows: int = 0
    reserved_bytes: int = 0
    has_labels: bool | None = None
    temp_dir: Path | None = None

    def __post_init__(self) -> None:
        self.buffers = {name: FeatureBuffer(self.capacity) for name in self.names}

    def hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def record(_module: nn.Module, _args: Any, output: Any) -> None:
            if name in self.captured:
                raise InvalidInputError(
                    f"layer {name!r} ran more than once in one forward pass (a shared or reused module), so "
                    "its output is ambiguous; hook a module that runs once per pass.")
            rows, meta = pool_output(output, self.pool, name)
            self._store(name, rows)
            self.meta.setdefault(name, meta)
            if name not in self.call_order:
                self.call_order.append(name)
            if len(self.captured) == len(self.names) and self.n_rows > 0:
                raise _AllCaptured
        return record

    def _store(self, name: str, rows: Tensor) -> None:
        """Copy this batch's rows (up to ``max_samples``) into the layer's buffer, from inside the hook."""
        buffer = self.buffers[name]
        if buffer.width is None:
            buffer.start(int(rows.shape[1]), rows.dtype, spill_to=self._file_if_over_budget(name, rows))
        elif rows.shape[1] != buffer.width:
            raise InvalidInputError(
                f"layer {name!r}: {rows.shape[1]} features in this batch but {buffer.width} before; outputs must "
                "have the same width in every batch (with pool='flatten', pad sequences to one length).")
        keep = rows.shape[0] if self.max_samples is None else min(rows.shape[0], self.max_samples - self.n_rows)
        buffer.append(rows[:keep])
        self.captured[name] = int(rows.shape[0])

    def _file_if_over_budget(self, name: str, rows: Tensor) -> Path | None:
        """With a known sample count, the file for this layer when its rows would not fit the budget."""
        if self.capacity is None:
            return None
        need = self.capacity * int(rows.shape[1]) * torch.empty(0, dtype=storage_dtype(rows.dtype)).element_size()
        if self.reserved_bytes + need <= self.memory_bytes:
            self.reserved_bytes += need
            return None
        return self._folder() / f"{_file_stem(name)}.npy"

    def step(self, model: nn.Module, x: Any, y: Any, device: torch.device) -> bool:
        """Run one batch through the model; False once ``max_samples`` rows are stored."""
        self.captured.clear()
        x = _to_device(x, device)
        with contextlib.suppress(_AllCaptured):
            model(**x) if isinstance(x, Mapping) else model(x)
        missing = [n for n in self.names if n not in self.captured]
        if missing:
            raise InvalidInputError(f"layers {missing} did not run during the forward pass; hook modules that "
                                    "the model's forward() calls.")
        n = self._batch_rows(y)
        keep = n if self.max_samples is None else min(n, self.max_samples - self.n_rows)
        if y is not None:
            self.labels.append(_label_array(y)[:keep])
        self.n_rows += keep
        self._respect_budget()
        return self.max_samples is None or self.n_rows < self.max_samples

    def _batch_rows(self, y: Any) -> int:
        if len(set(self.captured.values())) != 1:
            raise InvalidInputError(f"layers give different numbers of rows for one batch: {self.captured}.")
        n = next(iter(self.captured.values()))
        if self.has_labels is None:
            self.has_labels = y is not None
        if self.has_labels != (y is not None):
            raise InvalidInputError("some batches have labels (x, y) and others do not; make every batch the same.")
        if y is not None and len(_label_array(y)) != n:
            raise InvalidInputError(f"a batch has {n} samples but {len(_label_array(y))} labels.")
        return n

    def _respect_budget(self) -> None:
        if sum(b.in_memory_bytes for b in self.buffers.values()) <= self.memory_bytes:
            return
        for name, buffer in self.buffers.items():
            buffer.spill(self._folder() / f"{_file_stem(name)}.npy")

    def _folder(self) -> Path:
        if self.memmap_dir is not None:
            return self.memmap_dir
        if self.temp_dir is None:
            self.temp_dir = Path(tempfile.mkdtemp(prefix="geoprobe-features-"))
        return self.temp_dir

    def finish(self, modules: Mapping[str, nn.Module]) -> dict[str, Embeddings]:
        if self.n_rows == 0:
            raise InvalidInputError("data: no batches were produced; the data set or loader is empty.")
        labels = np.concatenate(self.labels) if self.has_labels else None
        out = {}
        for name in self.names:
            X = self.buffers[name].finish()
            memmap_path = str(X.filename) if isinstance(X, np.memmap) and self.temp_dir is None else None
            storage = "memory" if not isinstance(X, np.memmap) else (
                "memmap" if self.temp_dir is None else "memmap (temporary file)")
            meta = {"source": "extract", "layer": name, "module": type(modules[name]).__name__,
                    **self.meta[name], "call_index": self.call_order.index(name),
                    "storage": storage, "memmap_path": memmap_path}
            out[name] = Embeddings(X, labels=labels, name=name, meta=meta)
        self._remove_temp_files()
        return out

    def abort(self) -> None:
        for buffer in self.buffers.values():
            buffer.abort()
        self._remove_temp_files()

    def _remove_temp_files(self) -> None:
        # mapped arrays stay readable after their file is unlinked (POSIX); elsewhere the folder stays
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def pool_output(output: Any, pool: Pool, name: str) -> tuple[Tensor, dict[str, Any]]:
    """One module output as ``(batch, n_features)`` rows, and the rule used (for ``meta``)."""
    if callable(pool):
        rows = pool(output)
        if not isinstance(rows, Tensor) or rows.ndim != 2:
            shape = tuple(rows.shape) if isinstance(rows, Tensor) else type(rows).__name__
            raise InvalidInputError(f"layer {name!r}: the pool function returned {shape}; it must return a "
                                    "2-D tensor (batch, n_features).")
        shape = list(output.shape[1:]) if isinstance(output, Tensor) else None
        return rows.detach(), {"pool": getattr(pool, "__name__", "callable"), "pooled_axes": None,
                               "output_shape": shape, "output_selected": "callable"}
    tensor, selected = _select_tensor(output, name)
    shape = tuple(tensor.shape)
    meta: dict[str, Any] = {"pool": "none", "pooled_axes": [], "output_shape": list(shape[1:]),
                            "output_selected": selected}
    if tensor.ndim == 2:
        return tensor.detach(), meta
    if tensor.ndim < 2:
        raise InvalidInputError(f"layer {name!r}: output of shape {shape} has no feature axis; pass "
                                "pool=lambda out: out.reshape(len(out), -1) if one value per sample is meant.")
    if pool is None:
        layout = "(batch, tokens, features)" if tensor.ndim == 3 else "(batch, channels, *spatial)"
        raise InvalidInputError(
            f"layer {name!r}: output has shape {shape} ({tensor.ndim}-D); choose how to pool it to one row per "
            f"sample: pool='mean' (average over tokens/spatial axes, reading it as {layout}), 'cls' (first "
            "token, 3-D only), 'flatten', or a callable (CLI: --pool mean).")
    if pool == "flatten":
        return tensor.detach().reshape(shape[0], -1), {**meta, "pool": "flatten", "pooled_axes": []}
    if pool == "cls":
        if tensor.ndim != 3:
            raise InvalidInputError(f"layer {name!r}: pool='cls' takes the first token of a 3-D (batch, tokens, "
                                    f"features) output, got shape {shape}; use 'mean' or 'flatten'.")
        return tensor.detach()[:, 0], {**meta, "pool": "cls", "pooled_axes": [1]}
    axes = [1] if tensor.ndim == 3 else list(range(2, tensor.ndim))
    return tensor.detach().mean(dim=axes), {**meta, "pool": "mean", "pooled_axes": axes}


def _select_tensor(output: Any, name: str) -> tuple[Tensor, str]:
    if isinstance(output, Tensor):
        return output, "output"
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0], "output[0]"
    if isinstance(output, Mapping):
        if isinstance(output.get("last_hidden_state"), Tensor):
            return output["last_hidden_state"], "output['last_hidden_state']"
        tensors = [k for k, v in output.items() if isinstance(v, Tensor)]
        if len(tensors) == 1:
            return output[tensors[0]], f"output[{tensors[0]!r}]"
        raise InvalidInputError(f"layer {name!r}: output is a mapping with tensors {tensors}; pass pool=callable "
                                "that picks and pools one, e.g. pool=lambda out: out['pooler_output'].")
    raise InvalidInputError(f"layer {name!r}: output of type {type(output).__name__} holds no tensor to read; "
                            "pass pool=callable returning a (batch, n_features) tensor.")


@contextlib.contextmanager
def _prepared(model: nn.Module, modules: Mapping[str, nn.Module], run: _Run,
              device: str | torch.device | None) -> Iterator[torch.device]:
    """Eval mode, no_grad, hooks and device for the duration of the block; all undone after."""
    training = {m: m.training for m in model.modules()}
    tensors = [*model.parameters(), *model.buffers()]
    current = {t.device for t in tensors}
    if device is None:
        target, original = (tensors[0].device if tensors else torch.device("cpu")), None
    else:
        target = resolve_device(device)
        if len(current) > 1:
            raise InvalidInputError(f"device: the model spans devices {sorted(map(str, current))}; pass device=None "
                                    "to run it where it is.")
        original = next(iter(current), None)
    handles = [m.register_forward_hook(run.hook(name)) for name, m in modules.items()]
    try:
        if original is not None and original != target:
            model.to(target)
        model.eval()
        with torch.no_grad():
            yield target
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag
        if original is not None and original != target:
            model.to(original)


def _batches(data: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    """``(x, y)`` pairs (``y`` None without labels) from any supported ``data``."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, Tensor):
        source: Iterable[Any] = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
    elif isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.DataLoader):
        source = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
        source = data
    else:
        raise InvalidInputError(f"data: got {type(data).__name__}; pass a DataLoader, a Dataset, a tensor or an "
                                "iterable of x or (x, y) batches.")
    for batch in source:
        if isinstance(batch, (tuple, list)):
            if len(batch) == 2:
                yield batch[0], batch[1]
                continue
            if len(batch) == 1:
                yield batch[0], None
                continue
            raise InvalidInputError(f"data: a batch is a {type(batch).__name__} of {len(batch)} items; extract reads "
                                    "x or (x, y). Yield (inputs, labels), or a mapping of model inputs as x.")
        yield batch, None


def _sample_count(data: Any) -> int | None:
    """How many samples ``data`` will give, when it can tell without being read (else None)."""
    if isinstance(data, (np.ndarray, Tensor)):
        return len(data)
    try:
        if isinstance(data, torch.utils.data.DataLoader):
            if data.batch_size is None:
                return None
            n = len(data.sampler)  # type: ignore[arg-type]
            return n - n % data.batch_size if data.drop_last else n
        if isinstance(data, torch.utils.data.Dataset):
            return len(data)  # type: ignore[arg-type]
    except TypeError:  # iterable-style datasets have no length
        return None
    return None


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, Tensor):
        return x.to(device)
    if isinstance(x, Mapping):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    return x


def _label_array(y: Any) -> np.ndarray:
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(f"labels: a batch's y has shape {arr.shape}; expected one class id per sample.")
    return arr


def _file_stem(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", layer) or "layer"
