"""Conformance tests for every registered analyzer, driven by the metadata each one declares."""

import math

import numpy as np
import pytest
import torch

import geometry_probe as gp
from geometry_probe.analyzers import ANALYZERS, Analyzer, get_analyzer
from geometry_probe.exceptions import EmptyAnalyzerError, MissingLabelsError

STREAMING = sorted(n for n, c in ANALYZERS.items() if issubclass(c, Analyzer))


def _make(name, n_classes=4):
    return get_analyzer(name, n_classes=n_classes)


def _run(name, X, y):
    return gp.analyze(X.numpy(), [name], labels=y.numpy() if ANALYZERS[name].uses_labels else None,
                      precision="float64").scalars()


def _assert_scalars_close(a, b, rtol=1e-6, atol=1e-9):
    assert a.keys() == b.keys()
    for key in a:
        if math.isnan(a[key]) or math.isnan(b[key]):
            assert math.isnan(a[key]) and math.isnan(b[key]), key
        else:
            assert a[key] == pytest.approx(b[key], rel=rtol, abs=atol), key


def _compute(analyzer):
    return analyzer.compute().scalars


@pytest.mark.parametrize("name", STREAMING)
def test_streaming_in_ragged_batches_equals_one_shot(name, labelled_blobs):
    X, y = labelled_blobs
    one, many = _make(name), _make(name)
    one.update(X, y)
    for idx in torch.randperm(len(X), generator=torch.Generator().manual_seed(0)).split(7):
        many.update(X[idx], y[idx])            # ragged; many batches miss classes
    many.update(X[:1], y[:1])                  # batch of one row ...
    one.update(X[:1], y[:1])                   # ... seen by both
    _assert_scalars_close(_compute(many), _compute(one))


@pytest.mark.parametrize("name", STREAMING)
def test_merge_equals_update_on_union(name, labelled_blobs):
    X, y = labelled_blobs
    a, b, whole = _make(name), _make(name), _make(name)
    a.update(X[:50], y[:50])
    b.update(X[50:], y[50:])
    whole.update(X, y)
    _assert_scalars_close(_compute(a.merge(b)), _compute(whole))


@pytest.mark.parametrize("name", STREAMING)
def test_reset_and_compute_before_update(name, labelled_blobs):
    X, y = labelled_blobs
    analyzer = _make(name)
    with pytest.raises(EmptyAnalyzerError):
        analyzer.compute()
    analyzer.update(X, y)
    analyzer.reset()
    with pytest.raises(EmptyAnalyzerError):
        analyzer.compute()


@pytest.mark.parametrize("name", [n for n in STREAMING if ANALYZERS[n].requires_labels])
def test_missing_labels_raise(name):
    with pytest.raises(MissingLabelsError):
        gp.analyze(np.random.default_rng(0).standard_normal((20, 3)), [name])


def _permute_rows(X, y, perm):
    return X[perm], y[perm]


def _rotation(X, rng):
    Q, _ = np.linalg.qr(rng.standard_normal((X.shape[1], X.shape[1])))
    return torch.as_tensor(X.numpy() @ Q)


TRANSFORMS = {
    "rotation": lambda X, y, rng: (_rotation(X, rng), y),
    "scale": lambda X, y, rng: (X * 3.7, y),
    "permutation": lambda X, y, rng: _permute_rows(X, y, torch.as_tensor(rng.permutation(len(X)))),
    "relabel": lambda X, y, rng: (X, torch.as_tensor(np.array([2, 0, 3, 1])[y.numpy()])),
}


@pytest.mark.parametrize(("name", "invariance"), [(n, inv) for n in STREAMING
                                                   for inv in sorted(ANALYZERS[n].invariances)])
def test_declared_invariances(name, invariance, labelled_blobs):
    X, y = labelled_blobs
    rng = np.random.default_rng(1)
    X2, y2 = TRANSFORMS[invariance](X, y, rng)
    _assert_scalars_close(_run(name, X2, y2), _run(name, X, y), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(ANALYZERS))
def test_json_round_trip(name, labelled_blobs, tmp_path):
    X, y = labelled_blobs
    positives = {"groups": y.numpy()} if ANALYZERS[name].requires_positives else {}
    res = gp.analyze(X.numpy(), [name], labels=y.numpy(), params={name: positives})
    res.to_json(tmp_path / "r.json")
    back = gp.Results.from_json(tmp_path / "r.json")
    _assert_scalars_close(back.scalars(), res.scalars(), rtol=1e-12)
    for key, value in res[name].arrays.items():
        np.testing.assert_allclose(back[name].arrays[key], value, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ANALYZERS))
def test_every_analyzer_is_documented_with_a_summary_line(name):
    assert (ANALYZERS[name].__doc__ or "").strip(), f"{name} has no docstring"
