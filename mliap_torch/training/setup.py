"""Building a potential from configuration settings and initialising its head from training data."""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.configuration import Configuration
from ..data.dataset import ConfigurationDataset, collate_processed
from ..descriptors.base import Descriptor
from ..descriptors.concatenated import ConcatenatedDescriptor
from ..fitting.options import FitOptions
from ..models.embedding import EmbeddingHead
from ..models.heads import LinearHead, MLPHead
from ..models.potential import Potential
from ..models.reference import ReferencePotential, require_additive
from ..registry import descriptor_class, head_class, reference_class


def data_elements(configs: Sequence[Configuration]) -> list[str]:
    """Sorted element symbols present in ``configs``."""
    return sorted({str(s) for c in configs for s in c.symbols})


def build_descriptor(settings: dict[str, Any], elements: Sequence[str]) -> Descriptor:
    """A descriptor from the ``descriptor`` config section (the registered ``type`` plus keyword arguments,
    :meth:`~mliap_torch.descriptors.base.Descriptor.from_config`); ``options`` holds extra keyword arguments
    passed through unchanged, null values are left out."""
    s = {k: v for k, v in settings.items() if k not in ("type", "elements", "options") and v is not None}
    s.update(settings.get("options") or {})
    return descriptor_class(settings["type"]).from_config(elements, s)


def build_reference(settings: dict[str, Any] | None, elements: Sequence[str]) -> ReferencePotential | None:
    """The reference pair potential (e.g. ZBL) from ``model.reference`` or None."""
    if not settings:
        return None
    s = dict(settings)
    cls = reference_class(s.pop("type"))
    params = inspect.signature(cls.__init__).parameters
    if "elements" in params and "elements" not in s:
        s["elements"] = list(elements)
    if "z" in params and "z" not in s:
        from ase.data import atomic_numbers
        s["z"] = [float(atomic_numbers[e]) for e in elements]
    return cast(ReferencePotential, cls(**s))


def build_potential(descriptor: dict[str, Any], head: str, elements: Sequence[str], hidden: Sequence[int] = (),
                    activation: str = "silu", reference: dict[str, Any] | None = None,
                    linear_term: bool = False, blocks: Sequence[str] = ()) -> Potential:
    """Descriptor + ``head`` (a registered head type: linear, quadratic, mlp, blocks, ...; ``hidden``,
    ``activation``, ``linear_term``, ``blocks`` and a concatenated descriptor's ``part_sizes`` go to
    :meth:`~mliap_torch.models.heads.Head.for_training`) + optional reference, in float64."""
    desc = build_descriptor(descriptor, elements)
    options = {"hidden": list(hidden), "activation": activation, "linear_term": linear_term, "blocks": list(blocks),
               "part_sizes": desc.part_sizes() if isinstance(desc, ConcatenatedDescriptor) else [desc.num_descriptors]}
    h = head_class(head).for_training(len(elements), desc.num_descriptors, options)
    return Potential(desc, h, build_reference(reference, elements)).to(torch.float64)


def build_model_potential(descriptor: dict[str, Any], model: Any, elements: Sequence[str]) -> Potential:
    """:func:`build_potential` from the ``descriptor`` section and the ``model`` section (its ``head``, ``hidden``,
    ``activation``, ``reference``, ``linear_term`` and ``blocks``)."""
    return build_potential(descriptor, model.head, elements, model.hidden, model.activation, model.reference,
                           model.linear_term, model.blocks)


def _loader(potential: Potential, configs: Sequence[Configuration], batch_size: int) -> DataLoader:
    dataset = ConfigurationDataset(configs, potential.elements, potential.cutoff)
    dtype = next(potential.parameters()).dtype
    return DataLoader(dataset, batch_size=batch_size, shuffle=False,
                      collate_fn=lambda items: collate_processed(items, dtype=dtype))


