"""Console entry point: registers the commands and turns library errors and signals into exit codes."""

import sys

import typer

import geometry_probe as gp
from geometry_probe import _interrupts

from . import analyze as _analyze  # noqa: F401  (registers commands)
from . import extract as _extract  # noqa: F401  (registers commands)
from . import figures as _figures  # noqa: F401  (registers commands)
from . import track as _track  # noqa: F401  (registers commands)
from .app import app


def main() -> None:
    """Run ``geoprobe``: 2 with one line on stderr for bad input or usage, ``128 + signal`` when a
    signal ended it (130 for Ctrl-C, 143 for SIGTERM), with its temporary files removed.

    The process entry point: a signal that arrives after the command is over (while Python
    shuts down) ends the process at once with the same status (see :mod:`geometry_probe._interrupts`).
    """
    _interrupts.handle_signals()
    try:
        code = _run()
    finally:
        _interrupts.exit_on_late_signal()
    raise SystemExit(code)


def _run() -> int:
    """The command's exit status; the message of a failure on stderr, one line."""
    error = None
    try:
        code = app(standalone_mode=False)
    except gp.GeometryProbeError as err:
        code, error = 2, f"error: {err}"
    except (KeyboardInterrupt, _interrupts.Terminated, typer.Abort):
        code, error = 130, "interrupted"          # typer.Abort: end of input at a prompt
    except typer.Exit as err:
        code = err.exit_code
    except typer.TyperException as err:  # usage errors of typer's bundled click: message + exit 2
        err.show()
        code = getattr(err, "exit_code", 2)
    signum = _interrupts.received_signal()        # also when typer turned Ctrl-C into a return value
    if signum is not None:
        code, error = _interrupts.exit_status(signum), _interrupts.describe(signum)
    if error is not None:
        print(error, file=sys.stderr)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
