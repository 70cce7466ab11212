"""One self-contained HTML report: verdicts first, then a section per analyzer.

Each section gives the formula, every value with its null baseline and what it means, and the
analyzer's figures. Figures are interactive (plotly, its JavaScript inlined once from the
installed package) or, with ``interactive=False``, static PNGs embedded as base64; nothing is
fetched, so the file works offline. The 2-D map shows at most ``max_points`` points (a
stratified subsample, stated in its title), which bounds the file size at any N.

User-provided strings (file name, label names, notes) are escaped by jinja2's autoescaping in
the page and, inside the figures' JSON, ``<``, ``>`` and ``&`` are written as JSON ``\\u`` escapes,
so neither ``</script>`` nor markup can break out of a script block. Written atomically.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from geometry_probe import __version__
from geometry_probe._atomic import atomic_write_text
from geometry_probe._optional import require
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.reporting import compare_figures, static
from geometry_probe.reporting import interactive as interactive_figures
from geometry_probe.reporting._figure_data import available_figures
from geometry_probe.reporting._metric_guide import FORMULAS, Shape, explain
from geometry_probe.reporting.compare_figures import COMPARE_ABOUT
from geometry_probe.result import Results

REPORT_MAX_POINTS = 10_000
FIGURES_OF = {"spectrum": ("spectrum",), "contrastive": ("cosine_histogram", "sample_cosine"), "knn": ("k_occurrence",),
              "orthogonality": ("class_mean_cosine", "simo"), "projection": ("projection",)}
_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                                  "\u2029": "\\u2029"})


def write_report(results: Results, path: str | os.PathLike[str], *, interactive: bool = True,
                 max_points: int = REPORT_MAX_POINTS, cka: Sequence[Any] = ()) -> Path:
    """Render ``results`` into one self-contained HTML file at ``path`` and return it.

    Parameters
    ----------
    results : Results
    path : path-like
        The HTML file to write (atomically).
    interactive : bool, default=True
        plotly figures (plotly.js inlined once, about 4.8 MB) instead of static PNGs.
    max_points : int, default=10000
        Points drawn in the 2-D map at most (stratified by label).
    cka : sequence of CkaMatrix, default=()
        Layer × layer or checkpoint × checkpoint CKA matrices (:func:`geometry_probe.cka_matrix`),
        each drawn as a heatmap section.

    Returns
    -------
    Path
    """
    if max_points < 1:
        raise InvalidInputError(f"max_points: got {max_points}; it must be at least 1.")
    jinja2 = require("jinja2", extra="report")
    template_text = resources.files("geometry_probe.reporting").joinpath("templates/report.html.j2").read_text(
        encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    render = _interactive_figure if interactive else _static_figure
    available = set(available_figures(results))
    options = {"projection": {"max_points": max_points}}
    shape = Shape.of(results.meta)
    sections = []
    for name, result in results.items():
        figures = [render(f"figure-{name}-{fig}", fig, results, options.get(fig, {}))
                   for fig in FIGURES_OF.get(name, ()) if fig in available]
        rows = [(key, _format(value), *explain(f"{name}/{key}", shape)) for key, value in result.scalars.items()]
        sections.append({"name": name, "about": FORMULAS.get(name, COMPARE_ABOUT if name == "compare" else ""),
                         "notes": list(result.notes),
                         "rows": rows, "figures": figures})
    verdict_figure = [render("figure-verdicts", "verdicts", results, {})] if "verdicts" in available else []
    heatmaps = [_heatmap(i, matrix, interactive) for i, matrix in enumerate(cka)]
    meta = results.meta
    page = env.from_string(template_text).render(
        name=str(meta.get("name", "embeddings")), n_samples=meta.get("n_samples", "?"),
        n_features=meta.get("n_features", _widths(meta)), n_classes=meta.get("n_classes", 0), version=__version__,
        findings=results.findings, verdict_figures=verdict_figure, sections=sections, heatmaps=heatmaps,
        classes=[str(c) for c in meta.get("classes", [])], plotlyjs=_plotlyjs() if interactive else "")
    return atomic_write_text(path, page)


def script_json(value: Any) -> str:
    """JSON text safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JS
    line separators become ``\\u`` escapes, which ``JSON.parse`` turns back into the same characters."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.translate(_SCRIPT_ESCAPES)


def _interactive_figure(element_id: str, name: str, results: Results, options: dict[str, Any]) -> dict[str, Any]:
    import plotly.io

    figure = interactive_figures.FIGURES[name](results, **options)
    return {"id": element_id, "name": name, "json": script_json(plotly.io.to_json(figure, validate=False)),
            "png": ""}


def _static_figure(element_id: str, name: str, results: Results, options: dict[str, Any]) -> dict[str, Any]:
    image = static.render(static.FIGURES[name](results, **options), "png", dpi=110)
    return {"id": element_id, "name": name, "json": "", "png": base64.b64encode(image).decode("ascii")}


def _heatmap(index: int, matrix: Any, interactive: bool) -> dict[str, Any]:
    """A CKA heatmap section: its id, its title and the figure (plotly JSON, or a PNG)."""
    element_id = f"figure-cka-{index}"
    if interactive:
        import plotly.io

        figure = {"id": element_id, "name": "cka", "png": "",
                  "json": script_json(plotly.io.to_json(compare_figures.interactive_heatmap(matrix), validate=False))}
    else:
        image = static.render(compare_figures.static_heatmap(matrix), "png", dpi=110)
        figure = {"id": element_id, "name": "cka", "json": "", "png": base64.b64encode(image).decode("ascii")}
    return {"id": f"cka-{index}", "title": compare_figures.title_of(matrix), "figure": figure}


def _widths(meta: Mapping[str, Any]) -> str:
    """"1024 | 768" for compare() results (widths of A and B) or a ``widths`` list (a CKA matrix), else "?"."""
    if isinstance(meta.get("a"), Mapping) and isinstance(meta.get("b"), Mapping):
        return f"{meta['a'].get('n_features', '?')} | {meta['b'].get('n_features', '?')}"
    if isinstance(meta.get("widths"), list):
        return " | ".join(str(width) for width in meta["widths"])
    return "?"


def _plotlyjs() -> str:
    """The installed plotly's plotly.js bundle, made safe to inline in one ``<script>`` element."""
    offline = require("plotly.offline", extra="report", package="plotly")
    return re.sub(r"</(script)", r"<\\/\1", offline.get_plotlyjs(), flags=re.IGNORECASE)


def _format(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.6g}"

