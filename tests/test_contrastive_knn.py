"""Pairwise metrics: closed forms (§10.1 rows 9-14, 26-28), naive all-pairs oracles, tiling, estimator."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from sklearn.neighbors import NearestNeighbors

import geometry_probe as gp
from geometry_probe.exceptions import InvalidEmbeddingsError, InvalidInputError
from geometry_probe.functional import contrastive as C
from geometry_probe.functional import knn as K
from geometry_probe.functional.contrastive import all_pair_sums


def _simplex(c):
    return torch.as_tensor(np.eye(c) - 1.0 / c)


@pytest.mark.parametrize(("c", "expected"), [(2, -8.0), (3, -6.0), (10, -4.444444), (100, -4.040404)])
def test_uniformity_of_simplex(c, expected):
    assert C.uniformity(_simplex(c)) == pytest.approx(expected, abs=1e-5)


def test_uniformity_basis_identical_points_and_self_included_relation():
    assert C.uniformity(torch.eye(6)) == pytest.approx(-4.0, abs=1e-6)
    assert C.uniformity(torch.ones(7, 3)) == pytest.approx(0.0, abs=1e-6)
    X = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    res = gp.analyze(X.numpy(), "contrastive")["contrastive"].scalars
    B = 40                                                   # row 13: L2 = ln((B e^{L1} - 1)/(B - 1))
    assert res["uniformity"] == pytest.approx(math.log((B * math.exp(res["uniformity_self_included"]) - 1) / (B - 1)),
                                              abs=1e-6)


def test_uniformity_matches_pdist_oracle():
    X = torch.randn(300, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    U = X / X.norm(dim=1, keepdim=True)
    oracle = float(torch.pdist(U).pow(2).mul(-2).exp().mean().log())
    assert C.uniformity(X) == pytest.approx(oracle, abs=1e-6)


def test_uniform_sphere_monte_carlo():
    g = torch.Generator().manual_seed(2)
    value = C.uniformity(torch.randn(3000, 128, generator=g))
    assert value == pytest.approx(-3.9375, abs=0.01)         # row 28


def test_alignment_identical_and_antipodal():
    X = torch.randn(10, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert C.alignment(X, X) == pytest.approx(0.0, abs=1e-12)
    assert C.alignment(X, -X) == pytest.approx(4.0, abs=1e-12)


def test_group_alignment_equals_pair_alignment():
    X = np.random.default_rng(4).standard_normal((60, 6))
    groups = np.arange(60) % 7
    pairs = np.array([(i, j) for i in range(60) for j in range(i + 1, 60) if groups[i] == groups[j]])
    by_groups = gp.analyze(X, "contrastive", params={"contrastive": {"groups": groups}}).scalars()
    by_pairs = gp.analyze(X, "contrastive", params={"contrastive": {"pairs": pairs}}).scalars()
    direct = C.alignment(X[pairs[:, 0]], X[pairs[:, 1]])
    assert by_groups["contrastive/alignment"] == pytest.approx(direct, rel=1e-6)
    assert by_pairs["contrastive/alignment"] == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize("tile", [1, 7, 64, 1000])
def test_tiled_equals_untiled(tile):
    X = torch.randn(53, 9, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    tiled, whole = all_pair_sums(X, tile=tile), all_pair_sums(X, tile=53)
    assert tiled.count == whole.count == 53 * 52 / 2
    assert tiled.uniformity == pytest.approx(whole.uniformity, abs=1e-6)
    assert tiled.sum_abs == pytest.approx(whole.sum_abs, rel=1e-6)
    assert tiled.sum_sq == pytest.approx(whole.sum_sq, rel=1e-6)
    np.testing.assert_array_equal(tiled.histogram, whole.histogram)


def test_mean_cosine_closed_form_and_abs_cosine_oracle():
    X = np.random.default_rng(6).standard_normal((120, 5)) + 0.7
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = (U @ U.T)[np.triu_indices(120, 1)]
    res = gp.analyze(X, "contrastive").scalars()
    assert res["contrastive/mean_cosine"] == pytest.approx(cos.mean(), rel=1e-9)
    assert res["contrastive/mean_abs_cosine"] == pytest.approx(np.abs(cos).mean(), rel=1e-5)
    assert res["contrastive/mean_sq_cosine"] == pytest.approx((cos**2).mean(), rel=1e-5)
    assert res["contrastive/frac_cosine_above"] == pytest.approx((cos > 0.9).mean(), abs=1e-9)


def test_point_and_antipodal_line_detectors():
    point = gp.analyze(gp.datasets.make_collapsed(200, 16, kind="point"), "contrastive").scalars()
    line = gp.analyze(gp.datasets.make_collapsed(200, 16, kind="line"), "contrastive").scalars()
    assert point["contrastive/mean_cosine"] == pytest.approx(1.0)
    assert point["contrastive/uniformity"] == pytest.approx(0.0, abs=1e-6)
    assert abs(line["contrastive/mean_cosine"]) < 0.1           # mean cosine misses the line ...
    assert line["contrastive/mean_abs_cosine"] == pytest.approx(1.0)   # ... |cos| does not
    assert line["contrastive/mean_sq_cosine"] == pytest.approx(1.0)    # ... nor cos²


def test_mean_sq_cosine_of_uniform_directions_is_one_over_d():
    X = np.random.default_rng(11).standard_normal((4000, 32))
    s = gp.analyze(X, "contrastive", params={"contrastive": {"exact": True}}).scalars()
    assert s["contrastive/mean_sq_cosine"] == pytest.approx(1 / 32, rel=0.02)        # E cos² = 1/D on S^{D-1}


def test_estimate_within_three_standard_errors_of_exact():
    X = np.random.default_rng(7).standard_normal((3000, 6))
    exact = gp.analyze(X, "contrastive", params={"contrastive": {"exact": True}}).scalars()
    est = gp.analyze(X, "contrastive", params={"contrastive": {"exact": False}})
    s = est.scalars()
    assert abs(s["contrastive/uniformity"] - exact["contrastive/uniformity"]) < 3 * s["contrastive/uniformity_stderr"]
    assert abs(s["contrastive/mean_abs_cosine"] - exact["contrastive/mean_abs_cosine"]) < \
        3 * s["contrastive/mean_abs_cosine_stderr"]
    assert abs(s["contrastive/mean_sq_cosine"] - exact["contrastive/mean_sq_cosine"]) < \
        3 * s["contrastive/mean_sq_cosine_stderr"]
    assert any("estimated" in n for n in est.notes())


def test_non_unit_input_is_noted_and_zero_rows_raise():
    res = gp.analyze(np.random.default_rng(8).standard_normal((20, 3)) * 5, "contrastive")
    assert res.scalars()["contrastive/input_unit_norm"] == 0 and any("L2-normalised" in n for n in res.notes())
    X = np.ones((10, 3))
    X[4] = 0
    with pytest.raises(InvalidEmbeddingsError, match="rows 4"):
        gp.analyze(X, "contrastive")


def test_bad_pairs_and_views():
    X = np.random.default_rng(9).standard_normal((10, 3))
    with pytest.raises(InvalidInputError, match=r"\[0, 10\)"):
        gp.analyze(X, "contrastive", params={"contrastive": {"pairs": np.array([[0, 10]])}})
    with pytest.raises(InvalidInputError, match="shape"):
        gp.analyze(X, "contrastive", params={"contrastive": {"pairs": np.array([0, 1, 2])}})
    with pytest.raises(InvalidInputError, match="does not match"):
        gp.analyze(X, "contrastive", params={"contrastive": {"views": X[:5]}})


def test_two_rows_work():
    s = gp.analyze(np.array([[1.0, 0.0], [0.0, 1.0]]), ["contrastive", "knn"]).scalars()
    assert s["contrastive/uniformity"] == pytest.approx(-4.0, abs=1e-6)
    assert math.isnan(s["knn/hubness_skew"])


def test_knn_search_matches_sklearn():
    X = np.random.default_rng(10).standard_normal((257, 7))
    sims, idx = K.knn_search(torch.as_tensor(X, dtype=torch.float32), 5, tile=50)
    nn = NearestNeighbors(n_neighbors=6, metric="cosine").fit(X)
    dist, ref = nn.kneighbors(X)
    np.testing.assert_array_equal(idx.numpy(), ref[:, 1:])
    np.testing.assert_allclose(sims.numpy(), 1 - dist[:, 1:], atol=1e-5)


def test_weighted_knn_accuracy_matches_naive_vote():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, 150)
    X = rng.standard_normal((150, 4)) + labels[:, None] * 0.8
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = U @ U.T
    np.fill_diagonal(S, -np.inf)
    correct = 0
    for i in range(150):
        nbrs = np.argsort(-S[i])[:10]
        votes = np.zeros(3)
        for j in nbrs:
            votes[labels[j]] += np.exp(S[i, j] / 0.07)
        correct += votes.argmax() == labels[i]
    res = gp.analyze(X, "knn", labels=labels, params={"knn": {"k": 10}}).scalars()
    assert res["knn/accuracy"] == pytest.approx(correct / 150)


def test_hubness_matches_scipy_skew_and_regular_polygon_is_nan():
    X = np.random.default_rng(12).standard_normal((200, 30))
    _, idx = K.knn_search(torch.as_tensor(X, dtype=torch.float32), 10)
    occurrence = np.bincount(idx.numpy().ravel(), minlength=200)
    assert K.hubness_skewness(idx, 200) == pytest.approx(scipy.stats.skew(occurrence), rel=1e-9)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    polygon = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert math.isnan(gp.analyze(polygon, "knn", params={"knn": {"k": 2}}).scalars()["knn/hubness_skew"])  # row 27


def test_twonn_recovers_dimension_of_a_flat_patch():
    rng = np.random.default_rng(13)
    patch = np.hstack([rng.uniform(-0.05, 0.05, (4000, 3)), np.ones((4000, 1))])   # ≈ 3-D near the pole
    assert gp.analyze(patch, "knn").scalars()["knn/twonn_id"] == pytest.approx(3.0, rel=0.1)


def _pair_cosines(X):
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    return (U @ U.T)[np.triu_indices(len(X), 1)]


@pytest.mark.parametrize("unit", [False, True])
def test_histogram_and_counts_equal_naive_all_pairs(unit):
    X = np.random.default_rng(11).standard_normal((97, 6))
    if unit:                                                  # the unit-norm shortcut (no scaling) path
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = _pair_cosines(X)
    for threshold in (0.5, 0.123):                            # a bin edge (read off the histogram) and not
        sums = all_pair_sums(torch.as_tensor(X, dtype=torch.float32), threshold=threshold, tile=10)
        naive = np.histogram(cos, bins=C.HIST_BINS, range=(-1, 1))[0]
        assert np.abs(sums.histogram - naive).sum() <= 2      # float32 vs float64 rounding at a bin edge
        assert sums.above == (cos > threshold).sum()
        assert sums.sum_abs == pytest.approx(np.abs(cos).sum(), rel=1e-5)
        assert sums.sum_sq == pytest.approx((cos**2).sum(), rel=1e-5)
        assert sums.uniformity == pytest.approx(np.log(np.mean(np.exp(4 * cos - 4))), abs=1e-6)


def test_contrastive_and_knn_share_one_tile_pass(monkeypatch):
    from geometry_probe.analyzers import base

    calls = []
    real = base.run_pass
    monkeypatch.setattr(base, "run_pass", lambda X, consumers, **kw: (calls.append(len(consumers)),
                                                                      real(X, consumers, **kw)))
    X = np.random.default_rng(12).standard_normal((300, 8))
    y = np.arange(300) % 4
    both = gp.analyze(X, ["contrastive", "knn"], labels=y, verdicts=False).scalars()
    assert calls == [2]                                       # one pass fed both consumers
    alone = {**gp.analyze(X, "contrastive", labels=y, verdicts=False).scalars(),
             **gp.analyze(X, "knn", labels=y, verdicts=False).scalars()}
    assert both == pytest.approx(alone, nan_ok=True)


def test_knn_above_budget_uses_exact_neighbours_of_sampled_queries():
    rng = np.random.default_rng(13)
    X = rng.standard_normal((1500, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    res = gp.analyze(X, "knn", labels=y, verdicts=False,                  # 1000 queries (the minimum) of 1500
                     params={"knn": {"pair_budget": 1500 * 50, "k": 5}})["knn"]
    assert "sampled query rows" in res.params["estimator"] and "accuracy_stderr" in res.scalars
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    queries = np.sort(np.random.default_rng(0).choice(1500, size=1000, replace=False))
    _, index = NearestNeighbors(n_neighbors=6, metric="cosine").fit(U).kneighbors(U[queries])
    votes = np.array([np.bincount(y[row[1:]], weights=np.exp((U[row[1:]] @ U[q]) / 0.07), minlength=2).argmax()
                      for q, row in zip(queries, index)])
    assert res.scalars["accuracy"] == pytest.approx(np.mean(votes == y[queries]), abs=1e-12)


def test_knn_sampled_queries_match_brute_force():
    X = torch.randn(400, 7, generator=torch.Generator().manual_seed(14))
    queries = torch.tensor([0, 5, 17, 399])
    sims, idx = K.knn_search_queries(X, queries, 6, tile=33)
    U = (X / X.norm(dim=1, keepdim=True)).numpy()
    full = U[queries.numpy()] @ U.T
    full[np.arange(4), queries.numpy()] = -np.inf
    np.testing.assert_array_equal(idx.numpy(), np.argsort(-full, axis=1)[:, :6])


def test_bfloat16_tiles_cost_stated_accuracy():
    X = np.random.default_rng(15).standard_normal((800, 32)).astype(np.float32)
    y = np.arange(800) % 5
    full = gp.analyze(X, ["contrastive", "knn"], labels=y, verdicts=False)
    half = gp.analyze(X, ["contrastive", "knn"], labels=y, verdicts=False, pairwise_precision="bfloat16")
    assert half["contrastive"].params["pairwise_precision"] == "bfloat16"
    assert half.scalars()["contrastive/uniformity"] == pytest.approx(full.scalars()["contrastive/uniformity"],
                                                                      abs=1e-2)
    assert half.scalars()["contrastive/mean_abs_cosine"] == pytest.approx(
        full.scalars()["contrastive/mean_abs_cosine"], abs=4e-3)
    with pytest.raises(gp.InvalidInputError, match="pairwise_precision"):
        gp.analyze(X, "contrastive", pairwise_precision="int8")


@pytest.mark.parametrize("n_rows, batch", [(1003, 8), (600, 256)])
def test_batch_averaged_uniformity_equals_naive_mean_over_batches(n_rows, batch):
    """Wang & Isola's training estimator: mean over the seeded random batches (full ones in
    groups of batched products, then the shorter last one) of each batch's pdist uniformity."""
    X = np.random.default_rng(12).standard_normal((n_rows, 6)) + 0.3
    res = gp.analyze(X, "contrastive", params={"contrastive": {"batch_size_estimator": batch}})
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(0)).numpy()
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    values = []
    for start in range(0, n_rows, batch):
        B = U[order[start:start + batch]]
        if len(B) < 2:
            continue
        d2 = ((B[:, None, :] - B[None, :, :]) ** 2).sum(-1)[np.triu_indices(len(B), 1)]
        values.append(np.log(np.mean(np.exp(-2 * d2))))
    assert res.scalars()["contrastive/uniformity_batch_averaged"] == pytest.approx(np.mean(values), rel=1e-5)
    assert res["contrastive"].params["batch_averaged_batches"] == len(values)


