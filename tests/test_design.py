"""Design-matrix rows against the potential's own autograd energies, forces and stresses."""
from __future__ import annotations

import pytest
import torch

from fit_helpers import label, potential, structures
from mliap_torch.data.batch import make_batch
from mliap_torch.fitting.design import ENERGY, FITSNAP_STRESS_SCALE, FORCE, STRESS, DesignMatrixBuilder, DesignRows
from mliap_torch.models.potential import Potential


def _solution_vector(builder: DesignMatrixBuilder, coefficients: torch.Tensor) -> torch.Tensor:
    blocks = coefficients if builder.bias else coefficients[:, 1:]
    return blocks.reshape(-1)


@pytest.mark.parametrize("quadratic", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_rows_times_coefficients_equal_model_predictions(quadratic, bias):
    model = potential(quadratic=quadratic)
    configs = label(structures(3, seed=4), model)
    builder = DesignMatrixBuilder(model, bias=bias)
    batch = make_batch(configs, model.elements, model.cutoff)
    rows = builder.rows(batch)
    coeffs = model.head.coefficients().detach()
    if not bias:
        coeffs = coeffs.clone()
        coeffs[:, 0] = 0.0
    x = _solution_vector(builder, coeffs)
    head_only = Potential(model.descriptor, model.head, None)
    head_only.head.set_coefficients(coeffs)
    out = head_only(batch)
    natoms = batch.num_atoms.double()
    expected = torch.cat([out["energy"].detach() / natoms, out["forces"].reshape(-1), out["stress"].reshape(-1)])
    pred = rows.A @ x
    torch.testing.assert_close(pred, expected, rtol=1e-10, atol=1e-10)
    # labels come from the full model (head + ZBL): the targets (labels − ZBL) are the head's part
    if bias:
        torch.testing.assert_close(rows.b, pred, rtol=1e-10, atol=1e-10)
    assert rows.A.shape == (len(configs) * 7 + 3 * batch.total_atoms, builder.num_columns)
    assert builder.num_columns == 2 * (model.head.num_features + int(bias))
    assert (rows.kind[: len(configs)] == ENERGY).all() and (rows.kind[-6 * len(configs):] == STRESS).all()
    torch.testing.assert_close(builder.coefficients(x), coeffs)


def test_weights_masks_groups_and_stress_units():
    model = potential()
    configs = label(structures(3, seed=5), model)
    configs[1].stress = None
    configs[2].forces = None
    builder = DesignMatrixBuilder(model, stress_scale=FITSNAP_STRESS_SCALE)
    batch = make_batch(configs, model.elements, model.cutoff)
    batch.group = torch.tensor([2, 0, 1])
    rows = builder.rows(batch, test=torch.tensor([False, True, False]))
    n = [c.num_atoms for c in configs]
    assert int((rows.kind == FORCE).sum()) == 3 * (n[0] + n[1])
    assert int((rows.kind == STRESS).sum()) == 12
    e = rows.kind == ENERGY
    torch.testing.assert_close(rows.w[e], torch.tensor([c.energy_weight for c in configs]))
    assert rows.group[e].tolist() == [2, 0, 1] and rows.test[e].tolist() == [False, True, False]
    s = rows.kind == STRESS
    assert rows.config[s].tolist() == [0] * 6 + [2] * 6
    plain = DesignMatrixBuilder(model).rows(batch)
    torch.testing.assert_close(rows.A[s], FITSNAP_STRESS_SCALE * plain.A[plain.kind == STRESS])


def test_chunks_concatenate_to_the_whole_and_fitsnap_order():
    model = potential(quadratic=True)
    configs = label(structures(5, seed=6), model)
    builder = DesignMatrixBuilder(model)
    whole = builder.rows(make_batch(configs, model.elements, model.cutoff)).fitsnap_order()
    parts = DesignRows.cat([builder.rows(b) for b in builder.batches(configs, chunk_atoms=20)]).fitsnap_order()
    assert len(list(builder.batches(configs, chunk_atoms=20))) == 3
    torch.testing.assert_close(parts.A, whole.A, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(parts.b, whole.b, rtol=1e-12, atol=1e-12)
    assert parts.config.tolist() == whole.config.tolist()
    assert torch.equal(parts.kind, torch.sort(parts.kind).values)


def test_float32_rows_close_to_float64():
    model = potential()
    configs = label(structures(2, seed=7), model)
    builder = DesignMatrixBuilder(model)
    rows64 = builder.rows(make_batch(configs, model.elements, model.cutoff))
    model32 = potential().float()
    rows32 = DesignMatrixBuilder(model32).rows(make_batch(configs, model.elements, model.cutoff, dtype=torch.float32))
    assert rows32.A.dtype == torch.float32
    torch.testing.assert_close(rows32.A.double(), rows64.A, rtol=1e-4, atol=1e-4)


def test_nonlinear_head_is_rejected():
    from mliap_torch.models.heads import MLPHead

    model = potential()
    with pytest.raises(TypeError, match="not linear"):
        DesignMatrixBuilder(Potential(model.descriptor, MLPHead(2, 4)))


def test_descriptor_pair_jacobian_hook_gives_the_autograd_rows():
    from fit_helpers import RadialBasisWithJacobian

    model = potential(quadratic=True)
    configs = label(structures(2, seed=8), model)
    batch = make_batch(configs, model.elements, model.cutoff)
    autograd_rows = DesignMatrixBuilder(model).rows(batch)
    hooked = Potential(RadialBasisWithJacobian(model.elements), model.head, model.reference)
    hook_rows = DesignMatrixBuilder(hooked).rows(batch)
    torch.testing.assert_close(hook_rows.A, autograd_rows.A, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hook_rows.b, autograd_rows.b, rtol=1e-12, atol=1e-12)
