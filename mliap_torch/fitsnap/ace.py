"""FitSNAP ``[ACE]`` input sections as :class:`~mliap_torch.descriptors.ace.ACE` descriptors.

FitSNAP (calculator ``LAMMPSPACE``) describes a linear ACE basis per rank (body order − 1):

| key | meaning | our ``ACE`` |
|---|---|---|
| ``type``, ``numTypes`` | elements | ``elements`` |
| ``ranks`` | the ranks used, e.g. ``1 2 3 4`` | ranks not listed get no functions |
| ``nmax``, ``lmax`` (per rank) | largest radial index n and l | ``nradmax_by_orders``, ``lmax_by_orders`` (rank 1: l = 0) |
| ``lmin`` (one value or per rank) | smallest l of every factor | generated functions with an l < lmin are dropped (ranks ≥ 2) |
| ``nmaxbase`` | size of the radial basis | ``nradbase`` |
| ``rcutfac``, ``lambda`` (one value or one per bond) | ``ChebExpCos`` cutoff (Å) and λ | ``rcut``, ``radial_parameters`` |
| ``rcinner``, ``drcinner`` (idem) | inner cutoff and its width (Å) | ``r_in``, ``delta_in`` |
| ``bzeroflag = 0`` | a constant column per element | ``bias`` of the fit (default) |

FitSNAP's ``.yace`` files fix the rest: radial basis ``ChebExpCos`` with ``dcut = 0.01`` Å, radial
coefficients ``c_nlk = δ_{n-1,k}`` (R_nl = g_{n-1}, our default ``crad``).

The functions themselves come from our generator (:func:`~mliap_torch.descriptors.ace_basis.generate_functions`):
for every multiset of (element, n, l) allowed by nmax/lmax/lmin it keeps a complete, linearly
independent set of couplings. FitSNAP enumerates its own sets (``RPI_heuristic``, ``b_basis``
such as ``minsub``, Wigner-3j or Clebsch–Gordan normalisation ``wigner_flag``), which can be a
subset of ours and are normalised differently; those keys are therefore accepted but do not
change our basis (see docs/ace.md, "Linear ACE fit of Ta against FitSNAP"). For FitSNAP's exact
functions read the ``coupling_coefficients.yace`` file it writes with
:func:`~mliap_torch.descriptors.ace_files.ace_from_yace`, or recover them from a fitted potential
with :func:`fitsnap_basis_from_potential`.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..descriptors.ace import ACE
from ..descriptors.ace_basis import BFunction, generate_functions
from ..descriptors.ace_files import ace_from_yace, read_acecoeff

#: width of the ChebExpCos outer cutoff switch FitSNAP writes into its ``.yace`` files, Å
FITSNAP_ACE_DCUT = 0.01

#: keys that select FitSNAP's own enumeration/normalisation of the functions or only how FitSNAP
#: computes and stores descriptors; accepted, our basis does not depend on them
ENUMERATION_KEYS = ("RPI_heuristic", "b_basis", "wigner_flag", "bikflag", "dgradflag")
MODEL_KEYS = ("numTypes", "type", "ranks", "nmax", "lmax", "lmin", "mumax", "nmaxbase", "rcutfac", "lambda",
              "rcinner", "drcinner", "bzeroflag", "erefs")


def _values(value: Any) -> list[Any]:
    """A typed input value (number, list of numbers or string) as a list of its items."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return value.split()
    return [value]


def _ints(section: dict[str, Any], key: str, source: str) -> list[int]:
    values = _values(section[key])
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{source}: [ACE] {key} = {section[key]!r}: expected integers") from None
    if any(float(v) != o for v, o in zip(values, out)):
        raise ValueError(f"{source}: [ACE] {key} = {section[key]!r}: expected integers")
    return out


def _per_rank(section: dict[str, Any], key: str, ranks: Sequence[int], source: str,
              default: int | None = None) -> dict[int, int]:
    """``{rank: value}`` of a per-rank key (one value is broadcast to all ranks)."""
    if key not in section:
        if default is None:
            raise ValueError(f"{source}: [ACE] has no '{key}' (one value per rank in 'ranks')")
        return {r: default for r in ranks}
    values = _ints(section, key, source)
    if len(values) == 1:
        values = values * len(ranks)
    if len(values) != len(ranks):
        raise ValueError(f"{source}: [ACE] {key} has {len(values)} values for {len(ranks)} ranks {list(ranks)}")
    return dict(zip(ranks, values))


