"""FitSNAP's Ta ACE fit reproduced by mliap_torch's ACE descriptor.

Reference: ``../shared/data/fitsnap/Ta_PACE`` — FitSNAP's ACE descriptors (LAMMPS ``compute pace``)
defined by ``reference/coupling_coefficients.yace``, its fitted ``reference/Ta_pot.acecoeff`` and the
errors of that fit on the training data (``reference/Ta_metrics.md``, ZBL reference 4.0–4.8 Å).
Evaluating the same model with our descriptor must give FitSNAP's per-group energy and force
errors (printed to 6 significant digits), which is only possible if every descriptor agrees.
Tolerance: 2e-5 relative (the printed digits), or 1e-7 absolute for errors that are themselves
round-off (perfect-lattice forces, ~1e-8) or spline-limited (LAMMPS tabulates the radial functions
with deltaSplineBins = 1e-3; the largest deviation seen is 1.5e-6 eV/Å on an RMSE of 0.11).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from mliap_torch.data.batch import make_batch
from mliap_torch.data.readers import read_fitsnap_data
from mliap_torch.descriptors.ace_files import ace_from_yace, read_acecoeff
from mliap_torch.fitting.metrics import read_fitsnap_metrics
from mliap_torch.models.heads import LinearHead
from mliap_torch.models.potential import Potential
from mliap_torch.models.zbl import ZBL

pytestmark = pytest.mark.shared_data


def test_fitsnap_ta_ace_fit_errors_are_reproduced(shared_data) -> None:
    folder = shared_data / "fitsnap" / "Ta_PACE"
    ace = ace_from_yace(folder / "reference" / "coupling_coefficients.yace")
    assert ace.num_descriptors == 68 and ace.cutoff == pytest.approx(4.604694451)
    head = LinearHead(1, ace.num_descriptors)
    head.set_coefficients(read_acecoeff(folder / "reference" / "Ta_pot.acecoeff", ace))
    potential = Potential(ace, head, ZBL(["Ta"], [73.0], 4.0, 4.8))
    configs = read_fitsnap_data(folder / "Ta.in")
    batch = make_batch(configs, ["Ta"], potential.cutoff)
    out = potential(batch, stress=False)
    energy = out["energy"].detach().numpy()
    forces = out["forces"].detach().numpy()

    errors: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    start = 0
    for k, config in enumerate(configs):
        n = config.num_atoms
        e_err = np.array([(energy[k] - config.energy) / n])
        f_err = (forces[start:start + n] - config.forces).ravel()
        start += n
        for group in (config.group, "*ALL"):
            errors[(group, "Energy")].append(e_err)
            errors[(group, "Force")].append(f_err)

    reference = read_fitsnap_metrics(folder / "reference" / "Ta_metrics.md")
    checked = 0
    for (group, weighting, _, quantity), ref in reference.items():
        if weighting != "Unweighted":
            continue
        err = np.concatenate(errors[(group, quantity)])
        assert len(err) == ref["ncount"], (group, quantity)
        assert np.abs(err).mean() == pytest.approx(ref["mae"], rel=2e-5, abs=1e-7), (group, quantity, "mae")
        assert np.sqrt((err ** 2).mean()) == pytest.approx(ref["rmse"], rel=2e-5, abs=1e-7), (group, quantity, "rmse")
        checked += 1
    assert checked == 26  # 12 groups and *ALL, energy and force


def test_yace_descriptor_settings_round_trip(shared_data) -> None:
    import torch

    from mliap_torch.descriptors.ace import ACE

    ace = ace_from_yace(shared_data / "fitsnap" / "Ta_PACE" / "reference" / "coupling_coefficients.yace")
    rebuilt = ACE(**ace.settings())
    rebuilt.load_state_dict(ace.state_dict())
    rij = torch.tensor([[2.1, 1.0, -0.3], [-1.2, 2.0, 1.5], [0.4, -3.3, 1.9]], dtype=torch.float64)
    pair_i, pair_j = torch.zeros(3, dtype=torch.int64), torch.tensor([1, 2, 3])
    species = torch.zeros(4, dtype=torch.int64)
    B = ace(rij, pair_i, pair_j, species, 4)
    assert B[0].abs().max() > 0
    assert torch.equal(rebuilt(rij, pair_i, pair_j, species, 4), B)
