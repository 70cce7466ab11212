"""neural_collapse: closed forms (metrics-reference §10.1 rows 15-21), a naive NumPy oracle, CH identity,
invariances, streaming, classifier inputs and edge-case notes."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import calinski_harabasz_score
from typer.testing import CliRunner

import geometry_probe as gp
from geometry_probe.analyzers.neural_collapse import NeuralCollapse
from geometry_probe.batch import Batch
from geometry_probe.classifier import load_classifier
from geometry_probe.exceptions import AmbiguousKeyError, InvalidInputError, MissingLabelsError
from geometry_probe.functional import neural_collapse as F

CLOSED_FORM_SCALARS = ("nc1", "cdnv", "trace_ratio", "nc2_equinorm", "nc2_equiangular",
                       "nc2_equiangular_mean_abs", "nc2_etf_error", "nc2_of_error")


# --- constructions and the independent oracle --------------------------------------------------------


def etf_with_offsets(C=5, D=8, r=3.0, s=0.5, seed=0):
    """§4.2: simplex-ETF class means with ‖μ_c − μ_G‖ = r, each class = μ_c ± s·e_k for k = 1..D."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(D, C)))
    means = (basis @ (np.eye(C) - 1.0 / C)).T * math.sqrt(C / (C - 1)) * r + rng.normal(size=D)
    offsets = np.concatenate([s * np.eye(D), -s * np.eye(D)])               # (2D, D)
    X = (means[:, None, :] + offsets[None]).reshape(-1, D)
    y = np.repeat(np.arange(C), 2 * D)
    return X, y


def imbalanced(seed=0, C=6, D=12, counts=(40, 7, 25, 3, 60, 15)):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(C, D)) + 1.5
    y = np.repeat(np.arange(C), counts)
    X = centres[y] + rng.normal(size=(y.size, D)) * rng.uniform(0.3, 1.5, size=C)[y, None]
    perm = rng.permutation(y.size)
    return X[perm], y[perm]


def naive_nc(X, y, W=None, b=None, global_mean="class"):
    """Two-pass NumPy oracle written from the definitions in metrics-reference §4 (loops, no shared code)."""
    classes = np.unique(y)
    C, (N, D) = classes.size, X.shape
    mu = np.array([X[y == c].mean(axis=0) for c in classes])
    mu_G = mu.mean(axis=0) if global_mean == "class" else X.mean(axis=0)
    Sw = np.zeros((D, D))
    for i in range(N):
        d = X[i] - mu[np.searchsorted(classes, y[i])]
        Sw += np.outer(d, d)
    Sw /= N
    Mc = mu - mu_G
    Sb = sum(np.outer(m, m) for m in Mc) / C
    out = {"nc1": np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10, hermitian=True)) / C}
    var = np.array([np.mean(np.sum((X[y == c] - mu[k]) ** 2, axis=1)) for k, c in enumerate(classes)])
    pairs = [(i, j) for i in range(C) for j in range(i + 1, C)]
    out["cdnv"] = np.mean([(var[i] + var[j]) / (2 * np.sum((mu[i] - mu[j]) ** 2)) for i, j in pairs])
    out["trace_ratio"] = np.trace(Sw) / np.trace(Sb)
    norms = np.array([np.sqrt(np.sum(m**2)) for m in Mc])
    out["nc2_equinorm"] = np.std(norms, ddof=1) / np.mean(norms)
    cos = [Mc[i] @ Mc[j] / (norms[i] * norms[j]) for i, j in pairs]
    out["nc2_equiangular"] = np.std(cos)
    out["nc2_equiangular_mean_abs"] = np.mean([abs(c + 1 / (C - 1)) for c in cos])
    ideal = (np.eye(C) - np.ones((C, C)) / C) / np.sqrt(C - 1)
    G = Mc @ Mc.T
    out["nc2_etf_error"] = np.linalg.norm(G / np.linalg.norm(G) - ideal)
    Gu = mu @ mu.T
    out["nc2_of_error"] = np.linalg.norm(Gu / np.linalg.norm(Gu) - np.eye(C) / np.sqrt(C))
    ncc = np.array([classes[np.argmin([np.sum((x - m) ** 2) for m in mu])] for x in X])
    out["ncc_accuracy"] = np.mean(ncc == y)
    if W is not None:
        Wp = W[classes]
        out["nc3"] = np.sum((Wp / np.linalg.norm(Wp) - Mc / np.linalg.norm(Mc)) ** 2)
        GW = Wp @ Wp.T
        out["nc3_w_etf_error"] = np.linalg.norm(GW / np.linalg.norm(GW) - ideal)
        bias = np.zeros(W.shape[0]) if b is None else b
        linear = np.array([np.argmax(W @ x + bias) for x in X])
        out["nc4_agreement"] = np.mean(linear == ncc)
    return out


