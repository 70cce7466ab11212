"""Hostile and unusual inputs end in a correct result or one clear line (issue 16, input side).

Every file is generated here (seeded) in ``tmp_path``. Expected values come from outside the
code under test: a converted input must give exactly what the same values give in plain
native float64; dequantized values are ``q.dequantize()``; sizes in messages are products of
shapes worked by hand. Each CLI case asserts exit 2, exactly one line on stderr and no
traceback. Memory is measured with ``tracemalloc`` (NumPy and Python buffers are traced).
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import socket
import sys
import tempfile
import tracemalloc
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import geometry_probe as gp
import geometry_probe._validation as validation
from geometry_probe.checkpoints import load_checkpoint
from geometry_probe.classifier import load_classifier
from geometry_probe.exceptions import (
    AmbiguousKeyError,
    CorruptFileError,
    GeometryProbeError,
    InputFileError,
    InputTooLargeError,
    InvalidEmbeddingsError,
    InvalidLabelsError,
    UnsafeFileError,
)
from geometry_probe.io import load_labels

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402
from _cli import run_cli  # noqa: E402

MODEL, DATA = f"{Path(__file__).parent / '_models.py'}:make_model", f"{Path(__file__).parent / '_models.py'}:make_data"
ANALYZERS = "spectrum,neural_collapse"
MiB = 2**20


@pytest.fixture(scope="module")
def data():
    """120 × 6 float64 with 3 classes (native order), the reference for every conversion."""
    rng = np.random.default_rng(16)
    y = np.arange(120) % 3
    X = rng.normal(size=(3, 6))[y] * 2 + rng.normal(size=(120, 6))
    return X, y


def scalars(X, y=None):
    return gp.analyze(X, labels=y, analyzers=ANALYZERS.split(",") if y is not None else ["spectrum"]).scalars()


def assert_same_scalars(got, expected):
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12, nan_ok=True), name


def cli_fails_in_one_line(capsys, *args):
    code, _, err = run_cli(args, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


@contextmanager
def deadline(seconds=10):
    """Fail instead of hanging forever (a FIFO read blocks without a writer)."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def traced_peak():
    """Yield a one-item list that receives the traced peak (bytes) on exit."""
    peak = [0]
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# --- one conversion layer ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4"])
def test_big_endian_arrays_give_the_native_result(data, dtype):
    X, y = data
    native = X.astype(np.dtype(dtype).newbyteorder("="))
    assert_same_scalars(scalars(X.astype(dtype), y), scalars(native, y))


def test_big_endian_memory_map_is_converted_batch_by_batch(data, tmp_path, monkeypatch):
    X, y = data
    np.save(tmp_path / "be.npy", X.astype(">f8"))
    monkeypatch.setattr(validation, "DENSE_BUDGET_BYTES", 1024)  # "big": kept mapped, converted per batch
    emb = gp.load(tmp_path / "be.npy", labels=y)
    assert isinstance(emb.X, np.memmap) and emb.X.dtype == np.dtype(">f8")
    got = gp.analyze(emb, analyzers=ANALYZERS.split(","), batch_size=7).scalars()
    assert_same_scalars(got, scalars(X, y))


def test_big_endian_file_through_the_cli(data, tmp_path, capsys):
    X, y = data
    np.save(tmp_path / "be.npy", X.astype(">f4"))
    np.save(tmp_path / "y.npy", y)
    code, _, err = run_cli(["analyze", tmp_path / "be.npy", "--labels", tmp_path / "y.npy", "--analyzers", ANALYZERS,
                            "--json", tmp_path / "r.json", "--quiet"], capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "r.json").read_text())["scalars"]
    expected = scalars(X.astype("<f4"), y)
    assert_same_scalars({k: np.nan if saved[k] is None else saved[k] for k in expected}, expected)  # NaN → null