def _per_bond(section: dict[str, Any], key: str, nel: int, default: float | None, source: str) -> list[list[float]]:
    """(nel, nel) table of a per-bond key: one value, or nel² values in FitSNAP's bond order
    ``[0, 0], [0, 1], …`` (row-major over the element pair)."""
    if key not in section:
        if default is None:
            raise ValueError(f"{source}: [ACE] has no '{key}'")
        values = [default]
    else:
        try:
            values = [float(v) for v in _values(section[key])]
        except (TypeError, ValueError):
            raise ValueError(f"{source}: [ACE] {key} = {section[key]!r}: expected numbers") from None
    if len(values) == 1:
        values = values * nel * nel
    if len(values) != nel * nel:
        raise ValueError(f"{source}: [ACE] {key} has {len(values)} values; give one, or one per bond "
                         f"({nel * nel} for {nel} elements, order {[list(b) for b in itertools.product(range(nel), repeat=2)]})")
    return [values[i * nel:(i + 1) * nel] for i in range(nel)]


def _check_keys(section: dict[str, Any], source: str, nel: int) -> None:
    unknown = sorted(set(section) - set(MODEL_KEYS) - set(ENUMERATION_KEYS))
    if unknown:
        raise ValueError(f"{source}: [ACE] key(s) {unknown} are not supported; known keys: "
                         f"{sorted(MODEL_KEYS + ENUMERATION_KEYS)}")
    if int(section.get("bzeroflag", 0)):
        raise ValueError(f"{source}: [ACE] bzeroflag = 1 (reference energies 'erefs' instead of a fitted constant) "
                         "is not supported; use bzeroflag = 0")
    if int(section.get("numTypes", nel)) != nel:
        raise ValueError(f"{source}: [ACE] numTypes = {section['numTypes']} but type lists {nel} element(s)")
    mumax = int(section.get("mumax", 1))
    if mumax != nel:
        raise ValueError(f"{source}: [ACE] mumax = {mumax}: only mumax = numTypes ({nel}, all neighbour "
                         "elements in every function) is supported")


def fitsnap_ace_functions(nelements: int, nmax: dict[int, int], lmax: dict[int, int],
                          lmin: dict[int, int]) -> list[list[BFunction]]:
    """Per central element, our generated functions for FitSNAP's per-rank ``nmax``/``lmax``/``lmin``.

    Ranks missing from the dicts get no functions; rank-1 functions (l = 0) ignore ``lmin``, as FitSNAP.
    """
    top = max(nmax)
    nradmax_by_orders = [nmax.get(r, 0) for r in range(1, top + 1)]
    lmax_by_orders = [0] + [lmax.get(r, 0) for r in range(2, top + 1)]
    out = []
    for e in range(nelements):
        functions = generate_functions(nelements, e, nradmax_by_orders, lmax_by_orders)
        out.append([f for f in functions if f.rank == 1 or min(f.ls) >= lmin.get(f.rank, 0)])
    return out


