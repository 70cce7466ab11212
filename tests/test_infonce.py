"""InfoNCE diagnostics against closed forms and an independent dense float64 implementation."""

import json
import math

import numpy as np
import pytest
from scipy.special import logsumexp

import geometry_probe as gp
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional.infonce import infonce_terms, parse_taus
from tests._cli import run_cli

TAUS = [0.07, 0.2, 0.5, 1.0]


def _unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def naive(X, Y, tau):
    """Dense float64 reference: every quantity from the full N×N and 2N×2N similarity matrices."""
    U, V = _unit(np.asarray(X, np.float64)), _unit(np.asarray(Y, np.float64))
    N = len(U)
    S = U @ V.T / tau
    pos = np.diag(S)
    lse_x, lse_y = logsumexp(S, axis=1), logsumexp(S, axis=0)
    entropies = []
    for i in range(N):
        neg = np.delete(S[i], i)
        p = np.exp(neg - logsumexp(neg))
        entropies.append(-(p * np.log(p)).sum())
    Z = np.vstack([U, V])
    K = Z @ Z.T / tau
    np.fill_diagonal(K, -np.inf)
    partner = np.concatenate([np.arange(N, 2 * N), np.arange(N)])
    return {"infonce": np.mean(lse_x - pos), "infonce_alignment": -pos.mean(), "infonce_uniformity": lse_x.mean(),
            "infonce_symmetric": 0.5 * (np.mean(lse_x - pos) + np.mean(lse_y - pos)),
            "effective_negatives": np.mean(np.exp(entropies)),
            "nt_xent": np.mean(logsumexp(K, axis=1) - K[np.arange(2 * N), partner])}


@pytest.fixture(scope="module")
def views():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((53, 7))
    return X, X + 0.6 * rng.standard_normal(X.shape)


@pytest.mark.parametrize("taus", [TAUS, [0.01, 0.3]])      # τ < 1/64: float64 exponentials of float32 tiles
@pytest.mark.parametrize("tile", [None, 6, 16])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_dense_float64_reference_at_every_temperature(views, tile, dtype, taus):
    import torch

    X, Y = views
    terms = infonce_terms(X, Y, taus, tile=tile, dtype=getattr(torch, dtype))
    for k, tau in enumerate(taus):
        ref = naive(X, Y, tau)
        got = terms.at(k)
        for name, value in ref.items():
            # float32 cosines carry ~6e-8 of rounding, amplified by 1/τ in the log-sum-exps; the effective
            # number of negatives, e^H, is a count: compared relatively (H itself within 1e-6)
            if dtype == "float64":
                assert got[name] == pytest.approx(value, abs=1e-12, rel=1e-12), (name, tau)
            elif name == "effective_negatives":
                assert math.log(got[name]) == pytest.approx(math.log(value), abs=1e-6), tau
            else:
                assert got[name] == pytest.approx(value, abs=max(1e-6, 1e-7 / tau)), (name, tau)


def test_one_row_tiles_on_a_small_input():
    import torch

    rng = np.random.default_rng(7)
    X = rng.standard_normal((7, 3))
    Y = X + 0.5 * rng.standard_normal(X.shape)
    terms = infonce_terms(X, Y, [0.1, 1.0], tile=1, dtype=torch.float64)
    for k, tau in enumerate([0.1, 1.0]):
        for name, value in naive(X, Y, tau).items():
            assert terms.at(k)[name] == pytest.approx(value, abs=1e-12, rel=1e-12), (name, tau)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("tau", [0.01, 0.05, 0.5, 2.0])
def test_complete_collapse_gives_ln_n_and_n_minus_one_negatives(tau, dtype):
    import torch

    N = 9
    X = np.tile([[0.3, -1.2, 2.0]], (N, 1))
    got = infonce_terms(X, X, [tau], dtype=getattr(torch, dtype)).at(0)
    tol = 1e-12 if dtype == "float64" else max(1e-6, 1e-7 / tau)    # float32 cosines: ~6e-8 of rounding, / τ
    assert got["infonce"] == pytest.approx(math.log(N), abs=tol)
    assert got["infonce_symmetric"] == pytest.approx(math.log(N), abs=tol)
    assert got["nt_xent"] == pytest.approx(math.log(2 * N - 1), abs=tol)       # metrics-reference §10.1 #25
    assert math.log(got["effective_negatives"]) == pytest.approx(math.log(N - 1), abs=tol)
    assert got["infonce_alignment"] == pytest.approx(-1 / tau, rel=1e-12)


