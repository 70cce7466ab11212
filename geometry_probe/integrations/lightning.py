"""PyTorch Lightning adapter: feeds a :class:`~geometry_probe.monitor.CollapseMonitor`.

Two ways to get each training step's embeddings:

* ``GeometryCallback(module="encoder")``: a forward hook on the named submodule of the
  LightningModule records its outputs during training steps (``training_step`` can return only
  the loss, as usual);
* ``GeometryCallback()`` (no ``module``): ``training_step`` returns a dict holding the batch
  embeddings under ``key`` (and optionally labels under ``label_key``).

Every snapshot's scalars are logged through the module's logger under ``prefix``, and
``stop_on_collapse`` ends training at a failed collapse finding. When a training step gives no
embeddings, a ``RuntimeWarning`` says so once and how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from geometry_probe._optional import require
from geometry_probe.integrations._capture import ModuleCapture, WarnOnce
from geometry_probe.monitor import CollapseMonitor

_lightning = require("lightning.pytorch", extra="lightning", package="lightning")


class GeometryCallback(_lightning.Callback):  # type: ignore[misc,name-defined]
    """Lightning callback over a :class:`CollapseMonitor` (no logic of its own).

    Parameters
    ----------
    monitor : CollapseMonitor, optional
        Default: ``CollapseMonitor(every_n_steps=100, on_collapse="warn")``.
    module : str, optional
        Name of the submodule whose training-time output is monitored, as in
        ``pl_module.named_modules()`` (e.g. ``"encoder"`` or ``"backbone.layer4"``). A tuple or
        list output gives its first element, a Hugging Face output its ``pooler_output`` or
        ``last_hidden_state``; more than two dimensions are flattened per sample. Default: read
        ``outputs[key]`` returned by ``training_step`` instead.
    select : callable, optional
        ``select(output) -> Tensor``: picks the embeddings from the module's output.
    key : str, default="embeddings"
        Without ``module``: the key of the embeddings in the dict ``training_step`` returns.
    label_key : str, optional
        The key of the labels in that dict (both ways).
    prefix : str, default="geometry/"
    stop_on_collapse : bool, default=False
    """

    def __init__(self, monitor: CollapseMonitor | None = None, *, module: str | None = None,
                 select: Callable[[Any], torch.Tensor] | None = None, key: str = "embeddings",
                 label_key: str | None = None, prefix: str = "geometry/", stop_on_collapse: bool = False) -> None:
        self.monitor = monitor or CollapseMonitor()
        self.module, self.key, self.label_key, self.prefix, self.stop_on_collapse = \
            module, key, label_key, prefix, stop_on_collapse
        self._capture = ModuleCapture(select) if module is not None else None
        self._warn = WarnOnce()

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Hook the named module (``module=``)."""
        if self._capture is not None:
            self._capture.attach(pl_module, self.module)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Remove the hook."""
        if self._capture is not None:
            self._capture.detach()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._capture is not None:
            self._capture.take()                 # drop rows of forward passes outside training steps
            self._capture.active = True

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Pass the step's embeddings to the monitor; log each snapshot's scalars."""
        z = self._embeddings(outputs)
        if z is None:
            return
        labels = outputs.get(self.label_key) if self.label_key and isinstance(outputs, dict) else None
        if labels is not None and labels.shape[:1] != z.shape[:1]:
            labels = None                        # several views were captured: label-free
        snapshot = self.monitor.update(z, labels)
        if snapshot is None:
            return
        finite = {f"{self.prefix}{k}": v for k, v in snapshot["scalars"].items() if v == v}
        if finite:
            pl_module.log_dict(finite)
        failed_now = any(a["step"] == snapshot["step"] and a["verdict"] == "fail" for a in self.monitor.alerts)
        if self.stop_on_collapse and failed_now:
            trainer.should_stop = True

    def _embeddings(self, outputs: Any) -> torch.Tensor | None:
        if self._capture is not None:
            self._capture.active = False
            z = self._capture.take()
            if z is None:
                self._warn(f"GeometryCallback: module {self.module!r} produced no output during this training step "
                           "(is it used in training_step, and in training mode?); nothing is monitored.")
            return z
        if isinstance(outputs, dict) and self.key in outputs:
            return outputs[self.key]
        self._warn(f"GeometryCallback: training_step returned no {self.key!r} entry, so nothing is monitored; pass "
                   f"GeometryCallback(module='encoder') to capture a submodule's output, or return "
                   f"{{'loss': loss, {self.key!r}: z.detach()}}.")
        return None
