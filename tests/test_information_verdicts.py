"""Geometry and information as separate verdicts: over-fusion vs information loss, descriptions vs failures.

Expected values come from the construction of each data set (a fused point with or without class
signal in its residual, white noise, a non-negative cone) and from independent NumPy/sklearn code.
"""

import json
import subprocess
import tracemalloc

import numpy as np
import pytest
from sklearn.neighbors import NearestCentroid

import geometry_probe as gp
from geometry_probe.baselines import residual_noise_ratio
from geometry_probe.subsample_geometry import gram64, knn_accuracy, measure_subsample, two_fold_ncc_accuracy

RNG = np.random.default_rng(7)


def _fused(n=1500, D=64, *, signal=0.0, noise=1e-3, classes=10, seed=0):
    """Rows = one direction + class signal (size ``signal``) + white noise (size ``noise``), random labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, D))
    X = np.zeros((n, D))
    X[:, 0] = 1.0
    X += signal * centres[labels] + noise * rng.standard_normal((n, D))
    return X.astype(np.float32), labels


def _by_name(results):
    return {f["name"]: f for f in results.findings}


def _noise_ratio(X):
    """residual_noise_ratio from a NumPy eigendecomposition of the rows' second moment."""
    n, D = X.shape
    eig = np.linalg.eigvalsh(X @ X.T if n <= D else X.T @ X)[::-1]
    return residual_noise_ratio(eig[1], eig[1:].sum(), np.square(eig[1:]).sum(), n, D)


@pytest.mark.parametrize(("n", "D"), [(1000, 64), (300, 2000), (512, 512)])
def test_residual_noise_ratio_is_one_for_white_noise(n, D):
    X = np.random.default_rng(n).standard_normal((n, D))
    X[:, 0] += 30.0                                                  # a dominant direction, removed first
    assert _noise_ratio(X) == pytest.approx(1.0, abs=0.1)


def test_residual_noise_ratio_sees_strong_and_spread_structure():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((1000, 64))
    X[:, :2] *= [5, 3]                                               # the dominant direction, and one beyond it
    assert _noise_ratio(X) > 3
    spread = rng.standard_normal((1000, 64)) * np.linspace(0.5, 1.5, 64)      # no spike, uneven variances
    assert _noise_ratio(spread) > 1.2
    assert residual_noise_ratio(0.0, 0.0, 0.0, 100, 64) == 0.0                 # an exact point: nothing left
    assert np.isnan(residual_noise_ratio(1.0, 1.0, 1.0, 100, 4))              # 3 residual dimensions: cannot tell


def test_gram_around_the_mean_keeps_float64_accuracy_under_a_large_offset():
    X = (5.0 + 1e-4 * RNG.standard_normal((300, 50))).astype(np.float32)
    scale = 2.0 ** -np.floor(np.log2(np.abs(X).max()))                # gram64 works on exactly rescaled rows
    exact = scale**2 * (X.astype(np.float64) @ X.astype(np.float64).T)
    assert np.abs(gram64(X) - exact).max() < 1e-10 * np.abs(exact).max()


def test_weighted_knn_accuracy_equals_a_naive_loop():
    X = RNG.standard_normal((120, 6))
    y = RNG.integers(0, 3, 120)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = U @ U.T
    correct = 0
    for i in range(120):
        order = [j for j in np.argsort(-cos[i]) if j != i][:20]
        votes = np.zeros(3)
        for j in order:
            votes[y[j]] += np.exp(cos[i, j] / 0.07)
        correct += votes.argmax() == y[i]
    assert knn_accuracy(cos, y) == pytest.approx(correct / 120)


def test_two_fold_nearest_centre_accuracy_equals_sklearn():
    X = RNG.standard_normal((200, 5)) + np.eye(5)[RNG.integers(0, 4, 200)] * 1.5
    y = np.argmax(X[:, :4], axis=1)
    fold = np.arange(200) % 2
    expected = sum(int((NearestCentroid().fit(X[fold == f], y[fold == f]).predict(X[fold != f]) == y[fold != f]).sum())
                   for f in (0, 1)) / 200
    assert two_fold_ncc_accuracy(X @ X.T, y) == pytest.approx(expected)


