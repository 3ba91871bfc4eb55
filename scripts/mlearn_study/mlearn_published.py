"""Published test errors and SNAP settings of the mlearn benchmark.

Source: Y. Zuo, C. Chen, X. Li, Z. Deng, Y. Chen, J. Behler, G. Csányi, A. V. Shapeev, A. P. Thompson,
M. A. Wood, S. P. Ong, "Performance and Cost Assessment of Machine Learning Interatomic Potentials",
J. Phys. Chem. A 124, 731 (2020), as summarised in ``../shared/data/README.md`` (section "mlearn/"):
GAP and MTP test MAEs of the paper (energies per element; forces given there as a range for Ni, Cu,
Li and Si, stored here as the range's ends), and the study's SNAP/qSNAP potentials evaluated on the
same test sets, with their cutoff and 2Jmax (rfac0 0.99363, rmin0 0, bzeroflag 0, radelem 0.5).

Units: energy MAE meV/atom, force MAE eV/Å (per Cartesian component), rcut Å.
"""
from __future__ import annotations

ELEMENTS: tuple[str, ...] = ("Ni", "Cu", "Li", "Mo", "Si", "Ge")

SOURCE = "Zuo et al., J. Phys. Chem. A 124, 731 (2020); values as listed in shared/data/README.md"

#: Test energy MAE (meV/atom) per published model and element.
ENERGY_MAE: dict[str, dict[str, float]] = {
    "GAP": {"Ni": 0.42, "Cu": 0.46, "Li": 0.49, "Mo": 2.24, "Si": 2.91, "Ge": 2.06},
    "MTP": {"Ni": 0.48, "Cu": 0.41, "Li": 0.49, "Mo": 2.83, "Si": 2.21, "Ge": 1.79},
    "SNAP": {"Ni": 0.78, "Cu": 0.53, "Li": 1.03, "Mo": 5.48, "Si": 6.44, "Ge": 6.59},
    "qSNAP": {"Ni": 0.78, "Cu": 0.56, "Li": 0.73, "Mo": 2.77, "Si": 3.81, "Ge": 6.45},
}

#: Test force MAE (eV/Å). GAP/MTP: the README gives one range for both models per element
#: ("0.01–0.02 (Ni, Cu, Li), 0.09 (Mo), 0.06–0.07 (Si), 0.05 (Ge)"); stored as (low, high).
FORCE_MAE_RANGE: dict[str, tuple[float, float]] = {
    "Ni": (0.01, 0.02), "Cu": (0.01, 0.02), "Li": (0.01, 0.02), "Mo": (0.09, 0.09), "Si": (0.06, 0.07),
    "Ge": (0.05, 0.05),
}
FORCE_MAE: dict[str, dict[str, float]] = {
    "SNAP": {"Ni": 0.038, "Cu": 0.037, "Li": 0.028, "Mo": 0.207, "Si": 0.133, "Ge": 0.188},
    "qSNAP": {"Ni": 0.031, "Cu": 0.024, "Li": 0.033, "Mo": 0.184, "Si": 0.116, "Ge": 0.133},
}

#: The study's descriptor settings: (rcut Å, 2Jmax) per model and element.
SNAP_SETTINGS: dict[str, dict[str, tuple[float, int]]] = {
    "snap": {"Ni": (4.1, 8), "Cu": (4.1, 8), "Li": (5.1, 8), "Mo": (4.6, 6), "Si": (4.9, 8), "Ge": (5.5, 8)},
    "qsnap": {"Ni": (3.8, 6), "Cu": (3.9, 6), "Li": (5.1, 6), "Mo": (5.2, 6), "Si": (4.8, 8), "Ge": (4.9, 6)},
}
RFAC0 = 0.99363
RMIN0 = 0.0
RADELEM = 0.5


def bar(element: str) -> tuple[float, float]:
    """The accuracy bar of ``element``: the better of GAP's and MTP's test energy MAE (meV/atom) and the low
    end of the paper's GAP/MTP force MAE (eV/Å), which it publishes to two decimals."""
    return min(ENERGY_MAE[m][element] for m in ("GAP", "MTP")), FORCE_MAE_RANGE[element][0]