def nc_scalars(X, y, **params):
    return gp.analyze(X, "neural_collapse", labels=y, params={"neural_collapse": params})["neural_collapse"]


# --- metrics-reference §10.1 -----------------------------------------------------------------------------


@pytest.mark.parametrize(("D", "nc1"), [(8, 0.0111111), (10, 0.0088889)])
def test_nc1_and_cdnv_closed_forms(D, nc1):
    X, y = etf_with_offsets(D=D)
    res = nc_scalars(X, y)
    assert res.scalars["nc1"] == pytest.approx(nc1, abs=5e-8)
    assert res.scalars["nc1"] == pytest.approx(0.25 / D * 16 / (5 * 9), rel=1e-10)     # (s²/D)(C−1)²/(C r²)
    assert res.scalars["nc1"] * 5 == pytest.approx({8: 0.0555556, 10: 0.0444444}[D], abs=5e-7)  # notebook ×C
    assert res.scalars["cdnv"] == pytest.approx(0.0111111, abs=5e-8)                    # any D
    assert res.scalars["nc1_pinv_rank"] == 4
    assert F.nc1(X, y) == pytest.approx(res.scalars["nc1"], rel=1e-12)


def test_exact_simplex_etf_has_zero_nc2_errors_and_nc1():
    X, y = gp.datasets.make_simplex_etf(n_classes=6, n_features=9, n_per_class=4, noise=0.0)
    s = nc_scalars(X + 5.0, y).scalars
    assert s["nc2_etf_error"] <= 1e-12
    assert s["nc2_equinorm"] <= 1e-12 and s["nc2_equiangular"] <= 1e-12
    assert s["nc2_equiangular_mean_abs"] <= 1e-12
    assert s["nc1"] == pytest.approx(0.0, abs=1e-12) and s["ncc_accuracy"] == 1.0


def test_centred_orthogonal_frame_is_an_etf_and_uncentred_is_not():
    """Rows 20 and 21: class means e_c; centring turns the OF into a simplex ETF."""
    for C, expected in [(2, 0.765367), (5, 0.459506), (10, 0.320364)]:
        X = np.repeat(np.eye(C, C + 2), 3, axis=0)
        y = np.repeat(np.arange(C), 3)
        s = nc_scalars(X, y).scalars
        assert s["nc2_etf_error"] <= 1e-12                                          # row 20
        assert s["nc2_of_error"] <= 1e-12
        etf, labels = gp.datasets.make_simplex_etf(n_classes=C, n_features=C + 2, n_per_class=3)
        assert nc_scalars(etf, labels).scalars["nc2_of_error"] == pytest.approx(expected, abs=5e-7)  # row 21


# --- oracle on random imbalanced data ---------------------------------------------------------------------