def test_long_double_is_narrowed_to_float64(data):
    X, y = data
    assert_same_scalars(scalars(X.astype(np.longdouble), y), scalars(X, y))


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="long double is float64 here")
def test_long_double_beyond_float64_names_the_row(data):
    X = data[0].astype(np.longdouble)
    X[7, 2] = np.longdouble(10) ** 400
    with pytest.raises(InvalidEmbeddingsError, match=r"float64's range .* rows 7"):
        gp.Embeddings(X)


def test_tensors_that_require_grad_are_detached(data, tmp_path, capsys):
    X, y = data
    emb = gp.Embeddings(torch.tensor(X).requires_grad_(), labels=y)
    assert not emb.X.requires_grad
    assert_same_scalars(scalars(torch.tensor(X).requires_grad_(), y), scalars(X, y))
    torch.save(torch.nn.Parameter(torch.tensor(X)), tmp_path / "param.pt")
    assert_same_scalars(gp.analyze(gp.load(tmp_path / "param.pt"), analyzers=["spectrum"]).scalars(), scalars(X))
    code, _, err = run_cli(["analyze", tmp_path / "param.pt", "--analyzers", "spectrum", "--quiet"], capsys)
    assert (code, err) == (0, "")


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_tensors_are_densified(data, layout):
    X, y = data
    T = torch.tensor(X).to_sparse() if layout == "coo" else torch.tensor(X).to_sparse_csr()
    assert_same_scalars(scalars(T, y), scalars(X, y))


def test_sparse_tensor_beyond_the_budget_is_refused_with_its_size(monkeypatch):
    monkeypatch.setattr(validation, "DENSE_BUDGET_BYTES", 10 * MiB)
    big = torch.sparse_coo_tensor(torch.tensor([[0, 9999], [0, 999]]), torch.ones(2), size=(10000, 1000))
    with pytest.raises(InputTooLargeError, match=r"\(10000, 1000\) would take 38\.1 MiB"):  # 10^7 × 4 bytes
        gp.Embeddings(big)


def test_quantized_tensors_are_dequantized(data, tmp_path):
    X, _ = data
    q = torch.quantize_per_tensor(torch.tensor(X, dtype=torch.float32), 0.05, 0, torch.qint8)
    assert torch.equal(gp.Embeddings(q).X, q.dequantize())
    torch.save({"x": q}, tmp_path / "q.pt")
    assert torch.equal(gp.load(tmp_path / "q.pt").X, q.dequantize())


def test_regular_nested_tensor_is_stacked_and_ragged_refused(data):
    X, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        regular = torch.nested.nested_tensor([torch.tensor(row) for row in X])
        ragged = torch.nested.nested_tensor([torch.zeros(3), torch.zeros(4)])
    assert torch.equal(gp.Embeddings(regular).X, torch.tensor(X))
    with pytest.raises(InvalidEmbeddingsError, match="ragged nested tensor"):
        gp.Embeddings(ragged)


@pytest.mark.parametrize("values, match", [
    (torch.empty(10, 3, device="meta"), "meta tensor"),
    (torch.zeros(10, 3, dtype=torch.complex64), "complex"),
    (np.zeros((10, 3), dtype=np.complex128), "complex"),
    (np.zeros((10, 3), dtype=object), "Python-object"),
    (np.zeros((10, 3), dtype="U3"), "text is not numeric"),
    (np.zeros((10, 3), dtype="S3"), "bytes are not numeric"),
    (np.zeros((10, 3), dtype="datetime64[s]"), "dates"),
    (np.zeros(10, dtype=[("a", "f4"), ("b", "f4")]), "structured"),
    (np.ma.masked_array(np.zeros((10, 3)), mask=np.eye(10, 3, dtype=bool)), "masked"),
])
def test_values_that_are_not_real_numbers_are_refused(values, match):
    with pytest.raises(InvalidEmbeddingsError, match=match):
        gp.analyze(values)


