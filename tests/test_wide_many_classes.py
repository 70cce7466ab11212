"""Wide embeddings (the N×N dual) and many classes (no C×C matrix) against independent NumPy references."""

import math

import numpy as np
import pytest
import torch

import geometry_probe as gp
from geometry_probe.analyzers import neural_collapse as nc_analyzer
from geometry_probe.analyzers import orthogonality as orth_analyzer
from geometry_probe.analyzers.spectrum import Spectrum
from geometry_probe.functional import class_geometry as G
from geometry_probe.functional import class_pairs as P
from geometry_probe.functional import knn as K
from tests import _reference as ref
from tests.test_neural_collapse import naive_nc


def _spectrum(X, **params):
    return gp.analyze(X, "spectrum", verdicts=False, device="cpu", params={"spectrum": params})["spectrum"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_spectrum_takes_the_dual_and_equals_a_float64_svd(dtype):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((24, 3)) @ rng.standard_normal((3, 500)) + rng.standard_normal((24, 500)) * 0.1
         + 2.0).astype(dtype)
    res = _spectrum(X)
    assert res.params["form"].startswith("N x N dual")
    X64 = X.astype(np.float64)
    s = res.scalars
    assert s["effective_rank"] == pytest.approx(ref.effective_rank(X64), rel=1e-10)
    assert s["rankme"] == pytest.approx(ref.rankme(X64), rel=1e-10)
    assert s["stable_rank"] == pytest.approx(ref.stable_rank(X64), rel=1e-10)
    assert s["participation_ratio"] == pytest.approx(ref.participation_ratio(X64), rel=1e-10)
    assert s["top1_energy"] == pytest.approx(ref.top1_energy(X64), rel=1e-10)
    assert s["numerical_rank"] == 23 and s["rank_ceiling"] == 23        # N - 1 after centring
    sigma = np.linalg.svd(X64 - X64.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(res.arrays["covariance_eigenvalues"], sigma**2 / 23, rtol=1e-9, atol=1e-12 * sigma[0]**2)


def test_tall_data_keep_the_primal_and_the_functional_api_takes_the_dual_when_wide():
    rng = np.random.default_rng(1)
    assert _spectrum(rng.standard_normal((300, 20))).params["form"] == "D x D primal"
    X = rng.standard_normal((10, 4000))
    assert gp.functional.spectrum.effective_rank(X) == pytest.approx(ref.effective_rank(X), rel=1e-10)


def test_streaming_update_keeps_rows_when_the_d_by_d_form_is_over_budget():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 200))
    a = Spectrum(memory_bytes=100_000)                           # D x D (1.3 MB) does not fit, 30 rows do (70 kB)
    for part in np.array_split(X, 3):
        a.update(torch.as_tensor(part))
    assert a.compute().scalars["effective_rank"] == pytest.approx(ref.effective_rank(X), rel=1e-10)


def test_refusal_names_the_memory_of_both_exact_forms():
    X = np.random.default_rng(3).standard_normal((500, 64)).astype(np.float32)
    with pytest.raises(gp.InvalidInputError, match=r"D x D form needs 0.1 MiB and the N x N dual 5.8 MiB"):
        _spectrum(X, memory_bytes=1000)


def test_wide_neural_collapse_equals_the_naive_oracle():
    rng = np.random.default_rng(4)
    y = np.arange(40) % 4
    X = rng.standard_normal((4, 600))[y] * 0.7 + rng.standard_normal((40, 600)) + 3.0
    res = gp.analyze(X, "neural_collapse", labels=y, verdicts=False, device="cpu",
                     params={"neural_collapse": {"ncc": False}})["neural_collapse"]
    assert res.params["form"].startswith("wide")
    expected = naive_nc(X, y)
    for name in ("nc1", "cdnv", "trace_ratio", "nc2_equinorm", "nc2_equiangular", "nc2_etf_error", "nc2_of_error"):
        assert res.scalars[name] == pytest.approx(expected[name], rel=1e-9), name
    assert "ncc_accuracy" not in res.scalars


def test_pair_tiles_equal_the_naive_pair_loop(monkeypatch):
    monkeypatch.setattr(P, "TILE_ROWS", 7)                       # several blocks, diagonal and off-diagonal
    rng = np.random.default_rng(5)
    V = rng.standard_normal((23, 5))
    est = P.pair_estimates(V, {"dot": lambda d, i, j: d, "gap": lambda d, i, j: np.abs(d) + i - j})
    pairs = [(i, j) for i in range(23) for j in range(i + 1, 23)]
    dots = np.array([V[i] @ V[j] for i, j in pairs])
    gaps = np.array([abs(V[i] @ V[j]) + i - j for i, j in pairs])
    assert est["dot"].exact and est["dot"].n_pairs == len(pairs)
    assert est["dot"].mean == pytest.approx(dots.mean(), rel=1e-12)
    assert est["dot"].second_moment == pytest.approx(np.mean(dots**2), rel=1e-12)
    assert est["gap"].maximum == pytest.approx(gaps.max(), rel=1e-12)


