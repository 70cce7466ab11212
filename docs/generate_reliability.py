"""Write docs/reliability.md: every reliability case with its outcome, from one pytest run, plus the measured
scale and monitor-soak results (benchmarks/results/bench_scale.txt, bench_monitor_soak.txt).

Each case is a test: its description is the summary paragraph of the test's docstring (with the
parameter id for parametrised tests), its outcome the one pytest reports (passed, skipped with the
reason, failed). Cases are grouped by the headings of the reliability issue.

Run from anywhere (a few minutes; exit status 1 if a case failed or a listed test no longer exists)::

    python docs/generate_reliability.py
"""

from __future__ import annotations

import datetime
import inspect
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"
RESULTS = ROOT / "benchmarks" / "results"

# heading -> node-id prefixes (a file, or file::test); every test matching a prefix is a case
SECTIONS = {
    "Untrusted input": [
        "tests/test_io.py",
        "tests/test_cli.py::test_bad_input_exit_2_one_line_nothing_written",
        "tests/test_checkpoints.py::test_pickled_code_is_refused_and_never_runs",
        "tests/test_checkpoints.py::test_a_whole_pickled_model_is_refused",
        "tests/test_cli_extract.py::test_pickled_checkpoint_is_refused",
        "tests/test_reporting.py::test_script_json_cannot_close_a_script_block",
        "tests/test_reporting.py::test_report_escapes_user_strings_in_page_and_figure_json",
        "tests/test_reporting.py::test_static_report_has_no_script",
    ],
    "Fuzzing": ["tests/test_fuzz.py"],
    "Hostile and unusual input files": ["tests/test_fuzz_inputs.py"],
    "Wide embeddings and many classes": [
        "tests/test_wide_many_classes.py",
        "tests/test_information_verdicts.py::test_wide_embeddings_are_diagnosed_in_bounded_memory",
        "tests/test_diagnosis.py::test_the_nulls_of_wide_shapes_cost_no_memory",
    ],
    "Outputs, signals and results JSON": ["tests/test_fuzz_outputs.py"],
    "Scale and faults": [
        "tests/test_output_errors.py",
        "tests/test_reliability.py::test_ctrl_c_during_analyze_exits_130_and_writes_nothing",
        "tests/test_monitor_soak.py",
        "tests/test_monitor.py::test_nan_embeddings_become_an_alert_not_a_crash",
        "tests/test_monitor.py::test_bad_shapes_and_missing_classes_never_crash",
    ],
    "Determinism": [
        "tests/test_reliability.py::test_same_input_same_seed_gives_byte_identical_json",
        "tests/test_reliability.py::test_results_agree_across_batch_sizes",
    ],
}


def place_of(nodeid: str) -> tuple[str, int] | None:
    """The heading whose prefixes match ``nodeid`` (``file`` or ``file::test``, parameters ignored), and the
    matching prefix's position in it (cases are listed in that order)."""
    base = nodeid.split("[", 1)[0]
    for heading, prefixes in SECTIONS.items():
        for position, prefix in enumerate(prefixes):
            if base == prefix or base.startswith(prefix + "::"):
                return heading, position
    return None


def describe(item: pytest.Item) -> str:
    """Summary paragraph of the test's docstring (or its name in words), plus the parameter id."""
    doc = inspect.getdoc(getattr(item, "function", None)) or ""
    summary = " ".join(doc.split("\n\n", 1)[0].split()) if doc else \
        item.originalname.removeprefix("test_").replace("_", " ").capitalize() + " (from the test name)."
    callspec = getattr(item, "callspec", None)
    return f"{summary} Case: `{callspec.id}`." if callspec is not None else summary


class CaseCollector:
    """pytest plugin: keeps only the listed tests, remembers their descriptions and outcomes."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, str]] = {}

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep = [item for item in items if place_of(item.nodeid)]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
        for index, item in enumerate(keep):
            heading, position = place_of(item.nodeid)
            self.cases[item.nodeid] = {"section": heading, "order": (position, index), "name": item.name,
                                       "description": describe(item), "outcome": "not run", "detail": ""}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = self.cases.get(report.nodeid)
        if case is None or case["outcome"] in ("failed", "skipped", "error"):
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            case["outcome"], case["detail"] = "skipped", reason.removeprefix("Skipped: ")
        elif report.failed:
            case["outcome"] = "failed" if report.when == "call" else "error"
            case["detail"] = f"in {report.when}: " + str(report.longrepr).strip().splitlines()[-1][:200]
        elif report.when == "call":
            case["outcome"] = "passed"


def run_cases() -> tuple[CaseCollector, int]:
    """Run the listed tests once (in-process, no xdist); return the collector and pytest's exit code."""
    files = sorted({p.split("::", 1)[0] for prefixes in SECTIONS.values() for p in prefixes})
    collector = CaseCollector()
    os.chdir(ROOT)
    code = pytest.main(["-q", "-n", "0", "-p", "no:cacheprovider", *files], plugins=[collector])
    return collector, int(code)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def case_table(cases: list[dict[str, str]]) -> list[str]:
    lines = ["| Case | Test | Outcome |", "| --- | --- | --- |"]
    for case in cases:
        outcome = case["outcome"] + (f": {case['detail']}" if case["detail"] else "")
        lines.append(f"| {cell(case['description'])} | `{cell(case['name'])}` | {cell(outcome)} |")
    return lines


