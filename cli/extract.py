"""`geoprobe extract` (a model's layers to an .npz) and `geoprobe layers` (metrics per layer)."""

from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.table import Table

import geometry_probe as gp
from geometry_probe._atomic import atomic_open, check_distinct_outputs
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.reporting.compare_figures import HEATMAP_SUFFIXES
from geometry_probe.reporting.layer_sweep_figure import FIGURE_SUFFIXES

from ._model_options import (
    CheckpointOpt,
    CheckpointPrefixOpt,
    DataOpt,
    ExtractBatchSizeOpt,
    LayerOpt,
    MaxSamplesOpt,
    ModelOpt,
    PoolOpt,
    RequiredDataOpt,
    build_data,
    build_model,
)
from ._options import DeviceOpt, JsonOpt, PrecisionOpt, QuietOpt, SeedOpt
from ._output import _format, console
from .app import app
from .compare import check_compare_figure, print_matrix

LABELS_KEY = "labels"
_HEADERS = {"spectrum/effective_rank": "eff. rank", "spectrum/rankme": "RankMe",
            "contrastive/mean_cosine": "mean cos", "contrastive/uniformity": "uniformity", "neural_collapse/nc1": "NC1",
            "neural_collapse/ncc_accuracy": "NCC acc."}


@app.command()
def extract(
    model: ModelOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="The .npz to write: one array per layer, named "
                                         "by the layer, plus 'labels'.", show_default=False)],
    data: RequiredDataOpt,
    checkpoint: CheckpointOpt = None,
    checkpoint_prefix: CheckpointPrefixOpt = None,
    layer: LayerOpt = None,
    pool: PoolOpt = None,
    max_samples: MaxSamplesOpt = None,
    batch_size: ExtractBatchSizeOpt = 256,
    device: DeviceOpt = "auto",
) -> None:
    """Run a model on data and save the outputs of its layers to an .npz (then: geoprobe analyze OUT --key LAYER)."""
    if output.suffix.lower() != ".npz":
        raise InvalidInputError(f"--output: {output} must end in .npz.")
    gp.check_output_path(output, inputs=[checkpoint] if checkpoint else [])
    if not layer:
        raise InvalidInputError("--layer: give at least one module name "
                                "(list them with `geoprobe layers --model ...`).")
    if LABELS_KEY in layer:
        raise InvalidInputError(f"--layer: {LABELS_KEY!r} is reserved for the labels array of the .npz.")
    net, _ = build_model(model, checkpoint, checkpoint_prefix)
    embeddings = gp.extract(net, build_data(data), layer, pool=pool, max_samples=max_samples, device=device,
                            batch_size=batch_size)
    arrays: dict[str, Any] = {name: emb.X for name, emb in embeddings.items()}
    first = next(iter(embeddings.values()))
    if first.labels is not None:
        arrays[LABELS_KEY] = label_values(first)
    with atomic_open(output, "wb") as handle:
        np.savez(handle, **arrays)
    for name, emb in embeddings.items():
        console.print(f"{name}: {emb.n_samples} x {emb.n_features} ({emb.meta['module']}, pool: {emb.meta['pool']})",
                      highlight=False)
    console.print(f"wrote {output}" + (f" with {LABELS_KEY!r} ({first.n_classes} classes)" if first.labels is not None
                                       else " (no labels: batches were x, not (x, y))"), highlight=False)


@app.command()
def layers(
    model: ModelOpt,
    data: DataOpt = None,
    checkpoint: CheckpointOpt = None,
    checkpoint_prefix: CheckpointPrefixOpt = None,
    layer: LayerOpt = None,
    all_layers: Annotated[Optional[str], typer.Option(
        "--all-layers", help="Sweep every module of this class, e.g. Linear or Conv2d, in depth order.")] = None,
    pool: PoolOpt = None,
    max_samples: MaxSamplesOpt = None,
    batch_size: ExtractBatchSizeOpt = 256,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "float64",
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Write one row per layer as CSV.")] = None,
    figure: Annotated[Optional[Path], typer.Option(help="Write a figure of the metrics against depth "
                                                   f"({', '.join(FIGURE_SUFFIXES)}).")] = None,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Also the layer x layer linear CKA matrix (printed, and in --json).")] = False,
    compare_figure: Annotated[Optional[Path], typer.Option(
        "--compare-figure", help=f"With --compare: write its heatmap ({', '.join(HEATMAP_SUFFIXES)}).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Metrics for each layer (effective rank, RankMe, NC1, NCC accuracy); without --layer, list the modules."""
    check_distinct_outputs({"--json": json_out, "--csv": csv_out, "--figure": figure, "--compare-figure": compare_figure})
    for out in (json_out, csv_out, figure, compare_figure):
        if out is not None:
            gp.check_output_path(out, inputs=[checkpoint] if checkpoint else [])
    if figure is not None and figure.suffix.lower() not in FIGURE_SUFFIXES:
        raise InvalidInputError(f"--figure: {figure} must end in one of {list(FIGURE_SUFFIXES)}.")
    check_compare_figure(compare, compare_figure)
    net, _ = build_model(model, checkpoint, checkpoint_prefix)
    if not layer and all_layers is None:
        _print_modules(net)
        return
    if data is None:
        raise InvalidInputError("--data: measuring layers needs the data factory (PKG.MODULE:FACTORY).")
    sweep = gp.layer_sweep(net, build_data(data), layer, all_layers=all_layers, pool=pool, max_samples=max_samples,
                           device=device, batch_size=batch_size, precision=precision, seed=seed, compare=compare)
    if not quiet:
        _print_sweep(sweep)
        if sweep.cka is not None:
            print_matrix(sweep.cka)
    for path, write in ((json_out, sweep.to_json), (csv_out, sweep.to_csv), (figure, sweep.plot),
                        (compare_figure, sweep.cka.plot if sweep.cka is not None else None)):
        if path is not None:
            write(path)
            console.print(f"wrote {path}", highlight=False)


def label_values(emb: gp.Embeddings) -> np.ndarray:
    """The labels as given (ints stay ints, strings stay strings), from codes and class names."""
    values = np.asarray(emb.classes)[emb.labels]
    try:
        as_int = values.astype(np.int64)
    except ValueError:
        return values
    return as_int if np.array_equal(as_int.astype(str), values) else values


def _print_modules(net: Any) -> None:
    table = Table(title=f"modules of {type(net).__name__} (use a name with --layer, or a type with --all-layers)")
    for column in ("name", "type", "parameters"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for name, module in net.named_modules():
        if name:
            table.add_row(name, type(module).__name__, f"{sum(p.numel() for p in module.parameters(recurse=False)):,}")
    console.print(table)


def _print_sweep(sweep: Any) -> None:
    table = Table(title=f"layer sweep: {sweep.meta['n_samples']} samples")
    keys = sweep.metric_keys
    verdicts = any(row["over_fusion"] != "unavailable" for row in sweep.rows)
    for column in ("depth", "layer", "module", "D", *[_HEADERS.get(k, k) for k in keys],
                   *(["over-fusion"] if verdicts else [])):
        table.add_column(column, overflow="fold")
    for row in sweep.rows:
        table.add_row(str(row["depth"]), row["layer"], row["module"], str(row["n_features"]),
                      *[_format(row[k]) if k in row else "-" for k in keys],
                      *([str(row["over_fusion"])] if verdicts else []))
    console.print(table)
    for note in sweep.meta.get("notes", []):
        console.print(f"[yellow]note[/] {note}", highlight=False)
