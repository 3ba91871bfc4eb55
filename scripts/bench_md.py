#!/usr/bin/env python
"""LAMMPS MD cost per atom-step of exported models: the plugin and ML-IAP unified against native ``pair_style snap``.

The same linear SNAP potential runs through ``pair_style snap`` (LAMMPS' C++ kernel), ``mliap model
linear``, the mliap_torch plugin (``pair_style mliap/torch``: LAMMPS' SNA + the head in libtorch, no
Python) and ``pair_style mliap unified`` (mliap_torch's descriptor and head in torch, called by LAMMPS
every step); a quadratic head (also through native snap and ``mliap model quadratic``) and a neural head on
the same descriptor run through the plugin and unified, ``model=snap_nn_native``'s network (tanh, no linear
term: what LAMMPS' own ``mliap model nn`` holds) through ``mliap model nn`` and the plugin, and so do an ACE model with a linear and with a neural head (the
project's default ACE basis, ``descriptor=ace``: ranks 1-3, nradmax 8/3/2, lmax 0/2/1, 4.5 Å; the
plugin runs it compiled by AOTInductor). One of the mlearn study's SNAP+NN models runs too: an MLP 64-64
(SiLU, with its linear term) on the study's Mo bispectrum (2Jmax 8, 4.3 Å), through the plugin and
unified, on bcc Mo, next to native linear snap on that descriptor. All in one run, same thread count;
the table reports µs per atom-step and the ratio to native linear snap on the same descriptor and
structure (the Ta one for the ACE rows).
With ``--ranks 1 2`` every route also runs on that many MPI ranks (one thread each) and the table adds
the parallel efficiency t(1 rank) / (N · t(N ranks)).

    python scripts/bench_md.py                       # FitSNAP's Ta potential from ../shared/data
    python scripts/bench_md.py --snapcoeff X.snapcoeff --snapparam X.snapparam --threads 2
    python scripts/bench_md.py --atoms 16000 --ranks 1 2   # MPI scaling (an MPI build of LAMMPS)
    python scripts/bench_md.py --nn-widths 64-64 32-32 16-16 32   # network size through mliap model nn
    MLIAP_TORCH_DEVICE=cuda python scripts/bench_md.py   # unified route on a GPU
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from ase.build import bulk
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mlearn_study.mlearn import make_bispectrum, study_settings
from mliap_torch.descriptors.ace import ACE
from mliap_torch.export.lammps_export import export_lammps
from mliap_torch.export.md_input import run_md, write_md_input
from mliap_torch.export.snap_files import mliap_model_kind, read_snap
from mliap_torch.models.heads import LinearHead, MLPHead, QuadraticHead
from mliap_torch.models.potential import Potential

ROOT = Path(__file__).resolve().parent.parent
ROUTE_NAMES = {"snap": "pair_style snap", "mliap": "mliap model {kind}", "plugin": "mliap/torch plugin",
               "unified": "mliap unified (torch)"}


def composed_model(name: str) -> DictConfig:
    """The ``model`` section of ``python train.py model=<name>`` as Hydra composes it."""
    with initialize_config_dir(config_dir=str(ROOT / "mliap_torch" / "configs"), version_base="1.3"):
        return compose("train", overrides=[f"model={name}"]).model


NATIVE_NN = composed_model("snap_nn_native")
"""``model=snap_nn_native``: the SNAP+NN head that LAMMPS' own ``mliap model nn`` holds (its architecture)."""
NATIVE_NN_LABEL = f"snap_nn_native {'-'.join(map(str, NATIVE_NN.hidden))} {NATIVE_NN.activation}"
ROUTES = {"linear": ("snap", "mliap", "plugin", "unified"), "quadratic": ("snap", "mliap", "plugin", "unified"),
          "mlp 64-64": ("plugin", "unified"), NATIVE_NN_LABEL: ("mliap", "plugin"),
          "ACE linear": ("plugin", "unified"),
          "ACE mlp 64-64": ("plugin", "unified"), "mlearn Mo linear": ("snap",),
          "mlearn Mo SNAP+NN 64-64": ("plugin", "unified")}
"""The routes each head runs through (native snap first: the ratios are to linear native snap)."""
MLEARN_ELEMENT = "Mo"
"""The element of the mlearn SNAP+NN rows (the study's SNAP settings for it: 2Jmax 8, 4.3 Å)."""
TA = ROOT.parent / "shared" / "data" / "fitsnap" / "Ta_Linear_JCP2014" / "reference"