@pytest.mark.parametrize("tile", [1, 13, 64, 300])
def test_neighbour_lists_equal_brute_force_for_any_tile(tile):
    """Row and column updates of the upper-triangle tiles give every row's exact top-k."""
    rng = np.random.default_rng(13)
    X = (rng.standard_normal((300, 8)) + 3 * rng.standard_normal((6, 8))[rng.integers(0, 6, 300)]).astype(np.float32)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = U.astype(np.float64) @ U.T.astype(np.float64)
    np.fill_diagonal(S, -np.inf)
    expected = -np.sort(-S, axis=1)[:, :7]
    sims, idx = K.knn_search(torch.from_numpy(X), 7, tile=tile)
    np.testing.assert_allclose(sims.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(S, idx.numpy(), axis=1), expected, atol=1e-5)


@pytest.mark.parametrize("n_classes", [3, 40, 5000])     # votes by class, and the many-class (k, k) form
def test_weighted_knn_vote_matches_a_naive_loop_with_ties(n_classes):
    from geometry_probe.functional.knn import weighted_knn_correct

    rng = np.random.default_rng(n_classes)
    M, k, N = 60, 5, 400
    sims = torch.as_tensor(np.round(rng.uniform(-1, 1, (M, k)), 1))       # rounded: many exact ties
    idx = torch.as_tensor(rng.integers(0, N, (M, k)))
    labels = torch.as_tensor(rng.integers(0, min(n_classes, 8), N) * (n_classes // 8 or 1))
    queries = torch.as_tensor(rng.integers(0, n_classes, M))
    weights = np.exp(sims.numpy() / 0.07)
    expected = []
    for i in range(M):
        votes = {}
        for j in range(k):
            c = int(labels[idx[i, j]])
            votes[c] = votes.get(c, 0.0) + weights[i, j]
        top = max(votes.values())
        expected.append(float(min(c for c, v in votes.items() if v == top) == int(queries[i])))
    got = weighted_knn_correct(sims, idx, labels, queries, n_classes).numpy()
    np.testing.assert_array_equal(got, expected)


def test_pair_means_of_full_size_tiles_match_float64():
    # 3,000 rows fill 2048² float32 tiles; a whole-tile float32 vector_norm was off by ~2e-4 relative
    rng = np.random.default_rng(11)
    X = rng.standard_normal((3000, 32)).astype(np.float32)
    Y = X + 0.3 * rng.standard_normal(X.shape).astype(np.float32)
    res = gp.analyze(X, ["contrastive", "fmicl"], params={"fmicl": {"views": Y}}, verdicts=False)
    U = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    cos = (U @ U.T)[np.triu_indices(len(U), 1)]
    s = res.scalars()
    assert s["contrastive/mean_abs_cosine"] == pytest.approx(np.abs(cos).mean(), rel=1e-6)
    assert s["contrastive/mean_sq_cosine"] == pytest.approx((cos**2).mean(), rel=1e-6)
    assert s["contrastive/uniformity"] == pytest.approx(np.log(np.exp(-2 * (2 - 2 * cos)).mean()), rel=1e-6)
    d = np.sqrt(np.clip(2 - 2 * cos, 0, None))
    assert s["contrastive/distance_cv"] == pytest.approx(d.std() / d.mean(), rel=1e-6)
    V = Y.astype(np.float64) / np.linalg.norm(Y.astype(np.float64), axis=1, keepdims=True)
    u_pos, u_neg = np.exp(-((U - V) ** 2).sum(1)), np.exp(-(2 - 2 * cos))     # σ = 1/√2: (2σ²)⁻¹ = 1
    pearson = (2 * (u_pos - 1)).mean() - (u_neg**2 - 1).mean()
    assert s["fmicl/objective_pearson"] == pytest.approx(pearson, rel=1e-6)
