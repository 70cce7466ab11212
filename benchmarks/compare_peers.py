"""Side-by-side comparison with the peer libraries users run today (issue #7), 2 CPU threads.

On the same seeded inputs, each peer's number next to geometry-probe's, the wall-time ratio,
and the peer's number **reproduced from geometry-probe building blocks** on the peer's
convention (the numerical proof of each definition-level explanation):

* reptrix 0.1.0: ``alpha.get_alpha`` (α-ReQ) and ``rankme.get_rankme`` (its "RankMe" is the
  entropy of the centred covariance eigenvalues, not Garrido's singular values of raw Z);
* scikit-dimension: ``TwoNN`` (linear fit with 10% discarded, or censored MLE) vs our
  ``knn/twonn_id`` (MLE on chord distances of L2-normalised rows);
* lightly: ``std_of_l2_normalized`` vs 1/√D and our exact mean cosine;
* MONAI: ``EmbeddingCollapseMetric`` (effective-rank score, centroid similarity, per-class rank);
* faiss ``IndexFlatIP``/``IndexFlatL2`` and sklearn ``NearestNeighbors`` vs our exact kNN;
* the Wang & Isola ``torch.pdist`` uniformity vs our tiled exact uniformity (time, peak memory).

Values on 5000 x 128 data sets, times on 20000 x 768 isotropic Gaussian rows (one run each,
best of up to three for runs under a second). Output: ``benchmarks/results/compare_peers.txt``.

Run (timings need the machine to themselves)::

    flock /tmp/bench.lock python benchmarks/compare_peers.py
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import geometry_probe as gp
from geometry_probe import datasets
from geometry_probe.functional import contrastive, knn, spectrum
from geometry_probe.functional.class_geometry import off_diagonal
from geometry_probe.stats import Moments

VALUE_SHAPE = (5000, 128)
TIMING_SHAPE = (20_000, 768)
N_CLASSES = 10
KNN_K = 10
THREADS = 2
RESULTS = Path(__file__).parent / "results" / "compare_peers.txt"
PEERS = ("reptrix", "scikit-dimension", "lightly", "monai", "faiss-cpu", "scikit-learn", "torch")


# ---------------------------------------------------------------- inputs

def value_datasets() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The five seeded 5000 x 128 float32 inputs (rows, labels or None)."""
    n, d = VALUE_SHAPE
    rng = np.random.default_rng(0)
    low_rank = datasets.make_low_rank(n, d, rank=10) + 0.01 * rng.standard_normal((n, d))
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    power_law = rng.standard_normal((n, d)) * np.arange(1, d + 1) ** -0.5 @ rotation   # λ_i ∝ 1/i
    mixture, labels = datasets.make_simplex_etf(N_CLASSES, d, n // N_CLASSES, noise=0.1)
    sets = {"isotropic": (datasets.make_isotropic(n, d), None),
            "low_rank_10+noise": (low_rank, None),
            "power_law_1/i": (power_law, None),
            "point+1e-3_noise": (datasets.make_collapsed(n, d, kind="point", noise=1e-3), None),
            "mixture_10_classes": (mixture, labels)}
    return {name: (X.astype(np.float32), y) for name, (X, y) in sets.items()}


def timing_rows() -> np.ndarray:
    """The 20000 x 768 float32 isotropic Gaussian rows of the timing runs."""
    return datasets.make_isotropic(*TIMING_SHAPE).astype(np.float32)


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- peers

def peer_versions() -> dict[str, str]:
    """Installed version of every peer, or 'not installed'."""
    versions = {}
    for name in PEERS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def lightly_std_of_l2_normalized() -> Callable[[torch.Tensor], torch.Tensor]:
    """lightly's ``std_of_l2_normalized``, executed from its installed source.

    ``lightly.utils.debug`` imports torchvision at module level. The torchvision wheel PyPI
    pairs with torch 2.13.0 (0.28.0) is a CUDA build whose ``_C.so`` links
    ``libtorch_cuda.so`` and fails to load against the CPU torch, so when the import fails the
    function's own definition (it needs only torch) is compiled from the installed file.
    """
    try:
        from lightly.utils.debug import std_of_l2_normalized
        return std_of_l2_normalized
    except (ImportError, RuntimeError, OSError):
        origin = importlib.util.find_spec("lightly.utils.debug").origin
        tree = ast.parse(Path(origin).read_text())
        node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "std_of_l2_normalized")
        namespace = {"torch": torch}
        exec(compile(ast.Module(body=[node], type_ignores=[]), origin, "exec"), namespace)  # noqa: S102
        return namespace["std_of_l2_normalized"]


