"""Collapse verdicts measured against null baselines, with geometry and information apart.

:func:`diagnose` turns measured geometry into findings a researcher can act on. Each finding
is a plain dict::

    {"name", "verdict": "ok" | "warn" | "fail", "kind": "verdict" | "description", "value",
     "threshold": {"warn", "fail"}, "baseline", "signal", "explanation", "evidence"}

``baseline`` is what the same signal reads on an isotropic Gaussian (uniform directions) of the
same size (:mod:`geometry_probe.baselines`). ``kind`` is ``"description"`` when a value beyond
its threshold describes the geometry without signalling a failure (the verdict is then
``ok``); ``"verdict"`` otherwise (the verdict judges a failure). ``threshold["warn"]`` is None for findings without a warning
band. ``evidence`` holds the numbers the verdict used (accuracies, chance, subsample size).

Two questions are kept apart:

* **Is the geometry fused?** (``over_fusion``): are the L2-normalised rows concentrated on one
  point or one antipodal line, the geometry CLOA describes? A yes/no on the geometry: it fails
  when the top-1 energy reaches 0.9 and is ok otherwise. A cone, which every ReLU network
  produces, is not fused.
* **Is information lost?** (``information_loss``): are the samples still distinguishable? With
  labels, from the best of leave-one-out weighted kNN accuracy and two-fold nearest-class-centre
  accuracy (on the subsample, and the ``knn`` analyzer's accuracy on all rows when it ran), as
  skill above chance. Without labels, on fused rows: from whether what remains off the dominant
  direction is indistinguishable from white noise of the same size (the
  :func:`~geometry_probe.baselines.residual_noise_ratio`, the residual spectrum's top eigenvalue
  and spread against the Marchenko–Pastur law, near 1), or nothing at all, or fewer than half the
  rows differ (:data:`DISTINCT_SHARE`). Its limits: rows that are not fused are not judged
  without labels (a cone of white noise, or hundreds of small classes whose means look random,
  read ``ok``); whitened embeddings look white; a residual with structure unrelated to what you
  need, or information carried only by the sign along an antipodal line (a two-class model),
  cannot be told from kept information without labels.

Thresholds (documented defaults; pass ``thresholds=`` to change them):

=============================  ==================================================  ======  ======
finding                        value                                               warn    fail
=============================  ==================================================  ======  ======
over_fusion                    top-1 energy of the L2-normalised, uncentred rows   —       ≥ 0.9
information_loss               label skill (accuracy − chance) / (1 − chance)      —       ≤ 0.1
information_loss_label_free    residual noise ratio, judged on fused rows          —       ≤ 1.2
dimensional_collapse           effective rank / isotropic effective rank           ≤ 0.25  ≤ 0.05
class_collapse                 fine-label NCC skill within coarse classes          ≤ 0.3   ≤ 0.1
anisotropy                     mean pairwise cosine                                ≥ 0.4   ≥ 0.9
low_uniformity                 uniformity / uniform-sphere uniformity              ≤ 0.5   ≤ 0.1
=============================  ==================================================  ======  ======

**Descriptions are not failures.** ``anisotropy`` and ``low_uniformity`` beyond their thresholds,
and a ``dimensional_collapse`` whose effective rank is at least C − 1 with C classes, are
reported as descriptions (verdict ok, kind ``description``) when the information is shown to
be kept (labels: skill above the fail threshold; without labels: structure above the noise
ratio); they warn or fail only otherwise.

Values come from all rows where the analyzers computed them (``contrastive/mean_cosine``,
``contrastive/uniformity``, ``knn/accuracy``, ``spectrum/effective_rank``); the top-1 energy of
normalised rows and the residual noise ratio come from a seeded subsample of at most
``max_samples`` rows (fewer for wide rows, so that its Gram costs at most :data:`SUBSAMPLE_FLOPS`:
256 rows at D = 16,384), and the finding's ``signal`` says so. The whole diagnosis runs on one BLAS thread and costs
0.05–0.25 s on any input (``benchmarks/bench_verdicts.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from geometry_probe._threads import one_blas_thread
from geometry_probe.baselines import isotropic_effective_rank, isotropic_sphere_stats, uniformity_uniform_sphere
from geometry_probe.embeddings import Embeddings
from geometry_probe.exceptions import InvalidLabelsError
from geometry_probe.result import Results
from geometry_probe.subsample_geometry import SubsampleGeometry, gram64, measure_subsample, two_fold_ncc_accuracy

COLLAPSE_FINDINGS = ("over_fusion", "information_loss", "dimensional_collapse", "class_collapse")
THRESHOLDS: dict[str, tuple[float | None, float]] = {
    "over_fusion": (None, 0.9),
    "information_loss": (None, 0.1),
    "information_loss_label_free": (None, 1.2),
    "dimensional_collapse": (0.25, 0.05),
    "class_collapse": (0.3, 0.1),
    "anisotropy": (0.4, 0.9),
    "low_uniformity": (0.5, 0.1),
}
HIGHER_IS_WORSE = {"over_fusion", "anisotropy"}
DISTINCT_SHARE = 0.5             # label-free: fused rows of which fewer than half differ carry nothing
MAX_SAMPLES = 1024
SUBSAMPLE_BYTES = 256 * 2**20
SUBSAMPLE_FLOPS = 2**30          # n² D of the subsample's Gram: ~0.1 s on one core


def diagnose(results: Results, embeddings: Embeddings | None = None, *, coarse_labels: Any = None,
             thresholds: Mapping[str, tuple[float | None, float]] | None = None, max_samples: int = MAX_SAMPLES,
             random_state: int = 0) -> list[dict[str, Any]]:
    """Collapse findings for analysed embeddings, each judged against a null baseline.

    Parameters
    ----------
    results : Results
        Output of :func:`geometry_probe.analyze`; full-data scalars (``spectrum``, ``contrastive``,
        ``knn``) are used when present.
    embeddings : Embeddings, optional
        The analysed embeddings; needed for the sphere signals (over-fusion, information loss,
        anisotropy, uniformity) and class collapse. Without them only ``dimensional_collapse``
        is judged.
    coarse_labels : array-like of shape (n_samples,), optional
        Coarse (super-class) labels; with the fine labels of ``embeddings`` they enable
        ``class_collapse`` (Xue et al.): fine classes inside one coarse class merging.
    thresholds : mapping, optional
        ``{name: (warn, fail)}`` overriding :data:`THRESHOLDS` (``warn`` None: no warning band).
    max_samples : int, default=1024
        Rows of the seeded subsample used for the sphere signals.
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
    with one_blas_thread():
        geometry = _measure(embeddings, max_samples, random_state) if embeddings is not None else None
        findings: list[dict[str, Any]] = []
        kept = None
        if geometry is not None:
            information = _information_loss(geometry, results, embeddings, limits)
            kept = information["evidence"]["kept"]
            findings += [_over_fusion(geometry, information, results, limits), information]
            findings += _sphere_descriptions(geometry, results, kept, limits)
        dimensional = _dimensional_collapse(results, kept, limits)
        if dimensional is not None:
            findings.append(dimensional)
        if coarse_labels is not None and embeddings is not None:
            findings.append(_class_collapse(embeddings, coarse_labels, limits, max_samples, random_state))
    return findings


