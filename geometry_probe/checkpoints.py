"""Loading checkpoint weights into a model, safely (nothing is ever unpickled)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from geometry_probe._optional import require
from geometry_probe._validation import describe_names, short_message
from geometry_probe.exceptions import CorruptFileError, InvalidInputError
from geometry_probe.io import check_input_file, torch_load

#: Keys under which a checkpoint dict nests the weights, tried in this order.
NESTED_KEYS = {"state_dict": "lightning", "model": "model_key", "model_state_dict": "model_state_dict"}
_SHOWN = 5


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`load_checkpoint` read and how it matched the model.

    Attributes
    ----------
    path : str
    format : str
        ``"state_dict"`` (a plain dict of tensors), ``"lightning"`` (weights under
        ``state_dict``), ``"model_key"`` (under ``model``), ``"model_state_dict"`` or
        ``"safetensors"``.
    prefix : str
        Prefix stripped from the checkpoint's keys (``"model."`` for a Lightning module
        that holds the network as ``self.model``); ``""`` when none.
    ignored_keys : tuple of str
        Checkpoint keys outside ``prefix`` (other parts of the Lightning module), not loaded.
    step, epoch : int or None
        ``global_step``/``step`` and ``epoch`` stored beside the weights, when present.
    """

    path: str
    format: str
    prefix: str
    ignored_keys: tuple[str, ...]
    step: int | None
    epoch: int | None


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str], *, prefix: str | None = None,
                    strict: bool = True) -> CheckpointInfo:
    """Load the weights stored at ``path`` into ``model`` (in place).

    Formats: a plain ``state_dict``; a PyTorch Lightning ``.ckpt`` (weights under
    ``state_dict``); a dict with the weights under ``model`` or ``model_state_dict``; a
    ``.safetensors`` file. PyTorch files are read with ``torch.load(weights_only=True)``,
    so a file that needs pickled code (a whole model saved with ``torch.save(model)``,
    custom classes) is refused, never run.

    When the checkpoint's keys carry a prefix that the model's own keys lack (Lightning's
    ``model.``, DataParallel's ``module.``, ``torch.compile``'s ``_orig_mod.``), the prefix
    under which the model's keys are found is stripped; checkpoint keys outside it are
    ignored and listed in the returned :class:`CheckpointInfo`.

    Parameters
    ----------
    model : torch.nn.Module
    path : str or PathLike
    prefix : str, optional
        Strip exactly this prefix instead of detecting one (e.g. ``"ema_model."`` when
        several sub-networks of the checkpoint would fit).
    strict : bool, default=True
        Refuse missing and unexpected keys. With ``False`` they are allowed (the model keeps
        its own values for missing ones); shapes must always agree.

    Returns
    -------
    CheckpointInfo

    Raises
    ------
    InputFileError
        Missing, non-regular (FIFO, device, directory) or unreadable file.
    CorruptFileError
        Truncated, corrupt or mutated bytes, whatever the parser fails with.
    UnsafeFileError
        The file needs pickled code to load.
    InvalidInputError
        No weights found in the file, keys or shapes that do not fit the model (the message
        lists a few of each).

    Examples
    --------
    >>> import tempfile, torch
    >>> from torch import nn
    >>> net = nn.Linear(3, 2)
    >>> folder = tempfile.mkdtemp()
    >>> torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}}, f"{folder}/a.ckpt")
    >>> other = nn.Linear(3, 2)
    >>> info = load_checkpoint(other, f"{folder}/a.ckpt")
    >>> info.format, info.prefix, torch.equal(other.weight, net.weight)
    ('lightning', 'model.', True)
    """
    path = Path(path)
    weights, fmt, extras = read_weights(path)
    own = model.state_dict()
    chosen = prefix if prefix is not None else _detect_prefix(weights, own, path)
    ignored = tuple(k for k in weights if not k.startswith(chosen))
    stripped = {k[len(chosen):]: v for k, v in weights.items() if k.startswith(chosen)}
    _check_fit(stripped, own, path, chosen, strict=strict)
    try:
        model.load_state_dict(stripped, strict=strict)
    except (RuntimeError, TypeError, ValueError) as err:  # e.g. a dtype or layout copy_ cannot convert
        raise InvalidInputError(f"{path}: the checkpoint's tensors could not be copied into the model: "
                                f"{short_message(err, limit=200)}") from None
    return CheckpointInfo(str(path), fmt, chosen, ignored, extras.get("step"), extras.get("epoch"))


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], str, dict[str, int]]:
    """The tensors of a checkpoint file, its format name and any ``step``/``epoch`` numbers."""
    path = check_input_file(path, what="checkpoint")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path), "safetensors", {}
    obj = torch_load(path, what="PyTorch checkpoint")
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"{path}: holds a {type(obj).__name__}, not a dict of weights; save "
                                "model.state_dict().")
    extras = _counters(obj)
    for key, fmt in NESTED_KEYS.items():
        if isinstance(obj.get(key), Mapping) and _tensors(obj[key]):
            return _tensors(obj[key]), fmt, extras
    weights = _tensors(obj)
    if not weights:
        raise InvalidInputError(f"{path}: no tensors found; top-level keys: {describe_names(sorted(map(str, obj)))}. "
                                f"Expected a state_dict, or weights under one of {list(NESTED_KEYS)}.")
    return weights, "state_dict", extras


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    safetensors_torch = require("safetensors.torch", extra="io", package="safetensors")
    try:
        return dict(safetensors_torch.load_file(str(path), device="cpu"))
    except Exception as err:  # safetensors raises its own SafetensorError (and others on mutated headers)
        raise CorruptFileError(f"{path}: not a readable .safetensors checkpoint (truncated or corrupt?): "
                               f"{type(err).__name__}: {short_message(err, limit=200)}") from None


