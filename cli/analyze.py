"""`geoprobe analyze`, `geoprobe list` and `geoprobe demo`."""

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

import geometry_probe as gp
from geometry_probe import distributed
from geometry_probe._atomic import check_distinct_outputs
from geometry_probe.analyzers import describe
from geometry_probe.classifier import load_classifier
from geometry_probe.functional.fmicl import DEFAULT_SIGMA
from geometry_probe.reporting.html_report import write_report

from ._options import (
    AnalyzersOpt,
    BatchSizeOpt,
    ClassifierKeyOpt,
    ClassifierOpt,
    CoarseLabelsOpt,
    DeviceOpt,
    EmbeddingsArg,
    ExactOpt,
    FailOnOpt,
    GroupsOpt,
    KnnKOpt,
    KnnTemperatureOpt,
    PairsOpt,
    PairwisePrecisionOpt,
    JsonOpt,
    KeyOpt,
    LabelsOpt,
    PrecisionOpt,
    QuietOpt,
    SeedOpt,
    ViewsOpt,
)
from ._output import console, print_comparison, print_findings, print_results
from .app import app


def _distributed(command):
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): start the process group; on an error only rank 0 prints
    its one line (naming the failing rank), the others wait for it and exit 2 silently; end the group."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        started = distributed.context() is None and distributed.init_from_environment(
            device=kwargs.get("device", "auto")) is not None
        try:
            return command(*args, **kwargs)
        except gp.GeometryProbeError as err:
            if distributed.context() is None:
                raise
            if distributed.is_writer():                  # before the others exit: torchrun then stops rank 0
                print(f"error: {err}", file=sys.stderr, flush=True)
            distributed.settle()
            raise typer.Exit(code=2) from None
        finally:
            if started:
                distributed.shutdown()
    return run


@app.command()
@_distributed
def analyze(
    path: EmbeddingsArg,
    labels: LabelsOpt = None,
    key: KeyOpt = None,
    analyzers: AnalyzersOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = None,
    precision: PrecisionOpt = "float64",
    pairwise_precision: PairwisePrecisionOpt = "float32",
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
    classifier: ClassifierOpt = None,
    classifier_key: ClassifierKeyOpt = None,
    coarse_labels: CoarseLabelsOpt = None,
    fail_on: FailOnOpt = None,
    pairs: PairsOpt = None,
    views: ViewsOpt = None,
    groups: GroupsOpt = None,
    exact: ExactOpt = False,
    knn_k: KnnKOpt = 20,
    knn_temperature: KnnTemperatureOpt = 0.07,
    temperature: Annotated[float, typer.Option(
        "--temperature", min=1e-6, help="τ of the InfoNCE diagnostics (with --views/--pairs/--groups).")] = 0.1,
    fmicl_sigma: Annotated[float, typer.Option(
        "--fmicl-sigma", min=1e-6, help="σ of the f-MICL Gaussian kernel (default 1/√2: (2σ²)⁻¹ = 1).")] = DEFAULT_SIGMA,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write a self-contained HTML report.")] = None,
    project: Annotated[Optional[str], typer.Option(
        "--project",
        help="Add a 2-D map to the results: pca, tsne or umap (stratified subsample above 50,000).")] = None,
) -> None:
    """Analyse an embeddings file (or a folder/glob of shards): print a table of metrics and collapse verdicts,
    optionally write JSON. Under torchrun the processes split the rows; rank 0 prints and writes."""
    if fail_on not in (None, "collapse"):
        raise typer.BadParameter(f"got {fail_on!r}; the only choice is 'collapse'.", param_hint="--fail-on")
    inputs = [path, *(f for f in (labels, classifier, coarse_labels, pairs, groups, views) if f)]
    check_distinct_outputs({"--json": json_out, "--report": report})
    for out in (report, json_out):
        if out is not None:
            gp.check_output_path(out, inputs=inputs)
    params: dict[str, dict[str, object]] = {"knn": {"k": knn_k, "temperature": knn_temperature},
                                            "contrastive": {"temperature": temperature, "fmicl_sigma": fmicl_sigma}}
    if exact:
        params["knn"]["exact"] = params["contrastive"]["exact"] = True
    if classifier:
        params["neural_collapse"] = {"classifier": load_classifier(classifier, key=classifier_key)}
    if pairs:
        params["contrastive"]["pairs"] = gp.io.read_array_spec(pairs, container=path)
    if groups:
        params["contrastive"]["groups"] = gp.io.read_array_spec(groups, container=path)
    if views:
        params["contrastive"]["views"] = gp.load(views).X
    emb = gp.load(path, labels=labels, key=key)
    coarse = gp.io.read_array_spec(coarse_labels, container=path) if coarse_labels else None
    results = gp.analyze(emb, analyzers, device=device, batch_size=batch_size, precision=precision,
                         pairwise_precision=pairwise_precision, seed=seed, params=params, coarse_labels=coarse)
    if not distributed.is_writer():
        if fail_on == "collapse" and gp.has_failed_collapse(results.findings):
            raise typer.Exit(code=1)
        return
    if project is not None:
        results = gp.Results([*results.values(), gp.project(emb, project, random_state=seed).to_result()],
                             meta=results.meta, findings=results.findings)
    if not quiet:
        print_results(results)
    if json_out is not None:
        results.to_json(json_out)
        console.print(f"wrote {json_out}")
    if report is not None:
        console.print(f"wrote {write_report(results, report)}")
    if fail_on == "collapse" and gp.has_failed_collapse(results.findings):
        raise typer.Exit(code=1)


@app.command(name="list")
def list_analyzers() -> None:
    """List the analyzers with one line each."""
    for name, cls in gp.ANALYZERS.items():
        needs = " (needs labels)" if cls.requires_labels else ""
        console.print(f"[cyan]{name:16}[/] {describe(name)}{needs}", highlight=False)


@app.command()
def demo(
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Where to write the healthy model's results.")] = Path(
        "geoprobe-demo.json"),
) -> None:
    """Analyse the bundled default data set (an MLP's embeddings of sklearn's digits), then show a
    failure being caught: the same encoder trained into InfoNCE over-fusion."""
    gp.check_output_path(json_out)
    console.print("[bold]1. A healthy model[/]: a cross-entropy MLP's embeddings of sklearn's digits", highlight=False)
    healthy = gp.analyze(gp.datasets.load_digits_embeddings())
    print_results(healthy)
    console.print("\n[bold]2. A failure caught[/]: the same encoder trained with InfoNCE at learning rate 3 "
                  "(weight decay 0.5)", highlight=False)
    fused = gp.analyze(gp.datasets.load_digits_overfused_embeddings())
    print_comparison({"healthy": healthy, "over-fused": fused}, DEMO_METRICS)
    print_findings(fused)
    healthy.to_json(json_out)
    console.print(f"wrote {json_out} (the healthy model's results)")


DEMO_METRICS = ("spectrum/effective_rank", "contrastive/mean_cosine", "contrastive/uniformity", "knn/accuracy",
                "neural_collapse/ncc_accuracy")
