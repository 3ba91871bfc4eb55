"""Total-degree ACE bases and the smoothness prior of exact fits, against independent constructions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fit_helpers import ELEMENTS, label, potential, structures
from mliap_torch.descriptors.ace import ACE
from mliap_torch.descriptors.ace_basis import function_degree, generate_functions
from mliap_torch.fitting.exact_fit import fit_exact
from mliap_torch.fitting.options import FitOptions
from mliap_torch.fitting.solvers import lstsq_r_factor, solve_r_factor
from mliap_torch.models.heads import LinearHead, QuadraticHead
from mliap_torch.models.potential import Potential


@pytest.mark.parametrize("nelements, caps", [(1, [6, 7, 8, 9]), (2, [4, 6, 7, 8])])
def test_total_degree_basis_is_the_box_basis_cut_at_the_degree(nelements, caps):
    box = ([7, 5, 3, 2], [0, 3, 2, 1])
    full = generate_functions(nelements, 0, *box)
    capped = generate_functions(nelements, 0, *box, max_degree_by_orders=caps, l_weight=1.5)
    expected = [f for f in full if function_degree(f, 1.5) <= caps[f.rank - 1]]
    assert capped == expected
    assert 0 < len(capped) < len(full)
    assert max(function_degree(f) for f in capped if f.rank == 4) <= caps[3]


def test_ace_function_degrees_follow_its_functions():
    ace = ACE(["Si"], nradmax_by_orders=[8, 6, 4], lmax_by_orders=[0, 4, 2], max_degree_by_orders=[8, 9, 9],
              l_weight=2.0, rcut=4.0)
    degrees = ace.function_degrees()
    assert degrees.shape == (1, ace.num_descriptors)
    assert degrees[0].tolist() == [float(sum(n + 2.0 * l for n, l in zip(f.ns, f.ls))) for f in ace.functions[0]]
    rebuilt = ACE(**ace.settings())
    assert rebuilt.num_descriptors == ace.num_descriptors and rebuilt.functions == ace.functions


def _random_system(seed=0, m=60, n=7):
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=gen, dtype=torch.float64) * torch.logspace(-2, 2, n, dtype=torch.float64)
    b = torch.randn(m, generator=gen, dtype=torch.float64)
    return A, b


@pytest.mark.parametrize("scale_columns", [False, True])
def test_prior_ridge_equals_the_augmented_least_squares_problem(scale_columns):
    A, b = _random_system()
    prior = torch.tensor([0.0, 0.1, 0.5, 1.0, 2.0, 3.0, 0.7], dtype=torch.float64)
    alpha = 0.3
    r, m = lstsq_r_factor(A, b)
    x = solve_r_factor(r, "ridge", alpha=alpha, prior=prior, num_rows=m, scale_columns=scale_columns).x
    scale = 1 / torch.linalg.vector_norm(A, dim=0) if scale_columns else torch.ones(A.shape[1], dtype=torch.float64)
    augmented = np.vstack([(A * scale).numpy(), np.sqrt(alpha) * np.diag(prior.numpy())])
    target = np.concatenate([b.numpy(), np.zeros(A.shape[1])])
    y = np.linalg.lstsq(augmented, target, rcond=None)[0]
    np.testing.assert_allclose(x.numpy(), y * scale.numpy(), rtol=1e-10, atol=1e-12)
    plain = solve_r_factor(r, "ridge", alpha=alpha, num_rows=m, scale_columns=scale_columns).x
    assert float((plain - x).abs().max()) > 1e-3


def test_prior_needs_the_ridge_solver_and_one_weight_per_column():
    A, b = _random_system()
    r, _ = lstsq_r_factor(A, b)
    with pytest.raises(ValueError, match="ridge solver"):
        solve_r_factor(r, "qr", prior=torch.ones(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="7 weights"):
        solve_r_factor(r, "ridge", alpha=1.0, prior=torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="prior_power"):
        FitOptions(prior_power=2.0)
    with pytest.raises(ValueError, match="prior_power"):
        FitOptions(solver="ridge", alpha=1.0, prior_power=-1.0)


@pytest.mark.parametrize("head_class", [LinearHead, QuadraticHead])
def test_fit_with_smoothness_prior_equals_a_direct_solve_of_its_rows(head_class):
    configs = label(structures(6, seed=3), potential(quadratic=False), noise=0.01)
    ace = ACE(ELEMENTS, nradmax_by_orders=[4, 3, 2], lmax_by_orders=[0, 2, 1], max_degree_by_orders=[4, 6, 6],
              rcut=3.6)
    model = Potential(ace, head_class(len(ELEMENTS), ace.num_descriptors))
    power, alpha = 2.0, 1e-3
    result = fit_exact(model, configs, solver="ridge", alpha=alpha, prior_power=power, scale_columns=True,
                       keep_rows=True)
    rows = result.rows
    A, b = (rows.A * rows.w[:, None]).numpy(), (rows.b * rows.w).numpy()
    degrees = ace.function_degrees().numpy()
    if head_class is QuadraticHead:
        a, c = np.triu_indices(ace.num_descriptors)
        degrees = np.concatenate([degrees, degrees[:, a] + degrees[:, c]], axis=1)
    degrees = np.concatenate([np.zeros((len(ELEMENTS), 1)), degrees], axis=1).reshape(-1)
    prior = (degrees / degrees.max()) ** power
    norms = np.linalg.norm(A, axis=0)
    norms[norms == 0] = 1.0
    augmented = np.vstack([A / norms, np.sqrt(alpha) * np.diag(prior)])
    y = np.linalg.lstsq(augmented, np.concatenate([b, np.zeros(A.shape[1])]), rcond=None)[0]
    np.testing.assert_allclose(result.solution.x.numpy(), y / norms, rtol=1e-7, atol=1e-9)
    uniform = fit_exact(Potential(ace, head_class(len(ELEMENTS), ace.num_descriptors)), configs, solver="ridge",
                        alpha=alpha, scale_columns=True)
    assert float((uniform.solution.x - result.solution.x).abs().max()) > 1e-6


def test_smoothness_prior_on_a_descriptor_without_degrees_is_refused():
    configs = label(structures(2, seed=3), potential(quadratic=False))
    with pytest.raises(ValueError, match="does not define one"):
        fit_exact(potential(quadratic=False), configs, solver="ridge", alpha=1e-3, prior_power=1.0)
