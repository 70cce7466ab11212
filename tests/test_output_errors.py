"""Unwritable outputs: one-line error, exit 2, nothing written and no input touched, for every writing command."""

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import geometry_probe as gp

sys.path.insert(0, str(Path(__file__).parent))
from _cli import run_cli  # noqa: E402

X = np.random.default_rng(0).standard_normal((120, 6)).astype(np.float32)
Y = np.repeat(np.arange(3), 40)

# command -> (arguments before the output option, the output option, suffix of a file output)
COMMANDS = {
    "analyze --json": (["analyze", "{x}", "--labels", "{y}", "-a", "spectrum", "-q", "--device", "cpu"],
                       "--json", ".json"),
    "analyze --report": (["analyze", "{x}", "--labels", "{y}", "-a", "spectrum", "-q", "--device", "cpu"],
                         "--report", ".html"),
    "figures -o": (["figures", "{results}"], "-o", ""),
    "report -o": (["report", "{results}"], "-o", ".html"),
    "track --json": (["track", "{e1}", "{e2}", "--labels", "{y}", "-a", "spectrum", "--device", "cpu"],
                     "--json", ".json"),
    "track --csv": (["track", "{e1}", "{e2}", "--labels", "{y}", "-a", "spectrum", "--device", "cpu"],
                    "--csv", ".csv"),
}
# command -> the inputs it reads (an output equal to any of them must be refused)
INPUTS = {"analyze --json": ("x", "y"), "analyze --report": ("x", "y"), "figures -o": ("results",),
          "report -o": ("results",), "track --json": ("e1", "y"), "track --csv": ("e2", "y")}


@pytest.fixture
def workdir(tmp_path):
    """Inputs of every command in ``tmp_path``: embeddings, labels, two checkpoints, a results JSON."""
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    np.save(tmp_path / "epoch_01.npy", X)
    np.save(tmp_path / "epoch_02.npy", X * 2)
    gp.analyze(X, "spectrum", labels=Y, device="cpu").to_json(tmp_path / "results.json")
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    (tmp_path / "adir").mkdir()
    return tmp_path


def paths(workdir):
    return {"x": workdir / "x.npy", "y": workdir / "y.npy", "e1": workdir / "epoch_01.npy",
            "e2": workdir / "epoch_02.npy", "results": workdir / "results.json"}


def snapshot(root):
    """Every file and folder under ``root`` with its content hash and modification time."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            digest = "dir" if os.path.isdir(path) else hashlib.sha256(open(path, "rb").read()).hexdigest()
            state[os.path.relpath(path, root)] = (digest, stat.st_mtime_ns, stat.st_mode)
    return state


def check_refused(command, out, workdir, capsys, *expected_words):
    """Run ``command`` writing to ``out``: exit 2, one ``error:`` line naming the problem, nothing changed."""
    before, args = snapshot(workdir), COMMANDS[command]
    given = paths(workdir)
    argv = [a.format(**given) for a in args[0]] + [args[1], out]
    code, stdout, stderr = run_cli(argv, capsys)
    assert code == 2, (code, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert any(word in lines[0] for word in expected_words), lines[0]
    assert "Traceback" not in stderr + stdout
    assert snapshot(workdir) == before


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "figures -o"])
def test_missing_parent_folder_is_refused(command, workdir, capsys):
    """A file output in a folder that does not exist: exit 2, 'does not exist', nothing created."""
    check_refused(command, workdir / "missing" / f"out{COMMANDS[command][2]}", workdir, capsys, "does not exist")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_file_where_a_folder_should_be_is_refused(command, workdir, capsys):
    """An output under an existing file (notes.txt/out): exit 2, 'not a folder', nothing written."""
    check_refused(command, workdir / "notes.txt" / f"out{COMMANDS[command][2]}", workdir, capsys, "not a folder")


def test_figures_output_folder_that_is_a_file_is_refused(workdir, capsys):
    """`figures -o` naming an existing file instead of a folder: exit 2, 'not a folder', the file untouched."""
    check_refused("figures -o", workdir / "notes.txt", workdir, capsys, "not a folder")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "figures -o"])
def test_output_that_is_a_folder_is_refused(command, workdir, capsys):
    """A file output naming an existing folder: exit 2, 'is a directory', the folder untouched."""
    check_refused(command, workdir / "adir", workdir, capsys, "is a directory")


@pytest.mark.parametrize("command,name", [(c, n) for c, names in INPUTS.items() for n in names])
def test_output_equal_to_an_input_is_refused(command, name, workdir, capsys):
    """An output path equal to one of the command's input files: exit 2, the input byte-identical."""
    check_refused(command, paths(workdir)[name], workdir, capsys, "input", "not a folder")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_read_only_folder_is_refused(command, workdir, capsys):
    """An output in a read-only folder: exit 2, 'not writable', nothing written (skipped as root)."""
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): a read-only folder is still writable here")
        target = locked / ("figs" if command == "figures -o" else f"out{COMMANDS[command][2]}")
        check_refused(command, target, workdir, capsys, "not writable")
    finally:
        locked.chmod(0o755)


def test_figures_creates_a_missing_output_folder(workdir, capsys):
    """`figures -o` documents 'created if missing': a new nested folder is made and holds the figures."""
    target = workdir / "new" / "figs"
    code, stdout, stderr = run_cli(["figures", workdir / "results.json", "-o", target, "--format", "svg"], capsys)
    assert code == 0, stderr
    assert sorted(p.suffix for p in target.iterdir()) and all(p.suffix == ".svg" for p in target.iterdir())
    assert "spectrum.svg" in {p.name for p in target.iterdir()}
