"""`geoprobe track`: analyse checkpoints in order and report collapse onsets."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

import geometry_probe as gp
from geometry_probe._atomic import check_distinct_outputs
from geometry_probe.checkpoint_sweep import iter_checkpoint_embeddings
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.factories import call_factory
from geometry_probe.trajectory import track, track_files, write_track_csv, write_track_json

from ._model_options import PoolOpt, build_data
from ._options import AnalyzersOpt, DeviceOpt, KeyOpt, LabelsOpt, SeedOpt
from ._output import console
from .app import app


@app.command(name="track")
def track_command(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        help="Embeddings files, one per checkpoint (epoch/step parsed from names like epoch_07.npy), or one file "
             "holding several steps. Or leave out and give --model/--data/--checkpoint/--layer.")] = None,
    labels: LabelsOpt = None,
    key: KeyOpt = None,
    analyzers: AnalyzersOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the trajectory as JSON.")] = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Write one row per checkpoint as CSV.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Model factory PKG.MODULE:FACTORY (or file.py:FACTORY): track a layer over model "
                              "checkpoints instead of embeddings files.")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="Data factory (same forms), unshuffled.")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(
        "--checkpoint", "-c",
        help="Checkpoint glob, e.g. 'ckpts/epoch_*.pt' (quote it), taken in natural order.")] = None,
    layer: Annotated[Optional[str], typer.Option("--layer", help="The module whose outputs are tracked.")] = None,
    pool: PoolOpt = None,
) -> None:
    """Analyse checkpoints in order; print verdicts per checkpoint and the first failing one."""
    inputs = list(paths or []) + ([labels] if labels else [])
    check_distinct_outputs({"--json": json_out, "--csv": csv_out})
    for out in (json_out, csv_out):
        if out is not None:
            gp.check_output_path(out, inputs=inputs)
    if model is not None:
        if paths or not (data and checkpoint and layer):
            raise InvalidInputError(
                "track with --model needs --data, --checkpoint and --layer, and no embeddings files.")
        net = call_factory(model, what="--model")
        sources = ((str(p), step, emb) for p, step, emb in iter_checkpoint_embeddings(
            net, build_data(data), checkpoint, layer, pool=pool, device=device))
    elif paths:
        sources = track_files(paths, labels=labels, key=key)
    else:
        raise InvalidInputError("track: give embeddings files, or --model/--data/--checkpoint/--layer.")
    trajectory = track(list(sources), analyzers, device=device, seed=seed)
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
