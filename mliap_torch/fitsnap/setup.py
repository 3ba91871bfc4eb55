"""A FitSNAP ``.in`` file as a ready exact fit: :func:`fitsnap_setup` → :class:`FitSNAPSetup` → ``.fit()``.

The setup holds the potential (:func:`~mliap_torch.fitsnap.potential.fitsnap_potential`), the data
(:func:`~mliap_torch.fitsnap.data.read_fitsnap_split`: ``[GROUPS]`` under ``[PATH] dataPath``, ``[ESHIFT]``
applied, group weights and train/test split), the solver (``[SOLVER]``/``[RIDGE]``) and the fitted
labels (``[CALCULATOR]``); ``fit()`` runs the generic :func:`~mliap_torch.fitting.exact_fit.fit_exact`
with FitSNAP's stress rows (bar, compression positive).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.configuration import Configuration
from ..fitting.design import FITSNAP_STRESS_SCALE, fitsnap_stress_target_scale
from ..fitting.exact_fit import FitResult, fit_exact
from ..models.potential import Potential
from .check import check_settings
from .data import read_fitsnap_split
from .input import read_fitsnap_input
from .potential import fitsnap_potential


@dataclass
class FitSNAPSetup:
    """Everything a FitSNAP ``.in`` file describes, in mliap_torch objects.

    Attributes:
        potential: Bispectrum (``[BISPECTRUM]``) or ACE (``[ACE]``) + linear/quadratic head + ZBL reference.
        configurations: the data (ESHIFT applied, group weights set), FitSNAP's group order.
        test: (nconfigs,) test flags from the group table sizes.
        group_names: groups in table order.
        solver: ``"svd"`` (FitSNAP's SVD) or ``"ridge"`` (FitSNAP's RIDGE), see :func:`fitsnap_solver`.
        rcond: FitSNAP's SVD cutoff (1e-13).
        stress_scale: :data:`~mliap_torch.fitting.design.FITSNAP_STRESS_SCALE` (rows and weights in bar; labelled stresses are
            taken back to the file's bar exactly, as FitSNAP reads them).
        settings: the parsed input.
        alpha: ``[RIDGE] alpha`` (ridge solver only).
        energy, forces, stress: the ``[CALCULATOR]`` flags: which rows are fitted.
    """

    potential: Potential
    configurations: list[Configuration]
    test: list[bool]
    group_names: list[str]
    solver: str
    rcond: float | None
    stress_scale: float
    settings: dict[str, Any]
    alpha: float = 0.0
    energy: bool = True
    forces: bool = True
    stress: bool = True

    def fit(self, **kwargs: Any) -> FitResult:
        """:func:`~mliap_torch.fitting.exact_fit.fit_exact` with this setup's data, splits, groups, solver, fitted
        labels and stress units; ``kwargs`` override its options (e.g. ``progress=True``, ``chunk_atoms=...``)."""
        options: dict[str, Any] = {"test": self.test, "solver": self.solver, "rcond": self.rcond, "alpha": self.alpha,
                   "energy": self.energy, "forces": self.forces, "stress": self.stress,
                   "stress_scale": self.stress_scale,
                   "stress_target_scale": fitsnap_stress_target_scale(), "group_names": self.group_names}
        options.update(kwargs)
        return fit_exact(self.potential, self.configurations, **options)


def fitsnap_solver(settings: dict[str, Any], source: str = "<input>") -> tuple[str, float | None, float]:
    """``(solver, rcond, alpha)`` of :func:`~mliap_torch.fitting.exact_fit.fit_exact` for a FitSNAP ``[SOLVER]``
    (and ``[RIDGE]``).

    ``SVD`` (the default): minimum-norm solution with FitSNAP's cutoff ``rcond = 1e-13``. ``RIDGE``:
    FitSNAP minimises ``‖w·(A x − b)‖² + α ‖x‖²`` on the weighted rows, constant columns included
    (``sklearn.linear_model.Ridge(alpha, fit_intercept=False)`` or, with ``local_solver = 1``, the
    same normal equations), which is our ``"ridge"`` solver with ``alpha = [RIDGE] alpha``
    (FitSNAP's default 1e-8). Other FitSNAP solvers raise ValueError.
    """
    name = str(settings.get("SOLVER", {}).get("solver", "SVD")).upper()
    if name == "SVD":
        return "svd", 1e-13, 0.0
    if name == "RIDGE":
        ridge = settings.get("RIDGE", {})
        unknown = sorted(set(ridge) - {"alpha", "local_solver"})
        if unknown:
            raise ValueError(f"{source}: [RIDGE] key(s) {unknown} are not supported (known: alpha, local_solver)")
        return "ridge", None, float(ridge.get("alpha", 1e-8))
    raise ValueError(f"{source}: [SOLVER] solver = {name} is not supported by the exact fit (SVD or RIDGE)")


def fitsnap_setup(input_file: str | Path, data_order: str | Sequence[str] = "sorted",
                  data_path: str | Path | None = None, strict: bool = False) -> FitSNAPSetup:
    """Read a FitSNAP ``.in`` file and its data into a :class:`FitSNAPSetup`.

    Args:
        input_file: the ``.in`` file; ``[PATH] dataPath`` is resolved as FitSNAP does
            (:func:`~mliap_torch.fitsnap.input.resolve_data_path`).
        data_order: file order within groups (see :func:`mliap_torch.data.readers.read_fitsnap_json`).
        data_path: the folder of group folders, overriding ``[PATH] dataPath`` (e.g. an unpacked archive).
        strict: reject every section, key or value that the fit does not reproduce
            (:func:`~mliap_torch.fitsnap.check.check_settings`) before reading any data, as FitSNAP
            rejects keys it does not know; otherwise settings without effect here are ignored.
    """
    input_file = Path(input_file)
    settings = read_fitsnap_input(input_file)
    if strict:
        check_settings(settings, input_file)
    potential = fitsnap_potential(settings, str(input_file))
    solver, rcond, alpha = fitsnap_solver(settings, str(input_file))
    train, test, names = read_fitsnap_split(settings, input_file, data_order=data_order, data_path=data_path)
    calculator = settings.get("CALCULATOR", {})
    return FitSNAPSetup(potential=potential, configurations=train + test, test=[False] * len(train) + [True] * len(test),
                        group_names=names, solver=solver, rcond=rcond, stress_scale=FITSNAP_STRESS_SCALE,
                        settings=settings, alpha=alpha, energy=bool(calculator.get("energy", 1)),
                        forces=bool(calculator.get("force", 1)), stress=bool(calculator.get("stress", 1)))
