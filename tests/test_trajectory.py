"""Checkpoint trajectories: step parsing, onsets, JSON/CSV outputs, containers holding steps."""

import csv
from pathlib import Path
import json
import subprocess

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.trajectory import step_from_name, track, track_files


@pytest.mark.parametrize(("name", "step"), [("epoch_07.npy", 7), ("ckpt/step-1200.pt", 1200), ("e3.npz", 3),
                                            ("model_iter=40.safetensors", 40), ("final.npy", -1)])
def test_step_parsing(name, step):
    assert step_from_name(name, default=-1) == step


def _write_run(folder):
    for epoch in (1, 2, 10, 11):                   # natural order matters: 10 after 2
        X = (gp.datasets.make_isotropic(500, 24, random_state=epoch) if epoch < 10
             else gp.datasets.make_collapsed(500, 24, kind="point", noise=0.01, random_state=epoch))
        np.save(folder / f"epoch_{epoch}.npy", X.astype(np.float32))
    return sorted(folder.glob("epoch_*.npy"))       # lexicographic on purpose


def test_onset_is_first_failing_checkpoint_in_step_order(tmp_path):
    trajectory = track(track_files(_write_run(tmp_path)), "spectrum")
    assert [c["step"] for c in trajectory["checkpoints"]] == [1, 2, 10, 11]
    assert trajectory["onsets"]["over_fusion"]["step"] == 10
    assert trajectory["onsets"]["over_fusion"]["path"].endswith("epoch_10.npy")
    first = trajectory["checkpoints"][0]
    assert {"path", "step", "scalars", "findings"} <= first.keys()


def test_container_with_several_steps(tmp_path):
    np.savez(tmp_path / "run.npz", step_300=gp.datasets.make_collapsed(300, 16, kind="line", noise=0.01),
             step_100=gp.datasets.make_isotropic(300, 16))
    trajectory = track(track_files([tmp_path / "run.npz"]), "spectrum")
    assert [c["step"] for c in trajectory["checkpoints"]] == [100, 300]
    assert trajectory["onsets"]["over_fusion"]["step"] == 300


def test_cli_writes_json_and_csv(tmp_path):
    paths = _write_run(tmp_path)
    out = subprocess.run(["geoprobe", "track", *map(str, paths), "--json", str(tmp_path / "t.json"),
                          "--csv", str(tmp_path / "t.csv")], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["onsets"]["over_fusion"]["step"] == 10
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2", "10", "11"]
    assert [r["verdict/over_fusion"] for r in rows] == ["ok", "ok", "fail", "fail"]


def test_cli_missing_checkpoint_exits_2_and_writes_nothing(tmp_path):
    out = subprocess.run(["geoprobe", "track", str(tmp_path / "nope.npy"), "--json", str(tmp_path / "t.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error:")
    assert not (tmp_path / "t.json").exists()


def test_track_over_model_checkpoints_matches_manual_extraction(tmp_path):
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    import _models

    saved = _models.train_and_save(tmp_path, steps=(0, 5, 10))
    models = Path(__file__).parent / "_models.py"
    out = subprocess.run(["geoprobe", "track", "--model", f"{models}:make_model", "--data", f"{models}:make_data",
                          "--checkpoint", str(tmp_path / "*.pt"), "--layer", "head", "-a", "spectrum",
                          "--json", str(tmp_path / "t.json")], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "t.json").read_text())
    assert [c["step"] for c in data["checkpoints"]] == [0, 5, 10]
    for checkpoint in data["checkpoints"]:
        model = _models.make_model()
        model.load_state_dict(torch.load(saved[checkpoint["step"]], weights_only=True))
        model.eval()
        with torch.no_grad():
            head = model(_models.make_tensors()[0]).numpy().astype(np.float64)
        expected = gp.analyze(head, "spectrum").scalars()["spectrum/effective_rank"]
        assert checkpoint["scalars"]["spectrum/effective_rank"] == pytest.approx(expected, rel=1e-5)


def test_track_model_mode_needs_all_options(tmp_path):
    out = subprocess.run(["geoprobe", "track", "--model", "x:y"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "needs --data, --checkpoint and --layer" in out.stderr


def test_track_reads_csv_checkpoints_with_the_header_rule(tmp_path, capsys):
    """A numeric first row is data unless --header says it names the columns (as in analyze)."""
    from tests._cli import run_cli

    rng = np.random.default_rng(2)
    for epoch in (1, 2):
        np.savetxt(tmp_path / f"epoch_{epoch}.csv", rng.standard_normal((40, 6)), delimiter=",")
    paths = [tmp_path / "epoch_1.csv", tmp_path / "epoch_2.csv"]
    as_data = gp.trajectory.track_files(paths)
    as_header = gp.trajectory.track_files(paths, header=True)
    assert [emb.n_samples for _, _, emb in as_data] == [40, 40]
    assert [emb.n_samples for _, _, emb in as_header] == [39, 39]
    code, _, err = run_cli(["track", *paths, "--header", "--analyzers", "spectrum", "-o", tmp_path / "t.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "t.json").read_text())["checkpoints"][0]["scalars"]["spectrum/effective_rank"] <= 6
