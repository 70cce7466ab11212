"""make_simplex_etf against the closed form of a simplex ETF: unit norms, pairwise cosine −1/(C−1)."""

from __future__ import annotations

import numpy as np
import pytest

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
