"""Pacemaker / PACE potential files as :class:`~mliap_torch.models.potential.Potential` s.

- B-basis ``.yaml`` (pacemaker's ``output_potential.yaml``, read with ``pyace``): :class:`~mliap_torch.descriptors.ace.ACE`
  descriptors (the B functions, :meth:`ACE.from_pyace`), the nonlinear embedding as an
  :class:`~mliap_torch.models.embedding.EmbeddingHead` (density coefficients c_pk per function, ``npoti``,
  ``fs_parameters``) and, where the file has one, the core repulsion with its energy cutoff as a
  :class:`~mliap_torch.models.pace_core.PaceCoreRepulsion` reference.
- C-tilde ``.yace`` (``pace_yaml2yace``, LAMMPS ``pair_style pace``): one ACE column per function and density
  (the ``ctildes`` of density p as an explicit coupling), the head summing each density's columns, ``E0`` as the
  head's per-element bias, and the same core repulsion.

What PACE evaluates and these modules cannot (unknown embeddings, radial bases or inner cutoff types) is refused with a :class:`~mliap_torch.errors.ModelFileError` naming the file and the field, never read as a
different potential.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..descriptors.ace import ACE, pyace_bbasis
from ..descriptors.ace_files import ace_from_yace, read_yace
from ..errors import ModelFileError
from ..models.embedding import EMBEDDINGS, EmbeddingHead
from ..models.pace_core import INNER_CUTOFF_TYPES, PaceCoreRepulsion
from ..models.potential import Potential


def read_pace(path: str | Path) -> Potential:
    """The :class:`Potential` of a pacemaker B-basis ``.yaml`` (needs ``pyace``) or a C-tilde ``.yace`` file.

    Energies, forces and stresses equal PACE's (pyace's calculator) up to PACE's spline tabulation of the
    radial functions (``deltaSplineBins``). Raises :class:`~mliap_torch.errors.ModelFileError` naming the file
    and field for what cannot be represented exactly, ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no PACE potential file at {path}")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _read_bbasis(path)
    if suffix == ".yace":
        return _read_yace(path)
    raise ModelFileError(f"{path}: read_pace reads pacemaker B-basis .yaml and C-tilde .yace files, not "
                         f"{suffix or 'files without a suffix'}")


def _check_embedding(path: Path, where: str, npoti: str) -> None:
    if npoti not in EMBEDDINGS:
        raise ModelFileError(f"{path}: {where}: embedding (npoti) {npoti!r} is not one of {list(EMBEDDINGS)}; "
                             "it cannot be read exactly")


def _check_inner_cutoff(path: Path, where: str, kind: str) -> None:
    if kind not in INNER_CUTOFF_TYPES:
        raise ModelFileError(f"{path}: {where}: inner_cutoff_type {kind!r} is not one of PACE's "
                             f"{list(INNER_CUTOFF_TYPES)}; it cannot be read exactly")


def _core_reference(elements: list[str], bonds: dict[tuple[int, int], dict[str, float]], inner_cutoff_type: str,
                    rho_core_cut: Sequence[float], drho_core_cut: Sequence[float],
                    energy_shift: Sequence[float] | None = None) -> PaceCoreRepulsion | None:
    """The core repulsion, or None when it is zero everywhere and switches nothing (not ``zbl``, no ``prehc``, an
    energy cutoff that keeps f_cut(0) = 1); ``energy_shift``: E0 per element, then part of the reference (PACE
    adds it after the cutoff)."""
    n = len(elements)

    def table(key: str) -> list[list[float]]:
        return [[float(bonds[(i, j)][key]) for j in range(n)] for i in range(n)]

    prehc = table("prehc")
    if (inner_cutoff_type != "zbl" and all(v == 0.0 for row in prehc for v in row)
            and all(c - d >= 0 for c, d in zip(rho_core_cut, drho_core_cut))):
        return None
    return PaceCoreRepulsion(elements, prehc, table("lambdahc"), table("rcut"), table("r_in"), table("delta_in"),
                             inner_cutoff_type, rho_core_cut, drho_core_cut, dcut=table("dcut"),
                             energy_shift=energy_shift)


