"""Projections judged by behaviour (trustworthiness, 2-D kNN accuracy), never by coordinates."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.neighbors import KNeighborsClassifier

import geometry_probe as gp
from geometry_probe.projection import stratified_sample


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(400, 20, centers=4, cluster_std=1.0, random_state=0)
    return gp.Embeddings(X, labels=y)


def _knn_2d(proj):
    return KNeighborsClassifier(5).fit(proj.coords, proj.labels).score(proj.coords, proj.labels)


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_maps_keep_neighbourhoods(blobs, method):
    proj = gp.project(blobs, method, random_state=0, **({"n_neighbors": 15} if method == "umap" else {}))
    assert proj.coords.shape == (400, 2)
    assert proj.trustworthiness >= 0.9
    assert _knn_2d(proj) >= 0.95


def test_pca_layout_is_reused_for_a_later_checkpoint(blobs):
    first = gp.project(blobs, "pca")
    moved = gp.Embeddings(np.asarray(blobs.X) + 0.01, labels=blobs.labels)
    later = gp.project(moved, "pca", reference=first)
    shift = np.asarray(first.model[1]).T @ np.full(20, 0.01)          # the offset, seen through the same basis
    np.testing.assert_allclose(later.coords, first.coords + shift, atol=1e-9)
    assert later.params["reused_layout"] is True


def test_tsne_layout_transform_places_points_near_their_cluster(blobs):
    first = gp.project(blobs, "tsne")
    later = gp.project(blobs, "tsne", reference=first)
    assert _knn_2d(later) >= 0.95


def test_stratified_subsample_keeps_class_shares():
    labels = np.repeat([0, 1, 2], [700, 200, 100])
    index = stratified_sample(labels, 1000, 100, random_state=0)
    assert np.bincount(labels[index]).tolist() == [70, 20, 10]
    assert np.all(np.diff(index) > 0)


def test_stratified_subsample_has_exactly_n_rows_and_every_label():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(1, 300, rng.integers(2, 25))
        labels = rng.permutation(np.repeat(np.arange(sizes.size), sizes))
        n = int(rng.integers(sizes.size, labels.size))
        index = stratified_sample(labels, labels.size, n, random_state=1)
        assert index.size == n == np.unique(index).size
        assert np.unique(labels[index]).size == sizes.size
        shares = np.bincount(labels[index], minlength=sizes.size)
        assert np.all(np.abs(shares - n * sizes / sizes.sum()) < 1 + (shares == 1))   # proportional, ±1


def test_projection_result_round_trips_and_figure_has_legend(blobs, tmp_path):
    from geometry_probe.reporting.static import plot_projection

    res = gp.analyze(blobs, "spectrum")
    res = gp.Results([*res.values(), gp.project(blobs, "pca").to_result()], meta=res.meta, findings=res.findings)
    res.to_json(tmp_path / "r.json")
    back = gp.Results.from_json(tmp_path / "r.json")
    fig = plot_projection(back)
    legend = fig.axes[0].get_legend() or fig.legends[0]              # print figures put legends below the axes
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2", "3"]
    assert "showing 400 of 400 points" in fig.axes[0].get_title()
    np.testing.assert_allclose(back["projection"].arrays["coords"], res["projection"].arrays["coords"])


def test_coordinates_are_rounded_far_below_a_pixel():
    from geometry_probe.projection import compact_coordinates

    coords = np.random.default_rng(0).standard_normal((1000, 2)) * 30
    rounded = compact_coordinates(coords)
    assert np.max(np.abs(rounded - coords)) <= 1e-5 * np.max(np.abs(coords))
    assert max(len(repr(v)) for v in rounded.ravel().tolist()) <= 10          # short JSON numbers


def test_import_stays_light():
    code = ("import sys, geometry_probe; heavy = [m for m in ('matplotlib', 'plotly', 'umap', 'openTSNE') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_bad_requests_are_clear_errors(blobs):
    pca = gp.project(blobs, "pca")
    with pytest.raises(gp.InvalidInputError, match="reference map is 'pca'"):
        gp.project(blobs, "umap", reference=pca)
    detached = gp.Projection(pca.coords, pca.indices, pca.labels, "pca", pca.trustworthiness)
    with pytest.raises(gp.InvalidInputError, match="no fitted model"):
        gp.project(blobs, "pca", reference=detached)
    with pytest.raises(gp.InvalidInputError, match="max_samples"):
        gp.project(blobs, "pca", max_samples=0)
    with pytest.raises(gp.InvalidInputError, match="method"):
        gp.project(blobs, "isomap")
