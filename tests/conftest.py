"""Shared fixtures: seeded data; GPU tests skipped without CUDA."""

import os

import numpy as np
import pytest
import torch
from hypothesis import settings

# CI runs the same hypothesis examples every time (reproducible verdicts); locally they vary.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; none available on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def labelled_blobs(rng):
    """float64, 4 classes of unequal size, D=16."""
    counts = [30, 25, 40, 17]
    centres = rng.normal(scale=3.0, size=(4, 16))
    labels = np.repeat(np.arange(4), counts)
    X = centres[labels] + rng.normal(size=(labels.size, 16))
    perm = rng.permutation(labels.size)
    return torch.as_tensor(X[perm]), torch.as_tensor(labels[perm])
