"""`geoprobe compare`, `geoprobe layers --compare`, the CKA heatmaps and the compare section of the
HTML report: values checked against naive float64 CKA written here, bad input gives exit 2 and one line."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import geometry_probe as gp
from geometry_probe.reporting.compare_figures import interactive_heatmap, static_heatmap

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402
from _cli import run_cli  # noqa: E402

MODELS = Path(__file__).parent / "_models.py"
MODEL, DATA = f"{MODELS}:make_model", f"{MODELS}:make_data"


def naive_linear_cka(A, B):
    A, B = A - A.mean(0), B - B.mean(0)
    return np.sum((A.T @ B) ** 2) / (np.linalg.norm(A.T @ A) * np.linalg.norm(B.T @ B))


@pytest.fixture
def cli(capsys):
    """``cli(*args)`` -> (exit code, stdout, stderr) through the real entry point (tests/_cli.py)."""
    return lambda *args: run_cli(args, capsys)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 8)).astype(np.float32)
    arrays = {"a": A, "b": (A @ rng.standard_normal((8, 8)) + rng.standard_normal((200, 8))).astype(np.float32),
              "ckpt_2": (A + 2 * rng.standard_normal((200, 8))).astype(np.float32), "ckpt_10": A[:, :3].copy(),
              "ckpt_1": A}
    for name, X in arrays.items():
        np.save(tmp_path / f"{name}.npy", X)
    return tmp_path, {k: v.astype(np.float64) for k, v in arrays.items()}


def test_compare_two_files_prints_and_writes_json(cli, files):
    folder, arrays = files
    code, stdout, stderr = cli("compare", folder / "a.npy", folder / "b.npy", "--paired", "--json", folder / "r.json")
    assert (code, stderr) == (0, "")
    assert "linear_cka" in stdout and "recall_at_10_b_to_a_gap_removed" in stdout
    saved = gp.Results.from_json(folder / "r.json")
    assert saved.scalars()["compare/linear_cka"] == pytest.approx(naive_linear_cka(arrays["a"], arrays["b"]), abs=1e-9)
    assert saved.meta["a"]["name"] == "a.npy" and saved.meta["paired"] is True


def test_compare_matrix_orders_checkpoints_by_step_and_draws_heatmaps(cli, files):
    folder, arrays = files
    paths = [folder / f"ckpt_{s}.npy" for s in (10, 1, 2)]           # shell order, not step order
    code, _, stderr = cli("compare", *paths, "--matrix", "--json", folder / "m.json", "--figure", folder / "m.pdf")
    assert (code, stderr) == (0, "")
    data = json.loads((folder / "m.json").read_text())
    assert data["names"] == ["ckpt_1.npy", "ckpt_2.npy", "ckpt_10.npy"]
    order = [arrays["ckpt_1"], arrays["ckpt_2"], arrays["ckpt_10"]]
    expected = [[naive_linear_cka(x, y) for y in order] for x in order]
    np.testing.assert_allclose(data["values"], expected, atol=1e-9)
    assert (folder / "m.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("args, message", [
    (("a.npy",), "give exactly two"),
    (("a.npy", "ckpt_10.npy"), "rows must describe"),
    (("a.npy", "ckpt_10.npy", "--paired"), "rows must describe"),
    (("a.npy", "b.npy", "--figure", "x.png"), "add --matrix"),
    (("a.npy", "b.npy", "--matrix", "--figure", "x.gif"), "must end in one of"),
    (("a.npy", "missing.npy"), "missing.npy"),
])
def test_bad_compare_input_exits_2_with_one_line(cli, files, monkeypatch, args, message):
    folder, arrays = files
    np.save(folder / "ckpt_10.npy", arrays["a"][:50])
    monkeypatch.chdir(folder)
    code, _, stderr = cli("compare", *args)
    assert code == 2
    assert stderr.count("\n") == 1 and message in stderr


def test_paired_needs_the_same_width(cli, files, monkeypatch):
    folder, arrays = files
    np.save(folder / "narrow.npy", arrays["a"][:, :4])
    monkeypatch.chdir(folder)
    code, _, stderr = cli("compare", "a.npy", "narrow.npy", "--paired")
    assert code == 2 and "same D" in stderr and stderr.count("\n") == 1


def test_layers_compare_gives_the_layer_by_layer_cka(cli, tmp_path):
    torch.manual_seed(0)
    code, _, stderr = cli("layers", "--model", MODEL, "--data", DATA, "--all-layers", "Linear", "--compare",
                               "--compare-figure", tmp_path / "c.png", "--json", tmp_path / "s.json", "--device", "cpu")
    assert (code, stderr) == (0, "")
    sweep = json.loads((tmp_path / "s.json").read_text())
    assert sweep["cka"]["names"] == ["encoder.0", "encoder.2", "head"]
    model = _models.make_model()
    X, _ = _models.make_tensors()
    model.eval()
    with torch.no_grad():
        first = model.encoder[0](X).double().numpy()
        head = model(X).double().numpy()
    assert sweep["cka"]["values"][0][2] == pytest.approx(naive_linear_cka(first, head), abs=1e-6)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    code, _, stderr = cli("layers", "--model", MODEL, "--data", DATA, "--all-layers", "Linear",
                          "--compare-figure", tmp_path / "c.png")
    assert code == 2 and "add --compare" in stderr


def test_heatmaps_draw_user_names_literally_and_escape_them_in_html():
    m = gp.CkaMatrix(["$x_1$", "<script>alert(1)</script>"], np.array([[1.0, 0.25], [0.25, 1.0]]),
                     {"kind": "layers", "n_samples": 10})
    fig = static_heatmap(m)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [r"\$x_1\$", "<script>alert(1)</script>"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.00", "0.25", "0.25", "1.00"]
    trace = interactive_heatmap(m).data[0]
    assert list(trace.x) == ["$x_1$", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert trace.z[0][1] == 0.25


def test_html_report_has_the_compare_section_and_escaped_heatmaps(tmp_path):
    from geometry_probe.reporting.html_report import write_report

    rng = np.random.default_rng(1)
    A = rng.standard_normal((60, 5))
    results = gp.compare(A, A @ rng.standard_normal((5, 4)), knn_k=None, device="cpu", names=("<b>a</b>", "b"))
    matrix = gp.CkaMatrix(["<script>x</script>", "ok"], np.array([[1.0, 0.5], [0.5, 1.0]]),
                          {"kind": "layers", "n_samples": 60})
    page = write_report(results, tmp_path / "r.html", interactive=False, cka=[matrix]).read_text()
    assert '<section id="compare">' in page and "linear_cka" in page and "5 | 4" in page
    assert '<section id="cka-0" class="cka">' in page and "linear CKA between layers (N = 60)" in page
    assert "<b>a</b>" not in page and "&lt;b&gt;a&lt;/b&gt;" in page
    assert "<script>x</script>" not in page