@torch.no_grad()
def descriptor_statistics(potential: Potential, configs: Sequence[Configuration], batch_size: int = 16
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(K,) mean and (K,) standard deviation of the descriptors of all atoms in ``configs``."""
    total: torch.Tensor | None = None
    sq: torch.Tensor | None = None
    count = 0
    for batch in _loader(potential, configs, batch_size):
        B = potential.descriptor(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        total = B.sum(0) if total is None else total + B.sum(0)
        sq = (B ** 2).sum(0) if sq is None else sq + (B ** 2).sum(0)
        count += B.shape[0]
    assert total is not None and sq is not None, "no configurations"
    mean = total / count
    return mean, (sq / count - mean ** 2).clamp_min(0).sqrt()


@torch.no_grad()
def reference_energies(potential: Potential, configs: Sequence[Configuration], batch_size: int = 16) -> np.ndarray:
    """(nconfigs,) energies of the reference potential alone (zeros without one), eV."""
    if potential.reference is None:
        return np.zeros(len(configs))
    require_additive(potential.reference)
    out = []
    for batch in _loader(potential, configs, batch_size):
        atomic = potential.reference(batch.rij(), batch.pair_i, batch.pair_j, batch.species, batch.total_atoms)
        energy = atomic.new_zeros(batch.num_configs).index_add(0, batch.atom_config, atomic)
        out.append(energy.cpu().numpy())
    return np.concatenate(out)


def element_energy_offsets(configs: Sequence[Configuration], elements: Sequence[str],
                           reference: np.ndarray | None = None) -> np.ndarray:
    """(nelements,) per-element energies e minimising Σ_c (E_c - E_ref,c - Σ_e n_ce e_e)², eV.

    Solved with ``numpy.linalg.lstsq`` (minimum-norm when element counts are collinear, e.g. a
    single element gives the mean energy per atom).
    """
    labelled = [k for k, c in enumerate(configs) if c.energy is not None]
    if not labelled:
        return np.zeros(len(elements))
    index = {e: i for i, e in enumerate(elements)}
    counts = np.zeros((len(labelled), len(elements)))
    for row, k in enumerate(labelled):
        symbols, n = np.unique(configs[k].symbols, return_counts=True)
        counts[row, [index[str(s)] for s in symbols]] = n
    target = np.array([configs[k].energy for k in labelled])
    if reference is not None:
        target = target - reference[labelled]
    return np.linalg.lstsq(counts, target, rcond=None)[0]


def initialize_embedding(potential: Potential, configs: Sequence[Configuration], batch_size: int = 16) -> None:
    """PACE embedding head. When every element has a density whose embedding is the identity (exponent m = 1,
    F(ρ) = ρ in both of PACE's families; pacemaker's default ``[1, 1, 1, 0.5]`` has it first), that density
    starts from the exact weighted least-squares linear fit to ``configs``
    (:func:`~mliap_torch.fitting.exact_fit.fit_exact`) and the others from zero, so training starts at linear
    ACE and learns what the other densities add. Otherwise all coefficients start at zero (where PACE's
    embeddings have a nonzero slope, so every coefficient has a gradient) with per-element energies E0 by
    least squares (after the reference)."""
    head = potential.head
    assert isinstance(head, EmbeddingHead)
    identity = [[p for p in range(head.ndensity) if head.exponent[e, p] == 1.0 and head.weight[e, p] != 0.0]
                for e in range(head.num_elements)]
    with torch.no_grad():
        head.coefficients.zero_()
    if all(identity):
        from ..fitting.exact_fit import fit_exact

        linear = Potential(potential.descriptor, LinearHead(len(potential.elements), head.num_descriptors),
                           potential.reference).to(torch.float64)
        fit_exact(linear, configs, bias=True, keep_rows="disk")
        coefficients = linear.head.coefficients().detach()
        species = torch.arange(head.num_elements)
        with torch.no_grad():
            at_zero = head.embed(torch.zeros(head.num_elements, head.ndensity, dtype=torch.float64), species)
            for e, densities in enumerate(identity):
                head.coefficients[e, densities[0]] = coefficients[e, 1:] / head.weight[e, densities[0]]
            head.bias.copy_((coefficients[:, 0] - at_zero).to(head.bias.dtype))
        return
    offsets = element_energy_offsets(configs, potential.elements, reference_energies(potential, configs, batch_size))
    with torch.no_grad():
        head.bias.copy_(torch.as_tensor(offsets, dtype=head.bias.dtype))


def initialize_mlp(potential: Potential, configs: Sequence[Configuration], batch_size: int = 16,
                   options: FitOptions | None = None) -> None:
    """Descriptor scaling from ``configs``; then, for a head with a linear term, the exact weighted
    least-squares linear fit to ``configs`` (:func:`~mliap_torch.fitting.exact_fit.fit_exact` with the
    solver ``options``, e.g. a ridge, and the configurations' own weights) as the starting point, else
    per-element energy offsets by least squares."""
    head = potential.head
    assert isinstance(head, MLPHead)
    mean, std = descriptor_statistics(potential, configs, batch_size)
    head.set_scaling(mean, std)
    if head.linear_term:
        from ..fitting.exact_fit import fit_exact

        linear = Potential(potential.descriptor, LinearHead(len(potential.elements), head.num_descriptors),
                           potential.reference).to(torch.float64)
        fit_exact(linear, configs, options=options, bias=True, keep_rows="disk")
        head.start_from_linear(linear.head.coefficients().detach())
        return
    ref = reference_energies(potential, configs, batch_size)
    offsets = element_energy_offsets(configs, potential.elements, ref)
    with torch.no_grad():
        head.offset.copy_(torch.as_tensor(offsets, dtype=head.offset.dtype))
        for net in head.networks:
            last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.bias.zero_()