def test_temperatures_below_the_float64_range_are_refused():
    X = np.eye(3)
    assert infonce_terms(X, X, [1 / 640]).at(0)["infonce"] == pytest.approx(math.log(1 + 2 * math.exp(-640)), abs=1e-12)
    with pytest.raises(InvalidInputError, match="1/640"):
        infonce_terms(X, X, [0.001])


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_orthonormal_identical_and_antipodal_views(sign):
    N, tau = 6, 0.25
    X = np.eye(N)
    got = infonce_terms(X, sign * X, [tau]).at(0)
    s = sign / tau                                     # positive cosine ±1, negatives 0
    assert got["infonce"] == pytest.approx(-s + math.log(math.exp(s) + N - 1), abs=1e-6)
    assert got["infonce_uniformity"] == pytest.approx(math.log(math.exp(s) + N - 1), abs=1e-6)
    assert got["effective_negatives"] == pytest.approx(N - 1, rel=1e-6)   # all negatives equally hard


def test_one_hard_negative_takes_all_the_penalty():
    # anchor 0's negatives: one at cosine 1 (index 1), the rest at cosine −1; tiny τ → effective 1
    X = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    got = infonce_terms(X, X, [0.01], nt_xent=False).at(0)
    assert got["effective_negatives"] == pytest.approx(1.0, abs=1e-6)


def test_two_points_closed_form():
    import torch

    tau, c = 0.3, math.cos(1.0)
    X = np.array([[1.0, 0.0], [math.cos(1.0), math.sin(1.0)]])
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-7)):    # float32: one rounding of e^{s/τ}
        got = infonce_terms(X, X, [tau], dtype=dtype).at(0)
        assert got["infonce"] == pytest.approx(-1 / tau + math.log(math.exp(1 / tau) + math.exp(c / tau)), abs=1e-6)
        assert got["effective_negatives"] == pytest.approx(1.0, abs=tol)


def test_all_anchors_as_a_sample_equal_the_exact_pass_and_give_standard_errors(views):
    X, Y = views
    import torch

    exact = infonce_terms(X, Y, [0.2], dtype=torch.float64)     # float64: the two passes' roundings differ
    sampled = infonce_terms(X, Y, [0.2], anchors=np.arange(len(X)), dtype=torch.float64)
    for name, value in exact.values.items():
        assert sampled.values[name][0] == pytest.approx(value[0], abs=1e-12)
        assert np.isfinite(sampled.stderr[name][0]) and sampled.stderr[name][0] > 0
    assert exact.stderr is None


def test_bad_inputs_raise_one_clear_error(views):
    X, Y = views
    with pytest.raises(InvalidInputError, match="> 0"):
        infonce_terms(X, Y, [0.0])
    with pytest.raises(InvalidInputError, match="does not match"):
        infonce_terms(X, Y[:-1], [0.1])
    with pytest.raises(InvalidInputError, match="at least 2"):
        infonce_terms(X[:1], Y[:1], [0.1])
    with pytest.raises(InvalidInputError, match="comma-separated"):
        parse_taus("0.1,abc")
    assert parse_taus("0.05, 0.1,1") == [0.05, 0.1, 1.0]
    with pytest.raises(InvalidInputError, match="temperature"):
        gp.analyze(X, ["contrastive"], params={"contrastive": {"views": Y, "temperature": -0.1}})


def test_analyzer_reports_the_decomposition_with_views_and_pairs(views):
    X, Y = views
    res = gp.analyze(X, ["contrastive"], params={"contrastive": {"views": Y, "temperature": 0.5}}).scalars()
    for name, value in naive(X, Y, 0.5).items():
        assert res[f"contrastive/{name}"] == pytest.approx(value, abs=1e-6, rel=1e-6), name
    pairs = np.array([[0, 5], [3, 9], [10, 2], [7, 1]])
    by_pairs = gp.analyze(X, ["contrastive"], params={"contrastive": {"pairs": pairs, "temperature": 0.5}}).scalars()
    for name, value in naive(X[pairs[:, 0]], X[pairs[:, 1]], 0.5).items():
        assert by_pairs[f"contrastive/{name}"] == pytest.approx(value, abs=1e-6, rel=1e-6), name