def sphere_findings(measured: Mapping[str, float], n: int, D: int,
                    limits: Mapping[str, tuple[float | None, float]] | None = None) -> list[dict[str, Any]]:
    """Over-fusion, label-free information loss, anisotropy and uniformity findings from
    :func:`~geometry_probe.baselines.sphere_stats` of ``n`` rows in ``D`` dimensions (the
    training monitor's snapshot), judged as :func:`diagnose` judges them without labels."""
    limits = {**THRESHOLDS, **(limits or {})}
    geometry = SubsampleGeometry(n=n, n_features=D, **{k: measured[k] for k in (
        "top1_energy", "residual_noise_ratio", "distinct_share", "mean_cosine", "mean_abs_cosine", "uniformity")})
    nothing = Results([])                                  # a snapshot has no analyzer results
    information = _information_loss(geometry, nothing, None, limits)
    return [_over_fusion(geometry, information, nothing, limits), information,
            *_sphere_descriptions(geometry, nothing, information["evidence"]["kept"], limits)]


def has_failed_collapse(findings: list[Mapping[str, Any]]) -> bool:
    """True when a collapse finding (over-fusion, information loss, dimensional or class collapse) failed."""
    return any(f["name"] in COLLAPSE_FINDINGS and f["verdict"] == "fail" for f in findings)


