"""The typer application that every command module registers on."""

import typer

app = typer.Typer(
    help="Measure and show the geometry of learned embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
