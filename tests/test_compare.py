"""compare(): every metric against an independent naive float64 computation written here (N x N
kernels, full similarity matrices, QR-based CCA, scipy's orthogonal Procrustes) on small N."""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

import geometry_probe as gp
from geometry_probe.exceptions import InvalidEmbeddingsError, InvalidInputError
from geometry_probe.functional import compare as cm
from geometry_probe.functional import retrieval

# ---- naive references (float64, N x N) -------------------------------------------------------

def centre(X):
    return X - X.mean(axis=0)


def naive_linear_cka(A, B):
    n = len(A)
    H = np.eye(n) - 1.0 / n
    K, L = H @ A @ A.T @ H, H @ B @ B.T @ H
    return np.sum(K * L) / math.sqrt(np.sum(K * K) * np.sum(L * L))


def naive_hsic_u(K, L):
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ K @ L @ one)) / (n * (n - 3))


def naive_debiased_cka(A, B):
    K, L = A @ A.T, B @ B.T
    return naive_hsic_u(K, L) / math.sqrt(naive_hsic_u(K, K) * naive_hsic_u(L, L))


def naive_procrustes(A, B):
    A, B = centre(A), centre(B)
    A, B = A / np.linalg.norm(A), B / np.linalg.norm(B)
    width = max(A.shape[1], B.shape[1])
    A = np.pad(A, ((0, 0), (0, width - A.shape[1])))
    B = np.pad(B, ((0, 0), (0, width - B.shape[1])))
    Q, _ = orthogonal_procrustes(B, A)
    return float(np.sum((A - B @ Q) ** 2))


def naive_cca(A, B):
    Qa, _ = np.linalg.qr(centre(A))
    Qb, _ = np.linalg.qr(centre(B))
    return np.linalg.svd(Qa.T @ Qb, compute_uv=False)


def naive_svcca(A, B, variance=0.99):
    def reduce(X):
        X = centre(X)
        _, s, vt = np.linalg.svd(X, full_matrices=False)
        share = np.cumsum(s ** 2) / np.sum(s ** 2)
        k = int(np.searchsorted(share, variance) + 1)
        return X @ vt[:k].T, k
    Ra, ka = reduce(A)
    Rb, kb = reduce(B)
    return naive_cca(Ra, Rb), (ka, kb)


def unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def naive_knn_sets(X, k):
    S = unit(X) @ unit(X).T
    np.fill_diagonal(S, -np.inf)
    return [set(np.argsort(-row)[:k]) for row in S]


def naive_ranks(A, B):
    S = unit(A) @ unit(B).T
    partner = np.diag(S).copy()
    off = ~np.eye(len(A), dtype=bool)
    return ((S >= partner[:, None]) & off).sum(1), ((S >= partner[None, :]) & off).sum(0)


def naive_uniformity(X, t=2.0):
    U = unit(X)
    d2 = np.sum((U[:, None] - U[None]) ** 2, axis=2)
    iu = np.triu_indices(len(X), 1)
    return math.log(np.mean(np.exp(-t * d2[iu])))


# ---- data ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((120, 9)) * np.linspace(3, 0.2, 9) + 2.0
    B = A[:, :5] @ rng.standard_normal((5, 7)) + 0.6 * rng.standard_normal((120, 7)) - 1.0
    return A, B


@pytest.fixture(scope="module")
def modalities():
    rng = np.random.default_rng(4)
    shared = rng.standard_normal((150, 6))
    gap = rng.standard_normal(6)
    return shared + 0.8 * rng.standard_normal((150, 6)) + gap, shared + 0.8 * rng.standard_normal((150, 6)) - gap


# ---- cross-moment metrics ---------------------------------------------------------------------

def test_moment_metrics_match_naive_kernels(pair):
    A, B = pair
    s = gp.compare(A, B, knn_k=None, device="cpu", batch_size=17).scalars()
    assert s["compare/linear_cka"] == pytest.approx(naive_linear_cka(A, B), abs=1e-12)
    assert s["compare/cka_debiased"] == pytest.approx(naive_debiased_cka(A, B), abs=1e-10)
    assert s["compare/cka_debiased"] == pytest.approx(naive_debiased_cka(centre(A), centre(B)), abs=1e-10)
    assert s["compare/procrustes"] == pytest.approx(naive_procrustes(A, B), abs=1e-12)
    assert s["compare/cca_mean"] == pytest.approx(naive_cca(A, B).mean(), abs=1e-10)
    rho, keep = naive_svcca(A, B)
    res = gp.compare(A, B, knn_k=None, device="cpu")["compare"]
    assert res.params["svcca_directions"] == list(keep)
    assert s["compare/svcca_mean"] == pytest.approx(rho.mean(), abs=1e-10)
    np.testing.assert_allclose(res.arrays["canonical_correlations"], naive_cca(A, B), atol=1e-10)


