"""Static figures and the HTML report: structure, baselines, escaping, offline, size, a real browser."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.baselines import uniformity_uniform_sphere
from geometry_probe.reporting import interactive, static
from geometry_probe.reporting.html_report import script_json, write_report
from tests._cli import run_cli

HOSTILE = "</script><script>document.title='pwned'</script>"


@pytest.fixture(scope="module")
def results():
    X, y = gp.datasets.make_simplex_etf(4, 16, 60, noise=0.3)
    names = np.array([HOSTILE, "b&c", "cat", "dog"])[y]
    res = gp.analyze(X, ["spectrum", "orthogonality", "contrastive"], labels=names)
    proj = gp.project(gp.Embeddings(X, labels=names), "pca").to_result()
    return gp.Results([*res.values(), proj], meta=res.meta, findings=res.findings)


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    path = write_report(results, tmp_path_factory.mktemp("report") / "r.html")
    return path, path.read_text(encoding="utf-8")


class _Tags(HTMLParser):
    """Every start tag with its attributes (script contents are not parsed as tags)."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html):
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _figure_specs(html):
    return {m.group(1): json.loads(m.group(2)) for m in re.finditer(
        r'<script type="application/json" class="plot-data" data-for="([^"]+)">(.*?)</script>', html, re.S)}


def test_random_pair_density_is_normalised_and_matches_sampling():
    t = np.linspace(-1, 1, 20001)
    for D in (3, 16, 128):
        assert np.trapezoid(static.random_pair_density(t, D), t) == pytest.approx(1.0, abs=1e-3)
    rng = np.random.default_rng(0)
    U = rng.standard_normal((20000, 16))
    V = rng.standard_normal((20000, 16))
    cos = (U * V).sum(1) / np.linalg.norm(U, axis=1) / np.linalg.norm(V, axis=1)
    assert np.var(cos) == pytest.approx(1 / 16, rel=0.05)          # Var = 1/D on S^{D-1}
    assert np.trapezoid(t**2 * static.random_pair_density(t, 16), t) == pytest.approx(1 / 16, rel=1e-3)


