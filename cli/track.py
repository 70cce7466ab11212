"""`geoprobe track`: analyse checkpoints in order and report collapse onsets."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from geometry_probe.exceptions import InvalidInputError

from ._model_options import PoolOpt, build_data
from ._options import AnalyzersOpt, DeviceOpt, HeaderOpt, KeyOpt, LabelsOpt, QuietOpt, SeedOpt
from ._output import (
    STDOUT,
    check_output_format,
    console,
    human_output,
    print_table,
    verdict_markup,
    write_text_output,
    wrote,
)
from ._progress import counted, progress_display
from .app import VersionOpt, app


@app.command(name="track")
def track_command(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        help="Embeddings files, one per checkpoint (epoch/step parsed from names like epoch_07.npy), or one file "
             "holding several steps. Or leave out and give --model/--data/--checkpoint/--layer.")] = None,
    labels: LabelsOpt = None,
    key: KeyOpt = None,
    header: HeaderOpt = None,
    analyzers: AnalyzersOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    json_out: Annotated[Optional[Path], typer.Option(
        "--output", "-o", "--json", help="Write the trajectory as JSON to this .json file, or to stdout with '-' "
        "(the table then goes to stderr). --json is the old name.")] = None,
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
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    """Analyse checkpoints in order; print verdicts per checkpoint and the first failing one."""
    import geometry_probe as gp
    from geometry_probe._atomic import check_distinct_outputs
    from geometry_probe.checkpoint_sweep import iter_checkpoint_embeddings
    from geometry_probe.factories import call_factory
    from geometry_probe.result import _clean, compact_json
    from geometry_probe.trajectory import track, track_files, write_track_csv

    inputs = list(paths or []) + ([labels] if labels else [])
    to_stdout = str(json_out) == STDOUT
    check_distinct_outputs({"--output": None if to_stdout else json_out, "--csv": csv_out})
    for out in (None if to_stdout else json_out, csv_out):
        if out is not None:
            gp.check_output_path(out, inputs=inputs)
    check_output_format(json_out, "JSON", option="--output")
    check_output_format(csv_out, "CSV", option="--csv")
    with human_output(to_stderr=to_stdout), progress_display(quiet=quiet) as progress:
        if model is not None:
            if paths or not (data and checkpoint and layer):
                raise InvalidInputError(
                    "track with --model needs --data, --checkpoint and --layer, and no embeddings files.")
            net = call_factory(model, what="--model")
            sources = counted(((str(p), step, emb) for p, step, emb in iter_checkpoint_embeddings(
                net, build_data(data), checkpoint, layer, pool=pool, device=device)), "checkpoints extracted",
                progress)
        elif paths:
            sources = track_files(paths, labels=labels, key=key, header=header)
        else:
            raise InvalidInputError("track: give embeddings files, or --model/--data/--checkpoint/--layer.")
        trajectory = track(list(sources), analyzers, device=device, seed=seed, progress=progress)
    with human_output(to_stderr=to_stdout):
        if not quiet:
            _print_trajectory(trajectory)
        if json_out is not None:
            write_text_output(json_out, compact_json(_clean(trajectory)) + "\n")   # as write_track_json
        if csv_out is not None:
            write_track_csv(trajectory, csv_out)
            wrote(csv_out)


def _print_trajectory(trajectory: dict) -> None:
    """One row per checkpoint with its verdicts, then the onset of each failing finding."""
    names = sorted({f["name"] for c in trajectory["checkpoints"] for f in c["findings"]})
    rows = []
    for c in trajectory["checkpoints"]:
        verdicts = {f["name"]: f["verdict"] for f in c["findings"]}
        rows.append((Path(c["path"]).name, str(c["step"]),
                     *(verdict_markup(verdicts[n]) if n in verdicts else "-" for n in names)))
    print_table("trajectory", ("checkpoint", "step", *names), rows, numeric=("step",), markup_columns=names)
    for name, onset in trajectory["onsets"].items():
        console.print(f"[red]onset[/] {name}: step {onset['step']} ({escape(str(onset['path']))})", highlight=False)