def test_stride_zero_classifier_is_refused_before_materialising(tmp_path, capsys):
    torch.save({"weight": torch.zeros(1, 1024).expand(10**7, 1024)}, tmp_path / "head.pt")  # 76.3 GiB in float64
    assert (tmp_path / "head.pt").stat().st_size < 100_000
    with traced_peak() as peak, pytest.raises(InputTooLargeError, match=r"\(10000000, 1024\) would take 76\.3 GiB"):
        load_classifier(tmp_path / "head.pt")
    assert peak[0] < 10 * MiB
    np.save(tmp_path / "e.npy", np.eye(20, 1024))
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    err = cli_fails_in_one_line(capsys, "analyze", tmp_path / "e.npy", "--labels", tmp_path / "y.npy",
                                "--analyzers", "neural_collapse", "--classifier", tmp_path / "head.pt")
    assert "76.3 GiB" in err


def test_stride_zero_embeddings_are_read_without_copying_whole(data):
    column = torch.tensor(data[0][:, :1])
    expanded = column.expand(120, 6)                            # six equal columns: rank 1, effective rank 1
    assert expanded.stride() == (1, 0)
    assert gp.analyze(expanded, analyzers=["spectrum"]).scalars()["spectrum/effective_rank"] == pytest.approx(1.0)


# --- loaders touch only what was asked for ---------------------------------------------------


def write_npz_bomb(path, *, unused_bytes, small):
    """An .npz with a small member and an unused all-zero member of ``unused_bytes`` (deflated)."""
    rows = unused_bytes // (8 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array(member, small)
        with archive.open("big.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False,
                                                          "shape": (rows, 1024)})
            zeros = bytes(8 * MiB)
            for _ in range(unused_bytes // len(zeros)):
                member.write(zeros)


@pytest.fixture(scope="module")
def npz_bomb(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    write_npz_bomb(path, unused_bytes=128 * MiB, small=data[0])
    return path


def test_npz_unused_member_is_never_inflated(npz_bomb, data, capsys):
    assert npz_bomb.stat().st_size < MiB
    with traced_peak() as peak:
        emb = gp.load(npz_bomb, key="x")
    assert np.array_equal(emb.X, data[0])
    assert peak[0] < 2 * MiB                  # the unused member inflates to 128 MiB
    with pytest.raises(AmbiguousKeyError, match=r"'big' \(16384, 1024\)"):
        gp.load(npz_bomb)


def test_npz_member_beyond_available_memory_is_refused_from_its_header(npz_bomb, monkeypatch, capsys):
    monkeypatch.setattr(gp.io, "available_memory_bytes", lambda: 64 * MiB)
    with traced_peak() as peak, pytest.raises(InputTooLargeError, match=r"'big' declares 128\.0 MiB"):
        gp.load(npz_bomb, key="big")
    assert peak[0] < 2 * MiB
    cli_fails_in_one_line(capsys, "analyze", npz_bomb, "--key", "big")


def test_stored_npz_members_are_memory_mapped_and_compressed_ones_inflated(data, tmp_path):
    X, y = data
    np.savez(tmp_path / "stored.npz", x=X, f=np.asfortranarray(X), labels=y)
    np.savez_compressed(tmp_path / "packed.npz", x=X)
    for key in ("x", "f"):
        emb = gp.load(tmp_path / "stored.npz", key=key, labels="labels")
        assert isinstance(emb.X, np.memmap) and np.array_equal(emb.X, X) and np.array_equal(emb.labels, y)
    assert type(gp.load(tmp_path / "stored.npz", key="x", mmap=False).X) is np.ndarray
    packed = gp.load(tmp_path / "packed.npz")
    assert type(packed.X) is np.ndarray and np.array_equal(packed.X, X)


def test_npz_member_whose_header_disagrees_with_the_archive_is_corrupt(tmp_path):
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as archive, archive.open("x.npy", "w") as member:
        np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 100)})
        member.write(bytes(800))
    with pytest.raises(CorruptFileError, match=r"declares 762\.9 MiB .* holds 800 B"):
        gp.load(tmp_path / "lie.npz", key="x")


