"""Additive statistics: streaming equals one shot, merge equals union, + is a commutative monoid."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geometry_probe.stats import ClassMoments, ClassScatter, Moments


def _naive(X):
    X = np.asarray(X, dtype=np.float64)
    return X.shape[0], X.sum(0), X.T @ X


def test_moments_equal_naive_sums():
    X = torch.randn(57, 6, dtype=torch.float64)
    m = Moments.of(X)
    n, s1, s2 = _naive(X)
    assert float(m.n) == n
    np.testing.assert_allclose(m.s1.numpy(), s1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.s2.numpy(), s2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.scatter().numpy(), np.cov(X.numpy(), rowvar=False) * 56, atol=1e-10)


def test_float32_batches_with_offset_keep_float64_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 8)) + 1e4
    parts = [Moments.of(torch.as_tensor(X[i:i + 333], dtype=torch.float32)) for i in range(0, 4000, 333)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    reference = np.cov(X.astype(np.float32).astype(np.float64), rowvar=False) * 3999
    np.testing.assert_allclose(total.scatter().numpy(), reference, rtol=1e-5, atol=1e-2)


def test_class_moments_match_naive_per_class_sums():
    X = torch.randn(90, 5, dtype=torch.float64)
    y = torch.randint(0, 4, (90,))
    cm = ClassMoments.of(X, y, 4)
    for k in range(4):
        rows = X[y == k].numpy()
        assert float(cm.n[k]) == rows.shape[0]
        np.testing.assert_allclose(cm.s1[k].numpy(), rows.sum(0), atol=1e-12)
        np.testing.assert_allclose(float(cm.sq[k]), (rows**2).sum(), rtol=1e-12)
    within = sum(((X[y == k] - X[y == k].mean(0)).T @ (X[y == k] - X[y == k].mean(0)) for k in range(4)))
    np.testing.assert_allclose(cm.within_scatter().numpy(), within.numpy(), atol=1e-10)


def test_class_scatter_pooled_equals_class_moments():
    X = torch.randn(70, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (70,))
    a, b = ClassScatter.of(X, y, 3).pooled(), ClassMoments.of(X, y, 3)
    for name in ("n", "s1", "s2", "sq"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))


def test_class_moments_pad_when_later_batches_show_new_classes():
    X = torch.randn(30, 3, dtype=torch.float64)
    y = torch.tensor([0, 1] * 10 + [2, 3] * 5)
    merged = ClassMoments.of(X[:20], y[:20], 2) + ClassMoments.of(X[20:], y[20:], 4)
    whole = ClassMoments.of(X, y, 4)
    torch.testing.assert_close(merged.s1, whole.s1)
    torch.testing.assert_close(merged.n, whole.n)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=3, max_size=3), st.integers(0, 2**16))
def test_addition_is_associative_and_commutative(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    a, b, c = (Moments.of(torch.randn(n, 4, generator=g, dtype=torch.float64)) for n in sizes)
    left, right = (a + b) + c, a + (b + c)
    swapped = c + (b + a)
    for name in ("n", "s1", "s2"):
        torch.testing.assert_close(getattr(left, name), getattr(right, name))
        torch.testing.assert_close(getattr(left, name), getattr(swapped, name))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6), st.integers(0, 2**16))
def test_sum_of_batch_stats_equals_stats_of_union(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(sum(sizes), 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (X.shape[0],), generator=g)
    parts = [ClassMoments.of(xb, yb, 3) for xb, yb in zip(X.split(sizes), y.split(sizes))]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    whole = ClassMoments.of(X, y, 3)
    for name in ("n", "s1", "s2", "sq"):
        torch.testing.assert_close(getattr(total, name), getattr(whole, name))


def test_adding_different_types_is_refused():
    with pytest.raises(TypeError):
        Moments.of(torch.randn(3, 2)) + ClassMoments.of(torch.randn(3, 2), torch.tensor([0, 1, 0]), 2)


def test_float32_rows_are_summed_in_float64_by_default_and_in_float32_on_request():
    """The default statistics of float32 rows are float64 arithmetic on the same numbers; "float32" is not."""
    rng = np.random.default_rng(5)
    X32 = (rng.standard_normal((3000, 40)) * np.logspace(0, -3, 40) + 2.0).astype(np.float32)
    y = rng.integers(0, 7, 3000)
    n, s1, s2 = _naive(X32)
    exact = Moments.of(torch.as_tensor(X32))
    np.testing.assert_allclose(exact.s2.numpy(), s2, rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(exact.s1.numpy(), s1, rtol=1e-13, atol=1e-10)
    fast = Moments.of(torch.as_tensor(X32), precision="float32")
    assert np.max(np.abs(fast.s2.numpy() - s2)) > 1e3 * np.max(np.abs(exact.s2.numpy() - s2))
    sums = ClassMoments.of(torch.as_tensor(X32), torch.as_tensor(y), 7).s1.numpy()
    naive = np.stack([X32[y == k].astype(np.float64).sum(axis=0) for k in range(7)])
    np.testing.assert_allclose(sums, naive, rtol=1e-13, atol=1e-10)
    sums32 = ClassMoments.of(torch.as_tensor(X32), torch.as_tensor(y), 7, precision="float32").s1.numpy()
    assert np.max(np.abs(sums32 - naive)) > 1e3 * np.max(np.abs(sums - naive))


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        Moments.of(torch.ones(3, 2), precision="float16")


def test_default_batch_size_budgets_the_compute_dtype():
    from geometry_probe.analysis import default_batch_size
    assert default_batch_size(768) == 128 * 2**20 // (2 * 8 * 768)          # float64 batch + centred copy
    assert default_batch_size(768, precision="float32") == 128 * 2**20 // (2 * 4 * 768)


def test_accumulate_adds_in_place_and_pads_when_classes_grow():
    rng = np.random.default_rng(3)
    X = torch.as_tensor(rng.standard_normal((60, 5)))
    y = torch.as_tensor(np.r_[rng.integers(0, 3, 30), rng.integers(0, 6, 30)])
    first = ClassMoments.of(X[:30], y[:30], 3)
    total = ClassMoments.of(X[:30], y[:30], 3)
    same = total.accumulate(ClassMoments.of(X[:30], y[:30], 3))
    assert same is total                                              # in place
    grown = total.accumulate(ClassMoments.of(X[30:], y[30:], 6))      # more classes: a new, padded sum
    ref_n = np.bincount(y.numpy(), minlength=6).astype(float) + np.r_[np.bincount(y[:30].numpy(), minlength=3), 0, 0, 0]
    np.testing.assert_array_equal(grown.n.numpy(), ref_n)
    ref_s1 = np.zeros((6, 5))
    np.add.at(ref_s1, y.numpy(), X.numpy())
    np.add.at(ref_s1, y[:30].numpy(), X[:30].numpy())
    np.testing.assert_allclose(grown.s1.numpy(), ref_s1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grown.s2.numpy(), X.numpy().T @ X.numpy() + X[:30].numpy().T @ X[:30].numpy(),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(first.n.numpy(), np.bincount(y[:30].numpy(), minlength=3))  # untouched


def test_analyzers_sharing_batches_keep_separate_states():
    """Two analyzers fed the same Batch objects: in-place accumulation must not add into the shared statistics."""
    from geometry_probe.analyzers.neural_collapse import NeuralCollapse
    from geometry_probe.batch import Batch

    rng = np.random.default_rng(4)
    X = torch.as_tensor(rng.standard_normal((90, 4)))
    y = torch.as_tensor(rng.integers(0, 3, 90))
    a, b = NeuralCollapse(ncc=False), NeuralCollapse(ncc=False)
    for start in range(0, 90, 30):
        batch = Batch(X[start:start + 30], y[start:start + 30], n_classes=3)
        a.update_batch(batch)
        b.update_batch(batch)
    ref_s1 = np.zeros((3, 4))
    np.add.at(ref_s1, y.numpy(), X.numpy())
    for analyzer in (a, b):
        np.testing.assert_allclose(analyzer.state.s1.numpy(), ref_s1, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(analyzer.state.s2.numpy(), X.numpy().T @ X.numpy(), rtol=1e-12, atol=1e-12)
    assert a.state is not b.state


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_centred_rows_in_parallel_ranges_equal_numpy(precision):
    from geometry_probe.stats import _centred, _row_ranges

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert [(p.start, p.stop) for p in _row_ranges(10_000)] == [(0, 5000), (5000, 10_000)]
        assert len(_row_ranges(5000)) == 1                                 # too few rows to split
        X = np.random.default_rng(5).standard_normal((10_000, 7)).astype(np.float32) + 100
        shift, rows = _centred(torch.from_numpy(X), precision)
        dtype = np.float64 if precision == "float64" else np.float32
        reference = X[::10_000 // 1024].astype(np.float64).mean(axis=0)        # 1,112 evenly spaced rows
        np.testing.assert_allclose(shift.numpy(), reference, rtol=1e-12 if precision == "float64" else 1e-5)
        assert np.abs(shift.numpy() - X.astype(np.float64).mean(axis=0)).max() < 5 / np.sqrt(1112)   # ~ the mean
        np.testing.assert_array_equal(rows.numpy(), X.astype(dtype) - shift.numpy())
    finally:
        torch.set_num_threads(threads)
