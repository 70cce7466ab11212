"""The typer application that every command module registers on, with ``-h`` and ``--version``."""

from typing import Annotated

import typer

from geometry_probe import __version__

app = typer.Typer(
    help="Measure and show the geometry of learned embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_line() -> str:
    """``geoprobe X.Y.Z``."""
    return f"geoprobe {__version__}"


def _print_version(value: bool) -> None:
    if value:
        print(version_line())
        raise typer.Exit()


VersionOpt = Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")]


@app.callback()
def _root(version: VersionOpt = False) -> None:
    """Measure and show the geometry of learned embeddings."""