def test_random_bytes_as_npz_are_not_reported_as_pickle(tmp_path, capsys):
    (tmp_path / "r.npz").write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(CorruptFileError, match=r"not a valid \.npz/zip archive"):
        gp.load(tmp_path / "r.npz")
    err = cli_fails_in_one_line(capsys, "analyze", tmp_path / "r.npz")
    assert "pickle" not in err


def test_member_lists_in_messages_are_capped(tmp_path, capsys):
    np.savez(tmp_path / "many.npz", **{f"layer_{i}": np.zeros((2, 2)) for i in range(2000)})
    for key in (None, "absent"):
        with pytest.raises(AmbiguousKeyError) as info:
            gp.load(tmp_path / "many.npz", key=key)
        assert "and 1995 more" in str(info.value) and len(str(info.value)) < 200
    err = cli_fails_in_one_line(capsys, "analyze", tmp_path / "many.npz")
    assert len(err) < 200


@pytest.fixture
def h5_files(tmp_path, data):
    X = data[0]
    with h5py.File(tmp_path / "fill.h5", "w") as handle:
        handle.create_dataset("unused", shape=(2**17, 2**12), dtype="f8", fillvalue=1.0)  # 4 GiB if read
        handle["x"] = X
    X.tofile(tmp_path / "raw.bin")
    with h5py.File(tmp_path / "external.h5", "w") as handle:
        handle.create_dataset("x", shape=X.shape, dtype="f8", external=[(str(tmp_path / "raw.bin"), 0, X.nbytes)])
    os.mkfifo(tmp_path / "pipe.bin")
    with h5py.File(tmp_path / "external_fifo.h5", "w") as handle:
        handle.create_dataset("x", shape=X.shape, dtype="f8", external=[(str(tmp_path / "pipe.bin"), 0, X.nbytes)])
    layout = h5py.VirtualLayout(shape=X.shape, dtype="f8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "missing.h5"), "d", shape=X.shape)
    with h5py.File(tmp_path / "virtual.h5", "w") as handle:
        handle.create_virtual_dataset("x", layout, fillvalue=0)
    return tmp_path


def test_h5_reads_only_the_chosen_dataset(h5_files, data):
    assert (h5_files / "fill.h5").stat().st_size < 100_000
    with traced_peak() as peak:
        emb = gp.load(h5_files / "fill.h5", key="x")
    assert np.array_equal(emb.X, data[0]) and peak[0] < 2 * MiB


@pytest.mark.parametrize("name, match", [("external.h5", "external file"), ("external_fifo.h5", "external file"),
                                         ("virtual.h5", "virtual dataset")])
def test_h5_storage_outside_the_file_is_refused(h5_files, capsys, name, match):
    with deadline(), pytest.raises(UnsafeFileError, match=match):
        gp.load(h5_files / name)
    with deadline():
        cli_fails_in_one_line(capsys, "analyze", h5_files / name)


@pytest.fixture
def special_files(tmp_path):
    os.mkfifo(tmp_path / "fifo.npy")
    os.mkfifo(tmp_path / "fifo.csv")
    os.mkfifo(tmp_path / "fifo.pt")
    folder = Path(tempfile.mkdtemp(prefix="gp"))                     # AF_UNIX paths must stay short
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "s.npy"))
    (tmp_path / "dir.npy").mkdir()
    yield {"FIFO": tmp_path / "fifo.npy", "FIFO csv": tmp_path / "fifo.csv", "FIFO pt": tmp_path / "fifo.pt",
           "character device": Path(os.devnull), "socket": folder / "s.npy", "directory": tmp_path / "dir.npy"}
    server.close()


