"""Property-based fuzzing: any input gives values, documented NaN, or a GeometryProbeError."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geometry_probe as gp

SPECIAL = st.sampled_from(["random", "constant", "duplicates", "zero_row", "huge", "tiny", "one_class",
                           "singletons"])


@st.composite
def inputs(draw):
    n = draw(st.integers(2, 40))
    d = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, np.int32]))
    kind = draw(SPECIAL)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.standard_normal((n, d))
    if kind == "constant":
        X[:] = X[0]
    elif kind == "duplicates":
        X[n // 2:] = X[: n - n // 2]
    elif kind == "zero_row":
        X[0] = 0
    elif kind == "huge":
        X *= 1e30 if dtype == np.float64 else 1e3
    elif kind == "tiny":
        X *= 1e-30 if dtype == np.float64 else 1e-3
    if dtype == np.int32:
        X = np.round(X * 3)
    labels = rng.integers(0, draw(st.integers(1, 4)), n)
    if kind == "one_class":
        labels[:] = 0
    elif kind == "singletons":
        labels = np.arange(n)
    return X.astype(dtype), labels


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_every_analyzer_returns_values_nan_or_a_clear_error(data):
    """150 random inputs (dtypes, constant/duplicate/zero/huge/tiny rows, odd labels): finite or NaN values, or a
    GeometryProbeError."""
    X, labels = data
    try:
        res = gp.analyze(X, labels=labels)
    except gp.GeometryProbeError as err:
        assert str(err)
        return
    for key, value in res.scalars().items():
        assert not math.isinf(value), f"{key} is inf"
    for finding in res.findings:
        assert finding["verdict"] in {"ok", "warn", "fail"}


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=400), st.sampled_from([".npy", ".npz", ".pt", ".safetensors", ".csv", ".h5"]))
def test_loaders_on_random_bytes_raise_only_geometry_probe_errors(tmp_path_factory, payload, suffix):
    """300 random byte strings under each loader's suffix: loaded or a GeometryProbeError, nothing else."""
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(payload)
    try:
        gp.load(path)
    except gp.GeometryProbeError:
        pass


def test_huge_magnitudes_keep_cosines_finite():
    """Rows of magnitude 1e30: cosine metrics are finite and equal to those of the rescaled rows."""
    X = np.random.default_rng(0).standard_normal((50, 4)) * 1e30
    s = gp.analyze(X, ["contrastive", "knn"]).scalars()
    assert s["contrastive/uniformity"] == pytest.approx(gp.analyze(X / 1e30, "contrastive").scalars()[
        "contrastive/uniformity"], rel=1e-5)


def _valid_bytes(suffix, folder):
    import torch

    path = folder / f"valid{suffix}"
    X = np.arange(24, dtype=np.float32).reshape(6, 4)
    if suffix == ".npy":
        np.save(path, X)
    elif suffix == ".npz":
        np.savez(path, a=X, labels=np.arange(6))
    elif suffix == ".pt":
        torch.save({"a": torch.as_tensor(X)}, path)
    elif suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({"a": X}, str(path))
    else:
        import h5py

        with h5py.File(path, "w") as handle:
            handle["a"] = X
    return path.read_bytes()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([".npy", ".npz", ".pt", ".safetensors", ".h5"]), st.data())
def test_loaders_on_corrupted_valid_files(tmp_path_factory, suffix, data):
    """200 valid files truncated or with flipped bytes: loaded and analysed, or a GeometryProbeError."""
    folder = tmp_path_factory.mktemp("mut")
    raw = bytearray(_valid_bytes(suffix, folder))
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(len(raw) - 1, 0)), st.integers(0, 255)), max_size=4))
    for position, value in flips:
        raw[position] = value
    path = folder / f"bad{suffix}"
    path.write_bytes(bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw))
    try:
        emb = gp.load(path)
        gp.analyze(emb, "spectrum")
    except gp.GeometryProbeError:
        pass
