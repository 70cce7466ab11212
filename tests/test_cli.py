"""The command line through its real entry point: outputs, exit codes, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import geometry_probe as gp

sys.path.insert(0, str(Path(__file__).parent))
from _cli import run_cli  # noqa: E402

X = np.random.default_rng(0).standard_normal((300, 12)).astype(np.float32)
Y = np.repeat(np.arange(3), 100)


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    return tmp_path


def test_analyze_prints_table_and_writes_json_equal_to_library(files, capsys):
    code, out, _ = run_cli(["analyze", files / "x.npy", "--labels", files / "y.npy", "--analyzers", "spectrum",
                            "--batch-size", "64", "--device", "cpu", "--json", files / "r.json"], capsys)
    assert code == 0
    assert "effective_rank" in out and "rankme" in out
    written = gp.Results.from_json(files / "r.json")
    expected = gp.analyze(X, "spectrum", labels=Y).scalars()
    assert written.scalars().keys() == expected.keys()
    for key, value in expected.items():
        assert written.scalars()[key] == pytest.approx(value, rel=1e-6, nan_ok=True)
    assert written.meta["n_samples"] == 300 and written.meta["batch_size"] == 64


def test_key_and_label_key_inside_container(files, capsys):
    np.savez(files / "c.npz", layer1=X, layer2=X[:, :4], labels=Y)
    code, _, _ = run_cli(["analyze", files / "c.npz", "--key", "layer2", "--labels", "labels", "-a", "spectrum",
                          "--json", files / "c.json", "-q"], capsys)
    assert code == 0
    assert json.loads((files / "c.json").read_text())["meta"]["n_features"] == 4


def test_list_names_every_analyzer(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for name in gp.ANALYZERS:
        assert name in out


def test_demo_writes_json(tmp_path, capsys):
    code, out, _ = run_cli(["demo", "--json", tmp_path / "demo.json"], capsys)
    assert code == 0
    data = json.loads((tmp_path / "demo.json").read_text())
    assert data["meta"]["n_samples"] == 1797 and data["meta"]["n_classes"] == 10
    assert {f["name"]: f["verdict"] for f in data["findings"] if f["verdict"] != "ok"} == {}   # the healthy bill
    healthy, failure = out.split("2. A failure caught", 1)
    assert "FAIL" not in healthy and "WARN" not in healthy
    assert "FAIL over_fusion" in failure and "FAIL information_loss" in failure


def _bad_inputs(tmp_path):
    np.save(tmp_path / "three.npy", np.zeros((3, 4, 5)))
    np.save(tmp_path / "one.npy", np.zeros((1, 4)))
    bad = X.copy()
    bad[7, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "multi.npz", a=X, b=X)
    np.save(tmp_path / "short.npy", np.arange(5))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:200])
    return {
        "missing": (["analyze", tmp_path / "nope.npy"], "no such"),
        "directory": (["analyze", tmp_path], "directory"),
        "truncated": (["analyze", tmp_path / "trunc.npy"], "truncated"),
        "object": (["analyze", tmp_path / "obj.npy"], "pickle"),
        "3-D": (["analyze", tmp_path / "three.npy"], "pool"),
        "one row": (["analyze", tmp_path / "one.npy"], "at least 2 rows"),
        "nan": (["analyze", tmp_path / "nan.npy"], "first bad rows: 7"),
        "labels length": (["analyze", tmp_path / "x.npy", "--labels", tmp_path / "short.npy"], "got 5 labels"),
        "ambiguous key": (["analyze", tmp_path / "multi.npz"], "'a'"),
        "unknown analyzer": (["analyze", tmp_path / "x.npy", "-a", "nope"], "unknown analyzer"),
        "no cuda": (["analyze", tmp_path / "x.npy", "--device", "cuda"], "no CUDA") if not _has_cuda() else None,
        "output is input": (["analyze", tmp_path / "x.npy", "--json", tmp_path / "x.npy"], "overwrite an input"),
        "labels needed": (["analyze", tmp_path / "x.npy", "-a", "neural_collapse"], "needs labels"),
    }


def _has_cuda():
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("case", ["missing", "directory", "truncated", "object", "3-D", "one row", "nan",
                                  "labels length", "ambiguous key", "unknown analyzer", "no cuda",
                                  "output is input", "labels needed"])
def test_bad_input_exit_2_one_line_nothing_written(files, capsys, case):
    """Bad input of each kind (missing, directory, truncated, object dtype, 3-D, one row, NaN, label length,
    ambiguous key, unknown analyzer, no CUDA, output = input, labels needed): exit 2, one line on stderr, nothing
    written.
    """
    spec = _bad_inputs(files)[case]
    if spec is None:
        pytest.skip("CUDA is available here")
    args, fragment = spec
    out_json = files / "out.json"
    if "--json" not in map(str, args):
        args = [*args, "--json", out_json]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert not out_json.exists()
    assert (files / "x.npy").read_bytes()[:6] == b"\x93NUMPY"


def test_usage_error_exits_2(capsys):
    code, _, _ = run_cli(["analyze", "x.npy", "--batch-size", "0"], capsys)
    assert code == 2


def test_real_entry_point_subprocess(files):
    ok = subprocess.run(["geoprobe", "analyze", str(files / "x.npy"), "-a", "spectrum", "--json",
                         str(files / "s.json"), "-q"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((files / "s.json").read_text())["scalars"]["spectrum/rank_ceiling"] == 12
    bad = subprocess.run(["geoprobe", "analyze", str(files / "missing.npy")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
