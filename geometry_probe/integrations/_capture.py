"""Capture a module's training-time outputs by a forward hook, for the framework callbacks."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from geometry_probe.exceptions import InvalidInputError


def default_select(output: Any) -> torch.Tensor:
    """The embedding tensor of a module output: a tuple or list gives its first element, a mapping
    its ``last_hidden_state`` or ``pooler_output`` (the Hugging Face names)."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    elif isinstance(output, dict) or hasattr(output, "keys"):
        for name in ("pooler_output", "last_hidden_state"):
            if name in output and output[name] is not None:
                return output[name]
    return output


class ModuleCapture:
    """Keep the outputs a module produces while capturing is switched on (training steps only).

    Outputs of several forward calls in one step (two views of a batch) are concatenated;
    outputs with more than two dimensions are flattened to one row per sample.
    """

    def __init__(self, select: Callable[[Any], torch.Tensor] | None = None) -> None:
        self.select = select or default_select
        self.active = False
        self._rows: list[torch.Tensor] = []
        self._handle: Any = None

    def attach(self, root: torch.nn.Module, module: str | torch.nn.Module) -> None:
        """Hook ``module`` (a name in ``root.named_modules()``, or the module itself)."""
        self.detach()
        target = module
        if isinstance(module, str):
            names = dict(root.named_modules())
            if module not in names:
                close = [n for n in names if n and module in n][:5]
                raise InvalidInputError(f"module={module!r} is not a submodule of {type(root).__name__}"
                                        + (f"; did you mean one of {close}?" if close else
                                           "; list the names with [n for n, _ in model.named_modules()]."))
            target = names[module]
        self._handle = target.register_forward_hook(self._hook)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if not (self.active and module.training):
            return
        z = self.select(output)
        if not isinstance(z, torch.Tensor):
            return
        z = z.detach()
        self._rows.append(z.flatten(1) if z.ndim > 2 else z)

    def take(self) -> torch.Tensor | None:
        """The rows captured since the last call (None when the hook did not fire)."""
        rows, self._rows = self._rows, []
        if not rows:
            return None
        return rows[0] if len(rows) == 1 else torch.cat(rows)


class WarnOnce:
    """A warning given the first time only."""

    def __init__(self) -> None:
        self.given = False

    def __call__(self, message: str) -> None:
        if not self.given:
            self.given = True
            warnings.warn(message, RuntimeWarning, stacklevel=3)
