"""Collapse verdicts measured against null baselines.

:func:`diagnose` turns measured geometry into findings a researcher can act on. Each finding
is a plain dict::

    {"name", "verdict": "ok" | "warn" | "fail", "value", "threshold": {"warn", "fail"},
     "baseline", "signal", "explanation"}

``baseline`` is what the same signal reads on an isotropic Gaussian (uniform directions) of
the same size (:mod:`geometry_probe.baselines`), so a value is always judged against what
"no structure at all" would give, not against a bare number.

The sphere signals are measured on a seeded subsample of at most ``max_samples`` rows (all
pairs of it), so diagnosis costs milliseconds whatever N is; the subsample size is in
``signal``.

Thresholds (documented defaults; pass ``thresholds=`` to change them):

=====================  ==================================================  ======  ======
finding                value                                               warn    fail
=====================  ==================================================  ======  ======
over_fusion            top-1 energy of the L2-normalised, uncentred rows   ≥ 0.7   ≥ 0.9
dimensional_collapse   effective rank / isotropic effective rank           ≤ 0.25  ≤ 0.05
class_collapse         fine-label NCC skill within coarse classes          ≤ 0.3   ≤ 0.1
anisotropy             mean pairwise cosine                                ≥ 0.4   ≥ 0.9
low_uniformity         uniformity / uniform-sphere uniformity              ≤ 0.5   ≤ 0.1
=====================  ==================================================  ======  ======

Over-fusion uses the *uncentred* top-1 energy on the sphere because it reaches 1 both when
all rows merge into one point and when they spread along one antipodal line (the rank-1
InfoNCE failure of CLOA), while centring hides the point collapse and the mean cosine misses
the antipodal line (metrics-reference §6.1, §6.5); the explanation says which of the two it is.
A supervised model's features often sit in a cone (mean cosine ≈ 0.8 for the bundled digits
MLP, whose classes stay 98% separable by nearest centre), so the over-fusion thresholds sit
above that: a real fusion drives the top-1 energy past 0.9 (a point with 5% noise: 0.86 at
D = 64; exact: 1.0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from geometry_probe.baselines import (
    isotropic_effective_rank,
    isotropic_sphere_stats,
    sphere_stats,
    uniformity_uniform_sphere,
)
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidLabelsError
from geometry_probe.result import Results

COLLAPSE_FINDINGS = ("over_fusion", "dimensional_collapse", "class_collapse")
THRESHOLDS: dict[str, tuple[float, float]] = {
    "over_fusion": (0.7, 0.9),
    "dimensional_collapse": (0.25, 0.05),
    "class_collapse": (0.3, 0.1),
    "anisotropy": (0.4, 0.9),
    "low_uniformity": (0.5, 0.1),
}
HIGHER_IS_WORSE = {"over_fusion", "anisotropy"}
MAX_SAMPLES = 1024


def diagnose(results: Results, embeddings: Embeddings | None = None, *, coarse_labels: Any = None,
             thresholds: Mapping[str, tuple[float, float]] | None = None, max_samples: int = MAX_SAMPLES,
             random_state: int = 0) -> list[dict[str, Any]]:
    """Collapse findings for analysed embeddings, each judged against a null baseline.

    Parameters
    ----------
    results : Results
        Output of :func:`geometry_probe.analyze`; ``spectrum`` scalars are used when present.
    embeddings : Embeddings, optional
        The analysed embeddings; needed for the sphere signals (over-fusion, anisotropy,
        uniformity) and class collapse. Without them only ``dimensional_collapse`` is judged.
    coarse_labels : array-like of shape (n_samples,), optional
        Coarse (super-class) labels; with the fine labels of ``embeddings`` they enable
        ``class_collapse`` (Xue et al.): fine classes inside one coarse class merging.
    thresholds : mapping, optional
        ``{name: (warn, fail)}`` overriding :data:`THRESHOLDS`.
    max_samples : int, default=1024
        Rows of the seeded subsample used for sphere signals.
    random_state : int, default=0

    Returns
    -------
    list of dict
        One finding per judged signal (see the module docstring).

    Examples
    --------
    >>> import geometry_probe as gp
    >>> emb = gp.Embeddings(gp.datasets.make_collapsed(500, 32, kind="line", noise=0.01))
    >>> [f["verdict"] for f in diagnose(gp.analyze(emb, "spectrum"), emb) if f["name"] == "over_fusion"]
    ['fail']
    """
    limits = {**THRESHOLDS, **(thresholds or {})}
    findings: list[dict[str, Any]] = []
    sample = embeddings.subsample(max_samples, random_state=random_state) if embeddings is not None else None
    rows = sample.rows(np.arange(sample.n_samples)).to(torch.float64) if sample is not None else None
    if rows is not None and bool((torch.linalg.vector_norm(rows, dim=1) == 0).any()):
        rows = rows[torch.linalg.vector_norm(rows, dim=1) > 0]          # directions of zero rows are undefined
    if rows is not None and rows.shape[0] >= 2:
        findings += sphere_findings(sphere_stats(rows), *rows.shape, limits)
    dimensional = _dimensional_collapse(results, limits)
    if dimensional is not None:
        findings.append(dimensional)
    if coarse_labels is not None and embeddings is not None:
        findings.append(_class_collapse(embeddings, coarse_labels, limits, max_samples, random_state))
    return findings


def sphere_findings(measured: Mapping[str, float], n: int, D: int,
                    limits: Mapping[str, tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """Over-fusion, anisotropy and uniformity findings from :func:`~geometry_probe.baselines.sphere_stats`
    of ``n`` rows in ``D`` dimensions, judged against the isotropic null of the same shape."""
    limits = {**THRESHOLDS, **(limits or {})}
    null = isotropic_sphere_stats(n, D)
    signal = f"L2-normalised subsample of {n} rows, all pairs"
    findings = [_over_fusion(measured, null, limits, signal)]
    findings.append(_judge("anisotropy", measured["mean_cosine"], null["mean_cosine"], limits, signal,
                           "mean cosine {v:.3f} (isotropic {b:.3f}): embeddings share a common direction; "
                           "centre them (or whiten) before cosine retrieval, as SimCSE-style fixes do."))
    null_uniformity = uniformity_uniform_sphere(D)
    findings.append(_judge("low_uniformity", measured["uniformity"] / null_uniformity,
                           null["uniformity"] / null_uniformity, limits, signal,
                           "uniformity {raw:.3f} vs {best:.3f} for a uniform sphere (ratio {v:.2f}): points "
                           "cover little of the sphere; a lower temperature or a uniformity term spreads them.",
                           raw=measured["uniformity"], best=null_uniformity))
    return findings


def has_failed_collapse(findings: list[Mapping[str, Any]]) -> bool:
    """True when a collapse finding (over-fusion, dimensional or class collapse) failed."""
    return any(f["name"] in COLLAPSE_FINDINGS and f["verdict"] == "fail" for f in findings)


def _verdict(name: str, value: float, limits: Mapping[str, tuple[float, float]]) -> str:
    warn, fail = limits[name]
    if math.isnan(value):
        return "warn"
    if name in HIGHER_IS_WORSE:
        return "fail" if value >= fail else "warn" if value >= warn else "ok"
    return "fail" if value <= fail else "warn" if value <= warn else "ok"


def _judge(name: str, value: float, baseline: float, limits: Mapping[str, tuple[float, float]], signal: str,
           template: str, **extra: float) -> dict[str, Any]:
    verdict = _verdict(name, value, limits)
    healthy = f"{name.replace('_', ' ')} {value:.3f} is within the healthy range (null baseline {baseline:.3f})."
    explanation = template.format(v=value, b=baseline, **extra) if verdict != "ok" else healthy
    warn, fail = limits[name]
    return {"name": name, "verdict": verdict, "value": value, "threshold": {"warn": warn, "fail": fail},
            "baseline": baseline, "signal": signal, "explanation": explanation}


def _over_fusion(measured: dict[str, float], null: dict[str, float], limits: Mapping[str, tuple[float, float]],
                 signal: str) -> dict[str, Any]:
    shape = ("to one point (mean cosine {mc:.2f})" if measured["mean_cosine"] > 0.5
             else "onto one line through the origin (mean cosine {mc:.2f} but mean |cosine| {mac:.2f})")
    template = ("top-1 energy {v:.3f} (isotropic {b:.3f}): the embeddings are fusing " + shape +
                ", the InfoNCE over-fusion failure; lower the learning rate or add a projector/predictor.")
    return _judge("over_fusion", measured["top1_energy"], null["top1_energy"], limits, signal, template,
                  mc=measured["mean_cosine"], mac=measured["mean_abs_cosine"])


def _dimensional_collapse(results: Results, limits: Mapping[str, tuple[float, float]]) -> dict[str, Any] | None:
    if "spectrum" not in results:
        return None
    N, D = int(results.meta.get("n_samples", 0)), int(results.meta.get("n_features", 0))
    if not N or not D:
        return None
    return dimensional_finding(results["spectrum"].scalars.get("effective_rank", math.nan), N, D,
                               n_classes=int(results.meta.get("n_classes", 0) or 0), limits=limits)


def dimensional_finding(effective_rank: float, n_samples: int, n_features: int, *, n_classes: int = 0,
                        limits: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Dimensional-collapse finding: the centred effective rank over that of an isotropic Gaussian
    of the same N × D (simulated on up to 4096 rows)."""
    limits = {**THRESHOLDS, **(limits or {})}
    N, D = n_samples, n_features
    null_erank = isotropic_effective_rank(N, D)
    value = effective_rank / null_erank if null_erank > 0 else math.nan
    hint = (f" With {n_classes} classes a supervised model is expected to approach rank C-1 = {n_classes - 1} "
            "(neural collapse), which is not a failure." if n_classes > 1 else "")
    finding = _judge("dimensional_collapse", value, 1.0, limits,
                     "effective rank over the isotropic effective rank of the same N x D",
                     "effective rank {erank:.1f} of {D} dimensions is {v:.2f} of the isotropic {null:.1f}: most "
                     "directions carry no variance (Jing et al.); check the projector and augmentations." + hint,
                     erank=effective_rank, D=D, null=null_erank)
    finding["baseline_effective_rank"] = null_erank
    return finding