@pytest.mark.parametrize("global_mean", ["class", "sample"])
def test_every_scalar_matches_the_naive_oracle(global_mean):
    X, y = imbalanced()
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(6, 12)), rng.normal(size=6)
    res = nc_scalars(X, y, classifier=(W, b), global_mean=global_mean)
    expected = naive_nc(X, y, W, b, global_mean=global_mean)
    assert set(expected) <= set(res.scalars)
    for name, value in expected.items():
        assert res.scalars[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert res.params["global_mean"] == global_mean


def test_conventions_differ_under_imbalance_and_agree_when_balanced():
    X, y = imbalanced()
    assert nc_scalars(X, y).scalars["nc1"] != pytest.approx(nc_scalars(X, y, global_mean="sample").scalars["nc1"])
    Xb, yb = gp.datasets.make_simplex_etf(n_classes=4, n_features=6, n_per_class=30, noise=0.7)
    a, b = nc_scalars(Xb, yb).scalars, nc_scalars(Xb, yb, global_mean="sample").scalars
    for name in CLOSED_FORM_SCALARS:
        assert a[name] == pytest.approx(b[name], rel=1e-10), name


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_float32_input_is_close_to_float64(offset):
    """Per-batch centring keeps float32 sums accurate under a large common offset."""
    X, y = imbalanced(seed=3)
    X32 = (X + offset).astype(np.float32)
    a = nc_scalars(X32, y, global_mean="sample").scalars
    b = naive_nc(X32.astype(np.float64), y, global_mean="sample")
    for name in CLOSED_FORM_SCALARS:
        assert a[name] == pytest.approx(b[name], rel=1e-4), name


def test_ncc_on_float32_with_a_large_common_offset():
    """The second pass shifts rows by the global mean when the offset dwarfs the spread."""
    rng = np.random.default_rng(9)
    y = np.repeat(np.arange(8), 250)
    X = (rng.normal(size=(8, 16))[y] * 0.3 + rng.normal(size=(y.size, 16)) + 3e4).astype(np.float32)
    W = rng.normal(size=(8, 16))
    expected = naive_nc(X.astype(np.float64), y, W, -W @ np.full(16, 3e4))
    s = nc_scalars(X, y, classifier=(W, -W @ np.full(16, 3e4))).scalars
    assert s["ncc_accuracy"] == expected["ncc_accuracy"] < 0.9          # overlapping classes: a real test
    assert s["nc4_agreement"] == expected["nc4_agreement"]


def test_trace_ratio_calinski_harabasz_identity():
    rng = np.random.default_rng(2)
    K, per, D = 5, 40, 7
    y = np.repeat(np.arange(K), per)
    X = rng.normal(size=(K, D))[y] * 2 + rng.normal(size=(y.size, D))
    N = y.size
    ch = calinski_harabasz_score(X, y)
    assert nc_scalars(X, y).scalars["trace_ratio"] == pytest.approx((N - K) / ((K - 1) * ch), rel=1e-10)


def test_gnc2_when_more_classes_than_dimensions_plus_one():
    rng = np.random.default_rng(4)
    C, D = 9, 3
    y = np.repeat(np.arange(C), 5)
    X = rng.normal(size=(C, D))[y] * 3 + rng.normal(size=(y.size, D)) * 0.2
    res = nc_scalars(X, y)
    mu = np.array([X[y == c].mean(0) for c in range(C)])
    U = mu - mu.mean(0)
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    logs = [-np.log(np.linalg.norm(U[i] - U[j])) for i in range(C) for j in range(i + 1, C)]
    assert res.scalars["gnc2"] == pytest.approx(np.var(logs), rel=1e-10)
    assert any("exact simplex ETF needs D >= C-1" in note for note in res.notes)
    assert "gnc2" not in nc_scalars(*imbalanced()).scalars


# --- invariances and label handling ---------------------------------------------------------------------------


def test_label_permutation_invariance_and_any_label_type():
    X, y = imbalanced()
    perm = np.array([3, 0, 5, 1, 2, 4])
    base = nc_scalars(X, y, classifier=np.eye(6, 12))
    relabelled = nc_scalars(X, perm[y], classifier=np.eye(6, 12)[np.argsort(perm)])
    names = np.array(["cat", "dog", "emu", "fox", "gnu", "yak"])
    sparse = nc_scalars(X, np.array([3, 17, 40, 41, 99, 1000])[y])
    strings = nc_scalars(X, names[y])
    for name, value in base.scalars.items():
        assert relabelled.scalars[name] == pytest.approx(value, rel=1e-9), name
        if name not in ("nc3", "nc3_w_etf_error", "nc4_agreement"):
            assert sparse.scalars[name] == pytest.approx(value, rel=1e-12), name
            assert strings.scalars[name] == pytest.approx(value, rel=1e-12), name
    rows = relabelled.tables["per_class"]
    assert [rows[perm[k]]["count"] for k in range(6)] == [r["count"] for r in base.tables["per_class"]]


def test_rotation_and_scale_invariance():
    X, y = imbalanced()
    Q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(12, 12)))
    a, b = nc_scalars(X, y).scalars, nc_scalars(3.0 * X @ Q, y).scalars
    for name, value in a.items():
        assert b[name] == pytest.approx(value, rel=1e-9), name


