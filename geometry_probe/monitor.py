r"""`CollapseMonitor`: watch embeddings during training and warn when collapse begins.

A plain :meth:`CollapseMonitor.update` launches no tensor operation: it keeps a reference
to the (detached) batch in a pending list, a few microseconds of Python. The additive
statistics of the window are folded in for all pending batches at once — one concatenation
and one GEMM, :math:`[\mathbf 1, \lVert z\rVert^{-1}, \lVert z\rVert^{-1} Y]^\top Z`, giving
:math:`\sum z`, :math:`\sum \hat z` and the per-class :math:`\sum \hat z` in float64 — when the
pending batches exceed ``max_pending_bytes`` or at the snapshot; the most recent rows go to a
fixed-size ring buffer on the same device. Batches on an accelerator are folded in torch
(kernel launches only); CPU batches in NumPy on zero-copy views, whose per-operation cost on
these small matrices is a fraction of PyTorch's dispatch (a snapshot of one 256 x 128 batch:
0.31 ms instead of 0.87 ms). Every ``every_n_steps`` updates a snapshot — the one host
synchronisation of the window, after which its arithmetic runs in NumPy on the host —
computes the sphere and spectral signals of the buffer and judges them as
:func:`~geometry_probe.diagnosis.diagnose` does, appends the snapshot to :attr:`history`,
records alerts and reacts (warn, call a hook, raise or ask the loop to stop).
Statistics are windowed: they are reset after every snapshot.

Overhead budget: the monitor times its own work and the time the training loop spends between
two calls with :func:`time.perf_counter` (no device synchronisation: on an accelerator this is
the host-side launch cost). After each snapshot it plans the next window so that its work stays
within ``overhead_budget`` :math:`b` (default 1%) of the loop's time: it plans for
:math:`A = 0.8\,b\,t_{step}\,N` for a window of N steps (headroom for costs that vary from
window to window, and for the loop's own steps running slower just after the monitor's work
has taken their caches, which the monitor cannot time), :math:`t_{step}` being the median
interval between two calls (an evaluation pass or a checkpoint between two steps does not
count). Each cost, and the loop's time, is the median of its last three measurements (one
preempted window does not move the plan). The snapshot's buffer
rows are halved (down to 32) while a snapshot costs more than :math:`A/2` and doubled back while
it costs under :math:`A/8`; the statistics then cover every ``stride``-th batch, counted back
from the snapshot step (the last batch before a snapshot is always seen), with
:math:`\text{stride} = \lceil c_{batch} N / (A - c_{snapshot})\rceil` clipped to [1, N]. The
windowed statistics are exact for the rows they cover (``window/n_samples`` says how many);
``monitor/overhead`` reports the measured share. ``overhead_budget=None`` covers every batch and
every buffer row. A NaN confined to one batch the stride skips is not seen; a diverged model
keeps producing NaN and is caught at the next covered batch.

Under ``torch.distributed`` the additive statistics (including the non-finite count) are summed
over ranks with one ``all_reduce`` (exact: the sums of the parts are the sums of the union);
the spectral and pairwise signals use each rank's own buffer. Every rank must take at least
one batch per window, as ``all_reduce`` is collective.

The monitor never crashes the training loop by itself: bad shapes, NaN/inf embeddings and
internal errors become alerts. A batch whose width differs from the window's rows (the model
changed mid-window) restarts the window with a ``width_change`` alert naming both widths and
the step, and a ``RuntimeWarning`` unless ``on_collapse="ignore"``; the snapshot then covers
the new width only. Only ``on_collapse="raise"`` raises, and only
:class:`CollapseError`. A collapse finding that failed opens an *episode* (:attr:`episodes`);
the first later snapshot where that finding reads ``ok`` again closes it and records a
``recovered`` alert.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geometry_probe.baselines import sphere_stats
from geometry_probe.diagnosis import COLLAPSE_FINDINGS, HIGHER_IS_WORSE, dimensional_finding, sphere_findings
from geometry_probe._threads import one_blas_thread
from geometry_probe.exceptions import GeometryProbeError, InvalidInputError
from geometry_probe.functional.class_geometry import etf_error, orthogonal_frame_error

ON_COLLAPSE = ("warn", "raise", "stop", "ignore")
NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)
HOST_CHUNK_BYTES = 2**20
TINY = np.finfo(np.float64).tiny
MIN_SNAPSHOT_ROWS = 32
PLANNED_SHARE = 0.8          # the overhead budget's share the monitor plans a window for


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
        (a ring buffer, emptied at each snapshot); memory ``buffer_size * D`` float64 on the
        embeddings' device.
    n_classes : int, optional
        Number of label codes ``0 .. n_classes - 1``. With labels passed to :meth:`update`, the
        window keeps per-class counts and sums of the unit rows, and snapshots report the
        class means' distances to an orthogonal frame and (centred) to a simplex ETF. Labels
        outside that range are left out of the class statistics.
    thresholds : mapping, optional
        ``{finding: (warn, fail)}`` passed to :func:`~geometry_probe.diagnosis.diagnose`.
    on_collapse : {"warn", "raise", "stop", "ignore"}, default="warn"
        Reaction to a failed collapse finding or non-finite embeddings: emit a
        :class:`CollapseWarning`, raise :class:`CollapseError`, set :attr:`should_stop`, or
        only record the alert.
    hook : callable, optional
        Called as ``hook(alert)`` for every alert (a dict with step, name, verdict, value, message).
    overhead_budget : float or None, default=0.01
        Fraction of the training loop's wall time the monitor may spend (module docstring);
        ``None`` disables the adaptation (every batch, all buffer rows). A window costs at least
        one batch and a 32-row snapshot (at D = 128 on a CPU core: 0.35 ms timed alone, about
        0.9 ms inside a training loop, whose work evicts the monitor's code and data from the
        caches between snapshots), so very fast steps with a short ``every_n_steps`` exceed it;
        ``monitor/overhead`` reports the share, and a ``RuntimeWarning`` (once) names the
        ``every_n_steps`` that would fit.
    max_pending_bytes : int, default=32 MiB
        Pending batches are folded into the statistics once they hold more than this.

    Attributes
    ----------
    history : list of dict
        One snapshot per ``every_n_steps`` updates: ``{"step", "scalars", "findings"}``.
    alerts : list of dict
        ``{"step", "name", "verdict", "value", "message"}``; ``recovered`` alerts add ``finding``.
    episodes : list of dict
        ``{"name", "onset_step", "cleared_step", "worst"}`` per failed collapse finding;
        ``cleared_step`` is ``None`` while it lasts.
    stride, snapshot_rows : int
        The current sampling stride and number of buffer rows in a snapshot.

    Examples
    --------
    >>> import torch
    >>> monitor = CollapseMonitor(every_n_steps=5, on_collapse="ignore")
    >>> direction = torch.randn(16)
    >>> for step in range(15):
    ...     z = direction * torch.randn(64, 1) if 5 <= step < 10 else torch.randn(64, 16)  # fuses onto a line
    ...     _ = monitor.update(z)
    >>> [snap["step"] for snap in monitor.history], [a["name"] for a in monitor.alerts]  # an exact line: nothing off it
    ([5, 10, 15], ['over_fusion', 'information_loss', 'recovered', 'recovered'])
    >>> monitor.episodes[0]["onset_step"], monitor.episodes[0]["cleared_step"]
    (10, 15)
    """

    def __init__(self, *, every_n_steps: int = 100, buffer_size: int = 256, n_classes: int | None = None,
                 thresholds: Mapping[str, tuple[float, float]] | None = None, on_collapse: str = "warn",
                 hook: Callable[[dict[str, Any]], None] | None = None, overhead_budget: float | None = 0.01,
                 max_pending_bytes: int = 32 * 2**20) -> None:
        if on_collapse not in ON_COLLAPSE:
            raise InvalidInputError(f"on_collapse: got {on_collapse!r}; choose one of {list(ON_COLLAPSE)}.")
        if every_n_steps < 1 or buffer_size < 2:
            raise InvalidInputError("every_n_steps must be >= 1 and buffer_size >= 2.")
        if overhead_budget is not None and not overhead_budget > 0:
            raise InvalidInputError(f"overhead_budget must be > 0 or None, got {overhead_budget!r}.")
        self.every_n_steps, self.buffer_size, self.n_classes = every_n_steps, buffer_size, n_classes or 0
        self.thresholds, self.on_collapse, self.hook = thresholds, on_collapse, hook
        self.overhead_budget, self.max_pending_bytes = overhead_budget, max_pending_bytes
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated: the window, the history, the alerts and episodes, the step
        count, ``should_stop`` and the overhead adaptation (as :class:`torchmetrics.Metric.reset`).
        The settings given to the constructor are kept."""
        self.history: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []
        self.should_stop = False
        self.step = 0
        self.stride, self.snapshot_rows = 1, self.buffer_size
        self._buffer: Tensor | None = None
        self._open: dict[str, dict[str, Any]] = {}
        self._recent: dict[Any, deque[float]] = {}
        self._floor_warned = False
        self._last_return: float | None = None
        self._reset_window()

    def compute(self) -> dict[str, Any]:
        """The metrics and findings now, without side effects (as :class:`torchmetrics.Metric.compute`).

        Measures the rows added since the last snapshot (the current window) with the same
        statistics as a snapshot; when the window holds no rows yet (right after a snapshot or
        :meth:`reset`), returns a copy of the last snapshot, or no scalars and no findings
        before the first update. Nothing is recorded: no snapshot in :attr:`history`, no alert,
        no warning or exception from ``on_collapse``, the window and its timing untouched (the
        pending batches are summed into the window early, which changes none of its values; a
        batch modified in place after :meth:`update` is reported then rather than at the snapshot).
        Under ``torch.distributed`` it is a collective call, like a snapshot: call it on every rank.

        Returns
        -------
        dict
            ``{"step", "scalars", "findings"}``, like a snapshot.
        """
        if self._pending:
            self._fold()
        if self._state is None:
            last = self.history[-1] if self.history else {"step": self.step, "scalars": {}, "findings": []}
            return copy.deepcopy(last)
        state = self._state.clone() if isinstance(self._state, Tensor) else self._state.copy()
        scalars, findings = self._measure(state)
        return {"step": self.step, "scalars": scalars, "findings": findings}

    # ---- per step -------------------------------------------------------------------------
    def update(self, z: Tensor, labels: Tensor | None = None) -> dict[str, Any] | None:
        """Add one batch of embeddings (shape (batch_size, n_features)) and optional integer
        labels (shape (batch_size,)); return a snapshot every ``every_n_steps`` calls, else ``None``.

        The monitor keeps a reference to ``z`` until the next fold: a batch modified in place
        before then is left out of the statistics with a ``monitor_error`` alert.
        """
        start = time.perf_counter()
        if self._last_return is not None:
            self._intervals.append(start - self._last_return)
        self.step += 1
        until_snapshot = -self.step % self.every_n_steps
        if until_snapshot % self.stride == 0:
            try:
                self._stage(z, labels)
            except Exception as err:  # the monitor must never take the training loop down
                self._alert("monitor_error", "warn", f"could not record this batch: {err}")
        if until_snapshot:
            self._last_return = time.perf_counter()
            self._own_time += self._last_return - start
            return None
        return self._snapshot(start)

    def _stage(self, z: Tensor, labels: Tensor | None) -> None:
        z = z.detach()
        if z.ndim != 2 or z.shape[0] == 0:
            raise InvalidInputError(f"expected embeddings of shape (batch_size, n_features), got {tuple(z.shape)}")
        if labels is not None:
            labels = torch.as_tensor(labels).detach()
            if labels.shape != z.shape[:1]:
                raise InvalidInputError(f"labels: expected shape ({z.shape[0]},), got {tuple(labels.shape)}")
        width = self._window_width()
        if width is not None and z.shape[1] != width:
            self._restart_window(width, z.shape[1])
        if self._pending and z.device != self._pending[0][0].device:
            self._fold()
        self._pending.append((z, labels, z._version))
        self._sampled += 1
        self._pending_bytes += z.numel() * z.element_size()
        if self._pending_bytes > self.max_pending_bytes:
            self._fold()

    def _window_width(self) -> int | None:
        """The embedding width of the current window's rows, None while it holds none."""
        if self._pending:
            return self._pending[0][0].shape[1]
        return None if self._state is None else self._buffer.shape[1]

    def _restart_window(self, old: int, new: int) -> None:
        """Drop the window's rows of width ``old`` (their sums cannot be added to rows of width
        ``new``), record a ``width_change`` alert and, unless ``on_collapse="ignore"``, warn."""
        self._pending, self._pending_bytes = [], 0
        self._reset_statistics()
        message = (f"embedding width changed from {old} to {new} at step {self.step}; the window restarts "
                   f"here (its earlier rows are dropped), so the next snapshot covers width {new} only.")
        self._alert("width_change", "warn", message, value=float(new), previous_width=old)
        if self.on_collapse != "ignore":
            warnings.warn(f"CollapseMonitor: {message}", RuntimeWarning, stacklevel=4)

    @one_blas_thread()
    def _fold(self) -> None:
        """Add the pending batches to the window: one concatenation, one GEMM, one ring-buffer copy
        (on CPU, per chunk of about ``HOST_CHUNK_BYTES`` float64 rows)."""
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        kept = [(z, y) for z, y, version in pending if z._version == version]
        if len(kept) < len(pending):
            self._alert("monitor_error", "warn", f"{len(pending) - len(kept)} batch(es) were modified in place "
                        "after update() and are left out; pass a copy (z.detach().clone()) if you reuse the tensor.")
        if not kept:
            return
        if _runs_on_host(kept[0][0]):
            for chunk in _host_chunks(kept):
                self._add(*_host_sums(chunk, self.n_classes))
        else:
            self._add(*_device_sums(kept, self.n_classes))

    def _add(self, state: Tensor | np.ndarray, Z: Tensor | np.ndarray) -> None:
        """Add the additive state of rows ``Z`` to the window and write its last rows to the ring buffer."""
        if not _same_kind(self._buffer, Z):
            self._buffer = _zeros_like(Z, self.buffer_size)
            self._reset_statistics()                           # sums of another width cannot be added
        self._state = state if self._state is None else self._state + state
        self._count += Z.shape[0]
        rows = Z[-self.buffer_size:]
        head = min(rows.shape[0], self.buffer_size - self._cursor)      # ring write: up to the end, then wrap
        self._buffer[self._cursor:self._cursor + head] = rows[:head]
        self._buffer[:rows.shape[0] - head] = rows[head:]
        self._cursor = (self._cursor + rows.shape[0]) % self.buffer_size
        self._filled = min(self.buffer_size, self._filled + rows.shape[0])

    # ---- every N steps ----------------------------------------------------------------------
    def _snapshot(self, start: float) -> dict[str, Any]:
        snapshot: dict[str, Any] = {"step": self.step, "scalars": {}, "findings": []}
        folded = time.perf_counter()
        try:
            self._fold()
            folded = time.perf_counter()
            snapshot["scalars"], snapshot["findings"] = self._measure()
        except Exception as err:
            self._alert("monitor_error", "warn", f"snapshot failed: {err}")
        self.history.append(snapshot)
        measured = time.perf_counter()
        own, snapshot_cost = self._own_time + measured - start, measured - folded
        loop_time = statistics.median(self._intervals) * self.every_n_steps if self._intervals else 0.0
        if loop_time > 0:
            snapshot["scalars"].update({"monitor/overhead": own / loop_time, "monitor/stride": self.stride})
        self._adapt(statistics_cost=own - snapshot_cost, snapshot_cost=snapshot_cost, loop_time=loop_time)
        self._reset_window()
        try:
            self._judge(snapshot)
        finally:
            self._last_return = time.perf_counter()
        return snapshot

    @one_blas_thread()
    def _measure(self, state: Tensor | np.ndarray | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Scalars and findings of the window whose additive state is ``state`` (default: the
        window's own, which a distributed all-reduce overwrites in place)."""
        if self._state is None:
            return {}, []
        C, D = self.n_classes, self._buffer.shape[1]
        state = self._state if state is None else state   # [count, non-finite flags, class counts, sums], additive
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(torch.as_tensor(state))          # in place (a NumPy state is shared)
        rows = self._buffer[: self._filled]
        if rows.shape[0] > self.snapshot_rows:
            rows = rows[:: math.ceil(rows.shape[0] / self.snapshot_rows)]
        if isinstance(state, Tensor):      # the one device-to-host transfer of the window
            packed = torch.cat([state, rows.flatten()]).cpu().numpy()
            state, rows = packed[:state.numel()], packed[state.numel():].reshape(-1, D)
        n, non_finite, class_counts = float(state[0]), float(state[1]), state[2:2 + C]
        sums = state[2 + C:].reshape(2 + C, D)
        if non_finite:
            return {"window/non_finite": 1.0}, []
        scalars = {"window/n_samples": n, "window/non_finite": 0.0,
                   "window/mean_norm_of_mean": math.sqrt(sums[0] @ sums[0]) / n,
                   "window/mean_cosine": _mean_cosine(sums[1], n)}
        if C:
            scalars.update(_class_scalars(sums[2:], class_counts))
        rows = rows[np.einsum("ij,ij->i", rows, rows) > 0]
        if rows.shape[0] < 2:
            return scalars, []
        measured = sphere_stats(rows)
        scalars.update({f"buffer/{k}": v for k, v in measured.items()})
        scalars["buffer/n_rows"] = float(rows.shape[0])
        findings = sphere_findings(measured, *rows.shape, self.thresholds)
        findings.append(dimensional_finding(measured["effective_rank"], *rows.shape,
                                            n_classes=self.n_classes, limits=self.thresholds))
        return scalars, findings

    def _adapt(self, *, statistics_cost: float, snapshot_cost: float, loop_time: float) -> None:
        """Choose the next window's buffer rows and stride from the medians of the last three
        costs, for :data:`PLANNED_SHARE` of the budget (module docstring); warn once when even
        one batch and a 32-row snapshot exceed the whole budget."""
        if self.overhead_budget is None or loop_time <= 0 or not self._sampled:
            return
        for key, value in ((("snapshot", self.snapshot_rows), snapshot_cost),
                           ("batch", statistics_cost / self._sampled), ("loop", loop_time)):
            self._recent.setdefault(key, deque(maxlen=3)).append(value)
        allowed = self.overhead_budget * statistics.median(self._recent["loop"])
        planned = PLANNED_SHARE * allowed
        measured_rows, recent_snapshots = self.snapshot_rows, self._recent[("snapshot", self.snapshot_rows)]
        snapshot = statistics.median(recent_snapshots)
        if snapshot > planned / 2:
            self.snapshot_rows = max(MIN_SNAPSHOT_ROWS, self.snapshot_rows // 2)
        elif snapshot < planned / 8:
            self.snapshot_rows = min(self.buffer_size, 2 * self.snapshot_rows)
        available = planned - snapshot
        per_batch = statistics.median(self._recent["batch"])
        floor = snapshot + per_batch                    # the least a window can cost: one batch, a snapshot
        settled = measured_rows == MIN_SNAPSHOT_ROWS and len(recent_snapshots) == 3     # not one noisy window
        if settled and floor > allowed and not self._floor_warned:
            self._floor_warned = True
            enough = math.ceil(self.every_n_steps * floor / planned)
            warnings.warn(f"CollapseMonitor: one batch and a {MIN_SNAPSHOT_ROWS}-row snapshot cost "
                          f"{floor * 1e3:.2f} ms, {floor / allowed * self.overhead_budget:.1%} of a "
                          f"{self.every_n_steps}-step window, above the {self.overhead_budget * 100:g}% "
                          f"overhead budget; every_n_steps >= {enough} keeps the monitor within it.", RuntimeWarning,
                          stacklevel=4)
        wanted = math.ceil(per_batch * self.every_n_steps / available) if available > 0 else self.every_n_steps
        self.stride = min(self.every_n_steps, max(1, wanted))

    def _judge(self, snapshot: dict[str, Any]) -> None:
        """Alerts for non-finite embeddings and failed collapse findings; open and close episodes."""
        if snapshot["scalars"].get("window/non_finite") == 1.0:
            self._alert("non_finite", "fail", "embeddings contain NaN or inf: the model has diverged "
                        "(lower the learning rate, check the loss for log(0) or division by zero).")
        verdicts = {f["name"]: f for f in snapshot["findings"] if f["name"] in COLLAPSE_FINDINGS}
        for name, finding in verdicts.items():
            episode = self._open.get(name)
            if episode is not None and finding["verdict"] == "ok":
                episode["cleared_step"] = self.step
                del self._open[name]
                self._alert("recovered", "ok", f"{name} cleared: {finding['explanation']}", value=finding["value"],
                            finding=name)
            elif finding["verdict"] == "fail":
                if episode is None:
                    episode = {"name": name, "onset_step": self.step, "cleared_step": None, "worst": finding["value"]}
                    self._open[name] = episode
                    self.episodes.append(episode)
                worse = max if name in HIGHER_IS_WORSE else min
                episode["worst"] = worse(episode["worst"], finding["value"])
                self._alert(name, "fail", finding["explanation"], value=finding["value"])

    def _reset_window(self) -> None:
        self._pending: list[tuple[Tensor, Tensor | None, int]] = []
        self._pending_bytes = self._sampled = 0
        self._intervals: list[float] = []
        self._own_time = 0.0
        self._reset_statistics()

    def _reset_statistics(self) -> None:
        self._state: Tensor | None = None
        self._count = self._filled = self._cursor = 0

    def _alert(self, name: str, verdict: str, message: str, value: float = math.nan, **extra: Any) -> None:
        alert = {"step": self.step, "name": name, "verdict": verdict, "value": value, "message": message, **extra}
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
        """``(Σ [z; ẑ] of shape (2, D), count)`` of the folded part of the current window."""
        if self._state is None:
            return None, self._count
        C = self.n_classes
        return torch.as_tensor(self._state[2 + C:]).reshape(2 + C, -1)[:2], self._count


def _runs_on_host(z: Tensor) -> bool:
    """CPU batches are folded in NumPy on zero-copy views: on a window's small matrices NumPy's
    per-operation cost is a few microseconds against PyTorch's ~10 (a 256 x 128 batch folds in
    0.04 ms instead of 0.24 ms). Accelerator batches are folded in torch, with no host sync."""
    return z.device.type == "cpu"


def _host_chunks(kept: list[tuple[Tensor, Tensor | None]]) -> list[list[tuple[Tensor, Tensor | None]]]:
    """Consecutive groups of batches holding at most ``HOST_CHUNK_BYTES`` of float64 rows (a
    larger batch alone). Folding a chunk at a time keeps the float64 copy in cache and out of
    fresh pages: 25 batches of 256 x 768 folded at once (38 MiB of float64, above glibc's
    largest mmap threshold of 32 MiB, so mapped and faulted in afresh every time) cost 1.4 ms
    per batch inside a training loop, 0.17 ms in 1 MiB chunks."""
    chunks: list[list[tuple[Tensor, Tensor | None]]] = [[]]
    size = 0
    for batch in kept:
        nbytes = batch[0].numel() * 8
        if chunks[-1] and size + nbytes > HOST_CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(batch)
        size += nbytes
    return chunks


def _host_sums(kept: list[tuple[Tensor, Tensor | None]], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_device_sums` for CPU batches, in NumPy."""
    Z = np.concatenate([z.numpy() if z.dtype in NUMPY_FLOATS else z.to(torch.float64).numpy() for z, _ in kept],
                       dtype=np.float64)
    n, D = Z.shape
    weights = np.empty((n, 2 + n_classes))
    weights[:, 0] = 1.0
    weights[:, 1] = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", Z, Z)), TINY)
    state = np.empty(2 + n_classes + (2 + n_classes) * D)         # [count, non-finite, class counts, sums]
    if n_classes:
        codes = np.concatenate([np.full(len(z), -1) if y is None else y.numpy() if y.device.type == "cpu"
                                else y.cpu().numpy() for z, y in kept])
        one_hot = codes[:, None] == np.arange(n_classes)
        np.multiply(one_hot, weights[:, 1:2], out=weights[:, 2:])
        state[2:2 + n_classes] = one_hot.sum(0)
    sums = np.matmul(weights.T, Z, out=state[2 + n_classes:].reshape(2 + n_classes, D))  # Σz, Σẑ, per-class Σẑ
    state[0], state[1] = n, not np.isfinite(sums[:2]).all()
    return state, Z


@torch.no_grad()
def _device_sums(kept: list[tuple[Tensor, Tensor | None]], n_classes: int) -> tuple[Tensor, Tensor]:
    r"""Additive state ``[count, non-finite flag, class counts, Σz, Σẑ, per-class Σẑ]`` of the
    batches and their rows in float64, from one GEMM :math:`[\mathbf 1, \lVert z\rVert^{-1},
    \lVert z\rVert^{-1} Y]^\top Z`; launches kernels only (no host sync)."""
    Z = torch.cat([z for z, _ in kept]).to(torch.float64)                       # (n, D)
    inverse_norms = 1.0 / torch.linalg.vector_norm(Z, dim=1, keepdim=True).clamp_min(torch.finfo(Z.dtype).tiny)
    weights = [torch.ones_like(inverse_norms), inverse_norms]
    class_counts = Z.new_zeros(0)
    if n_classes:
        codes = torch.cat([y.to(Z.device) if y is not None else torch.full((len(z),), -1, device=Z.device)
                           for z, y in kept])
        one_hot = (codes[:, None] == torch.arange(n_classes, device=Z.device)).to(torch.float64)
        weights.append(one_hot * inverse_norms)
        class_counts = one_hot.sum(0)
    sums = torch.cat(weights, dim=1).T @ Z
    non_finite = (~torch.isfinite(sums[:2]).all()).to(torch.float64).reshape(1)
    count = Z.new_full((1,), float(Z.shape[0]))        # a fill kernel, no host-to-device copy
    return torch.cat([count, non_finite, class_counts, sums.flatten()]), Z


def _same_kind(buffer: Tensor | np.ndarray | None, Z: Tensor | np.ndarray) -> bool:
    """Whether the ring buffer can take rows ``Z``: same width, same array library and device."""
    return (buffer is not None and type(buffer) is type(Z) and buffer.shape[1] == Z.shape[1]
            and getattr(buffer, "device", None) == getattr(Z, "device", None))


def _zeros_like(Z: Tensor | np.ndarray, n_rows: int) -> Tensor | np.ndarray:
    return Z.new_zeros(n_rows, Z.shape[1]) if isinstance(Z, Tensor) else np.zeros((n_rows, Z.shape[1]))


def _mean_cosine(unit_sum: np.ndarray, n: float) -> float:
    r"""Exact mean pairwise cosine over a window: :math:`(\lVert\sum\hat z\rVert^2 - n)/(n(n-1))`."""
    if n < 2:
        return math.nan
    return float((unit_sum.dot(unit_sum) - n) / (n * (n - 1)))


def _class_scalars(class_unit_sums: np.ndarray, class_counts: np.ndarray) -> dict[str, float]:
    r"""Class-mean geometry of the window's unit rows (metrics-reference §4.4, §4.7, §5.3).

    With :math:`\mu_c = \frac{1}{n_c}\sum_{y_i=c}\hat z_i` over the classes seen and
    :math:`\mu_G = \sum_c n_c\mu_c / \sum_c n_c`: ``window/class_of_distance`` is
    :math:`\Delta_{OF}(M) = \lVert G/\lVert G\rVert_F - I/\sqrt{C}\rVert_F` of the uncentred means,
    ``window/class_etf_distance`` the simplex-ETF error of the centred means :math:`\mu_c - \mu_G`.
    """
    seen = class_counts > 0
    counts = class_counts[seen]
    if counts.size < 2:
        return {"window/n_classes_seen": float(counts.size)}
    means = class_unit_sums[seen] / counts[:, None]
    centre = (counts[:, None] * means).sum(0) / counts.sum()
    return {"window/n_classes_seen": float(counts.size), "window/class_of_distance": orthogonal_frame_error(means),
            "window/class_etf_distance": etf_error(means - centre[None, :])}

