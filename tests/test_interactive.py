"""Interactive (plotly) twins: same names and inputs as the static figures, and the plotted data
equal the results' arrays."""

import inspect

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.reporting import interactive, static
from geometry_probe.reporting._figure_data import OKABE_ITO, similarity_order

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def results():
    X, y = gp.datasets.make_simplex_etf(4, 16, 60, noise=0.3)
    names = np.array([HOSTILE, "b&c", "cat", "dog"])[y]
    res = gp.analyze(X, ["spectrum", "orthogonality", "contrastive"], labels=names)
    proj = gp.project(gp.Embeddings(X, labels=names), "pca").to_result()
    return gp.Results([*res.values(), proj], meta=res.meta, findings=res.findings)


def _unescape(text):
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_same_names_and_inputs_as_static():
    assert set(interactive.FIGURES) == set(static.FIGURES)
    for name, function in interactive.FIGURES.items():
        twin = static.FIGURES[name]
        assert function.__name__ == twin.__name__
        static_parameters = set(inspect.signature(twin).parameters) - {"size"}     # print size: static only
        assert set(inspect.signature(function).parameters) == static_parameters
    for name in ("plot_trajectory", "plot_simo"):
        assert set(inspect.signature(getattr(interactive, name)).parameters) == \
            set(inspect.signature(getattr(static, name)).parameters) - {"size"}


def test_spectrum_traces_axes_and_data(results):
    fig = interactive.plot_spectrum(results)
    assert [t.type for t in fig.data] == ["scatter", "scatter"]
    assert [t.name for t in fig.data] == ["embeddings", "isotropic Gaussian, same N, D, trace"]
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "index i (largest eigenvalue first)"
    assert fig.layout.yaxis.title.text == "eigenvalue λ (squared units)"
    eig = results["spectrum"].arrays["covariance_eigenvalues"]
    np.testing.assert_allclose(fig.data[0].y, np.where(eig > 0, eig, np.nan))
    np.testing.assert_array_equal(fig.data[0].x, np.arange(1, eig.size + 1))
    assert np.sum(fig.data[1].y) == pytest.approx(eig.sum())             # baseline has the same trace
    assert fig.data[1].line.dash == "dash"


def test_cosine_histogram_densities_and_sphere_baseline():
    edges = np.linspace(-1, 1, 101)
    pos = np.zeros(100)
    pos[90:] = 7.0                                                          # all in (0.8, 1]
    neg = np.full(100, 3.0)                                                 # flat on [-1, 1]
    res = gp.Results([gp.Result("contrastive", {}, arrays={"cosine_hist_edges": edges, "cosine_hist_all": pos + neg,
                                                             "cosine_hist_pos": pos, "cosine_hist_neg": neg})],
                     meta={"n_features": 16})
    fig = interactive.plot_cosine_histogram(res)
    assert [t.name for t in fig.data] == ["all pairs", "positive pairs", "negative pairs", "uniform on S^15"]
    np.testing.assert_allclose(fig.data[0].x, np.linspace(-0.99, 0.99, 100))
    np.testing.assert_allclose(fig.data[1].y, np.r_[np.zeros(90), np.full(10, 5.0)])   # 1 / (10 bins * 0.02)
    np.testing.assert_allclose(fig.data[2].y, 0.5)                                       # 1 / (100 bins * 0.02)
    assert all(t.line.shape == "hvh" for t in fig.data[:3]) and fig.data[3].line.dash == "dot"
    t = np.asarray(fig.data[3].x)
    expected = (1 - t**2) ** 6.5 / np.trapezoid((1 - np.linspace(-1, 1, 20001) ** 2) ** 6.5, dx=1e-4)
    np.testing.assert_allclose(fig.data[3].y, expected, rtol=1e-6)          # (1-t²)^((D-3)/2), normalised
    assert fig.layout.xaxis.title.text == "cosine similarity"
    assert fig.layout.yaxis.title.text == "density (per unit cosine)"


def test_k_occurrence_against_the_binomial_null():
    hist = np.array([2.0, 3.0, 1.0, 0.0, 4.0])                      # 10 rows, N_k = 0..4, k = 2
    res = gp.Results([gp.Result("knn", {"hubness_skew": 0.5}, arrays={"knn_k_occurrence_hist": hist},
                                params={"k": 2})])
    fig = interactive.plot_k_occurrence(res)
    observed, null = fig.data
    assert observed.name == "embeddings" and null.name.startswith("no hubs")
    np.testing.assert_allclose(observed.y[:5], [0.2, 0.3, 0.1, 0.0, 0.4])
    assert list(observed.x[:5]) == [0, 1, 2, 3, 4] and fig.layout.xaxis.title.text.startswith("N_k")
    assert null.y[0] == pytest.approx((7 / 9) ** 9)                 # P(N_k = 0), Binomial(9, 2/9)
    assert null.y[1] == pytest.approx(9 * (2 / 9) * (7 / 9) ** 8)
    line = static.plot_k_occurrence(res).axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), observed.y)


def test_class_cosine_heatmap_is_the_matrix_in_similarity_order(results):
    fig = interactive.plot_class_cosine(results)
    (heat,) = fig.data
    assert heat.type == "heatmap" and (heat.zmin, heat.zmax) == (-1.0, 1.0)
    assert list(heat.x) == list(heat.y) and fig.layout.xaxis.type == "category"
    assert interactive.plain(HOSTILE) in heat.x                              # shown as text, not markup
    order = [list(results.meta["classes"]).index(_unescape(n)) for n in heat.x]
    matrix = results["orthogonality"].arrays["class_mean_cosine"]
    np.testing.assert_allclose(np.asarray(heat.z), matrix[np.ix_(order, order)])
    label_order = interactive.plot_class_cosine(results, ordered=False).data[0]
    assert [_unescape(n) for n in label_order.x] == list(results.meta["classes"])


