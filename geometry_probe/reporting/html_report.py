"""One self-contained HTML report: verdicts first, then a section per analyzer.

Works offline: figures are PNGs embedded as base64, no scripts, fonts or styles are fetched.
Every user-provided string (file name, label names, notes) goes through jinja2's
autoescaping, so a label ``<script>…</script>`` shows as text. Written atomically.
"""

from __future__ import annotations

import base64
import io
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

from geometry_probe import __version__
from geometry_probe._atomic import atomic_write_text
from geometry_probe._optional import require
from geometry_probe.reporting import static
from geometry_probe.result import Results

ABOUT = {
    "spectrum": "effective rank exp(H(σ/Σσ)) of the centred matrix (Roy & Vetterli 2007); RankMe on the raw matrix "
                "(Garrido et al. 2023); stable rank Σσ²/σ₁²; participation ratio (Σλ)²/Σλ²; α-ReQ power-law slope.",
    "contrastive": "uniformity log mean exp(−t‖x̂ᵢ−x̂ⱼ‖²) over pairs i<j and alignment mean ‖x̂−ŷ‖^α "
                   "(Wang & Isola 2020); cosine statistics of L2-normalised rows.",
    "knn": "weighted kNN accuracy (DINO protocol), skewness of the k-occurrence (Radovanović et al. 2010), "
           "TwoNN intrinsic dimension (Facco et al. 2017).",
    "neural_collapse": "NC1 = Tr(Σ_W Σ_B†)/C, NC2 ETF/equinorm/equiangularity, NC3 self-duality, NC4 agreement "
                       "with the nearest class centre (Papyan, Han & Donoho 2020).",
    "orthogonality": "cosine between class means (uncentred and centred), distances to an orthogonal frame and a "
                     "simplex ETF, SimO matrices, Welch bound.",
    "projection": "2-D map (PCA, t-SNE or UMAP) of a stratified subsample; trustworthiness measures how well "
                  "it keeps each point's nearest neighbours.",
}
FIGURE_OF = {"spectrum": "spectrum", "contrastive": "cosine_histogram", "orthogonality": "class_mean_cosine",
             "projection": "projection"}


def write_report(results: Results, path: str | os.PathLike[str]) -> Path:
    """Render ``results`` into one self-contained HTML file at ``path`` and return it."""
    jinja2 = require("jinja2", extra="report")
    template_text = resources.files("geometry_probe.reporting").joinpath("templates/report.html.j2").read_text(
        encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    available = set(static.available_figures(results))
    sections = []
    for name, result in results.items():
        figures = []
        if FIGURE_OF.get(name) in available:
            figures.append({"name": FIGURE_OF[name], "png": _png(static.FIGURES[FIGURE_OF[name]][1](results))})
        sections.append({"name": name, "about": ABOUT.get(name, ""), "notes": list(result.notes),
                         "scalars": [(k, _format(v)) for k, v in result.scalars.items()], "figures": figures})
    meta = results.meta
    html = env.from_string(template_text).render(
        name=str(meta.get("name", "embeddings")), n_samples=meta.get("n_samples", "?"),
        n_features=meta.get("n_features", "?"), n_classes=meta.get("n_classes", 0), version=__version__,
        findings=results.findings, sections=sections, classes=[str(c) for c in meta.get("classes", [])])
    return atomic_write_text(path, html)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _format(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.6g}"