def test_per_class_table():
    X, y = imbalanced()
    rows = nc_scalars(X, y).tables["per_class"]
    mu = np.array([X[y == c].mean(0) for c in range(6)])
    for k, row in enumerate(rows):
        assert row["class"] == k and row["count"] == int((y == k).sum())
        assert row["within_class_variance"] == pytest.approx(np.mean(np.sum((X[y == k] - mu[k]) ** 2, 1)), rel=1e-10)
        assert row["centred_mean_norm"] == pytest.approx(np.linalg.norm(mu[k] - mu.mean(0)), rel=1e-10)


# --- streaming, merging, second pass ----------------------------------------------------------------------


def stream(X, y, sizes, *, n_classes=6, **params):
    a = NeuralCollapse(n_classes=n_classes, **params)
    T, L = torch.as_tensor(X), torch.as_tensor(y)
    bounds = np.cumsum([0, *sizes])
    batches = [Batch(T[i:j], L[i:j], n_classes=n_classes) for i, j in itertools.pairwise(bounds)]
    for batch in batches:
        a.update_batch(batch)
    assert a.needs_second_pass()
    for batch in batches:
        a.update_second_pass(batch)
    assert not a.needs_second_pass()
    return a.compute()


def test_ragged_streaming_with_batches_missing_classes_equals_one_shot():
    X, y = imbalanced()
    order = np.argsort(y, kind="stable")                  # sorted: most batches miss most classes
    X, y = X[order], y[order]
    W = np.random.default_rng(6).normal(size=(6, 12))
    one = stream(X, y, [len(y)], classifier=W)
    ragged = stream(X, y, [1, 2, 37, 5, 50, 1, 30, len(y) - 126], classifier=W)
    for name, value in one.scalars.items():
        assert ragged.scalars[name] == pytest.approx(value, rel=1e-10, abs=1e-14), name
    for got, want in zip(ragged.tables["per_class"], one.tables["per_class"]):
        assert got == pytest.approx(want, rel=1e-10)
    via_analyze = gp.analyze(X, "neural_collapse", labels=y, batch_size=7,
                             params={"neural_collapse": {"classifier": W}})["neural_collapse"]
    for name, value in one.scalars.items():
        assert via_analyze.scalars[name] == pytest.approx(value, rel=1e-10, abs=1e-14), name


def test_merge_equals_union_and_discards_second_pass():
    X, y = imbalanced()
    T, L = torch.as_tensor(X), torch.as_tensor(y)
    a, b = NeuralCollapse(n_classes=6), NeuralCollapse(n_classes=6)
    a.update(T[:70], L[:70])
    b.update(T[70:], L[70:])
    a.update_second_pass(Batch(T, L, n_classes=6))
    a.merge(b)
    assert a.needs_second_pass()
    merged = a.compute()
    assert math.isnan(merged.scalars["ncc_accuracy"]) and any("second pass" in n for n in merged.notes)
    whole = nc_scalars(X, y).scalars
    for name in CLOSED_FORM_SCALARS:
        assert merged.scalars[name] == pytest.approx(whole[name], rel=1e-10), name


def test_update_after_second_pass_invalidates_it():
    X, y = imbalanced()
    a = NeuralCollapse(n_classes=6)
    a.update(torch.as_tensor(X[:100]), torch.as_tensor(y[:100]))
    a.update_second_pass(Batch(torch.as_tensor(X[:100]), torch.as_tensor(y[:100]), n_classes=6))
    a.update(torch.as_tensor(X[100:]), torch.as_tensor(y[100:]))
    assert a.needs_second_pass()


def test_ncc_can_be_switched_off():
    X, y = imbalanced()
    res = nc_scalars(X, y, ncc=False)
    assert "ncc_accuracy" not in res.scalars and res.params["ncc_pass"] == "off"


