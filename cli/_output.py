"""Printing results and checking output paths: tables that fit the terminal, text printed literally.

Every string that comes from the user or the data (file names, layer names, class names) is
escaped before rich sees it, so ``run[lr=0.1].npy`` prints as itself and not as markup.
Tables keep numbers and names whole: no cell is ever wrapped, and a table too wide for the
terminal is printed as one block of ``key: value`` lines per row instead.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import geometry_probe as gp

console = Console(soft_wrap=True)   # never break paths or messages across lines
STDOUT = "-"
"""The output path that means standard output (``-o -``)."""

FORMAT_SUFFIXES = {
    "JSON": (".json",), "HTML": (".html", ".htm"), "CSV": (".csv",), "NPZ": (".npz",),
    "PDF": (".pdf",), "PNG": (".png",), "SVG": (".svg",), "NPY": (".npy",), "TSV": (".tsv",),
    "PyTorch": (".pt", ".pth"), "Parquet": (".parquet",), "HDF5": (".h5", ".hdf5"), "text": (".txt",),
    "safetensors": (".safetensors",),
}
_FORMAT_OF = {suffix: fmt for fmt, suffixes in FORMAT_SUFFIXES.items() for suffix in suffixes}


def check_output_format(path: Path | None, fmt: str, *, option: str) -> None:
    """Refuse an output whose extension names another format (``report -o r.pdf`` writes HTML).

    A name without an extension, or with one no format claims, is accepted as given.
    """
    from geometry_probe.exceptions import InvalidInputError

    if path is None or str(path) == STDOUT:
        return
    other = _FORMAT_OF.get(path.suffix.lower())
    if other is not None and other != fmt:
        wanted = FORMAT_SUFFIXES[fmt][0]
        raise InvalidInputError(f"{option}: {path} ends in {path.suffix} ({other}) but this output is {fmt}; "
                                f"name it {path.with_suffix(wanted).name}.")


@contextlib.contextmanager
def human_output(to_stderr: bool) -> Iterator[None]:
    """Send the tables and messages to stderr for the duration (when stdout carries ``-o -``)."""
    previous = console.stderr
    console.stderr = to_stderr
    try:
        yield
    finally:
        console.stderr = previous


def write_text_output(path: Path, text: str, detail: str = "") -> None:
    """Write ``text`` to ``path`` atomically (then ``wrote PATH<detail>``), or to standard output for ``-``."""
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from geometry_probe._atomic import atomic_write_text

    atomic_write_text(path, text)
    wrote(path, detail)


def wrote(path: object, detail: str = "") -> None:
    """``wrote PATH``, the path printed literally."""
    console.print(f"wrote {escape(str(path))}{escape(detail)}", highlight=False)


def note(text: str) -> None:
    console.print(f"[yellow]note[/] {escape(text)}", highlight=False)


def header(meta: dict, *, source: object | None = None) -> str:
    """``name: N x D float32, K classes``: the line that tells what is being analysed."""
    parts = [f"{meta.get('n_samples')} x {meta.get('n_features')}"]
    if meta.get("dtype"):
        parts[0] += f" {meta['dtype']}"
    if meta.get("n_classes"):
        parts.append(f"{meta['n_classes']} classes")
    name = str(source) if source is not None else str(meta.get("name", "embeddings"))
    return f"{name}: {', '.join(parts)}"


def print_header(meta: dict, *, source: object | None = None) -> None:
    console.print(f"[bold]{escape(header(meta, source=source))}[/]", highlight=False)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                numeric: Sequence[str] = (), markup_columns: Sequence[str] = ()) -> None:
    """A table whose cells are never broken across lines; as ``key: value`` blocks when it cannot fit.

    Each column is as wide as its widest cell or header, so a number or a file name is never
    split; when the columns with their borders exceed the terminal's width, every row is
    printed as a block instead: its first cell, then one ``column: value`` line per column.
    Cells are escaped except in ``markup_columns`` (coloured verdicts made by the caller).
    """
    plain = [[Text.from_markup(cell).plain if column in markup_columns else cell for column, cell in zip(columns, row)]
             for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in plain)]) for i, column in enumerate(columns)]
    if sum(widths) + 3 * len(columns) + 1 <= console.width:
        table = Table(title=escape(title) if title else None)
        for column, width in zip(columns, widths):
            table.add_column(escape(column), justify="right" if column in numeric else "left", no_wrap=True,
                             min_width=width)
        for row in rows:
            table.add_row(*(cell if column in markup_columns else escape(cell) for column, cell in zip(columns, row)))
        console.print(table)
        return
    if title:
        console.print(f"[bold]{escape(title)}[/]", highlight=False)
    for row in rows:
        first, *rest = zip(columns, row)
        console.print(f"[bold]{escape(first[0])} {_cell(first, markup_columns)}[/]", highlight=False)
        for item in rest:
            console.print(f"  {escape(item[0])}: {_cell(item, markup_columns)}", highlight=False)


def _cell(item: tuple[str, str], markup_columns: Sequence[str]) -> str:
    column, cell = item
    return cell if column in markup_columns else escape(cell)


def print_results(results: gp.Results, *, title: str | None = None) -> None:
    """One table row per metric (grouped by family), then the findings and notes."""
    rows = []
    for key, value in results.scalars().items():
        family, metric = key.split("/", 1)
        rows.append((family, metric, format_number(value)))
    print_table(title, ("family", "metric", "value"), rows, numeric=("value",))
    print_findings(results)
    for text in results.notes():
        note(text)


def print_findings(results: gp.Results) -> None:
    """One line per finding: its verdict in colour, its name (marked when it is a description), its explanation."""
    for finding in results.findings:
        console.print(f"{verdict_markup(finding.get('verdict'), upper=True)} {escape(str(finding.get('name')))}"
                      f"{' (description)' if finding.get('kind') == 'description' else ''}: "
                      f"{escape(str(finding.get('explanation', '')))}", highlight=False)


def verdict_markup(verdict: str | None, *, upper: bool = False) -> str:
    """A verdict in its colour (green ok, yellow warn, red fail), escaped."""
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}.get(str(verdict), "white")
    text = str(verdict if verdict is not None else "?")
    return f"[{colour}]{escape(f'{text.upper():4}' if upper else text)}[/]"


def print_comparison(runs: dict[str, gp.Results], metrics: tuple[str, ...]) -> None:
    """A table of a few metrics side by side, one column per named run."""
    rows = [(key, *(format_number(r.scalars().get(key, math.nan)) for r in runs.values())) for key in metrics]
    print_table(None, ("metric", *runs), rows, numeric=tuple(runs))


def format_number(value: float) -> str:
    """An integer as such, anything else to 6 significant digits."""
    if math.isnan(value):
        return "nan"
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.6g}"
