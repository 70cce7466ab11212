"""Sharded inputs: folders, globs and lists of shard files read lazily as one matrix, in a stated order."""

import json

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.exceptions import InputFileError, InvalidEmbeddingsError, InvalidLabelsError
from geometry_probe.shards import ShardedArray, natural_key, shard_paths

from ._cli import run_cli

SIZES = [37, 100, 1, 262]                     # uneven, one single-row shard
NAMES = ["part-2", "part-10", "part-9", "part-1"]   # natural order: 1, 2, 9, 10


@pytest.fixture
def data(rng):
    X = rng.normal(size=(sum(SIZES), 6)).astype(np.float32)
    y = rng.integers(0, 3, sum(SIZES))
    X[y == 1] += 2.0
    return X, y


def _natural(names):
    return sorted(names, key=lambda n: int(n.split("-")[1]))


def write_shards(folder, X, y, *, fmt="npy", labels="txt"):
    """Rows in natural order of NAMES, so the concatenation in that order is X."""
    (folder / "emb").mkdir()
    (folder / "lab").mkdir()
    bounds = np.cumsum([0, *SIZES])
    for name, a, b in zip(_natural(NAMES), bounds, bounds[1:]):
        if fmt == "npy":
            np.save(folder / "emb" / f"{name}.npy", X[a:b])
        elif fmt == "npz":
            np.savez(folder / "emb" / f"{name}.npz", emb=X[a:b], y=y[a:b])
        else:
            import pandas as pd
            frame = pd.DataFrame(X[a:b], columns=[f"f{j}" for j in range(X.shape[1])])
            frame["label"] = y[a:b]
            frame.to_parquet(folder / "emb" / f"{name}.parquet")
        if labels == "txt":
            np.savetxt(folder / "lab" / f"{name}.txt", y[a:b], fmt="%d")
        else:
            np.save(folder / "lab" / f"{name}.npy", y[a:b])
    (folder / "emb" / "_SUCCESS").write_text("")
    return folder / "emb", folder / "lab"


def test_natural_sort_rule():
    names = ["p-10.npy", "p-9.npy", "P-1.npy", "p-100.npy", "p-2.npy"]
    assert sorted(names, key=natural_key) == ["P-1.npy", "p-2.npy", "p-9.npy", "p-10.npy", "p-100.npy"]


def test_folder_of_npy_shards_is_the_concatenation(tmp_path, data):
    X, y = data
    emb_dir, lab_dir = write_shards(tmp_path, X, y)
    emb = gp.load(emb_dir, labels=lab_dir)
    assert isinstance(emb.X, ShardedArray)
    assert emb.X.shape == X.shape and emb.X.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(emb.X), X)
    np.testing.assert_array_equal(emb.labels, y)
    assert [p.rsplit("/", 1)[1] for p in emb.meta["shards"]] == [f"{n}.npy" for n in _natural(NAMES)]
    assert emb.meta["shard_rows"] == SIZES and "natural" in emb.meta["shard_order"]
    # the same numbers, the same batches: the same statistics as one array
    sharded = gp.analyze(emb, "spectrum,neural_collapse,orthogonality", verdicts=False, batch_size=50).scalars()
    whole = gp.analyze(gp.Embeddings(X, labels=y), "spectrum,neural_collapse,orthogonality", verdicts=False,
                       batch_size=50).scalars()
    assert sharded.keys() == whole.keys()
    for k, v in whole.items():
        assert sharded[k] == pytest.approx(v, rel=1e-12, nan_ok=True), k


def test_rows_are_read_lazily_from_memory_maps(tmp_path, data):
    X, y = data
    emb_dir, _ = write_shards(tmp_path, X, y)
    sharded = gp.load(emb_dir).X
    assert sharded._open == {}
    np.testing.assert_array_equal(sharded[5:30], X[5:30])                 # inside the first shard only
    assert list(sharded._open) == [0] and isinstance(sharded._open[0], np.memmap)
    index = np.array([399, 0, 37, 138, 137, 37, 200, 5])                 # unsorted, repeated, across shards
    np.testing.assert_array_equal(sharded[index], X[index])
    np.testing.assert_array_equal(sharded[30:150], X[30:150])            # a slice across three shards
    np.testing.assert_array_equal(sharded[[1, 2], 3], X[[1, 2], 3])
    assert len(sharded._open) <= 2
    relabelled = gp.embeddings.as_embeddings(gp.load(emb_dir), labels=y)   # analyze(emb, labels=...) keeps it lazy
    assert isinstance(relabelled.X, ShardedArray) and relabelled.X._open == {}