KINDS = {"FIFO": "FIFO", "FIFO csv": "FIFO", "FIFO pt": "FIFO", "character device": "character device",
         "socket": "socket", "directory": "directory"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_non_regular_files_are_refused_before_any_read(special_files, data, kind):
    path = special_files[kind]
    loaders = [gp.load, load_labels, load_classifier, lambda p: load_checkpoint(_models.make_model(), p),
               lambda p: gp.load(special_files["directory"].parent / "e.npy", labels=p)]
    np.save(special_files["directory"].parent / "e.npy", data[0])
    for loader in loaders:
        with deadline(), pytest.raises(InputFileError, match=KINDS[kind]):
            loader(path)


@pytest.mark.parametrize("option", ["embeddings", "--labels", "--classifier", "--checkpoint"])
def test_fifo_never_hangs_the_cli(special_files, data, tmp_path, capsys, option):
    fifo = special_files["FIFO"]
    np.save(tmp_path / "e.npy", data[0])
    args = {"embeddings": ["analyze", fifo], "--labels": ["analyze", tmp_path / "e.npy", "--labels", fifo],
            "--classifier": ["analyze", tmp_path / "e.npy", "--labels", tmp_path / "e.npy", "--classifier", fifo],
            "--checkpoint": ["extract", "--model", MODEL, "--data", DATA, "--checkpoint", fifo, "--layer", "head",
                             "-o", tmp_path / "o.npz"]}[option]
    with deadline():
        err = cli_fails_in_one_line(capsys, *args)
    assert "FIFO" in err


def test_self_referencing_dict_in_pt(data, tmp_path):
    X = data[0]
    state = {"x": torch.tensor(X)}
    state["self"] = state
    torch.save(state, tmp_path / "loop.pt")
    assert torch.equal(gp.load(tmp_path / "loop.pt").X, torch.tensor(X))


def test_deeply_nested_dicts_in_pt_are_bounded(data, tmp_path):
    nested = inner = {}
    for _ in range(200):
        inner["a"] = {}
        inner = inner["a"]
    inner["deep"] = torch.zeros(4, 4)
    torch.save({"x": torch.tensor(data[0]), "tree": nested}, tmp_path / "deep.pt")
    assert torch.equal(gp.load(tmp_path / "deep.pt").X, torch.tensor(data[0]))  # the deep tensor is beyond reach


def test_csv_list_column_nested_deeply_is_one_line(tmp_path, capsys):
    deep = "[" * 100_000 + "1" + "]" * 100_000
    pd.DataFrame({"emb": ["[1, 2]", deep, "[3, 4]"]}).to_csv(tmp_path / "deep.csv", index=False)
    with pytest.raises(InvalidEmbeddingsError, match="row 1: expected a flat list of numbers"):
        gp.load(tmp_path / "deep.csv")
    cli_fails_in_one_line(capsys, "analyze", tmp_path / "deep.csv")


def test_parquet_list_column_nested_is_refused_and_flat_one_read(tmp_path):
    pd.DataFrame({"emb": [[[1.0, 2.0]], [[3.0, 4.0]]]}).to_parquet(tmp_path / "nested.parquet")
    with pytest.raises(InvalidEmbeddingsError, match="row 0: expected a flat list"):
        gp.load(tmp_path / "nested.parquet")
    pd.DataFrame({"emb": [[1.0, 2.0], [3.0, 5.0]]}).to_parquet(tmp_path / "flat.parquet")
    assert np.array_equal(gp.load(tmp_path / "flat.parquet").X, [[1.0, 2.0], [3.0, 5.0]])


# --- checkpoints: seeded mutation fuzz -------------------------------------------------------


@pytest.fixture(scope="module")
def small_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    state = _models.make_model().state_dict()
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "global_step": 5}, folder / "c.pt")
    save_file(state, str(folder / "c.safetensors"))
    return folder


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Truncate (30 %) or flip 1-8 random bytes."""
    if rng.random() < 0.3:
        return data[:rng.randrange(len(data))]
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    return bytes(mutated)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_mutated_checkpoints_end_in_weights_or_one_line(small_checkpoints, tmp_path, suffix):
    rng = random.Random(16)
    original = (small_checkpoints / f"c{suffix}").read_bytes()
    outcomes = {"loaded": 0, "refused": 0}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss       # KiB on Linux; a high-water mark
    for i in range(300):
        path = tmp_path / f"m{i}{suffix}"
        path.write_bytes(mutate(original, rng))
        try:
            load_checkpoint(_models.make_model(), path)
            outcomes["loaded"] += 1
        except GeometryProbeError as err:
            assert "\n" not in str(err) and len(str(err)) < 600, str(err)
            outcomes["refused"] += 1
    assert sum(outcomes.values()) == 300 and outcomes["refused"] > 0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200 * 1024


def test_mutated_checkpoints_through_geoprobe_extract(small_checkpoints, tmp_path, capsys):
    rng = random.Random(3)
    original = (small_checkpoints / "c.pt").read_bytes()
    for i in range(12):
        path = tmp_path / f"m{i}.pt"
        path.write_bytes(mutate(original, rng))
        code, _, err = run_cli(["extract", "--model", MODEL, "--data", DATA, "--checkpoint", path, "--layer", "head",
                                "-o", tmp_path / f"o{i}.npz"], capsys)
        assert code in (0, 2) and "Traceback" not in err
        assert err.count("\n") == (1 if code == 2 else 0), err


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory, data):
    """One small valid file per format, each holding 'x' (and 'labels' where the format allows)."""
    X, y = data
    folder = tmp_path_factory.mktemp("valid")
    np.save(folder / "a.npy", X)
    np.savez_compressed(folder / "a.npz", x=X, labels=y)
    np.savez(folder / "stored.npz", x=X, labels=y)
    torch.save({"x": torch.tensor(X), "labels": torch.tensor(y)}, folder / "a.pt")
    save_file({"x": torch.tensor(X)}, str(folder / "a.safetensors"))
    with h5py.File(folder / "a.h5", "w") as handle:
        handle["x"], handle["labels"] = X, y
    pd.DataFrame(X).assign(label=y).to_csv(folder / "a.csv", index=False)
    pd.DataFrame({"emb": list(X), "label": y}).to_parquet(folder / "a.parquet")
    return folder


@pytest.mark.parametrize("name", ["a.npy", "a.npz", "stored.npz", "a.pt", "a.safetensors", "a.h5", "a.csv",
                                  "a.parquet"])
def test_mutated_files_end_in_embeddings_or_one_line(valid_files, tmp_path, name):
    rng = random.Random(name)
    suffix = Path(name).suffix
    original = (valid_files / name).read_bytes()
    labels = "labels" if suffix in (".npz", ".pt", ".h5", ".csv", ".parquet") else None
    key = "x" if suffix in (".npz", ".pt", ".safetensors", ".h5") else None
    for i in range(40):
        path = tmp_path / f"m{i}{suffix}"
        path.write_bytes(mutate(original, rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")                          # a warning would be a 2nd stderr line
                emb = gp.load(path, labels=labels, key=key)
                sum(len(X) for X, _, _ in emb.batches(16))              # every row read and checked
        except GeometryProbeError as err:
            assert "\n" not in str(err) and len(str(err)) < 600, str(err)


# --- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [["a", "a\0", "b"], np.array(["a", "a\0", "b"], dtype=object),
                                    np.array([np.str_("a"), np.str_("a\0"), np.bytes_(b"b")], dtype=object),
                                    pd.Series(["a", "a\0", "b"]), np.array(["a", "x\0y", "b"])])
def test_labels_with_nul_are_refused_not_merged(labels):
    with pytest.raises(InvalidLabelsError, match=r"NUL character .* row\(s\) 1"):
        gp.Embeddings(np.eye(3), labels=labels)


def test_random_text_labels_encode_as_sorted_distinct_names():
    rng = random.Random(7)
    alphabet = ["a", "b", "é", "1", ".", " ", "\0", "n", "N"]
    for _ in range(200):
        labels = ["".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(rng.randint(1, 30))]
        refused = any("\0" in label or label.strip().lower() == "nan" for label in labels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                codes, names = validation.encode_labels(labels)
        except InvalidLabelsError:
            assert refused
            continue
        assert not refused
        assert names == tuple(sorted(set(labels)))                   # text compared exactly, sorted
        assert [names[c] for c in codes] == labels


@pytest.mark.parametrize("labels, row", [(["a", None, "b"], 1), (np.array([0.0, 1.0, np.nan]), 2),
                                         (pd.Series(["a", "b", np.nan]), 2), (np.array(["a", "NaN", "b"]), 1),
                                         ([1, 2, float("inf")], 2)])
def test_missing_labels_are_refused_naming_the_row(labels, row):
    with pytest.raises(InvalidLabelsError, match=rf"missing label.* row\(s\) {row};"):
        gp.Embeddings(np.eye(3), labels=labels)


def test_numbers_are_one_class_by_value():
    emb = gp.Embeddings(np.eye(4), labels=[1, 1.0, np.int8(2), 2.0])
    assert emb.classes == ("1", "2") and emb.labels.tolist() == [0, 0, 1, 1]
    text = gp.Embeddings(np.eye(4), labels=["1", "1.0", "2", "2"])           # text given in Python is text
    assert text.classes == ("1", "1.0", "2")


@pytest.mark.parametrize("content, classes, codes", [
    ("1\n1.0\n2\n1e0\n", ("1", "2"), [0, 0, 1, 0]),
    ("0.5\n.50\n2\n2\n", ("0.5", "2.0"), [0, 0, 1, 1]),
    ("cat\n1\n1.0\ncat\n", ("1", "1.0", "cat"), [2, 0, 1, 2]),
    ("9007199254740993\n9007199254740992\n1\n1\n", ("1", "9007199254740992", "9007199254740993"), [2, 1, 0, 0]),
])
def test_text_label_files_follow_the_numeric_rule(tmp_path, content, classes, codes):
    (tmp_path / "y.txt").write_text(content)
    emb = gp.load(_saved(tmp_path, np.eye(4)), labels=tmp_path / "y.txt")
    assert emb.classes == classes and emb.labels.tolist() == codes


def _saved(folder, X):
    np.save(folder / "e.npy", X)
    return folder / "e.npy"


@pytest.mark.parametrize("content, match", [("a\nnan\nb\n", r"missing label.* row\(s\) 1"),
                                            ("a\n\nb\n", "blank line.* line 2"),
                                            ("a\na\0\nb\n", "NUL character .* line 2")])
def test_text_label_files_refuse_missing_and_nul(tmp_path, capsys, content, match):
    (tmp_path / "y.txt").write_text(content)
    with pytest.raises(InvalidLabelsError, match=match):
        gp.load(_saved(tmp_path, np.eye(3)), labels=tmp_path / "y.txt")
    cli_fails_in_one_line(capsys, "analyze", tmp_path / "e.npy", "--labels", tmp_path / "y.txt")


def test_csv_label_column_with_an_empty_cell_is_refused(tmp_path, capsys):
    (tmp_path / "y.csv").write_text("label,weight\ncat,1\n,2\ndog,3\n")
    with pytest.raises(InvalidLabelsError, match=r"missing label.* row\(s\) 1;"):
        gp.load(_saved(tmp_path, np.eye(3)), labels=tmp_path / "y.csv")
    cli_fails_in_one_line(capsys, "analyze", tmp_path / "e.npy", "--labels", tmp_path / "y.csv")