def _two_fold_ncc_accuracy(X: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Nearest-class-centre accuracy with centres fitted on one half and scored on the other."""
    fold = np.arange(y.size) % 2
    correct = 0
    for fit in (0, 1):
        train, test = fold == fit, fold != fit
        present = [c for c in classes if np.any(train & (y == c))]
        means = np.stack([X[train & (y == c)].mean(axis=0) for c in present])
        d2 = ((X[test][:, None, :] - means[None]) ** 2).sum(axis=2)
        correct += int((np.asarray(present)[d2.argmin(axis=1)] == y[test]).sum())
    return correct / y.size


def _class_collapse(emb: Embeddings, coarse_labels: Any, limits: Mapping[str, tuple[float, float]],
                    max_samples: int, random_state: int) -> dict[str, Any]:
    if emb.labels is None:
        raise InvalidLabelsError("class collapse needs fine labels on the embeddings as well as coarse_labels.")
    coarse = np.asarray(coarse_labels)
    if coarse.shape != (emb.n_samples,):
        raise InvalidLabelsError(f"coarse_labels: expected {emb.n_samples} entries, got shape {coarse.shape}.")
    rng = np.random.default_rng(random_state)
    index = np.sort(rng.choice(emb.n_samples, size=min(emb.n_samples, 4 * max_samples), replace=False))
    X = emb.rows(index).to(torch.float64).cpu().numpy()
    fine, coarse = emb.labels[index], coarse[index]
    skills = []
    for group in np.unique(coarse):
        mask = coarse == group
        classes = np.unique(fine[mask])
        if classes.size < 2:
            continue
        accuracy = _two_fold_ncc_accuracy(X[mask], fine[mask], classes)
        chance = 1.0 / classes.size
        skills.append((accuracy - chance) / (1 - chance))
    value = float(np.mean(skills)) if skills else math.nan
    return _judge("class_collapse", value, 0.0, limits,
                  "two-fold nearest-fine-class-centre skill (accuracy above chance, scaled to [0, 1]) within each "
                  "coarse class",
                  "fine classes inside each coarse class are hardly separable (skill {v:.2f}, chance 0): the "
                  "representation merged them (class collapse, Xue et al.); weaken label supervision or add "
                  "instance-level contrast.")
