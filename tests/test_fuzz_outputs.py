"""Hostile outputs, JSON, labels and signals: every case ends in a correct result or one line with exit 2.

Covers issue 16's output side: two outputs on one path, outputs that are not regular files,
operating-system errors while writing (ENOSPC, EFBIG from ``ulimit -f``, EPERM, EACCES,
ENAMETOOLONG), long file names, SIGTERM/SIGINT at seeded moments of real ``geoprobe``
processes, crafted results and trajectory JSON, label names that look like mathtext, the
monitor's width change and the isotropic baseline of very wide spectra.
"""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import geometry_probe as gp
from geometry_probe import _atomic, _interrupts
from geometry_probe.monitor import CollapseMonitor
from geometry_probe.reporting import static
from geometry_probe.reporting._figure_data import isotropic_spectrum

sys.path.insert(0, str(Path(__file__).parent))
from _cli import run_cli  # noqa: E402

GEOPROBE = shutil.which("geoprobe")
X = np.random.default_rng(0).standard_normal((90, 6)).astype(np.float32)
Y = np.repeat(np.arange(3), 30)
PNG_END = b"IEND\xaeB`\x82"
NASTY_NAMES = [r"$\undefinedcmd$", "$x_{1", "50%_$", "two\nlines", "L" * 300]


@pytest.fixture
def work(tmp_path):
    """Embeddings, labels and a results JSON (spectrum, orthogonality, contrastive, knn) in ``tmp_path``."""
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    gp.analyze(X, ["spectrum", "orthogonality", "contrastive", "knn"], labels=Y, device="cpu").to_json(
        tmp_path / "r.json")
    return tmp_path


def one_error_line(code, stdout, stderr, *words):
    """Exit 2, one ``error:`` line on stderr holding every word, no traceback."""
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in stdout + stderr


def leftovers(folder):
    """Temporary files of an atomic write left in ``folder``."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


def analyze_args(work, *extra):
    return ["analyze", work / "x.npy", "--labels", work / "y.npy", "-a", "spectrum", "-q", "--device", "cpu", *extra]


# ---- two outputs, outputs that are not regular files, long names -------------------------------------------------
@pytest.mark.parametrize("second", ["o", "./o", "link"])
def test_two_outputs_on_one_path_are_refused_before_any_work(second, work, capsys, monkeypatch):
    """--json o --report o (also ./o, or a link to o): exit 2, one line naming both options, nothing written."""
    monkeypatch.chdir(work)
    (work / "link").symlink_to(work / "o")
    code, out, err = run_cli(analyze_args(work, "--json", "o", "--report", second), capsys)
    one_error_line(code, out, err, "--output and --report both name")
    assert not (work / "o").exists()


def test_track_and_layers_refuse_two_outputs_on_one_path(work, capsys):
    code, out, err = run_cli(["track", work / "x.npy", work / "x.npy", "--json", work / "t", "--csv", work / "t"],
                             capsys)
    one_error_line(code, out, err, "--output and --csv both name")
    assert not (work / "t").exists()


def test_outputs_that_are_not_regular_files_are_refused(work, capsys):
    """A FIFO, a character device and a link to the process's stdout are refused, left as they were."""
    fifo = work / "fifo"
    os.mkfifo(fifo)
    null_link, stdout_link = work / "null", work / "stdout"
    null_link.symlink_to("/dev/null")
    stdout_link.symlink_to("/proc/self/fd/1")      # under pytest fd 1 is a deleted capture file
    for target, kind in ((fifo, "a FIFO"), ("/dev/null", "a character device"),
                         (null_link, "a character device (a link to /dev/null)"), (stdout_link, "(a link to")):
        code, out, err = run_cli(analyze_args(work, "--json", target), capsys)
        one_error_line(code, out, err, "exists and is", kind)
    assert fifo.is_fifo() and os.readlink(stdout_link) == "/proc/self/fd/1" and os.readlink(null_link) == "/dev/null"


def test_a_link_to_a_regular_file_is_written_through(work, capsys):
    """A symbolic link to a regular file keeps being a link; the file it points to gets the output."""
    (work / "real.json").write_text("old")
    (work / "alias.json").symlink_to(work / "real.json")
    code, _, err = run_cli(analyze_args(work, "--json", work / "alias.json"), capsys)
    assert code == 0, err
    assert (work / "alias.json").is_symlink()
    assert json.loads((work / "real.json").read_text())["meta"]["n_features"] == 6
    assert leftovers(work) == []


