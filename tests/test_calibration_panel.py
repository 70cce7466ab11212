"""Collapse verdicts against the calibration panel's truth (issue 15 §5; the panel is ``tests/_panel.py``).

The whole panel is built (about 30 s of one CPU core; MiniLM is skipped when its package is absent)
and each set analysed with and without its labels by ``gp.analyze``. The truths come from
scikit-learn and NumPy only: a held-out linear probe, cosine 20-NN and the top-1 energy of the
normalised rows. Asserted, listing every set that breaks a rule:

* ``over_fusion`` fails exactly on the fused sets and is ok on every other one (no warning band);
* with labels, ``information_loss`` fails exactly on the sets whose linear probe is at chance
  (skill < 0.1) and is ok on the others;
* without labels, ``information_loss`` fails on the white-noise fusions (and the over-fused digits
  encoder, whose rows agree to float32 rounding) and never on a set whose labels show that it keeps
  its information; the undecidable sets are not judged;
* ``dimensional_collapse``, ``anisotropy`` and ``low_uniformity`` are ok on every healthy supervised
  model given its labels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import geometry_probe as gp

sys.path.insert(0, str(Path(__file__).parent))
import _panel  # noqa: E402

DESCRIPTIONS = ("dimensional_collapse", "anisotropy", "low_uniformity")


@pytest.fixture(scope="module")
def judged():
    """``[(set, findings with labels, label-free findings)]``, findings as ``{name: verdict}``."""
    out = []
    for item in _panel.build_panel():
        verdicts = [{f["name"]: f["verdict"] for f in gp.analyze(item.X, labels=labels).findings}
                    for labels in (item.labels, None)]
        out.append((item, *verdicts))
    return out


def _broken(rows):
    return "\n".join(f"{name}: {why}" for name, why in rows)


def test_the_panel_is_large_and_its_truths_are_consistent(judged):
    panel = [item for item, _, _ in judged]
    assert len(panel) >= 36 if any(item.family == "MiniLM text encoder" for item in panel) else len(panel) >= 35
    assert {item.label_free_truth for item in panel} == set(_panel.TRUTHS)
    assert all(not 0.88 <= item.top1_energy < 0.92 for item in panel)      # no truth hinges on sampling error
    assert all(item.fused == (item.top1_energy >= _panel.FUSED_ENERGY) for item in panel)
    assert all(item.top1_energy >= 0.95 for item in panel if item.fused and item.family.startswith(
        ("white-noise", "fused")))
    assert all(item.X.dtype.name == "float32" and item.labels.shape == (item.n_samples,) for item in panel)


def test_over_fusion_fails_exactly_on_the_fused_sets(judged):
    wrong = [(item.name, f"{side}: {verdicts.get('over_fusion')} (top-1 energy {item.top1_energy:.4f}, "
                         f"fused={item.fused})")
             for item, *both in judged for side, verdicts in zip(("labels", "label-free"), both)
             if verdicts.get("over_fusion") != ("fail" if item.fused else "ok")]
    assert not wrong, _broken(wrong)


def test_information_loss_with_labels_fails_exactly_where_the_probe_is_at_chance(judged):
    wrong = [(item.name, f"{labelled.get('information_loss')} (probe {item.probe_accuracy:.3f}, chance "
                         f"{item.chance:.3f}, kNN {item.knn_accuracy:.3f}, lost={item.information_lost})")
             for item, labelled, _ in judged
             if labelled.get("information_loss") != ("fail" if item.information_lost else "ok")]
    assert not wrong, _broken(wrong)


def test_label_free_information_loss_catches_white_noise_fusion_and_spares_kept_information(judged):
    wrong = [(item.name, f"{free.get('information_loss')} (label-free truth {item.label_free_truth})")
             for item, _, free in judged
             if (item.label_free_truth == "lost" and free.get("information_loss") != "fail")
             or (item.label_free_truth == "kept" and free.get("information_loss") == "fail")]
    assert not wrong, _broken(wrong)


def test_descriptions_do_not_warn_on_healthy_supervised_models(judged):
    wrong = [(item.name, f"{name} {labelled.get(name)}") for item, labelled, _ in judged
             if item.family == "supervised MLP" for name in DESCRIPTIONS if labelled.get(name) != "ok"]
    assert not wrong, _broken(wrong)
