"""`geoprobe figures` and `geoprobe report`: render saved results without recomputing."""

from pathlib import Path
from typing import Annotated

import typer

import geometry_probe as gp
from geometry_probe._atomic import make_output_folder

from ._output import check_output_format, wrote
from .app import app

ResultsArg = Annotated[Path, typer.Argument(help="Results JSON written by `geoprobe analyze --json`.",
                                            show_default=False)]
FiguresArg = Annotated[Path, typer.Argument(help="Results JSON (`geoprobe analyze --json`) or a trajectory JSON "
                                            "(`geoprobe track --json`).", show_default=False)]


@app.command()
def figures(
    results: FiguresArg,
    out: Annotated[Path, typer.Option("-o", "--output", "--out", help="Folder for the figures (created if missing; "
                                      "--out is the old name).")],
    fmt: Annotated[str, typer.Option("--format", help="pdf, svg or png.")] = "pdf",
) -> None:
    """Write the publication figures the results support (spectrum, cosines, class means, SimO, verdicts, map),
    or, for a `geoprobe track` trajectory JSON, the metrics over checkpoints with collapse onsets marked."""
    from geometry_probe._results_schema import read_results_or_trajectory_json
    from geometry_probe.reporting.static import check_format, write_figures, write_trajectory_figure

    check_format(fmt)
    data, trajectory = read_results_or_trajectory_json(results)
    loaded = None if trajectory else gp.Results.from_dict(data)
    make_output_folder(out, inputs=[results])
    paths = [write_trajectory_figure(data, out, fmt=fmt)] if trajectory else write_figures(loaded, out, fmt=fmt)
    for path in paths:
        wrote(path)


@app.command()
def report(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("-o", "--output", "--out", help="HTML file to write (.html; --out is the old "
                                      "name).")],
    static: Annotated[bool, typer.Option("--static", help="PNG figures and no JavaScript (a far smaller file).")]
    = False,
    max_points: Annotated[int, typer.Option("--max-points", help="Points drawn in the 2-D map at most (stratified "
                                            "subsample; the report states how many).")] = 10_000,  # REPORT_MAX_POINTS
) -> None:
    """Write one self-contained HTML report: interactive figures, works offline, every user string escaped."""
    from geometry_probe.reporting.html_report import write_report

    gp.check_output_path(out, inputs=[results])
    check_output_format(out, "HTML", option="--output")
    written = write_report(gp.Results.from_json(results), out, interactive=not static, max_points=max_points)
    wrote(written)