def test_glob_and_list(tmp_path, data):
    X, y = data
    emb_dir, lab_dir = write_shards(tmp_path, X, y, labels="npy")
    by_glob = gp.load(str(emb_dir / "part-*.npy"), labels=str(lab_dir / "*.npy"))
    np.testing.assert_array_equal(np.asarray(by_glob.X), X)
    np.testing.assert_array_equal(by_glob.labels, y)
    listed = [emb_dir / "part-9.npy", emb_dir / "part-1.npy"]            # a list keeps its order
    emb = gp.load(listed)
    np.testing.assert_array_equal(np.asarray(emb.X), np.concatenate([X[137:138], X[:37]]))
    assert emb.meta["shard_order"] == "as listed"


def test_parquet_folder_is_one_dataset_with_a_label_column(tmp_path, data):
    pytest.importorskip("pyarrow")
    X, y = data
    emb_dir, _ = write_shards(tmp_path, X, y, fmt="parquet")
    emb = gp.load(emb_dir, labels="label")
    np.testing.assert_array_equal(np.asarray(emb.X), X)
    np.testing.assert_array_equal(emb.labels, y)


def test_npz_shards_with_key_and_label_array(tmp_path, data):
    X, y = data
    emb_dir, _ = write_shards(tmp_path, X, y, fmt="npz")
    emb = gp.load(emb_dir, key="emb", labels="y")
    np.testing.assert_array_equal(np.asarray(emb.X), X)
    np.testing.assert_array_equal(emb.labels, y)
    groups = gp.io.read_array_spec("y", container=emb_dir)             # --groups/--pairs as a column
    np.testing.assert_array_equal(groups, y)


def test_label_shard_with_wrong_rows_names_the_shard(tmp_path, data):
    X, y = data
    emb_dir, lab_dir = write_shards(tmp_path, X, y)
    np.savetxt(lab_dir / "part-9.txt", [1, 2], fmt="%d")                 # the one-row shard gets two labels
    with pytest.raises(InvalidLabelsError, match=r"part-9\.txt holds 2 rows but embeddings shard .*part-9\.npy "
                                                 r"holds 1 \(rows 137-137\)"):
        gp.load(emb_dir, labels=lab_dir)
    (lab_dir / "part-9.txt").unlink()
    with pytest.raises(InvalidLabelsError, match="3 files for 4 embeddings shards"):
        gp.load(emb_dir, labels=lab_dir)


def test_bad_shard_sets_are_refused(tmp_path, data):
    X, y = data
    emb_dir, _ = write_shards(tmp_path, X, y)
    np.save(emb_dir / "part-11.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(InvalidEmbeddingsError, match=r"part-11\.npy: 5 features"):
        gp.load(emb_dir)
    np.save(emb_dir / "part-11.npy", np.zeros((3, 6), np.float64))
    with pytest.raises(InvalidEmbeddingsError, match=r"part-11\.npy.*float64"):
        gp.load(emb_dir)
    np.savez(emb_dir / "part-11.npz", a=np.zeros((3, 6)))
    (emb_dir / "part-11.npy").unlink()
    with pytest.raises(InputFileError, match="directory of shards in several formats"):
        gp.load(emb_dir)
    with pytest.raises(InputFileError, match="matches no embeddings files"):
        gp.load(str(tmp_path / "nothing-*.npy"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="is a directory with no embeddings files"):
        gp.load(tmp_path / "empty")
    with pytest.raises(InputFileError, match="no such"):
        shard_paths([emb_dir / "part-1.npy", emb_dir / "gone.npy"])


def test_cli_analyzes_a_folder_of_shards(tmp_path, data, capsys):
    X, y = data
    emb_dir, lab_dir = write_shards(tmp_path, X, y)
    np.save(tmp_path / "all.npy", X)
    np.save(tmp_path / "all_labels.npy", y)
    args = ["-a", "spectrum,neural_collapse", "-q"]
    code, _, err = run_cli(["analyze", emb_dir, "--labels", lab_dir, "--json", tmp_path / "s.json", *args], capsys)
    assert code == 0, err
    code, _, err = run_cli(["analyze", tmp_path / "all.npy", "--labels", tmp_path / "all_labels.npy",
                            "--json", tmp_path / "one.json", *args], capsys)
    assert code == 0, err
    sharded, whole = (json.loads((tmp_path / n).read_text()) for n in ("s.json", "one.json"))
    assert sharded["scalars"] == pytest.approx(whole["scalars"], rel=1e-12, nan_ok=True)
    assert sharded["meta"]["shard_rows"] == SIZES and sharded["meta"]["world_size"] == 1
    np.savetxt(lab_dir / "part-1.txt", np.zeros(36), fmt="%d")
    code, _, err = run_cli(["analyze", emb_dir, "--labels", lab_dir, *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "part-1.txt holds 36 rows" in err
