"""`geoprobe figures` and `geoprobe report`: render saved results without recomputing."""

from pathlib import Path
from typing import Annotated, Optional

import typer

import geometry_probe as gp
from geometry_probe._atomic import make_output_folder

from ._output import check_output_format, wrote
from .app import app

ResultsArg = Annotated[Path, typer.Argument(help="Results JSON written by `geoprobe analyze --json`.",
                                            show_default=False)]
FiguresArg = Annotated[list[Path], typer.Argument(
    help="JSON files: results (`geoprobe analyze --json`), trajectories (`geoprobe track --json`) or layer sweeps "
         "(`geoprobe layers --json`); several of one kind with --compare.", show_default=False)]


@app.command()
def figures(
    inputs: FiguresArg,
    out: Annotated[Path, typer.Option("-o", "--output", "--out", help="Folder for the figures (created if missing; "
                                      "--out is the old name).")],
    fmt: Annotated[str, typer.Option("--format", help="pdf, svg or png.")] = "pdf",
    size: Annotated[str, typer.Option("--size", help="column (3.25 in wide) or full (6.75 in, the text width).")]
    = "column",
    dpi: Annotated[int, typer.Option("--dpi", help="Pixels per inch of PNGs (and of images inside PDF/SVG).")]
    = 300,  # figure_style.DEFAULT_DPI (not imported: --help stays torch-free)
    compare: Annotated[bool, typer.Option("--compare", help="Overlay the files, one line or point per run: spectra, "
                                          "metrics, cosines, the alignment-uniformity plane, trajectories or "
                                          "per-layer curves.")] = False,
    names: Annotated[Optional[list[str]], typer.Option(
        "--name", help="Legend name of each file, in order (repeat it); default: the file's \"name\" key, else "
                       "its name without .json.")] = None,
) -> None:
    """Write print-ready figures from saved JSON: for results the spectrum, cosines, class means, SimO, verdicts and
    map; for a trajectory the metrics over checkpoints with collapse onsets; for a layer sweep the metrics and spectra
    by layer; with --compare, several runs overlaid."""
    from geometry_probe.reporting.figure_inputs import read_runs
    from geometry_probe.reporting.figure_style import check_dpi, width_of
    from geometry_probe.reporting.paper_figures import write_paper_figures
    from geometry_probe.reporting.static import check_format

    check_format(fmt)
    width_of(size)
    check_dpi(dpi)
    runs = read_runs(inputs, names=names)
    make_output_folder(out, inputs=inputs)
    for path in write_paper_figures(runs, out, compare=compare, fmt=fmt, size=size, dpi=dpi):
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
