"""Printing results: a rich table of scalars, then notes."""

import math

from rich.console import Console
from rich.markup import escape
from rich.table import Table

import geometry_probe as gp

console = Console(soft_wrap=True)   # never break paths or messages across lines


def print_results(results: gp.Results, *, title: str | None = None) -> None:
    """Print one table row per metric (grouped by family), then the notes."""
    meta = results.meta
    heading = title or f"{meta.get('name', 'embeddings')}: {meta.get('n_samples')} x {meta.get('n_features')}"
    table = Table(title=heading, show_lines=False)
    table.add_column("family", style="cyan")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.scalars().items():
        family, metric = key.split("/", 1)
        table.add_row(family, metric, _format(value))
    console.print(table)
    print_findings(results)
    for note in results.notes():
        console.print(f"[yellow]note[/] {note}", highlight=False)


def print_findings(results: gp.Results) -> None:
    """One line per finding: its verdict in colour, its name (marked when it is a description), its explanation."""
    for finding in results.findings:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}.get(finding.get("verdict"), "white")
        kind = " (description)" if finding.get("kind") == "description" else ""
        console.print(f"[{colour}]{finding.get('verdict', '?').upper():4}[/] {finding.get('name')}{kind}: "
                      f"{escape(str(finding.get('explanation', '')))}", highlight=False, markup=True)


def print_comparison(runs: dict[str, gp.Results], metrics: tuple[str, ...]) -> None:
    """A table of a few metrics side by side, one column per named run."""
    table = Table(show_lines=False)
    table.add_column("metric", style="cyan")
    for name in runs:
        table.add_column(name, justify="right")
    for key in metrics:
        table.add_row(key, *(_format(r.scalars().get(key, math.nan)) for r in runs.values()))
    console.print(table)


def _format(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.6g}"
