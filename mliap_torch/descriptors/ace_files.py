"""ACE descriptors from PACE C-tilde files (``.yace``, as FitSNAP writes ``coupling_coefficients.yace``)
and FitSNAP's ``.acecoeff`` linear coefficients.

A ``.yace`` file lists, per central element, functions with ``mus``, ``ns``, ``ls`` and the
complex-harmonic coupling ``ms_combs``/``ctildes``; a descriptor is ``B = Re Σ c Π_t A_{μ_t n_t l_t m_t}``
(rank 1: ``A1``). FitSNAP's ACE descriptors are those of its ``coupling_coefficients.yace``; its fitted
``.acecoeff`` gives ``E_i = β0 + Σ_f β_f B_f`` (plus the reference potential of the fit).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from .ace import ACE
from .ace_radial import pace_inner_cutoff


class _TupleLoader(yaml.SafeLoader):
    """Safe YAML loader whose sequences are tuples, so ``[0, 0]:`` bond keys are hashable."""


_TupleLoader.add_constructor("tag:yaml.org,2002:seq",
                             lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))


def _field(mapping: dict, key: str, path: Path, where: str) -> Any:
    if key not in mapping:
        raise ValueError(f"{path}: {where} has no field '{key}'")
    return mapping[key]


def read_yace(path: str | Path) -> dict[str, Any]:
    """The contents of a C-tilde ``.yace`` file (YAML; ``[i, j]`` bond keys as tuples)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no .yace file at {path}")
    return yaml.load(path.read_text(), Loader=_TupleLoader)


def ace_from_yace(path: str | Path, densities: bool = False) -> ACE:
    """The :class:`ACE` descriptor whose columns are the functions of a C-tilde ``.yace`` file.

    Columns follow the file's function order per central element. Radial bases, cutoffs, inner
    cutoffs and radial coefficients come from its ``bonds``; embeddings, core repulsion and
    ``E0`` (energy-model parts) are ignored. A function of a file with several densities
    (``ndensity`` p > 1, ``ctildes`` m-combination-major) is p columns, one per density, with
    ``densities=True`` (:func:`mliap_torch.read_pace` sums them into the densities ρ_p); without it
    such a file is refused.
    """
    path = Path(path)
    data = read_yace(path)
    elements = [str(e) for e in _field(data, "elements", path, "the file")]
    nel = len(elements)
    bonds = _field(data, "bonds", path, "the file")
    tables: dict[str, Any] = {k: [[None] * nel for _ in range(nel)] for k in
                                          ("radial_basis", "radial_parameters", "rcut", "dcut", "r_in", "delta_in")}
    crads: dict[tuple[int, int], Any] = {}
    nradbase = nradmax = lmax = 0
    for i in range(nel):
        for j in range(nel):
            where = f"bond [{i}, {j}]"
            bond = bonds.get((i, j))
            if bond is None:
                raise ValueError(f"{path}: bonds has no entry [{i}, {j}] ({elements[i]}-{elements[j]})")
            tables["radial_basis"][i][j] = str(_field(bond, "radbasename", path, where))
            params = tuple(bond.get("radparameters", (1.0,))) or (1.0,)
            tables["radial_parameters"][i][j] = float(params[0])
            tables["rcut"][i][j] = float(_field(bond, "rcut", path, where))
            tables["dcut"][i][j] = float(bond.get("dcut", 0.0))
            # PACE reads a bond without inner_cutoff_type as "density" (ACEBondSpecification::from_YAML)
            try:
                tables["r_in"][i][j], tables["delta_in"][i][j] = pace_inner_cutoff(
                    str(bond.get("inner_cutoff_type", "density")), float(bond.get("rcut_in", 0.0)),
                    float(bond.get("dcut_in", 0.0)))
            except ValueError as exc:
                raise ValueError(f"{path}: {where}: {exc}") from None
            crads[(i, j)] = _field(bond, "radcoefficients", path, where)
            nradbase = max(nradbase, int(_field(bond, "nradbasemax", path, where)))
            nradmax = max(nradmax, int(_field(bond, "nradmax", path, where)))
            lmax = max(lmax, int(_field(bond, "lmax", path, where)))

    functions = []
    for e in range(nel):
        for k, f in enumerate(_field(data, "functions", path, "the file").get(e, ())):
            where = f"function {k} of element {elements[e]}"
            rank = int(_field(f, "rank", path, where))
            ndensity = int(f.get("ndensity", 1))
            if ndensity > 1 and not densities:
                raise ValueError(f"{path}: {where} has ndensity {ndensity}: its functions' coefficients are per "
                                 "density of a nonlinear embedding, not one descriptor; read the potential with "
                                 "mliap_torch.read_pace")
            ms = [int(m) for m in _field(f, "ms_combs", path, where)]
            ctildes = [float(c) for c in _field(f, "ctildes", path, where)]
            ncombs = len(ctildes) // ndensity
            if len(ctildes) != ncombs * ndensity or len(ms) != rank * ncombs:
                raise ValueError(f"{path}: {where}: {len(ms)} ms_combs entries and {len(ctildes)} ctildes do not "
                                 f"fit rank {rank} with ndensity {ndensity}")
            for p in range(ndensity):
                functions.append({"elements": [elements[e]] + [elements[int(m)] for m in _field(f, "mus", path, where)],
                                  "ns": list(_field(f, "ns", path, where)), "ls": list(_field(f, "ls", path, where)),
                                  "ms_combs": [ms[r * rank:(r + 1) * rank] for r in range(ncombs)],
                                  "ctildes": ctildes[p::ndensity]})
    ace = ACE(elements, functions=functions, nradbase=nradbase, nradmax=nradmax, lmax=lmax, **tables)
    crad = torch.zeros_like(ace.crad)
    for (i, j), c in crads.items():
        c = torch.tensor(c, dtype=torch.float64)
        crad[i, j, :c.shape[0], :c.shape[1], :c.shape[2]] = c
    ace.set_radial_coefficients(crad)
    return ace


def read_acecoeff(path: str | Path, descriptor: ACE) -> torch.Tensor:
    """FitSNAP ``.acecoeff`` coefficients as (nelements, 1 + K) ``[β0, β_1 … β_K]`` for ``LinearHead``.

    The file has a comment line, ``nelements ncoeff``, then per element its symbol and ``ncoeff``
    values (constant first). ``descriptor`` (from the matching ``.yace``) fixes K and the columns.
    """
    path = Path(path)
    lines = [ln.split("#")[0].split() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    try:
        nel, ncoeff = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: first line must be 'nelements ncoeff', got {lines[0] if lines else 'nothing'}") from None
    out = torch.zeros(len(descriptor.elements), 1 + descriptor.num_descriptors, dtype=torch.float64)
    row = 1
    for _ in range(nel):
        symbol = lines[row][0]
        if symbol not in descriptor.elements:
            raise ValueError(f"{path}: element {symbol!r} is not among the descriptor's {descriptor.elements}")
        e = descriptor.elements.index(symbol)
        nfunc = len(descriptor.functions[e])
        if ncoeff != 1 + nfunc:
            raise ValueError(f"{path}: {ncoeff} coefficients for {symbol}, the descriptor has {nfunc} functions + 1")
        values = [float(ln[0]) for ln in lines[row + 1:row + 1 + ncoeff]]
        out[e, :ncoeff] = torch.tensor(values, dtype=torch.float64)
        row += 1 + ncoeff
    return out
