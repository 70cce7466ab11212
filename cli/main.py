"""Console entry point: registers the commands and turns library errors into exit codes."""

import sys

import typer

import geometry_probe as gp

from . import analyze as _analyze  # noqa: F401  (registers commands)
from . import extract as _extract  # noqa: F401  (registers commands)
from . import figures as _figures  # noqa: F401  (registers commands)
from . import track as _track  # noqa: F401  (registers commands)
from .app import app


def main() -> None:
    """Run ``geoprobe``: 2 with one line on stderr for bad input or usage, 130 on Ctrl-C."""
    try:
        code = app(standalone_mode=False)
    except gp.GeometryProbeError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.Exit as err:
        raise SystemExit(err.exit_code) from None
    except typer.TyperException as err:  # usage errors of typer's bundled click: message + exit 2
        err.show()
        raise SystemExit(getattr(err, "exit_code", 2)) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