def dimensional_finding(effective_rank: float, n_samples: int, n_features: int, *, n_classes: int = 0,
                        kept: bool | None = None,
                        limits: Mapping[str, tuple[float | None, float]] | None = None) -> dict[str, Any]:
    """Dimensional-collapse finding: the centred effective rank over that of an isotropic Gaussian
    of the same N × D. With ``n_classes`` ≥ 2 classes whose information is ``kept``, an effective
    rank of at least C − 1 is the geometry supervised training produces (neural collapse) and is
    reported as a description."""
    limits = {**THRESHOLDS, **(limits or {})}
    N, D = n_samples, n_features
    null_erank = isotropic_effective_rank(N, D)
    value = effective_rank / null_erank if null_erank > 0 else math.nan
    finding = _judge("dimensional_collapse", value, 1.0, limits,
                     "effective rank over the isotropic effective rank of the same N x D",
                     "effective rank {erank:.1f} of {D} dimensions is {v:.2f} of the isotropic {null:.1f}: most "
                     "directions carry no variance (Jing et al.); check the projector and augmentations.",
                     erank=effective_rank, D=D, null=null_erank)
    finding["baseline_effective_rank"] = null_erank
    if finding["verdict"] != "ok" and kept and n_classes > 1 and effective_rank >= n_classes - 1:
        _describe(finding, f"effective rank {effective_rank:.1f} of {D} dimensions ({value:.2f} of the isotropic "
                           f"{null_erank:.1f}) is at least C - 1 = {n_classes - 1} with the classes kept apart: the "
                           "low-dimensional class geometry supervised training produces (neural collapse), "
                           "not a dimensional collapse.")
    return finding


def _measure(emb: Embeddings, max_samples: int, random_state: int) -> SubsampleGeometry | None:
    """Subsample geometry of at most ``max_samples`` rows (fewer when wide), zero rows left out."""
    n = min(emb.n_samples, max_samples, _affordable_rows(emb.n_features))
    index = np.arange(emb.n_samples) if n >= emb.n_samples else np.sort(
        np.random.default_rng(random_state).choice(emb.n_samples, size=n, replace=False))
    rows = emb.rows(index).detach().cpu().numpy()
    labels = None if emb.labels is None else np.asarray(emb.labels)[index]
    nonzero = np.einsum("ij,ij->i", rows, rows, dtype=np.float64) > 0    # directions of zero rows are undefined
    if not nonzero.all():
        rows, labels = rows[nonzero], None if labels is None else labels[nonzero]
    if rows.shape[0] < 2:
        return None
    return measure_subsample(rows, labels)


