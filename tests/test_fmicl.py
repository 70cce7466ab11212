"""f-MICL: the divergence table against numerical conjugates, objectives against a dense float64
implementation, distance_cv closed forms, and the paper's simplex/collapse claim on small configurations."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, minimize_scalar
from scipy.spatial.distance import pdist

import geometry_probe as gp
from geometry_probe.exceptions import InvalidInputError
from geometry_probe.functional import fmicl as FM
from geometry_probe.functional.contrastive import distance_cv
from tests._cli import run_cli

TSALLIS = 1.5
GENERATORS = {                        # f(u) of the paper's Table 1, written independently of the library
    "kl": lambda u: u * math.log(u),
    "js": lambda u: u * math.log(u) - (1 + u) * math.log((1 + u) / 2),
    "pearson": lambda u: (u - 1) ** 2,
    "sq_hellinger": lambda u: (math.sqrt(u) - 1) ** 2,
    "tsallis": lambda u: u**TSALLIS / (TSALLIS - 1),
    "vlc": lambda u: (u - 1) ** 2 / (u + 1),
}


@pytest.mark.parametrize("f", FM.DIVERGENCES)
@pytest.mark.parametrize("u", [0.05, 0.4, 1.0, 2.5])
def test_similarity_and_conjugate_match_the_generator(f, u):
    gen = GENERATORS[f]
    ut = torch.tensor([u], dtype=torch.float64)
    h = 1e-6
    numeric_prime = (gen(u + h) - gen(u - h)) / (2 * h)
    s = float(FM.f_prime(ut, f, tsallis_alpha=TSALLIS))
    assert s == pytest.approx(numeric_prime, abs=1e-6)
    # f*(s) = sup_v (s v − f(v)), attained at v = u for strictly convex f
    best = minimize_scalar(lambda v: -(s * v - gen(v)), bounds=(1e-9, 50), method="bounded",
                           options={"xatol": 1e-12})
    assert float(FM.conjugate_of_prime(ut, f, tsallis_alpha=TSALLIS)) == pytest.approx(-best.fun, abs=1e-6)


def _naive_objectives(X, Y, sigma, mu=1.0, weight=1.0, negatives=None):
    """Positives (X[m], Y[m]); negatives all ordered pairs of distinct rows of ``negatives`` (default X)."""
    unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)
    U, V, Z = unit(X), unit(Y), unit(X if negatives is None else negatives)
    G = lambda t: mu * np.exp(-t / (2 * sigma**2))
    pos = G(((U - V) ** 2).sum(1))
    T = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    off = ~np.eye(len(Z), dtype=bool)
    neg = G(T[off])                                         # all ordered pairs i ≠ j
    a = TSALLIS
    table = {"kl": (np.log(pos) + 1, neg), "js": (np.log(2) + np.log(pos / (1 + pos)), -np.log(2 / (1 + neg))),
             "pearson": (2 * (pos - 1), neg**2 - 1), "sq_hellinger": (1 - pos**-0.5, neg**0.5 - 1),
             "tsallis": (a / (a - 1) * pos ** (a - 1), neg**a), "vlc": (1 - 4 / (pos + 1) ** 2, (3 * neg + 1) * (neg - 1) / (neg + 1) ** 2)}
    return {f: s.mean() - weight * h.mean() for f, (s, h) in table.items()}


@pytest.mark.parametrize("sigma", [FM.DEFAULT_SIGMA, 1.0, 0.4])
def test_objectives_match_dense_float64(sigma):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((41, 6))
    Y = X + 0.4 * rng.standard_normal(X.shape)
    got = FM.fmicl_objectives(X, Y, sigma=sigma, tile=9, tsallis_alpha=TSALLIS)
    for f, value in _naive_objectives(X, Y, sigma).items():
        assert got[f] == pytest.approx(value, abs=1e-6), f


def test_analyzer_objectives_with_weight_and_mu():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 5))
    Y = X + 0.3 * rng.standard_normal(X.shape)
    res = gp.analyze(X, params={"fmicl": {"views": Y, "sigma": 1.0, "mu": 0.8, "weight": 2.0}}).scalars()
    for f, value in _naive_objectives(X, Y, 1.0, mu=0.8, weight=2.0).items():
        assert res[f"fmicl/objective_{f}"] == pytest.approx(value, abs=1e-6), f


def test_analyzer_with_groups_uses_within_group_positives_and_all_negatives():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((24, 4))
    groups = np.repeat(np.arange(8), 3)
    P = np.array([(i, j) for g in range(8) for a, i in enumerate(np.flatnonzero(groups == g))
                  for j in np.flatnonzero(groups == g)[a + 1:]])
    expected = _naive_objectives(X[P[:, 0]], X[P[:, 1]], FM.DEFAULT_SIGMA, negatives=X)
    exact = gp.analyze(X, params={"fmicl": {"groups": groups}}).scalars()
    sampled = gp.analyze(X, ["fmicl"], params={"fmicl": {"groups": groups, "exact": False}})
    for f, value in expected.items():
        assert exact[f"fmicl/objective_{f}"] == pytest.approx(value, abs=1e-6), f
        assert sampled["fmicl"].scalars[f"objective_{f}"] == pytest.approx(value, abs=5e-3), f
    assert "sampled" in sampled["fmicl"].params["negatives"]


def test_cli_reports_fmicl_objectives_and_needs_positives(tmp_path, capsys):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((35, 6))
    Y = X + 0.3 * rng.standard_normal(X.shape)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "v.npy", Y)
    code, _, err = run_cli(["analyze", tmp_path / "x.npy", "--views", tmp_path / "v.npy", "--fmicl-sigma", "1",
                            "-a", "contrastive,fmicl", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    scalars = gp.Results.from_json(tmp_path / "r.json").scalars()
    for f, value in _naive_objectives(X, Y, 1.0).items():
        assert scalars[f"fmicl/objective_{f}"] == pytest.approx(value, abs=1e-6), f
    assert not any(key.startswith("contrastive/fmicl") for key in scalars)
    code, _, err = run_cli(["analyze", tmp_path / "x.npy", "-a", "fmicl", "--json", tmp_path / "s.json"], capsys)
    assert code == 2 and "needs positive pairs" in err and "--views" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.json").exists()
    assert not any(k.startswith("fmicl/") for k in gp.analyze(X).scalars())     # no positives: not run by default


def test_antipodal_pair_closed_form():
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    sigma = 1.0
    u_neg = math.exp(-4 / (2 * sigma**2))
    got = FM.fmicl_objectives(X, X, sigma=sigma)
    assert got["kl"] == pytest.approx(1 - u_neg, abs=1e-7)               # log 1 + 1 − u
    assert got["pearson"] == pytest.approx(0 - (u_neg**2 - 1), abs=1e-7)


def test_bad_kernel_parameters_raise():
    X = np.eye(3)
    with pytest.raises(InvalidInputError, match="sigma"):
        FM.fmicl_objectives(X, X, sigma=0.0)
    with pytest.raises(InvalidInputError, match="differ from 1"):
        FM.fmicl_objectives(X, X, tsallis_alpha=1.0)
    with pytest.raises(InvalidInputError, match="divergence"):
        FM.f_prime(torch.ones(1), "rkl")
    with pytest.raises(InvalidInputError, match="sigma"):
        gp.analyze(X, ["fmicl"], params={"fmicl": {"views": X, "sigma": -1.0}})


def _simplex(n):
    S = np.eye(n) - 1.0 / n
    return S / np.linalg.norm(S, axis=1, keepdims=True)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_distance_cv_closed_forms(n):
    assert distance_cv(_simplex(n)) == pytest.approx(0.0, abs=1e-6)
    assert distance_cv(np.eye(n) * 3.0) == pytest.approx(0.0, abs=1e-6)        # orthonormal (scaled)
    # two antipodal clusters, n points each: distances 0 (n(n-1) pairs) and 2 (n² pairs)
    X = np.vstack([np.tile([1.0, 0.0], (n, 1)), np.tile([-1.0, 0.0], (n, 1))])
    d = np.array([0.0] * (n * (n - 1)) + [2.0] * (n * n))
    assert distance_cv(X) == pytest.approx(d.std() / d.mean(), abs=1e-6)


def test_distance_cv_matches_pdist_and_its_sampled_estimate():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 8))
    d = pdist(X / np.linalg.norm(X, axis=1, keepdims=True))
    assert distance_cv(X, tile=64) == pytest.approx(d.std() / d.mean(), abs=1e-6)
    exact = gp.analyze(X, ["contrastive"]).scalars()["contrastive/distance_cv"]
    assert exact == pytest.approx(d.std() / d.mean(), abs=1e-6)
    sampled = gp.analyze(X, ["contrastive"], params={"contrastive": {"pair_budget": 100}}).scalars()
    assert abs(sampled["contrastive/distance_cv"] - d.std() / d.mean()) < 5 * sampled["contrastive/distance_cv_stderr"]


# --- the paper's uniformity theorem on small configurations (N ≤ d + 1) -----------------------------------------

SIGMA = FM.DEFAULT_SIGMA
EXTRA = {   # reverse KL and Neyman χ², written here: h = f*∘f'∘G_σ
    "reverse_kl": lambda u: np.log(u) - 1,                 # f = −log u: f' = −1/u, f*(t) = −1 − log(−t)
    "neyman": lambda u: 2 - 2 / u,                         # f = (1−u)²/u: f' = 1 − 1/u², f*(t) = 2 − 2√(1−t)
}


def _h(f, t):
    u = np.exp(-np.asarray(t, dtype=np.float64) / (2 * SIGMA**2))
    if f in EXTRA:
        return EXTRA[f](u)
    return FM.conjugate_of_prime(torch.as_tensor(u), f, tsallis_alpha=TSALLIS).numpy()


def _negative_term(f, points):
    U = points / np.linalg.norm(points, axis=1, keepdims=True)
    return _h(f, pdist(U) ** 2).mean()


@pytest.mark.parametrize("f", FM.DIVERGENCES)
def test_negative_kernel_strictly_convex_and_minimised_by_the_regular_simplex(f):
    t = np.linspace(0.0, 4.0, 401)
    assert (np.diff(_h(f, t), 2) > 0).all()                            # strictly convex on [0, 4]
    n, d = 4, 3
    simplex = _negative_term(f, _simplex(n))           # in R^4, spanning 3 dimensions: the same distances
    rng = np.random.default_rng(1)
    for _ in range(3):
        res = minimize(lambda z: _negative_term(f, z.reshape(n, d)), rng.standard_normal(n * d), method="BFGS",
                       options={"gtol": 1e-10})
        assert res.fun == pytest.approx(simplex, abs=1e-6)
        assert distance_cv(res.x.reshape(n, d)) < 1e-3
    collapsed = np.array([[1.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0], [-1.0, 0, 0]])
    assert _negative_term(f, collapsed) > simplex + 1e-3


def test_reverse_kl_and_neyman_do_not_single_out_the_simplex():
    n = 4
    collapsed = np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [-1.0, 0, 0, 0], [-1.0, 0, 0, 0]])
    # same mean squared distance 2N/(N−1) as the simplex, split into 0s and 4s
    assert _negative_term("reverse_kl", collapsed) == pytest.approx(_negative_term("reverse_kl", _simplex(n)),
                                                                    abs=1e-12)      # linear h: a tie
    assert _negative_term("neyman", collapsed) < _negative_term("neyman", _simplex(n)) - 1e-3    # concave: collapse wins
    rng = np.random.default_rng(0)
    res = minimize(lambda z: _negative_term("neyman", z.reshape(n, 3)), rng.standard_normal(n * 3), method="BFGS")
    U = res.x.reshape(n, 3) / np.linalg.norm(res.x.reshape(n, 3), axis=1, keepdims=True)
    assert np.abs(U @ U.T).min() > 0.999                    # the optimiser collapses onto ± one direction
