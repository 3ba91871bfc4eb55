#!/usr/bin/env python
"""``summary.md`` of ``scripts/gpu_check.sh``: steps with status and seconds, test counts from pytest's
JUnit XML (passed = run − failed − errors − skipped; skips listed with their reasons) and the tables of
the benchmark logs. Standard library only: it must run where nothing else worked.
"""
from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def junit_counts(path: Path) -> tuple[dict[str, int], Counter, list[str]] | None:
    """(counts, skip reasons with their numbers, names of failed tests) of a JUnit file, or None if absent."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    root = ET.parse(path).getroot()
    counts = Counter()
    reasons: Counter = Counter()
    failed: list[str] = []
    for case in root.iter("testcase"):
        counts["tests"] += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            failed.append(name)
        elif case.find("error") is not None:
            counts["errors"] += 1
            failed.append(name + " (error)")
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
            message = case.find("skipped").get("message", "") or ""
            reasons[re.sub(r"^Skipped: ", "", message)[:200]] += 1
        else:
            counts["passed"] += 1
    return {k: counts[k] for k in ("tests", "passed", "failed", "errors", "skipped")}, reasons, failed


def tables(log: Path) -> list[str]:
    """Markdown table rows and '#'-comment or heading lines of a benchmark log (what the benchmarks print)."""
    if not log.is_file():
        return []
    keep = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("|", "# ", "### ", "bcc Ta", "machine:", "rank ", "device ", "check ", "===")):
            keep.append(line)
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--asked", default="auto")
    parser.add_argument("--elapsed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=0)
    args = parser.parse_args()

    steps = [line.split("\t") for line in args.steps.read_text().splitlines() if line.strip()]
    env = (args.out / "environment.log").read_text(errors="replace") if (args.out / "environment.log").is_file() else ""
    torch_line = next((ln for ln in env.splitlines() if ln.startswith("python ") and "torch" in ln), "torch: unknown")
    cuda_line = next((ln for ln in env.splitlines() if "torch.cuda.is_available()" in ln), "")
    gpus = [ln.strip() for ln in env.splitlines() if ln.strip().startswith("cuda:")]
    out = ["# GPU check summary", ""]
    if args.device != "cuda":
        out += ["**CPU DRY RUN — NOT A GPU RESULT.** torch saw no CUDA device (or `--device cpu` was given): the "
                "benchmarks below ran on the CPU and the CUDA tests were skipped.", ""]
    out += [f"- device used: `{args.device}` (asked: `{args.asked}`)", f"- {torch_line}"]
    if cuda_line:
        out.append(f"- {cuda_line.strip()}")
    out += [f"- {g}" for g in gpus]
    out += [f"- wall time of the steps: {args.elapsed} s of a {args.budget} s budget", ""]

    all_ok = all(s[1] == "ok" for s in steps)
    out += ["## Steps", "", "| step | status | seconds | log |", "|---|---|---:|---|"]
    out += [f"| {s[0]} | {s[1]} | {s[2]} | {s[3]} |" for s in steps]
    out += ["", f"Steps: {sum(s[1] == 'ok' for s in steps)} ok, {sum(s[1] != 'ok' for s in steps)} not ok.", ""]

    out += ["## Tests", "", "| run | tests | passed | failed | errors | skipped |", "|---|---:|---:|---:|---:|---:|"]
    skip_lines: list[str] = []
    failed_lines: list[str] = []
    status = {s[0]: s[1] for s in steps}
    for label, name, step in (("CUDA (tests/test_cuda.py)", "junit-cuda.xml", "tests-cuda"),
                              ("CPU selection", "junit-cpu.xml", "tests-cpu-selection")):
        result = junit_counts(args.work / name)
        if result is None:
            out.append(f"| {label} | – | – | – | – | – |")
            failed_lines.append(f"- {label}: no result ({step}: {status.get(step, 'not run')})")
            continue
        counts, reasons, failed = result
        note = "" if status.get(step) == "ok" else f" ({step}: {status.get(step)}; counts of the tests run before it stopped)"
        out.append(f"| {label}{note} | {counts['tests']} | {counts['passed']} | {counts['failed']} | "
                   f"{counts['errors']} | {counts['skipped']} |")
        skip_lines += [f"- {label}: {n} × {reason}" for reason, n in reasons.most_common()]
        failed_lines += [f"- {label}: {name}" for name in failed]
    out += ["", "Only 'passed' ran and passed; skipped tests did not run."]
    if skip_lines:
        out += ["", "Skipped, with pytest's reasons:", *skip_lines]
    if failed_lines:
        out += ["", "Failed or missing:", *failed_lines]
    out.append("")

    for title, log in (("Bispectrum (scripts/bench_bispectrum.py)", "bench_bispectrum.log"),
                       ("ACE (scripts/bench_ace.py)", "bench_ace.log"),
                       ("Exact fit of FitSNAP's Ta examples (scripts/bench_fit.py)", "bench_fit.log")):
        out += [f"## {title}", "", *tables(args.out / log), ""]
    out.append(f"Result: {'all steps ok' if all_ok else 'SOME STEPS NOT OK'}; device {args.device}.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
