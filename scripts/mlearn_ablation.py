"""Ablation of the mlearn benchmark's method: what the cross-validated cutoff, the 2Jmax stage and the
per-group row weights each do for SNAP and qSNAP, and what per-group weights do for linear ACE.

    .venv/bin/python scripts/mlearn_ablation.py                  # every variant and element, 2 processes
    .venv/bin/python scripts/mlearn_ablation.py --elements Mo --variants cv_rcut_one_weight
    .venv/bin/python scripts/mlearn_ablation.py --report-only    # table from the stored variant results

Each variant is ``scripts/mlearn_benchmark.py`` with other options (:data:`VARIANTS`), run as one process
per (variant, element), ``--jobs`` at a time, into ``--work`` (a finished cell is not fitted again). The
table's own method and linear ACE with one weight per kind are the entries of the benchmark's
``results.json``. The ablation goes to ``docs/mlearn_benchmark/weight_ablation.json`` and, as a table,
into the block between ``<!-- mlearn-ablation:begin -->`` and ``<!-- mlearn-ablation:end -->`` of the
benchmark's doc. Options this script does not know go to every benchmark process (tests pass
``--max-configs`` and ``--twojmax`` that way).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))   # the study package scripts/mlearn_study

from mlearn_study import mlearn_published as published  # noqa: E402
from mlearn_study.doc_blocks import write_block  # noqa: E402
from mlearn_study.mlearn import MODEL_LABELS, study_settings  # noqa: E402

BENCHMARK = ROOT / "scripts" / "mlearn_benchmark.py"
DEFAULT_RESULTS = ROOT / "docs" / "mlearn_benchmark" / "results.json"
DEFAULT_ABLATION = ROOT / "docs" / "mlearn_benchmark" / "weight_ablation.json"
DEFAULT_DOC = ROOT / "docs" / "mlearn_benchmark.md"
DEFAULT_WORK = ROOT / "outputs" / "mlearn_ablation"
BEGIN, END = "<!-- mlearn-ablation:begin -->", "<!-- mlearn-ablation:end -->"

#: variant -> (model forms, options of scripts/mlearn_benchmark.py, column title)
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "study_rcut_one_weight": (("snap", "qsnap"),
                              ("--snap-rcut-offsets", "0", "--snap-twojmax-offsets", "--no-group-weights"),
                              "study rcut and 2Jmax, one weight per kind"),
    "cv_rcut_one_weight": (("snap", "qsnap"), ("--snap-twojmax-offsets", "--no-group-weights"),
                           "CV rcut, one weight per kind"),
    "cv_rcut_group_weights": (("snap", "qsnap"), ("--snap-twojmax-offsets",), "CV rcut, per-group weights"),
    "group_weights": (("ace",), ("--ace-group-weights",), "per-group weights"),
}
#: the benchmark table's own method, the last column of each table
TABLE_VARIANT = {"snap": ("cv_rcut_twojmax_group_weights", "CV rcut and 2Jmax, per-group weights (table)"),
                 "qsnap": ("cv_rcut_twojmax_group_weights", "CV rcut and 2Jmax, per-group weights (table)"),
                 "ace": ("one_weight", "one weight per kind (table)")}


def run_variant(variant: str, element: str, work: Path, data: Path, extra: list[str]) -> tuple[str, str, float]:
    """Fit one (variant, element) with scripts/mlearn_benchmark.py unless its results file already holds
    every model of the variant. Returns (variant, element, seconds)."""
    models, options, _ = VARIANTS[variant]
    folder = work / variant
    results = folder / f"{element}.json"
    if results.is_file() and all(f"{element}/{m}" in json.loads(results.read_text()) for m in models):
        return variant, element, 0.0
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(BENCHMARK), "--data", str(data), "--elements", element, "--models", *models,
               *options, "--no-cost", "--no-doc", "--results", str(results), "--models-dir", str(folder / "models"),
               "--plot", str(folder / "pareto.png"), *extra]
    t0 = time.perf_counter()
    with open(folder / f"{element}.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} {element}: scripts/mlearn_benchmark.py failed (exit {done.returncode}); "
                           f"see {folder / f'{element}.log'}")
    return variant, element, time.perf_counter() - t0


def _summary(entry: dict) -> dict:
    s = entry["settings"]
    out = {k: entry[k] for k in ("energy_mae", "force_mae", "energy_mae_se", "force_mae_se") if k in entry}
    out["rcut"] = s["rcut"]
    if "twojmax" in s:
        out["twojmax"] = s["twojmax"]
    return out


def collect(results: dict[str, dict], work: Path, elements: list[str]) -> dict[str, dict[str, dict]]:
    """``{"<El>/<model>": {variant: {energy_mae, force_mae, ..., rcut[, twojmax]}}}`` from the benchmark's
    results and the variants' results files found in ``work``."""
    ablation: dict[str, dict[str, dict]] = {}
    for el in elements:
        for model, (name, _) in TABLE_VARIANT.items():
            key = f"{el}/{model}"
            if key in results:
                ablation.setdefault(key, {})[name] = _summary(results[key])
        for variant, (models, _, _) in VARIANTS.items():
            path = work / variant / f"{el}.json"
            found = json.loads(path.read_text()) if path.is_file() else {}
            for model in models:
                if f"{el}/{model}" in found:
                    ablation.setdefault(f"{el}/{model}", {})[variant] = _summary(found[f"{el}/{model}"])
    return ablation


