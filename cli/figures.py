"""`geoprobe figures` and `geoprobe report`: render saved results without recomputing."""

import json
from pathlib import Path
from typing import Annotated

import typer

import geometry_probe as gp
from geometry_probe._atomic import make_output_folder
from geometry_probe.reporting.html_report import REPORT_MAX_POINTS, write_report
from geometry_probe.reporting.static import write_figures, write_trajectory_figure

from ._output import console
from .app import app

ResultsArg = Annotated[Path, typer.Argument(help="Results JSON written by `geoprobe analyze --json`.",
                                            show_default=False)]
FiguresArg = Annotated[Path, typer.Argument(help="Results JSON (`geoprobe analyze --json`) or a trajectory JSON "
                                            "(`geoprobe track --json`).", show_default=False)]


@app.command()
def figures(
    results: FiguresArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the figures (created if missing).")],
    fmt: Annotated[str, typer.Option("--format", help="pdf, svg or png.")] = "pdf",
) -> None:
    """Write the publication figures the results support (spectrum, cosines, class means, SimO, verdicts, map),
    or, for a `geoprobe track` trajectory JSON, the metrics over checkpoints with collapse onsets marked."""
    trajectory = _trajectory_or_none(results)
    loaded = gp.Results.from_json(results) if trajectory is None else None
    make_output_folder(out, inputs=[results])
    paths = write_figures(loaded, out, fmt=fmt) if loaded is not None else [
        write_trajectory_figure(trajectory, out, fmt=fmt)]
    for path in paths:
        console.print(f"wrote {path}")


def _trajectory_or_none(path: Path) -> dict | None:
    """The trajectory a `geoprobe track --json` file holds, or None for anything else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    is_trajectory = isinstance(data, dict) and isinstance(data.get("checkpoints"), list) and data["checkpoints"]
    return data if is_trajectory else None


@app.command()
def report(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write.")],
    static: Annotated[bool, typer.Option("--static", help="PNG figures and no JavaScript (a far smaller file).")]
    = False,
    max_points: Annotated[int, typer.Option("--max-points", help="Points drawn in the 2-D map at most (stratified "
                                            "subsample; the report states how many).")] = REPORT_MAX_POINTS,
) -> None:
    """Write one self-contained HTML report: interactive figures, works offline, every user string escaped."""
    gp.check_output_path(out, inputs=[results])
    written = write_report(gp.Results.from_json(results), out, interactive=not static, max_points=max_points)
    console.print(f"wrote {written}")
