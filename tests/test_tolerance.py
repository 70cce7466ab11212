"""Tolerance (Wang & Liu 2021) against a naive same-label mean, closed forms, the CLI and the
uniformity–tolerance plane."""

import math

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.functional.contrastive import tolerance
from geometry_probe.reporting.contrastive_figures import plot_uniformity_tolerance
from tests._cli import run_cli


def _naive(X, y):
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    G = U @ U.T
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    return G[same].mean(), G[same].sum() / (len(y) * (len(y) - 1))


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 150)
    X = rng.standard_normal((4, 10))[y] + 0.8 * rng.standard_normal((150, 10))
    return X, y


def test_matches_naive_same_label_mean(blobs):
    X, y = blobs
    conditional, joint = _naive(X, y)
    assert tolerance(X, y) == pytest.approx(conditional, abs=1e-12)
    res = gp.analyze(X, ["contrastive"], labels=y).scalars()
    assert res["contrastive/tolerance"] == pytest.approx(conditional, abs=1e-12)
    assert res["contrastive/tolerance_joint"] == pytest.approx(joint, abs=1e-12)


def test_closed_forms():
    y = np.array([0, 0, 0, 1, 1, 1])
    collapsed = np.array([[1.0, 0.0]] * 3 + [[0.0, 2.0]] * 3)
    assert tolerance(collapsed, y) == pytest.approx(1.0)                 # each class one point
    antipodal = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert tolerance(antipodal, np.array([0, 0, 1, 1])) == pytest.approx(-1.0)
    assert tolerance(np.eye(4), np.array([0, 0, 1, 1])) == pytest.approx(0.0)
    # pair-weighted, not class-weighted: class 0 has 3 pairs at cos 1, class 1 one pair at cos −1 → 2/4
    X = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0], [0.0, -1.0]])
    assert tolerance(X, np.array([0, 0, 0, 1, 1])) == pytest.approx((3 - 1) / 4)


def test_no_same_label_pair_gives_nan():
    assert math.isnan(tolerance(np.eye(3), np.array([0, 1, 2])))


def test_zero_row_raises():
    with pytest.raises(gp.InvalidEmbeddingsError, match="zero norm"):
        tolerance(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([0, 0]))


def test_cli_analyze_with_labels_reports_tolerance_and_distance_cv(blobs, tmp_path, capsys):
    X, y = blobs
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    code, out, err = run_cli(["analyze", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "-a", "contrastive",
                              "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert "tolerance" in out and "distance_cv" in out
    scalars = gp.Results.from_json(tmp_path / "r.json").scalars()
    assert scalars["contrastive/tolerance"] == pytest.approx(_naive(X, y)[0], abs=1e-12)


def test_uniformity_tolerance_plane(blobs, tmp_path, capsys):
    fig = plot_uniformity_tolerance([("run $a$", -3.5, 0.2), ("run b", -2.0, 0.7)])
    assert fig.axes[0].collections[0].get_offsets().tolist() == [[3.5, 0.2], [2.0, 0.7]]
    assert fig.axes[0].texts[0].get_text() == r"run \$a\$"          # drawn literally
    X, y = blobs
    for name, scale in (("early", 0.1), ("late", 2.0)):
        gp.analyze(X + scale * np.random.default_rng(1).standard_normal(X.shape), ["contrastive"],
                   labels=y).to_json(tmp_path / f"{name}.json")
    code, _, err = run_cli(["tolerance-plane", tmp_path / "early.json", tmp_path / "late.json", "-o",
                            tmp_path / "plane.png"], capsys)
    assert code == 0, err and (tmp_path / "plane.png").stat().st_size > 0
    gp.analyze(X, ["contrastive"]).to_json(tmp_path / "nolabels.json")
    code, _, err = run_cli(["tolerance-plane", tmp_path / "nolabels.json", "-o", tmp_path / "p2.png"], capsys)
    assert code == 2 and "--labels" in err and len(err.strip().splitlines()) == 1
