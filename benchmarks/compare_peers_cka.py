"""geometry-probe's representation comparison against torch_cka, anatome and netrep (issue 20).

Each peer runs unmodified on the same float64 inputs; its output is converted to our convention
by the stated identity (e.g. netrep's angle θ = arccos(CKA): we compare cos θ), and the absolute
difference is reported. Where a default convention differs (anatome's SVCCA keeps directions by
the cumulative sum of singular values of the uncentred data, ours by the share of variance of the
centred data, as in Raghu et al. 2017), the peer is also run with the other's choice made equal
and the difference of the defaults is stated.

Peers: torch_cka 0.21 (PyPI, ``pip install --no-deps torch-cka==0.21``); anatome and netrep are not
on PyPI: point ``PEERS_SRC`` at a folder holding their ``anatome/`` and ``netrep/`` packages (a
checkout of github.com/moskomule/anatome and github.com/ahwillia/netrep). anatome imports
torchvision's feature-extraction helpers at module level, used only by its model wrapper; a stub
module stands in for them here (torchvision's PyPI wheel for this torch is a CUDA build).

Run: python benchmarks/compare_peers_cka.py  (writes results/compare_peers_cka.txt)
"""

import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

import geometry_probe as gp

RESULTS = Path(__file__).parent / "results"


def load_peers():
    peers = {}
    src = os.environ.get("PEERS_SRC", "/tmp/peers/src")
    if src not in sys.path:
        sys.path.append(src)
    try:
        import torch_cka.cka

        peers["torch_cka"] = torch_cka.cka
    except ImportError as err:
        print(f"torch_cka not available: {err}")
    for name in ("torchvision", "torchvision.models", "torchvision.models.feature_extraction"):
        sys.modules.setdefault(name, types.ModuleType(name))
    stub = sys.modules["torchvision.models.feature_extraction"]
    for attr in ("get_graph_node_names", "create_feature_extractor"):
        if not hasattr(stub, attr):
            setattr(stub, attr, None)
    try:
        import faiss

        peers["faiss"] = faiss
    except ImportError as err:
        print(f"faiss not available: {err}")
    try:
        import anatome.distance

        peers["anatome"] = anatome.distance
    except ImportError as err:
        print(f"anatome not available: {err}")
    try:
        import netrep.metrics

        peers["netrep"] = netrep.metrics
    except ImportError as err:
        print(f"netrep not available: {err}")
    return peers


def cases():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((600, 40)) * np.linspace(3, 0.3, 40) + 1.5
    B = A[:, :25] @ rng.standard_normal((25, 30)) + 2.0 * rng.standard_normal((600, 30)) - 0.5
    C = rng.standard_normal((2000, 24))
    D = C @ rng.standard_normal((24, 24)) * 0.3 + rng.standard_normal((2000, 24))
    shared, gap = rng.standard_normal((3000, 64)), rng.standard_normal(64)
    E = shared + 1.3 * rng.standard_normal((3000, 64)) + gap
    F = shared + 1.3 * rng.standard_normal((3000, 64)) - gap
    return {"600 x 40 vs 600 x 30": (A, B), "2000 x 24 vs 2000 x 24": (C, D), "paired 3000 x 64": (E, F)}


def torch_cka_debiased(module, A, B):
    """torch_cka's CKA.compare on one batch: its _HSIC on the diagonal-zeroed raw Gram matrices."""
    holder = types.SimpleNamespace(device="cpu")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)                 # its ones vector is made with the default dtype
    try:
        X, Y = torch.as_tensor(A), torch.as_tensor(B)
        K, L = X @ X.T, Y @ Y.T
        K.fill_diagonal_(0.0)
        L.fill_diagonal_(0.0)
        hsic = module.CKA._HSIC
        return hsic(holder, K, L) / math.sqrt(hsic(holder, K, K) * hsic(holder, L, L))
    finally:
        torch.set_default_dtype(previous)


def anatome_directions(x, rate):
    """anatome's SVCCA rule: how many singular values of the uncentred data have cumulative share < rate."""
    s = np.linalg.svd(x, compute_uv=False)
    return int((np.cumsum(s) / s.sum() < rate).sum())


