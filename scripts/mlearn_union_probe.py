"""Probe of the next mlearn model form: one linear fit on the union of the large ACE's and qSNAP's columns.

    .venv/bin/python scripts/mlearn_union_probe.py --elements Ge Mo     # 12–17 min per element here, one thread

For each element the two descriptors are the table's own (``docs/mlearn_benchmark/results.json``): the large
ACE (``ace_td``: 1004 functions at its cutoff) and qSNAP (its cross-validated cutoff and 2Jmax). Their
design rows (:func:`~mlearn_study.torch_rows.torch_rows`, :func:`~mlearn_study.snap_rows.snap_rows`) are
joined column-wise, one constant for both (:func:`~mlearn_study.snap_rows.joined_columns`), and fitted by
the study's exact fit (:func:`~mlearn_study.mlearn.exact_fit`): the large ACE's grid of weights and ridge,
per-group weights kept only if they also win on a second fold split, all by 5-fold cross-validation on
training.json. ``--target-published`` scores the CV by ``max(E/E_ref, F/F_ref)`` against the better of GAP
and MTP (as SNAP and qSNAP are scored against the study's own), instead of ``E/min E + F/min F``.

The sum ``E_i = β0 + β_ACE·B_i + β_q·f(B'_i)`` would run in LAMMPS as ``pair_style hybrid/overlay pace snap``.
It is not a model form of the table yet — the package has no potential made of two descriptors, so there is
no ``.pt``, no LAMMPS cost and no experiment config — and this probe measures whether it is worth one. Test
errors come from the test rows (the same predictions the two parts make). Results go to
``docs/mlearn_benchmark/union_probe.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))   # the study package scripts/mlearn_study

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mlearn_study import mlearn_published as published  # noqa: E402
from mlearn_study.mlearn import (  # noqa: E402
    ACE_TD_BASIS,
    ACE_TD_GRID,
    RowSet,
    errors,
    exact_fit,
    make_ace,
    make_bispectrum,
    standard_errors,
)
from mlearn_study.snap_rows import SnapRows, joined_columns, snap_rows  # noqa: E402
from mlearn_study.torch_rows import torch_rows  # noqa: E402
from mliap_torch.data.readers import read_mlearn  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mlearn"
DEFAULT_RESULTS = ROOT / "docs" / "mlearn_benchmark" / "results.json"
DEFAULT_OUT = ROOT / "docs" / "mlearn_benchmark" / "union_probe.json"


def best_published(element: str) -> tuple[float, float]:
    """(energy MAE meV/atom, force MAE eV/Å) to beat: the better of GAP and MTP, forces at the published two decimals."""
    return (min(published.ENERGY_MAE[m][element] for m in ("GAP", "MTP")),
            published.FORCE_MAE_RANGE[element][0])


def union_rows(configs, ace, bispectrum) -> list[SnapRows]:
    """Joined rows ``[1, ACE, qSNAP features]`` of every configuration."""
    return [joined_columns(a, q) for a, q in zip(torch_rows(list(configs), ace), snap_rows(list(configs), bispectrum, True))]


def probe(element: str, data: Path, results: dict, target_published: bool) -> dict:
    """Fit and score the union for ``element``; returns the JSON entry."""
    t0 = time.perf_counter()
    train = read_mlearn(data / element / "training.json", element=element)
    test = read_mlearn(data / element / "test.json", element=element)
    ace_settings, qsnap_settings = results[f"{element}/ace_td"]["settings"], results[f"{element}/qsnap"]["settings"]
    ace = make_ace(element, ace_settings["rcut"], ACE_TD_BASIS)
    bispectrum = make_bispectrum(element, qsnap_settings["rcut"], qsnap_settings["twojmax"])
    train_rows, test_rows = union_rows(train, ace, bispectrum), union_rows(test, ace, bispectrum)
    rows_seconds = time.perf_counter() - t0
    reference = best_published(element) if target_published else None
    fit = exact_fit(RowSet.build(train, train_rows), len(train), reference, ACE_TD_GRID, 5, 0, group_weights=True)
    pred = {"energy": np.array([r.energy @ fit.x for r in test_rows]),
            "energy_ref": np.array([c.energy / c.num_atoms for c in test]),
            "forces": np.concatenate([(r.forces @ fit.x).reshape(-1, 3) for r in test_rows]),
            "forces_ref": np.concatenate([np.asarray(c.forces) for c in test]),
            "num_atoms": np.array([c.num_atoms for c in test])}
    (e, f), (se_e, se_f) = errors(pred), standard_errors(pred)
    return {"element": element, "energy_mae": e, "force_mae": f, "energy_mae_se": se_e, "force_mae_se": se_f,
            "cv_errors": list(fit.selection.cv_errors), "train_errors": list(fit.train_errors),
            "num_columns": int(fit.x.shape[0]), "ace_rcut": ace_settings["rcut"], "qsnap_rcut": qsnap_settings["rcut"],
            "qsnap_twojmax": qsnap_settings["twojmax"], "weights": list(fit.selection.weights),
            "ridge": fit.selection.ridge, "group_weights": fit.selection.group_weights,
            "group_search_kept": fit.selection.group_search.get("kept"),
            "cv_score": "max(E/E_ref, F/F_ref)" if target_published else "E/min E + F/min F",
            "reference": list(reference) if reference else None,
            "rows_seconds": rows_seconds, "fit_seconds": time.perf_counter() - t0 - rows_seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", nargs="+", default=list(published.ELEMENTS), choices=published.ELEMENTS)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the table's results (descriptor settings)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--target-published", action="store_true",
                        help="score the CV by max(E/E_ref, F/F_ref) against the better of GAP and MTP")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    results = json.loads(args.results.read_text())
    out = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for element in args.elements:
        missing = [k for k in (f"{element}/ace_td", f"{element}/qsnap") if k not in results]
        if missing:
            sys.exit(f"{args.results}: no {', '.join(missing)} entry to take the descriptors from (run "
                     f"scripts/mlearn_benchmark.py --elements {element} --models qsnap ace_td first)")
        entry = probe(element, args.data, results, args.target_published)
        out[f"{element}/{'published_target' if args.target_published else 'balanced'}"] = entry
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        print(f"{element} large ACE + qSNAP ({entry['num_columns']} columns): test E {entry['energy_mae']:.3f} "
              f"± {entry['energy_mae_se']:.3f} meV/atom, F {entry['force_mae']:.4f} ± {entry['force_mae_se']:.4f} eV/Å; "
              f"CV {entry['cv_errors'][0]:.3f}, {entry['cv_errors'][1]:.4f}; rows {entry['rows_seconds']:.0f} s, "
              f"fit {entry['fit_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