def _read_bbasis(path: Path) -> Potential:
    bbasis = pyace_bbasis(path)
    elements = list(bbasis.elements_name)
    kind = str(bbasis.radial_functions.inner_cutoff_type)
    _check_inner_cutoff(path, "the bonds' species blocks", kind)
    specs = [bbasis.map_embedding_specifications[e] for e in range(len(elements))]
    for element, spec in zip(elements, specs):
        _check_embedding(path, f"species block {element}", str(spec.npoti))
    try:
        ace = ACE.from_pyace(bbasis)
    except ValueError as exc:
        raise ModelFileError(f"{path}: the ACE basis cannot be read: {exc}") from None
    head = EmbeddingHead(len(elements), ace.num_descriptors, [str(s.npoti) for s in specs],
                         [[float(v) for v in s.FS_parameters] for s in specs])
    c = torch.zeros_like(head.coefficients)
    for e, spec in enumerate(specs):
        fs = list(bbasis.basis_rank1[e]) + list(bbasis.basis[e])
        if fs:
            c[e, :int(spec.ndensity), :len(fs)] = torch.tensor([list(f.coeffs) for f in fs], dtype=torch.float64).T
    head.set_density_coefficients(c)
    bonds = {key: {"prehc": b.prehc, "lambdahc": b.lambdahc, "rcut": b.rcut, "r_in": b.rcut_in, "delta_in": b.dcut_in,
                   "dcut": b.dcut} for key, b in bbasis.map_bond_specifications.items()}
    reference = _core_reference(elements, bonds, kind, [float(s.rho_core_cutoff) for s in specs],
                                [float(s.drho_core_cutoff) for s in specs])
    return Potential(ace, head, reference)


def _field(mapping: dict[Any, Any], key: Any, path: Path, where: str) -> Any:
    if key not in mapping:
        raise ModelFileError(f"{path}: {where} has no field '{key}'")
    return mapping[key]


def _read_yace(path: Path) -> Potential:
    data = read_yace(path)
    elements = [str(e) for e in _field(data, "elements", path, "the file")]
    n = len(elements)
    embeddings = [_field(_field(data, "embeddings", path, "the file"), e, path, "embeddings") for e in range(n)]
    for element, emb in zip(elements, embeddings):
        _check_embedding(path, f"embeddings of {element}", str(_field(emb, "npoti", path, f"embedding of {element}")))
    bonds_in = _field(data, "bonds", path, "the file")
    kinds = {str(b.get("inner_cutoff_type", "density")) for b in bonds_in.values()}  # PACE's default when absent
    for kind in sorted(kinds):
        _check_inner_cutoff(path, "bonds", kind)
    if len(kinds) > 1:
        raise ModelFileError(f"{path}: bonds: mixed inner_cutoff_type {sorted(kinds)}; PACE uses one for all bonds")
    try:
        ace = ace_from_yace(path, densities=True)
    except ValueError as exc:
        raise ModelFileError(f"{path}: the ACE basis cannot be read: {exc}") from None
    fs_parameters = [[float(v) for v in _field(emb, "FS_parameters", path, f"embedding of {el}")]
                     for el, emb in zip(elements, embeddings)]
    head = EmbeddingHead(n, ace.num_descriptors, [str(emb["npoti"]) for emb in embeddings], fs_parameters)
    c = torch.zeros_like(head.coefficients)
    functions = _field(data, "functions", path, "the file")
    for e, emb in enumerate(embeddings):
        ndensity = int(_field(emb, "ndensity", path, f"embedding of {elements[e]}"))
        if 2 * ndensity != len(fs_parameters[e]):
            raise ModelFileError(f"{path}: embedding of {elements[e]}: ndensity {ndensity} with "
                                 f"{len(fs_parameters[e])} FS_parameters (two per density)")
        for k, f in enumerate(functions.get(e, ())):
            if int(f.get("ndensity", 1)) != ndensity:
                raise ModelFileError(f"{path}: function {k} of element {elements[e]} has ndensity "
                                     f"{f.get('ndensity', 1)}, its embedding {ndensity}")
        columns = torch.arange(len(ace.functions[e]))
        c[e, columns % ndensity, columns] = 1.0  # column k is density k mod ndensity of function k // ndensity
    head.set_density_coefficients(c)
    E0 = [float(v) for v in data.get("E0", [0.0] * n)]
    bonds = {}
    for key, b in bonds_in.items():
        where = f"bond {list(key)}"
        bonds[key] = {**{k: float(_field(b, k, path, where)) for k in ("prehc", "lambdahc", "rcut")},
                      "r_in": float(b.get("rcut_in", 0.0)), "delta_in": float(b.get("dcut_in", 0.0)),
                      "dcut": float(b.get("dcut", 0.0))}
    cuts = [[float(_field(emb, k, path, f"embedding of {el}")) for el, emb in zip(elements, embeddings)]
            for k in ("rho_core_cutoff", "drho_core_cutoff")]
    reference = _core_reference(elements, bonds, kinds.pop(), cuts[0], cuts[1], energy_shift=E0)
    if reference is None:  # no cutoff acts on the energy: E0 is the head's per-element bias
        with torch.no_grad():
            head.bias.copy_(torch.tensor(E0, dtype=torch.float64))
    return Potential(ace, head, reference)
