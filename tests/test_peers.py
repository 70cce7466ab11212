"""Agreement with the peer libraries (docs/peer-comparison.md): each peer's value equals ours or
the documented transformation of ours. Peers that are not installed are skipped
(``pip install torch==2.13.0 ".[bench]"``); the reptrix numbers from its own test suite and the
torch.pdist uniformity reference run everywhere."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from geometry_probe.functional import contrastive, knn, spectrum
from geometry_probe.stats import Moments

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_peers.py"


def _conventions():
    """benchmarks/compare_peers.py: the peers' conventions rebuilt from geometry-probe."""
    spec = importlib.util.spec_from_file_location("compare_peers", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conventions = _conventions()


def _power_law(n, d, seed=0):
    """Gaussian rows with covariance eigenvalues 1/i, randomly rotated (float64)."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return rng.standard_normal((n, d)) * np.arange(1, d + 1) ** -0.5 @ rotation


def _unit(X):
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- peer-independent references

def test_reptrix_suite_numbers_from_our_spectra():
    # reptrix tests: torch.manual_seed(0); torch.randn(1000, 1024) -> get_rankme 613.4726, get_alpha 0.148936
    torch.manual_seed(0)
    centred = spectrum.eigvals_desc(Moments.of(torch.randn(1000, 1024)).scatter(center=True))   # λ, descending
    assert spectrum.rankme_from_spectrum(centred**2, 1000, eps=1e-7) == pytest.approx(613.4726, rel=1e-6)
    assert spectrum.alpha_req_from_spectrum(centred) == pytest.approx(0.148936, abs=1e-6)


def test_pdist_uniformity_reference_equals_exact_uniformity():
    # Wang & Isola's reference: torch.pdist(x).pow(2).mul(-t).exp().mean().log() on unit rows
    X = torch.randn(600, 24, generator=torch.Generator().manual_seed(3))
    U = X / X.norm(dim=1, keepdim=True)
    for t in (1.0, 2.0, 5.0):
        reference = float(torch.pdist(U.double()).pow(2).mul(-t).exp().mean().log())
        assert contrastive.uniformity(X, t=t) == pytest.approx(reference, abs=1e-6)


# ---------------------------------------------------------------- installed peers

def test_reptrix_rankme_is_entropy_of_centred_eigenvalues():
    rankme = pytest.importorskip("reptrix.rankme", reason="reptrix not installed (bench extra)")
    X = _power_law(800, 64)
    assert float(rankme.get_rankme(torch.from_numpy(X))) == pytest.approx(
        conventions.reptrix_rankme_convention(X), rel=1e-8)


def test_reptrix_alpha_equals_ours():
    alpha = pytest.importorskip("reptrix.alpha", reason="reptrix not installed (bench extra)")
    X = _power_law(800, 128, seed=1)
    assert float(alpha.get_alpha(torch.from_numpy(X))[0]) == pytest.approx(spectrum.alpha_req(X), abs=1e-6)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")   # skdim's unused linear-fit axis at F = 1
def test_skdim_twonn_mle_without_discard_is_ours_times_n_minus_one_over_n():
    skdim_id = pytest.importorskip("skdim.id", reason="scikit-dimension not installed")
    U = _unit(np.random.default_rng(2).standard_normal((1500, 8)))
    ours = knn.twonn_dimension(knn.knn_search(torch.from_numpy(U), 2)[0])
    theirs = skdim_id.TwoNN(discard_fraction=0.0, method="mle").fit(U).dimension_
    assert theirs == pytest.approx(ours * (len(U) - 1) / len(U), rel=1e-5)


def test_skdim_twonn_default_is_the_linear_fit_of_our_neighbours():
    skdim_id = pytest.importorskip("skdim.id", reason="scikit-dimension not installed")
    U = _unit(np.random.default_rng(3).standard_normal((1500, 8)))
    sims = knn.knn_search(torch.from_numpy(U), 2)[0]
    assert skdim_id.TwoNN().fit(U).dimension_ == pytest.approx(conventions.twonn_linear_fit(sims), rel=1e-5)


def test_lightly_std_equals_mean_cosine_bound_when_axes_are_exchangeable():
    pytest.importorskip("lightly", reason="lightly not installed (bench extra)")
    std_of_l2_normalized = conventions.lightly_std_of_l2_normalized()
    v = np.random.default_rng(4).standard_normal(32)
    X = np.stack([np.roll(v, shift) for shift in range(32)])     # every column holds the same values
    bound = math.sqrt((1 - contrastive.mean_cosine(X)) / X.shape[1])
    assert float(std_of_l2_normalized(torch.from_numpy(X))) == pytest.approx(bound, rel=1e-10)
    Y = _power_law(500, 32, seed=5)                            # unequal axes: strictly below the bound
    assert float(std_of_l2_normalized(torch.from_numpy(Y))) < math.sqrt((1 - contrastive.mean_cosine(Y)) / 32)


def test_monai_collapse_scores_from_ours():
    metrics = pytest.importorskip("monai.metrics", reason="monai not installed (bench extra)")
    rng = np.random.default_rng(6)
    labels = np.repeat(np.arange(4), 100)
    X = (rng.standard_normal((4, 20)) * 2)[labels] + rng.standard_normal((400, 20))
    scores = metrics.EmbeddingCollapseMetric(reduction="none")(
        embeddings=torch.from_numpy(X), labels=torch.from_numpy(labels))
    assert float(scores["effective_rank_score"]) == pytest.approx(conventions.monai_rank_score_convention(X),
                                                                  abs=1e-6)
    assert float(scores["centroid_similarity"]) == pytest.approx(conventions.monai_centroid_convention(X, labels),
                                                                 abs=1e-6)
    for c in range(4):
        assert float(scores[f"per_class_rank_{c}"]) == pytest.approx(
            conventions.monai_rank_score_convention(X[labels == c]), abs=1e-6)


@pytest.mark.parametrize("peer", ["IndexFlatIP", "IndexFlatL2", "sklearn"])
def test_exact_neighbours_agree_with_faiss_and_sklearn(peer):
    if peer != "sklearn":
        pytest.importorskip("faiss", reason="faiss-cpu not installed")
    U = _unit(np.random.default_rng(7).standard_normal((1000, 32)))
    ours = knn.knn_search(torch.from_numpy(U), 5)[1].numpy()
    theirs = conventions.sklearn_knn(U, 5) if peer == "sklearn" else conventions.faiss_knn(U, 5, peer)
    assert conventions.neighbour_agreement(ours, theirs) == 100.0
