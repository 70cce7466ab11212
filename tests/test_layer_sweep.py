"""layer_sweep: rows in execution order with metrics equal to naive NumPy definitions; JSON/CSV/figure."""

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import geometry_probe as gp
from geometry_probe.analyzers import ANALYZERS
from geometry_probe.exceptions import InvalidInputError, OutputError
from geometry_probe.layer_sweep import select_layers

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402


def naive_effective_rank(X):
    """Roy & Vetterli on the centred matrix: exp(entropy of L1-normalised singular values)."""
    s = np.linalg.svd(X - X.mean(0), compute_uv=False)
    p = s[s > 0] / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def naive_rankme(X, eps=1e-7):
    """Garrido et al.: raw matrix, p = σ/‖σ‖₁ + ε."""
    s = np.linalg.svd(X, compute_uv=False)
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def naive_ncc_accuracy(X, y):
    means = np.stack([X[y == c].mean(0) for c in np.unique(y)])
    pred = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    return float((pred == y).mean())


def naive_nc1(X, y):
    """Papyan et al.: Tr(Σ_W Σ_B^†)/C, Σ_B over class means around their mean, Σ_W sample-weighted."""
    classes = np.unique(y)
    means = np.stack([X[y == c].mean(0) for c in classes])
    centred = means - means.mean(0)
    sigma_b = centred.T @ centred / len(classes)
    resid = X - means[np.searchsorted(classes, y)]
    sigma_w = resid.T @ resid / len(X)
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / len(classes))


class Reordered(nn.Module):
    """Registers ``late`` before ``early`` but runs ``early`` first."""

    def __init__(self):
        super().__init__()
        self.late = nn.Linear(8, 4)
        self.early = nn.Linear(_models.N_INPUTS, 8)

    def forward(self, x):
        return self.late(torch.tanh(self.early(x)))


def manual_features(model, X):
    model.eval()
    with torch.no_grad():
        early = model.early(X)
        return {"early": early.numpy(), "late": model.late(torch.tanh(early)).numpy()}


def test_rows_follow_execution_order_with_naive_metric_values():
    torch.manual_seed(0)
    model = Reordered()
    X, y = _models.make_tensors()
    assert select_layers(model, "Linear") == ["late", "early"]
    # float64 GEMMs: "early" has rank 6 in 8 dimensions, whose zero singular values float32 blurs
    sweep = gp.layer_sweep(model, _models.make_data(), all_layers="Linear", device="cpu", precision="float64")
    features = manual_features(model, X)
    assert [(r["layer"], r["depth"], r["n_features"]) for r in sweep.rows] == [("early", 0, 8), ("late", 1, 4)]
    for row in sweep.rows:
        Z = features[row["layer"]].astype(np.float64)
        assert row["spectrum/effective_rank"] == pytest.approx(naive_effective_rank(Z), rel=1e-5)
        assert row["spectrum/rankme"] == pytest.approx(naive_rankme(Z), rel=1e-5)
        assert row["n_samples"] == 120 and row["module"] == "Linear" and row["pool"] == "none"


@pytest.mark.skipif("neural_collapse" not in ANALYZERS, reason="neural_collapse analyzer not registered yet")
def test_labelled_rows_carry_nc1_and_ncc_accuracy():
    torch.manual_seed(0)
    model = Reordered()
    X, y = _models.make_tensors()
    sweep = gp.layer_sweep(model, _models.make_data(), ["early", "late"], device="cpu")
    features = manual_features(model, X)
    for row in sweep.rows:
        Z = features[row["layer"]].astype(np.float64)
        assert row["neural_collapse/ncc_accuracy"] == pytest.approx(naive_ncc_accuracy(Z, y.numpy()), abs=1e-12)
        assert row["neural_collapse/nc1"] == pytest.approx(naive_nc1(Z, y.numpy()), rel=1e-4)


def test_without_labels_only_label_free_metrics_and_a_note():
    sweep = gp.layer_sweep(_models.make_model(), _models.make_unlabelled_data(), ["encoder.0", "head"], device="cpu")
    assert sweep.metric_keys[:2] == ["spectrum/effective_rank", "spectrum/rankme"]
    assert not [k for k in sweep.metric_keys if k.startswith("neural_collapse/")]
    assert any("no labels" in note for note in sweep.meta["notes"])


def test_json_and_csv_hold_the_rows(tmp_path):
    sweep = gp.layer_sweep(_models.make_model(), _models.make_data(), ["head", "encoder.2"], device="cpu")
    sweep.to_json(tmp_path / "s.json")
    sweep.to_csv(tmp_path / "s.csv")
    data = json.loads((tmp_path / "s.json").read_text())
    assert [r["layer"] for r in data["rows"]] == ["encoder.2", "head"]
    assert set(data["results"]) == {"encoder.2", "head"}
    assert data["results"]["head"]["scalars"]["spectrum/effective_rank"] == pytest.approx(
        sweep.rows[1]["spectrum/effective_rank"])
    table = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert [r["layer"] for r in table] == ["encoder.2", "head"]
    for parsed, row in zip(table, sweep.rows):
        assert float(parsed["spectrum/rankme"]) == pytest.approx(row["spectrum/rankme"], rel=1e-12)
        assert int(parsed["depth"]) == row["depth"]


def test_figure_has_one_panel_per_metric_and_is_saved(tmp_path):
    sweep = gp.layer_sweep(_models.make_model(), _models.make_data(), ["encoder.0", "encoder.2", "head"],
                           device="cpu")
    figure = sweep.plot(tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figure.axes) == len(sweep.metric_keys)
    ranks = figure.axes[0].get_lines()[0].get_ydata()
    assert np.allclose(ranks, [r["spectrum/effective_rank"] for r in sweep.rows])
    with pytest.raises(OutputError, match="unknown figure type"):
        sweep.plot(tmp_path / "s.jpg")


def test_layer_selection_errors():
    with pytest.raises(InvalidInputError, match=r"no module of type 'Conv2d'.*'Linear': 3"):
        select_layers(_models.make_model(), "Conv2d")
    assert select_layers(_models.make_model(), "torch.nn.Linear") == ["encoder.0", "encoder.2", "head"]
    with pytest.raises(InvalidInputError, match="give layers"):
        gp.layer_sweep(_models.make_model(), _models.make_data())


def test_rows_carry_the_over_fusion_verdict_of_the_diagnosis():
    class Fused(nn.Module):
        def __init__(self):
            super().__init__()
            self.spread = nn.Linear(_models.N_INPUTS, 8)
            self.fused = nn.Linear(_models.N_INPUTS, 8, bias=False)
            with torch.no_grad():                      # every output on one line through the origin
                self.fused.weight.copy_(torch.randn(8, 1) @ torch.randn(1, _models.N_INPUTS))

        def forward(self, x):
            return self.spread(x) + 0 * self.fused(x)

    torch.manual_seed(0)
    sweep = gp.layer_sweep(Fused(), _models.make_data(), ["spread", "fused"], device="cpu")
    verdicts = {row["layer"]: row["over_fusion"] for row in sweep.rows}
    assert verdicts["fused"] == "fail" and verdicts["spread"] in {"ok", "warn"}