def test_white_noise_fusion_fails_both_verdicts_with_and_without_labels():
    X, y = _fused(signal=0.0)
    with_labels = _by_name(gp.analyze(X, "spectrum", labels=y))
    assert with_labels["over_fusion"]["verdict"] == "fail"
    assert with_labels["information_loss"]["verdict"] == "fail"
    assert with_labels["information_loss"]["value"] < 0.1
    assert "InfoNCE" in with_labels["over_fusion"]["explanation"]
    label_free = _by_name(gp.analyze(X, "spectrum"))
    assert label_free["information_loss"]["verdict"] == "fail"
    assert label_free["information_loss"]["value"] == pytest.approx(1.0, abs=0.1)
    copies = np.repeat(X[:3], 500, axis=0)                           # fused, and only three distinct rows
    assert _by_name(gp.analyze(copies, "spectrum"))["information_loss"]["verdict"] == "fail"
    assert gp.has_failed_collapse(list(label_free.values()))


def test_fused_but_informative_geometry_fails_over_fusion_only_and_says_why():
    X, y = _fused(signal=1e-2, noise=1e-3)
    energy = np.linalg.svd(X / np.linalg.norm(X, axis=1, keepdims=True), compute_uv=False)[0] ** 2 / len(X)
    assert energy > 0.99                                            # geometrically fused, by construction
    found = _by_name(gp.analyze(X, "spectrum", labels=y))
    assert found["over_fusion"]["verdict"] == "fail"
    assert found["information_loss"]["verdict"] == "ok" and found["information_loss"]["value"] > 0.9
    explanation = found["over_fusion"]["explanation"]
    assert "fused geometry" in explanation and "class information kept" in explanation
    assert "InfoNCE" not in explanation and "projector" not in explanation
    label_free = _by_name(gp.analyze(X, "spectrum"))
    assert label_free["information_loss"]["verdict"] == "ok"
    assert "pass labels" in label_free["over_fusion"]["explanation"]


def test_information_lost_without_fusion_is_a_collapse_for_the_cli_gate(tmp_path):
    X = gp.datasets.make_isotropic(800, 16).astype(np.float32)
    y = np.random.default_rng(0).integers(0, 4, 800)
    found = _by_name(gp.analyze(X, "spectrum", labels=y))
    assert found["over_fusion"]["verdict"] == "ok" and found["information_loss"]["verdict"] == "fail"
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    run = subprocess.run(["geoprobe", "analyze", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                          "--analyzers", "spectrum", "--fail-on", "collapse", "-q", "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    names = {f["name"]: f["verdict"] for f in json.loads((tmp_path / "r.json").read_text())["findings"]}
    assert names["information_loss"] == "fail"


def test_a_cone_with_separated_classes_is_described_not_warned():
    """Non-negative (ReLU-like) class clusters: mean cosine far above 0.4, classes perfectly separable."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 8, 2000)
    X = np.abs(rng.standard_normal((8, 48)))[y] + 0.3 * np.abs(rng.standard_normal((2000, 48)))
    found = _by_name(gp.analyze(X.astype(np.float32), ["spectrum", "contrastive"], labels=y))
    assert found["anisotropy"]["value"] > 0.4
    assert {f["verdict"] for f in found.values()} == {"ok"}
    assert found["anisotropy"]["kind"] == "description"
    assert found["anisotropy"]["signal"].startswith("contrastive/mean_cosine over all 2000 rows")


def test_the_bundled_healthy_model_gets_an_all_ok_bill():
    res = gp.analyze(gp.datasets.load_digits_embeddings())
    assert {f["name"]: f["verdict"] for f in res.findings if f["verdict"] != "ok"} == {}


def test_huge_and_tiny_magnitudes_give_the_same_geometry():
    X = RNG.standard_normal((300, 20))
    reference = measure_subsample(X)
    for scale in (1e30, 1e-30):
        scaled = measure_subsample((X * scale).astype(np.float32) if scale < 1e38 else X * scale)
        assert scaled.top1_energy == pytest.approx(reference.top1_energy, rel=1e-5)
        assert scaled.mean_cosine == pytest.approx(reference.mean_cosine, rel=1e-4, abs=1e-6)


def test_measure_subsample_without_labels_has_no_accuracies():
    geometry = measure_subsample(RNG.standard_normal((50, 8)))
    assert geometry.knn_accuracy is None and geometry.chance is None


def test_wide_embeddings_are_diagnosed_in_bounded_memory():
    """4 x 200,000 (a 3.2 MB file once tried a 149 GiB allocation) and 2,000 x 16,384."""
    for shape in [(4, 200_000), (2000, 16_384)]:
        emb = gp.Embeddings(RNG.standard_normal(shape).astype(np.float32))
        tracemalloc.start()
        found = {f["name"]: f for f in gp.diagnose(gp.Results([], meta={"n_samples": shape[0]}), emb)}
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 400 * 2**20
        assert found["over_fusion"]["verdict"] == "ok"