def test_a_250_character_file_name_is_written_and_a_300_character_one_refused(work, capsys):
    """The temporary name stays within NAME_MAX (255 bytes) for a 250-character output name."""
    long_name = work / ("a" * 245 + ".json")
    code, _, err = run_cli(analyze_args(work, "--json", long_name), capsys)
    assert code == 0, err
    assert json.loads(long_name.read_text())["meta"]["n_samples"] == 90
    assert leftovers(work) == []
    code, out, err = run_cli(analyze_args(work, "--json", work / ("b" * 296 + ".json")), capsys)
    one_error_line(code, out, err, "the file name is 301 bytes, longer than the 255")


def test_temporary_name_of_a_multibyte_name_stays_within_name_max(tmp_path):
    """A 84-character name of 3-byte characters (252 bytes): the write works and leaves one file."""
    target = tmp_path / ("é" * 20 + "漢" * 64)
    assert len(os.fsencode(target.name)) == 232
    _atomic.atomic_write_text(target, "ok")
    assert target.read_text() == "ok" and os.listdir(tmp_path) == [target.name]


# ---- operating-system errors while writing ----------------------------------------------------------------------
@pytest.mark.parametrize("step,error,reason", [
    ("fsync", errno.ENOSPC, "no space left on the device"),
    ("fsync", errno.EDQUOT, "disk quota exceeded"),
    ("replace", errno.EPERM, "only a file's owner may replace it"),
    ("mkstemp", errno.EACCES, "permission denied"),
    ("replace", errno.EROFS, "read-only"),
])
def test_os_errors_while_writing_are_one_line_and_keep_the_old_file(step, error, reason, work, capsys, monkeypatch):
    """The system call fails as the kernel would: exit 2, one line with the reason, old file kept, no temp."""
    out = work / "out.json"
    out.write_text("old results")

    def fail(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    target = {"fsync": (_atomic.os, "fsync"), "replace": (_atomic.os, "replace"),
              "mkstemp": (_atomic.tempfile, "mkstemp")}[step]
    monkeypatch.setattr(*target, fail)
    code, stdout, stderr = run_cli(analyze_args(work, "--json", out), capsys)
    one_error_line(code, stdout, stderr, "could not write the output", reason, "the previous file is unchanged")
    assert out.read_text() == "old results"
    assert leftovers(work) == []


def test_file_size_limit_efbig_in_a_real_process(work):
    """``ulimit -f`` 1 MiB (SIGXFSZ left at its default: geoprobe ignores it itself): the 5 MB report fails
    with EFBIG as one line and exit 2; the old report is kept and no temporary file is left."""
    report = work / "r.html"
    report.write_text("old report")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    run = subprocess.run([GEOPROBE, *map(str, analyze_args(work, "--report", report))], capture_output=True,
                         text=True, preexec_fn=limit, timeout=120)
    one_error_line(run.returncode, run.stdout, run.stderr, "file too large", "ulimit -f", "previous file is unchanged")
    assert report.read_text() == "old report"
    assert leftovers(work) == []


def test_read_only_folder_is_refused(work, capsys):
    locked = work / "locked"
    locked.mkdir(mode=0o555)
    if os.access(locked, os.W_OK):
        pytest.skip("running as root: a read-only folder is still writable here (EACCES is simulated above)")
    code, out, err = run_cli(analyze_args(work, "--json", locked / "o.json"), capsys)
    one_error_line(code, out, err, "not writable")


# ---- signals -------------------------------------------------------------------------------------------------------
def handlers_installed(pid):
    """Whether process ``pid`` catches SIGTERM yet (geoprobe's handlers are set once its imports are done)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def command_lines(work):
    """Writing commands of two kinds, each writing into its own output folder ``out<i>``."""
    def figures(i):
        return ["figures", work / "r.json", "-o", work / f"out{i}", "--format", "png"]

    def analyze(i):
        return [*analyze_args(work, "--json", work / f"out{i}" / "r.json", "--report", work / f"out{i}" / "r.html")]

    return [figures, figures, analyze]


@pytest.mark.skipif(not Path("/proc/self/status").exists() or GEOPROBE is None, reason="needs Linux /proc")
def test_sigterm_and_sigint_at_seeded_moments_leave_no_temporary_files(work):
    """Three real geoprobe processes, SIGTERM or SIGINT at seeded delays after their handlers are set:
    each ends with 143 or 130 and one line ('terminated', 'interrupted'), or 0 when it finished first
    (killed by the signal itself when it arrives in Python's last moments, which a shell reports as the
    same 143 or 130); never a traceback nor 'Exception ignored'; no temporary file; every figure written
    is complete."""
    rng = np.random.default_rng(16)
    signals = [signal.SIGTERM, signal.SIGINT, signal.SIGTERM]
    delays = rng.uniform(0.0, 3.0, len(signals))
    runs = []
    for i, make in enumerate(command_lines(work)):
        (work / f"out{i}").mkdir()
        runs.append(subprocess.Popen([GEOPROBE, *map(str, make(i))], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
    sent = _send_at(runs, signals, delays)
    for i, (run, signum) in enumerate(zip(runs, signals)):
        stdout, stderr = run.communicate(timeout=120)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
        if sent[i] and run.returncode != -signum:      # -signum: it came after Python reset its handlers at exit
            assert run.returncode == 128 + signum, (i, run.returncode, stderr)
            assert stderr.strip().splitlines()[-1] == ("interrupted" if signum == signal.SIGINT else "terminated")
        else:
            assert run.returncode == 0, stderr
        assert leftovers(work / f"out{i}") == []
        for png in (work / f"out{i}").glob("*.png"):
            assert png.read_bytes().endswith(PNG_END), png


def _send_at(runs, signals, delays):
    """Send each run its signal ``delay`` seconds after its handlers are set; whether it was still running."""
    ready, sent = [None] * len(runs), [None] * len(runs)
    deadline = time.monotonic() + 150
    while any(s is None for s in sent) and time.monotonic() < deadline:
        now = time.monotonic()
        for i, run in enumerate(runs):
            if sent[i] is not None:
                continue
            if run.poll() is not None:
                sent[i] = False
            elif ready[i] is None and handlers_installed(run.pid):
                ready[i] = now
            elif ready[i] is not None and now >= ready[i] + delays[i]:
                run.send_signal(signals[i])
                sent[i] = True
        time.sleep(0.005)
    return sent


@pytest.fixture
def raising_handlers():
    """geoprobe's signal handlers in this process for one test, then the previous ones again."""
    previous = {s: signal.getsignal(s) for s in (*_interrupts.HANDLED, signal.SIGXFSZ)}
    hook = sys.unraisablehook
    _interrupts.handle_signals()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    sys.unraisablehook = hook


def test_a_signal_inside_deferred_is_raised_at_its_end(raising_handlers):
    """SIGTERM while a temporary file is created is held back, then raised as Terminated (exit 143)."""
    steps = []
    with pytest.raises(_interrupts.Terminated) as info:
        with _interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("still running")
    assert steps == ["still running"]
    assert _interrupts.exit_status(info.value.signum) == 143 and _interrupts.received_signal() == signal.SIGTERM


def test_an_interrupt_swallowed_by_a_finaliser_is_delivered_again(raising_handlers):
    """Ctrl-C landing in a __del__ would print 'Exception ignored' and be lost; it is raised after it instead."""
    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))             # the handler runs here, inside __del__

    with pytest.raises(KeyboardInterrupt):
        Finaliser()
        time.sleep(1.0)                  # re-delivered within milliseconds: the sleep is interrupted
    assert _interrupts.received_signal() == signal.SIGINT


