"""Collapse verdicts against null baselines: closed forms, synthetic collapses, CLI gate."""

import json
import subprocess
import tracemalloc

import numpy as np
import torch
import pytest

import geometry_probe as gp
from geometry_probe.baselines import isotropic_effective_rank, isotropic_sphere_stats, uniformity_uniform_sphere


@pytest.mark.parametrize(("dim", "expected"), [(2, -1.575027), (3, -2.079777), (128, -3.937530), (2048, -3.996094)])
def test_uniform_sphere_uniformity_closed_form(dim, expected):
    # metrics-reference §10.1 row 12
    assert uniformity_uniform_sphere(dim) == pytest.approx(expected, abs=1e-6)


def test_closed_form_nulls_match_a_simulation():
    """The closed-form baselines against an isotropic Gaussian simulated here (NumPy SVDs, explicit pairs)."""
    n, D = 2000, 64
    X = np.random.default_rng(3).standard_normal((n, D))
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    energy = np.linalg.svd(U, compute_uv=False) ** 2
    sigma = np.linalg.svd(X - X.mean(0), compute_uv=False)
    p = sigma / sigma.sum()
    cos = (U @ U.T)[np.triu_indices(n, 1)]
    null = isotropic_sphere_stats(n, D)
    assert null["top1_energy"] == pytest.approx(energy[0] / energy.sum(), rel=0.05)
    assert null["mean_abs_cosine"] == pytest.approx(np.abs(cos).mean(), rel=0.01)
    assert null["uniformity"] == pytest.approx(np.log(np.mean(np.exp(4 * (cos - 1)))), abs=0.01)
    assert null["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=0.01)
    assert isotropic_effective_rank(300, 1000) == pytest.approx(286.79, rel=0.005)   # mean of 20 simulations


def test_the_nulls_of_wide_shapes_cost_no_memory():
    tracemalloc.start()
    null = isotropic_sphere_stats(1024, 200_000)
    erank = isotropic_effective_rank(4, 200_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20
    assert erank == pytest.approx(3.0, rel=0.01)                 # 4 centred rows: 3 equal singular values
    assert null["top1_energy"] == pytest.approx((32 + np.sqrt(200_000)) ** 2 / (1024 * 200_000))


def _findings(X, **kwargs):
    emb = gp.Embeddings(X, labels=kwargs.pop("labels", None))
    return {f["name"]: f for f in gp.analyze(emb, "spectrum", **kwargs).findings}


def test_isotropic_data_is_ok_everywhere():
    found = _findings(gp.datasets.make_isotropic(3000, 64))
    assert {f["verdict"] for f in found.values()} == {"ok"}


@pytest.mark.parametrize("kind", ["point", "line"])
def test_over_fusion_caught_for_point_and_antipodal_line(kind):
    found = _findings(gp.datasets.make_collapsed(3000, 64, kind=kind, noise=0.01))
    assert found["over_fusion"]["verdict"] == "fail"
    assert found["over_fusion"]["value"] > 0.9 > found["over_fusion"]["baseline"] * 10
    assert ("one point" if kind == "point" else "one line") in found["over_fusion"]["explanation"]


def test_mean_cosine_alone_would_miss_the_antipodal_line():
    found = _findings(gp.datasets.make_collapsed(3000, 64, kind="line", noise=0.01))
    assert found["anisotropy"]["verdict"] == "ok"            # mean cosine ≈ 0 ...
    assert found["over_fusion"]["verdict"] == "fail"         # ... but fusion is still caught


def test_dimensional_collapse_on_low_rank_data():
    found = _findings(gp.datasets.make_low_rank(3000, 64, rank=2))
    assert found["dimensional_collapse"]["verdict"] == "fail"
    assert found["dimensional_collapse"]["baseline_effective_rank"] == pytest.approx(64, rel=0.05)


def test_class_collapse_needs_fine_and_coarse_labels():
    rng = np.random.default_rng(0)
    fine = np.repeat(np.arange(4), 200)
    coarse = fine // 2
    separated = rng.standard_normal((800, 16)) * 0.1 + np.eye(16)[fine] * 3
    merged = rng.standard_normal((800, 16)) * 0.1 + np.eye(16)[coarse] * 3   # fine classes fused
    ok = _findings(separated, labels=fine, coarse_labels=coarse)["class_collapse"]
    bad = _findings(merged, labels=fine, coarse_labels=coarse)["class_collapse"]
    assert ok["verdict"] == "ok" and ok["value"] == pytest.approx(1.0)
    assert bad["verdict"] == "fail" and abs(bad["value"]) < 0.1


def test_every_finding_has_the_documented_fields():
    for finding in _findings(gp.datasets.make_isotropic(500, 16)).values():
        assert {"name", "verdict", "kind", "value", "threshold", "baseline", "signal", "explanation"} <= finding.keys()
        assert finding["verdict"] in {"ok", "warn", "fail"} and finding["kind"] in {"verdict", "description"}


def test_cli_fail_on_collapse_gates_release(tmp_path):
    np.save(tmp_path / "fused.npy", gp.datasets.make_collapsed(1000, 32, kind="line", noise=0.01).astype(np.float32))
    np.save(tmp_path / "fine.npy", gp.datasets.make_isotropic(1000, 32).astype(np.float32))
    bad = subprocess.run(["geoprobe", "analyze", str(tmp_path / "fused.npy"), "--fail-on", "collapse", "-q",
                          "--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    findings = json.loads((tmp_path / "r.json").read_text())["findings"]
    assert any(f["name"] == "over_fusion" and f["verdict"] == "fail" for f in findings)
    good = subprocess.run(["geoprobe", "analyze", str(tmp_path / "fine.npy"), "--fail-on", "collapse", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0


@pytest.mark.parametrize("shape", [(40, 6), (5, 30)])
def test_sphere_stats_equal_a_naive_pairwise_computation(shape):
    """Both spectral branches (n > D: D x D scatter; n <= D: n x n Gram) against SVDs and explicit pairs."""
    from geometry_probe.baselines import sphere_stats

    X = np.random.default_rng(21).standard_normal(shape) + 0.4
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    i, j = np.triu_indices(shape[0], 1)
    cos = (U[i] * U[j]).sum(1)
    sq_dist = ((U[i] - U[j]) ** 2).sum(1)
    sigma_u = np.linalg.svd(U, compute_uv=False)
    sigma_c = np.linalg.svd(X - X.mean(0), compute_uv=False)
    p = sigma_c / sigma_c.sum()
    p = p[p > 1e-12]
    got = sphere_stats(torch.as_tensor(X))
    assert got["top1_energy"] == pytest.approx(sigma_u[0] ** 2 / (sigma_u**2).sum(), rel=1e-10)
    assert got["mean_cosine"] == pytest.approx(cos.mean(), rel=1e-10)
    assert got["mean_abs_cosine"] == pytest.approx(np.abs(cos).mean(), rel=1e-10)
    assert got["uniformity"] == pytest.approx(np.log(np.mean(np.exp(-2 * sq_dist))), rel=1e-10)
    assert got["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-8)
