"""`geoprobe analyze`, `geoprobe list` and `geoprobe demo`."""

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

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
    HeaderOpt,
    JsonOpt,
    KeyOpt,
    KnnKOpt,
    KnnTemperatureOpt,
    LabelsOpt,
    PairsOpt,
    PairwisePrecisionOpt,
    PrecisionOpt,
    QuietOpt,
    SeedOpt,
    ViewsOpt,
)
from ._output import (
    STDOUT,
    check_output_format,
    console,
    human_output,
    note,
    print_comparison,
    print_findings,
    print_header,
    print_results,
    write_text_output,
    wrote,
)
from ._progress import progress_display
from .app import VersionOpt, app


def _distributed(command):
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): start the process group; on an error only rank 0 prints
    its one line (naming the failing rank), the others wait for it and exit 2 silently; end the group.
    Imports torch only when the command runs (``--help`` stays fast)."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        import geometry_probe as gp
        from geometry_probe import distributed

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
    fmicl_sigma: Annotated[Optional[float], typer.Option(
        "--fmicl-sigma", min=1e-6, help="σ of the f-MICL Gaussian kernel (default 1/√2: (2σ²)⁻¹ = 1).")] = None,
    header: HeaderOpt = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write a self-contained HTML report "
                                                   "(.html).")] = None,
    project: Annotated[Optional[str], typer.Option(
        "--project",
        help="Add a 2-D map to the results: pca, tsne or umap (stratified subsample above 50,000).")] = None,
    version: VersionOpt = False,
) -> None:
    """Analyse an embeddings file (or a folder/glob of shards): print a table of metrics and collapse verdicts,
    optionally write JSON. Under torchrun the processes split the rows; rank 0 prints and writes."""
    import geometry_probe as gp
    from geometry_probe import distributed
    from geometry_probe._atomic import check_distinct_outputs
    from geometry_probe.classifier import load_classifier
    from geometry_probe.reporting.html_report import write_report

    if fail_on not in (None, "collapse"):
        raise typer.BadParameter(f"got {fail_on!r}; the only choice is 'collapse'.", param_hint="--fail-on")
    inputs = [path, *(f for f in (labels, classifier, coarse_labels, pairs, groups, views) if f)]
    to_stdout = str(json_out) == STDOUT
    check_distinct_outputs({"--output": None if to_stdout else json_out, "--report": report})
    for out in (report, None if to_stdout else json_out):
        if out is not None:
            gp.check_output_path(out, inputs=inputs)
    check_output_format(json_out, "JSON", option="--output")
    check_output_format(report, "HTML", option="--report")
    writer = distributed.is_writer()
    with human_output(to_stderr=to_stdout):
        params: dict[str, dict[str, object]] = {"knn": {"k": knn_k, "temperature": knn_temperature},
                                                "contrastive": {"temperature": temperature}}
        if exact:
            params["knn"]["exact"] = params["contrastive"]["exact"] = True
        positives: dict[str, object] = {}
        if classifier:
            params["neural_collapse"] = {"classifier": load_classifier(classifier, key=classifier_key)}
        if pairs:
            positives["pairs"] = gp.io.read_array_spec(pairs, container=path)
        if groups:
            positives["groups"] = gp.io.read_array_spec(groups, container=path)
        if views:
            positives["views"] = gp.load(views).X
        params["contrastive"].update(positives)
        if positives:                     # the f-MICL objectives need positives too (and run by default with them)
            params["fmicl"] = {**positives, **({"sigma": fmicl_sigma} if fmicl_sigma is not None else {}),
                               **({"exact": True} if exact else {})}
        emb = gp.load(path, labels=labels, key=key, header=header)
        coarse = gp.io.read_array_spec(coarse_labels, container=path) if coarse_labels else None
        if writer and not quiet:
            print_header(emb.summary(), source=path)
        for text in emb.meta.get("notes", ()) if writer else ():
            note(text)
        with progress_display(quiet=quiet or not writer) as progress:
            results = gp.analyze(emb, analyzers, device=device, batch_size=batch_size, precision=precision,
                                 pairwise_precision=pairwise_precision, seed=seed, params=params, coarse_labels=coarse,
                                 progress=progress)
        if not writer:
            if fail_on == "collapse" and gp.has_failed_collapse(results.findings):
                raise typer.Exit(code=1)
            return
        if project is not None:
            results = gp.Results([*results.values(), gp.project(emb, project, random_state=seed).to_result()],
                                 meta=results.meta, findings=results.findings)
        if not quiet:
            print_results(results)
        if json_out is not None:
            write_text_output(json_out, results.to_json())
        if report is not None:
            wrote(write_report(results, report))
        if fail_on == "collapse" and gp.has_failed_collapse(results.findings):
            raise typer.Exit(code=1)


@app.command(name="list")
def list_analyzers(version: VersionOpt = False) -> None:
    """List the analyzers with one line each."""
    import geometry_probe as gp
    from geometry_probe.analyzers import describe

    for name, cls in gp.ANALYZERS.items():
        needs = " (needs labels)" if cls.requires_labels else ""
        console.print(f"[cyan]{name:16}[/] {describe(name)}{needs}", highlight=False)


@app.command()
def demo(
    json_out: Annotated[Path, typer.Option(
        "--output", "-o", "--json", help="Where to write the healthy model's results (.json, or '-' for stdout; "
        "--json is the old name).")] = Path("geoprobe-demo.json"),
    version: VersionOpt = False,
) -> None:
    """Analyse the bundled default data set (an MLP's embeddings of sklearn's digits), then show a
    failure being caught: the same encoder trained into InfoNCE over-fusion."""
    import geometry_probe as gp

    to_stdout = str(json_out) == STDOUT
    if not to_stdout:
        gp.check_output_path(json_out)
    check_output_format(json_out, "JSON", option="--output")
    with human_output(to_stderr=to_stdout):
        console.print("[bold]1. A healthy model[/]: a cross-entropy MLP's embeddings of sklearn's digits",
                      highlight=False)
        healthy = gp.analyze(gp.datasets.load_digits_embeddings())
        print_results(healthy)
        console.print("\n[bold]2. A failure caught[/]: the same encoder trained with InfoNCE at learning rate 3 "
                      "(weight decay 0.5)", highlight=False)
        fused = gp.analyze(gp.datasets.load_digits_overfused_embeddings())
        print_comparison({"healthy": healthy, "over-fused": fused}, DEMO_METRICS)
        print_findings(fused)
        write_text_output(json_out, healthy.to_json(), " (the healthy model's results)")


DEMO_METRICS = ("spectrum/effective_rank", "contrastive/mean_cosine", "contrastive/uniformity", "knn/accuracy",
                "neural_collapse/ncc_accuracy")
