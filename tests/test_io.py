"""Loaders: every format, labels, dtypes, and every bad input named by the foundation issue."""

import os

import numpy as np
import pandas as pd
import pytest
import torch

import geometry_probe as gp
from geometry_probe.exceptions import (
    AmbiguousKeyError,
    InputFileError,
    InvalidEmbeddingsError,
    InvalidLabelsError,
    UnsafeFileError,
)

X = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32)
Y = np.array(list("abcabcabcabc"))


def _check(emb, labels=None):
    np.testing.assert_allclose(np.asarray(emb.X, dtype=np.float32), X, rtol=1e-6)
    if labels is not None:
        assert emb.classes == ("a", "b", "c")
        np.testing.assert_array_equal(emb.labels, [0, 1, 2] * 4)


def test_npy_is_memory_mapped(tmp_path):
    """.npy input is memory-mapped, not read into memory."""
    np.save(tmp_path / "x.npy", X)
    emb = gp.load(tmp_path / "x.npy")
    assert isinstance(emb.X, np.memmap)
    _check(emb)


def test_npz_with_key_and_labels_inside(tmp_path):
    """.npz with the embeddings and labels chosen by key."""
    np.savez(tmp_path / "x.npz", emb=X, other=X[:, :2], labels=Y)
    _check(gp.load(tmp_path / "x.npz", key="emb", labels="labels"), Y)


def test_pt_tensor_and_dict(tmp_path):
    """.pt/.pth holding a tensor or a dict of tensors, labels by key."""
    torch.save(torch.as_tensor(X), tmp_path / "t.pt")
    _check(gp.load(tmp_path / "t.pt"))
    torch.save({"z": torch.as_tensor(X), "y": torch.arange(12) % 3}, tmp_path / "d.pth")
    emb = gp.load(tmp_path / "d.pth", labels="y")
    _check(emb)
    np.testing.assert_array_equal(emb.labels, [0, 1, 2] * 4)


def test_safetensors(tmp_path):
    """.safetensors input."""
    from safetensors.torch import save_file

    save_file({"z": torch.as_tensor(X)}, str(tmp_path / "x.safetensors"))
    _check(gp.load(tmp_path / "x.safetensors"))


def test_csv_tsv_parquet_numeric_and_list_column(tmp_path):
    """CSV, TSV and Parquet, as numeric columns or one list column."""
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(4)])
    frame["label"] = Y
    frame.to_csv(tmp_path / "x.csv", index=False)
    _check(gp.load(tmp_path / "x.csv", labels="label"), Y)
    frame.to_csv(tmp_path / "x.tsv", sep="\t", index=False)
    _check(gp.load(tmp_path / "x.tsv", labels="label"), Y)
    frame.to_parquet(tmp_path / "x.parquet")
    _check(gp.load(tmp_path / "x.parquet", labels="label"), Y)
    listed = pd.DataFrame({"embedding": [str(list(map(float, row))) for row in X]})
    listed.to_csv(tmp_path / "l.csv", index=False)
    _check(gp.load(tmp_path / "l.csv"))
    pd.DataFrame({"embedding": list(X.astype(np.float64))}).to_parquet(tmp_path / "l.parquet")
    _check(gp.load(tmp_path / "l.parquet"))


def test_h5(tmp_path):
    """HDF5 input."""
    import h5py

    with h5py.File(tmp_path / "x.h5", "w") as handle:
        handle["features"] = X
    _check(gp.load(tmp_path / "x.h5"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32])
def test_low_precision_and_integer_inputs_are_converted_per_batch(tmp_path, dtype):
    """float16, bfloat16 and int32 stay as stored and become float32 one batch at a time."""
    T = torch.as_tensor(X * 10).to(dtype)
    torch.save(T, tmp_path / "t.pt")
    emb = gp.load(tmp_path / "t.pt")
    assert emb.X.dtype == dtype                            # stored as given ...
    batch, _, _ = next(emb.batches(5))
    assert batch.dtype == torch.float32                    # ... converted per batch
    torch.testing.assert_close(batch, T[:5].float())


@pytest.mark.parametrize("fmt", ["npy", "txt", "csv"])
def test_label_files(tmp_path, fmt):
    """Label files as .npy, .txt and .csv."""
    np.save(tmp_path / "x.npy", X)
    if fmt == "npy":
        np.save(tmp_path / "y.npy", Y)
    elif fmt == "txt":
        (tmp_path / "y.txt").write_text("\n".join(Y) + "\n")
    else:
        pd.DataFrame({"label": Y, "extra": 1}).to_csv(tmp_path / "y.csv", index=False)
    _check(gp.load(tmp_path / "x.npy", labels=tmp_path / f"y.{fmt}"), Y)