def test_streaming_is_exact_for_any_batching_and_for_float32_memmaps(pair, tmp_path):
    A, B = pair
    np.save(tmp_path / "a.npy", A.astype(np.float32))
    np.save(tmp_path / "b.npy", B.astype(np.float32))
    a32, b32 = np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "b.npy", mmap_mode="r")
    whole = gp.compare(a32, b32, knn_k=None, device="cpu", batch_size=1000).scalars()
    tiny = gp.compare(a32, b32, knn_k=None, device="cpu", batch_size=5).scalars()
    exact = np.asarray(a32, dtype=np.float64), np.asarray(b32, dtype=np.float64)
    assert whole["compare/linear_cka"] == pytest.approx(naive_linear_cka(*exact), abs=1e-12)
    for key, value in whole.items():
        assert tiny[key] == pytest.approx(value, abs=1e-11), key


def test_fixed_svcca_directions_and_file_paths(pair, tmp_path):
    A, B = pair
    np.save(tmp_path / "a.npy", A)
    np.save(tmp_path / "b.npy", B)
    res = gp.compare(tmp_path / "a.npy", str(tmp_path / "b.npy"), knn_k=None, svcca_directions=(4, 3),
                     device="cpu")["compare"]
    def top(X, k):
        X = centre(X)
        return X @ np.linalg.svd(X, full_matrices=False)[2][:k].T
    assert res.params["svcca_directions"] == [4, 3] and res.params["svcca_variance"] is None
    assert res.scalars["svcca_mean"] == pytest.approx(naive_cca(top(A, 4), top(B, 3)).mean(), abs=1e-10)


def test_a_large_common_offset_costs_no_accuracy():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 5))
    B = A @ rng.standard_normal((5, 4)) + rng.standard_normal((200, 4))
    far = gp.compare(A + 1e6, B - 3e5, knn_k=None, device="cpu", batch_size=64).scalars()
    assert far["compare/linear_cka"] == pytest.approx(naive_linear_cka(A, B), abs=1e-9)
    assert far["compare/cka_debiased"] == pytest.approx(naive_debiased_cka(A, B), abs=1e-8)
    assert far["compare/procrustes"] == pytest.approx(naive_procrustes(A, B), abs=1e-9)


def test_closed_forms_rotation_scale_and_independence():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((300, 6))
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    s = gp.compare(A, 5 * A @ Q + 7, knn_k=None, device="cpu").scalars()
    assert s["compare/linear_cka"] == pytest.approx(1, abs=1e-12)
    assert s["compare/cka_debiased"] == pytest.approx(1, abs=1e-12)
    assert s["compare/procrustes"] == pytest.approx(0, abs=1e-12)
    assert s["compare/cca_mean"] == pytest.approx(1, abs=1e-12)
    # independent representations: debiased CKA is centred on 0, plain CKA is biased upwards (about D/N)
    many = [gp.compare(rng.standard_normal((60, 20)), rng.standard_normal((60, 20)), knn_k=None,
                       device="cpu").scalars() for _ in range(20)]
    assert abs(np.mean([m["compare/cka_debiased"] for m in many])) < 0.02
    assert np.mean([m["compare/linear_cka"] for m in many]) > 0.2


def test_rank_deficient_sides_use_their_rank_in_cca():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((80, 3)) @ rng.standard_normal((3, 8))      # rank 3 in 8 columns
    B = rng.standard_normal((80, 5))
    res = gp.compare(A, B, knn_k=None, device="cpu")["compare"]
    assert res.params["n_canonical"] == 3
    np.testing.assert_allclose(res.arrays["canonical_correlations"], naive_cca(A[:, :3], B)[:3], atol=1e-9)