# --- classifier inputs ------------------------------------------------------------------------------------


@pytest.fixture
def linear_layer():
    torch.manual_seed(0)
    return torch.nn.Linear(12, 6).double()


def test_classifier_as_array_npz_and_torch_state_dict(tmp_path, linear_layer):
    X, y = imbalanced()
    W, b = linear_layer.weight.detach().numpy(), linear_layer.bias.detach().numpy()
    expected = naive_nc(X, y, W, b)
    np.savez(tmp_path / "clf.npz", weight=W, bias=b)
    torch.save(linear_layer.state_dict(), tmp_path / "clf.pt")
    torch.save({"fc." + k: v for k, v in linear_layer.state_dict().items()}, tmp_path / "model.pt")
    np.save(tmp_path / "W.npy", W)
    no_bias = nc_scalars(X, y, classifier=tmp_path / "W.npy").scalars
    assert no_bias["nc4_agreement"] == pytest.approx(naive_nc(X, y, W, None)["nc4_agreement"])
    assert no_bias["nc3"] == pytest.approx(expected["nc3"], rel=1e-9)             # NC3 ignores the bias
    sources = [(W, b), tmp_path / "clf.npz", str(tmp_path / "clf.pt"), tmp_path / "model.pt", linear_layer,
               {"weight": linear_layer.weight, "bias": linear_layer.bias}]
    for source in sources:
        s = nc_scalars(X, y, classifier=source).scalars
        for name in ("nc3", "nc3_w_etf_error", "nc4_agreement"):
            assert s[name] == pytest.approx(expected[name], rel=1e-9), (source, name)
    without_bias = nc_scalars(X, y, classifier=W).scalars["nc4_agreement"]
    assert without_bias == pytest.approx(naive_nc(X, y, W, None)["nc4_agreement"])


def test_safetensors_classifier(tmp_path, linear_layer):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    safetensors_torch.save_file({k: v.contiguous() for k, v in linear_layer.state_dict().items()},
                                str(tmp_path / "clf.safetensors"))
    clf = load_classifier(tmp_path / "clf.safetensors")
    np.testing.assert_array_equal(clf.weight, linear_layer.weight.detach().numpy())
    np.testing.assert_array_equal(clf.bias, linear_layer.bias.detach().numpy())


def test_nc4_agreement_against_naive_loop():
    X, y = imbalanced(seed=7)
    rng = np.random.default_rng(8)
    W, b = rng.normal(size=(6, 12)), 5.0 * rng.normal(size=6)       # a large bias changes predictions
    with_bias = F.nc4_agreement(X, y, (W, b))
    assert with_bias == pytest.approx(naive_nc(X, y, W, b)["nc4_agreement"], abs=1e-15)
    assert with_bias != pytest.approx(F.nc4_agreement(X, y, W))
    assert F.ncc_accuracy(X, y) == pytest.approx(naive_nc(X, y)["ncc_accuracy"], abs=1e-15)


def test_classifier_shape_and_key_errors(tmp_path):
    X, y = imbalanced()
    with pytest.raises(InvalidInputError, match="7 rows .* 6 distinct classes"):
        nc_scalars(X, y, classifier=np.zeros((7, 12)))
    with pytest.raises(InvalidInputError, match="12 rows .* transposed"):
        nc_scalars(X, y, classifier=np.zeros((12, 6)))
    with pytest.raises(InvalidInputError, match="bias"):
        load_classifier((np.zeros((6, 12)), np.zeros(5)))
    torch.save({"a.weight": torch.zeros(6, 12), "b.weight": torch.zeros(6, 12)}, tmp_path / "two.pt")
    with pytest.raises(AmbiguousKeyError, match="a.weight"):
        load_classifier(tmp_path / "two.pt")
    assert load_classifier(tmp_path / "two.pt", key="b").source.endswith("[b.weight]")
    with pytest.raises(gp.InputFileError):
        load_classifier(tmp_path / "missing.npy")


