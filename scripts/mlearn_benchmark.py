"""The mlearn benchmark table and accuracy–cost Pareto plot of mliap_torch's model forms.

For every element of Zuo et al.'s mlearn data (J. Phys. Chem. A 124, 731 (2020)) and every model
form, fit on ``training.json``, score on ``test.json`` (energy MAE meV/atom, force MAE eV/Å), measure
the LAMMPS MD cost per atom-step through the route a user deploys (CPU, one thread, a ~1500-atom bulk
cell of the element), and compare with the published GAP, MTP, SNAP and qSNAP errors.

    .venv/bin/python scripts/mlearn_benchmark.py                         # everything
    .venv/bin/python scripts/mlearn_benchmark.py --elements Ni Mo --models snap qsnap
    .venv/bin/python scripts/mlearn_benchmark.py --report-only           # table/plot/doc from results.json

Results accumulate in ``--results`` (JSON, one entry per element × model, rewritten after each
cell), so a long run can be split; the table, the plot and the generated block of ``--doc``
(between ``<!-- mlearn-table:begin -->`` and ``<!-- mlearn-table:end -->``) are rebuilt from it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))   # the study package scripts/mlearn_study

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLIAP_TORCH_NUM_THREADS", "1")

import torch  # noqa: E402

from mlearn_study import mlearn_published as published  # noqa: E402
from mlearn_study.doc_blocks import write_block  # noqa: E402
from mlearn_study.experiment import (  # noqa: E402
    BASE_MODEL,
    LINEAR_OF,
    NN_EPOCHS,
    descriptor_section,
    fit_nn_cell,
    group_weights,
    nn_experiment,
    solver_section,
    yaml_lines,
)
from mlearn_study.mlearn import (  # noqa: E402
    ACE_CUTOFF_OFFSETS,
    ENSEMBLE_MEMBERS,
    EV_PER_A3_IN_GPA,
    MODEL_LABELS,
    SNAP_CUTOFF_OFFSETS,
    SNAP_TWOJMAX_OFFSETS,
    CellResult,
    bulk_cell,
    deploy_route,
    ensemble_cell,
    fit_ace_cell,
    fit_ace_qsnap_cell,
    fit_ace_td_cell,
    fit_snap_cell,
    make_bispectrum,
    md_cost,
    score_on_test,
    select_ace_cutoff,
    study_settings,
)
from mliap_torch.data.readers import read_mlearn  # noqa: E402
from mliap_torch.models.io import load, save  # noqa: E402
from mliap_torch.models.potential import Potential  # noqa: E402

MODELS = ("snap", "qsnap", "snap_nn", "ace", "ace_nn", "ace_td", "ace_qsnap", "ensemble")
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mlearn"
DEFAULT_RESULTS = ROOT / "docs" / "mlearn_benchmark" / "results.json"
DEFAULT_PLOT = ROOT / "docs" / "mlearn_benchmark" / "pareto.png"
DEFAULT_DOC = ROOT / "docs" / "mlearn_benchmark.md"
DEFAULT_README = ROOT / "README.md"
DEFAULT_MODELS_DIR = ROOT / "outputs" / "mlearn_benchmark"
BEGIN, END = "<!-- mlearn-table:begin -->", "<!-- mlearn-table:end -->"
SUMMARY_BEGIN, SUMMARY_END = "<!-- mlearn-summary:begin -->", "<!-- mlearn-summary:end -->"


def load_split(data: Path, element: str, max_configs: int | None = None):
    """(train, test) configurations of ``element`` (the first ``max_configs`` of each when given)."""
    folder = data / element
    for name in ("training.json", "test.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: mlearn file not found (pass --data)")
    train = read_mlearn(folder / "training.json", element=element)
    test = read_mlearn(folder / "test.json", element=element)
    if max_configs:
        train, test = train[:max_configs], test[:max_configs]
    return train, test


def nn_energy_weight(train, linear: dict) -> float:
    """Energy weight λ of the network loss ``λ·mean((ΔE/N)²) + mean(ΔF²)`` equivalent to the row weights
    cross-validated for the element's linear fit ``linear`` (energy row weight w_E, force rows 1):
    ``λ = w_E² · n_E / n_F`` with n_E configurations and n_F force components. Both network forms take
    it from the element's SNAP (with linear ACE's larger w_E, ACE+NN's validation loss was dominated by
    noisy energy terms and its forces hardly moved: Si 0.0985 → 0.0952 eV/Å on validation)."""
    we = linear["weights"][0]
    return we * we * len(train) / (3 * sum(c.num_atoms for c in train))


def run_cell(element: str, model: str, train, test, args: argparse.Namespace,
             known: dict[str, dict]) -> tuple[CellResult, Potential]:
    """Fit and score one element × model; the fitted potential is saved to ``--models-dir``.
    ``known``: the results so far; a network takes its element's linear fit of :data:`LINEAR_OF` (descriptor,
    row weights) and the energy weight of its loss from the element's SNAP, the large ACE linear ACE's
    cross-validated cutoff."""
    if model in ("snap", "qsnap"):
        cell, potential = fit_snap_cell(element, model, train, test, twojmax=args.twojmax, rcut=args.rcut,
                                        rcut_offsets=args.snap_rcut_offsets, twojmax_offsets=args.snap_twojmax_offsets,
                                        group_weights=not args.no_group_weights, folds=args.folds)
    elif model in LINEAR_OF:
        for needed in dict.fromkeys((LINEAR_OF[model], "snap")):
            if not known.get(f"{element}/{needed}"):
                raise ValueError(f"{element}: {model} starts from the element's {LINEAR_OF[model]} fit (its descriptor "
                                 f"and row weights) and takes its energy weight from SNAP's; fit {element}/{needed} "
                                 f"first (--models {needed} {model})")
        sections = nn_experiment(element, model, known[f"{element}/{LINEAR_OF[model]}"],
                                 nn_energy_weight(train, known[f"{element}/snap"]), args.nn_hidden, args.nn_epochs)
        cell, potential = fit_nn_cell(element, model, sections, test,
                                      args.models_dir / "runs" / f"mlearn_{element.lower()}_{model}", args.data,
                                      args.max_configs)
    elif model == "ace":
        base = args.rcut if args.rcut is not None else study_settings(element, "snap")[0]
        data = select_ace_cutoff(element, train, [round(base + d, 4) for d in args.ace_rcut_offsets], folds=args.folds)
        cell, potential = fit_ace_cell(element, train, test, data, folds=args.folds,
                                       group_weights=args.ace_group_weights)
    elif model == "ace_qsnap":
        parts = [known.get(f"{element}/{m}") for m in ("ace_td", "qsnap")]
        if not all(parts):
            raise ValueError(f"{element}: ACE+qSNAP takes the large ACE's cutoff and qSNAP's cutoff and 2Jmax; fit "
                             f"{element}/ace_td and {element}/qsnap first (--models ace ace_td qsnap ace_qsnap)")
        ace, qsnap = (p["settings"] for p in parts)
        cell, potential = fit_ace_qsnap_cell(element, train, test, float(ace["rcut"]), float(qsnap["rcut"]),
                                             int(qsnap["twojmax"]), folds=args.folds)
    elif model == "ensemble":
        missing = [m for m in ENSEMBLE_MEMBERS if not known.get(f"{element}/{m}")]
        if missing:
            raise ValueError(f"{element}: the ensemble is the mean of the element's {' and '.join(ENSEMBLE_MEMBERS)}; fit "
                             f"{', '.join(f'{element}/{m}' for m in missing)} first (--models {' '.join(missing)})")
        members = [(known[f"{element}/{m}"], load(args.models_dir / f"mlearn_{element.lower()}_{m}.pt"))
                   for m in ENSEMBLE_MEMBERS]
        cell, potential = ensemble_cell(element, members, test)
    elif model == "ace_td":
        ace = known.get(f"{element}/ace")
        if args.rcut is None and not ace:
            raise ValueError(f"{element}: the large ACE (ace_td) takes the cutoff cross-validated for linear ACE; "
                             f"fit {element}/ace first (--models ace ace_td) or give --rcut")
        rcut = args.rcut if args.rcut is not None else float(ace["settings"]["rcut"])
        cell, potential = fit_ace_td_cell(element, train, test, rcut, folds=args.folds)
    else:
        raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
    save(potential, args.models_dir / f"mlearn_{element.lower()}_{model}.pt", metadata={"element": element, "model": model})
    return cell, potential


def measure_cost(cell: dict, potential: Potential, args: argparse.Namespace) -> None:
    """Add the LAMMPS MD cost (µs/atom-step, deployed route; the unified route where the compiled plugin
    fails on a model) to a result entry; on failure a note says why.
    SNAP/qSNAP entries also get ``study_cost_us``: the cost of the same kernel with the study's cutoff
    and 2Jmax, timed with zero coefficients (the kernel's cost does not depend on their values, and
    our coefficients on another cutoff's descriptor are no potential to run MD with)."""
    notes = [n for n in cell.get("notes", []) if not n.startswith(("MD cost not measured", "the plugin route failed"))]
    try:
        route = deploy_route(potential)
        steps = args.md_steps_unified if route == "unified" else args.md_steps
        structure = bulk_cell(cell["element"], args.md_atoms)
        try:
            seconds, route = md_cost(potential, structure, steps=steps, route=route)
        except Exception as exc:  # the compiled plugin could not take this model: the unified route can
            if route != "plugin":
                raise
            notes.append(f"the plugin route failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                         "timed through unified")
            steps = args.md_steps_unified
            seconds, route = md_cost(potential, structure, steps=steps, route="unified")
        cell["cost_us"], cell["cost_route"] = 1e6 * seconds, route
        if cell["model"] in ("snap", "qsnap"):
            rcut, twojmax = study_settings(cell["element"], cell["model"])
            if (rcut, twojmax) != (cell["settings"]["rcut"], cell["settings"]["twojmax"]):
                descriptor = make_bispectrum(cell["element"], rcut, twojmax)
                head = type(potential.head)(1, descriptor.num_descriptors)
                head.set_coefficients(torch.zeros_like(head.coefficients()))
                seconds, _ = md_cost(Potential(descriptor, head), structure, steps=steps, route=route)
            cell["study_cost_us"] = 1e6 * seconds
    except Exception as exc:  # the table keeps the accuracy; the note says why the cost is missing
        notes.append(f"MD cost not measured: {type(exc).__name__}: {exc}")
    cell["notes"] = notes


def rescore(entry: dict, potential: Potential, test) -> None:
    """Score a saved model on the test set again: its MAEs must equal the stored ones (else an error);
    adds their bootstrap standard errors."""
    scores = score_on_test(potential, test)
    for key in ("energy_mae", "force_mae"):
        if abs(scores[key] - entry[key]) > 1e-9 * max(1.0, abs(entry[key])):
            raise ValueError(f"{entry['element']}/{entry['model']}: the saved model gives {key} {scores[key]:.6g}, "
                             f"the results file {entry[key]:.6g}; fit the cell again")
    entry.update(scores)


def load_results(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.is_file() else {}


def save_results(path: Path, results: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True))


def _fmt(value: float | None, digits: int, error: float | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" + ("" if error is None else f" ± {error:.{digits}f}")


def _force_range(element: str) -> str:
    """GAP/MTP test force MAE of ``element`` as the paper gives it (one value or a range, eV/Å)."""
    lo, hi = published.FORCE_MAE_RANGE[element]
    return f"{lo:.2f}" if lo == hi else f"{lo:.2f}–{hi:.2f}"


def table_markdown(results: dict[str, dict], elements: list[str], models: list[str]) -> str:
    """Energy, force and cost tables (ours next to the published numbers) as Markdown."""
    def ours(el: str, model: str, key: str):
        return results.get(f"{el}/{model}", {}).get(key)

    lines = ["Test energy MAE (meV/atom). Published: GAP, MTP and the study's SNAP/qSNAP (same test sets). "
             "Ours ± the bootstrap standard error over the 23–31 test configurations.", "",
             "| element | GAP | MTP | SNAP (study) | qSNAP (study) | " + " | ".join(f"{MODEL_LABELS[m]} (ours)" for m in models) + " |",
             "|---|" + "---:|" * (4 + len(models))]
    for el in elements:
        pub = [published.ENERGY_MAE[k][el] for k in ("GAP", "MTP", "SNAP", "qSNAP")]
        lines.append(f"| {el} | " + " | ".join(f"{v:.2f}" for v in pub) + " | "
                     + " | ".join(_fmt(ours(el, m, "energy_mae"), 2, ours(el, m, "energy_mae_se")) for m in models) + " |")
    lines += ["", "Test force MAE (eV/Å, per component). GAP/MTP: the range the paper gives for both.", "",
              "| element | GAP/MTP | SNAP (study) | qSNAP (study) | " + " | ".join(f"{MODEL_LABELS[m]} (ours)" for m in models) + " |",
              "|---|" + "---:|" * (3 + len(models))]
    for el in elements:
        lines.append(f"| {el} | {_force_range(el)} | {published.FORCE_MAE['SNAP'][el]:.3f} | {published.FORCE_MAE['qSNAP'][el]:.3f} | "
                     + " | ".join(_fmt(ours(el, m, "force_mae"), 3, ours(el, m, "force_mae_se")) for m in models) + " |")
    lines += ["", "LAMMPS MD cost (µs per atom-step, CPU, 1 thread, NVE on a ~1500-atom bulk cell) and route.", "",
              "| element | " + " | ".join(MODEL_LABELS[m] for m in models) + " |", "|---|" + "---:|" * len(models)]
    for el in elements:
        cells = []
        for m in models:
            us, route = ours(el, m, "cost_us"), ours(el, m, "cost_route")
            cells.append("—" if us is None else f"{us:.1f} ({route})")
        lines.append(f"| {el} | " + " | ".join(cells) + " |")
    lines += ["", "Fit details: descriptor settings, cross-validated row weights (energy eV/atom : force eV/Å : "
              "stress GPa; for per-group weights, each group's energy and force factor on them) and relative "
              "ridge (relative to each column's squared norm; 0: plain least squares; at least 1e-12 where the normal equations are solved; "
              "with a smoothness prior of power p, the ridge of the highest-degree column), parameters, train MAE (meV/atom, eV/Å), fit time.", "",
              "| element | model | rcut (Å) | 2Jmax | weights E:F:S | ridge | parameters | train E MAE | train F MAE | fit (s) | notes |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for el in elements:
        for m in models:
            r = results.get(f"{el}/{m}")
            if not r:
                continue
            s = r.get("settings", {})
            w = r.get("weights")
            wtxt = "—" if not w else ":".join(f"{v:g}" for v in w)
            per_group = s.get("group_weights")
            if w and per_group and any(per_group[g][:2] != w[:2] for g in per_group):
                wtxt += " ×(E, F) " + ", ".join(f"{g} {per_group[g][0] / w[0]:.2g}, {per_group[g][1] / w[1]:.2g}"
                                               for g in per_group)
            ridge = s.get("ridge_alpha")                   # the relative ridge solved with (floor included)
            rtxt = "—" if ridge is None else f"{ridge:g}" + (f", prior p = {s['prior_power']:g}" if s.get("prior_power") else "")
            lines.append(f"| {el} | {MODEL_LABELS[m]} | {s.get('rcut', '—')} | {s.get('twojmax', '—')} | {wtxt} | "
                         f"{rtxt} | "
                         f"{r.get('num_parameters', '—')} | {_fmt(r.get('train_energy_mae'), 2)} | "
                         f"{_fmt(r.get('train_force_mae'), 3)} | {r.get('fit_seconds', 0):.0f} | "
                         f"{'; '.join(r.get('notes', [])) or ''} |")
    return "\n".join(lines)


def summary_markdown(results: dict[str, dict], elements: list[str], models: list[str]) -> str:
    """The README's short table: test energy MAE (meV/atom) / force MAE (eV/Å) per element, the better
    of GAP and MTP, the study's SNAP and qSNAP, and each of our forms; the element's :func:`best_model`
    (``experiment=mlearn_<el>_best``) in bold, and whether it beats the bar in both."""
    def pair(energy: float | None, force: float | None) -> str:
        return "—" if energy is None else f"{energy:.2f} / {force:.3f}"

    lines = ["| element | GAP or MTP (the better energy; forces: the paper's range) | SNAP (study) | qSNAP (study) | "
             + " | ".join(MODEL_LABELS[m] for m in models) + " | best beats both |", "|---|" + "---:|" * (4 + len(models))]
    for el in elements:
        best_published = min(published.ENERGY_MAE[k][el] for k in ("GAP", "MTP"))
        ours = {m: results.get(f"{el}/{m}", {}) for m in models}
        best = best_model(results, el)
        cells = [f"**{pair(r['energy_mae'], r['force_mae'])}**" if r is best
                 else pair(r.get("energy_mae"), r.get("force_mae")) for r in ours.values()]
        e_bar, f_bar = published.bar(el)
        beats = best is not None and best["energy_mae"] < e_bar and round(best["force_mae"], 2) <= f_bar
        lines.append(f"| {el} | {best_published:.2f} / {_force_range(el)} | "
                     + " | ".join(pair(published.ENERGY_MAE[k][el], published.FORCE_MAE[k][el]) for k in ("SNAP", "qSNAP"))
                     + " | " + " | ".join(cells) + f" | {'yes' if beats else 'no'} |")
    return "\n".join(lines)


def pareto_plot(results: dict[str, dict], elements: list[str], models: list[str], path: Path) -> Path:
    """Two log-log panels (energy MAE, force MAE vs cost per atom-step): one marker per model form,
    one colour per element; hollow markers: the study's SNAP/qSNAP errors at the cost of the same
    kernel with the study's cutoff and 2Jmax (``study_cost_us``; our fit's cost where absent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    markers = {"snap": "o", "qsnap": "s", "snap_nn": "^", "ace": "D", "ace_nn": "v", "ace_td": "P", "ace_qsnap": "*",
               "ensemble": "X"}
    colours = dict(zip(published.ELEMENTS, plt.get_cmap("tab10").colors))
    study = {"snap": "SNAP", "qsnap": "qSNAP"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, key, pub, ylabel in ((axes[0], "energy_mae", published.ENERGY_MAE, "test energy MAE (meV/atom)"),
                                 (axes[1], "force_mae", published.FORCE_MAE, "test force MAE (eV/Å)")):
        for el in elements:
            for m in models:
                r = results.get(f"{el}/{m}")
                if not r or r.get("cost_us") is None:
                    continue
                ax.scatter(r["cost_us"], r[key], marker=markers[m], color=colours[el], s=45, zorder=3)
                if m in study:
                    ax.scatter(r.get("study_cost_us") or r["cost_us"], pub[study[m]][el], marker=markers[m],
                               facecolors="none", edgecolors=colours[el], s=45, zorder=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel("LAMMPS cost (µs / atom-step, 1 CPU thread)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], marker=markers[m], color="gray", linestyle="", label=MODEL_LABELS[m]) for m in models]
    handles += [plt.Line2D([], [], marker="o", color="gray", markerfacecolor="none", linestyle="",
                           label="study's SNAP/qSNAP (hollow)")]
    handles += [plt.Line2D([], [], marker="o", color=colours[el], linestyle="", label=el) for el in elements]
    fig.legend(handles=handles, fontsize=8, loc="center right")
    fig.suptitle("mliap_torch on the mlearn benchmark: accuracy vs LAMMPS cost")
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


CONFIG_MARK = "# generated by scripts/mlearn_benchmark.py --write-configs"
def experiment_config(entry: dict) -> str:
    """The Hydra experiment (``mliap_torch/configs/experiment/mlearn_<el>_<model>.yaml``) of one benchmark cell:
    the descriptor settings and the row weights/ridge (exact fits), or the experiment a network cell ran."""
    el, model, s = entry["element"], entry["model"], entry["settings"]
    name = f"mlearn_{el.lower()}_{model}"
    label = MODEL_LABELS[model]
    study = {"snap": "SNAP", "qsnap": "qSNAP"}.get(model)
    pub = (f" Study's {study}: {published.ENERGY_MAE[study][el]} meV/atom, {published.FORCE_MAE[study][el]} eV/Å."
           if study else "")
    study_rcut, study_twojmax = study_settings(el, "qsnap" if model == "qsnap" else "snap")
    if model == "ensemble":
        return ensemble_config(entry)
    descriptor = s["experiment"]["descriptor"] if model in LINEAR_OF else descriptor_section(entry)
    if model == "ace_qsnap":
        what = (f"the large ACE ({s['num_functions']} functions, rcut {s['ace_rcut']} Å) and qSNAP (2Jmax {s['twojmax']}, "
                f"rcut {s['qsnap_rcut']} Å) side by side, one fit; in LAMMPS hybrid/overlay pace snap")
    elif "rcut" in descriptor:
        what = f"ACE basis {s['num_functions']} functions, rcut {descriptor['rcut']} Å"
    else:
        rcut, twojmax = descriptor["rcutfac"], descriptor["twojmax"]
        if "cutoff_cv" in s or model in LINEAR_OF or (rcut, twojmax) != (study_rcut, study_twojmax):
            how = "cross-validated" if "cutoff_cv" in s else "cross-validated for linear SNAP"
            what = f"2Jmax {twojmax}, rcut {rcut} Å ({how}; the study's {study_twojmax}, {study_rcut} Å)"
        else:
            what = f"2Jmax {twojmax}, rcut {rcut} Å (the study's {study or 'SNAP'} settings)"
    lines = ["# @package _global_",
             f"# {label} for {el} on the mlearn benchmark (Zuo et al., J. Phys. Chem. A 124, 731 (2020)): {what}.",
             f"# scripts/mlearn_benchmark.py: test E {entry['energy_mae']:.2f} meV/atom, F {entry['force_mae']:.3f} eV/Å.{pub}",
             f"# python train.py experiment={name}", CONFIG_MARK,
             "defaults:", "  - override /data: mlearn", f"  - override /model: {BASE_MODEL[model]}", ""]
    if model in LINEAR_OF:
        lines += [f"# Adam on energies and forces from the exact fit of {MODEL_LABELS[LINEAR_OF[model]]} (its cross-validated",
                  "# row weights data.group_weights and its model.solver), a cosine decay over max_epochs; the epoch",
                  "# with the lowest val/loss, or the start if no epoch beats it, is kept (early stopping on the",
                  "# validation split of training.json)."]
        return "\n".join(lines + yaml_lines(s["experiment"])) + "\n"
    weights = group_weights(entry)
    ws = entry["weights"][2]
    same = "the same for every group" if not s.get("group_weights") else "per group"
    lines += ["data:", f"  element: {el}", "  val_fraction: 0.0",
              "  # row weights from 5-fold cross-validation on training.json: energy rows eV/atom, forces eV/Å,",
              f"  # stress eV/Å³ ({ws:g} per GPa); {same}",
              "  group_weights:"]
    lines += [f"    {g}: [{we!r}, {wf!r}, {ws_gpa * EV_PER_A3_IN_GPA!r}]" for g, (we, wf, ws_gpa) in weights.items()]
    lines += yaml_lines({"descriptor": descriptor})
    lines += yaml_lines({"model": {"name": name, "solver": solver_section(entry)}})
    return "\n".join(lines) + "\n"


def ensemble_config(entry: dict) -> str:
    """The Hydra experiment of an ``ensemble`` cell: the element's member experiments, trained and averaged
    (``ensemble.members``)."""
    el = entry["element"]
    name = f"mlearn_{el.lower()}_ensemble"
    members = [f"mlearn_{el.lower()}_{m}" for m in entry["settings"]["members"]]
    lines = ["# @package _global_",
             f"# {MODEL_LABELS['ensemble']} for {el} on the mlearn benchmark (Zuo et al., J. Phys. Chem. A 124, 731 (2020)): "
             f"the experiments {' and '.join(members)}, each trained in <run>/members/, and the mean of their models; "
             "in LAMMPS hybrid/scaled of their pair styles.",
             f"# scripts/mlearn_benchmark.py: test E {entry['energy_mae']:.2f} meV/atom, F {entry['force_mae']:.3f} eV/Å.",
             f"# python train.py experiment={name}", CONFIG_MARK,
             "defaults:", "  - override /data: mlearn", "",
             "data:", f"  element: {el}", "  val_fraction: 0.0"]
    lines += yaml_lines({"ensemble": {"members": members}, "model": {"name": name}})
    return "\n".join(lines) + "\n"


def best_model(results: dict[str, dict], element: str) -> dict | None:
    """The element's best result: the lowest ``max(E / E_bar, F₂ / F_bar)`` (F₂: the force MAE rounded to the
    two decimals the study publishes; :func:`~mlearn_study.mlearn_published.bar`), the lower energy on a tie — below 1 it beats the
    better of GAP and MTP in both. Chosen on the test errors: it names the table's best model, it fits nothing."""
    e_bar, f_bar = published.bar(element)
    ours = [r for k, r in results.items() if k.startswith(f"{element}/")]
    return min(ours, key=lambda r: (max(r["energy_mae"] / e_bar, round(r["force_mae"], 2) / f_bar), r["energy_mae"]),
               default=None)


def best_config(entry: dict) -> str:
    """``mlearn_<el>_best.yaml``: the experiment of the element's :func:`best_model`, under its own name."""
    el, model = entry["element"], entry["model"]
    stem = f"mlearn_{el.lower()}_{model}"
    text = experiment_config(entry).replace(f"name: {stem}", f"name: mlearn_{el.lower()}_best").replace(
        f"experiment={stem}", f"experiment=mlearn_{el.lower()}_best")
    head, rest = text.split("\n", 1)
    return (f"{head}\n# The best model of the table for {el}: {MODEL_LABELS[model]} (experiment={stem}; "
            "the lowest max(E/E_bar, F/F_bar) against the better of GAP and MTP, chosen on the test errors).\n" + rest)


def write_configs(results: dict[str, dict], folder: Path) -> list[Path]:
    """Write the experiment config of every result, and ``mlearn_<el>_best.yaml`` of every element (its
    :func:`best_model`); files not written by this script are left alone."""
    written = []
    texts = {f"mlearn_{e['element'].lower()}_{e['model']}.yaml": experiment_config(e) for e in results.values()}
    for el in dict.fromkeys(e["element"] for e in results.values()):
        texts[f"mlearn_{el.lower()}_best.yaml"] = best_config(best_model(results, el))
    for name, text in texts.items():
        path = folder / name
        if path.is_file() and CONFIG_MARK not in path.read_text():
            print(f"{path}: exists and was not generated here; left unchanged", flush=True)
            continue
        path.write_text(text)
        written.append(path)
    return written


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` for a Markdown link (absolute where no relative path exists)."""
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return str(path)


LINEAR_FORMS = ("snap", "qsnap", "ace", "ace_td", "ace_qsnap")
NN_FORMS = ("snap_nn", "ace_nn")
# The ensemble is in neither: it is made in the main process from the lanes' saved members, before the cost pass.
#: Training sets with more atoms than this (Ni and Cu, 27 000 atoms) are fitted by one process at a time:
#: their descriptor Jacobians take 11 GB (SNAP+NN at 2Jmax 10) to 13 GB (ACE), two such processes more
#: than this 24 GB machine has.
LARGE_TRAINING_ATOMS = 20000


def lane_options(args: argparse.Namespace) -> list[str]:
    """The fitting options of ``args`` for a lane process of :func:`fit_in_processes` (each option that
    changes a fit must be passed on here)."""
    options = ["--data", str(args.data), "--folds", str(args.folds), "--nn-epochs", str(args.nn_epochs),
               "--nn-hidden", *map(str, args.nn_hidden), "--models-dir", str(args.models_dir),
               "--snap-rcut-offsets", *map(str, args.snap_rcut_offsets),
               "--snap-twojmax-offsets", *map(str, args.snap_twojmax_offsets),
               "--ace-rcut-offsets", *map(str, args.ace_rcut_offsets), "--no-cost", "--no-doc"]
    for flag, value in (("--max-configs", args.max_configs), ("--twojmax", args.twojmax), ("--rcut", args.rcut)):
        if value is not None:
            options += [flag, str(value)]
    return options + ["--no-group-weights"] * args.no_group_weights + ["--ace-group-weights"] * args.ace_group_weights


def fit_in_processes(args: argparse.Namespace, results: dict[str, dict], t_start: float) -> dict[str, dict]:
    """Fit the cells of ``args`` in processes of this script, ``args.jobs`` at a time (:func:`run_lanes`): the
    exact fits (SNAP, qSNAP, linear and large ACE) in one process per element, and each network (SNAP+NN,
    ACE+NN) in one process per form and element, so each frees its descriptor Jacobians when it ends. A
    free slot starts the next element's exact fits while any are left, else the network of an element
    whose exact fits are done (it takes that element's new linear fit,
    :data:`~mlearn_study.experiment.LINEAR_OF`). Large training sets (:data:`LARGE_TRAINING_ATOMS`) run
    one at a time. Lane results files and logs go to ``<models-dir>/lanes``. Returns the new entries (no
    costs)."""
    work = args.models_dir / "lanes"
    work.mkdir(parents=True, exist_ok=True)
    order = sorted(args.elements, key=lambda el: el != "Si")         # the slowest element first
    large = {el for el in order if sum(c.num_atoms for c in load_split(args.data, el, args.max_configs)[0])
             > LARGE_TRAINING_ATOMS}
    fresh: dict[str, dict] = {}

    def lane(models: list[str], element: str) -> dict[str, dict]:
        stem = work / f"{'_'.join(models)}_{element}"
        known = {**results, **fresh}
        path = stem.with_suffix(".json")
        # the fits the lane's forms start from (networks: SNAP's or ACE's; the large ACE: ACE's cutoff; ACE+qSNAP:
        # the large ACE's and qSNAP's descriptors)
        inputs = {f"{element}/{m}": known[f"{element}/{m}"] for m in ("snap", "ace", "ace_td", "qsnap")
                  if m not in models and f"{element}/{m}" in known}
        path.write_text(json.dumps(inputs))
        command = [sys.executable, str(Path(__file__).resolve()), "--elements", element, "--models", *models,
                   "--results", str(path), "--plot", str(stem.with_suffix(".png")), *lane_options(args)]
        with open(stem.with_suffix(".log"), "w") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(models)} fits of {element} failed (exit {done.returncode}"
                               f"{', killed: out of memory?' if done.returncode == -9 else ''}); see {stem.with_suffix('.log')}")
        entries = {k: v for k, v in load_results(path).items() if k in {f"{element}/{m}" for m in models}}
        for key, entry in entries.items():
            print(f"{key}: test E {entry['energy_mae']:.2f} meV/atom, F {entry['force_mae']:.4f} eV/Å; fit "
                  f"{entry['fit_seconds']:.0f} s; elapsed {time.perf_counter() - t_start:.0f} s", flush=True)
        return entries

    linear = [m for m in args.models if m in LINEAR_FORMS]
    networks = [m for m in args.models if m in NN_FORMS]
    # the exact fits first; each element's networks as soon as its exact fits are done
    tasks = [LaneTask(tuple(linear), el, frozenset(), el in large) for el in order] if linear else []
    tasks += [LaneTask((form,), el, frozenset({(tuple(linear), el)} if linear else ()), el in large)
              for el in order for form in networks]
    run_lanes(tasks, lambda task: fresh.update(lane(list(task.models), task.element)), args.jobs)
    return fresh


@dataclasses.dataclass(frozen=True)
class LaneTask:
    """One lane process of :func:`fit_in_processes`: the ``models`` of ``element``, to start only once the
    lanes ``after`` (their (models, element)) are done; ``large``: of a large training set, which runs only
    while no other large one does (:data:`LARGE_TRAINING_ATOMS`)."""

    models: tuple[str, ...]
    element: str
    after: frozenset[tuple[tuple[str, ...], str]]
    large: bool = False

    @property
    def key(self) -> tuple[tuple[str, ...], str]:
        return self.models, self.element


def run_lanes(tasks: list[LaneTask], run: Callable[[LaneTask], None], jobs: int) -> None:
    """Run ``tasks`` in ``jobs`` threads: a free thread takes the first task, in list order, whose ``after``
    lanes are all done and, if it is large, while no large one runs (it waits while none is ready but some
    run). The first exception stops the start of further tasks and is raised once the running ones end;
    tasks that wait for a lane not in the list are an error."""
    pending, done, failures = list(tasks), set(), []
    running, large_running = 0, False
    ready = threading.Condition()

    def worker() -> None:
        nonlocal running, large_running
        while True:
            with ready:
                while True:
                    if failures or not pending:
                        return
                    task = next((t for t in pending if t.after <= done and not (t.large and large_running)), None)
                    if task is not None:
                        pending.remove(task)
                        running += 1
                        large_running |= task.large
                        break
                    if running == 0:
                        return
                    ready.wait()
            try:
                run(task)
            except BaseException as exc:            # noqa: BLE001 - re-raised below, in the caller's thread
                failures.append(exc)
            with ready:
                done.add(task.key)
                running -= 1
                large_running &= not task.large
                ready.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    if pending:
        raise RuntimeError(f"lanes never ready: {[t.key for t in pending]} wait for lanes that are not in the list")


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with <element>/training.json, test.json")
    parser.add_argument("--elements", nargs="+", default=list(published.ELEMENTS), choices=published.ELEMENTS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--max-configs", type=int, default=None, help="first N train and test configurations (tests)")
    parser.add_argument("--twojmax", type=int, default=None, help="2Jmax the SNAP/qSNAP search starts from "
                        "(default: the study's); SNAP+NN's 2Jmax")
    parser.add_argument("--rcut", type=float, default=None, help="override the study's cutoff (tests)")
    parser.add_argument("--snap-rcut-offsets", type=float, nargs="+", default=list(SNAP_CUTOFF_OFFSETS),
                        help="SNAP/qSNAP cutoffs tried (Å added to the study's cutoff), chosen by cross-validation")
    parser.add_argument("--snap-twojmax-offsets", type=int, nargs="*", default=list(SNAP_TWOJMAX_OFFSETS),
                        help="SNAP/qSNAP 2Jmax tried at the chosen cutoff (added to the study's 2Jmax); none: the study's")
    parser.add_argument("--no-group-weights", action="store_true",
                        help="SNAP/qSNAP: one energy/force/stress weight for all groups (no per-group refinement)")
    parser.add_argument("--ace-group-weights", action="store_true",
                        help="linear ACE: refine the weights per group as for SNAP/qSNAP (default: one per row kind)")
    parser.add_argument("--ace-rcut-offsets", type=float, nargs="+", default=list(ACE_CUTOFF_OFFSETS),
                        help="ACE cutoffs tried (Å added to the study's SNAP cutoff), chosen by cross-validation")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds for the row weights")
    parser.add_argument("--nn-epochs", type=int, default=NN_EPOCHS,
                        help="epochs of the networks' cosine learning-rate decay (the best validation epoch is kept)")
    parser.add_argument("--nn-hidden", type=int, nargs="+", default=[64, 64], help="MLP hidden layer widths")
    parser.add_argument("--md-atoms", type=int, default=1500)
    parser.add_argument("--md-steps", type=int, default=20, help="MD steps of the compiled routes (snap, pace, plugin, overlay)")
    parser.add_argument("--md-steps-unified", type=int, default=5, help="MD steps of the ML-IAP unified route")
    parser.add_argument("--no-cost", action="store_true", help="skip the LAMMPS MD timing")
    parser.add_argument("--cost-only", action="store_true",
                        help="only time the models saved in --models-dir (entries already in --results)")
    parser.add_argument("--rescore", action="store_true",
                        help="only re-score the models saved in --models-dir on the test sets (MAEs and standard errors)")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="fitted potentials (.pt)")
    parser.add_argument("--report-only", action="store_true", help="rebuild table/plot/doc from --results")
    parser.add_argument("--merge", type=Path, nargs="+", default=[],
                        help="add the entries of other results files (runs split over processes) that --results lacks")
    parser.add_argument("--readme", type=Path, default=DEFAULT_README,
                        help="file whose summary block (short table and plot) is rewritten")
    parser.add_argument("--no-doc", action="store_true", help="do not touch --doc and --readme")
    parser.add_argument("--write-configs", type=Path, nargs="?", const=ROOT / "mliap_torch" / "configs" / "experiment", default=None,
                        help="write mliap_torch/configs/experiment/mlearn_<el>_<model>.yaml from the results")
    parser.add_argument("--jobs", type=int, default=1,
                        help="fit in this many processes (one element each, one thread each), then time the "
                             "models in this one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    results = load_results(args.results)
    for other in args.merge:
        for key, entry in load_results(other).items():
            results.setdefault(key, entry)
    if args.merge:
        save_results(args.results, results)
    t_start = time.perf_counter()
    if not args.report_only:
        print(f"mlearn benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
              f"{torch.__version__}, load average {os.getloadavg()[0]:.1f}", flush=True)
        if args.jobs > 1 and not (args.cost_only or args.rescore):
            results.update(fit_in_processes(args, results, t_start))
            save_results(args.results, results)
            args.cost_only = True                   # the timing pass below, alone on the machine
        for el in args.elements:
            combined = "ensemble" in args.models          # made from the saved members in every pass
            train, test = ((None, None) if args.cost_only and not combined
                           else load_split(args.data, el, args.max_configs))
            for model in args.models:
                key = f"{el}/{model}"
                if (args.cost_only or args.rescore) and model != "ensemble":
                    if key not in results:
                        print(f"{key}: no saved result (fit it first)", flush=True)
                        continue
                    entry = results[key]
                    potential = load(args.models_dir / f"mlearn_{el.lower()}_{model}.pt")
                    if args.rescore:
                        rescore(entry, potential, test)
                else:
                    cell, potential = run_cell(el, model, train, test, args, results)
                    entry = json.loads(json.dumps(dataclasses.asdict(cell)))
                if not args.no_cost and not args.rescore:
                    measure_cost(entry, potential, args)
                results[key] = entry
                save_results(args.results, results)
                cost = "—" if entry.get("cost_us") is None else f"{entry['cost_us']:.1f} µs/atom-step ({entry['cost_route']})"
                print(f"{el} {MODEL_LABELS[model]}: test E {entry['energy_mae']:.2f} meV/atom, F {entry['force_mae']:.4f} "
                      f"eV/Å; fit {entry['fit_seconds']:.0f} s; cost {cost}; weights {entry['weights']}; "
                      f"elapsed {time.perf_counter() - t_start:.0f} s", flush=True)
    elements = [el for el in published.ELEMENTS if any(k.startswith(f"{el}/") for k in results)]
    models = [m for m in MODELS if any(k.endswith(f"/{m}") for k in results)]
    block = table_markdown(results, elements, models)
    print(block)
    if models:
        pareto_plot(results, elements, models, args.plot)
    if not args.no_doc:
        write_block(args.doc, block + f"\n\n![accuracy vs cost]({_relative(args.plot, args.doc.parent)})",
                    BEGIN, END, append_if_missing=True)
        summary = summary_markdown(results, elements, models)
        write_block(args.readme, summary + f"\n\n![accuracy vs cost]({_relative(args.plot, args.readme.parent)})",
                    SUMMARY_BEGIN, SUMMARY_END, append_if_missing=True)
    if args.write_configs is not None:
        for path in write_configs(results, args.write_configs):
            print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
