"""orthogonality: closed forms (metrics-reference §5.3, §10.1 rows 19-21), a naive oracle, Welch bound,
streaming, label handling and edge cases."""

import math

import numpy as np
import pytest
import torch

import geometry_probe as gp
from geometry_probe.analyzers.orthogonality import Orthogonality
from geometry_probe.exceptions import InvalidEmbeddingsError, MissingLabelsError
from geometry_probe.functional import class_geometry as G

ARRAYS = ("class_mean_cosine", "class_mean_cosine_centred", "simo_sqdot", "simo_distance", "class_mean_norm")


def orth(X, y, **params):
    return gp.analyze(X, "orthogonality", labels=y, params={"orthogonality": params})["orthogonality"]


def noisy_classes(seed=0, C=5, D=10, counts=(30, 8, 20, 45, 12)):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), counts)
    X = np.abs(rng.normal(size=(C, D)))[y] * 2 + rng.normal(size=(y.size, D))
    perm = rng.permutation(y.size)
    return X[perm], y[perm]


def naive_orthogonality(X, y, normalize=True):
    """Oracle from the definitions (§5.2-5.4), loops over classes and pairs."""
    classes = np.unique(y)
    rows = X / np.linalg.norm(X, axis=1, keepdims=True) if normalize else X
    mu = np.array([rows[y == c].mean(axis=0) for c in classes])
    C = len(classes)

    def cos(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    K = np.array([[cos(mu[i], mu[j]) for j in range(C)] for i in range(C)])
    centred = mu - mu.mean(axis=0)
    Kc = np.array([[cos(centred[i], centred[j]) for j in range(C)] for i in range(C)])
    off = [abs(K[i, j]) for i in range(C) for j in range(C) if i != j]
    Gm = mu @ mu.T
    Gn = Gm / np.linalg.norm(Gm)
    return {
        "class_mean_abs_cosine": np.mean(off),
        "max_abs_cosine": np.max(off),
        "of_distance": np.linalg.norm(Gn - np.eye(C) / np.sqrt(C)),
        "etf_distance": np.linalg.norm(Gn - (np.eye(C) - 1.0 / C) / np.sqrt(C - 1)),
        "class_mean_cosine": K,
        "class_mean_cosine_centred": Kc,
        "simo_sqdot": np.array([[(mu[i] @ mu[j]) ** 2 for j in range(C)] for i in range(C)]),
        "simo_distance": np.array([[np.sum((mu[i] - mu[j]) ** 2) for j in range(C)] for i in range(C)]),
        "class_mean_norm": np.linalg.norm(mu, axis=1),
    }


@pytest.mark.parametrize("normalize", [True, False])
def test_matches_naive_oracle(normalize):
    X, y = noisy_classes()
    res = orth(X, y, normalize=normalize)
    expected = naive_orthogonality(X, y, normalize=normalize)
    for name in ("class_mean_abs_cosine", "max_abs_cosine", "of_distance", "etf_distance"):
        assert res.scalars[name] == pytest.approx(expected[name], rel=1e-10), name
    for name in ARRAYS:
        np.testing.assert_allclose(res.arrays[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert "welch_bound" not in res.scalars            # C = 5 <= D = 10
    assert res.params["normalize"] is normalize


@pytest.mark.parametrize(("C", "expected"), [(2, 0.765367), (5, 0.459506), (10, 0.320364)])
def test_orthogonal_frame_versus_simplex_etf(C, expected):
    """Row 21: the uncentred OF is `expected` away from the ETF target, and the ETF as far from the OF."""
    y = np.repeat(np.arange(C), 4)
    of = orth(np.repeat(np.eye(C, C + 3), 4, axis=0), y)
    assert of.scalars["of_distance"] <= 1e-12 and of.scalars["class_mean_abs_cosine"] <= 1e-12
    assert of.scalars["etf_distance"] == pytest.approx(expected, abs=5e-7)
    etf_X, etf_y = gp.datasets.make_simplex_etf(n_classes=C, n_features=C + 3, n_per_class=4)
    etf = orth(etf_X, etf_y)
    assert etf.scalars["etf_distance"] <= 1e-12
    assert etf.scalars["of_distance"] == pytest.approx(expected, abs=5e-7)
    assert etf.scalars["class_mean_abs_cosine"] == pytest.approx(1 / (C - 1), rel=1e-12)
    assert G.off_diagonal(etf.arrays["class_mean_cosine"]).mean() == pytest.approx(-1 / (C - 1), rel=1e-12)
    off = G.off_diagonal(of.arrays["class_mean_cosine_centred"])           # row 19 / row 20:
    assert off.mean() == pytest.approx(-1 / (C - 1), rel=1e-12)          # centred OF = simplex ETF
    np.testing.assert_allclose(np.diag(of.arrays["simo_sqdot"]), 1.0)
    np.testing.assert_allclose(G.off_diagonal(of.arrays["simo_distance"]), 2.0)


def test_welch_bound_when_more_classes_than_dimensions():
    rng = np.random.default_rng(1)
    C, D = 12, 4
    y = np.repeat(np.arange(C), 6)
    X = rng.normal(size=(C, D))[y] + 0.1 * rng.normal(size=(y.size, D))
    res = orth(X, y)
    assert res.scalars["welch_bound"] == pytest.approx(math.sqrt((C - D) / (D * (C - 1))), rel=1e-12)
    assert res.scalars["max_abs_cosine"] >= res.scalars["welch_bound"]
    assert any("Welch bound" in note for note in res.notes)


def test_welch_bound_is_reached_by_the_tetrahedron():
    tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    res = orth(np.repeat(tetra, 2, axis=0), np.repeat(np.arange(4), 2))
    assert res.scalars["max_abs_cosine"] == pytest.approx(res.scalars["welch_bound"], rel=1e-12)
    assert res.scalars["welch_bound"] == pytest.approx(1 / 3, rel=1e-12)


def test_ragged_streaming_equals_one_shot():
    X, y = noisy_classes()
    order = np.argsort(y, kind="stable")
    T, L = torch.as_tensor(X[order]), torch.as_tensor(y[order])
    one = Orthogonality(n_classes=5)
    one.update(T, L)
    ragged = Orthogonality()                              # n_classes inferred per batch: slots grow
    for start, stop in [(0, 1), (1, 9), (9, 40), (40, 41), (41, 100), (100, len(y))]:
        ragged.update(T[start:stop], L[start:stop])
    a, b = one.compute(), ragged.compute()
    for name, value in a.scalars.items():
        assert b.scalars[name] == pytest.approx(value, rel=1e-12), name
    for name in ARRAYS:
        np.testing.assert_allclose(b.arrays[name], a.arrays[name], rtol=1e-12, atol=1e-14)


def test_relabel_permutes_matrices_and_keeps_scalars():
    X, y = noisy_classes()
    perm = np.array([2, 4, 0, 1, 3])
    a, b = orth(X, y), orth(X, perm[y])
    for name, value in a.scalars.items():
        assert b.scalars[name] == pytest.approx(value, rel=1e-12), name
    np.testing.assert_allclose(b.arrays["class_mean_cosine"][np.ix_(perm, perm)], a.arrays["class_mean_cosine"])
    strings = orth(X, np.array(["e", "d", "c", "b", "a"])[y])       # code order = sorted names
    np.testing.assert_allclose(strings.arrays["class_mean_norm"], a.arrays["class_mean_norm"][::-1])


def test_empty_class_gives_nan_rows_and_a_note():
    X, y = noisy_classes()
    emb = gp.Embeddings(X, labels=np.where(y >= 2, y + 1, y), classes=tuple("abcdef"))   # code 2 unused
    res = orth(emb, None)
    assert res.arrays["class_mean_cosine"].shape == (6, 6)
    assert np.all(np.isnan(res.arrays["class_mean_cosine"][2])) and math.isnan(res.arrays["class_mean_norm"][2])
    assert any("1 of 6 classes have no samples" in note for note in res.notes)
    assert res.scalars["of_distance"] == pytest.approx(orth(X, y).scalars["of_distance"], rel=1e-12)


def test_zero_rows_raise_unless_raw_means():
    X, y = noisy_classes()
    X[7] = 0.0
    with pytest.raises(InvalidEmbeddingsError, match="rows 7 have zero norm"):
        orth(X, y)
    assert math.isfinite(orth(X, y, normalize=False).scalars["of_distance"])


def test_zero_class_mean_and_single_class_are_nan_with_notes():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    res = orth(X, [0, 0, 1, 1], normalize=False)
    assert math.isnan(res.scalars["class_mean_abs_cosine"]) and any("exactly zero" in n for n in res.notes)
    single = orth(X, [0, 0, 0, 0])
    assert all(math.isnan(v) for v in single.scalars.values())
    assert any("only 1 class" in n for n in single.notes)


def test_large_class_count_leaves_matrices_out():
    rng = np.random.default_rng(2)
    y = np.arange(40) % 20
    res = orth(rng.normal(size=(40, 8)), y, matrix_max_classes=10)
    assert "class_mean_cosine" not in res.arrays and "class_mean_norm" in res.arrays
    assert any("matrix_max_classes=10" in n for n in res.notes)


def test_missing_labels_raise():
    with pytest.raises(MissingLabelsError):
        gp.analyze(np.eye(4), "orthogonality")


@pytest.mark.gpu
def test_cuda_matches_cpu():
    X, y = noisy_classes()
    cpu = gp.analyze(X, "orthogonality", labels=y, device="cpu")["orthogonality"]
    cuda = gp.analyze(X, "orthogonality", labels=y, device="cuda")["orthogonality"]
    for name, value in cpu.scalars.items():
        assert cuda.scalars[name] == pytest.approx(value, rel=1e-9), name
    for name in ARRAYS:
        np.testing.assert_allclose(cuda.arrays[name], cpu.arrays[name], rtol=1e-9, atol=1e-12)
