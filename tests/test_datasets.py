"""make_simplex_etf against the closed form of a simplex ETF (unit norms, pairwise cosine −1/(C−1)); the over-fused
digits encoder against independent NumPy / scikit-learn numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geometry_probe as gp


@pytest.mark.parametrize(("n_classes", "n_features"), [(20, 19), (5, 8), (5, 5), (2, 1)])
def test_simplex_etf_means_have_the_closed_form_gram(n_classes, n_features):
    X, y = gp.datasets.make_simplex_etf(n_classes=n_classes, n_features=n_features, n_per_class=3)
    assert X.shape == (3 * n_classes, n_features)
    np.testing.assert_array_equal(np.bincount(y), np.full(n_classes, 3))
    means = X[::3]
    np.testing.assert_array_equal(X, means[y])                      # noise=0: every row is its class mean
    gram = means @ means.T
    expected = np.full((n_classes, n_classes), -1.0 / (n_classes - 1))
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(gram, expected, atol=1e-12)
    np.testing.assert_allclose(means.sum(0), 0.0, atol=1e-12)      # the frame is centred


def test_simplex_etf_with_d_equal_c_minus_1_spans_the_space():
    X, _ = gp.datasets.make_simplex_etf(n_classes=20, n_features=19, n_per_class=1)
    assert np.linalg.matrix_rank(X) == 19


def test_simplex_etf_noise_has_the_requested_scale():
    X, y = gp.datasets.make_simplex_etf(n_classes=4, n_features=6, n_per_class=5000, noise=0.5)
    clean, _ = gp.datasets.make_simplex_etf(n_classes=4, n_features=6, n_per_class=5000)
    assert abs((X - clean).std() - 0.5) < 0.01


def test_simplex_etf_rejects_too_few_features():
    with pytest.raises(gp.InvalidInputError, match="n_features >= 19"):
        gp.datasets.make_simplex_etf(n_classes=20, n_features=18)


def test_make_collapsed_rejects_an_unknown_kind_clearly():
    with pytest.raises(gp.InvalidInputError, match="choose 'point' or 'line'"):
        gp.datasets.make_collapsed(10, 4, kind="plane")


@pytest.fixture(scope="module")
def overfused():
    return gp.datasets.load_digits_overfused_embeddings()


def test_overfused_digits_is_fused_by_an_independent_numpy_svd(overfused):
    X = np.asarray(overfused.X, dtype=np.float64)
    assert overfused.X.dtype == np.float32 and X.shape == (1797, 128)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    s = np.linalg.svd(unit, compute_uv=False)
    assert s[0] ** 2 / np.sum(s ** 2) >= 0.99


def test_overfused_digits_lost_the_class_information_by_sklearn_knn(overfused):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    y = load_digits().target
    np.testing.assert_array_equal(overfused.labels, y)
    X = np.asarray(overfused.X, dtype=np.float64)
    train, test = train_test_split(np.arange(y.size), test_size=0.3, stratify=y, random_state=0)
    knn = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute").fit(X[train], y[train])
    assert knn.score(X[test], y[test]) < 0.15                        # chance 0.10; the healthy model reads 0.985
    means = np.stack([X[train][y[train] == c].mean(0) for c in range(10)])
    nearest = ((X[test][:, None, :] - means[None]) ** 2).sum(2).argmin(1)
    assert (nearest == y[test]).mean() < 0.2


def test_overfused_digits_is_deterministic_on_one_thread_and_leaves_torch_state(overfused):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(123)
        expected_draw = torch.rand(3)
        torch.manual_seed(123)
        again = gp.datasets.load_digits_overfused_embeddings()
        assert torch.get_num_threads() == 2
        torch.testing.assert_close(torch.rand(3), expected_draw)    # the global RNG was not consumed
    finally:
        torch.set_num_threads(previous)
    np.testing.assert_array_equal(np.asarray(again.X), np.asarray(overfused.X))
    assert overfused.name == "digits-overfused"
    assert {"dataset", "model", "recipe"} <= set(overfused.meta)
    assert "64-128-128" in overfused.meta["model"] and "learning rate 3" in overfused.meta["recipe"]
