"""Spectral metrics: closed forms (metrics-reference §10.1 rows 1-8, 24), a NumPy SVD oracle, peers."""

import math

import numpy as np
import pytest
import torch

import geometry_probe as gp
from geometry_probe import functional as F
from tests import _reference as ref

# Rows ±3e1, ±1e2: centred singular values are (3√2, √2) ∝ (3, 1).
DIAG_3_1 = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)


def _rank_one(n=128, seed=0):
    g = np.random.default_rng(seed)
    return torch.as_tensor(np.outer(g.standard_normal(n), g.standard_normal(n)))


def test_effective_rank_sigma_based_closed_form():
    assert F.effective_rank(DIAG_3_1) == pytest.approx(1.7547653506, abs=1e-9)
    # the λ-based value (1.3841454885) is a different metric: make sure we are not it
    assert abs(F.effective_rank(DIAG_3_1) - 1.3841454885) > 0.3


@pytest.mark.parametrize("k", [1, 2, 5, 16])
def test_effective_rank_of_orthogonal_pairs_is_k(k):
    eye = np.eye(k)
    X = torch.as_tensor(np.vstack([eye, -eye]))          # centred singular values all equal
    assert F.effective_rank(X) == pytest.approx(k, rel=1e-12)


def test_rankme_closed_forms():
    assert F.rankme(_rank_one()) == pytest.approx(1.0002046, abs=2e-7)
    assert F.rankme(_rank_one(), eps=1e-5) == pytest.approx(1.0147187, abs=2e-7)
    assert F.rankme(torch.eye(64, dtype=torch.float64)) == pytest.approx(64.0012939, abs=1e-6)


def test_stable_rank_and_participation_ratio_closed_forms():
    assert F.stable_rank(DIAG_3_1) == pytest.approx(10 / 9, abs=1e-12)
    assert F.participation_ratio(DIAG_3_1) == pytest.approx(100 / 82, abs=1e-12)


def test_alpha_req_recovers_power_law_exponent():
    rng = np.random.default_rng(0)
    n, d = 400, 150
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    Q -= Q.mean(axis=0)                                   # centred columns ...
    Q, _ = np.linalg.qr(Q)                                # ... re-orthonormalised (still centred)
    lam = np.arange(1, d + 1) ** -1.3
    X = Q * np.sqrt(lam)                                  # sample-covariance eigenvalues ∝ i^-1.3
    assert F.alpha_req(X) == pytest.approx(1.3, abs=1e-9)


def test_alpha_req_matches_reptrix_reference_number():
    # reptrix tests/test_alpha.py: torch.manual_seed(0); torch.randn(1000, 1024) -> 0.148936
    torch.manual_seed(0)
    X = torch.randn(1000, 1024)
    assert F.alpha_req(X) == pytest.approx(0.148936, abs=2e-4)


def test_alpha_req_nan_when_too_few_eigenvalues():
    assert math.isnan(F.alpha_req(np.random.default_rng(0).standard_normal((50, 200))))


@pytest.mark.parametrize("shape", [(300, 20), (60, 120)])
def test_all_scalars_match_numpy_svd_oracle(shape):
    X = np.random.default_rng(1).standard_normal(shape) @ np.diag(np.linspace(0.1, 3, shape[1]))
    s = gp.analyze(X, "spectrum").scalars()
    assert s["spectrum/effective_rank"] == pytest.approx(ref.effective_rank(X), rel=1e-9)
    assert s["spectrum/rankme"] == pytest.approx(ref.rankme(X), rel=1e-9)
    assert s["spectrum/stable_rank"] == pytest.approx(ref.stable_rank(X), rel=1e-9)
    assert s["spectrum/participation_ratio"] == pytest.approx(ref.participation_ratio(X), rel=1e-9)
    assert s["spectrum/top1_energy"] == pytest.approx(ref.top1_energy(X), rel=1e-9)
    assert s["spectrum/rank_ceiling"] == min(shape[0] - 1, shape[1])


def test_alpha_req_matches_oracle_on_decaying_spectrum():
    X = np.random.default_rng(2).standard_normal((600, 200)) * np.arange(1, 201) ** -0.7
    assert F.alpha_req(X) == pytest.approx(ref.alpha_req(X), rel=1e-8)


def test_float32_input_matches_float64_oracle():
    X = (np.random.default_rng(3).standard_normal((2000, 32)) * np.linspace(0.5, 2, 32)).astype(np.float32)
    got = gp.analyze(X, "spectrum").scalars()["spectrum/effective_rank"]
    assert got == pytest.approx(ref.effective_rank(X.astype(np.float64)), rel=1e-5)


def test_large_common_offset_does_not_destroy_covariance():
    rng = np.random.default_rng(4)
    X = (rng.standard_normal((5000, 16)) + 1e3).astype(np.float32)
    got = gp.analyze(X, "spectrum", batch_size=700).scalars()["spectrum/effective_rank"]
    assert got == pytest.approx(ref.effective_rank(X.astype(np.float64)), rel=1e-4)