def test_debiased_hsic_rejects_unknown_kernel_pair_and_empty_moments():
    with pytest.raises(ValueError, match="which"):
        cm.debiased_hsic(cm.cross_moments(torch.randn(10, 2), torch.randn(10, 2)), "ba")
    with pytest.raises(InvalidEmbeddingsError, match="no rows"):
        cm.linear_cka(cm.CrossMoments())


# ---- neighbour metrics ------------------------------------------------------------------------

def test_knn_overlap_is_the_mean_jaccard_of_naive_neighbour_sets(pair):
    A, B = pair
    k = 7
    na, nb = naive_knn_sets(A, k), naive_knn_sets(B, k)
    expected = np.mean([len(x & y) / len(x | y) for x, y in zip(na, nb)])
    s = gp.compare(A, B, knn_k=k, device="cpu").scalars()
    assert s["compare/knn_overlap"] == pytest.approx(expected, abs=1e-12)
    assert float(retrieval.knn_jaccard(torch.as_tensor(A), torch.as_tensor(3 * A), 5).mean()) == 1.0


def test_paired_metrics_match_naive_full_matrices(modalities):
    A, B = modalities
    s = gp.compare(A, B, paired=True, knn_k=None, device="cpu").scalars()
    to_b, to_a = naive_ranks(A, B)
    for k in (1, 5, 10):
        assert s[f"compare/recall_at_{k}_a_to_b"] == pytest.approx(np.mean(to_b < k), abs=1e-15)
        assert s[f"compare/recall_at_{k}_b_to_a"] == pytest.approx(np.mean(to_a < k), abs=1e-15)
    ua, ub = unit(A), unit(B)
    to_b, to_a = naive_ranks(unit(ua - ua.mean(0)), unit(ub - ub.mean(0)))
    for k in (1, 5, 10):
        assert s[f"compare/recall_at_{k}_a_to_b_gap_removed"] == pytest.approx(np.mean(to_b < k), abs=1e-15)
        assert s[f"compare/recall_at_{k}_b_to_a_gap_removed"] == pytest.approx(np.mean(to_a < k), abs=1e-15)
    assert s["compare/modality_gap"] == pytest.approx(np.linalg.norm(ua.mean(0) - ub.mean(0)), abs=1e-12)
    assert s["compare/alignment"] == pytest.approx(np.mean(np.sum((ua - ub) ** 2, axis=1)), abs=1e-12)
    assert s["compare/uniformity_a"] == pytest.approx(naive_uniformity(A), abs=1e-6)
    assert s["compare/uniformity_b"] == pytest.approx(naive_uniformity(B), abs=1e-6)


def test_ranks_are_tiled_exactly_and_ties_count_against_the_partner():
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    full = retrieval.paired_ranks(torch.as_tensor(A), torch.as_tensor(B))
    tiled = retrieval.paired_ranks(torch.as_tensor(A), torch.as_tensor(B), tile=7)
    assert [t.tolist() for t in tiled] == [f.tolist() for f in full] == [r.tolist() for r in naive_ranks(A, B)]
    # exact ties: B's rows 0 and 1 are the same vector, so each of queries 0 and 1 ties its partner with the
    # other: no hit at k = 1 (rank 1), a hit at k = 2
    A = torch.eye(4, dtype=torch.float64)
    B = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    to_b, _ = retrieval.paired_ranks(A, B)
    assert to_b.tolist() == [1, 1, 0, 0]
    assert retrieval.recall_at(to_b, 1) == 0.5 and retrieval.recall_at(to_b, 2) == 1.0


def test_ranks_with_exact_ties_across_tiles_chunks_and_dtypes(monkeypatch):
    # rows with four entries +-1 in 8 dimensions: norm 2, unit entries +-0.5, so every cosine is a
    # multiple of 1/4, exact in float32 and float64: many genuine ties, in every tile and chunk
    rng = np.random.default_rng(11)
    signs = rng.choice([-1.0, 1.0], size=(2, 23, 8))
    keep = np.argsort(rng.random((2, 23, 8)), axis=2) < 4
    A, B = np.where(keep, signs, 0.0)
    B[17] = B[2]                                    # a duplicated candidate in another tile
    expected = [r.tolist() for r in naive_ranks(A, B)]
    monkeypatch.setattr(retrieval, "COMPARE_CHUNK_BYTES", 2 * 5 * 4)   # 5-row tiles compared 2 rows at a time
    for a, b in ((np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64)):
        for tile in (5, 23, None):
            ranks = retrieval.paired_ranks(torch.as_tensor(A.astype(a)), torch.as_tensor(B.astype(b)), tile=tile)
            assert [r.tolist() for r in ranks] == expected, (a, b, tile)
            assert all(r.dtype == torch.long for r in ranks)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ranks_allocate_nothing_per_tile(dtype):
    from torch.profiler import ProfilerActivity, profile

    def allocations(n):
        A, B = torch.randn(n, 8, dtype=dtype), torch.randn(n, 8, dtype=dtype)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            retrieval.paired_ranks(A, B, tile=5)
        return sum(e.name in ("aten::empty", "aten::empty_strided", "aten::empty_like") for e in prof.events())

    assert allocations(20) == allocations(60)       # 16 tiles and 144 tiles: the same buffers


