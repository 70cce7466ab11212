"""`CollapseMonitor`: watch embeddings during training and warn when collapse begins.

Each :meth:`CollapseMonitor.update` is cheap and never synchronises with the device: it adds
O(B·D) additive statistics (count, Σz, Σẑ of the L2-normalised rows, a running "all finite"
flag) and copies the batch into a fixed-size ring buffer on the same device. Every
``every_n_steps`` updates it takes a snapshot — the one host synchronisation of the window —
computes the sphere and spectral signals of the buffer (from its n×n Gram, so the cost is
independent of D's square) and judges them as :func:`~geometry_probe.diagnosis.diagnose` does,
appends the snapshot to :attr:`history`, records alerts and reacts (warn, call a hook, raise
or ask the loop to stop). Statistics are windowed: they are reset after every snapshot.

Under ``torch.distributed`` the additive statistics are summed over ranks with one
``all_reduce`` (exact: the sums of the parts are the sums of the union); the spectral and
pairwise signals use each rank's own buffer.

The monitor never crashes the training loop by itself: bad shapes, NaN/inf embeddings and
internal errors become alerts. Only ``on_collapse="raise"`` raises, and only
:class:`CollapseError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from geometry_probe.baselines import sphere_stats
from geometry_probe.diagnosis import COLLAPSE_FINDINGS, dimensional_finding, sphere_findings
from geometry_probe.exceptions import GeometryProbeError, InvalidInputError

ON_COLLAPSE = ("warn", "raise", "stop", "ignore")


class CollapseWarning(UserWarning):
    """Embeddings are collapsing during training."""


class CollapseError(GeometryProbeError, RuntimeError):
    """Raised by :class:`CollapseMonitor` with ``on_collapse="raise"``."""


class CollapseMonitor:
    """Framework-agnostic training-time collapse monitor.

    Parameters
    ----------
    every_n_steps : int, default=100
        Snapshot period in calls to :meth:`update`.
    buffer_size : int, default=256
        Most recent rows of the window kept for the snapshot's spectral and pairwise signals
        (a ring buffer, emptied at each snapshot); memory ``buffer_size * D`` floats on the
        embeddings' device.
    n_classes : int, optional
        Number of label codes, if labels are passed (kept for class-aware signals).
    thresholds : mapping, optional
        ``{finding: (warn, fail)}`` passed to :func:`~geometry_probe.diagnosis.diagnose`.
    on_collapse : {"warn", "raise", "stop", "ignore"}, default="warn"
        Reaction to a failed collapse finding or non-finite embeddings: emit a
        :class:`CollapseWarning`, raise :class:`CollapseError`, set :attr:`should_stop`, or
        only record the alert.
    hook : callable, optional
        Called as ``hook(alert)`` for every alert (a dict with step, name, verdict, message).

    Examples
    --------
    >>> import torch
    >>> monitor = CollapseMonitor(every_n_steps=5, on_collapse="ignore")
    >>> direction = torch.randn(16)
    >>> for step in range(10):
    ...     z = torch.randn(64, 16) if step < 5 else direction * torch.randn(64, 1)  # fuses onto a line
    ...     _ = monitor.update(z)
    >>> [snap["step"] for snap in monitor.history], [a["name"] for a in monitor.alerts]
    ([5, 10], ['over_fusion'])
    """

    def __init__(self, *, every_n_steps: int = 100, buffer_size: int = 256, n_classes: int | None = None,
                 thresholds: Mapping[str, tuple[float, float]] | None = None, on_collapse: str = "warn",
                 hook: Callable[[dict[str, Any]], None] | None = None) -> None:
        if on_collapse not in ON_COLLAPSE:
            raise InvalidInputError(f"on_collapse: got {on_collapse!r}; choose one of {list(ON_COLLAPSE)}.")
        if every_n_steps < 1 or buffer_size < 2:
            raise InvalidInputError("every_n_steps must be >= 1 and buffer_size >= 2.")
        self.every_n_steps, self.buffer_size, self.n_classes = every_n_steps, buffer_size, n_classes
        self.thresholds, self.on_collapse, self.hook = thresholds, on_collapse, hook
        self.history: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.should_stop = False
        self.step = 0
        self._buffer: Tensor | None = None
        self._reset_window()

    # ---- per step -------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, z: Tensor, labels: Tensor | None = None) -> dict[str, Any] | None:
        """Add one batch of embeddings (shape (batch_size, n_features)); return a snapshot
        every ``every_n_steps`` calls, else ``None``."""
        self.step += 1
        try:
            self._accumulate(z)
        except Exception as err:  # the monitor must never take the training loop down
            self._alert("monitor_error", "warn", f"could not record this batch: {err}")
        if self.step % self.every_n_steps:
            return None
        return self._snapshot()

    def _accumulate(self, z: Tensor) -> None:
        z = z.detach()
        if z.ndim != 2 or z.shape[0] == 0:
            raise InvalidInputError(f"expected embeddings of shape (batch_size, n_features), got {tuple(z.shape)}")
        z = z.to(torch.float32)
        if self._buffer is None or self._buffer.shape[1] != z.shape[1] or self._buffer.device != z.device:
            self._buffer = torch.zeros(self.buffer_size, z.shape[1], device=z.device)
            self._sums = None
            self._filled = self._cursor = 0
        inverse_norms = 1.0 / torch.linalg.vector_norm(z, dim=1).clamp_min(torch.finfo(z.dtype).tiny)   # (B,)
        batch = torch.stack([z.sum(0), z.T @ inverse_norms])             # (2, D): Σz, Σẑ without a copy of z
        finite = torch.isfinite(batch).all()                             # NaN/inf in any row reach its sums
        self._finite = finite if self._finite is None else self._finite & finite
        batch = batch.to(torch.float64)                                   # batch sums in float32, window in float64
        self._sums = batch if self._sums is None else self._sums + batch
        self._count += z.shape[0]
        rows = z[-self.buffer_size:]
        index = (torch.arange(rows.shape[0], device=z.device) + self._cursor) % self.buffer_size
        self._buffer.index_copy_(0, index, rows)
        self._cursor = (self._cursor + rows.shape[0]) % self.buffer_size
        self._filled = min(self.buffer_size, self._filled + rows.shape[0])

    # ---- every N steps ----------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = {"step": self.step, "scalars": {}, "findings": []}
        try:
            snapshot["scalars"], snapshot["findings"] = self._measure()
        except Exception as err:
            self._alert("monitor_error", "warn", f"snapshot failed: {err}")
        self.history.append(snapshot)
        for finding in snapshot["findings"]:
            if finding["name"] in COLLAPSE_FINDINGS and finding["verdict"] == "fail":
                self._alert(finding["name"], "fail", finding["explanation"], value=finding["value"])
        self._reset_window()
        return snapshot

    def _measure(self) -> tuple[dict[str, float], list[dict[str, Any]]]:
        if self._finite is None:
            return {}, []
        sums = self._sums                                                    # (2, D) float64
        count = torch.tensor([float(self._count)], dtype=torch.float64, device=sums.device)
        finite = self._finite.to(torch.float64).reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(count)
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        # the one device-to-host transfer of the window: statistics and buffer, packed
        rows = self._buffer[: self._filled].to(torch.float64)
        packed = torch.cat([finite, count, sums.flatten(), rows.flatten()]).cpu()
        D = sums.shape[1]
        finite_all, n = bool(packed[0]), float(packed[1])
        sums, rows = packed[2:2 + 2 * D].reshape(2, D), packed[2 + 2 * D:].reshape(-1, D)
        if not finite_all:
            self._alert("non_finite", "fail", "embeddings contain NaN or inf: the model has diverged "
                        "(lower the learning rate, check the loss for log(0) or division by zero).")
            return {"window/non_finite": 1.0}, []
        scalars = {"window/n_samples": n, "window/non_finite": 0.0,
                   "window/mean_norm_of_mean": float(torch.linalg.vector_norm(sums[0]) / n),
                   "window/mean_cosine": _mean_cosine(sums[1], n)}
        rows = rows[torch.linalg.vector_norm(rows, dim=1) > 0]
        if rows.shape[0] < 2:
            return scalars, []
        measured = sphere_stats(rows)
        scalars.update({f"buffer/{k}": v for k, v in measured.items()})
        findings = sphere_findings(measured, *rows.shape, self.thresholds)
        findings.append(dimensional_finding(measured["effective_rank"], *rows.shape,
                                            n_classes=self.n_classes or 0, limits=self.thresholds))
        return scalars, findings

    def _reset_window(self) -> None:
        self._sums: Tensor | None = None
        self._finite: Tensor | None = None
        self._count = self._filled = self._cursor = 0

    def _alert(self, name: str, verdict: str, message: str, value: float = math.nan) -> None:
        alert = {"step": self.step, "name": name, "verdict": verdict, "value": value, "message": message}
        self.alerts.append(alert)
        if self.hook is not None:
            try:
                self.hook(alert)
            except Exception as err:  # a user hook must not take training down either
                warnings.warn(f"collapse monitor hook failed: {err}", RuntimeWarning, stacklevel=3)
        if verdict != "fail":
            return
        if self.on_collapse == "warn":
            warnings.warn(f"step {self.step}: {name}: {message}", CollapseWarning, stacklevel=4)
        elif self.on_collapse == "stop":
            self.should_stop = True
        elif self.on_collapse == "raise":
            raise CollapseError(f"step {self.step}: {name}: {message}")

    @property
    def additive_state(self) -> tuple[Tensor | None, int]:
        """``(Σ [z; ẑ] of shape (2, D), count)`` of the current window (for inspection and tests)."""
        return self._sums, self._count


def _mean_cosine(unit_sum: Tensor, n: float) -> float:
    r"""Exact mean pairwise cosine over a window: :math:`(\lVert\sum\hat z\rVert^2 - n)/(n(n-1))`."""
    if n < 2:
        return math.nan
    return float((unit_sum.dot(unit_sum) - n) / (n * (n - 1)))
