"""Printing results: a rich table of scalars, then notes."""

import math

from rich.console import Console
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
    for finding in results.findings:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}.get(finding.get("verdict"), "white")
        kind = " (description)" if finding.get("kind") == "description" else ""
        console.print(f"[{colour}]{finding.get('verdict', '?').upper():4}[/] {finding.get('name')}{kind}: "
                      f"{finding.get('explanation', '')}", highlight=False, markup=True)
    for note in results.notes():
        console.print(f"[yellow]note[/] {note}", highlight=False)


def _format(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.6g}"
