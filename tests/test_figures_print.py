"""Every figure type prints: size presets, fonts >= 7 pt, nothing clipped, TrueType PDFs, literal
user text, mathtext where it is ours, legends off the data, and the paper figures draw the
numbers of the JSON they come from (checked against independent float64 arithmetic)."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.layer_sweep import LayerSweep
from geometry_probe.reporting import figure_style, paper_figures, static
from geometry_probe.reporting.figure_inputs import read_runs
from geometry_probe.trajectory import track, write_track_json
from tests._cli import run_cli

ODD = r"$\undefinedcmd$"
POINTS_PER_INCH = 72


def _drawn_texts(fig):
    """(Text artist, string as drawn, ismath) for every text the renderer really draws."""
    renderer = fig.canvas.get_renderer()
    drawn = []
    original = renderer.draw_text

    def record(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        drawn.append((mtext, s, ismath))
        return original(gc, x, y, s, prop, angle, ismath, mtext)

    renderer.draw_text = record
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text
    return [item for item in drawn if item[0] is not None and item[1]]


def _outside(fig, texts):
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    bad = []
    for artist, text, _ in texts:
        extent = artist.get_window_extent(renderer)
        if extent.x0 < box.x0 - 0.5 or extent.y0 < box.y0 - 0.5 or extent.x1 > box.x1 + 0.5 or extent.y1 > box.y1 + 0.5:
            bad.append(text)
    return bad


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def results():
    X, y = gp.datasets.make_simplex_etf(4, 12, 25, noise=0.4)
    names = np.array([ODD, "b&c", "a class name far longer than any tick can hold", "dog"])[y]
    res = gp.analyze(X, ["spectrum", "orthogonality", "contrastive", "knn"], labels=names,
                     params={"contrastive": {"groups": y}})
    projection = gp.project(gp.Embeddings(X, labels=names), "pca").to_result()
    return gp.Results([*res.values(), projection], meta=res.meta, findings=res.findings)


@pytest.fixture(scope="module")
def trajectory():
    X, y = gp.datasets.make_simplex_etf(3, 8, 20, noise=0.3)
    sources = [(f"run/epoch_{e}.npy", e, gp.Embeddings(X * (e + 1) + 0.1 * e, labels=y)) for e in range(3)]
    out = track(sources, ["spectrum", "contrastive"], params={"contrastive": {"groups": y}})
    out["onsets"] = {"over_fusion": {"step": 1, "path": "a"}, "anisotropy": {"step": 1, "path": "b"},
                     ODD: {"step": 2, "path": "c"}}
    return out


@pytest.fixture(scope="module")
def sweep_rows(results):
    return [{"layer": f"encoder.block.{i}.mlp", "depth": i, "spectrum/effective_rank": 5.0 - i,
             "spectrum/rankme": 6.0 - i} for i in range(3)]


def _all_figures(results, trajectory, sweep_rows, size):
    spectra = {"a": results, ODD: np.array([3.0, 1.0, 0.5, 0.0])}
    return {**{name: make(results, size=size) for name, make in static.FIGURES.items()},
            "trajectory": static.plot_trajectory(trajectory, ["spectrum/rankme", "contrastive/uniformity"], size=size),
            "spectra": paper_figures.plot_spectra(spectra, size=size),
            "alignment_uniformity": paper_figures.plot_alignment_uniformity({"r": results, "t": trajectory},
                                                                            size=size),
            "compare_trajectory": paper_figures.plot_compare_trajectories({"a": trajectory, "b": trajectory},
                                                                          size=size),
            "layer_curves": paper_figures.plot_layer_curves({"e1": sweep_rows, "e2": sweep_rows}, size=size),
            "compare_metrics": paper_figures.plot_compare_metrics({"a": results, ODD: results}, size=size),
            "compare_cosines": paper_figures.plot_compare_cosine_histograms({"a": results, "b": results}, size=size)}


@pytest.mark.parametrize("size", ["column", "full"])
def test_every_figure_prints_at_its_preset(results, trajectory, sweep_rows, size):
    """Width is the preset, every drawn text is >= 7 pt and inside the figure, legends miss the axes."""
    for name, fig in _all_figures(results, trajectory, sweep_rows, size).items():
        assert fig.get_figwidth() == {"column": 3.25, "full": 6.75}[size], name
        texts = _drawn_texts(fig)
        assert texts, name
        assert min(artist.get_fontsize() for artist, _, _ in texts) >= 7.0, name
        assert _outside(fig, texts) == [], name
        renderer = fig.canvas.get_renderer()
        for legend in fig.legends:
            for ax in fig.axes:
                if ax.get_visible():
                    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)), name


def test_png_is_the_preset_width_times_dpi(results):
    fig = static.plot_spectrum(results)
    assert _png_size(static.render(fig, "png")) [0] == round(3.25 * 300)        # 300 dpi by default
    full = static.plot_spectrum(results, size="full")
    width, height = _png_size(static.render(full, "png", dpi=150))
    assert width == round(6.75 * 150) and height == round(full.get_figheight() * 150)


def test_pdf_embeds_truetype_fonts_and_svg_keeps_text(results):
    pdf = static.render(static.plot_cosine_histogram(results), "pdf")
    assert pdf.startswith(b"%PDF-")
    assert b"/FontFile2" in pdf and b"/CIDFontType2" in pdf            # TrueType (Type 42) programs embedded
    assert b"/Type3" not in pdf and b"/FontFile3" not in pdf and b"/Subtype /Type1" not in pdf
    svg = static.render(static.plot_cosine_histogram(results), "svg").decode()
    assert ">pairwise cosine similarity, all pairs<" not in svg and ">cosine similarity</text>" in svg


def test_user_text_is_literal_and_our_math_is_rendered(results):
    """A class called $\\undefinedcmd$ draws as written (no mathtext error); S^{D-1} is mathtext."""
    heat = static.plot_class_cosine(results, ordered=False)
    drawn = {text: ismath for _, text, ismath in _drawn_texts(heat)}
    assert drawn[ODD] is False                                         # drawn as the characters themselves
    static.render(heat, "png")                                         # and no ParseFatalException
    histogram = static.plot_cosine_histogram(results)
    drawn = {text: ismath for _, text, ismath in _drawn_texts(histogram)}
    assert drawn["uniform on $S^{11}$"] in (True, "TeX")                # D = 12: our label, as mathtext
    assert not any("S^11" in text and not ismath for text, ismath in drawn.items())
    spectra = paper_figures.plot_spectra({ODD: [2.0, 1.0]})
    assert (ODD, False) in {(text, ismath) for _, text, ismath in _drawn_texts(spectra)}


def test_onsets_are_distinct_per_finding_and_never_coincide(trajectory):
    fig = static.plot_trajectory(trajectory, ["spectrum/rankme"])
    onsets = [line for line in fig.axes[0].get_lines() if "onset" in line.get_label()]
    assert len(onsets) == 3
    assert len({line.get_color() for line in onsets}) == 3
    assert len({str(line.get_linestyle()) for line in onsets}) == 3
    where = [line.get_xdata()[0] for line in onsets]
    assert len(set(where)) == 3 and where[0] < 1 < where[1] and where[2] == 2     # same step: spread around it
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["over_fusion onset, epoch 1", "anisotropy onset, epoch 1", r"\$\undefinedcmd\$ onset, epoch 2"]
    assert fig.axes[0].get_xlabel() == "epoch"


def test_step_unit_is_recorded_by_track_and_defaults_to_checkpoint(trajectory):
    assert trajectory["step_unit"] == "epoch"
    plain = {"checkpoints": [{"path": f"model{i}.npy", "step": i, "scalars": {"spectrum/rankme": 1.0}}
                             for i in range(3)]}
    assert static.plot_trajectory(plain, ["spectrum/rankme"]).axes[0].get_xlabel() == "checkpoint"
    plain["step_unit"] = "step"
    assert static.plot_trajectory(plain, ["spectrum/rankme"]).axes[0].get_xlabel() == "step"


def test_verdict_panels_shade_the_failing_side(results):
    fig = static.plot_scalar_summary(results)
    panels = {ax.get_title(loc="left").split(":")[0]: ax for ax in fig.axes if ax.get_visible()}
    assert set(panels) == {f["name"] for f in results.findings if np.isfinite(f["value"])}
    for finding in results.findings:
        ax = panels.get(finding["name"])
        if ax is None:
            continue
        low, high = ax.get_xlim()
        fail = finding["threshold"]["fail"]
        bands = sorted((round(p.get_x(), 9), round(p.get_x() + p.get_width(), 9)) for p in ax.patches)
        worse_above = finding["name"] in ("over_fusion", "anisotropy")
        assert (round(fail, 9), round(high, 9)) in bands if worse_above else (round(low, 9), round(fail, 9)) in bands
        value = [line for line in ax.get_lines() if line.get_marker() == "o"][0]
        assert value.get_xdata()[0] == pytest.approx(finding["value"])
    assert [t.get_text() for t in fig.legends[0].get_texts()][-3:] == ["null baseline", "warn band", "fail band"]


def test_spectra_are_normalised_shares_of_variance(results):
    eig = np.asarray(results["spectrum"].arrays["covariance_eigenvalues"], dtype=np.float64)
    fig = paper_figures.plot_spectra({"run": results, "raw": [5.0, 3.0, 2.0, 0.0]})
    first, second = fig.axes[0].get_lines()
    positive = np.sort(eig[eig > 0])[::-1]
    np.testing.assert_allclose(first.get_ydata()[: positive.size], positive / positive.sum(), rtol=1e-12)
    np.testing.assert_allclose(second.get_ydata()[:3], [0.5, 0.3, 0.2])
    assert np.isnan(second.get_ydata()[3]) and fig.axes[0].get_yscale() == "log"


def test_alignment_uniformity_plane_draws_the_saved_numbers(results, trajectory):
    fig = paper_figures.plot_alignment_uniformity({"r": results, "t": trajectory})
    lines = fig.axes[0].get_lines()
    scalars = results.scalars()
    assert lines[0].get_xydata().tolist() == [[scalars["contrastive/uniformity"], scalars["contrastive/alignment"]]]
    path = [[c["scalars"]["contrastive/uniformity"], c["scalars"]["contrastive/alignment"]]
            for c in trajectory["checkpoints"]]
    assert lines[1].get_xydata().tolist() == path
    assert "lower left is better" in fig.axes[0].get_title()
    with pytest.raises(gp.InvalidInputError, match="positive pairs"):
        paper_figures.plot_alignment_uniformity({"no pairs": gp.analyze(np.eye(6), ["contrastive"])})


def test_layer_curves_match_rows_by_layer_name(sweep_rows):
    later = [dict(row, **{"spectrum/rankme": 10.0 + row["depth"]}) for row in reversed(sweep_rows)]
    fig = paper_figures.plot_layer_curves({"e1": sweep_rows, "e2": later}, ["spectrum/rankme"])
    first, second = fig.axes[0].get_lines()
    assert first.get_xydata().tolist() == [[0, 6.0], [1, 5.0], [2, 4.0]]
    assert sorted(second.get_xydata().tolist()) == [[0, 10.0], [1, 11.0], [2, 12.0]]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["encoder.block.0.mlp", "encoder.block.1.mlp",
                                                                     "encoder.block.2.mlp"]


def test_bad_size_and_dpi_are_refused(results):
    with pytest.raises(gp.InvalidInputError, match="column"):
        static.plot_spectrum(results, size="a4")
    with pytest.raises(gp.InvalidInputError, match="dpi"):
        static.render(static.plot_spectrum(results), "png", dpi=0)
    assert figure_style.check_dpi(300.0) == 300


def test_cli_compare_overlays_runs_named_by_file_or_json(results, tmp_path, capsys):
    for stem in ("simclr", "byol"):
        results.to_json(tmp_path / f"{stem}.json")
    named = results.to_dict()
    named["name"] = "VICReg $λ$"
    (tmp_path / "third.json").write_text(json.dumps(named))
    runs = [tmp_path / f"{stem}.json" for stem in ("simclr", "byol", "third")]
    code, _, err = run_cli(["figures", *runs, "--compare", "-o", tmp_path / "f", "--format", "svg", "--size", "full"],
                          capsys)
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert written == ["alignment_uniformity.svg", "compare_cosine_histogram.svg", "compare_metrics.svg",
                       "compare_spectra.svg"]
    svg = (tmp_path / "f" / "compare_spectra.svg").read_text()
    assert all(f">{name}</text>" in svg for name in ("simclr", "byol", "VICReg $λ$"))
    assert re.search(r'width="486pt"', svg)                                   # 6.75 in
    code, _, err = run_cli(["figures", *runs[:2], "--compare", "--name", "A", "--name", "B $x$", "-o",
                           tmp_path / "g", "--format", "svg"], capsys)
    assert code == 0, err
    svg = (tmp_path / "g" / "compare_spectra.svg").read_text()
    assert ">A</text>" in svg and ">B $x$</text>" in svg and ">simclr</text>" not in svg


def test_cli_layer_sweep_and_trajectory_files(results, trajectory, sweep_rows, tmp_path, capsys):
    layer_results = {row["layer"]: results for row in sweep_rows}
    LayerSweep(sweep_rows, layer_results, {"n_samples": 100}).to_json(tmp_path / "layers.json")
    code, _, err = run_cli(["figures", tmp_path / "layers.json", "-o", tmp_path / "l", "--format", "png", "--dpi",
                           "100"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == ["layer_curves.png", "layer_spectra.png"]
    assert _png_size((tmp_path / "l" / "layer_curves.png").read_bytes())[0] == 325          # 3.25 in x 100 dpi
    write_track_json(trajectory, tmp_path / "t.json")
    code, _, err = run_cli(["figures", tmp_path / "t.json", "-o", tmp_path / "t", "--format", "png"], capsys)
    assert code == 0 and sorted(p.name for p in (tmp_path / "t").iterdir()) == ["alignment_uniformity.png",
                                                                              "trajectory.png"]
    runs = read_runs([tmp_path / "t.json", tmp_path / "t.json"])
    assert runs[0].name == runs[1].name == str(tmp_path / "t")


def test_gallery_page_imports_only_public_modules():
    """gallery/plot_paper_figures.py runs when copied alone: no private module, no gallery helper."""
    import ast
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "gallery" / "plot_paper_figures.py").read_text()
    modules = [alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
               for alias in node.names]
    modules += [node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)]
    assert modules and all(not part.startswith("_") for name in modules for part in name.split("."))
    assert all(name.split(".")[0] in {"json", "os", "pathlib", "matplotlib", "numpy", "torch", "geometry_probe"}
               for name in modules)
    assert "geoprobe figures simclr.json byol.json collapsed.json --compare" in source


@pytest.mark.parametrize("args, message", [
    (["a", "b"], "add --compare"),
    (["a", "t", "--compare"], "different kinds"),
    (["a", "--size", "a4"], "size"),
    (["a", "--dpi", "0"], "dpi"),
    (["a", "b", "--compare", "--name", "x"], "one per file"),
    (["bad"], 'rows[0]["spectrum/rankme"]: expected a number or null, got "high"'),
])
def test_cli_bad_figure_options_are_one_line_exit_2(results, trajectory, tmp_path, capsys, args, message):
    results.to_json(tmp_path / "a")
    results.to_json(tmp_path / "b")
    write_track_json(trajectory, tmp_path / "t")
    (tmp_path / "bad").write_text(json.dumps({"rows": [{"layer": "x", "spectrum/rankme": "high"}], "results": {}}))
    code, _, err = run_cli(["figures", *[tmp_path / a if a in ("a", "b", "t", "bad") else a for a in args], "-o",
                           tmp_path / "out"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
