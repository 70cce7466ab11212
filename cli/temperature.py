"""`geoprobe temperature` (InfoNCE against τ, one pass) and `geoprobe tolerance-plane`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

import geometry_probe as gp
from geometry_probe._atomic import check_distinct_outputs
from geometry_probe.exceptions import InvalidInputError

from ._options import DeviceOpt, EmbeddingsArg, JsonOpt, KeyOpt, QuietOpt
from ._output import STDOUT, check_output_format, format_number, human_output, print_table, write_text_output, wrote
from .app import VersionOpt, app

if TYPE_CHECKING:
    import numpy as np

MAX_SHOWN_DISTANCES = 2000
_HEADERS = {"infonce": "InfoNCE", "infonce_alignment": "alignment", "infonce_uniformity": "uniformity",
            "infonce_symmetric": "symmetric", "nt_xent": "NT-Xent", "effective_negatives": "eff. negatives"}


@app.command()
def temperature(
    path: EmbeddingsArg,
    views: Annotated[Path, typer.Option("--views", help="The second view, row i the positive of row i.")],
    taus: Annotated[str, typer.Option("--taus", help="Comma-separated temperatures.")] = "0.05,0.1,0.2,0.5,1",
    key: KeyOpt = None,
    device: DeviceOpt = "auto",
    nt_xent: Annotated[bool, typer.Option("--nt-xent/--no-nt-xent",
                                          help="Also NT-Xent (twice the pair work).")] = True,
    json_out: JsonOpt = None,
    figure: Annotated[Optional[Path], typer.Option(
        "--figure", help="Write the quantities against τ (.pdf, .png or .svg).")] = None,
    distances: Annotated[Optional[Path], typer.Option(
        "--distances", help="Write the sorted pairwise-distance figure (f-MICL; 2000 sampled pairs each).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the distance sample.")] = 0,
    precision: Annotated[str, typer.Option(help="Tile GEMMs: float64 (exact, default) or float32 (faster; "
                                           "errors about 1e-7/τ nats).")] = "float64",
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    """InfoNCE, its alignment/uniformity split, symmetric and NT-Xent variants and the effective number
    of negatives at every temperature, all in one pass over the tiles."""
    from geometry_probe.functional.infonce import parse_taus

    temperatures = parse_taus(taus)
    if precision not in ("float64", "float32"):
        raise InvalidInputError(f"--precision: got {precision!r}; choose float64 or float32.")
    to_stdout = str(json_out) == STDOUT
    outputs = {"--output": None if to_stdout else json_out, "--figure": figure, "--distances": distances}
    check_distinct_outputs(outputs)
    for out in outputs.values():
        if out is not None:
            gp.check_output_path(out, inputs=[path, views])
    check_output_format(json_out, "JSON", option="--output")
    with human_output(to_stderr=to_stdout):
        _sweep(path, views, key, temperatures, device, nt_xent, precision, quiet, seed, json_out, figure, distances)


def _sweep(path: Path, views: Path, key: Optional[str], temperatures: list[float], device: str, nt_xent: bool,
           precision: str, quiet: bool, seed: int, json_out: Optional[Path], figure: Optional[Path],
           distances: Optional[Path]) -> None:
    import numpy as np
    import torch

    from geometry_probe._validation import resolve_device
    from geometry_probe.functional.infonce import infonce_terms, sweep_record
    from geometry_probe.reporting.contrastive_figures import plot_sorted_distances, plot_temperature_sweep
    from geometry_probe.reporting.layer_sweep_figure import save_figure
    from geometry_probe.result import _clean, compact_json

    emb, second = gp.load(path, key=key), gp.load(views)
    if second.X.shape != emb.X.shape:
        raise InvalidInputError(f"--views: shape {tuple(second.X.shape)} does not match the embeddings "
                                f"{tuple(emb.X.shape)}; row i of the views must be the positive of row i.")
    dev = resolve_device(device)
    X = emb.rows(np.arange(emb.n_samples), device=dev)
    Y = second.rows(np.arange(second.n_samples), device=dev)
    terms = infonce_terms(X, Y, temperatures, nt_xent=nt_xent, dtype=getattr(torch, precision))
    if not quiet:
        _print_sweep(terms.taus, terms.values, f"{path.name}: {emb.n_samples} pairs x {emb.n_features}")
    if json_out is not None:
        record = sweep_record(terms, n_samples=emb.n_samples, n_features=emb.n_features, nt_xent=nt_xent)
        write_text_output(json_out, compact_json(_clean(record)) + "\n")
    if figure is not None:
        wrote(save_figure(plot_temperature_sweep(terms.taus, terms.values, n_samples=emb.n_samples), figure))
    if distances is not None:
        pos, neg = _distance_samples(X, Y, np.random.default_rng(seed))
        wrote(save_figure(plot_sorted_distances(pos, neg, n_samples=emb.n_samples), distances))


def _print_sweep(taus: np.ndarray, values: dict, title: str) -> None:
    from geometry_probe.functional.infonce import INFONCE_QUANTITIES

    names = [n for n in INFONCE_QUANTITIES if n in values]
    rows = [[format_number(float(tau)), *(format_number(float(values[n][k])) for n in names)]
            for k, tau in enumerate(taus)]
    columns = ["τ", *(_HEADERS[n] for n in names)]
    print_table(title, columns, rows, numeric=columns)


def _distance_samples(X, Y, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distances of unit rows: up to ``MAX_SHOWN_DISTANCES`` positive pairs and as many random pairs i != j."""
    from geometry_probe.pairwise import unit_rows

    N = X.shape[0]
    pos = rng.choice(N, min(N, MAX_SHOWN_DISTANCES), replace=False)
    i = rng.integers(0, N, MAX_SHOWN_DISTANCES)
    j = (i + rng.integers(1, N, MAX_SHOWN_DISTANCES)) % N
    U, V = unit_rows(X).double(), unit_rows(Y).double()
    return ((U[pos] - V[pos]).norm(dim=1).cpu().numpy(), (U[i] - U[j]).norm(dim=1).cpu().numpy())


@app.command(name="tolerance-plane")
def tolerance_plane(
    results: Annotated[list[Path], typer.Argument(help="Results JSONs (`geoprobe analyze --labels ... --json`), "
                                                  "one point each, in this order.", show_default=False)],
    out: Annotated[Path, typer.Option("-o", "--output", "--out", help="Figure file (.pdf, .png or .svg; --out is the "
                                      "old name).")],
    version: VersionOpt = False,
) -> None:
    """The uniformity–tolerance plane of Wang & Liu (2021): one point per checkpoint, run or temperature."""
    from geometry_probe.reporting.contrastive_figures import plot_uniformity_tolerance
    from geometry_probe.reporting.layer_sweep_figure import save_figure

    gp.check_output_path(out, inputs=results)
    points = []
    for file in results:
        scalars = gp.Results.from_json(file).scalars()
        if "contrastive/tolerance" not in scalars or "contrastive/uniformity" not in scalars:
            raise InvalidInputError(f"{file}: no contrastive/tolerance; analyse with --labels (and the contrastive "
                                    "analyzer) first.")
        points.append((file.stem, scalars["contrastive/uniformity"], scalars["contrastive/tolerance"]))
    wrote(save_figure(plot_uniformity_tolerance(points), out))
