"""Learn SNAP's wj, radelem and rfac0 on an mlearn element (bilevel: exact linear head, gradient on the
validation loss), refit exactly on all training data and compare test errors with the study's settings.

    python scripts/learn_hyperparameters.py run --element Mo      # writes docs/differentiable_descriptors/Mo.json
    python scripts/learn_hyperparameters.py report                # docs/differentiable_descriptors.md + PNG

Protocol (the test set is used only for the final numbers):
1. training.json is split (seeded) into a fit subset and a validation subset (disjoint);
2. the energy row weight is chosen on the validation subset for the STUDY's descriptor (grid, forces weight 1);
3. bilevel descent of (wj, radelem, rfac0) from the study's values (radelem just inside its bound, so
   the cutoff never exceeds the study's), exact ridge solve on the fit subset at every step;
4. both descriptors (study, learned) get the same exact fit on ALL training configurations (same weights,
   same ridge; rows from LAMMPS ``compute snap`` with each descriptor's settings) and are scored on test.json with the torch potential's own predictions.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))   # the study package scripts/mlearn_study

from mlearn_study import mlearn_published as published  # noqa: E402
from mlearn_study.mlearn import errors, evaluate, make_bispectrum, study_settings  # noqa: E402
from mlearn_study.snap_rows import snap_rows  # noqa: E402
from mliap_torch.data.readers.mlearn import read_mlearn  # noqa: E402
from mliap_torch.descriptors.trainable import TrainableBispectrum, frozen_copy  # noqa: E402
from mliap_torch.fitting.design import DesignMatrixBuilder  # noqa: E402
from mliap_torch.models.heads import LinearHead  # noqa: E402
from mliap_torch.models.potential import Potential  # noqa: E402
from mliap_torch.training.hyper import (  # noqa: E402
    _maes,
    _rows,
    _solve,
    bilevel_objective,
    make_batches,
    result_table,
    train_bilevel,
)

DATA = ROOT.parent / "shared" / "data" / "mlearn"
OUT = ROOT / "docs" / "differentiable_descriptors"
ENERGY_WEIGHTS = (30.0, 100.0, 300.0, 1000.0)


def fit_all(potential: Potential, configs, weights, ridge) -> None:
    """Exact weighted ridge fit of the linear head on all ``configs`` (energy + force rows), the rows
    from LAMMPS ``compute snap`` with the descriptor's (learned) settings: fast, and an independent
    check that the learned values reach LAMMPS."""
    rows = snap_rows(list(configs), potential.descriptor, quadratic=False)
    A_e = torch.as_tensor(np.stack([r.energy for r in rows]))
    b_e = torch.as_tensor([c.energy / c.num_atoms for c in configs])
    A_f = torch.as_tensor(np.concatenate([r.forces for r in rows]))
    b_f = torch.as_tensor(np.concatenate([np.asarray(c.forces).reshape(-1) for c in configs]))
    A = torch.cat([weights[0] * A_e, weights[1] * A_f])
    b = torch.cat([weights[0] * b_e, weights[1] * b_f])
    if ridge > 0:
        A = torch.cat([A, ridge ** 0.5 * torch.eye(A.shape[1], dtype=A.dtype)])
        b = torch.cat([b, b.new_zeros(A.shape[1])])
    Q, R = torch.linalg.qr(A)
    x = torch.linalg.solve_triangular(R, (Q.T @ b)[:, None], upper=True)[:, 0]
    potential.head.set_coefficients(x[None, :])


def linear(descriptor) -> Potential:
    return Potential(descriptor, LinearHead(1, descriptor.num_descriptors))


def run(element: str, steps: int, fit_configs: int, val_configs: int, lr: float, ridge: float, seed: int) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    t_start = time.perf_counter()
    train_all = read_mlearn(DATA / element / "training.json")
    test = read_mlearn(DATA / element / "test.json")
    rcut, twojmax = study_settings(element, "snap")
    order = np.random.default_rng(seed).permutation(len(train_all))
    fit_set = [train_all[k] for k in order[:fit_configs]]
    val_set = [train_all[k] for k in order[fit_configs:fit_configs + val_configs]]

    study = linear(make_bispectrum(element, rcut, twojmax))
    fit_b, val_b = make_batches(study, fit_set), make_batches(study, val_set)
    # 2. energy weight for the study's descriptor, chosen on the validation subset
    builder = DesignMatrixBuilder(study, stress=False)
    rows_f = _rows(builder, fit_b, (1.0, 1.0))
    rows_v = _rows(builder, val_b, (1.0, 1.0))
    choice = {}
    for we in ENERGY_WEIGHTS:
        for r in rows_f + rows_v:
            r.w = torch.where(r.kind == 0, we, 1.0).to(r.A.dtype)
        beta, _ = _solve(rows_f, ridge)
        choice[we] = _maes(rows_v, beta)
    # relative validation errors, energy and force counted equally
    e0 = min(v[0] for v in choice.values())
    f0 = min(v[1] for v in choice.values())
    we = min(choice, key=lambda w: choice[w][0] / e0 + choice[w][1] / f0)
    weights = (we, 1.0)
    print(f"{element}: rcut {rcut}, 2Jmax {twojmax}; energy weight {we} (validation MAE by weight: {choice})",
          flush=True)

    # 3. bilevel descent from the study's values
    desc = TrainableBispectrum([element], twojmax, rcut, [0.98 * published.RADELEM], [1.0], rfac0=published.RFAC0,
                               rmin0=published.RMIN0, bzeroflag=False, trainable=["wj", "radelem", "rfac0"],
                               max_cutoff=rcut)
    pot = linear(desc)
    # validation loss: energy and force errors relative to the study's (both terms start near 1)
    for r in rows_f + rows_v:
        r.w = torch.where(r.kind == 0, we, 1.0).to(r.A.dtype)
    beta, _ = _solve(rows_f, ridge)
    res = torch.cat([r.A @ beta - r.b for r in rows_v])
    kinds = torch.cat([r.kind for r in rows_v])
    val_weights = (float(res[kinds == 0].pow(2).mean().rsqrt()), float(res[kinds == 1].pow(2).mean().rsqrt()))
    study_val = bilevel_objective(study, fit_b, val_b, weights=weights, ridge=ridge, val_weights=val_weights)

    def log(rec):
        print(f"step {rec.step:3d}  L_val {rec.loss:.5g}  E {rec.energy_mae:.3f} meV/atom  F {rec.force_mae:.4f} eV/Å  "
              f"{ {k: [round(x, 5) for x in v] for k, v in rec.hyperparameters.items()} }  {rec.seconds:.0f}s",
              flush=True)

    hist = train_bilevel(pot, fit_b, val_b, steps, lr=lr, weights=weights, ridge=ridge, val_weights=val_weights,
                         callback=log)
    learned = {k: [float(x) for x in v.detach().reshape(-1)] for k, v in desc.hyperparameters().items()}
    print(f"learned: {learned}", flush=True)

    # 4. exact refit on all training data, test errors
    results = {}
    for name, potential in (("study", study), ("learned", frozen_copy(pot))):
        fit_all(potential, train_all, weights, ridge)
        test_e, test_f = errors(evaluate(potential, test))
        results[name] = {"test_energy_mae": test_e, "test_force_mae": test_f,
                         "settings": potential.descriptor.settings()}
        print(f"{name}: test E {test_e:.3f} meV/atom, F {test_f:.4f} eV/Å", flush=True)
        if name == "learned":
            from mliap_torch.models.io import save
            save(potential, OUT / f"{element}_learned_snap.pt", metadata={"element": element})
    OUT.mkdir(parents=True, exist_ok=True)
    blob = {"element": element, "rcut": rcut, "twojmax": twojmax, "weights": weights, "ridge": ridge,
            "fit_configs": fit_configs, "val_configs": val_configs, "seed": seed, "lr": lr, "steps": steps, "val_weights": val_weights,
            "energy_weight_choice": {str(k): v for k, v in choice.items()}, "study_validation_loss": study_val,
            "history": result_table(hist), "learned": learned, "results": results,
            "published": {"energy_mae": published.ENERGY_MAE["SNAP"][element],
                          "force_mae": published.FORCE_MAE["SNAP"][element]},
            "seconds": time.perf_counter() - t_start}
    (OUT / f"{element}.json").write_text(json.dumps(blob, indent=1))
    print(f"done in {blob['seconds']:.0f}s", flush=True)


def lammps_check(element: str) -> dict[str, tuple[float, float]]:
    """Export the learned model (every route) and compare LAMMPS with torch on three test configurations:
    route -> (max relative energy difference, max force difference eV/Å)."""
    import os
    import tempfile

    from mliap_torch.data.batch import make_batch
    from mliap_torch.export.lammps_export import export_lammps
    from mliap_torch.lammps_eval import evaluate_in_lammps
    from mliap_torch.models.io import load

    potential = load(OUT / f"{element}_learned_snap.pt")
    configs = read_mlearn(DATA / element / "test.json")[:3]
    out = potential(make_batch(configs, potential.elements, potential.cutoff))
    e_torch, f_torch = out["energy"].detach().numpy(), out["forces"].detach().numpy()
    checks = {}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        routes = export_lammps(potential, folder).routes
        os.chdir(folder)
        try:
            for name, route in routes.items():
                res = evaluate_in_lammps(configs, potential.elements, route.pair_commands,
                                         activate_mliappy=name == "unified")
                e = np.array([r["energy"] for r in res])
                f = np.concatenate([r["forces"] for r in res])
                checks[name] = (float(np.abs(e - e_torch).max() / np.abs(e_torch).max()),
                                float(np.abs(f - f_torch).max()))
        finally:
            os.chdir(cwd)
    return checks


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blobs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))]
    fig, axes = plt.subplots(len(blobs), 2, figsize=(10, 3.2 * len(blobs)), squeeze=False)
    for row, b in zip(axes, blobs):
        steps = [h["step"] for h in b["history"]]
        ax = row[0]
        ax.plot(steps, [h["energy_mae"] for h in b["history"]], "C0-", label="validation energy MAE (meV/atom)")
        ax.set_xlabel("step")
        ax.set_ylabel("meV/atom", color="C0")
        ax2 = ax.twinx()
        ax2.plot(steps, [h["force_mae"] for h in b["history"]], "C1-", label="validation force MAE (eV/Å)")
        ax2.set_ylabel("eV/Å", color="C1")
        study_e, study_f = b["energy_weight_choice"][str(b["weights"][0])]
        ax.axhline(study_e, color="C0", ls="--", lw=0.8)
        ax2.axhline(study_f, color="C1", ls="--", lw=0.8)
        ax.set_title(f"{b['element']}: validation MAE (exact head; dashed: study settings)", fontsize=10)
        ax = row[1]
        for k, name in enumerate(("wj", "radelem", "rfac0")):
            ax.plot(steps, [h["hyperparameters"][name][0] / b["history"][0]["hyperparameters"][name][0]
                            for h in b["history"]], f"C{k}-", label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("value / start value")
        ax.legend()
        ax.set_title(f"{b['element']}: hyperparameters")
    fig.tight_layout()
    png = ROOT / "docs" / "differentiable_descriptors.png"
    fig.savefig(png, dpi=110)

    lines = ["# Differentiable descriptors: learned SNAP hyperparameters", "",
             "Generated by `scripts/learn_hyperparameters.py` (run per element, then `report`).", "",
             "Descriptor hyperparameters become constrained trainable parameters "
             "(`Bispectrum(..., trainable=[\"wj\", \"radelem\", \"rfac0\"])`, `ACE(..., trainable=[\"crad\", \"rcut\"])`; "
             "`TrainableBispectrum`/`TrainableACE` in `mliap_torch.descriptors.trainable` default to all of them; the maps "
             "are in `mliap_torch.descriptors.constraints`): `wj = softplus(θ)`, `rfac0 = sigmoid(θ)`, "
             "`radelem = lo + (hi − lo)·sigmoid(θ)` with `hi = max_cutoff/(2·rcutfac)` so every pair cutoff stays "
             "inside the neighbor-list radius fixed at construction. `settings()` returns the current values, so "
             "`mliap_torch.load` and every LAMMPS export write the learned values.", "",
             "Training modes (`mliap_torch.training.hyper`): `train_joint` (Adam on head and descriptor, "
             "E+F+S loss, double backward) and `train_bilevel` (linear/quadratic heads: the head is the exact "
             "weighted ridge solution on a fit subset at every step; the descriptor parameters follow the gradient "
             "of the validation loss through the solve, computed by the adjoint of the normal equations — "
             "checked against finite differences of the full bilevel objective in `tests/test_hyper.py`).", "",
             "```python",
             "from mliap_torch.descriptors.trainable import TrainableBispectrum",
             "from mliap_torch.training.hyper import make_batches, train_bilevel, train_joint",
             "desc = TrainableBispectrum([\"Mo\"], 6, 4.6, [0.49], [1.0], bzeroflag=False,",
             "                           trainable=[\"wj\", \"radelem\", \"rfac0\"], max_cutoff=4.6)",
             "pot = Potential(desc, LinearHead(1, desc.num_descriptors))",
             "fit, val = make_batches(pot, fit_configs), make_batches(pot, val_configs)   # neighbor lists at max_cutoff",
             "history = train_bilevel(pot, fit, val, steps=10, lr=0.2, weights=(1000.0, 1.0))",
             "export_lammps(pot, \"out\")     # the learned wj/radelem/rfac0 are in every route",
             "```", "",
             "## Protocol", "",
             "Per element: `training.json` split (seeded) into a fit subset and a disjoint validation subset; "
             "energy row weight chosen on the validation subset for the study's descriptor (force rows weight 1); "
             "bilevel Adam on (wj, radelem, rfac0) with the validation loss mean(ΔE²)/mean(ΔE₀²) + mean(ΔF²)/mean(ΔF₀²) "
             "(errors relative to the study descriptor's on the validation subset, so energy and force count equally), starting from the study's values (radelem 0.98×0.5, just inside "
             "its upper bound: the learned cutoff can only shrink, `max_cutoff` = the study's cutoff; same 2Jmax); "
             "then BOTH descriptors get the same exact fit on all training configurations (energy + force rows, same "
             "weights and ridge) and are scored on `test.json` (torch predictions; MAE of energy per atom and of "
             "force components). The test set is used for nothing else.", "",
             "## Results", "",
             "| element | rcut, 2Jmax | descriptor | wj | radelem (cutoff Å) | rfac0 | test E MAE meV/atom | "
             "test F MAE eV/Å |",
             "|---|---|---|---|---|---|---|---|"]
    for b in blobs:
        for name in ("study", "learned"):
            r = b["results"][name]
            s = r["settings"]
            lines.append(f"| {b['element']} | {b['rcut']}, {b['twojmax']} | {name} | {s['wj'][0]:.4f} | "
                         f"{s['radelem'][0]:.4f} ({2 * s['rcutfac'] * s['radelem'][0]:.3f}) | {s['rfac0']:.4f} | "
                         f"{r['test_energy_mae']:.3f} | {r['test_force_mae']:.4f} |")
        lines.append(f"| {b['element']} | {b['rcut']}, {b['twojmax']} | published SNAP (study) | 1 | 0.5 | 0.99363 | "
                     f"{b['published']['energy_mae']} | {b['published']['force_mae']} |")
    lines += ["", "Run settings:", ""]
    for b in blobs:
        h0, h1 = b["history"][0], min(b["history"], key=lambda h: h["loss"])
        lines.append(f"- {b['element']}: {b['fit_configs']} fit + {b['val_configs']} validation configurations, "
                     f"{b['steps']} Adam steps (lr {b['lr']}), energy weight {b['weights'][0]}, ridge {b['ridge']}, "
                     f"validation loss weights (E, F) {tuple(round(w, 3) for w in b['val_weights'])}; "
                     f"validation loss: study settings {b['study_validation_loss']:.5g} (validation MAE "
                     f"{b['energy_weight_choice'][str(b['weights'][0])][0]:.3f} meV/atom / "
                     f"{b['energy_weight_choice'][str(b['weights'][0])][1]:.4f} eV/Å), start {h0['loss']:.5g}, "
                     f"best {h1['loss']:.5g} (step {h1['step']}); validation MAE start {h0['energy_mae']:.3f} meV/atom / "
                     f"{h0['force_mae']:.4f} eV/Å → best {h1['energy_mae']:.3f} / {h1['force_mae']:.4f}; "
                     f"{b['seconds']:.0f} s on one CPU thread (shared machine).")
    lines += ["", "The learned models in LAMMPS (`export_lammps`, every route; three test configurations; "
              "largest relative energy difference and largest force difference in eV/Å against torch):", ""]
    for b in blobs:
        checks = lammps_check(b["element"])
        lines.append(f"- {b['element']}: " + "; ".join(f"{k}: {v[0]:.1e}, {v[1]:.1e} eV/Å" for k, v in checks.items()))
    lines += ["", "![path](differentiable_descriptors.png)", "",
              "Per-step values (hyperparameters, validation loss and MAE): `docs/differentiable_descriptors/<El>.json`; "
              "the learned models: `docs/differentiable_descriptors/<El>_learned_snap.pt` (`mliap_torch.load`).", "",
              "## Tests", "",
              "- `tests/test_trainable_descriptors.py`: gradients of an energy + force + stress loss with respect to "
              "every trainable hyperparameter (bispectrum `wj`, `radelem`, `rfac0`; ACE `rcut` per element pair and "
              "`crad`) equal central finite differences to 1e-6 relative (two-element cell, double backward); "
              "constraints hold for extreme raw values; `save`/`load` and `frozen_copy` rebuild plain descriptors "
              "with the learned values and identical energies, forces and stress; the `trainable` keyword (and "
              "`descriptor.options.trainable` in a config) makes the named hyperparameters of a plain "
              "`Bispectrum`/`ACE` learned.",
              "- `tests/test_hyper.py`: the bilevel hypergradient (adjoint of the QR/normal-equation solve) equals "
              "finite differences of the bilevel objective (re-solved at θ ± h) to 1e-6 relative, linear and "
              "quadratic heads; bilevel descent lowers the validation loss and leaves the exact head of the best "
              "step; joint descent lowers the E+F+S loss and moves the hyperparameters.",
              "- `tests/test_trainable_export.py` (LAMMPS): a two-element linear SNAP with moved `wj`, `radelem`, "
              "`rfac0` gives the torch energies, forces and stress in LAMMPS through the ML-IAP unified pickle "
              "(1e-8), through `.snapcoeff`/`.snapparam` written from `settings()` (1e-10), and through the "
              "`snap` and `mliap` routes of `export_lammps` (1e-10).", "",
              "## Limitations", "",
              "- Hypergradients of the bispectrum use its differentiable reference path (complex torch ops), "
              "several times slower and more memory hungry than the fast path; one bilevel step costs the numeric "
              "design rows of the subsets (fast path) plus three double-backward passes. On this shared 2-core "
              "machine that limited the runs to small fit/validation subsets and few steps (the paths above are "
              "not converged).",
              "- The bilevel loss uses energy and force rows (no stress rows); `train_joint` includes stress.",
              "- The unconstrained parameters are not in the state dict (the values travel in `settings()`); "
              "to continue training, rebuild with `settings()` plus `trainable_settings()`.", "",
              "## Path", ""]
    for b in blobs:
        lines.append(f"{b['element']}:")
        lines.append("")
        lines.append("| step | wj | radelem | rfac0 | val loss | val E MAE | val F MAE |")
        lines.append("|---|---|---|---|---|---|---|")
        for h in b["history"]:
            hp = h["hyperparameters"]
            lines.append(f"| {h['step']} | {hp['wj'][0]:.4f} | {hp['radelem'][0]:.4f} | {hp['rfac0'][0]:.4f} | "
                         f"{h['loss']:.5g} | {h['energy_mae']:.3f} | {h['force_mae']:.4f} |")
        lines.append("")
    (ROOT / "docs" / "differentiable_descriptors.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--element", required=True)
    r.add_argument("--steps", type=int, default=30)
    r.add_argument("--fit-configs", type=int, default=60)
    r.add_argument("--val-configs", type=int, default=40)
    r.add_argument("--lr", type=float, default=0.1)
    r.add_argument("--ridge", type=float, default=1e-8)
    r.add_argument("--seed", type=int, default=0)
    sub.add_parser("report")
    args = parser.parse_args()
    if args.cmd == "run":
        run(args.element, args.steps, args.fit_configs, args.val_configs, args.lr, args.ridge, args.seed)
    else:
        report()


if __name__ == "__main__":
    main()
