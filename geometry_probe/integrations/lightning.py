"""PyTorch Lightning adapter: feeds a :class:`~geometry_probe.monitor.CollapseMonitor`.

``training_step`` returns a dict holding the batch embeddings under ``key`` (and optionally
labels under ``label_key``); every snapshot's scalars are logged through the module's
logger under ``prefix``, and ``stop_on_collapse`` ends training at a failed collapse finding.
"""

from __future__ import annotations

from typing import Any

from geometry_probe._optional import require
from geometry_probe.monitor import CollapseMonitor

_lightning = require("lightning.pytorch", extra="lightning", package="lightning")


class GeometryCallback(_lightning.Callback):  # type: ignore[misc,name-defined]
    """Lightning callback over a :class:`CollapseMonitor` (no logic of its own).

    Parameters
    ----------
    monitor : CollapseMonitor, optional
        Default: ``CollapseMonitor(every_n_steps=100, on_collapse="warn")``.
    key : str, default="embeddings"
    label_key : str, optional
    prefix : str, default="geometry/"
    stop_on_collapse : bool, default=False
    """

    def __init__(self, monitor: CollapseMonitor | None = None, *, key: str = "embeddings",
                 label_key: str | None = None, prefix: str = "geometry/", stop_on_collapse: bool = False) -> None:
        self.monitor = monitor or CollapseMonitor()
        self.key, self.label_key, self.prefix, self.stop_on_collapse = key, label_key, prefix, stop_on_collapse

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Pass the step's embeddings to the monitor; log each snapshot's scalars."""
        if not isinstance(outputs, dict) or self.key not in outputs:
            return
        labels = outputs.get(self.label_key) if self.label_key else None
        snapshot = self.monitor.update(outputs[self.key], labels)
        if snapshot is None:
            return
        finite = {f"{self.prefix}{k}": v for k, v in snapshot["scalars"].items() if v == v}
        if finite:
            pl_module.log_dict(finite)
        failed_now = any(a["step"] == snapshot["step"] and a["verdict"] == "fail" for a in self.monitor.alerts)
        if self.stop_on_collapse and failed_now:
            trainer.should_stop = True
