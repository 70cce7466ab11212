"""Results: flat scalar names, JSON round trip with NaN, atomic writes."""

import json
import math

import numpy as np
import pytest

import geometry_probe as gp
from geometry_probe.exceptions import InputFileError, OutputError


def test_scalars_are_flat_family_slash_metric():
    res = gp.Results([gp.Result("spectrum", {"a": 1.0}), gp.Result("knn", {"b": 2.0})])
    assert res.scalars() == {"spectrum/a": 1.0, "knn/b": 2.0}
    assert res.scalars(prefix="geometry/") == {"geometry/spectrum/a": 1.0, "geometry/knn/b": 2.0}


def test_nan_is_null_in_json_and_nan_again(tmp_path):
    res = gp.Results([gp.Result("spectrum", {"x": math.nan, "y": 1.5}, arrays={"v": np.array([1.0, np.nan])})],
                     meta={"n_samples": np.int64(3)})
    text = res.to_json(tmp_path / "r.json")
    data = json.loads(text)                              # strict JSON: no bare NaN
    assert data["scalars"]["spectrum/x"] is None
    back = gp.Results.from_json(tmp_path / "r.json")
    assert math.isnan(back.scalars()["spectrum/x"]) and back.scalars()["spectrum/y"] == 1.5
    assert math.isnan(back["spectrum"].arrays["v"][1])
    assert back.meta["n_samples"] == 3


def test_from_json_rejects_other_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputFileError):
        gp.Results.from_json(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(InputFileError, match="no 'results'"):
        gp.Results.from_json(tmp_path / "other.json")


def test_to_json_into_missing_folder_fails_cleanly(tmp_path):
    res = gp.Results([gp.Result("spectrum", {"x": 1.0})])
    with pytest.raises(OutputError, match="does not exist"):
        res.to_json(tmp_path / "no" / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")
    res = gp.Results([gp.Result("spectrum", {"x": 1.0})], meta={"bad": object()})
    with pytest.raises(TypeError):
        res.to_json(target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_outputs_get_the_permissions_a_plain_open_would_give(tmp_path):
    """Atomic writes go through a 0o600 temporary file; the result still follows the umask, and
    a file that is replaced keeps its own permissions."""
    import os

    from geometry_probe._atomic import atomic_write_text

    old_umask = os.umask(0o022)
    try:
        fresh = atomic_write_text(tmp_path / "fresh.json", "{}")
        kept = tmp_path / "kept.json"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write_text(kept, "new")
    finally:
        os.umask(old_umask)
    assert fresh.stat().st_mode & 0o777 == 0o644
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "new"
