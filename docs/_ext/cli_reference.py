"""Sphinx extension: a CLI reference rendered from the ``--help`` text of every command of a typer app.

The ``cli-reference`` directive takes ``module:attribute`` of a :class:`typer.Typer` app, walks
the click command tree typer builds from it (so every registered command, including nested
groups, is found, never listed by hand) and emits one section per command holding its help
text, exactly as ``PROG COMMAND --help`` prints it with rich formatting off.

Usage in a MyST page::

    ```{cli-reference} geometry_probe.cli.main:app
    :prog: geoprobe
    ```
"""

from __future__ import annotations

import copy
import importlib

import click
import typer
from docutils import nodes
from docutils.parsers.rst import Directive, directives

HELP_WIDTH = 100


def load_app(spec: str) -> typer.Typer:
    """Import ``module:attribute`` and return the typer app it names."""
    module_name, _, attribute = spec.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    if not isinstance(app, typer.Typer):
        raise TypeError(f"{spec} is a {type(app).__name__}, not a typer.Typer app.")
    return app


def plain_help(command: click.Command, ctx: click.Context) -> str:
    """The ``--help`` text of ``command`` without rich boxes or colours."""
    plain = copy.copy(command)
    if hasattr(plain, "rich_markup_mode"):
        plain.rich_markup_mode = None
    return plain.get_help(ctx).rstrip()


def command_helps(app: typer.Typer, prog: str) -> dict[str, str]:
    """Help text of the app and of every command under it, keyed by the command path.

    Parameters
    ----------
    app : typer.Typer
    prog : str
        Program name, the key of the top-level help.

    Returns
    -------
    dict of str to str
        ``{prog: top-level help, "prog cmd": help of cmd, "prog group sub": ...}`` in
        registration order.
    """
    root = typer.main.get_command(app)
    helps: dict[str, str] = {}

    def visit(command: click.Command, ctx: click.Context, path: str) -> None:
        helps[path] = plain_help(command, ctx)
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                visit(sub, _context(sub, name, parent=ctx), f"{path} {name}")

    visit(root, _context(root, prog), prog)
    return helps


def _context(command: click.Command, name: str, parent: click.Context | None = None) -> click.Context:
    return click.Context(command, info_name=name, parent=parent, terminal_width=HELP_WIDTH,
                         max_content_width=HELP_WIDTH)


class CliReference(Directive):
    """``cli-reference MODULE:APP`` with option ``:prog:`` (default: the module name)."""

    required_arguments = 1
    option_spec = {"prog": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        """One literal block for the program, then a section per command."""
        spec = self.arguments[0]
        prog = self.options.get("prog", spec.partition(":")[0].rsplit(".", 1)[-1])
        helps = command_helps(load_app(spec), prog)
        out: list[nodes.Node] = [_literal(helps.pop(prog))]
        for path, text in helps.items():
            section = nodes.section(ids=[nodes.make_id(f"cli {path}")], names=[nodes.fully_normalize_name(path)])
            section += nodes.title(text=path)
            section += _literal(text)
            self.state.document.note_implicit_target(section, section)
            out.append(section)
        return out


def _literal(text: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    block["language"] = "text"
    return block


def setup(app):
    """Register the directive."""
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
