"""compare() against peer libraries when they are installed (skipped otherwise): torch_cka's unbiased
HSIC, faiss's exact inner-product search; anatome and netrep when importable (they are not on PyPI:
see benchmarks/compare_peers_cka.py, which runs all of them)."""

import math
import types

import numpy as np
import pytest
import torch

import geometry_probe as gp


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((300, 12)) + 1.0
    return A, A[:, :6] @ rng.standard_normal((6, 10)) + rng.standard_normal((300, 10))


def test_debiased_cka_matches_torch_cka(pair):
    cka = pytest.importorskip("torch_cka.cka")
    A, B = pair
    holder = types.SimpleNamespace(device="cpu")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        K, L = torch.as_tensor(A) @ torch.as_tensor(A).T, torch.as_tensor(B) @ torch.as_tensor(B).T
        K.fill_diagonal_(0.0)
        L.fill_diagonal_(0.0)
        hsic = cka.CKA._HSIC
        expected = hsic(holder, K, L) / math.sqrt(hsic(holder, K, K) * hsic(holder, L, L))
    finally:
        torch.set_default_dtype(previous)
    assert gp.compare(A, B, knn_k=None, device="cpu").scalars()["compare/cka_debiased"] == pytest.approx(
        expected, abs=1e-6)


def test_recall_and_knn_overlap_match_faiss():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(8)
    shared = rng.standard_normal((500, 16))
    A, B = shared + rng.standard_normal((500, 16)), shared + rng.standard_normal((500, 16))
    unit = [np.ascontiguousarray(X / np.linalg.norm(X, axis=1, keepdims=True), dtype=np.float32) for X in (A, B)]
    s = gp.compare(A, B, paired=True, knn_k=5, device="cpu").scalars()
    for direction, (queries, base) in (("a_to_b", unit), ("b_to_a", unit[::-1])):
        index = faiss.IndexFlatIP(16)
        index.add(base)
        _, found = index.search(queries, 10)
        for k in (1, 5, 10):
            hit = (found[:, :k] == np.arange(500)[:, None]).any(axis=1).mean()
            assert s[f"compare/recall_at_{k}_{direction}"] == pytest.approx(hit, abs=1e-12)
    lists = []
    for X in unit:
        index = faiss.IndexFlatIP(16)
        index.add(X)
        _, found = index.search(X, 6)
        lists.append([set(row[row != i][:5]) for i, row in enumerate(found)])
    jaccard = np.mean([len(a & b) / len(a | b) for a, b in zip(*lists)])
    assert s["compare/knn_overlap"] == pytest.approx(jaccard, abs=1e-12)


def test_cka_and_procrustes_match_netrep(pair):
    metrics = pytest.importorskip("netrep.metrics")
    A, B = pair
    s = gp.compare(A, B, knn_k=None, device="cpu").scalars()
    assert math.cos(metrics.LinearCKA().score(A, B)) == pytest.approx(s["compare/linear_cka"], abs=1e-6)
    theta = metrics.LinearMetric(alpha=1.0, score_method="angular").fit_score(A, B)
    assert 2 - 2 * math.cos(theta) == pytest.approx(s["compare/procrustes"], abs=1e-6)


def test_cka_procrustes_and_cca_match_anatome(pair):
    distance = pytest.importorskip("anatome.distance")
    A, B = pair
    s = gp.compare(A, B, knn_k=None, device="cpu").scalars()
    x, y = torch.as_tensor(A), torch.as_tensor(B)
    assert 1 - float(distance.linear_cka_distance(x, y, True)) == pytest.approx(s["compare/cka_debiased"], abs=1e-6)
    assert 2 * float(distance.orthogonal_procrustes_distance(x.clone(), y.clone())) == pytest.approx(
        s["compare/procrustes"], abs=1e-6)
    assert float(distance.cca(x, y, "svd")[2].mean()) == pytest.approx(s["compare/cca_mean"], abs=1e-6)
