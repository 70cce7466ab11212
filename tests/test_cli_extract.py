"""`geoprobe extract` / `geoprobe layers` end to end through the console entry point."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geometry_probe.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402

MODELS = Path(__file__).parent / "_models.py"
MODEL, DATA = f"{MODELS}:make_model", f"{MODELS}:make_data"


@pytest.fixture
def cli(monkeypatch, capsys):
    def run(*args):
        monkeypatch.setattr(sys, "argv", ["geoprobe", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        captured = capsys.readouterr()
        return exc.value.code, captured.out, captured.err
    return run


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return _models.train_and_save(tmp_path_factory.mktemp("ckpts"), steps=(0, 5, 10))


def reference_outputs(checkpoint):
    """encoder.2 and head in eval mode after loading ``checkpoint`` with plain PyTorch."""
    model = _models.make_model()
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    X, _ = _models.make_tensors()
    with torch.no_grad():
        hidden = model.encoder[2](model.encoder[1](model.encoder[0](X)))
        return hidden.numpy(), model.head(model.encoder(X)).numpy()


def naive_effective_rank(X):
    s = np.linalg.svd(X - X.mean(0), compute_uv=False)
    p = s[s > 0] / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def test_extract_then_analyze(cli, saved, tmp_path):
    out = tmp_path / "feats.npz"
    code, stdout, stderr = cli("extract", "--model", MODEL, "--data", DATA, "--checkpoint", saved[10],
                               "--layer", "encoder.2", "--layer", "head", "-o", out)
    assert (code, stderr) == (0, "")
    assert "encoder.2: 120 x 8" in stdout and f"wrote {out}" in stdout
    hidden, head = reference_outputs(saved[10])
    with np.load(out) as arrays:
        assert sorted(arrays.files) == ["encoder.2", "head", "labels"]
        assert np.array_equal(arrays["encoder.2"], hidden) and np.array_equal(arrays["head"], head)
        assert arrays["labels"].tolist() == _models.make_tensors()[1].tolist()
        assert arrays["labels"].dtype.kind == "i"

    code, _, stderr = cli("analyze", out, "--key", "head", "--labels", "labels", "--analyzers", "spectrum",
                          "--precision", "float64", "--json", tmp_path / "r.json", "--quiet")
    assert (code, stderr) == (0, "")
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["meta"]["n_samples"] == 120 and result["meta"]["n_classes"] == 3
    assert result["scalars"]["spectrum/effective_rank"] == pytest.approx(
        naive_effective_rank(head.astype(np.float64)), rel=1e-9)


def test_max_samples_and_pool(cli, tmp_path):
    out = tmp_path / "tokens.npz"
    model = f"{MODELS}:make_tokens_model"
    data = f"{tmp_path}/tok_data.py:make"
    (tmp_path / "tok_data.py").write_text(
        "import torch\ndef make():\n    g = torch.Generator().manual_seed(3)\n"
        "    return torch.randn(40, 5, 6, generator=g)\n")
    code, _, stderr = cli("extract", "--model", model, "--data", data, "--layer", "proj", "-o", out)
    assert code == 2 and "--pool mean" in stderr and not out.exists()
    code, _, stderr = cli("extract", "--model", model, "--data", data, "--layer", "proj", "--pool", "cls",
                          "--max-samples", "25", "--batch-size", "10", "-o", out)
    assert (code, stderr) == (0, "")
    net = _models.make_tokens_model()
    X = torch.randn(40, 5, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = net.proj(X)[:25, 0].numpy()
    with np.load(out) as arrays:
        assert arrays.files == ["proj"]
        assert np.array_equal(arrays["proj"], expected)


@pytest.mark.parametrize("args, message", [
    (["--model", "no_such_pkg.models:make_model", "--data", DATA], "no module named 'no_such_pkg'"),
    (["--model", MODEL, "--data", "tests/missing.py:make"], "no such Python file"),
    (["--model", MODEL, "--data", DATA, "--layer", "encoder.7"], "close matches"),
    (["--model", f"{MODELS}:make_tensors", "--data", DATA], "not a torch.nn.Module"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(cli, tmp_path, args, message):
    out = tmp_path / "o.npz"
    layer = [] if "--layer" in args else ["--layer", "head"]
    code, stdout, stderr = cli("extract", *args, *layer, "-o", out)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_pickled_checkpoint_is_refused(cli, tmp_path):
    """geoprobe extract refuses a checkpoint holding a whole pickled model: exit 2, nothing written."""
    torch.save(_models.make_model(), tmp_path / "whole.pt")
    code, _, stderr = cli("extract", "--model", MODEL, "--data", DATA, "--checkpoint", tmp_path / "whole.pt",
                          "--layer", "head", "-o", tmp_path / "o.npz")
    assert code == 2 and "refused" in stderr and not (tmp_path / "o.npz").exists()


def test_output_must_be_npz_and_not_named_labels(cli, tmp_path):
    code, _, stderr = cli("extract", "--model", MODEL, "--data", DATA, "--layer", "head", "-o", tmp_path / "o.npy")
    assert code == 2 and "must end in .npz" in stderr
    code, _, stderr = cli("extract", "--model", MODEL, "--data", DATA, "--layer", "labels", "-o", tmp_path / "o.npz")
    assert code == 2 and "reserved" in stderr


def test_layers_lists_modules_without_layer_options(cli):
    code, stdout, _ = cli("layers", "--model", MODEL)
    assert code == 0
    for name, kind in (("encoder.3", "BatchNorm1d"), ("head", "Linear"), ("dropout", "Dropout")):
        assert any(name in line and kind in line for line in stdout.splitlines())


def test_layers_sweep_writes_json_csv_and_figure(cli, saved, tmp_path):
    code, stdout, stderr = cli("layers", "--model", MODEL, "--data", DATA, "--checkpoint", saved[5],
                               "--all-layers", "Linear", "--json", tmp_path / "s.json", "--csv", tmp_path / "s.csv",
                               "--figure", tmp_path / "s.png", "--precision", "float64")
    assert (code, stderr) == (0, "")
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["layer"] for r in rows] == ["encoder.0", "encoder.2", "head"]
    _, head = reference_outputs(saved[5])
    assert float(rows[2]["spectrum/effective_rank"]) == pytest.approx(
        naive_effective_rank(head.astype(np.float64)), rel=1e-9)
    assert json.loads((tmp_path / "s.json").read_text())["rows"][2]["layer"] == "head"
    assert (tmp_path / "s.png").stat().st_size > 1000
    code, _, stderr = cli("layers", "--model", MODEL, "--layer", "head")
    assert code == 2 and "--data" in stderr
