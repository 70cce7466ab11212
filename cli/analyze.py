"""`geoprobe analyze`, `geoprobe list` and `geoprobe demo`."""

from pathlib import Path
from typing import Annotated, Optional

import typer

import geometry_probe as gp
from geometry_probe.analyzers import describe
from geometry_probe.classifier import load_classifier

from ._options import (
    AnalyzersOpt,
    BatchSizeOpt,
    ClassifierKeyOpt,
    ClassifierOpt,
    DeviceOpt,
    EmbeddingsArg,
    JsonOpt,
    KeyOpt,
    LabelsOpt,
    PrecisionOpt,
    QuietOpt,
    SeedOpt,
)
from ._output import console, print_results
from .app import app


@app.command()
def analyze(
    path: EmbeddingsArg,
    labels: LabelsOpt = None,
    key: KeyOpt = None,
    analyzers: AnalyzersOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = None,
    precision: PrecisionOpt = "float32",
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
    classifier: ClassifierOpt = None,
    classifier_key: ClassifierKeyOpt = None,
) -> None:
    """Analyse an embeddings file: print a table of metrics and optionally write JSON."""
    if json_out is not None:
        gp.check_output_path(json_out, inputs=[path] + ([labels] if labels else []) + ([classifier] if classifier else []))
    params = {"neural_collapse": {"classifier": load_classifier(classifier, key=classifier_key)}} if classifier else None
    emb = gp.load(path, labels=labels, key=key)
    results = gp.analyze(emb, analyzers, device=device, batch_size=batch_size, precision=precision, seed=seed,
                         params=params)
    if not quiet:
        print_results(results)
    if json_out is not None:
        results.to_json(json_out)
        console.print(f"wrote {json_out}")


@app.command(name="list")
def list_analyzers() -> None:
    """List the analyzers with one line each."""
    for name, cls in gp.ANALYZERS.items():
        needs = " (needs labels)" if cls.requires_labels else ""
        console.print(f"[cyan]{name:16}[/] {describe(name)}{needs}", highlight=False)


@app.command()
def demo(
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Where to write the results.")] = Path(
        "geoprobe-demo.json"),
) -> None:
    """Analyse the bundled default data set (an MLP's embeddings of sklearn's digits)."""
    gp.check_output_path(json_out)
    emb = gp.datasets.load_digits_embeddings()
    results = gp.analyze(emb)
    print_results(results)
    results.to_json(json_out)
    console.print(f"wrote {json_out}")