def ace_from_fitsnap(section: dict[str, Any], source: str = "<input>") -> ACE:
    """The :class:`ACE` descriptor of a parsed FitSNAP ``[ACE]`` section (module docstring).

    Args:
        section: ``read_fitsnap_input(...)["ACE"]``.
        source: name of the input, for error messages.

    Raises:
        ValueError: unknown keys, ``bzeroflag = 1``, ``mumax`` other than the number of elements,
            inconsistent per-rank or per-bond value counts, or ``nmax`` above ``nmaxbase``.
    """
    if "type" not in section:
        raise ValueError(f"{source}: [ACE] has no 'type' (element symbols)")
    elements = [str(e) for e in _values(section["type"])]
    nel = len(elements)
    _check_keys(section, source, nel)
    if "ranks" not in section:
        raise ValueError(f"{source}: [ACE] has no 'ranks'")
    ranks = _ints(section, "ranks", source)
    if len(set(ranks)) != len(ranks) or min(ranks) < 1:
        raise ValueError(f"{source}: [ACE] ranks = {ranks}: expected distinct ranks ≥ 1")
    nmax = _per_rank(section, "nmax", ranks, source)
    lmax = _per_rank(section, "lmax", ranks, source)
    lmin = _per_rank(section, "lmin", ranks, source, default=0)
    if "nmaxbase" not in section:
        raise ValueError(f"{source}: [ACE] has no 'nmaxbase'")
    nradbase = _ints(section, "nmaxbase", source)[0]
    if max(nmax.values()) > nradbase:
        raise ValueError(f"{source}: [ACE] nmax {max(nmax.values())} exceeds nmaxbase = {nradbase} (FitSNAP's "
                         "radial functions are R_nl = g_(n-1), n ≤ nmaxbase)")
    bad = [r for r in ranks if r > 1 and lmin[r] > lmax[r]]
    if bad:
        raise ValueError(f"{source}: [ACE] lmin > lmax for rank(s) {bad}")
    per_element = fitsnap_ace_functions(nel, nmax, lmax, lmin)
    if not any(per_element):
        raise ValueError(f"{source}: [ACE] nmax/lmax/lmin allow no functions")
    functions = [{"elements": [elements[e]] + [elements[m] for m in f.mus], "ns": list(f.ns), "ls": list(f.ls),
                  "LS": list(f.LS)} for e, fs in enumerate(per_element) for f in fs]
    top = max(ranks)
    return ACE(elements, nradmax_by_orders=[nmax.get(r, 0) for r in range(1, top + 1)],
               lmax_by_orders=[0] + [lmax.get(r, 0) for r in range(2, top + 1)], radial_basis="ChebExpCos",
               radial_parameters=_per_bond(section, "lambda", nel, None, source),
               rcut=_per_bond(section, "rcutfac", nel, None, source), dcut=FITSNAP_ACE_DCUT,
               r_in=_per_bond(section, "rcinner", nel, 0.0, source),
               delta_in=_per_bond(section, "drcinner", nel, 0.01, source), nradbase=nradbase, functions=functions)


def fitsnap_basis_from_potential(yace: str | Path, acecoeff: str | Path) -> tuple[ACE, torch.Tensor]:
    """FitSNAP's descriptors of a fitted ACE potential whose ``.yace`` carries the coefficients.

    Some FitSNAP versions write no ``coupling_coefficients.yace`` but a potential ``.yace`` whose
    ``ctildes`` are each function's coupling times its fitted coefficient β_f (``.acecoeff``);
    dividing by β_f recovers the descriptors. Checked on the rank-1 functions, whose coupling is 1:
    their ``ctildes`` must equal their β_f (to 1e-12, the files' printed digits).

    Returns:
        the descriptor (columns in the file's function order) and FitSNAP's (nelements, 1 + K)
        coefficients ``[β0, β_1 … β_K]`` for it.
    """
    folded = ace_from_yace(yace)
    beta = read_acecoeff(acecoeff, folded)
    settings = folded.settings()
    column = 0
    for e, functions in enumerate(folded.functions):
        for k in range(len(functions)):
            spec, b = settings["functions"][column], float(beta[e, 1 + k])
            column += 1
            if len(spec["ns"]) == 1 and not (len(spec["ctildes"]) == 1 and math.isclose(spec["ctildes"][0], b, rel_tol=1e-12)):
                raise ValueError(f"{yace}: rank-1 function {k} of {folded.elements[e]} has ctildes {spec['ctildes']}, "
                                 f"not its coefficient {b} from {acecoeff}: the couplings do not carry the coefficients")
            if b == 0.0:
                raise ValueError(f"{acecoeff}: coefficient {k + 1} of {folded.elements[e]} is 0, its descriptor "
                                 "cannot be recovered")
            spec["ctildes"] = [c / b for c in spec["ctildes"]]
    ace = ACE(**settings)
    ace.set_radial_coefficients(folded.crad)
    return ace, beta