def test_similarity_order_puts_similar_classes_side_by_side():
    # classes 0 and 2 nearly parallel, 1 and 3 nearly parallel, the two pairs orthogonal
    M = np.array([[1.0, 0.0, 0.95, 0.1], [0.0, 1.0, 0.05, 0.9], [0.95, 0.05, 1.0, 0.0], [0.1, 0.9, 0.0, 1.0]])
    order = similarity_order(M).tolist()
    assert abs(order.index(0) - order.index(2)) == 1 and abs(order.index(1) - order.index(3)) == 1
    assert similarity_order(np.array([[1.0, np.nan], [np.nan, 1.0]])).tolist() == [0, 1]


def test_simo_matrices_both_backends(results):
    fig = interactive.plot_simo(results)
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    assert [a.text for a in fig.layout.annotations] == ["SimO (μ_c·μ_c')²", "SimO ‖μ_c − μ_c'‖²"]
    order = [list(results.meta["classes"]).index(_unescape(n)) for n in fig.data[0].x]
    arrays = results["orthogonality"].arrays
    for trace, key in zip(fig.data, ("simo_sqdot", "simo_distance")):
        np.testing.assert_allclose(np.asarray(trace.z), arrays[key][np.ix_(order, order)])
    np.testing.assert_allclose(np.diag(np.asarray(fig.data[1].z)), 0.0, atol=1e-12)   # ‖μ_c − μ_c‖² = 0
    axes = static.plot_simo(results).axes
    images = [ax.get_images()[0] for ax in axes if ax.get_images()]
    for image, trace in zip(images, fig.data):
        np.testing.assert_allclose(image.get_array(), np.asarray(trace.z))


def test_verdict_bars_values_baselines_and_colours(results):
    fig = interactive.plot_scalar_summary(results)
    bars, baselines, fails = fig.data
    assert (bars.type, baselines.name, fails.name) == ("bar", "null baseline", "fail threshold")
    findings = [f for f in results.findings if np.isfinite(f["value"])]
    assert list(bars.y) == [f["name"] for f in findings]
    np.testing.assert_allclose(bars.x, [f["value"] for f in findings])
    np.testing.assert_allclose(baselines.x, [f["baseline"] for f in findings])
    np.testing.assert_allclose(fails.x, [f["threshold"]["fail"] for f in findings])
    colours = {"ok": OKABE_ITO[2], "warn": OKABE_ITO[1], "fail": OKABE_ITO[3]}
    assert list(bars.marker.color) == [colours[f["verdict"]] for f in findings]


def test_trajectory_panels_and_onsets():
    trajectory = {"checkpoints": [{"step": 10 * s, "scalars": {"spectrum/rankme": 10.0 - s,
                                                                "contrastive/uniformity": -3.0 + s / 2}}
                                  for s in range(5)],
                  "onsets": {"over_fusion": {"step": 30, "path": "e3"}}}
    fig = interactive.plot_trajectory(trajectory, ["spectrum/rankme", "contrastive/uniformity"])
    curves = [t for t in fig.data if t.mode == "lines+markers"]
    onsets = [t for t in fig.data if t.name == "over_fusion onset"]
    assert [t.name for t in curves] == ["spectrum/rankme", "contrastive/uniformity"]
    assert list(curves[0].y) == [10.0, 9.0, 8.0, 7.0, 6.0] and list(curves[0].x) == [0, 10, 20, 30, 40]
    assert len(onsets) == 2 and all(list(t.x) == [30, 30] for t in onsets)
    assert [t.showlegend for t in onsets] == [True, False]                 # one legend entry
    assert list(onsets[0].y) == [6.0, 10.0]                                # spans the panel's range
    assert fig.layout.yaxis.title.text == "rankme" and fig.layout.xaxis2.title.text == "step"


def test_projection_one_trace_per_class_with_the_stored_points(results):
    fig = interactive.plot_projection(results)
    proj = results["projection"]
    assert [t.type for t in fig.data] == ["scatter"] * 4
    assert sorted(_unescape(t.name) for t in fig.data) == sorted(results.meta["classes"])
    coords, labels = proj.arrays["coords"], proj.arrays["labels"].astype(int)
    for trace in fig.data:
        code = list(results.meta["classes"]).index(_unescape(trace.name))
        np.testing.assert_allclose(np.column_stack([trace.x, trace.y]), coords[labels == code])
    assert "showing 240 of 240 points" in fig.layout.title.text


def test_projection_downsampling_is_stratified_and_stated(results):
    fig = interactive.plot_projection(results, max_points=100)
    assert [len(t.x) for t in fig.data] == [25, 25, 25, 25]                # 60 rows per class -> 25 each
    assert "showing 100 of 240 points" in fig.layout.title.text
    coords = {tuple(row) for row in results["projection"].arrays["coords"]}
    assert all((x, y) in coords for t in fig.data for x, y in zip(t.x, t.y))


def test_missing_analyzer_is_a_clear_error(results):
    only_spectrum = gp.Results([results["spectrum"]], meta=results.meta)
    with pytest.raises(gp.InvalidInputError, match="orthogonality"):
        interactive.plot_class_cosine(only_spectrum)
