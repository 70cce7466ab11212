"""`geoprobe track`: analyse checkpoints in order and report collapse onsets."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

import geometry_probe as gp
from geometry_probe.trajectory import track, track_files, write_track_csv, write_track_json

from ._options import AnalyzersOpt, DeviceOpt, KeyOpt, LabelsOpt, SeedOpt
from ._output import console
from .app import app


@app.command(name="track")
def track_command(
    paths: Annotated[list[Path], typer.Argument(help="Embeddings files, one per checkpoint (epoch/step parsed from "
                                                     "names like epoch_07.npy), or one file holding several steps.")],
    labels: LabelsOpt = None,
    key: KeyOpt = None,
    analyzers: AnalyzersOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the trajectory as JSON.")] = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Write one row per checkpoint as CSV.")] = None,
) -> None:
    """Analyse checkpoints in order; print verdicts per checkpoint and the first failing one."""
    for out in (json_out, csv_out):
        if out is not None:
            gp.check_output_path(out, inputs=paths)
    trajectory = track(track_files(paths, labels=labels, key=key), analyzers, device=device, seed=seed)
    table = Table(title="trajectory")
    names = sorted({f["name"] for c in trajectory["checkpoints"] for f in c["findings"]})
    for column in ("step", "checkpoint", *names):
        table.add_column(column)
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for c in trajectory["checkpoints"]:
        verdicts = {f["name"]: f["verdict"] for f in c["findings"]}
        table.add_row(str(c["step"]), Path(c["path"]).name,
                      *(f"[{colours.get(verdicts.get(n, ''), 'white')}]{verdicts.get(n, '-')}[/]" for n in names))
    console.print(table)
    for name, onset in trajectory["onsets"].items():
        console.print(f"[red]onset[/] {name}: step {onset['step']} ({onset['path']})", highlight=False)
    if json_out is not None:
        write_track_json(trajectory, json_out)
    if csv_out is not None:
        write_track_csv(trajectory, csv_out)
