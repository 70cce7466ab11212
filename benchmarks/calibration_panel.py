"""Collapse verdicts on the calibration panel (issue 15 §5): every finding against known truth.

Builds the panel of ``tests/_panel.py`` (embedding sets whose truth comes from scikit-learn and
NumPy: a held-out linear probe, cosine 20-NN, the top-1 energy of the normalised rows), runs
``gp.analyze(X, labels=labels)`` and the label-free ``gp.analyze(X)`` on each, and prints

* one row per set: its truths, probe / kNN accuracy, top-1 energy and the verdict of every
  finding in ``Results.findings`` with labels and without (``—`` where a finding is absent);
* per finding, a confusion table of truth × verdict (ok / warn / fail), with and without labels;
* the mismatches: ``over_fusion`` not failing exactly on the fused sets, ``information_loss``
  not failing exactly on the information-lost sets (with labels), failing on a set that keeps its
  information or missing a white-noise fusion (without labels), and a description finding
  (``dimensional_collapse``, ``anisotropy``, ``low_uniformity``) warning or failing on a healthy
  supervised model with labels.

Truths per finding: ``over_fusion``: fused / not fused; ``information_loss``: lost / kept with
labels, the label-free truth (lost / kept / undecidable) without; every other finding: the set's
condition, one of ``low-rank`` (the dimensional-collapse family), ``fused``, ``lost`` (probe at
chance) or ``healthy``.

Run: ``python benchmarks/calibration_panel.py`` (writes ``benchmarks/results/calibration_panel.txt``
and ``.md``); ``python benchmarks/calibration_panel.py KEY ...`` runs only the named builders of
``tests/_panel.builders()`` and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch

import geometry_probe as gp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import _panel  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ORDER = ("over_fusion", "information_loss", "dimensional_collapse", "anisotropy", "low_uniformity",
         "class_collapse")
VERDICTS = ("ok", "warn", "fail")
DESCRIPTIONS = ("dimensional_collapse", "anisotropy", "low_uniformity")


def condition(item: _panel.PanelSet) -> str:
    """The set's condition, the truth axis of findings other than over-fusion and information loss."""
    if item.family == "dimensional collapse":
        return "low-rank"
    return "fused" if item.fused else "lost" if item.information_lost else "healthy"


def truth(name: str, item: _panel.PanelSet, labelled: bool) -> str:
    """The truth a finding's verdict is tabulated against."""
    if name == "over_fusion":
        return "fused" if item.fused else "not fused"
    if name == "information_loss":
        return ("lost" if item.information_lost else "kept") if labelled else item.label_free_truth
    return condition(item)


def mismatch(name: str, item: _panel.PanelSet, labelled: bool, verdict: str) -> str | None:
    """Why a verdict contradicts the truth, or None (only the rules the panel's test asserts)."""
    if name == "over_fusion":
        expected = "fail" if item.fused else "ok"
        return None if verdict == expected else f"expected {expected}"
    if name == "information_loss" and labelled:
        expected = "fail" if item.information_lost else "ok"
        return None if verdict == expected else f"expected {expected}"
    if name == "information_loss":
        if item.label_free_truth == "lost" and verdict != "fail":
            return "white-noise fusion not failed"
        if item.label_free_truth == "kept" and verdict == "fail":
            return "fails although the information is kept"
        return None
    if name in DESCRIPTIONS and labelled and item.family == "supervised MLP" and verdict != "ok":
        return "healthy supervised model not ok"
    return None


def findings_of(item: _panel.PanelSet, labelled: bool) -> dict[str, dict]:
    """``{name: finding}`` of ``gp.analyze`` on the set, with or without its labels."""
    results = gp.analyze(item.X, labels=item.labels if labelled else None)
    return {f["name"]: f for f in results.findings}


def run(keys: list[str] | None) -> tuple[list[_panel.PanelSet], list[dict], dict[str, float]]:
    """Build the panel and analyse each set; returns the sets, their findings and the timings."""
    started = time.perf_counter()
    panel = _panel.build_panel(keys)
    built = time.perf_counter()
    verdicts = [{"labels": findings_of(item, True), "none": findings_of(item, False)} for item in panel]
    return panel, verdicts, {"build_s": built - started, "analyze_s": time.perf_counter() - built}


