"""Naive NumPy oracles, written independently of the library (SVD of the full matrix)."""

import numpy as np


def singular_values(X, *, center):
    X = np.asarray(X, dtype=np.float64)
    if center:
        X = X - X.mean(axis=0)
    return np.linalg.svd(X, compute_uv=False)


def entropy_rank(weights):
    w = weights[weights > 0]
    return float(np.exp(-(w * np.log(w)).sum()))


def effective_rank(X):
    s = singular_values(X, center=True)
    return entropy_rank(s / s.sum())


def rankme(X, eps=1e-7):
    s = singular_values(X, center=False)
    return entropy_rank(s / s.sum() + eps)


def stable_rank(X):
    s = singular_values(X, center=True)
    return float((s**2).sum() / s[0] ** 2)


def participation_ratio(X):
    lam = np.linalg.eigvalsh(np.cov(np.asarray(X, dtype=np.float64), rowvar=False))
    return float(lam.sum() ** 2 / (lam**2).sum())


def top1_energy(X):
    s = singular_values(X, center=False)
    return float(s[0] ** 2 / (s**2).sum())


def alpha_req(X, first=11, last=100):
    """Weighted least squares of log explained-variance ratio on -log rank, weights 1/rank."""
    lam = singular_values(X, center=True) ** 2
    ratio = lam / lam.sum()
    ranks = np.arange(first, last + 1, dtype=np.float64)
    y = np.log(ratio[first - 1:last])
    A = np.stack([-np.log(ranks), np.ones_like(ranks)], axis=1)
    W = np.diag(1.0 / ranks)
    return float(np.linalg.solve(A.T @ W @ A, A.T @ W @ y)[0])