def drop_self(indices: np.ndarray, k: int) -> np.ndarray:
    """First ``k`` neighbours of each row other than the row itself (by index, not position)."""
    is_self = indices == np.arange(len(indices))[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")
    return np.take_along_axis(indices, order, axis=1)[:, :k]


def neighbour_agreement(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Mean over rows of |our k-set ∩ their k-set| / k, in percent."""
    return float(100 * (ours[:, :, None] == theirs[:, None, :]).any(axis=2).mean())


def faiss_knn(U: np.ndarray, k: int, index_name: str) -> np.ndarray:
    """faiss exact kNN of unit rows (``IndexFlatIP`` or ``IndexFlatL2``), self dropped."""
    import faiss

    faiss.omp_set_num_threads(THREADS)
    index = getattr(faiss, index_name)(U.shape[1])
    index.add(U)
    return drop_self(index.search(U, k + 1)[1], k)


def sklearn_knn(U: np.ndarray, k: int) -> np.ndarray:
    """sklearn brute-force cosine kNN, self dropped."""
    from sklearn.neighbors import NearestNeighbors

    model = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine").fit(U)
    return drop_self(model.kneighbors(U, return_distance=False), k)


# ---------------------------------------------------------------- geometry-probe conventions

def reptrix_rankme_convention(X: np.ndarray) -> float:
    """reptrix's "RankMe" from our spectra: exp entropy of λ/Σλ + 1e-7, λ the centred
    covariance eigenvalues (``rankme_from_spectrum`` takes squared singular values, so λ²)."""
    spectra = spectrum.Spectra.of(Moments.of(torch.from_numpy(X)))
    return spectrum.rankme_from_spectrum(spectra.centred ** 2, spectra.n_samples, eps=1e-7)


def monai_rank_score_convention(X: np.ndarray) -> float:
    """MONAI's effective-rank score from ours: 1 − erank(centred σ) / min(N − 1, D)."""
    return 1.0 - spectrum.effective_rank(X) / min(X.shape[0] - 1, X.shape[1])


def monai_centroid_convention(X: np.ndarray, labels: np.ndarray) -> float:
    """MONAI's centroid similarity from our uncentred raw class-mean cosines: (mean_{c<c'} cos + 1)/2."""
    res = gp.analyze(X, ["orthogonality"], labels=labels, params={"orthogonality": {"normalize": False}},
                     verdicts=False)
    return (float(off_diagonal(res["orthogonality"].arrays["class_mean_cosine"]).mean()) + 1) / 2


def twonn_linear_fit(similarities: torch.Tensor, *, discard_fraction: float = 0.1) -> float:
    """Facco et al.'s linear TwoNN fit (scikit-dimension's default) from our kNN cosines:
    slope through the origin of −ln(1 − i/N) on ln μ_(i) over the smallest (1 − f)·N ratios."""
    r = torch.sqrt((2 - 2 * similarities[:, :2].to(torch.float64)).clamp_min(0)).numpy()
    mu = np.sort(r[:, 1] / r[:, 0])
    n = mu.size
    keep = int(n * (1 - discard_fraction))
    x = np.log(mu[:keep])
    y = -np.log(1 - np.arange(1, keep + 1) / n)
    return float(x @ y / (x @ x))


def float64_knn(U: np.ndarray, k: int) -> tuple[torch.Tensor, np.ndarray]:
    """Brute-force cosine kNN in float64 (an N x N Gram; small N only): the ground truth that
    float32 near-ties are judged against. Returns (similarities, indices), self excluded."""
    V = torch.from_numpy(U).to(torch.float64)
    gram = V @ V.T
    gram.fill_diagonal_(-math.inf)
    sims, indices = gram.topk(k, dim=1)
    return sims, indices.numpy()


def pdist_uniformity(U: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola's reference: log of the mean of exp(−t‖u_i − u_j‖²) over torch.pdist's pairs i < j."""
    return float(torch.pdist(U).pow(2).mul(-t).exp().mean().log())


# ---------------------------------------------------------------- measurement

def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(value, seconds): one run, or the best of three when a run takes under a second."""
    best, value = math.inf, None
    for _ in range(3):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
        if best >= 1.0:
            break
    return value, best


def _status(field: str) -> int:
    """A memory field of /proc/self/status in bytes (VmRSS: now, VmHWM: peak)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def uniformity_child(case: str) -> None:
    """In a fresh process: time one uniformity computation at TIMING_SHAPE and print
    JSON with the value, seconds and peak resident memory above the loaded input."""
    torch.set_num_threads(THREADS)
    U = torch.from_numpy(unit_rows(timing_rows()))
    before = _status("VmRSS")
    started = time.perf_counter()
    value = contrastive.uniformity(U) if case == "ours" else pdist_uniformity(U)
    seconds = time.perf_counter() - started
    print(json.dumps({"value": value, "seconds": seconds, "extra_peak": _status("VmHWM") - before}))


def uniformity_in_subprocess(case: str) -> dict[str, float]:
    """Run :func:`uniformity_child` in a fresh interpreter (clean peak-memory reading)."""
    out = subprocess.run([sys.executable, __file__, "--uniformity-child", case], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- sections

def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    """Plain-text table with aligned columns (floats to 6 significant digits)."""
    def cell(value: object) -> str:
        return f"{value:.6g}" if isinstance(value, float) else str(value)
    cells = [[cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in cells]


def spectral_values(sets: dict) -> list[str]:
    """RankMe and α-ReQ: ours, reptrix, and reptrix's convention rebuilt from our spectra."""
    from reptrix import alpha, rankme

    rows = []
    for name, (X, _) in sets.items():
        T = torch.from_numpy(X)
        rows.append([name, spectrum.rankme(X), float(rankme.get_rankme(T)), reptrix_rankme_convention(X),
                     spectrum.alpha_req(X), float(alpha.get_alpha(T)[0]), spectrum.alpha_req(X.astype(np.float64)),
                     float(alpha.get_alpha(T.double())[0])])
    return ["## RankMe and alpha-ReQ vs reptrix (5000 x 128, float32 input)",
            *_table(["data", "gp rankme", "reptrix rankme", "gp on reptrix conv.", "gp alpha",
                     "reptrix alpha", "gp alpha f64", "reptrix alpha f64"], rows)]


def monai_values(sets: dict) -> list[str]:
    """MONAI EmbeddingCollapseMetric next to its indicators rebuilt from ours."""
    from monai.metrics import EmbeddingCollapseMetric

    metric = EmbeddingCollapseMetric(reduction="none")
    rows, lines = [], []
    for name, (X, labels) in sets.items():
        scores = metric(embeddings=torch.from_numpy(X), labels=None if labels is None else torch.from_numpy(labels))
        rows.append([name, float(scores["effective_rank_score"]), monai_rank_score_convention(X)])
        if labels is not None:
            per_class = [float(scores[f"per_class_rank_{c}"]) for c in range(N_CLASSES)]
            ours = [monai_rank_score_convention(X[labels == c]) for c in range(N_CLASSES)]
            lines += [f"{name}: centroid_similarity MONAI {float(scores['centroid_similarity']):.6f}, "
                      f"gp (mean uncentred class-mean cosine + 1)/2 = {monai_centroid_convention(X, labels):.6f}",
                      f"{name}: per_class_rank max |MONAI - gp| over {N_CLASSES} classes = "
                      f"{max(abs(a - b) for a, b in zip(per_class, ours)):.2e}",
                      f"{name}: separation MONAI {float(scores['separation']):.6f} "
                      "((1 - cosine silhouette)/2; no geometry-probe counterpart)"]
    return ["## MONAI EmbeddingCollapseMetric (5000 x 128)",
            *_table(["data", "MONAI effective_rank_score", "gp 1 - erank/min(N-1,D)"], rows), *lines]


def lightly_values(sets: dict) -> list[str]:
    """lightly's std of L2-normalised rows vs 1/√D and the bound √((1 − mean cos)/D)."""
    std_of_l2_normalized = lightly_std_of_l2_normalized()
    rows = []
    for name, (X, _) in sets.items():
        d = X.shape[1]
        value = float(std_of_l2_normalized(torch.from_numpy(X)))
        bound = math.sqrt((1 - contrastive.mean_cosine(X)) / d)
        rows.append([name, value, 1 / math.sqrt(d), bound, value / bound, spectrum.effective_rank(X)])
    X = sets["power_law_1/i"][0]
    rotation, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((X.shape[1],) * 2))
    rotated = (X @ rotation).astype(np.float32)
    before, after = (float(std_of_l2_normalized(torch.from_numpy(Y))) for Y in (X, rotated))
    return ["## lightly std_of_l2_normalized (5000 x 128)",
            *_table(["data", "lightly", "1/sqrt(D)", "gp sqrt((1-mean_cos)/D)", "ratio", "gp erank"], rows),
            f"power_law_1/i after a random rotation: lightly {after:.6f} (before {before:.6f}); gp erank "
            f"{spectrum.effective_rank(rotated):.4f} (before {spectrum.effective_rank(X):.4f})"]


def twonn_values(sets: dict) -> list[str]:
    """TwoNN: ours vs scikit-dimension (default linear fit, censored MLE, raw rows)."""
    from skdim.id import TwoNN

    rows = []
    for name, (X, _) in sets.items():
        U = unit_rows(X)
        sims, _ = knn.knn_search(torch.from_numpy(U), 2)
        ours = knn.twonn_dimension(sims)
        n = U.shape[0]
        exact = knn.twonn_dimension(float64_knn(U, 2)[0])
        rows.append([name, ours, TwoNN().fit(U).dimension_, twonn_linear_fit(sims),
                     TwoNN(discard_fraction=0.0, method="mle").fit(U).dimension_, ours * (n - 1) / n,
                     exact * (n - 1) / n, TwoNN().fit(X).dimension_])
    return ["## TwoNN vs scikit-dimension (5000 x 128; skdim on the L2-normalised rows unless 'raw')",
            *_table(["data", "gp twonn_id (MLE)", "skdim default", "gp linear fit, 10% dropped",
                     "skdim mle, discard 0", "gp * (N-1)/N",
                     "gp f64 cosines * (N-1)/N", "skdim default, raw rows"], rows)]


def knn_values(sets: dict) -> list[str]:
    """Neighbour-set agreement of our exact cosine kNN with faiss and sklearn, and of every
    method with float64 brute force."""
    rows = []
    for name, (X, _) in sets.items():
        U = unit_rows(X)
        ours = knn.knn_search(torch.from_numpy(U), KNN_K)[1].numpy()
        truth = float64_knn(U, KNN_K)[1]
        peers = [faiss_knn(U, KNN_K, "IndexFlatIP"), faiss_knn(U, KNN_K, "IndexFlatL2"), sklearn_knn(U, KNN_K)]
        rows.append([name, *(neighbour_agreement(ours, p) for p in peers),
                     *(neighbour_agreement(truth, p) for p in [ours, *peers])])
    return [f"## exact {KNN_K}-NN neighbour-set agreement in % (5000 x 128, L2-normalised rows)",
            *_table(["data", "gp|faiss IP", "gp|faiss L2", "gp|sklearn", "f64|gp", "f64|faiss IP",
                     "f64|faiss L2", "f64|sklearn"], rows)]


def uniformity_values(sets: dict) -> list[str]:
    """Our tiled exact uniformity vs the torch.pdist reference on every data set."""
    rows = []
    for name, (X, _) in sets.items():
        ours = contrastive.uniformity(X)
        reference = pdist_uniformity(torch.from_numpy(unit_rows(X)))
        rows.append([name, ours, reference, abs(ours - reference)])
    return ["## uniformity (t = 2) vs torch.pdist reference (5000 x 128)",
            *_table(["data", "gp uniformity", "pdist reference", "|diff|"], rows)]


def timings() -> list[str]:
    """Wall time of every peer and of our counterpart at TIMING_SHAPE."""
    from monai.metrics import EmbeddingCollapseMetric
    from reptrix import alpha, rankme
    from skdim.id import TwoNN

    X = timing_rows()
    T, U = torch.from_numpy(X), unit_rows(X)
    std_of_l2_normalized = lightly_std_of_l2_normalized()
    monai_rank = EmbeddingCollapseMetric(reduction="none", include_indicators=["effective_rank"])
    pairs = [
        ("RankMe", lambda: spectrum.rankme(X), "reptrix get_rankme", lambda: float(rankme.get_rankme(T))),
        ("alpha-ReQ", lambda: spectrum.alpha_req(X), "reptrix get_alpha", lambda: float(alpha.get_alpha(T)[0])),
        ("effective rank score", lambda: monai_rank_score_convention(X), "MONAI effective_rank",
         lambda: float(monai_rank(embeddings=T)["effective_rank_score"])),
        ("mean cosine bound", lambda: math.sqrt((1 - contrastive.mean_cosine(X)) / X.shape[1]),
         "lightly std_of_l2_normalized", lambda: float(std_of_l2_normalized(T))),
        ("TwoNN", lambda: knn.twonn_dimension(knn.knn_search(torch.from_numpy(U), 2)[0]),
         "skdim TwoNN", lambda: TwoNN().fit(U).dimension_),
        (f"{KNN_K}-NN", lambda: knn.knn_search(torch.from_numpy(U), KNN_K)[1].numpy()[0, 0],
         "faiss IndexFlatIP", lambda: faiss_knn(U, KNN_K, "IndexFlatIP")[0, 0]),
        (f"{KNN_K}-NN", lambda: knn.knn_search(torch.from_numpy(U), KNN_K)[1].numpy()[0, 0],
         "faiss IndexFlatL2", lambda: faiss_knn(U, KNN_K, "IndexFlatL2")[0, 0]),
        (f"{KNN_K}-NN", lambda: knn.knn_search(torch.from_numpy(U), KNN_K)[1].numpy()[0, 0],
         "sklearn NearestNeighbors", lambda: sklearn_knn(U, KNN_K)[0, 0]),
    ]
    rows = []
    for metric, ours_fn, peer, peer_fn in pairs:
        ours_value, ours_s = timed(ours_fn)
        peer_value, peer_s = timed(peer_fn)
        rows.append([metric, f"{ours_s:.3f}", peer, f"{peer_s:.3f}", f"{peer_s / ours_s:.2f}x",
                     float(ours_value), float(peer_value)])
    ours, ref = uniformity_in_subprocess("ours"), uniformity_in_subprocess("pdist")
    rows.append(["uniformity", f"{ours['seconds']:.3f}", "torch.pdist reference", f"{ref['seconds']:.3f}",
                 f"{ref['seconds'] / ours['seconds']:.2f}x", ours["value"], ref["value"]])
    return [f"## wall time, {TIMING_SHAPE[0]} x {TIMING_SHAPE[1]} isotropic Gaussian float32, {THREADS} threads "
            f"(kNN rows: first neighbour index of row 0); 1-min load average at the end {os.getloadavg()[0]:.2f}",
            *_table(["gp metric", "gp s", "peer", "peer s", "peer/gp", "gp value", "peer value"], rows),
            f"uniformity extra peak memory: gp {ours['extra_peak'] / 2**20:.0f} MiB, "
            f"torch.pdist {ref['extra_peak'] / 2**20:.0f} MiB"]


def _emit(lines: list[str], block: list[str]) -> None:
    """Print a section as soon as it is done and append it (after a blank line) to ``lines``."""
    print("\n".join(["", *block]), flush=True)
    lines += ["", *block]


def main() -> None:
    """Run every section, print it and write RESULTS."""
    torch.set_num_threads(THREADS)
    versions = peer_versions()
    lines = ["# geometry-probe vs peers (benchmarks/compare_peers.py)",
             f"geometry-probe {gp.__version__}; " + "; ".join(f"{k} {v}" for k, v in versions.items())]
    print("\n".join(lines), flush=True)
    sets = value_datasets()
    for section in (spectral_values, monai_values, lightly_values, twonn_values, knn_values, uniformity_values):
        _emit(lines, section(sets))
    _emit(lines, timings())
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--uniformity-child":
        uniformity_child(sys.argv[2])
    else:
        main()