ACE_SETTINGS = dict(nradmax_by_orders=[8, 3, 2], lmax_by_orders=[0, 2, 1], radial_basis="ChebExpCos",
                    radial_parameters=5.25, rcut=4.5, dcut=0.01)
"""The project's default ACE basis (``mliap_torch/configs/descriptor/ace.yaml``)."""


def variants(linear: Potential) -> dict[str, Potential]:
    """The linear potential plus a quadratic and an MLP head on the same descriptor (small random terms),
    ACE with a linear and an MLP head, and the mlearn SNAP+NN architecture with a linear head (small random
    coefficients) and an MLP head on its descriptor."""
    torch.manual_seed(0)
    n, K = len(linear.elements), linear.descriptor.num_descriptors
    quadratic = QuadraticHead(n, K)
    coeffs = torch.zeros(n, 1 + quadratic.num_features, dtype=torch.float64)
    coeffs[:, : 1 + K] = linear.head.coefficients().detach()
    coeffs[:, 1 + K:] = 1e-6 * torch.randn(n, quadratic.num_features - K, dtype=torch.float64)
    quadratic.set_coefficients(coeffs)
    mlp = MLPHead(n, K, hidden=(64, 64), linear_term=True)
    native_mlp = MLPHead(n, K, hidden=tuple(NATIVE_NN.hidden), activation=NATIVE_NN.activation,
                         linear_term=NATIVE_NN.linear_term)
    ace = ACE(linear.elements, **ACE_SETTINGS)
    ace_linear = LinearHead(n, ace.num_descriptors)
    ace_linear.set_coefficients(1e-3 * torch.randn(n, 1 + ace.num_descriptors, dtype=torch.float64))
    return {"linear": linear, "quadratic": Potential(linear.descriptor, quadratic, linear.reference),
            "mlp 64-64": Potential(linear.descriptor, mlp, linear.reference),
            NATIVE_NN_LABEL: Potential(linear.descriptor, native_mlp, linear.reference),
            "ACE linear": Potential(ace, ace_linear),
            "ACE mlp 64-64": Potential(ace, MLPHead(n, ace.num_descriptors, hidden=(64, 64), linear_term=True)),
            **mlearn_variants()}


def nn_width_variants(linear: Potential, widths: list[str]) -> dict[str, Potential]:
    """The linear potential and tanh networks without a linear term (``mliap model nn``) of hidden layers
    ``widths`` (``"64-64"``, ``"32"``) on its descriptor, random weights."""
    torch.manual_seed(0)
    n, K = len(linear.elements), linear.descriptor.num_descriptors
    nets = {f"tanh {w}": Potential(linear.descriptor, MLPHead(n, K, hidden=tuple(int(k) for k in w.split("-")),
                                                              activation="tanh"), linear.reference) for w in widths}
    return {"linear": linear, **nets}


def mlearn_variants() -> dict[str, Potential]:
    """The mlearn study's SNAP+NN for MLEARN_ELEMENT (the architecture of ``mlearn_study.experiment.nn_experiment``:
    MLP 64-64, SiLU, with a linear term, on the study's SNAP bispectrum) and a linear head on that
    descriptor for native snap; random weights (the cost does not depend on them)."""
    rcut, twojmax = study_settings(MLEARN_ELEMENT, "snap")
    descriptor = make_bispectrum(MLEARN_ELEMENT, rcut, twojmax)
    K = descriptor.num_descriptors
    linear = LinearHead(1, K)
    linear.set_coefficients(1e-3 * torch.randn(1, 1 + K, dtype=torch.float64))
    mlp = MLPHead(1, K, hidden=(64, 64), activation="silu", linear_term=True)
    return {"mlearn Mo linear": Potential(descriptor, linear), "mlearn Mo SNAP+NN 64-64": Potential(descriptor, mlp)}


