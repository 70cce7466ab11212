"""`geoprobe compare`: how two representations of the same inputs differ, or a CKA matrix of many."""

from pathlib import Path
from typing import Annotated, Optional

import typer

import geometry_probe as gp
from geometry_probe._atomic import check_distinct_outputs
from geometry_probe.exceptions import InvalidInputError

from ._options import BatchSizeOpt, DeviceOpt, JsonOpt, KeyOpt, QuietOpt
from ._output import STDOUT, check_output_format, console, human_output, print_results, write_text_output, wrote
from .app import VersionOpt, app


@app.command(name="compare")
def compare_command(
    paths: Annotated[list[Path], typer.Argument(
        help="Two embeddings files whose rows describe the same inputs (widths may differ); with --matrix, two or "
             "more (e.g. checkpoints: ckpt_*.npy, ordered by the step in their names).", show_default=False)],
    key: KeyOpt = None,
    key_b: Annotated[Optional[str], typer.Option(
        "--key-b", help="Array of the second file, when it differs from --key (e.g. two layers of one .npz).")] = None,
    paired: Annotated[bool, typer.Option(
        "--paired", help="Paired modalities (same D, row i of A paired with row i of B): add the modality gap, "
                         "Recall@1/5/10 both ways (also with the gap removed), alignment and uniformity.")] = False,
    knn_k: Annotated[int, typer.Option("--knn-k", min=0, help="Neighbours for knn_overlap; 0 skips it.")] = 10,
    svcca_variance: Annotated[float, typer.Option(
        "--svcca-variance", min=1e-9, max=1.0, help="Share of variance the SVCCA directions keep.")] = 0.99,
    matrix: Annotated[bool, typer.Option(
        "--matrix", help="Linear CKA between every pair of the files (checkpoint x checkpoint), for a heatmap.")] = False,
    figure: Annotated[Optional[Path], typer.Option(
        help="With --matrix: write the heatmap (.png, .pdf, .svg; .html is interactive).")] = None,
    json_out: JsonOpt = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", help="Also write a self-contained HTML report (the metrics, or the heatmap with --matrix).")] = None,
    batch_size: BatchSizeOpt = None,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    """Compare representations of the same inputs: CKA, debiased CKA, Procrustes, CCA, SVCCA, kNN overlap."""
    to_stdout = str(json_out) == STDOUT
    check_distinct_outputs({"--output": None if to_stdout else json_out, "--figure": figure, "--report": report})
    for out in (None if to_stdout else json_out, figure, report):
        if out is not None:
            gp.check_output_path(out, inputs=paths)
    check_output_format(json_out, "JSON", option="--output")
    check_output_format(report, "HTML", option="--report")
    check_compare_figure(matrix, figure, flag="--matrix", option="--figure")
    batch = {"batch_size": batch_size} if batch_size else {}
    with human_output(to_stderr=to_stdout):
        if matrix:
            _matrix(paths, key, figure, json_out, report, device, quiet, batch)
        else:
            _pair(paths, key, key_b, paired, knn_k, svcca_variance, device, json_out, report, quiet, batch)


def _pair(paths: list[Path], key: Optional[str], key_b: Optional[str], paired: bool, knn_k: int,
          svcca_variance: float, device: str, json_out: Optional[Path], report: Optional[Path], quiet: bool,
          batch: dict) -> None:
    from geometry_probe.reporting.html_report import write_report

    if len(paths) != 2:
        raise InvalidInputError(f"compare: got {len(paths)} files; give exactly two, or add --matrix for a CKA "
                                "matrix of several.")
    a = gp.load(paths[0], key=key)
    b = gp.load(paths[1], key=key_b if key_b is not None else key)
    names = (_name(paths[0], key), _name(paths[1], key_b if key_b is not None else key))
    results = gp.compare(a, b, paired=paired, knn_k=knn_k or None, svcca_variance=svcca_variance, device=device,
                         names=names, **batch)
    if not quiet:
        print_results(results, title=f"{names[0]} vs {names[1]}: {results.meta['n_samples']} rows")
    if json_out is not None:
        write_text_output(json_out, results.to_json())
    if report is not None:
        wrote(write_report(results, report))


def _matrix(paths: list[Path], key: Optional[str], figure: Optional[Path], json_out: Optional[Path],
            report: Optional[Path], device: str, quiet: bool, batch: dict) -> None:
    from geometry_probe.reporting.html_report import write_report
    from geometry_probe.trajectory import track_files

    sources = sorted(track_files(paths, key=key), key=lambda source: source[1])
    if len(sources) < 2:
        raise InvalidInputError("--matrix: give at least two embeddings files (or one file holding several steps).")
    names = [Path(name).name for name, _, _ in sources]
    result = gp.cka_matrix([emb for _, _, emb in sources], names, kind="checkpoints", device=device, **batch)
    if not quiet:
        print_matrix(result)
    if json_out is not None:
        write_text_output(json_out, result.to_json())
    if figure is not None:
        result.plot(figure)
        wrote(figure)
    if report is not None:
        heading = gp.Results([], meta={"name": f"{len(names)} checkpoints", "n_samples": result.meta["n_samples"],
                                       "widths": result.meta["n_features"]})
        wrote(write_report(heading, report, cka=[result]))


def _name(path: Path, key: Optional[str]) -> str:
    return f"{path.name}:{key}" if key else path.name


def check_compare_figure(wanted: bool, figure: Optional[Path], *, flag: str = "--compare",
                         option: str = "--compare-figure") -> None:
    """The heatmap option needs its matrix flag and a known suffix (one-line errors)."""
    if figure is not None and not wanted:
        raise InvalidInputError(f"{option} draws the CKA heatmap of {flag}; add {flag} (or leave out {option}).")
    from geometry_probe.reporting.compare_figures import HEATMAP_SUFFIXES

    if figure is not None and figure.suffix.lower() not in HEATMAP_SUFFIXES:
        raise InvalidInputError(f"{option}: {figure} must end in one of {list(HEATMAP_SUFFIXES)}.")


def print_matrix(result: "gp.CkaMatrix") -> None:
    """The CKA matrix as a table, names escaped."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"linear CKA, {result.meta['n_samples']} rows")
    table.add_column("")
    for name in result.names:
        table.add_column(escape(name), justify="right", overflow="fold")
    for name, row in zip(result.names, result.values):
        table.add_row(escape(name), *(f"{v:.3f}" for v in row))
    console.print(table)
