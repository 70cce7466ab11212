"""Progress: the library's callbacks (rows, tiles, samples, layers), the rich display, and what a terminal,
a pipe and -q get."""

import io
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

import geometry_probe as gp
from geometry_probe.cli._progress import ProgressDisplay, counted, progress_display
from geometry_probe.pairwise import run_pass

MODELS = Path(__file__).parent / "_models.py"
ROOT = Path(__file__).parent.parent


def _recorder():
    calls = []
    return calls, lambda stage, done, total: calls.append((stage, done, total))


def test_analyze_reports_every_batch_of_both_passes_and_every_tile():
    X = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    y = np.arange(1000) % 4
    calls, progress = _recorder()
    gp.analyze(X, ["spectrum", "neural_collapse", "contrastive"], labels=y, batch_size=300, device="cpu",
               progress=progress)
    rows = [(d, t) for s, d, t in calls if s == "rows"]
    assert rows == [(300, 1000), (600, 1000), (900, 1000), (1000, 1000)]
    second = [(d, t) for s, d, t in calls if s == "rows, second pass"]
    assert second in ([], rows)                                   # present exactly when a second pass runs
    tiles = [(d, t) for s, d, t in calls if s == "tiles"]
    assert tiles and tiles[-1][0] == tiles[-1][1] and [d for d, _ in tiles] == list(range(1, len(tiles) + 1))


def test_the_tile_pass_counts_the_upper_triangle():
    """N = 10 rows in tiles of 3: ceil(10/3) = 4 row blocks, 4 * 5 / 2 = 10 tiles."""
    calls, progress = _recorder()

    class Count:
        n = 0

        def add_tile(self, tile):
            Count.n += 1

    run_pass(torch.randn(10, 4), [Count()], tile=3, progress=progress)
    assert Count.n == 10 and calls == [("tiles", i, 10) for i in range(1, 11)]


def test_the_library_is_silent_by_default(capsys):
    gp.analyze(np.random.default_rng(1).standard_normal((500, 4)), "spectrum", device="cpu")
    assert capsys.readouterr() == ("", "")


def test_extract_and_layer_sweep_report_samples_and_layers():
    sys.path.insert(0, str(MODELS.parent))
    import _models

    model, data = _models.make_model(), _models.make_data()
    calls, progress = _recorder()
    gp.layer_sweep(model, data, ["encoder.0", "head"], device="cpu", progress=progress)
    samples = [(d, t) for s, d, t in calls if s == "samples"]
    n = len(_models.make_tensors()[0])
    assert samples[-1] == (n, n) and all(b[0] > a[0] for a, b in zip(samples, samples[1:]))
    assert [(d, t) for s, d, t in calls if s == "layers"] == [(1, 2), (2, 2)]


def test_display_shows_count_rate_and_eta_and_restarts_a_stage_that_goes_back():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress_display(quiet=False, console=console) as progress:
        assert isinstance(progress, ProgressDisplay)
        for done in (100, 200, 300):
            progress("rows", done, 300)
        progress("rows", 50, 300)                                 # the next checkpoint's rows: restart
        task = progress.progress.tasks[0]
        assert (task.completed, task.total) == (50, 300)
        progress.progress.refresh()
        text = out.getvalue()
    assert "rows" in text and "50/300" in text and "eta" in text
    assert list(counted(["a", "b"], "checkpoints", None)) == ["a", "b"]


def test_no_display_when_quiet_or_stderr_is_not_a_terminal(capsys):
    with progress_display(quiet=True) as progress:
        assert progress is None
    with progress_display(quiet=False) as progress:              # pytest's stderr is not a terminal
        assert progress is None


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pseudo-terminal")
def test_a_terminal_gets_the_header_first_then_progress_and_quiet_gets_neither(tmp_path):
    X = np.random.default_rng(2).standard_normal((4000, 8)).astype(np.float32)
    np.save(tmp_path / "run[lr=0.1].npy", X)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", "OMP_NUM_THREADS": "1"}
    base = (f"{sys.executable} -m geometry_probe.cli.main analyze 'run[lr=0.1].npy' -a spectrum,contrastive "
            "--device cpu --batch-size 500")
    shown = subprocess.run(["script", "-q", "-c", base, "/dev/null"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stdout
    text = shown.stdout
    header = text.index("run[lr=0.1].npy: 4000 x 8 float32")
    assert header < text.index("rows/s") < text.index("effective_rank")   # header first, bars, then the table
    assert "4000/4000" in text and "eta" in text and "tiles" in text
    quiet = subprocess.run(["script", "-q", "-c", base + " -q", "/dev/null"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "rows/s" not in quiet.stdout and "4000 x 8" not in quiet.stdout
    piped = subprocess.run(base, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""          # not a terminal: no bars
    assert piped.stdout.splitlines()[0] == "run[lr=0.1].npy: 4000 x 8 float32"
    assert math.isfinite(float(next(line.split("│")[3] for line in piped.stdout.splitlines()
                                    if "effective_rank" in line)))


def test_track_reports_each_checkpoint_and_its_rows():
    rng = np.random.default_rng(3)
    sources = [(f"c{i}", i, gp.Embeddings(rng.standard_normal((300, 5)))) for i in (2, 0, 1)]
    calls, progress = _recorder()
    gp.track(sources, "spectrum", device="cpu", batch_size=100, progress=progress)
    assert [(d, t) for s, d, t in calls if s == "checkpoints"] == [(1, 3), (2, 3), (3, 3)]
    assert [d for s, d, _ in calls if s == "rows"] == [100, 200, 300] * 3
