"""Real (small) training runs on digits: the monitor catches over-fusion only where it happens."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

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