def test_cli_classifier_option(tmp_path, linear_layer):
    from geometry_probe.cli.main import app

    X, y = imbalanced()
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    torch.save(linear_layer.state_dict(), tmp_path / "clf.pt")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "X.npy"), "-l", str(tmp_path / "y.npy"), "-a",
                                      "neural_collapse", "--classifier", str(tmp_path / "clf.pt"),
                                      "--json", str(out), "-q"])
    assert result.exit_code == 0, result.output
    scalars = json.loads(out.read_text())["scalars"]
    expected = naive_nc(X, y, linear_layer.weight.detach().numpy(), linear_layer.bias.detach().numpy())
    assert scalars["neural_collapse/nc4_agreement"] == pytest.approx(expected["nc4_agreement"])
    assert scalars["neural_collapse/nc3"] == pytest.approx(expected["nc3"], rel=1e-9)


# --- edge cases -------------------------------------------------------------------------------------------


def test_tiny_and_empty_classes_give_notes_not_crashes():
    X, y = imbalanced(counts=(40, 1, 25, 3, 60, 15))
    res = nc_scalars(gp.Embeddings(X, labels=y, classes=tuple("abcdefgh")), None)   # codes 6, 7 unused
    assert any("2 of 8 classes have no samples" in n and "6, 7" in n for n in res.notes)
    assert any("single sample" in n and "codes 1" in n for n in res.notes)
    expected = naive_nc(X, y)
    for name in CLOSED_FORM_SCALARS:
        assert res.scalars[name] == pytest.approx(expected[name], rel=1e-9), name
    rows = res.tables["per_class"]
    assert len(rows) == 8 and rows[7]["count"] == 0 and math.isnan(rows[7]["centred_mean_norm"])
    assert rows[1]["within_class_variance"] == 0.0


def test_single_class_is_nan_with_explanation():
    X = np.random.default_rng(0).normal(size=(20, 4))
    res = nc_scalars(X, np.zeros(20, dtype=int))
    for name in CLOSED_FORM_SCALARS:
        assert math.isnan(res.scalars[name]), name
    assert res.scalars["ncc_accuracy"] == 1.0
    assert any("only 1 class" in n for n in res.notes)
    json.loads(gp.Results([res]).to_json())                  # NaN serialises as null


def test_coincident_means_make_cdnv_nan_with_note():
    X = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0], [5.0, 0.0], [5.0, 1.0]])
    res = nc_scalars(X, [0, 0, 1, 1, 2, 2])
    assert math.isnan(res.scalars["cdnv"]) and any("coincident means" in n for n in res.notes)
    assert res.scalars["nc1_pinv_rank"] == 1                     # Σ_B has rank 1 < C-1: relative cutoff
    with np.errstate(divide="ignore"):                            # the oracle's CDNV divides by 0 here
        expected = naive_nc(X, np.array([0, 0, 1, 1, 2, 2]))
    assert res.scalars["nc1"] == pytest.approx(expected["nc1"], rel=1e-12)


def test_pinv_rank_is_capped_at_c_minus_one():
    """Σ_B has exact rank C-1; without the cap a zero cutoff would invert a round-off eigenvalue."""
    X, y = imbalanced()
    assert nc_scalars(X, y, pinv_rtol=0.0).scalars["nc1"] == pytest.approx(nc_scalars(X, y).scalars["nc1"], rel=1e-9)


def test_missing_labels_raise():
    with pytest.raises(MissingLabelsError):
        gp.analyze(np.eye(4), "neural_collapse")