def report(panel: list[_panel.PanelSet], verdicts: list[dict], timings: dict[str, float]) -> tuple[str, str]:
    """The plain-text and Markdown reports."""
    seen = {name for v in verdicts for side in v.values() for name in side}
    names = [n for n in ORDER if n in seen] + sorted(seen - set(ORDER))
    names = names + [n for n in ("information_loss",) if n not in names]
    head = ["set", "family", "N", "D", "C", "fused", "info lost", "label-free", "probe", "chance", "kNN", "top-1"]
    head += [f"{n} (labels / none)" for n in names]
    rows = []
    for item, v in zip(panel, verdicts):
        cells = [item.name, item.family, str(item.n_samples), str(item.n_features), str(item.n_classes),
                 "yes" if item.fused else "no", "yes" if item.information_lost else "no", item.label_free_truth,
                 f"{item.probe_accuracy:.3f}", f"{item.chance:.3f}", f"{item.knn_accuracy:.3f}",
                 f"{item.top1_energy:.4f}"]
        cells += [" / ".join(v[side][n]["verdict"] if n in v[side] else "—" for side in ("labels", "none"))
                  for n in names]
        rows.append(cells)
    text = [f"Calibration panel: {len(panel)} sets; build {timings['build_s']:.1f} s, "
            f"analyze (with and without labels) {timings['analyze_s']:.1f} s; torch {torch.__version__}", ""]
    md = [f"# Calibration panel: {len(panel)} embedding sets", "",
          f"Built by `python benchmarks/calibration_panel.py` (`tests/_panel.py`): build {timings['build_s']:.1f} s, "
          f"analyze with and without labels {timings['analyze_s']:.1f} s. Truths from scikit-learn / NumPy "
          "(see `tests/_panel.py`): fused = CLOA geometry (top-1 energy of the normalised rows ≥ 0.9 for "
          "networks, by construction for synthetic fusions); info lost = linear-probe skill < 0.1; label-free "
          "truth = lost only for white-noise fusions and the over-fused digits encoder (rows equal to float32 "
          "rounding), undecidable where no label-free rule can tell.", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    widths = [max(len(r[i]) for r in [head[:12]] + [r[:12] for r in rows]) for i in range(12)]
    text.append("  ".join(h.ljust(w) for h, w in zip(head[:12], widths)) + "  " + "  ".join(names))
    for cells in rows:
        text.append("  ".join(c.ljust(w) for c, w in zip(cells[:12], widths)) + "  "
                    + "  ".join(c.ljust(len(n)) for c, n in zip(cells[12:], names)))
        md.append("| " + " | ".join(cells) + " |")
    problems = []
    for name in names:
        for side, labelled in (("labels", True), ("none", False)):
            table: Counter = Counter()
            for item, v in zip(panel, verdicts):
                verdict = v[side][name]["verdict"] if name in v[side] else "—"
                table[truth(name, item, labelled), verdict] += 1
                why = mismatch(name, item, labelled, verdict) if name in v[side] else None
                if why:
                    problems.append(f"{name} ({'with labels' if labelled else 'label-free'}): {item.name} "
                                    f"-> {verdict} (value {v[side][name]['value']:.4g}); {why}")
            truths = sorted({t for t, _ in table})
            columns = [c for c in (*VERDICTS, "—") if any(table[t, c] for t in truths)]
            title = f"{name}, {'with labels' if labelled else 'label-free'}"
            text += ["", title, "  " + "truth".ljust(12) + "".join(c.rjust(6) for c in columns)]
            text += ["  " + t.ljust(12) + "".join(str(table[t, c]).rjust(6) for c in columns) for t in truths]
            md += ["", f"**{title}**", "", "| truth | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
            md += [f"| {t} | " + " | ".join(str(table[t, c]) for c in columns) + " |" for t in truths]
    text += ["", f"Mismatches ({len(problems)}):"] + [f"  {p}" for p in problems]
    md += ["", f"## Mismatches ({len(problems)})", ""] + [f"- {p}" for p in problems]
    return "\n".join(text) + "\n", "\n".join(md) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", nargs="*", help="builders of tests/_panel.builders() to run (default: all)")
    args = parser.parse_args()
    text, md = report(*run(args.keys or None))
    print(text)
    if not args.keys:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "calibration_panel.txt").write_text(text)
        (RESULTS / "calibration_panel.md").write_text(md)


if __name__ == "__main__":
    main()
