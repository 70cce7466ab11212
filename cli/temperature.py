"""`geoprobe temperature` (InfoNCE against τ, one pass) and `geoprobe tolerance-plane`."""

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer
from rich.table import Table

import geometry_probe as gp
from geometry_probe._atomic import atomic_write_text, check_distinct_outputs
from geometry_probe._validation import resolve_device
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional.infonce import INFONCE_QUANTITIES, infonce_terms, parse_taus, sweep_record
from geometry_probe.reporting.contrastive_figures import (
    plot_sorted_distances,
    plot_temperature_sweep,
    plot_uniformity_tolerance,
)
from geometry_probe.reporting.layer_sweep_figure import save_figure
from geometry_probe.result import _clean, compact_json

from ._options import DeviceOpt, EmbeddingsArg, JsonOpt, KeyOpt, QuietOpt
from ._output import _format, console
from .app import app

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
) -> None:
    """InfoNCE, its alignment/uniformity split, symmetric and NT-Xent variants and the effective number
    of negatives at every temperature, all in one pass over the tiles."""
    temperatures = parse_taus(taus)
    if precision not in ("float64", "float32"):
        raise InvalidInputError(f"--precision: got {precision!r}; choose float64 or float32.")
    outputs = {"--json": json_out, "--figure": figure, "--distances": distances}
    check_distinct_outputs(outputs)
    for out in outputs.values():
        if out is not None:
            gp.check_output_path(out, inputs=[path, views])
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
        console.print(f"wrote {atomic_write_text(json_out, compact_json(_clean(record)) + chr(10))}")
    if figure is not None:
        drawn = plot_temperature_sweep(terms.taus, terms.values, n_samples=emb.n_samples)
        console.print(f"wrote {save_figure(drawn, figure)}")
    if distances is not None:
        pos, neg = _distance_samples(X, Y, np.random.default_rng(seed))
        console.print(f"wrote {save_figure(plot_sorted_distances(pos, neg, n_samples=emb.n_samples), distances)}")


def _print_sweep(taus: np.ndarray, values: dict, title: str) -> None:
    table = Table(title=title)
    names = [n for n in INFONCE_QUANTITIES if n in values]
    table.add_column("τ", justify="right")
    for name in names:
        table.add_column(_HEADERS[name], justify="right")
    for k, tau in enumerate(taus):
        table.add_row(_format(float(tau)), *(_format(float(values[n][k])) for n in names))
    console.print(table)


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
    out: Annotated[Path, typer.Option("-o", "--out", help="Figure file (.pdf, .png or .svg).")],
) -> None:
    """The uniformity–tolerance plane of Wang & Liu (2021): one point per checkpoint, run or temperature."""
    gp.check_output_path(out, inputs=results)
    points = []
    for file in results:
        scalars = gp.Results.from_json(file).scalars()
        if "contrastive/tolerance" not in scalars or "contrastive/uniformity" not in scalars:
            raise InvalidInputError(f"{file}: no contrastive/tolerance; analyse with --labels (and the contrastive "
                                    "analyzer) first.")
        points.append((file.stem, scalars["contrastive/uniformity"], scalars["contrastive/tolerance"]))
    console.print(f"wrote {save_figure(plot_uniformity_tolerance(points), out)}")
