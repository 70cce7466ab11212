"""Console entry point: registers the commands and turns library errors and signals into exit codes.

Only the standard library and :mod:`geometry_probe._interrupts` load before :func:`main` installs
the signal handlers (``import geometry_probe`` is lazy); the commands, and with them torch, are
imported after, so a Ctrl-C or SIGTERM during the first seconds of start-up ends the command with
its one line and status like any later one.
"""

import sys

from geometry_probe import _interrupts


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
    if _asks_version(sys.argv[1:]):
        from geometry_probe import __version__

        print(f"geoprobe {__version__}")
        return 0
    error = None
    try:
        import typer

        import geometry_probe as gp

        app = _application()
    except (KeyboardInterrupt, _interrupts.Terminated):
        return _interrupted()
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
    if _interrupts.received_signal() is not None:       # also when typer turned Ctrl-C into a return value
        return _interrupted()
    if error is not None:
        print(error, file=sys.stderr)
    return code if isinstance(code, int) else 0


def _asks_version(args: list[str]) -> bool:
    """``--version`` anywhere before a ``--`` (``geoprobe --version``, ``geoprobe analyze --version``):
    answered before typer and the commands are imported."""
    options = args[:args.index("--")] if "--" in args else args
    return "--version" in options


def _interrupted() -> int:
    """Report the signal that ended the command (one line) and return ``128 + signal``."""
    signum = _interrupts.received_signal()
    signum = signum if signum is not None else 2          # a KeyboardInterrupt raised without our handler
    print(_interrupts.describe(signum), file=sys.stderr)
    return _interrupts.exit_status(signum)


def _application() -> "typer.Typer":  # noqa: F821  (typer is imported lazily)
    """The typer application with every command registered; the commands import torch only when they
    run, so ``--help`` does not wait for it."""
    from . import analyze, compare, extract, figures, temperature, track  # noqa: F401  (registers commands)
    from .app import app

    return app


def __getattr__(name: str) -> object:
    """``app``: the registered application, for the docs' CLI reference and in-process tests."""
    if name == "app":
        return _application()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
