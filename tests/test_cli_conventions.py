"""Command-line conventions: -h and --version everywhere, -o/--output with the old names, '-' for stdout,
extensions checked, names printed literally, tables that keep numbers whole, --help without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.cli import _output

sys.path.insert(0, str(Path(__file__).parent))
from _cli import run_cli  # noqa: E402

MODELS = Path(__file__).parent / "_models.py"
MODEL, DATA = f"{MODELS}:make_model", f"{MODELS}:make_data"
COMMANDS = ["analyze", "list", "demo", "extract", "layers", "track", "figures", "report"]
X = np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32)
Y = np.repeat(np.arange(4), 50)


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    return tmp_path


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_version_and_short_help_on_the_app_and_every_command(command, capsys):
    code, out, err = run_cli([*command, "--version"], capsys)
    assert (code, out, err) == (0, f"geoprobe {gp.__version__}\n", "")
    code, out, _ = run_cli([*command, "-h"], capsys)
    assert code == 0 and "Usage:" in out and "--help" in out


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["analyze", "--help"], ["track", "-h"]])
def test_help_and_version_do_not_import_torch(args):
    """The commands import torch only when they run."""
    code = ("import sys\nfrom geometry_probe.cli.main import main\n"
            f"sys.argv = ['geoprobe', *{args!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('torch loaded:', 'torch' in sys.modules)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "torch loaded: False"


def test_json_to_stdout_with_dash_and_the_tables_on_stderr(files, capsys):
    code, out, err = run_cli(["analyze", files / "x.npy", "-l", files / "y.npy", "-a", "spectrum", "--device", "cpu",
                              "-o", "-"], capsys)
    assert code == 0
    written = json.loads(out)                                   # stdout is the JSON and nothing else
    expected = gp.analyze(X, "spectrum", labels=Y, device="cpu").scalars()
    assert written["scalars"]["spectrum/effective_rank"] == pytest.approx(expected["spectrum/effective_rank"],
                                                                          rel=1e-12)
    assert "effective_rank" in err and "x.npy: 200 x 6 float32, 4 classes" in err
    assert not (Path.cwd() / "-").exists()


@pytest.mark.parametrize("option", ["-o", "--output", "--json"])
def test_output_option_names_all_write_the_json(option, files, capsys):
    out_file = files / f"r{option.strip('-')}.json"
    code, out, _ = run_cli(["analyze", files / "x.npy", "-a", "spectrum", "--device", "cpu", "-q", option, out_file],
                           capsys)
    assert code == 0 and out == f"wrote {out_file}\n"
    assert json.loads(out_file.read_text())["meta"]["n_samples"] == 200


def test_track_json_to_stdout(files, capsys):
    np.save(files / "epoch_1.npy", X)
    np.save(files / "epoch_2.npy", X[:, :1] * np.ones((1, 6), np.float32))
    code, out, err = run_cli(["track", files / "epoch_1.npy", files / "epoch_2.npy", "-a", "spectrum", "--device",
                              "cpu", "-o", "-"], capsys)
    assert code == 0
    trajectory = json.loads(out)
    assert [c["step"] for c in trajectory["checkpoints"]] == [1, 2]
    assert "trajectory" in err


@pytest.mark.parametrize("args, option, fmt", [
    (["analyze", "{x}", "-o", "{d}/r.pdf"], "--output", "JSON"),
    (["analyze", "{x}", "--report", "{d}/r.json"], "--report", "HTML"),
    (["report", "{r}", "-o", "{d}/r.pdf"], "--output", "HTML"),
    (["track", "{x}", "{x}", "--csv", "{d}/t.json"], "--csv", "CSV"),
    (["track", "{x}", "{x}", "-o", "{d}/t.csv"], "--output", "JSON"),
])
def test_an_output_whose_extension_names_another_format_is_refused(args, option, fmt, files, capsys):
    gp.analyze(X, "spectrum", device="cpu").to_json(files / "res.json")
    args = [a.format(x=files / "x.npy", d=files, r=files / "res.json") for a in args]
    before = sorted(p.name for p in files.iterdir())
    code, out, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {option}: ")
    assert f"but this output is {fmt}" in lines[0]
    assert sorted(p.name for p in files.iterdir()) == before


def test_file_names_with_markup_characters_print_literally(files, capsys):
    name = files / "run[lr=0.1][bold].npy"
    np.save(name, X)
    out_file = files / "out[red].json"
    code, out, _ = run_cli(["analyze", name, "-a", "spectrum", "--device", "cpu", "-o", out_file], capsys)
    assert code == 0
    assert out.splitlines()[0] == f"{name}: 200 x 6 float32"
    assert f"wrote {out_file}" in out


def _table_width(text):
    """The widest line of the tables (box-drawing lines; messages are left to the terminal to wrap)."""
    return max(len(line) for line in text.splitlines() if line[:1] in "┏┃┡│└")


def _numbers_whole(text, numbers):
    """Every number string appears intact on one line."""
    missing = [n for n in numbers if not any(n in line for line in text.splitlines())]
    assert not missing, (missing, text)


@pytest.mark.parametrize("width", [80, 100])
def test_analyze_and_track_tables_keep_numbers_whole(width, files, capsys, monkeypatch):
    monkeypatch.setattr(_output.console, "width", width)
    code, out, _ = run_cli(["analyze", files / "x.npy", "-l", files / "y.npy", "--device", "cpu"], capsys)
    assert code == 0
    values = gp.analyze(X, labels=Y, device="cpu").scalars()
    assert _table_width(out) <= width
    _numbers_whole(out, [_output.format_number(v) for v in values.values()])
    names = [f"epoch_{i:02d}_{'x' * 30}.npy" for i in range(3)]
    for i, name in enumerate(names):
        np.save(files / name, X * (i + 1))
    code, out, _ = run_cli(["track", *(files / n for n in names), "-l", files / "y.npy", "--device", "cpu"], capsys)
    assert code == 0 and (_table_width(out) <= width if "┃" in out else "checkpoint epoch_00" in out)
    for name in names:
        assert any(name in line for line in out.splitlines())   # no file name broken either


@pytest.mark.parametrize("width", [80, 100])
def test_layers_table_keeps_numbers_whole(width, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_output.console, "width", width)
    out_json = tmp_path / "sweep.json"
    code, out, err = run_cli(["layers", "--model", MODEL, "--data", DATA, "--all-layers", "Linear", "--device", "cpu",
                              "-o", out_json], capsys)
    assert code == 0, err
    rows = json.loads(out_json.read_text())["rows"]
    numbers = [_output.format_number(row[k]) for row in rows for k in row
               if isinstance(row[k], float) and k != "n_samples"]
    assert numbers and (_table_width(out) <= width if "┃" in out else "layer encoder.0" in out)
    _numbers_whole(out, numbers)


def test_print_table_switches_to_key_value_blocks_when_it_cannot_fit(capsys, monkeypatch):
    monkeypatch.setattr(_output.console, "width", 40)
    columns = ("layer", *(f"metric_{i}" for i in range(8)))
    _output.print_table("t", columns, [("encoder.0", *(f"{1.234567 * i:.6g}" for i in range(8)))],
                        numeric=columns[1:])
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "layer encoder.0"
    assert "  metric_7: 8.64197" in out.splitlines()
