"""`geoprobe extract` (a model's layers to an .npz) and `geoprobe layers` (metrics per layer)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from geometry_probe.exceptions import InvalidInputError

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
from ._output import (
    STDOUT,
    check_output_format,
    console,
    format_number,
    human_output,
    note,
    print_table,
    verdict_markup,
    write_text_output,
    wrote,
)
from ._progress import progress_display
from .app import VersionOpt, app
from .compare import check_compare_figure, print_matrix

if TYPE_CHECKING:
    import numpy as np

    import geometry_probe as gp

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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
    version: VersionOpt = False,
) -> None:
    """Run a model on data and save the outputs of its layers to an .npz (then: geoprobe analyze OUT --key LAYER)."""
    import numpy as np

    import geometry_probe as gp
    from geometry_probe._atomic import atomic_open

    if output.suffix.lower() != ".npz":
        raise InvalidInputError(f"--output: {output} must end in .npz.")
    gp.check_output_path(output, inputs=[checkpoint] if checkpoint else [])
    if not layer:
        raise InvalidInputError("--layer: give at least one module name "
                                "(list them with `geoprobe layers --model ...`).")
    if LABELS_KEY in layer:
        raise InvalidInputError(f"--layer: {LABELS_KEY!r} is reserved for the labels array of the .npz.")
    net, _ = build_model(model, checkpoint, checkpoint_prefix)
    with progress_display(quiet=quiet) as progress:
        embeddings = gp.extract(net, build_data(data), layer, pool=pool, max_samples=max_samples, device=device,
                                batch_size=batch_size, progress=progress)
    arrays: dict[str, Any] = {name: emb.X for name, emb in embeddings.items()}
    first = next(iter(embeddings.values()))
    if first.labels is not None:
        arrays[LABELS_KEY] = label_values(first)
    with atomic_open(output, "wb") as handle:
        np.savez(handle, **arrays)
    if not quiet:
        for name, emb in embeddings.items():
            console.print(escape(f"{name}: {emb.n_samples} x {emb.n_features} ({emb.meta['module']}, "
                                 f"pool: {emb.meta['pool']})"), highlight=False)
    wrote(output, f" with {LABELS_KEY!r} ({first.n_classes} classes)" if first.labels is not None
          else " (no labels: batches were x, not (x, y))")


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
                                                   "(.png, .pdf or .svg).")] = None,
    compare: Annotated[bool, typer.Option(
        "--compare", help="Also the layer x layer linear CKA matrix (printed, and in --output).")] = False,
    compare_figure: Annotated[Optional[Path], typer.Option(
        "--compare-figure", help="With --compare: write its heatmap (.png, .pdf, .svg or .html).")] = None,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    """Metrics for each layer (effective rank, RankMe, NC1, NCC accuracy); without --layer, list the modules."""
    import geometry_probe as gp
    from geometry_probe._atomic import check_distinct_outputs
    from geometry_probe.reporting.layer_sweep_figure import FIGURE_SUFFIXES

    to_stdout = str(json_out) == STDOUT
    check_distinct_outputs({"--output": None if to_stdout else json_out, "--csv": csv_out, "--figure": figure,
                            "--compare-figure": compare_figure})
    for out in (None if to_stdout else json_out, csv_out, figure, compare_figure):
        if out is not None:
            gp.check_output_path(out, inputs=[checkpoint] if checkpoint else [])
    check_output_format(json_out, "JSON", option="--output")
    check_output_format(csv_out, "CSV", option="--csv")
    if figure is not None and figure.suffix.lower() not in FIGURE_SUFFIXES:
        raise InvalidInputError(f"--figure: {figure} must end in one of {list(FIGURE_SUFFIXES)}.")
    check_compare_figure(compare, compare_figure)
    net, _ = build_model(model, checkpoint, checkpoint_prefix)
    with human_output(to_stderr=to_stdout):
        if not layer and all_layers is None:
            _print_modules(net)
            return
        if data is None:
            raise InvalidInputError("--data: measuring layers needs the data factory (PKG.MODULE:FACTORY).")
        with progress_display(quiet=quiet) as progress:
            sweep = gp.layer_sweep(net, build_data(data), layer, all_layers=all_layers, pool=pool,
                                   max_samples=max_samples, device=device, batch_size=batch_size,
                                   precision=precision, seed=seed, compare=compare, progress=progress)
        if not quiet:
            _print_sweep(sweep)
            if sweep.cka is not None:
                print_matrix(sweep.cka)
        if json_out is not None:
            write_text_output(json_out, sweep.to_json())
        for path, write in ((csv_out, sweep.to_csv), (figure, sweep.plot),
                            (compare_figure, sweep.cka.plot if sweep.cka is not None else None)):
            if path is not None:
                write(path)
                wrote(path)


def label_values(emb: gp.Embeddings) -> np.ndarray:
    """The labels as given (ints stay ints, strings stay strings), from codes and class names."""
    import numpy as np

    values = np.asarray(emb.classes)[emb.labels]
    try:
        as_int = values.astype(np.int64)
    except ValueError:
        return values
    return as_int if np.array_equal(as_int.astype(str), values) else values


def _print_modules(net: Any) -> None:
    rows = [(name, type(module).__name__, f"{sum(p.numel() for p in module.parameters(recurse=False)):,}")
            for name, module in net.named_modules() if name]
    print_table(f"modules of {type(net).__name__} (use a name with --layer, or a type with --all-layers)",
                ("name", "type", "parameters"), rows, numeric=("parameters",))


def _print_sweep(sweep: Any) -> None:
    keys = sweep.metric_keys
    verdicts = any(row["over_fusion"] != "unavailable" for row in sweep.rows)
    metrics = [_HEADERS.get(k, k) for k in keys]
    columns = ("layer", "depth", "module", "D", *metrics, *(["over-fusion"] if verdicts else []))
    rows = [(row["layer"], str(row["depth"]), row["module"], str(row["n_features"]),
             *[format_number(row[k]) if k in row else "-" for k in keys],
             *([verdict_markup(row["over_fusion"])] if verdicts else [])) for row in sweep.rows]
    print_table(f"layer sweep: {sweep.meta['n_samples']} samples", columns, rows,
                numeric=("depth", "D", *metrics, "over-fusion"), markup_columns=("over-fusion",))
    for text in sweep.meta.get("notes", []):
        note(text)