def scale_summary(text: str) -> list[str]:
    """A table of the scale runs parsed from bench_scale.txt (case, analyzers, time, peak, bound, ratio)."""
    rows, case = [], None
    for line in text.splitlines():
        if line.startswith("## "):
            case = line[3:].split(" (", 1)[0]
        run = re.match(r"(\w+)\s+\(([^)]*)\):\s+([\d.]+) s; peak RssAnon\s+(\d+) MiB", line)
        if run:
            rows.append([case, run[2], run[3], run[4]])
        bound = re.search(r"bound\s+(\d+) MiB = .*peak/bound = ([\d.]+) \((within|ABOVE) the bound\)", line)
        if bound and rows:
            rows[-1] += [bound[1], bound[2], "yes" if bound[3] == "within" else "**no**"]
    lines = ["| Input | Analyzers | Time (s) | Peak RssAnon (MiB) | Bound (MiB) | Peak / bound | Bound holds |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows if len(row) == 7]
    return lines if len(lines) > 2 else []


def benchmark_section(title: str, name: str, intro: str, summary: list[str]) -> list[str]:
    path = RESULTS / name
    lines = [f"### {title}", "", intro, ""]
    if not path.exists():
        return lines + [f"`benchmarks/results/{name}` is missing: run the benchmark first.", ""]
    return lines + summary + ([""] if summary else []) + \
        [f"`benchmarks/results/{name}`, as measured:", "", "```text", path.read_text().rstrip(), "```", ""]


def environment() -> str:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    user = "root" if hasattr(os, "geteuid") and os.geteuid() == 0 else "a normal user"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    tree = " (plus uncommitted changes in the working tree)" if dirty else ""
    cuda = "available" if torch.cuda.is_available() else "not available"
    return (f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC at commit `{commit}`{tree} "
            f"on {platform.system()} {platform.machine()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, CUDA {cuda}, running as {user}.")


def write_page(collector: CaseCollector) -> list[str]:
    """Write the page; return the listed prefixes that matched no test."""
    cases = sorted(collector.cases.values(), key=lambda case: case["order"])
    counts = {o: sum(c["outcome"] == o for c in cases) for o in ("passed", "skipped", "failed", "error", "not run")}
    lines = ["# Reliability evidence", "",
             "Every case tried against untrusted input, random input, scale and faults, and for determinism, with "
             "its outcome. This page is generated by `docs/generate_reliability.py`, which runs the tests listed "
             "in it and reads the benchmark results; do not edit it by hand.", "",
             environment(), "",
             "Totals: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n) + f" of {len(cases)} cases.", ""]
    for heading in SECTIONS:
        lines += [f"## {heading}", ""] + case_table([c for c in cases if c["section"] == heading]) + [""]
        if heading == "Scale and faults":
            scale = (RESULTS / "bench_scale.txt")
            lines += benchmark_section(
                "Memory at scale", "bench_scale.txt",
                "`geoprobe analyze` on memory-mapped float32 inputs far larger than a batch (10,000,000 x 64 and "
                "1,000,000 x 768): peak anonymous memory against baseline + state + one batch + labels; the "
                "pairwise analyzers must switch to their sampled estimators (`benchmarks/bench_scale.py`).",
                scale_summary(scale.read_text()) if scale.exists() else [])
            lines += benchmark_section(
                "Monitor soak", "bench_monitor_soak.txt",
                "10,000 `CollapseMonitor.update` calls with NaN/inf/fused windows, varying batch sizes and batches "
                "missing classes: the alerts, and memory growth between step 2,000 and 10,000 "
                "(`benchmarks/bench_monitor_soak.py`).", [])
        if heading == "Wide embeddings and many classes":
            lines += benchmark_section(
                "Wide and many-class scale", "bench_wide.txt",
                "Time and peak memory for N x D from 4 x 200,000 to 200,000 x 16,384 and for C from 10 to 10^5 "
                "classes (`benchmarks/bench_wide.py`).", [])
    PAGE.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    matched = {c_id.split("[", 1)[0] for c_id in collector.cases}
    return [p for prefixes in SECTIONS.values() for p in prefixes
            if not any(m == p or m.startswith(p + "::") for m in matched)]


def main() -> int:
    collector, code = run_cases()
    missing = write_page(collector)
    for prefix in missing:
        print(f"error: no test matches {prefix}; update SECTIONS in docs/generate_reliability.py", file=sys.stderr)
    print(f"wrote {PAGE}")
    return 1 if missing or code not in (pytest.ExitCode.OK,) else 0


if __name__ == "__main__":
    sys.exit(main())
