"""Signals for the command line: SIGINT, SIGTERM and SIGHUP end a command cleanly, and are never lost.

:func:`handle_signals` (called by ``geoprobe``'s entry point) makes each of these signals raise
an exception in the main thread: :class:`KeyboardInterrupt` for SIGINT, :class:`Terminated` for
SIGTERM and SIGHUP. The exception unwinds the command like any error, so every atomic output
(:mod:`geometry_probe._atomic`) removes its temporary file and leaves the previous file in place.

Creating a temporary file and recording its name, and removing it again, must not be cut in
half by that exception (a signal in between would leave a file nobody removes): inside
:func:`deferred` a signal is held back until the block ends.

An interruption raised where Python cannot propagate it — a ``__del__`` method, a weakref or
garbage-collector callback — would be printed as "Exception ignored" and lost; the
:func:`sys.unraisablehook` installed here delivers the signal again instead, so it ends the
command at the next line of ordinary code. Once the command is over, :func:`exit_on_late_signal`
makes a signal that arrives while the interpreter shuts down (torch and matplotlib run Python
code at exit) end the process at once with the same status, instead of being printed and ignored
(after Python has put the default handlers back, in its last moments, the signal itself ends the
process: a shell reports the same status).

The exit status of an interrupted command is ``128 + signal number``: 130 for Ctrl-C, 143 for
SIGTERM, 129 for SIGHUP.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

_NAMES = {"SIGINT": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hung up"}    # SIGHUP: POSIX only
HANDLED = tuple(getattr(signal, name) for name in _NAMES if hasattr(signal, name))
REDELIVERY_S = 0.01


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM or SIGHUP once :func:`handle_signals` has run.

    A ``BaseException`` like :class:`KeyboardInterrupt`, so ``except Exception`` does not stop it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    """What the handler has seen: the first signal, and one held back by :func:`deferred`."""

    depth = 0
    pending: int | None = None
    received: int | None = None


def received_signal() -> int | None:
    """The first SIGINT, SIGTERM or SIGHUP received since :func:`handle_signals`, or None."""
    return _State.received


def exit_status(signum: int) -> int:
    """The shell's status for a command ended by ``signum``: ``128 + signum`` (130 for Ctrl-C)."""
    return 128 + signum


def describe(signum: int) -> str:
    """One word for the message printed when ``signum`` ended the command."""
    name = signal.Signals(signum).name
    return _NAMES.get(name, name)


def interruption(signum: int) -> BaseException:
    """The exception a signal raises: KeyboardInterrupt for SIGINT, :class:`Terminated` otherwise."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def is_interruption(err: BaseException) -> bool:
    """Whether ``err`` is what a handled signal raises."""
    return isinstance(err, (KeyboardInterrupt, Terminated))


def handle_signals() -> None:
    """Install the raising handlers and the unraisable hook.

    Only in the main thread (elsewhere Python cannot set handlers, and signals keep their
    handlers). Also ignores SIGXFSZ, so a write beyond ``ulimit -f`` fails with EFBIG (reported as one
    line, the previous file kept) instead of killing the process with a core dump.
    """
    _State.depth, _State.pending, _State.received = 0, None, None
    if threading.current_thread() is not threading.main_thread():
        return                                  # only the main thread may set handlers
    for signum in HANDLED:
        signal.signal(signum, _raise_on_signal)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if not hasattr(sys.unraisablehook, "wrapped"):
        sys.unraisablehook = _deliver_again(sys.unraisablehook)


def exit_on_late_signal() -> None:
    """From now on a handled signal flushes the standard streams and ends the process with its status.

    For the end of a command: its outputs are complete, and Python code still runs while the
    interpreter shuts down, where a raised KeyboardInterrupt would be printed and ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        signal.signal(signum, _exit_now)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold back handled signals inside the block; raise the first one held at its end.

    Only the handlers of :func:`handle_signals` hold signals back; without them (the library used
    from Python) the block runs under whatever handlers are installed.
    """
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if not _State.depth and _State.pending is not None:
            signum, _State.pending = _State.pending, None
            raise interruption(signum)


def _raise_on_signal(signum: int, frame: FrameType | None) -> None:
    """Record the signal; raise its exception now, or at the end of the :func:`deferred` block."""
    if _State.received is None:
        _State.received = signum
    if _State.depth:
        _State.pending = _State.pending or signum
        return
    raise interruption(signum)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    """Flush what was printed, say why, and end the process with ``128 + signum``."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        print(describe(signum), file=sys.stderr, flush=True)
    os._exit(exit_status(signum))


def _deliver_again(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """An unraisable hook that re-sends a swallowed interruption to the main thread and passes
    every other unraisable exception to ``hook``."""

    def unraisable(info: Any) -> None:
        if not (is_interruption(info.exc_value) and _State.received is not None):
            hook(info)
            return
        _State.depth += 1                 # a signal now is held back, not raised (and lost) inside this hook
        try:
            _deliver_later(_State.received)
        finally:
            _State.depth -= 1
            if _State.pending is not None:
                _deliver_later(_State.pending)
                _State.pending = None

    unraisable.wrapped = hook  # type: ignore[attr-defined]
    return unraisable


def _deliver_later(signum: int) -> None:
    """Deliver ``signum`` to the main thread again :data:`REDELIVERY_S` seconds from now, from a
    timer thread: after the unraisable hook has returned, in ordinary code."""
    timer = threading.Timer(REDELIVERY_S, _thread.interrupt_main, (signum,))
    timer.daemon = True
    timer.start()