def test_sparse_integer_labels_become_codes(tmp_path):
    """Sparse integer labels (3, 17, 99) become codes 0..C-1 with their names kept."""
    emb = gp.Embeddings(X, labels=np.array([17, 3, 3, 99] * 3))
    assert emb.classes == ("3", "17", "99")
    np.testing.assert_array_equal(emb.labels[:4], [1, 0, 0, 2])


@pytest.mark.parametrize("labels", [np.arange(-3, 40)[::-1].repeat(3), np.array([2**40, 7, 7]),
                                    np.array([5, 5], dtype=np.uint8), np.array([0, 70000, 3])],
                         ids=["negative-dense", "huge-range", "uint8", "sparse-wide"])
def test_integer_labels_encode_like_a_sort(labels):
    """Integer labels (dense counting path or sorting path) get the codes and names np.unique gives."""
    from geometry_probe._validation import encode_labels

    codes, names = encode_labels(labels)
    uniques, inverse = np.unique(labels, return_inverse=True)
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(codes, inverse.reshape(-1))
    assert names == tuple(str(u) for u in uniques)


# ---- bad input ---------------------------------------------------------------------------

def _marker_payload(marker):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    return Payload()


def test_object_npy_refused_and_never_unpickled(tmp_path):
    """An object-dtype .npy with a pickle payload is refused (UnsafeFileError) and the payload never runs."""
    marker = tmp_path / "ran"
    np.save(tmp_path / "o.npy", np.array([_marker_payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError, match="pickle"):
        gp.load(tmp_path / "o.npy")
    assert not marker.exists()


def test_pickled_pt_refused_and_never_run(tmp_path):
    """A .pt with a pickled object is refused by weights_only loading and the payload never runs."""
    marker = tmp_path / "ran"
    torch.save({"x": _marker_payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFileError, match="refused") as info:
        gp.load(tmp_path / "evil.pt")
    assert isinstance(info.value, OSError)
    assert "weights_only` set to `False`" not in str(info.value)
    assert not marker.exists()


def test_object_npz_refused(tmp_path):
    """An object-dtype array inside .npz is refused (UnsafeFileError)."""
    np.savez(tmp_path / "o.npz", a=np.array([{"k": 1}], dtype=object))
    with pytest.raises(UnsafeFileError):
        gp.load(tmp_path / "o.npz")


@pytest.mark.parametrize("suffix", ["npy", "npz", "pt"])
def test_truncated_files(tmp_path, suffix):
    """Truncated .npy, .npz and .pt files give an InputFileError naming the damage."""
    full = tmp_path / f"full.{suffix}"
    {"npy": lambda: np.save(full, X), "npz": lambda: np.savez(full, a=X),
     "pt": lambda: torch.save(torch.as_tensor(X), full)}[suffix]()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputFileError, match="truncated|corrupt|not a readable"):
        gp.load(cut)


def test_missing_directory_unknown_suffix(tmp_path):
    """A missing file, a directory, or an unknown suffix gives an InputFileError."""
    with pytest.raises(InputFileError, match="no such"):
        gp.load(tmp_path / "nope.npy")
    with pytest.raises(InputFileError, match="directory"):
        gp.load(tmp_path)
    (tmp_path / "x.bin").write_bytes(b"123")
    with pytest.raises(InputFileError, match="unknown file type"):
        gp.load(tmp_path / "x.bin")


def test_shape_errors(tmp_path):
    """3-D input (pool it first) and a single row are refused with the fix in the message."""
    np.save(tmp_path / "three.npy", np.zeros((3, 4, 5)))
    with pytest.raises(InvalidEmbeddingsError, match=r"pool them first: X\.mean\(axis=1\)"):
        gp.load(tmp_path / "three.npy")
    np.save(tmp_path / "one.npy", np.zeros((1, 4)))
    with pytest.raises(InvalidEmbeddingsError, match="at least 2 rows"):
        gp.load(tmp_path / "one.npy")


def test_nan_rows_are_named():
    """NaN and inf rows are refused, naming the first bad rows."""
    bad = X.copy()
    bad[5, 1] = np.nan
    bad[9, 0] = np.inf
    with pytest.raises(InvalidEmbeddingsError, match="first bad rows: 5, 9") as info:
        gp.analyze(bad, "spectrum")
    assert isinstance(info.value, ValueError)


def test_labels_wrong_length_and_ambiguous_key(tmp_path):
    """Labels of the wrong length, an ambiguous or missing key: the message names the choices."""
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", np.arange(5))
    with pytest.raises(InvalidLabelsError, match="got 5 labels for 12 embeddings"):
        gp.load(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    np.savez(tmp_path / "m.npz", first=X, second=X)
    with pytest.raises(AmbiguousKeyError, match="'first'.*'second'"):
        gp.load(tmp_path / "m.npz")
    with pytest.raises(AmbiguousKeyError, match="no array named 'third'"):
        gp.load(tmp_path / "m.npz", key="third")


def test_input_file_is_not_modified(tmp_path):
    """Analysing a file leaves its bytes unchanged."""
    np.save(tmp_path / "x.npy", X)
    before = (tmp_path / "x.npy").read_bytes()
    gp.analyze(gp.load(tmp_path / "x.npy"), "spectrum")
    assert (tmp_path / "x.npy").read_bytes() == before


# ---- CSV/TSV: header detection and the pandas index column -------------------------------------------------------
@pytest.mark.parametrize("sep, suffix", [(",", ".csv"), ("\t", ".tsv")])
def test_a_numeric_first_row_is_data_not_a_header(tmp_path, sep, suffix):
    path = tmp_path / f"x{suffix}"
    np.savetxt(path, X, delimiter=sep)                             # no header: every row is data
    emb = gp.load(path)
    assert (emb.n_samples, emb.n_features) == (12, 4)
    _check(emb)
    assert gp.io.has_header_row(path, sep=sep) is False
    assert gp.load(path, header=True).n_samples == 11             # forced: the first row names the columns
    named = tmp_path / f"named{suffix}"
    pd.DataFrame(X, columns=["f0", "f1", "f2", "1e-3"]).to_csv(named, sep=sep, index=False)
    assert gp.io.has_header_row(named, sep=sep) is True           # one non-number is enough
    _check(gp.load(named))


def test_forcing_no_header_on_a_named_file_reads_the_names_as_a_row(tmp_path):
    named = tmp_path / "named.csv"
    pd.DataFrame(X, columns=["f0", "f1", "f2", "f3"]).to_csv(named, index=False)
    with pytest.raises(InvalidEmbeddingsError, match="non-numeric columns"):
        gp.load(named, header=False)                               # "f0" is now a cell of a feature column


def test_a_pandas_index_column_is_dropped_with_a_note(tmp_path):
    path = tmp_path / "pd.csv"
    pd.DataFrame(X, columns=list("abcd")).to_csv(path)              # index=True, the pandas default
    emb = gp.load(path)
    _check(emb)
    assert emb.n_features == 4
    assert len(emb.meta["notes"]) == 1 and "dropped the first column" in emb.meta["notes"][0]
    assert "0..11" in emb.meta["notes"][0] and "index=False" in emb.meta["notes"][0]
    labelled = tmp_path / "lab.csv"
    pd.DataFrame({**{f"f{i}": X[:, i] for i in range(4)}, "label": Y}).to_csv(labelled)
    _check(gp.load(labelled, labels="label"), labels=True)


def test_an_unnamed_first_column_that_is_not_0_to_n_is_kept(tmp_path):
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame.index = np.arange(12) + 100                               # a real index: kept as data
    path = tmp_path / "kept.csv"
    frame.to_csv(path)
    emb = gp.load(path)
    assert emb.n_features == 5 and "notes" not in emb.meta
    np.testing.assert_array_equal(np.asarray(emb.X)[:, 0], np.arange(12) + 100)


def test_label_csv_without_header_keeps_its_first_label_and_drops_a_pandas_index(tmp_path):
    plain = tmp_path / "y.csv"
    np.savetxt(plain, [3, 1, 2, 0], fmt="%d")
    np.testing.assert_array_equal(gp.io.load_labels(plain), [3, 1, 2, 0])
    series = tmp_path / "series.csv"
    pd.Series([5, 6, 5, 7], name="label").to_csv(series)
    np.testing.assert_array_equal(gp.io.load_labels(series), [5, 6, 5, 7])


def test_cli_header_options_and_the_note(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _cli import run_cli

    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    code, out, _ = run_cli(["analyze", tmp_path / "x.csv", "-a", "spectrum", "--device", "cpu"], capsys)
    assert code == 0 and out.splitlines()[0] == f"{tmp_path / 'x.csv'}: 12 x 4 float64"
    code, out, _ = run_cli(["analyze", tmp_path / "x.csv", "-a", "spectrum", "--device", "cpu", "--header"], capsys)
    assert code == 0 and out.splitlines()[0].endswith(": 11 x 4 float64")
    pd.DataFrame(X).to_csv(tmp_path / "pd.csv")
    code, out, _ = run_cli(["analyze", tmp_path / "pd.csv", "-a", "spectrum", "--device", "cpu"], capsys)
    assert code == 0 and out.splitlines()[0].endswith(": 12 x 4 float64")
    assert out.splitlines()[1].startswith("note pd.csv: dropped the first column")