def _tensors(obj: Mapping[Any, Any]) -> dict[str, Tensor]:
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}


def _counters(obj: Mapping[str, Any]) -> dict[str, int]:
    """``step`` (``global_step``, else ``step``) and ``epoch`` when stored as integers."""
    found = {"step": _as_int(obj.get("global_step")), "epoch": _as_int(obj.get("epoch"))}
    if found["step"] is None:
        found["step"] = _as_int(obj.get("step"))
    return {name: value for name, value in found.items() if value is not None}


def _as_int(value: Any) -> int | None:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _detect_prefix(weights: Mapping[str, Tensor], own: Mapping[str, Tensor], path: Path) -> str:
    """The prefix under which the model's keys sit in the checkpoint (``""`` if none needed)."""
    own_keys = set(own)
    if own_keys <= set(weights):
        return ""
    counts: Counter[str] = Counter()
    for key in weights:
        parts = key.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in own_keys:
                counts[".".join(parts[:i]) + "."] += 1
    if not counts:
        return ""
    best = max(counts.values())
    tied = sorted(p for p, c in counts.items() if c == best)
    if len(tied) > 1:
        raise InvalidInputError(f"{path}: the model's keys fit under several prefixes {tied}; choose one with "
                                "prefix=... (CLI: --checkpoint-prefix).")
    return tied[0]


def _check_fit(weights: Mapping[str, Tensor], own: Mapping[str, Tensor], path: Path, prefix: str, *,
               strict: bool) -> None:
    where = f" (after stripping {prefix!r})" if prefix else ""
    problems = []
    if strict:
        missing = [k for k in own if k not in weights]
        unexpected = [k for k in weights if k not in own]
        if missing:
            problems.append(f"{len(missing)} of the model's keys are missing from the checkpoint{where}, "
                            f"e.g. {missing[:_SHOWN]}")
        if unexpected:
            problems.append(f"{len(unexpected)} checkpoint keys are not in the model, e.g. {unexpected[:_SHOWN]}")
    shapes = [f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in weights and weights[k].shape != own[k].shape]
    if shapes:
        problems.append(f"{len(shapes)} shapes differ, e.g. {shapes[:_SHOWN]}")
    if problems:
        raise InvalidInputError(f"{path}: the checkpoint does not fit the model: " + "; ".join(problems) +
                                ". Check that the model factory builds the same architecture.")