def _affordable_rows(n_features: int) -> int:
    """Subsample rows whose float32 copy fits :data:`SUBSAMPLE_BYTES` and whose Gram costs at most
    :data:`SUBSAMPLE_FLOPS` (1024 rows up to D = 1024, 256 at D = 16,384, 73 at D = 200,000); never below 64."""
    D = max(n_features, 1)
    return max(64, min(SUBSAMPLE_BYTES // (4 * D), math.isqrt(SUBSAMPLE_FLOPS // D)))


def _verdict(name: str, value: float, limits: Mapping[str, tuple[float | None, float]]) -> str:
    warn, fail = limits[name]
    if math.isnan(value):
        return "warn"
    if name in HIGHER_IS_WORSE:
        return "fail" if value >= fail else "warn" if warn is not None and value >= warn else "ok"
    return "fail" if value <= fail else "warn" if warn is not None and value <= warn else "ok"


def _judge(name: str, value: float, baseline: float, limits: Mapping[str, tuple[float | None, float]], signal: str,
           template: str, *, key: str | None = None, **extra: float) -> dict[str, Any]:
    """A finding for ``value`` judged with the thresholds of ``key`` (default ``name``)."""
    key = key or name
    verdict = _verdict(key, value, limits)
    healthy = f"{name.replace('_', ' ')} {value:.3f} is within the healthy range (null baseline {baseline:.3f})."
    explanation = template.format(v=value, b=baseline, **extra) if verdict != "ok" else healthy
    warn, fail = limits[key]
    return {"name": name, "verdict": verdict, "kind": "verdict", "value": value,
            "threshold": {"warn": warn, "fail": fail}, "baseline": baseline, "signal": signal,
            "explanation": explanation}


def _describe(finding: dict[str, Any], explanation: str) -> None:
    """Turn a finding beyond its threshold into a description: verdict ok, kind description."""
    finding.update(verdict="ok", kind="description", explanation=explanation)


def _subsample_signal(geometry: SubsampleGeometry) -> str:
    return f"seeded subsample of {geometry.n} rows, L2-normalised, all pairs"


def _full_or_subsample(results: Results, family: str, metric: str, fallback: float, geometry: SubsampleGeometry,
                       n_samples: int | None) -> tuple[float, str]:
    """The analyzers' full-data value of ``family/metric`` when it was computed, else the subsample's."""
    value = results[family].scalars.get(metric) if family in results else None
    if value is not None and math.isfinite(value):
        return float(value), f"{family}/{metric} over all {n_samples or 'N'} rows"
    return fallback, _subsample_signal(geometry)


def _label_evidence(geometry: SubsampleGeometry, results: Results, emb: Embeddings | None) -> dict[str, Any]:
    """The best label accuracy available, as skill above chance, with every accuracy seen."""
    candidates = [("kNN accuracy (leave-one-out, subsample)", geometry.knn_accuracy, geometry.chance),
                  ("nearest-class-centre accuracy (two-fold, subsample)", geometry.ncc_accuracy, geometry.chance)]
    full_knn = results["knn"].scalars.get("accuracy") if "knn" in results else None
    if full_knn is not None and math.isfinite(full_knn) and emb is not None and emb.labels is not None:
        counts = np.bincount(np.asarray(emb.labels))
        candidates.insert(0, ("kNN accuracy (all rows)", float(full_knn), float(counts.max() / counts.sum())))
    scored = [(source, acc, chance, (acc - chance) / (1 - chance)) for source, acc, chance in candidates
              if acc is not None and chance is not None and chance < 1]
    if not scored:
        return {}
    source, accuracy, chance, skill = max(scored, key=lambda s: s[3])
    return {"mode": "labels", "skill": skill, "accuracy": accuracy, "chance": chance, "source": source,
            "accuracies": {s: round(a, 4) for s, a, _, _ in scored}}


def _information_loss(geometry: SubsampleGeometry, results: Results, emb: Embeddings | None,
                      limits: Mapping[str, tuple[float | None, float]]) -> dict[str, Any]:
    labelled = _label_evidence(geometry, results, emb) if geometry.chance is not None else {}
    if labelled:
        finding = _judge("information_loss", labelled["skill"], 0.0, limits,
                         f"best label accuracy as skill above chance ({labelled['source']})",
                         "the samples are no longer distinguishable by class: {source} {acc:.3f} against chance "
                         "{chance:.3f} (skill {v:.3f}): the representation lost the class information.",
                         source=labelled["source"], acc=labelled["accuracy"], chance=labelled["chance"])
        finding["evidence"] = {**labelled, "kept": finding["verdict"] == "ok"}
        if finding["verdict"] == "ok":
            finding["explanation"] = (f"class information kept: {labelled['source']} {labelled['accuracy']:.3f} "
                                      f"against chance {labelled['chance']:.3f} (skill {labelled['skill']:.3f}).")
        return finding
    ratio, distinct = geometry.residual_noise_ratio, geometry.distinct_share
    fused = geometry.top1_energy >= limits["over_fusion"][1]
    copies = distinct < DISTINCT_SHARE
    structured = math.isfinite(ratio) and ratio > limits["information_loss_label_free"][1] and not copies
    finding = _judge("information_loss", ratio, 1.0, limits,
                     f"residual noise ratio: the spectrum off the dominant direction against the Marchenko-Pastur law "
                     f"of white noise ({_subsample_signal(geometry)}; no labels)", "",
                     key="information_loss_label_free")
    finding["evidence"] = {"mode": "label_free", "residual_noise_ratio": ratio, "distinct_share": distinct,
                           "fused": fused, "kept": True if structured else None}
    if fused and copies:
        finding.update(verdict="fail", explanation=(
            f"fused rows of which only {distinct:.1%} differ: different inputs got the same embedding, so the samples "
            "are no longer distinguishable."))
    elif fused and not structured and math.isfinite(ratio):
        finding.update(verdict="fail", explanation=(
            f"fused rows with nothing but white noise left off the dominant direction (residual noise ratio "
            f"{ratio:.2f}, white noise about 1): the samples are no longer distinguishable."))
    elif structured:
        finding.update(verdict="ok", explanation=(
            f"structure rises above white noise off the dominant direction (residual noise ratio {ratio:.2f}, white "
            "noise about 1): the samples stay distinguishable; pass labels to check it is the information you need."))
    else:
        finding.update(verdict="ok", explanation=(
            "too few dimensions to tell structure from noise without labels; pass labels to judge."
            if not math.isfinite(ratio) else
            f"the rows are not fused and no structure beyond white noise is visible without labels (residual noise "
            f"ratio {ratio:.2f}); whitened embeddings look like this too: pass labels to judge."))
    return finding


def _over_fusion(geometry: SubsampleGeometry, information: dict[str, Any], results: Results,
                 limits: Mapping[str, tuple[float | None, float]]) -> dict[str, Any]:
    energy, null = geometry.top1_energy, isotropic_sphere_stats(geometry.n, geometry.n_features)["top1_energy"]
    finding = _judge("over_fusion", energy, null, limits,
                     f"top-1 energy of the L2-normalised, uncentred rows ({_subsample_signal(geometry)})", "")
    shape = (f"one point (mean cosine {geometry.mean_cosine:.2f})" if geometry.mean_cosine > 0.5 else
             f"one line through the origin (mean cosine {geometry.mean_cosine:.2f} but mean |cosine| "
             f"{geometry.mean_abs_cosine:.2f})")
    raw = results["spectrum"].scalars.get("top1_energy") if "spectrum" in results else None
    table = (f"; the table's spectrum/top1_energy, {raw:.3f}, is of the raw rows over all of them"
             if raw is not None and abs(raw - energy) > 0.005 else "")
    evidence = information["evidence"]
    if finding["verdict"] == "ok":
        finding["explanation"] = (f"top-1 energy {energy:.3f} (isotropic {null:.3f}{table}) is below "
                                  f"{limits['over_fusion'][1]:g}: the rows are not merged onto one point or line.")
    elif evidence.get("mode") == "labels" and evidence["kept"]:
        finding["explanation"] = (
            f"fused geometry: top-1 energy {energy:.3f} (isotropic {null:.3f}{table}), the rows sit near {shape}; "
            f"class information kept: {evidence['source']} {evidence['accuracy']:.3f} (chance "
            f"{evidence['chance']:.3f}). Cosine similarities are compressed into a narrow range: centre the "
            "embeddings before cosine retrieval or clustering.")
    elif evidence["kept"]:
        finding["explanation"] = (
            f"fused geometry: top-1 energy {energy:.3f} (isotropic {null:.3f}{table}), the rows sit near {shape}; "
            f"structure remains off that direction (residual noise ratio {evidence['residual_noise_ratio']:.2f}), "
            "so the samples may still be distinguishable: pass labels to tell a fused-but-informative space from "
            "a collapse.")
    elif information["verdict"] != "fail":
        finding["explanation"] = (
            f"fused geometry: top-1 energy {energy:.3f} (isotropic {null:.3f}{table}), the rows sit near {shape}; "
            "whether the samples stay distinguishable cannot be told here: pass labels.")
    else:
        finding["explanation"] = (
            f"top-1 energy {energy:.3f} (isotropic {null:.3f}{table}): the embeddings merged into {shape} and the "
            "information is gone (see information_loss), the InfoNCE over-fusion failure (CLOA); lower the learning "
            "rate, or add a projector/predictor.")
    return finding


def _sphere_descriptions(geometry: SubsampleGeometry, results: Results, kept: bool | None,
                         limits: Mapping[str, tuple[float | None, float]]) -> list[dict[str, Any]]:
    """Anisotropy and uniformity: failures only when the information is not shown to be kept."""
    n_samples = results.meta.get("n_samples")
    null = isotropic_sphere_stats(geometry.n, geometry.n_features)
    mean_cosine, cosine_signal = _full_or_subsample(results, "contrastive", "mean_cosine", geometry.mean_cosine,
                                                    geometry, n_samples)
    anisotropy = _judge("anisotropy", mean_cosine, null["mean_cosine"], limits, cosine_signal,
                        "mean cosine {v:.3f} (isotropic {b:.3f}): embeddings share a common direction; centre them "
                        "(or whiten) before cosine retrieval, as SimCSE-style fixes do.")
    uniformity, uniformity_signal = _full_or_subsample(results, "contrastive", "uniformity", geometry.uniformity,
                                                       geometry, n_samples)
    best = uniformity_uniform_sphere(geometry.n_features)
    low = _judge("low_uniformity", uniformity / best, null["uniformity"] / best, limits, uniformity_signal,
                 "uniformity {raw:.3f} vs {best:.3f} for a uniform sphere (ratio {v:.2f}): points cover little of "
                 "the sphere; a lower temperature or a uniformity term spreads them.", raw=uniformity, best=best)
    if kept:
        why = _kept_because(results, geometry)
        if anisotropy["verdict"] != "ok":
            _describe(anisotropy, f"mean cosine {mean_cosine:.3f}: the rows share a common direction (a cone, as "
                                  f"ReLU/GELU features and untrained networks give); {why}, so this describes the "
                                  "geometry rather than a failure. Centre the embeddings before cosine retrieval.")
        if low["verdict"] != "ok":
            _describe(low, f"uniformity {uniformity:.3f} vs {best:.3f} for a uniform sphere (ratio "
                           f"{uniformity / best:.2f}): the rows cover a small part of the sphere; {why}, so this "
                           "describes the geometry rather than a failure.")
    return [anisotropy, low]


def _kept_because(results: Results, geometry: SubsampleGeometry) -> str:
    if geometry.chance is not None:
        return "the classes stay distinguishable"
    return "structure rises above white noise"


def _dimensional_collapse(results: Results, kept: bool | None,
                          limits: Mapping[str, tuple[float | None, float]]) -> dict[str, Any] | None:
    if "spectrum" not in results:
        return None
    N, D = int(results.meta.get("n_samples", 0)), int(results.meta.get("n_features", 0))
    if not N or not D:
        return None
    return dimensional_finding(results["spectrum"].scalars.get("effective_rank", math.nan), N, D,
                               n_classes=int(results.meta.get("n_classes", 0) or 0), kept=kept, limits=limits)


def _class_collapse(emb: Embeddings, coarse_labels: Any, limits: Mapping[str, tuple[float | None, float]],
                    max_samples: int, random_state: int) -> dict[str, Any]:
    if emb.labels is None:
        raise InvalidLabelsError("class collapse needs fine labels on the embeddings as well as coarse_labels.")
    coarse = np.asarray(coarse_labels)
    if coarse.shape != (emb.n_samples,):
        raise InvalidLabelsError(f"coarse_labels: expected {emb.n_samples} entries, got shape {coarse.shape}.")
    rng = np.random.default_rng(random_state)
    n = min(emb.n_samples, 4 * max_samples, 2 * _affordable_rows(emb.n_features))
    index = np.sort(rng.choice(emb.n_samples, size=n, replace=False))
    X = emb.rows(index).detach().cpu().numpy()
    fine, coarse = np.asarray(emb.labels)[index], coarse[index]
    skills = []
    for group in np.unique(coarse):
        mask = coarse == group
        classes = np.unique(fine[mask])
        if classes.size < 2:
            continue
        codes = np.unique(fine[mask], return_inverse=True)[1].ravel()
        accuracy = two_fold_ncc_accuracy(gram64(X[mask]), codes)
        chance = 1.0 / classes.size
        skills.append((accuracy - chance) / (1 - chance))
    value = float(np.mean(skills)) if skills else math.nan
    return _judge("class_collapse", value, 0.0, limits,
                  "two-fold nearest-fine-class-centre skill (accuracy above chance, scaled to [0, 1]) within each "
                  "coarse class",
                  "fine classes inside each coarse class are hardly separable (skill {v:.2f}, chance 0): the "
                  "representation merged them (class collapse, Xue et al.); weaken label supervision or add "
                  "instance-level contrast.")

