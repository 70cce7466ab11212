"""Progress bars on stderr, fed by the library's ``progress(stage, done, total)`` callbacks.

Shown only when stderr is a terminal and ``-q`` was not given: a pipe, a file or a CI log gets
nothing. One bar per stage (rows streamed, pairwise tiles, samples extracted, layers measured,
checkpoints), each with its count, rate and time left; the bars disappear when the command
finishes, leaving the results. The library calls back once per batch or tile (tens to
thousands of times a run), and a call only records a number: rich redraws once a second on
its own thread (benchmarks/bench_progress.py measures the cost).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Optional, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")
Callback = Callable[[str, int, Optional[int]], None]

UNITS = {"rows": "rows", "rows, second pass": "rows", "tiles": "tiles", "samples": "samples",
         "layers": "layers", "checkpoints": "checkpoints", "checkpoints extracted": "checkpoints"}


class RateColumn(ProgressColumn):
    """``12,345 rows/s``: the task's speed in its own unit."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "")
        return Text("" if speed is None else f"{speed:,.0f} {unit}/s", style="progress.data.speed")


class ProgressDisplay:
    """A callable ``(stage, done, total)`` that moves one rich bar per stage.

    A stage whose count goes back (the next checkpoint's rows, the next layer) restarts its bar.
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 RateColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=console, transient=True, refresh_per_second=1)
        self._tasks: dict[str, int] = {}
        self._done: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        task = self._tasks.get(stage)
        if task is None:
            task = self._tasks[stage] = self.progress.add_task(stage, total=total, unit=UNITS.get(stage, ""))
        elif done < self._done[stage]:
            self.progress.reset(task, total=total)
        self._done[stage] = done
        self.progress.update(task, completed=done, total=total)


@contextlib.contextmanager
def progress_display(*, quiet: bool, console: Console | None = None) -> Iterator[Callback | None]:
    """The callback to pass as ``progress=``, or None when nothing is to be shown (``-q``, or stderr
    not a terminal). ``console`` overrides where the bars go (the benchmark's in-memory terminal)."""
    if console is None:
        if quiet or not sys.stderr.isatty():
            yield None
            return
        console = Console(stderr=True)
    display = ProgressDisplay(console)
    with display.progress:
        yield display


def counted(items: Iterable[T], stage: str, callback: Callback | None, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` one by one, reporting ``(stage, i, total)`` once each has been produced."""
    for i, item in enumerate(items, start=1):
        if callback is not None:
            callback(stage, i, total)
        yield item