# ---- matrix -------------------------------------------------------------------------------

def test_cka_matrix_matches_pairwise_naive_cka(pair):
    A, B = pair
    C = np.tanh(A[:, :4])
    m = gp.cka_matrix([A, B, C], ["a", "b", "c"], kind="layers", device="cpu", batch_size=23)
    for i, X in enumerate((A, B, C)):
        for j, Y in enumerate((A, B, C)):
            assert m.values[i, j] == pytest.approx(naive_linear_cka(X, Y), abs=1e-12)
    assert m.to_dict()["names"] == ["a", "b", "c"] and m.meta["kind"] == "layers"


def test_cka_matrix_of_a_constant_representation_is_nan_not_an_error(pair):
    A, _ = pair
    m = gp.cka_matrix([A, np.ones((len(A), 3))], device="cpu")
    assert m.values[0, 0] == pytest.approx(1) and np.isnan(m.values[0, 1]) and np.isnan(m.values[1, 1])
    assert m.to_dict()["values"][0][1] is None


# ---- bad input ----------------------------------------------------------------------------

def test_bad_inputs_raise_one_clear_error(pair):
    A, B = pair
    with pytest.raises(InvalidEmbeddingsError, match="rows must describe the same inputs"):
        gp.compare(A, B[:-1], device="cpu")
    with pytest.raises(InvalidEmbeddingsError, match="same D"):
        gp.compare(A, B, paired=True, device="cpu")
    with pytest.raises(InvalidInputError, match="knn overlap: k must be"):
        gp.compare(A[:5], B[:5], knn_k=5, device="cpu")
    with pytest.raises(InvalidInputError, match="svcca_variance"):
        gp.compare(A, B, svcca_variance=1.5, device="cpu")
    with pytest.raises(InvalidInputError, match="svcca_directions"):
        gp.compare(A, B, svcca_directions=(0, 3), device="cpu")
    with pytest.raises(InvalidInputError, match="at least 2"):
        gp.cka_matrix([A], device="cpu")
    with pytest.raises(InvalidEmbeddingsError, match="zero norm"):
        gp.compare(np.vstack([np.zeros(9), A[1:]]), A, paired=True, knn_k=None, device="cpu")


def test_tiny_and_constant_inputs_give_nan_with_a_note():
    res = gp.compare(np.arange(6.0).reshape(3, 2), np.arange(9.0).reshape(3, 3) ** 2, knn_k=None, device="cpu")
    assert math.isnan(res.scalars()["compare/cka_debiased"])
    assert any("at least 4 rows" in note for note in res.notes())
    const = gp.compare(np.ones((10, 3)), np.random.default_rng(0).standard_normal((10, 2)), knn_k=None,
                       device="cpu")
    assert math.isnan(const.scalars()["compare/linear_cka"]) and math.isnan(const.scalars()["compare/procrustes"])
    assert any("constant" in note for note in const.notes())


@pytest.mark.gpu
def test_cuda_gives_the_cpu_values(pair, modalities):
    A, B = pair
    cpu = gp.compare(A, B, device="cpu").scalars()
    cuda = gp.compare(A, B, device="cuda").scalars()
    for key, value in cpu.items():
        assert cuda[key] == pytest.approx(value, abs=1e-10), key
    A, B = modalities
    cpu = gp.compare(A, B, paired=True, knn_k=None, device="cpu").scalars()
    cuda = gp.compare(A, B, paired=True, knn_k=None, device="cuda").scalars()
    for key, value in cpu.items():
        assert cuda[key] == pytest.approx(value, abs=1e-6), key