def _cell(entry: dict | None, show_settings: bool) -> str:
    if entry is None:
        return "—"
    text = f"{entry['energy_mae']:.2f} / {entry['force_mae']:.3f}"
    if show_settings:
        text += f" ({entry['rcut']} Å" + (f", 2Jmax {entry['twojmax']}" if "twojmax" in entry else "") + ")"
    return text


def _beats_study(entry: dict | None, element: str, model: str) -> bool:
    label = MODEL_LABELS[model]
    return (entry is not None and entry["energy_mae"] <= published.ENERGY_MAE[label][element]
            and entry["force_mae"] <= published.FORCE_MAE[label][element])


def ablation_markdown(ablation: dict[str, dict[str, dict]], elements: list[str]) -> str:
    """The SNAP/qSNAP table (study, variants, the table's method) with a count of cells that reach the study
    on both errors, and the linear ACE table (one weight per kind, per-group weights)."""
    snap_columns = [v for v, (models, _, _) in VARIANTS.items() if "snap" in models] + [TABLE_VARIANT["snap"][0]]
    titles = {v: title for v, (_, _, title) in VARIANTS.items()} | {n: t for n, t in TABLE_VARIANT.values()}
    lines = ["Test energy MAE (meV/atom) / force MAE (eV/Å) of SNAP and qSNAP; in brackets the cutoff and 2Jmax.", "",
             "| element | form | study | " + " | ".join(titles[v] for v in snap_columns) + " |",
             "|---|---|---|" + "---|" * len(snap_columns)]
    for el in elements:
        for model in ("snap", "qsnap"):
            row = ablation.get(f"{el}/{model}", {})
            label = MODEL_LABELS[model]
            study = f"{published.ENERGY_MAE[label][el]:.2f} / {published.FORCE_MAE[label][el]:.3f}"
            lines.append(f"| {el} | {label} | {study} | "
                         + " | ".join(_cell(row.get(v), v != "study_rcut_one_weight") for v in snap_columns) + " |")
    counts = []
    for v in snap_columns:
        cells = [(el, m) for el in elements for m in ("snap", "qsnap") if v in ablation.get(f"{el}/{m}", {})]
        wins = sum(_beats_study(ablation[f"{el}/{m}"][v], el, m) for el, m in cells)
        counts.append(f"{wins} of {len(cells)}")
    lines.append("| | reach the study on both errors | | " + " | ".join(counts) + " |")
    ace_columns = [TABLE_VARIANT["ace"][0], "group_weights"]
    lines += ["", "Linear ACE, test energy MAE (meV/atom) / force MAE (eV/Å); in brackets the cutoff.", "",
              "| element | " + " | ".join(titles[v] for v in ace_columns) + " |", "|---|" + "---|" * len(ace_columns)]
    for el in elements:
        row = ablation.get(f"{el}/ace", {})
        lines.append(f"| {el} | " + " | ".join(_cell(row.get(v), True) for v in ace_columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mlearn")
    parser.add_argument("--elements", nargs="+", default=list(published.ELEMENTS), choices=published.ELEMENTS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2, help="benchmark processes at a time (one thread each)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="variant results, models and logs")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the benchmark's results.json")
    parser.add_argument("--ablation", type=Path, default=DEFAULT_ABLATION, help="JSON output")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="doc with the ablation block")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the JSON and table from --work")
    args, extra = parser.parse_known_args(argv)
    if not args.report_only:
        for el in args.elements:
            study_settings(el, "snap")                    # unknown elements fail before any process starts
        jobs = [(v, el) for v in args.variants for el in args.elements]
        # the slowest cells (Si at 2Jmax 8, then the per-group searches) first, so the lanes end together
        jobs.sort(key=lambda job: (job[1] != "Si", job[0] != "cv_rcut_group_weights"))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for variant, el, seconds in pool.map(lambda job: run_variant(*job, args.work, args.data, extra), jobs):
                print(f"{variant} {el}: {'kept' if seconds == 0 else f'{seconds:.0f} s'}; "
                      f"elapsed {time.perf_counter() - t0:.0f} s", flush=True)
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    elements = [el for el in published.ELEMENTS if el in args.elements]
    ablation = collect(results, args.work, elements)
    args.ablation.parent.mkdir(parents=True, exist_ok=True)
    args.ablation.write_text(json.dumps(ablation, indent=1, sort_keys=True))
    block = ablation_markdown(ablation, elements)
    print(block)
    write_block(args.doc, block, BEGIN, END)
    return ablation


if __name__ == "__main__":
    main()