def test_spectrum_figure_has_data_and_baseline(results):
    fig = static.plot_spectrum(results)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["embeddings", "isotropic Gaussian, same N, D, trace"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "index i (largest eigenvalue first)"
    np.testing.assert_allclose(lines[0].get_ydata(), results["spectrum"].arrays["covariance_eigenvalues"])
    assert lines[1].get_ydata().sum() == pytest.approx(lines[0].get_ydata().sum())   # same trace


def test_cosine_histogram_and_class_heatmap(results):
    ax = static.plot_cosine_histogram(results).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["all pairs", "uniform on $S^{15}$"]   # mathtext: ours
    heat = static.plot_class_cosine(results, ordered=False)
    image = heat.axes[0].get_images()[0]
    np.testing.assert_allclose(image.get_array(), results["orthogonality"].arrays["class_mean_cosine"])
    shown = [HOSTILE[:17] + "..." if len(c) > 20 else c for c in results.meta["classes"]]  # tick names cut at 20
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == shown
    ordered = static.plot_class_cosine(results).axes[0]
    names = [t.get_text() for t in ordered.get_xticklabels()]
    order = [shown.index(n) for n in names]
    matrix = results["orthogonality"].arrays["class_mean_cosine"]
    np.testing.assert_allclose(ordered.get_images()[0].get_array(), matrix[np.ix_(order, order)])


def test_sample_cosine_heatmap_is_the_label_sorted_cosine_matrix():
    X, y = gp.datasets.make_simplex_etf(3, 8, 20, noise=0.3)
    perm = np.random.default_rng(1).permutation(len(y))
    X, y = X[perm], y[perm]
    names = np.array(["ant", "bee", "cow"])[y]
    res = gp.analyze(X, ["contrastive"], labels=names)
    order = np.argsort(y, kind="stable")
    U = X[order] / np.linalg.norm(X[order], axis=1, keepdims=True)
    ax = static.plot_sample_cosine(res).axes[0]
    np.testing.assert_allclose(ax.get_images()[0].get_array(), U @ U.T, atol=1e-12)
    assert "sorted by label" in ax.get_title()
    heat = interactive.plot_sample_cosine(res).data[0]
    np.testing.assert_allclose(np.asarray(heat.z), U @ U.T, atol=1e-12)
    assert list(heat.x) == [f"{row} · {names[row]}" for row in order]


def test_projection_figure_has_a_legend_and_states_the_count(results):
    ax = static.plot_projection(results, max_points=100).axes[0]
    shown = [HOSTILE[:37] + "..." if len(c) > 40 else c for c in results.meta["classes"]]  # names cut at 40
    legend = ax.get_figure().legends[0]                                                      # below the axes
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(shown)
    assert "showing 100 of 240 points" in ax.get_title()
    assert sum(len(c.get_offsets()) for c in ax.collections) == 100


def test_write_figures_writes_every_available_figure(results, tmp_path):
    paths = static.write_figures(results, tmp_path, fmt="svg")
    assert [p.name for p in paths] == ["spectrum.svg", "cosine_histogram.svg", "class_mean_cosine.svg", "simo.svg",
                                       "sample_cosine.svg", "verdicts.svg", "projection.svg"]
    assert all(p.read_text().lstrip().startswith("<?xml") for p in paths)
    with pytest.raises(gp.InvalidInputError):
        static.write_figures(results, tmp_path, fmt="jpg")


def test_trajectory_figure_marks_onsets():
    trajectory = {"checkpoints": [{"step": s, "scalars": {"spectrum/rankme": 10.0 - s}} for s in range(5)],
                  "onsets": {"over_fusion": {"step": 3, "path": "e3"}}}
    fig = static.plot_trajectory(trajectory, ["spectrum/rankme"])
    lines = fig.axes[0].get_lines()
    assert lines[0].get_ydata().tolist() == [10.0, 9.0, 8.0, 7.0, 6.0]
    assert lines[1].get_xdata()[0] == 3 and lines[1].get_label() == "over_fusion onset, checkpoint 3"


def test_script_json_cannot_close_a_script_block():
    """JSON embedded in the report cannot close its <script> block (<, >, & and line separators escaped)."""
    text = script_json({"name": "</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"name": "</script><!-- & \u2028"}


def test_report_verdicts_first_then_a_section_per_analyzer(results, report):
    _, html = report
    order = [html.index(f'id="{name}"') for name in ("verdicts", "spectrum", "orthogonality", "contrastive",
                                                      "projection")]
    assert order == sorted(order)
    for finding in results.findings:
        assert f'<td class="verdict {finding["verdict"]}">{finding["verdict"]}</td>' in html
    assert "exp(H(σ/Σσ))" in html and "simplex ETF" in html                    # formulas
    baseline = f"{uniformity_uniform_sphere(16):.4g} (uniform on the sphere (lowest reachable))"
    assert re.search(r"<td>uniformity</td><td>[-0-9.e]+</td><td>" + re.escape(baseline) + "</td><td>how evenly",
                     html)
    assert "<td>trustworthiness</td>" in html


def test_report_embeds_plotly_once_and_fetches_nothing(report):
    import plotly.offline

    _, html = report
    bundle = plotly.offline.get_plotlyjs()
    assert html.count(bundle[:300]) == 1 and html.count(bundle[-300:]) == 1
    for tag, attrs in _tags(html):
        for attribute in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(attribute) or ""), (tag, attrs)
    scripts = [attrs for tag, attrs in _tags(html) if tag == "script"]
    assert all("src" not in attrs for attrs in scripts)
    assert set(_figure_specs(html)) == {"figure-verdicts", "figure-spectrum-spectrum",
                                        "figure-orthogonality-class_mean_cosine", "figure-orthogonality-simo",
                                        "figure-contrastive-cosine_histogram", "figure-contrastive-sample_cosine",
                                        "figure-projection-projection"}


def test_report_escapes_user_strings_in_page_and_figure_json(results, report):
    """Label and file names with markup show as text in the page and in the figures' JSON."""
    _, html = report
    assert HOSTILE not in html and "<script>document.title" not in html
    assert "&lt;/script&gt;&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html   # classes list
    assert "b&amp;c" in html
    projection = _figure_specs(html)["figure-projection-projection"]
    names = [trace["name"] for trace in projection["data"]]
    assert "&lt;/script&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;" in names    # plotly shows it as text
    assert "b&amp;c" in names


def test_static_report_has_no_script(results, tmp_path):
    """The static report (--static) holds no script at all, only inline PNG figures."""
    html = write_report(results, tmp_path / "s.html", interactive=False).read_text()
    assert "<script" not in html and html.count("data:image/png;base64,") == 7
    with pytest.raises(gp.InvalidInputError):
        write_report(results, tmp_path / "t.html", max_points=0)


def test_report_size_is_bounded_at_a_million_points(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 50_000)
    coords = rng.standard_normal((50_000, 2)) + labels[:, None]
    projection = gp.Result("projection", {"trustworthiness": 0.93},
                           arrays={"coords": coords, "indices": np.arange(50_000), "labels": labels},
                           params={"method": "umap", "n_total": 1_000_000, "n_shown": 50_000})
    res = gp.Results([projection], meta={"n_samples": 1_000_000, "n_features": 64, "n_classes": 10,
                                         "classes": [f"class {i}" for i in range(10)]})
    path = write_report(res, tmp_path / "big.html")
    assert path.stat().st_size <= 15 * 2**20
    spec = _figure_specs(path.read_text())["figure-projection-projection"]
    assert "showing 10000 of 1000000 points" in spec["layout"]["title"]["text"]
    assert len(spec["data"]) == 10


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium); the browser test needs one")
    return browser


def _open(browser, page, profile, *extra):
    """Load ``page`` headless; return (stdout, console lines logged by the page)."""
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=15000", f"--user-data-dir={profile}"]
    run = subprocess.run([browser, *flags, *extra, page.as_uri()], capture_output=True, text=True, timeout=180)
    return run.stdout, [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.browser
def test_console_capture_sees_page_errors(tmp_path):
    browser = _chromium()
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); missingFunction();</script></body></html>")
    _, console = _open(browser, page, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console) and any("missingFunction" in line for line in console)


@pytest.mark.browser
def test_report_renders_in_headless_chromium(results, report, tmp_path):
    browser = _chromium()
    path, _ = report
    dom, console = _open(browser, path, tmp_path / "profile", "--dump-dom")
    assert console == []                                                     # no errors, no messages at all
    assert dom.count('class="main-svg"') >= 6                                # plotly drew every figure
    assert "<title>geometry-probe report: embeddings</title>" in dom        # the hostile label never ran
    assert "&lt;/script&gt;&lt;script&gt;document.title='pwned'&lt;/script&gt;</text>" in dom   # legend text
    shot = tmp_path / "shot.png"
    _open(browser, path, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1000,1400",
          "--hide-scrollbars")
    from matplotlib.image import imread

    pixels = (imread(shot)[..., :3] * 255).round()
    assert pixels.shape[:2] == (1400, 1000) and pixels.std() > 20           # not a blank page
    ok_green = np.all(np.abs(pixels - [0, 158, 115]) <= 3, axis=-1)          # verdict cells: #009E73
    assert ok_green.sum() > 500


def test_cli_analyze_report_figures_and_report(tmp_path, capsys):
    X, y = gp.datasets.make_simplex_etf(3, 8, 40, noise=0.3)
    np.save(tmp_path / "x.npy", X.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    code, _, _ = run_cli(["analyze", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--analyzers",
                         "spectrum,orthogonality", "--json", tmp_path / "r.json", "--report", tmp_path / "a.html",
                         "--project", "pca"], capsys)
    assert code == 0
    specs = _figure_specs((tmp_path / "a.html").read_text())
    assert {"figure-spectrum-spectrum", "figure-projection-projection", "figure-orthogonality-simo"} <= set(specs)
    code, _, err = run_cli(["figures", tmp_path / "r.json", "-o", tmp_path / "figs", "--format", "png"], capsys)
    assert code == 0 and sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "class_mean_cosine.png", "projection.png", "simo.png", "spectrum.png", "verdicts.png"]
    code, _, _ = run_cli(["report", tmp_path / "r.json", "-o", tmp_path / "b.html", "--static"], capsys)
    assert code == 0 and "<script" not in (tmp_path / "b.html").read_text()
    code, _, err = run_cli(["report", tmp_path / "r.json", "-o", tmp_path / "r.json"], capsys)
    assert code == 2 and "refusing to overwrite an input" in err
    code, _, err = run_cli(["figures", tmp_path / "r.json", "-o", tmp_path / "figs", "--format", "jpg"], capsys)
    assert code == 2 and "jpg" in err


def test_cli_figures_of_a_trajectory_marks_onsets(tmp_path, capsys):
    from geometry_probe.reporting import _figure_data

    trajectory = {"checkpoints": [{"path": f"e{s}", "step": s, "scalars": {"spectrum/rankme": 8.0 - s,
                                                                          "knn/accuracy": 0.5}, "findings": []}
                                  for s in range(4)], "onsets": {"over_fusion": {"path": "e2", "step": 2}}}
    assert _figure_data.trajectory_keys(trajectory) == ["spectrum/rankme"]
    (tmp_path / "t.json").write_text(json.dumps(trajectory))
    code, _, _ = run_cli(["figures", tmp_path / "t.json", "-o", tmp_path / "figs", "--format", "svg"], capsys)
    assert code == 0 and [p.name for p in (tmp_path / "figs").iterdir()] == ["trajectory.svg"]
    svg = (tmp_path / "figs" / "trajectory.svg").read_text()
    assert ">over_fusion onset, epoch 2</text>" in svg and ">rankme</text>" in svg   # unit: paths e0..e3
