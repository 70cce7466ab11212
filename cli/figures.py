"""`geoprobe figures` and `geoprobe report`: render saved results without recomputing."""

from pathlib import Path
from typing import Annotated

import typer

import geometry_probe as gp
from geometry_probe.reporting.html_report import write_report
from geometry_probe.reporting.static import write_figures

from ._output import console
from .app import app

ResultsArg = Annotated[Path, typer.Argument(help="Results JSON written by `geoprobe analyze --json`.",
                                            show_default=False)]


@app.command()
def figures(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the figures (created if missing).")],
    fmt: Annotated[str, typer.Option("--format", help="pdf, svg or png.")] = "pdf",
) -> None:
    """Write the publication figures the results support (spectrum, cosines, class means, verdicts)."""
    loaded = gp.Results.from_json(results)
    out.mkdir(parents=True, exist_ok=True)
    for path in write_figures(loaded, out, fmt=fmt):
        console.print(f"wrote {path}")


@app.command()
def report(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write.")],
) -> None:
    """Write one self-contained HTML report (works offline; every user string escaped)."""
    gp.check_output_path(out, inputs=[results])
    console.print(f"wrote {write_report(gp.Results.from_json(results), out)}")