@pytest.mark.gpu
def test_cuda_matches_cpu():
    X, y = imbalanced()
    params = {"neural_collapse": {"classifier": np.random.default_rng(3).normal(size=(6, 12))}}
    cpu = gp.analyze(X, "neural_collapse", labels=y, device="cpu", params=params)["neural_collapse"]
    cuda = gp.analyze(X, "neural_collapse", labels=y, device="cuda", params=params)["neural_collapse"]
    for name, value in cpu.scalars.items():
        assert cuda.scalars[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def _naive_nc1(X, y):
    """NC1 = Tr(Σ_W Σ_B⁺)/C in float64 from class loops (independent of the streaming code)."""
    X = X.astype(np.float64)
    classes = np.unique(y)
    means = np.array([X[y == c].mean(axis=0) for c in classes])
    within = sum((X[y == c] - m).T @ (X[y == c] - m) for c, m in zip(classes, means)) / len(X)
    centred = means - means.mean(axis=0)
    between = centred.T @ centred / len(classes)
    return np.trace(within @ np.linalg.pinv(between, rcond=1e-10, hermitian=True)) / len(classes)


def test_default_nc1_of_float32_input_matches_a_float64_reference():
    """Narrow float32 input with many rows per batch: float32 class sums drift, the exact default does not."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200_000)
    X = (0.05 * rng.normal(size=(3, 4))[y] + 3.0 + rng.normal(size=(200_000, 4))).astype(np.float32)
    expected = _naive_nc1(X, y)
    exact = gp.analyze(X, "neural_collapse", labels=y, verdicts=False, device="cpu").scalars()["neural_collapse/nc1"]
    fast = gp.analyze(X, "neural_collapse", labels=y, precision="float32", verdicts=False,
                      device="cpu").scalars()["neural_collapse/nc1"]
    assert exact == pytest.approx(expected, rel=1e-6, abs=0)
    assert abs(fast - expected) > 100 * abs(exact - expected)
    assert fast == pytest.approx(expected, rel=1e-4)


def test_certified_float32_decisions_equal_float64_decisions_near_ties():
    """Rows placed within float32 round-off of the boundary between two centres: the float32 GEMM cannot decide
    them, the certified pass must send them to float64 and agree with a float64 count row by row."""
    rng = np.random.default_rng(11)
    y = np.repeat([0, 1], 200)
    X = rng.normal(size=(400, 64)) + 100.0 * np.eye(64)[y]                       # two centres, far from 0
    X32 = X.astype(np.float32)
    stats = F.ClassStatistics.of(F.ClassMoments.of(torch.as_tensor(X32), torch.as_tensor(y), 2))
    mid = (stats.means[0] + stats.means[1]) / 2
    normal = stats.means[1] - stats.means[0]
    ties = (mid + np.outer(rng.uniform(-1e-5, 1e-5, 300), normal / np.linalg.norm(normal))).astype(np.float32)
    rows = np.concatenate([X32, ties])
    labels = torch.as_tensor(np.concatenate([y, np.zeros(300, dtype=int)]))
    W = rng.normal(size=(2, 64))
    rule = F.DecisionRule.of(stats, W, np.zeros(2))
    certified = rule.counts(torch.as_tensor(rows), labels)                        # float32 GEMM + fallback
    reference = rule.counts(torch.as_tensor(rows.astype(np.float64)), labels)    # float64 rows: float64 GEMM
    assert float(certified.ncc_hits) == float(reference.ncc_hits)
    assert float(certified.agreements) == float(reference.agreements)
    fast = rule.counts(torch.as_tensor(rows), labels, precision="float32")
    assert float(fast.n) == float(certified.n) == 700
    ops = rule._operands(torch.float32)
    _, unsure = rule._certified_winners(torch.as_tensor(rows), ops, 2, 2, rule._bound_scale(2, 2))
    assert int(unsure[400:].sum()) >= 250 and int(unsure[:400].sum()) == 0      # only the ties go to float64


def test_nc1_more_classes_than_features_matches_a_naive_pinv():
    """C > D takes the blockwise-QR route of nc1_directions; NC1 must equal Tr(Σ_W Σ_B⁺)/C from a dense pinv."""
    from geometry_probe.functional.neural_collapse import _r_factor

    rng = np.random.default_rng(11)
    C, D = 40, 6
    y = np.repeat(np.arange(C), 5)
    X = rng.standard_normal((C, D))[y] * 3 + rng.standard_normal((len(y), D))
    means = np.stack([X[y == k].mean(axis=0) for k in range(C)])
    M = means - means.mean(axis=0)
    within = sum((X[y == k] - means[k]).T @ (X[y == k] - means[k]) for k in range(C)) / len(y)
    expected = np.trace(within @ np.linalg.pinv(M.T @ M / C, hermitian=True)) / C
    assert F.nc1(X, y) == pytest.approx(expected, rel=1e-10)
    R = _r_factor(M, block=7)                                        # several blocks
    np.testing.assert_allclose(R.T @ R, M.T @ M, rtol=1e-10, atol=1e-10)
