"""The documentation covers the code: public API, every CLI command and option, every metric
name; the quickstart matches the README; and the site really builds with Sphinx."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer

import geometry_probe as gp
from geometry_probe.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDE_PAGES = ("spectrum", "contrastive", "orthogonality", "neural_collapse", "knn", "compare", "diagnosis",
               "reporting", "monitor")


def _cli_reference_module():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "_ext" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _guide_text() -> str:
    return "\n".join((DOCS / "guide" / f"{page}.md").read_text(encoding="utf-8") for page in GUIDE_PAGES)


def _bash_blocks(text: str) -> list[list[str]]:
    """Lines of every ```bash block, trailing comments and spaces stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [[line.split("   #")[0].strip() for line in block.splitlines() if line.strip()] for block in blocks]


def test_every_public_name_is_in_the_api_reference():
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    missing = [name for name in gp.__all__ if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", sources)]
    assert missing == []


def test_cli_reference_renders_every_command_and_option():
    cli_reference = _cli_reference_module()
    helps = cli_reference.command_helps(app, "geoprobe")
    commands = typer.main.get_command(app).commands
    assert len(commands) >= 8
    assert set(helps) == {"geoprobe", *(f"geoprobe {name}" for name in commands)}
    for name, command in commands.items():
        text = helps[f"geoprobe {name}"]
        assert text.startswith(f"Usage: geoprobe {name} ")
        assert (command.help or "").split("\n")[0].strip()[:40] in " ".join(text.split())
        options = [opt for param in command.params for opt in param.opts if opt.startswith("--")]
        assert [opt for opt in options if opt not in text] == []
    assert "{cli-reference} geometry_probe.cli.main:app" in (DOCS / "cli.md").read_text(encoding="utf-8")


def test_cli_reference_discovers_nested_commands_of_any_app():
    cli_reference = _cli_reference_module()
    toy, sub = typer.Typer(), typer.Typer(help="Sub group.")

    @toy.command()
    def first(count: int = typer.Option(1, "--count", help="How many.")) -> None:
        """First command."""

    @sub.command()
    def inner() -> None:
        """Inner command."""

    toy.add_typer(sub, name="group")
    helps = cli_reference.command_helps(toy, "toy")
    assert list(helps) == ["toy", "toy first", "toy group", "toy group inner"]
    assert "--count" in helps["toy first"] and "How many." in helps["toy first"]
    assert "Inner command." in helps["toy group inner"]


def _all_metric_names() -> set[str]:
    """JSON names of every scalar the analyzers emit: labelled data with pairs, a classifier,
    sampled estimates, C > D + 1 (gnc2, welch_bound), and a 2-D projection."""
    X, y = gp.datasets.make_simplex_etf(n_classes=4, n_features=6, n_per_class=30, noise=0.3)
    views = X + 0.05 * np.random.default_rng(1).standard_normal(X.shape)
    classifier = np.random.default_rng(2).standard_normal((4, 6))
    res = gp.analyze(X, labels=y, params={"contrastive": {"views": views, "exact": False},
                                         "knn": {"exact": False},
                                         "neural_collapse": {"classifier": classifier}})
    rng = np.random.default_rng(3)
    many = gp.analyze(rng.standard_normal((60, 3)), ["neural_collapse", "orthogonality"],
                      labels=np.repeat(np.arange(6), 10))
    projection = gp.project(X, "pca").to_result()
    names = {*res.scalars(), *many.scalars(), *(f"projection/{k}" for k in projection.scalars)}
    assert {"neural_collapse/gnc2", "orthogonality/welch_bound", "contrastive/alignment",
            "contrastive/uniformity_stderr", "neural_collapse/nc4_agreement"} <= names
    return names


def test_every_metric_name_is_documented_in_the_user_guide():
    guide = _guide_text()
    undocumented = sorted(name for name in _all_metric_names() if f"`{name}`" not in guide)
    assert undocumented == []


def test_every_finding_is_documented():
    from geometry_probe.diagnosis import THRESHOLDS

    diagnosis = (DOCS / "guide" / "diagnosis.md").read_text(encoding="utf-8")
    for name, (warn, fail) in THRESHOLDS.items():
        row = next(line for line in diagnosis.splitlines() if line.startswith(f"| `{name}` |"))
        cells = row.split("|")
        assert (cells[3].strip() == "—") if warn is None else f"{warn:g}" in cells[3]
        assert f"{fail:g}" in cells[4]


def test_quickstart_commands_match_the_readme():
    readme = _bash_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    quickstart = _bash_blocks((DOCS / "quickstart.md").read_text(encoding="utf-8"))
    assert quickstart[0] == readme[0]
    assert len(readme[0]) == 2
    usage = (ROOT / "README.md").read_text(encoding="utf-8").split("## Use", 1)[1]
    assert _bash_blocks(usage)[0] == quickstart[1]


def test_docs_build_without_running_the_gallery(tmp_path):
    for module in ("sphinx", "myst_parser", "numpydoc", "sphinx_gallery"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install torch==2.13.0 -e '.[docs]'")
    # build from a copy: Sphinx writes generated sources (API stubs, gallery pages) next to the sources
    generated = shutil.ignore_patterns("_build", "auto_examples", "generated", "sg_execution_times.rst")
    shutil.copytree(DOCS, tmp_path / "docs", ignore=generated)
    shutil.copytree(ROOT / "gallery", tmp_path / "gallery", ignore=generated)
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")   # included by performance.md
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(tmp_path / "doctrees"),
                           "-D", "plot_gallery=0", str(tmp_path / "docs"), str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = ["index", "quickstart", "cli", "api/index", "api/functional", "api/analyzers", "api/reporting",
                "api/integrations", "api/generated/geometry_probe.analyze", *(f"guide/{p}" for p in GUIDE_PAGES)]
    assert [page for page in expected if not (out / f"{page}.html").is_file()] == []
    performance = (out / "performance.html").read_text(encoding="utf-8")
    assert "torch.pdist reference" in performance and "faiss IndexFlatL2" in performance   # results included
    cli_html = (out / "cli.html").read_text(encoding="utf-8")
    for name in typer.main.get_command(app).commands:
        assert f'id="cli-geoprobe-{name}"' in cli_html
    assert "geometry_probe.functional.spectrum.effective_rank" in (out / "api" / "functional.html").read_text(
        encoding="utf-8")
    # formulas render offline: MathJax is a local file of the site, and no page loads a script from elsewhere
    assert (out / "_static" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    for page in out.rglob("*.html"):
        scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page.read_text(encoding="utf-8"))
        assert [src for src in scripts if "://" in src or src.startswith("//")] == [], page
    assert "_static/mathjax/tex-svg-full.js" in (out / "guide" / "spectrum.html").read_text(encoding="utf-8")
    assert "overflow-x: auto" in (out / "_static" / "tables.css").read_text(encoding="utf-8")
    if (ROOT / "gallery" / "README.rst").is_file():
        assert (out / "auto_examples" / "index.html").is_file()
