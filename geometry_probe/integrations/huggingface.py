"""Hugging Face ``transformers`` adapter: a ``TrainerCallback`` over a
:class:`~geometry_probe.monitor.CollapseMonitor`.

The Trainer does not hand embeddings to callbacks, so the monitor watches a module through a
forward hook: pass ``module``, the module itself (``model.bert.pooler``) or its name in the
model (``"bert.pooler"``, hooked when training begins), and, if its output is not the
embedding tensor, ``select`` to pick it. The outputs of one optimizer step (every micro-batch
of a gradient-accumulation step) go to the monitor together, as one update. Snapshots are
logged with the Trainer's ``log`` mechanism (``state.log_history``); ``stop_on_collapse`` sets
``control.should_training_stop``. A step in which the module produced nothing warns once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from geometry_probe._optional import require
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.integrations._capture import ModuleCapture, WarnOnce
from geometry_probe.monitor import CollapseMonitor

_transformers = require("transformers", extra="hf")


class GeometryTrainerCallback(_transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Watch ``module``'s training-time outputs with a :class:`CollapseMonitor`.

    Parameters
    ----------
    module : torch.nn.Module or str
        The module to hook, or its name in ``model.named_modules()``.
    monitor : CollapseMonitor, optional
    select : callable, optional
        ``select(output) -> Tensor``. Default: a tuple's first element, a model output's
        ``pooler_output`` or ``last_hidden_state``; more than two dimensions are flattened.
    prefix : str, default="geometry/"
    stop_on_collapse : bool, default=False
    """

    def __init__(self, module: torch.nn.Module | str, monitor: CollapseMonitor | None = None, *,
                 select: Callable[[Any], torch.Tensor] | None = None, prefix: str = "geometry/",
                 stop_on_collapse: bool = False) -> None:
        self.monitor = monitor or CollapseMonitor()
        self.module, self.prefix, self.stop_on_collapse = module, prefix, stop_on_collapse
        self._capture = ModuleCapture(select)
        self._capture.active = True
        self._warn = WarnOnce()
        if isinstance(module, torch.nn.Module):
            self._capture.attach(module, module)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        """Hook the module named by ``module`` (a string) in the Trainer's model."""
        if isinstance(self.module, str):
            if model is None:
                raise InvalidInputError(f"GeometryTrainerCallback: module={self.module!r} names a submodule, but the "
                                        "Trainer passed no model; pass the module itself.")
            self._capture.attach(model, self.module)
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Give the step's outputs to the monitor, log a snapshot, stop on a failed collapse finding if asked."""
        z = self._capture.take()
        if z is None:
            self._warn(f"GeometryTrainerCallback: the watched module ({self._name()}) produced no output during "
                       "this training step (is it part of the model's forward pass?); nothing is monitored.")
            return control
        snapshot = self.monitor.update(z)
        if snapshot is not None:
            logged = {f"{self.prefix}{k}": v for k, v in snapshot["scalars"].items() if v == v}
            if logged:
                state.log_history.append({**logged, "step": state.global_step})
        if self.stop_on_collapse and any(a["verdict"] == "fail" for a in self.monitor.alerts):
            control.should_training_stop = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Remove the forward hook."""
        self._capture.detach()
        return control

    def _name(self) -> str:
        return repr(self.module) if isinstance(self.module, str) else type(self.module).__name__
