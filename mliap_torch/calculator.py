"""ASE calculator for any mliap_torch :class:`~mliap_torch.models.potential.Potential`."""
from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes

from .data.batch import make_batch
from .data.configuration import Configuration
from .models.potential import Potential


class Calculator(AseCalculator):
    """ASE calculator: energy, free_energy, forces, stress (eV/Å³, ASE convention) and per-atom energies.

    When the potential has an active set (models trained by ``python train.py`` have one), every calculation
    also sets ``results["extrapolation_grade"]``: (natoms,) γ per atom from the same descriptors
    (:meth:`~mliap_torch.models.potential.Potential.extrapolation_grade`; γ ≤ 1 interpolation, γ > 1
    extrapolation), also available as ``calc.get_property("extrapolation_grade", atoms)``.

    Args:
        potential: the model to evaluate.
        device: torch device to run on (default: the potential's).
        dtype: floating type of the evaluation (default float64).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, potential: Potential, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float64, **kwargs):
        super().__init__(**kwargs)
        if device is None:
            device = next(iter(potential.parameters()), torch.empty(0)).device
        self.device = torch.device(device)
        self.dtype = dtype
        self.potential = potential.to(device=self.device, dtype=dtype).eval()
        if potential.active_set is not None:
            self.implemented_properties = [*type(self).implemented_properties, "extrapolation_grade"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        config = Configuration.from_ase(self.atoms)
        config.energy = config.forces = config.stress = None
        batch = make_batch([config], self.potential.elements, self.potential.cutoff, dtype=self.dtype)
        batch = batch.to(self.device)
        want_stress = "stress" in properties and bool(np.all(self.atoms.pbc))
        grade = self.potential.active_set is not None
        out = self.potential(batch, forces=True, stress=want_stress, grade=grade)
        energy = float(out["energy"][0].detach())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["atomic_energies"].detach().cpu().numpy(),
            "forces": out["forces"].detach().cpu().numpy(),
        }
        if grade:
            self.results["extrapolation_grade"] = out["extrapolation_grade"].cpu().numpy()
        if want_stress:
            self.results["stress"] = out["stress"][0].detach().cpu().numpy()
