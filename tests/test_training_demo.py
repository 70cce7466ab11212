"""Real (small) training runs on digits: the monitor catches over-fusion only where it happens."""

import importlib.util
from pathlib import Path

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


@pytest.mark.slow
def test_cross_entropy_drives_nc1_down():
    run = train_digits.train("ce", lr=0.05, epochs=12)
    nc1 = [e["scalars"]["neural_collapse/nc1"] for e in run["epochs"]]
    assert nc1[-1] < 0.8 * max(nc1)