def test_interrupted_write_removes_its_temporary_file_and_keeps_the_old(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with _atomic.atomic_open(target) as handle:
            handle.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


# ---- crafted or broken JSON -------------------------------------------------------------------------------------
def crafted(work):
    """name -> (JSON text, words the error line must hold: the JSON path of the problem)."""
    good = json.loads((work / "r.json").read_text())

    def edit(change):
        data = json.loads(json.dumps(good))
        change(data)
        return json.dumps(data)

    return {
        "results is a list": ('{"results": []}', ["results: expected an object, got a list"]),
        "top level is a list": ("[1, 2]", ["(top level): expected an object, got a list"]),
        "no results": ('{"meta": {}}', ["no 'results' key"]),
        "string for a number": (edit(lambda d: d["results"]["spectrum"]["scalars"].update(effective_rank="abc")),
                                ['results.spectrum.scalars.effective_rank: expected a number or null, got "abc"']),
        "missing analyzer": (edit(lambda d: d["results"]["knn"].pop("analyzer")),
                             ["results.knn: missing the required key 'analyzer'"]),
        "ragged matrix": (edit(lambda d: d["results"]["orthogonality"]["arrays"]["class_mean_cosine"][1].pop()),
                          ["results.orthogonality.arrays.class_mean_cosine: rows of different lengths"]),
        "string in an array": (edit(lambda d: d["results"]["spectrum"]["arrays"]["covariance_eigenvalues"]
                                    .__setitem__(2, "1e3")),
                               ["results.spectrum.arrays.covariance_eigenvalues[2]: expected a number or null"]),
        "label code far too large": (edit(lambda d: d["results"]["contrastive"]["arrays"]["sample_labels"]
                                          .__setitem__(0, 10**12)),
                                     ["results.contrastive.arrays.sample_labels[0]: expected an integer code"]),
        "histogram length": (edit(lambda d: d["results"]["contrastive"]["arrays"]["cosine_hist_all"].pop()),
                             ["results.contrastive.arrays.cosine_hist_all: expected 200 entries"]),
        "bool as a finding value": (edit(lambda d: d["findings"][0].update(value=True)),
                                    ["findings[0].value: expected a number or null, got true"]),
        "class name an object": (edit(lambda d: d["meta"].update(classes=[{"a": 1}])),
                                 ["meta.classes[0]: expected a class name, got an object"]),
        "100,000-deep nesting": ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
        "not JSON": ("{'results': 1}", ["not a geometry-probe JSON"]),
        "trajectory of ints": ('{"checkpoints": [1, 2, 3]}', ["checkpoints[0]: expected an object, got 1"]),
        "empty trajectory": ('{"checkpoints": []}', ["checkpoints: expected at least one checkpoint"]),
        "step is a string": ('{"checkpoints": [{"step": "7", "scalars": {}}]}',
                             ['checkpoints[0].step: expected an integer, got "7"']),
        "scalar is a list": ('{"checkpoints": [{"step": 7, "scalars": {"spectrum/rankme": [1]}}]}',
                             ['checkpoints[0].scalars["spectrum/rankme"]: expected a number or null, got a list']),
    }


@pytest.mark.parametrize("command", ["figures", "report"])
def test_crafted_json_is_one_line_naming_the_json_path(command, work, capsys):
    """Every crafted file: exit 2, one line with the file name and the JSON path; no figure or report written."""
    for name, (text, words) in crafted(work).items():
        source = work / "crafted.json"
        source.write_text(text)
        out = work / "out"
        args = [command, source, "-o", out if command == "figures" else work / "out.html"]
        code, stdout, stderr = run_cli(args, capsys)
        if command == "report" and text.startswith('{"checkpoints"'):
            words = ["no 'results' key: not a results JSON (a trajectory: it has 'checkpoints')"]
        one_error_line(code, stdout, stderr, "crafted.json: ", *words)
        assert not out.exists() and not (work / "out.html").exists(), name


def test_a_json_file_over_the_size_limit_is_refused_unread(work, capsys):
    big = work / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(65 * 2**20)          # sparse: 65 MiB of zeros, never read
    code, out, err = run_cli(["figures", big, "-o", work / "figs"], capsys)
    one_error_line(code, out, err, "68,157,440 bytes, more than the 67,108,864")


def test_every_figure_the_library_writes_passes_the_schema(work):
    """The schema accepts what the library writes: all analyzers with labels, and a 2-D map."""
    emb = gp.Embeddings(X, labels=Y)
    results = gp.analyze(emb, device="cpu")
    results = gp.Results([*results.values(), gp.project(emb, "pca").to_result()], meta=results.meta,
                         findings=results.findings)
    results.to_json(work / "all.json")
    loaded = gp.Results.from_json(work / "all.json")
    assert sorted(loaded) == sorted(results) and loaded.scalars() == pytest.approx(results.scalars(), nan_ok=True)


# ---- label text drawn literally ---------------------------------------------------------------------------------
@pytest.fixture
def nasty_results(work):
    data = json.loads((work / "r.json").read_text())
    data["meta"]["classes"] = NASTY_NAMES[:3]
    path = work / "nasty.json"
    path.write_text(json.dumps(data))
    return path


def test_mathtext_like_class_names_are_drawn_literally(nasty_results, work, capsys):
    """`figures` writes every figure; the SVG holds the class names as written (no mathtext parsing)."""
    code, _, err = run_cli(["figures", nasty_results, "-o", work / "figs", "--format", "svg"], capsys)
    assert code == 0 and err == "", err
    written = sorted(p.name for p in (work / "figs").iterdir())
    assert written == sorted(f"{n}.svg" for n in ("spectrum", "cosine_histogram", "k_occurrence",
                                                  "class_mean_cosine", "simo", "sample_cosine", "verdicts"))
    heatmap = (work / "figs" / "class_mean_cosine.svg").read_text()
    assert r"$\undefinedcmd$" in heatmap and "$x_{1" in heatmap and "50%_$" in heatmap


def test_static_report_with_mathtext_like_names(nasty_results, work, capsys):
    code, _, err = run_cli(["report", nasty_results, "-o", work / "r.html", "--static"], capsys)
    assert code == 0, err
    assert r"$\undefinedcmd$" in (work / "r.html").read_text()


def test_names_with_newlines_and_long_names_are_escaped_and_cut():
    """The class-mean heatmap's tick labels as drawn (SVG text): mathtext-like names as written, control
    characters escaped, cut at ``figure_style.TICK_CHARACTERS`` characters; our own log-scale tick labels still render as math."""
    C = len(NASTY_NAMES)
    result = gp.Result("orthogonality", {}, arrays={"class_mean_cosine": np.eye(C)})
    fig = static.plot_class_cosine(gp.Results([result], meta={"classes": NASTY_NAMES}), ordered=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # no layout collapse, no parse error
        svg = static.render(fig, "svg").decode()
    from geometry_probe.reporting.figure_style import TICK_CHARACTERS as LABEL_CHARACTERS

    for drawn in (r"$\undefinedcmd$", "$x_{1", "50%_$", r"two\nlines", "L" * (LABEL_CHARACTERS - 3) + "..."):
        assert f">{drawn}</text>" in svg, drawn
    assert "L" * (LABEL_CHARACTERS - 2) not in svg


def test_layer_sweep_figure_draws_layer_names_literally(tmp_path):
    """Module names such as `$\\undefinedcmd$` (any string a model may use) label the layer sweep as written."""
    from geometry_probe.reporting.layer_sweep_figure import plot_layer_sweep, save_figure

    rows = [{"layer": r"$\undefinedcmd$", "odd/$x_{1": 1.0}, {"layer": "blocks.0\n$", "odd/$x_{1": 2.0}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_figure(plot_layer_sweep(rows, ["odd/$x_{1"]), tmp_path / "sweep.svg")
    svg = (tmp_path / "sweep.svg").read_text()
    assert all(f">{drawn}</text>" in svg for drawn in (r"$\undefinedcmd$", r"blocks.0\n$", "odd/$x_{1"))
    assert os.listdir(tmp_path) == ["sweep.svg"]


def test_log_axis_tick_labels_keep_their_mathtext(work):
    """The spectrum's log axis is labelled by matplotlib in mathtext (10^0): drawn as math, not as characters."""
    fig = static.plot_spectrum(gp.Results.from_json(work / "r.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svg = static.render(fig, "svg").decode()
    assert r"<!-- $\mathdefault{10^{0}}$ -->" in svg          # the SVG backend's note on a math text
    assert r"$\mathdefault{10^{0}}$</text>" not in svg         # never drawn as literal characters


def test_findings_with_null_baseline_and_threshold_are_drawn(work, capsys):
    """NaN is saved as null: a finding whose baseline and fail threshold are null still gets its bar."""
    data = json.loads((work / "r.json").read_text())
    data["findings"] = [{"name": "over_fusion", "verdict": "ok", "value": 0.25, "baseline": None,
                         "threshold": {"warn": None, "fail": None}}]
    (work / "null.json").write_text(json.dumps(data))
    code, _, err = run_cli(["figures", work / "null.json", "-o", work / "figs", "--format", "png"], capsys)
    assert code == 0, err
    assert (work / "figs" / "verdicts.png").read_bytes().endswith(PNG_END)


def test_report_of_findings_with_only_the_required_keys(work, capsys):
    """A finding holding just `name` and `verdict` (the schema's required keys) is reported, value 'nan'."""
    data = json.loads((work / "r.json").read_text())
    data["findings"] = [{"name": "custom", "verdict": "warn"}]
    (work / "minimal.json").write_text(json.dumps(data))
    code, _, err = run_cli(["report", work / "minimal.json", "-o", work / "r.html", "--static"], capsys)
    assert code == 0, err
    assert '<td>custom</td><td class="verdict warn">warn</td>\n<td>nan</td>' in (work / "r.html").read_text()


def test_a_figure_that_fails_to_draw_writes_nothing(work, monkeypatch):
    """All figures are drawn before the first is written: a failure in the last leaves the folder empty."""
    def broken(results, **options):
        raise RuntimeError("cannot draw")

    monkeypatch.setitem(static.FIGURES, "verdicts", broken)
    (work / "figs").mkdir()
    loaded = gp.Results.from_json(work / "r.json")
    spectrum_and_verdicts = gp.Results([loaded["spectrum"]], meta=loaded.meta, findings=loaded.findings)
    with pytest.raises(RuntimeError, match="cannot draw"):
        static.write_figures(spectrum_and_verdicts, work / "figs", fmt="png")
    assert list((work / "figs").iterdir()) == []


# ---- monitor and wide spectra -----------------------------------------------------------------------------------
def test_monitor_alerts_on_a_width_change_and_restarts_the_window():
    """Width 16 for two batches then 8: a width_change alert at step 3 naming 16 and 8, a RuntimeWarning,
    and the first snapshot covers the two 32-row batches of width 8 only (64 rows)."""
    g = torch.Generator().manual_seed(0)
    monitor = CollapseMonitor(every_n_steps=4, overhead_budget=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(4):
            monitor.update(torch.randn(32, 16 if step < 2 else 8, generator=g))
    alert = monitor.alerts[0]
    assert (alert["name"], alert["step"], alert["previous_width"], alert["value"]) == ("width_change", 3, 16, 8.0)
    assert "from 16 to 8 at step 3" in alert["message"]
    assert [str(w.message) for w in caught if w.category is RuntimeWarning] == [f"CollapseMonitor: {alert['message']}"]
    assert monitor.history[0]["scalars"]["window/n_samples"] == 64.0


def test_monitor_width_change_between_windows_is_not_an_alert():
    monitor = CollapseMonitor(every_n_steps=2, overhead_budget=None, on_collapse="ignore")
    for width in (16, 16, 8, 8):
        monitor.update(torch.randn(32, width))
    assert monitor.alerts == [] and [h["scalars"]["window/n_samples"] for h in monitor.history] == [64.0, 64.0]


@pytest.mark.parametrize("n,D", [(40, 12), (12, 40)])
def test_isotropic_spectrum_matches_simulated_gaussians(n, D):
    """Mean normalised eigenvalues over 400 seeds against 400 explicitly drawn centred Gaussians (NumPy
    covariance eigensolves), within 5 standard errors of the difference for every rank."""
    drawn = np.array([np.sort(np.linalg.eigvalsh(np.cov(np.random.default_rng(s).standard_normal((n, D)),
                                                        rowvar=False)))[::-1] for s in range(400)])
    drawn /= drawn.sum(1, keepdims=True)
    sampled = np.array([isotropic_spectrum(n, D, 1.0, seed=1000 + s) for s in range(400)])
    error = np.sqrt(drawn.var(0) / 400 + sampled.var(0) / 400) + 1e-12
    assert np.all(np.abs(drawn.mean(0) - sampled.mean(0)) < 5 * error)
    assert np.count_nonzero(sampled[0]) == min(n - 1, D)


def test_isotropic_spectrum_of_200000_features_is_fast():
    start = time.perf_counter()
    spectrum = isotropic_spectrum(4, 200_000, 6.0)
    assert time.perf_counter() - start < 2.0
    assert spectrum.shape == (200_000,) and np.count_nonzero(spectrum) == 3 and spectrum.sum() == pytest.approx(6.0)


@pytest.mark.parametrize(("signum", "status", "line"), [(signal.SIGINT, 130, "interrupted"),
                                                        (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_start_up_ends_with_one_line(tmp_path, signum, status, line):
    """0.3 s in, torch is still being imported: the handlers are already in place (import geometry_probe is lazy)."""
    process = subprocess.Popen(["geoprobe", "demo", "--json", str(tmp_path / "d.json")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    process.send_signal(signum)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == status
    assert stderr == f"{line}\n"
    assert list(tmp_path.iterdir()) == []


def test_importing_the_package_loads_neither_torch_nor_numpy():
    code = "import sys, geometry_probe; print('torch' in sys.modules, 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["False"] * 2
