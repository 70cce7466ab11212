"""Hugging Face ``transformers`` adapter: a ``TrainerCallback`` over a
:class:`~geometry_probe.monitor.CollapseMonitor`.

The Trainer does not hand embeddings to callbacks, so the monitor watches a module through a
forward hook: pass ``module`` (e.g. ``model.bert.pooler``) and, if its output is not the
embedding tensor, ``select`` to pick it. Snapshots are logged with the Trainer's ``log``
mechanism (``state.log_history``); ``stop_on_collapse`` sets ``control.should_training_stop``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from geometry_probe._optional import require
from geometry_probe.monitor import CollapseMonitor

_transformers = require("transformers", extra="hf")


class GeometryTrainerCallback(_transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Watch ``module``'s training-time outputs with a :class:`CollapseMonitor`."""

    def __init__(self, module: torch.nn.Module, monitor: CollapseMonitor | None = None, *,
                 select: Callable[[Any], torch.Tensor] | None = None, prefix: str = "geometry/",
                 stop_on_collapse: bool = False) -> None:
        self.monitor = monitor or CollapseMonitor()
        self.select = select or (lambda out: out[0] if isinstance(out, (tuple, list)) else out)
        self.prefix, self.stop_on_collapse = prefix, stop_on_collapse
        self._pending: dict[str, float] = {}
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if not module.training:
            return
        z = self.select(output)
        if z.ndim > 2:
            z = z.flatten(1)
        snapshot = self.monitor.update(z)
        if snapshot is not None:
            self._pending = {f"{self.prefix}{k}": v for k, v in snapshot["scalars"].items() if v == v}

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Log the latest snapshot once and stop training on a failed collapse finding if asked."""
        if self._pending:
            state.log_history.append({**self._pending, "step": state.global_step})
            self._pending = {}
        if self.stop_on_collapse and any(a["verdict"] == "fail" for a in self.monitor.alerts):
            control.should_training_stop = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """Remove the forward hook."""
        self._handle.remove()
        return control