def test_numerical_rank_and_collapsed_dims_on_exact_low_rank():
    X = gp.datasets.make_low_rank(500, 40, rank=6, random_state=0)
    s = gp.analyze(X, "spectrum", precision="float64").scalars()
    assert s["spectrum/numerical_rank"] == 6
    assert s["spectrum/collapsed_dims"] == 40 - 6


def test_n_below_d_caps_collapsed_dims_and_notes_it():
    X = np.random.default_rng(0).standard_normal((10, 50))
    res = gp.analyze(X, "spectrum")
    assert res.scalars()["spectrum/collapsed_dims"] == 0     # 9 = N-1 directions, none collapsed
    assert any("N=10 <= D=50" in n for n in res.notes())


def test_identical_rows_give_nan_centred_ranks_with_note():
    res = gp.analyze(np.ones((20, 5)), "spectrum")
    s = res.scalars()
    assert math.isnan(s["spectrum/effective_rank"])
    assert s["spectrum/rankme"] == pytest.approx(1.0, abs=1e-5)
    assert s["spectrum/top1_energy"] == pytest.approx(1.0)
    assert any("identical" in n for n in res.notes())


def test_per_class_effective_rank_matches_oracle():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], [40, 55, 30])
    X = rng.standard_normal((labels.size, 6)) * np.array([1, 2, 3, 1, 1, 0.5]) + labels[:, None]
    table = gp.analyze(X, "spectrum", labels=labels)["spectrum"].tables["per_class"]
    for row in table:
        assert row["count"] == (labels == row["class"]).sum()
        assert row["effective_rank"] == pytest.approx(ref.effective_rank(X[labels == row["class"]]), rel=1e-9)


def test_top1_energy_catches_point_and_antipodal_line_collapse():
    for kind in ("point", "line"):
        X = gp.datasets.make_collapsed(500, 32, kind=kind, noise=0.01)
        assert F.top1_energy(X) > 0.99
    assert F.top1_energy(gp.datasets.make_isotropic(5000, 32)) < 2.0 / 32


def test_eigvals_desc_host_and_tensor_paths_agree_with_lapack():
    """NumPy and torch inputs: descending eigenvalues, round-off of a rank-2 matrix set to exactly 0."""
    from geometry_probe.functional.spectrum import eigvals_desc

    A = np.random.default_rng(3).standard_normal((6, 2))
    S = A @ A.T                                                  # rank 2: four eigenvalues are round-off
    expected = np.sort(np.linalg.eigvalsh(S))[::-1]
    for values in (eigvals_desc(S), eigvals_desc(torch.from_numpy(S))):
        np.testing.assert_allclose(values[:2], expected[:2], rtol=1e-12)
        assert np.all(values[2:] == 0.0)
    full_rank = np.diag([4.0, 3.0, 2.0, 1.0, 1e-3, 1e-6])
    for stacked in (eigvals_desc(np.stack([S, full_rank])), eigvals_desc(torch.from_numpy(np.stack([S, full_rank])))):
        np.testing.assert_allclose(stacked[0, :2], expected[:2], rtol=1e-12)     # each matrix its own cutoff
        assert np.all(stacked[0, 2:] == 0.0)
        np.testing.assert_array_equal(stacked[1], [4.0, 3.0, 2.0, 1.0, 1e-3, 1e-6])
    with pytest.raises(gp.InvalidEmbeddingsError, match="overflow"):
        eigvals_desc(np.full((2, 2), np.inf))


def _float32_low_rank(rank, n=3000, d=200, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) + 0.5).astype(np.float32)


@pytest.mark.parametrize("rank", [5, 10, 50])
def test_default_precision_is_exact_on_low_rank_float32(rank):
    """Effective rank and RankMe of float32 data within 1e-5 of a float64 SVD of the same numbers."""
    X = _float32_low_rank(rank)
    X64 = X.astype(np.float64)
    expected_erank, expected_rankme = ref.effective_rank(X64), ref.rankme(X64)
    res = gp.analyze(X, "spectrum", verdicts=False, device="cpu")
    assert res.meta["precision"] == "float64"
    s = res.scalars()
    assert s["spectrum/effective_rank"] == pytest.approx(expected_erank, rel=1e-5)
    assert s["spectrum/rankme"] == pytest.approx(expected_rankme, rel=1e-5)
    assert F.effective_rank(X) == pytest.approx(expected_erank, rel=1e-5)        # the functional API too
    fast = gp.analyze(X, "spectrum", precision="float32", verdicts=False, device="cpu").scalars()
    exact_error = abs(s["spectrum/effective_rank"] / expected_erank - 1)
    fast_error = abs(fast["spectrum/effective_rank"] / expected_erank - 1)
    assert 10 * exact_error < fast_error < 0.1                 # the fast mode's bias: inflated, still usable