def test_over_fusion_drives_infonce_to_ln_n_and_negatives_to_n_minus_one():
    rng = np.random.default_rng(3)
    N, D = 200, 16
    fused = rng.standard_normal(D) + 1e-4 * rng.standard_normal((N, D))     # one point, tiny noise
    healthy = rng.standard_normal((N, D))
    tau = 0.5
    f = infonce_terms(fused, fused + 1e-4 * rng.standard_normal((N, D)), [tau]).at(0)
    h = infonce_terms(healthy, healthy + 0.1 * rng.standard_normal((N, D)), [tau]).at(0)
    assert f["infonce"] == pytest.approx(math.log(N), abs=1e-3)
    assert f["effective_negatives"] == pytest.approx(N - 1, rel=1e-3)
    assert h["infonce"] < math.log(N) - 1 and h["effective_negatives"] < 0.9 * (N - 1)


def test_sampled_anchors_above_the_pair_budget(views):
    X, Y = views
    res = gp.analyze(X, ["contrastive"], params={"contrastive": {"views": Y, "temperature": 0.5,
                                                                 "pair_budget": 10}})
    scalars = res.scalars()
    assert "contrastive/infonce_stderr" not in scalars       # 53 anchors ≤ SAMPLED_ANCHORS: all of them
    assert scalars["contrastive/infonce"] == pytest.approx(naive(X, Y, 0.5)["infonce"], abs=1e-6)


def test_cli_temperature_sweep_writes_json_and_figures(views, tmp_path, capsys):
    X, Y = views
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "v.npy", Y)
    code, out, err = run_cli(["temperature", tmp_path / "x.npy", "--views", tmp_path / "v.npy", "--taus",
                              "0.05,0.1,0.2,0.5,1", "--json", tmp_path / "s.json", "--figure", tmp_path / "s.pdf",
                              "--distances", tmp_path / "d.png"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["taus"] == [0.05, 0.1, 0.2, 0.5, 1.0]
    for k, tau in enumerate(record["taus"]):
        for name, value in naive(X, Y, tau).items():
            assert record["quantities"][name][k] == pytest.approx(value, abs=1e-6, rel=1e-9)
    assert (tmp_path / "s.pdf").stat().st_size > 0 and (tmp_path / "d.png").stat().st_size > 0
    assert "NT-Xent" in out


def test_cli_rejects_bad_temperatures_and_mismatched_views(views, tmp_path, capsys):
    X, Y = views
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "v.npy", Y[:-3])
    code, _, err = run_cli(["temperature", tmp_path / "x.npy", "--views", tmp_path / "v.npy"], capsys)
    assert code == 2 and "does not match" in err and len(err.strip().splitlines()) == 1
    np.save(tmp_path / "v.npy", Y)
    code, _, err = run_cli(["temperature", tmp_path / "x.npy", "--views", tmp_path / "v.npy", "--taus", "0.1,-1"],
                           capsys)
    assert code == 2 and "> 0" in err and len(err.strip().splitlines()) == 1


def test_cli_analyze_reports_infonce_and_fmicl(views, tmp_path, capsys):
    X, Y = views
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "v.npy", Y)
    code, _, err = run_cli(["analyze", tmp_path / "x.npy", "--views", tmp_path / "v.npy", "--temperature", "0.5",
                            "--fmicl-sigma", "1", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    scalars = gp.Results.from_json(tmp_path / "r.json").scalars()
    for name, value in naive(X, Y, 0.5).items():
        assert scalars[f"contrastive/{name}"] == pytest.approx(value, abs=1e-6, rel=1e-6)
    assert {f"fmicl/objective_{f}" for f in ("kl", "js", "pearson", "sq_hellinger", "tsallis", "vlc")} \
        <= scalars.keys()