def test_sampled_pairs_are_within_a_few_standard_errors_of_the_exact_mean():
    rng = np.random.default_rng(6)
    V = rng.standard_normal((400, 8)) + 0.5
    f = {"dot": lambda d, i, j: d}
    exact = P.pair_estimates(V, f)["dot"]
    sampled = P.pair_estimates(V, f, max_exact_pairs=0, n_sampled=20_000, seed=1)["dot"]
    assert not sampled.exact and sampled.n_pairs == 20_000 and sampled.std_error > 0
    assert abs(sampled.mean - exact.mean) < 4 * sampled.std_error


@pytest.mark.parametrize("D", [6, 5000])                          # D x D closed form, and the pair route above 4096
def test_closed_forms_equal_the_c_by_c_forms(D):
    rng = np.random.default_rng(7)
    V = rng.standard_normal((30, D)) + 0.3
    assert P.gram_distance(V, "etf") == pytest.approx(G.etf_error(V), rel=1e-7)
    assert P.gram_distance(V, "of") == pytest.approx(G.orthogonal_frame_error(V), rel=1e-7)
    cos = G.cosine_matrix(V)[np.triu_indices(30, 1)]
    mean, std = P.cosine_moments(V)
    assert mean == pytest.approx(cos.mean(), rel=1e-9) and std == pytest.approx(cos.std(), rel=1e-7)


def test_many_class_neural_collapse_and_orthogonality_equal_the_naive_forms(monkeypatch):
    """With the C x C threshold lowered to 8, 20 classes take the many-class route: same numbers."""
    monkeypatch.setattr(nc_analyzer, "MATRIX_MAX_CLASSES", 8)
    monkeypatch.setattr(P, "MATRIX_MAX_CLASSES", 8)
    monkeypatch.setattr(nc_analyzer, "TABLE_MAX_ROWS", 5)
    rng = np.random.default_rng(8)
    y = np.arange(200) % 20
    X = rng.standard_normal((20, 6))[y] * 2 + rng.standard_normal((200, 6))
    res = gp.analyze(X, "neural_collapse,orthogonality", labels=y, verdicts=False, device="cpu")
    nc, orth = res["neural_collapse"], res["orthogonality"]
    expected = naive_nc(X, y)
    for name in ("nc1", "cdnv", "nc2_equiangular", "nc2_equiangular_mean_abs", "nc2_etf_error", "nc2_of_error"):
        assert nc.scalars[name] == pytest.approx(expected[name], rel=1e-7), name
    M = np.stack([X[y == c].mean(axis=0) for c in range(20)])
    assert nc.scalars["gnc2"] == pytest.approx(G.hyperspherical_uniformity(M - M.mean(axis=0)), rel=1e-7)
    assert "exact over all 190 pairs" in nc.params["pair_metrics"]
    assert len(nc.tables["per_class"]) == 5 and any("first 5 of 20" in n for n in nc.notes)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    Mu = np.stack([U[y == c].mean(axis=0) for c in range(20)])
    cos = np.abs(G.cosine_matrix(Mu)[np.triu_indices(20, 1)])
    assert orth.scalars["class_mean_abs_cosine"] == pytest.approx(cos.mean(), rel=1e-9)
    assert orth.scalars["max_abs_cosine"] == pytest.approx(cos.max(), rel=1e-9)
    assert orth.scalars["of_distance"] == pytest.approx(G.orthogonal_frame_error(Mu), rel=1e-7)
    assert orth.scalars["etf_distance"] == pytest.approx(G.etf_error(Mu), rel=1e-7)


def test_knn_votes_in_chunks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(9)
    sims = torch.as_tensor(rng.uniform(-1, 1, (50, 5)))
    idx = torch.as_tensor(rng.integers(0, 50, (50, 5)))
    labels = torch.as_tensor(rng.integers(0, 30, 50))
    whole = K.weighted_knn_correct(sims, idx, labels, labels, 30)
    monkeypatch.setattr(K, "VOTE_CHUNK_BYTES", 8 * 30 * 3)      # 3 queries per chunk
    assert torch.equal(K.weighted_knn_correct(sims, idx, labels, labels, 30), whole)
    expected = [max(range(30), key=lambda c: (sum(math.exp(s / 0.07) for s, j in zip(sims[q].tolist(), idx[q].tolist())
                                                  if labels[j] == c), -c)) == labels[q] for q in range(50)]
    assert whole.tolist() == [float(e) for e in expected]


def test_sampled_second_pass_estimates_ncc_accuracy_within_its_standard_error():
    rng = np.random.default_rng(10)
    y = rng.integers(0, 5, 4000)
    X = rng.standard_normal((5, 8))[y] * 0.6 + rng.standard_normal((4000, 8))
    exact = gp.analyze(X, "neural_collapse", labels=y, verdicts=False, device="cpu")["neural_collapse"]
    res = gp.analyze(X, "neural_collapse", labels=y, verdicts=False, device="cpu",
                     params={"neural_collapse": {"ncc_max_work": 4000 * 5 * 8 / 10}})["neural_collapse"]
    assert "fraction 0.1" in res.params["ncc_pass"] and "ncc_accuracy_std_error" not in exact.scalars
    p = exact.scalars["ncc_accuracy"]
    assert res.scalars["ncc_accuracy_std_error"] == pytest.approx(math.sqrt(p * (1 - p) / 400), rel=0.2)
    assert abs(res.scalars["ncc_accuracy"] - p) < 4 * res.scalars["ncc_accuracy_std_error"]
    assert res.scalars["nc1"] == exact.scalars["nc1"]