def compare_case(name, A, B, peers):
    ours = gp.compare(A, B, knn_k=10, device="cpu").scalars()
    rows = []

    def row(metric, peer, value, convention):
        mine = ours[f"compare/{metric}"] if isinstance(metric, str) else metric[1]
        label = metric if isinstance(metric, str) else metric[0]
        rows.append((name, label, peer, mine, value, abs(mine - value), convention))

    if "torch_cka" in peers:
        row("cka_debiased", "torch_cka", torch_cka_debiased(peers["torch_cka"], A, B),
            "unbiased HSIC on uncentred features (one batch): the estimator is shift-invariant")
    if "anatome" in peers:
        d = peers["anatome"]
        x, y = torch.as_tensor(A), torch.as_tensor(B)
        row("linear_cka", "anatome", 1 - float(d.linear_cka_distance(x, y, False)), "1 - distance")
        row("cka_debiased", "anatome", 1 - float(d.linear_cka_distance(x, y, True)), "1 - distance (reduce_bias)")
        row("procrustes", "anatome", 2 * float(d.orthogonal_procrustes_distance(x.clone(), y.clone())),
            "anatome reports half: 1 - ||A^T B||_*")
        row("cca_mean", "anatome", float(d.cca(x, y, "svd")[2].mean()), "mean of its canonical correlations")
        xc, yc = x - x.mean(0), y - y.mean(0)
        keep = (anatome_directions(xc.numpy(), 0.99), anatome_directions(yc.numpy(), 0.99))
        same = gp.compare(xc.numpy(), yc.numpy(), knn_k=None, svcca_directions=keep, device="cpu").scalars()
        row(("svcca_mean (same directions)", same["compare/svcca_mean"]), "anatome",
            1 - float(d.svcca_distance(xc, yc, 0.99, "svd")),
            f"centred input, our directions set to anatome's count {keep}")
        default = 1 - float(d.svcca_distance(x, y, 0.99, "svd"))
        rows.append((name, "svcca_mean (defaults)", "anatome", ours["compare/svcca_mean"], default,
                     abs(ours["compare/svcca_mean"] - default),
                     ("convention differs: anatome keeps singular values of the uncentred data up to 99% of their "
                      "sum; we keep principal directions up to 99% of the variance (Raghu et al.)")))
    if "netrep" in peers:
        m = peers["netrep"]
        row("linear_cka", "netrep", math.cos(m.LinearCKA(center_columns=True).score(A, B)), "cos of its angle")
        theta = m.LinearMetric(alpha=1.0, center_columns=True, score_method="angular").fit_score(A, B)
        row("procrustes", "netrep", 2 - 2 * math.cos(theta), "2 - 2 cos of its angle arccos(||A^T B||_*)")
        if A.shape[1] == B.shape[1]:
            theta = m.LinearMetric(alpha=0.0, center_columns=True, score_method="angular").fit_score(A, B)
            row("cca_mean", "netrep", math.cos(theta), "cos of its angle at alpha=0 (full whitening)")
    if "faiss" in peers:
        rows.extend(faiss_rows(name, A, B, ours, peers["faiss"]))
    return rows


def faiss_rows(name, A, B, ours, faiss, k=10):
    """kNN overlap from faiss IndexFlatIP neighbour lists of the unit rows (k + 1 found, self dropped), and,
    for equal widths, paired Recall@k from its top-10 search both ways."""
    def unit(X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    def neighbours(X):
        index = faiss.IndexFlatIP(X.shape[1])
        index.add(unit(X))
        _, found = index.search(unit(X), k + 1)
        return [set(row[row != i][:k]) for i, row in enumerate(found)]

    na, nb = neighbours(A), neighbours(B)
    value = float(np.mean([len(x & y) / len(x | y) for x, y in zip(na, nb)]))
    rows = [(name, "knn_overlap (k=10)", "faiss", ours["compare/knn_overlap"], value,
             abs(ours["compare/knn_overlap"] - value), "Jaccard of IndexFlatIP lists on unit rows")]
    if A.shape[1] == B.shape[1]:
        paired = gp.compare(A, B, paired=True, knn_k=None, device="cpu").scalars()
        for direction, (queries, base) in (("a_to_b", (A, B)), ("b_to_a", (B, A))):
            index = faiss.IndexFlatIP(A.shape[1])
            index.add(unit(base))
            _, found = index.search(unit(queries), 10)
            for kk in (1, 5, 10):
                hit = float((found[:, :kk] == np.arange(len(A))[:, None]).any(axis=1).mean())
                key = f"recall_at_{kk}_{direction}"
                rows.append((name, key, "faiss", paired[f"compare/{key}"], hit, abs(paired[f"compare/{key}"] - hit),
                             "top-k search, hit when the partner is listed"))
    return rows


def main():
    peers = load_peers()
    lines = ["representation comparison vs peers (float64 inputs; |diff| = |ours - peer in our convention|)",
             f"peers: {', '.join(sorted(peers)) or 'none'}", ""]
    header = f"{'case':24s} {'metric':30s} {'peer':10s} {'ours':>16s} {'peer value':>16s} {'|diff|':>9s}  convention"
    lines.append(header)
    worst = 0.0
    for name, (A, B) in cases().items():
        for case, metric, peer, mine, value, diff, convention in compare_case(name, A, B, peers):
            lines.append(f"{case:24s} {metric:30s} {peer:10s} {mine:16.12f} {value:16.12f} {diff:9.1e}  {convention}")
            if "defaults" not in metric:
                worst = max(worst, diff)
    lines += ["", f"largest difference where the definitions agree: {worst:.1e} (target 1e-6)"]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare_peers_cka.txt").write_text(text)


if __name__ == "__main__":
    main()