def md_structure(element: str, atoms: int):
    """A rattled cubic bulk cell of ``element`` (ASE's reference lattice) with about ``atoms`` atoms."""
    cell = bulk(element, cubic=True)
    reps = max(1, round((atoms / len(cell)) ** (1 / 3)))
    structure = cell.repeat((reps, reps, reps))
    structure.rattle(0.02, seed=1)
    return structure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapcoeff", type=Path, default=TA / "Ta_pot.snapcoeff")
    parser.add_argument("--snapparam", type=Path, default=TA / "Ta_pot.snapparam")
    parser.add_argument("--atoms", type=int, default=2000, help="approximate number of atoms")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP / torch threads per rank")
    parser.add_argument("--ranks", type=int, nargs="+", default=None,
                        help="MPI rank counts (through the build's mpirun); default: plain lmp, no MPI")
    parser.add_argument("--nn-widths", nargs="+", default=None, metavar="HIDDEN",
                        help="only linear SNAP (snap, mliap model linear) and tanh networks of these hidden layers "
                             "(e.g. 64-64 32-32 32) through mliap model nn: what the network's size costs there")
    args = parser.parse_args()
    for f in (args.snapcoeff, args.snapparam):
        if not f.is_file():
            parser.error(f"{f} not found (pass --snapcoeff/--snapparam of a SNAP potential)")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MLIAP_TORCH_NUM_THREADS"] = str(args.threads)
    linear = read_snap(args.snapcoeff, args.snapparam)
    element = linear.elements[0]
    structures = {element: md_structure(element, args.atoms), MLEARN_ELEMENT: md_structure(MLEARN_ELEMENT, args.atoms)}
    structure = structures[element]
    device = os.environ.get("MLIAP_TORCH_DEVICE", "cpu")
    print(f"{element}: {len(structure)} atoms, {args.steps} NVE steps, {args.threads} thread(s), "
          f"2Jmax {linear.descriptor.settings()['twojmax']}, torch device {device}")
    ranks = args.ranks or [None]
    rows = []
    models, routes_of = variants(linear), ROUTES
    if args.nn_widths is not None:
        models = nn_width_variants(linear, args.nn_widths)
        routes_of = {label: ("snap", "mliap") if label == "linear" else ("mliap",) for label in models}
    with tempfile.TemporaryDirectory() as tmp:
        for label, potential in models.items():
            routes = routes_of[label]
            folder = Path(tmp) / label.replace(" ", "_").replace("+", "")
            result = export_lammps(potential, folder, routes=routes)
            for route in routes:
                write_md_input(folder, result.routes[route].include_file, structures[potential.elements[0]],
                               potential.elements,
                               temperature=300, steps=args.steps, thermo_every=args.steps, name=f"in.{route}")
                times = {n: run_md(folder, f"in.{route}", ranks=n).seconds_per_atom_step * 1e6 for n in ranks}
                rows.append((label, ROUTE_NAMES[route].format(kind=mliap_model_kind(potential)), times))
                print(f"{label} {route}: " + ", ".join(f"{n or 1} rank(s) {t:.1f} µs/atom-step" for n, t in times.items()),
                      flush=True)
    print_table(rows, ranks)


def descriptor_of(label: str) -> str:
    """The native-snap reference of a row: the mlearn descriptor for the mlearn rows, else the Ta one."""
    return "mlearn" if label.startswith("mlearn") else "ta"


def print_table(rows: list[tuple[str, str, dict[int | None, float]]], ranks: list[int | None]) -> None:
    """Markdown table: µs/atom-step per rank count, ratio to native snap (first rank count; the mlearn rows
    to native snap on their own descriptor, the others to the first row's) and the parallel efficiency
    t₁ / (N · t_N) of each further rank count against the first; the rows on the Ta descriptor also get
    their ratio to ``mliap model linear`` (first rank count)."""
    natives = {descriptor_of(label): times[ranks[0]] for label, route, times in rows
               if route == ROUTE_NAMES["snap"] and label.endswith("linear")}
    mliap_linear = next((times[ranks[0]] for label, route, times in rows
                         if label == "linear" and route == ROUTE_NAMES["mliap"].format(kind="linear")), None)
    first = ranks[0] or 1
    head = " | ".join(f"µs/atom-step, {n or 1} rank(s)" for n in ranks)
    eff = "".join(f" efficiency {n} ranks |" for n in ranks[1:])
    print(f"\n| head | LAMMPS route | {head} | ratio to native snap | ratio to mliap model linear |{eff}")
    print("|---|---|" + "---|" * (len(ranks) + 2 + len(ranks[1:])))
    for label, name, times in rows:
        cells = " | ".join(f"{times[n]:.1f}" for n in ranks)
        effs = "".join(f" {first * times[ranks[0]] / (n * times[n]):.2f} |" for n in ranks[1:])
        native = natives[descriptor_of(label)]
        to_mliap = (f"{times[ranks[0]] / mliap_linear:.2f}" if mliap_linear and descriptor_of(label) == "ta"
                    and not label.startswith("ACE") else "—")
        print(f"| {label} | {name} | {cells} | {times[ranks[0]] / native:.2f} | {to_mliap} |{effs}")


if __name__ == "__main__":
    main()
