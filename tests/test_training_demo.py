"""Real (small) training runs on digits: the monitor catches over-fusion where it happens, sees it clear, and
SupCon on non-negative embeddings moves the class means towards an orthogonal frame."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import geometry_probe as gp

SPEC = importlib.util.spec_from_file_location("train_digits", Path(__file__).parents[1] / "gallery" / "train_digits.py")
train_digits = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(train_digits)


def test_large_learning_rate_simclr_over_fuses_and_the_monitor_flags_the_onset():
    run = train_digits.train("simclr", lr=20.0, epochs=1)
    assert [a["step"] for a in run["alerts"] if a["name"] == "over_fusion"][0] == 14     # first snapshot
    verdict, value = run["epochs"][0]["verdicts"]["over_fusion"]
    assert verdict == "fail" and value > 0.95
    assert run["epochs"][0]["scalars"]["neural_collapse/ncc_accuracy"] < 0.3            # classes merged too


def test_moderate_learning_rate_simclr_stays_healthy():
    run = train_digits.train("simclr", lr=0.05, epochs=3)
    assert not [a for a in run["alerts"] if a["name"] == "over_fusion"]
    assert run["epochs"][-1]["verdicts"]["over_fusion"][0] == "ok"
    assert run["epochs"][-1]["scalars"]["neural_collapse/ncc_accuracy"] > 0.6


def _top1_energy(Z):
    """Uncentred top-1 energy of the L2-normalised rows, from NumPy's SVD (independent of the library)."""
    U = Z.astype(np.float64) / np.linalg.norm(Z, axis=1, keepdims=True)
    s2 = np.linalg.svd(U, compute_uv=False) ** 2
    return s2[0] / s2.sum()


def _jump(step, after=1.0):
    """Learning rate 0.05 for a 60-step warm-up, then 1.0; ``after`` from step 90 on."""
    return 0.05 if step < 60 else 1.0 if step < 90 else after


def test_over_fusion_after_a_learning_rate_jump_is_flagged_at_onset_and_clears_when_it_recovers():
    run = train_digits.train_steps("simclr", _jump, 160, seed=3, record_at=(60, 80, 160))
    [episode] = [e for e in run["episodes"] if e["name"] == "over_fusion"]
    warm_up = [s for s in run["history"] if s["step"] <= 60]
    assert all({f["name"]: f["verdict"] for f in s["findings"]}["over_fusion"] != "fail" for s in warm_up)
    assert episode["onset_step"] == 70                       # the first snapshot after the jump
    assert 90 < episode["cleared_step"] <= 140                 # escapes the fused state at lr 1.0
    assert [a["step"] for a in run["alerts"] if a["name"] == "recovered"] == [episode["cleared_step"]]
    full = {step: _top1_energy(Z) for step, Z in run["embeddings"].items()}   # all 1797 digits
    assert full[60] < 0.7 and full[80] > 0.95 and full[160] < 0.7


def test_cutting_the_learning_rate_back_freezes_the_fusion_and_the_episode_stays_open():
    run = train_digits.train_steps("simclr", lambda step: _jump(step, after=0.05), 160, seed=3, record_at=(160,))
    [episode] = [e for e in run["episodes"] if e["name"] == "over_fusion"]
    assert episode["onset_step"] == 70 and episode["cleared_step"] is None
    assert _top1_energy(run["embeddings"][160]) > 0.9


@pytest.mark.slow
def test_cross_entropy_drives_nc1_down():
    run = train_digits.train("ce", lr=0.05, epochs=12)
    nc1 = [e["scalars"]["neural_collapse/nc1"] for e in run["epochs"]]
    assert nc1[-1] < 0.8 * max(nc1)


def _class_mean_gram_distances(Z, y):
    """Distances of the normalised Gram of the uncentred class means of the unit rows to an orthogonal
    frame (I/sqrt(C)) and to a simplex ETF ((I - 11^T/C)/sqrt(C-1)), recomputed with NumPy."""
    U = Z.astype(np.float64) / np.linalg.norm(Z, axis=1, keepdims=True)
    M = np.stack([U[y == c].mean(0) for c in np.unique(y)])
    C = len(M)
    G = M @ M.T
    G /= np.linalg.norm(G)
    return np.linalg.norm(G - np.eye(C) / np.sqrt(C)), np.linalg.norm(G - (np.eye(C) - 1.0 / C) / np.sqrt(C - 1))


def test_supcon_with_non_negative_embeddings_moves_class_means_towards_an_orthogonal_frame():
    run = train_digits.train_steps("supcon", lambda step: 0.5, 600, temperature=0.5, batch_size=512,
                                   output_relu=True, every_n_steps=300, record_at=(600,))
    y = run["labels"]
    torch.manual_seed(0)                                       # the same architecture, untrained
    untrained = torch.nn.Sequential(*train_digits.encoder(), torch.nn.ReLU())
    with torch.no_grad():
        Z0 = untrained(train_digits.digits()[0]).numpy()
    of_init, _ = _class_mean_gram_distances(Z0, y)
    of_final, etf_final = _class_mean_gram_distances(run["embeddings"][600], y)
    assert of_init > 1.0                                       # untrained: class means nearly parallel
    assert of_final < 0.5 and of_final < 0.5 * of_init
    assert of_final < etf_final                                # nearer an orthogonal frame than a simplex ETF
    library = gp.analyze(run["embeddings"][600], "orthogonality", labels=y, precision="float64").scalars()
    assert library["orthogonality/of_distance"] == pytest.approx(of_final, rel=1e-6)   # float32 rows there
    window = [s["scalars"]["window/class_of_distance"] for s in run["history"]]
    assert window[1] < window[0]                               # the monitor's class statistics follow it
