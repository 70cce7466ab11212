"""Figures and the HTML report: structure, baselines, escaping, offline, a real browser."""

import shutil
import subprocess

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.reporting import static
from geometry_probe.reporting.html_report import write_report


@pytest.fixture(scope="module")
def results():
    X, y = gp.datasets.make_simplex_etf(4, 16, 60, noise=0.3)
    names = np.array(["<script>alert(1)</script>", "b&c", "cat", "dog"])[y]
    return gp.analyze(X, ["spectrum", "orthogonality", "contrastive"], labels=names)


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
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "rank"
    np.testing.assert_allclose(lines[0].get_ydata(), results["spectrum"].arrays["covariance_eigenvalues"])
    assert lines[1].get_ydata().sum() == pytest.approx(lines[0].get_ydata().sum())   # same trace


def test_cosine_histogram_and_class_heatmap(results):
    ax = static.plot_cosine_histogram(results).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["all pairs", "uniform on S^15"]
    heat = static.plot_class_cosine(results)
    image = heat.axes[0].get_images()[0]
    assert image.get_array().shape == (4, 4)
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == list(results.meta["classes"])


def test_write_figures_writes_every_available_figure(results, tmp_path):
    paths = static.write_figures(results, tmp_path, fmt="svg")
    assert [p.name for p in paths] == ["spectrum.svg", "cosine_histogram.svg", "class_mean_cosine.svg",
                                       "verdicts.svg"]
    assert all(p.read_text().lstrip().startswith("<?xml") for p in paths)
    with pytest.raises(gp.InvalidInputError):
        static.write_figures(results, tmp_path, fmt="jpg")


def test_trajectory_figure_marks_onsets():
    trajectory = {"checkpoints": [{"step": s, "scalars": {"spectrum/rankme": 10.0 - s}} for s in range(5)],
                  "onsets": {"over_fusion": {"step": 3, "path": "e3"}}}
    fig = static.plot_trajectory(trajectory, ["spectrum/rankme"])
    lines = fig.axes[0].get_lines()
    assert lines[0].get_ydata().tolist() == [10.0, 9.0, 8.0, 7.0, 6.0]
    assert lines[1].get_xdata()[0] == 3 and lines[1].get_label() == "over_fusion onset"


def test_html_report_escapes_verdicts_first_offline(results, tmp_path):
    html = write_report(results, tmp_path / "r.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "b&amp;c" in html
    assert html.index('id="verdicts"') < html.index('id="spectrum"') < html.index('id="contrastive"')
    assert "http://" not in html and "https://" not in html                 # nothing fetched
    assert html.count("data:image/png;base64,") == 3


@pytest.mark.browser
def test_report_renders_in_headless_chromium(results, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    report = write_report(results, tmp_path / "r.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert "Verdicts" in dom.stdout and "over_fusion" in dom.stdout
    assert "<script>alert" not in dom.stdout                                  # escaped text, not a script node
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=900,1200", report.as_uri()],
                   capture_output=True, timeout=120)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] == 1200 and pixels[..., :3].std() > 0.05          # not a blank page
