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

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch

from ..descriptors.ace import ACE, pyace_bbasis
from ..descriptors.ace_files import ace_from_yace, read_yace
from ..descriptors.ace_radial import pace_inner_cutoff
from ..errors import ModelFileError
from ..models.embedding import EMBEDDINGS, EmbeddingHead
from ..models.heads import LinearHead
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


PACE_LINEAR_EMBEDDING = ("FinnisSinclairShiftedScaled", [1.0, 1.0])
"""The embedding a :class:`~mliap_torch.models.heads.LinearHead` is written with: one density, F(ρ) = ρ."""

_NO_CORE = {"core": [0.0, 1.0], "rho_core_cut": 100000.0, "drho_core_cut": 250.0}
"""Pacemaker's defaults for a potential without core repulsion (ρ_core = 0, so f_cut = 1)."""


def _symmetric_table(table: torch.Tensor, what: str, elements: list[str]) -> None:
    """ValueError unless the (nelements, nelements) ``table`` is symmetric (PACE's bonds A-B and B-A are one)."""
    for i, j in zip(*torch.triu_indices(len(elements), len(elements), 1).tolist()):
        if not torch.equal(table[i, j], table[j, i]):
            raise ValueError(f"write_pace: the {what} of {elements[i]}-{elements[j]} and {elements[j]}-{elements[i]} "
                             "differ; PACE has one bond per element pair (pyace refuses inconsistent bond "
                             "specifications), so this potential cannot be written as pacemaker files exactly")


def pace_export_problem(potential: Potential) -> Exception | None:
    """Why ``potential`` cannot be written as pacemaker files (a TypeError or ValueError to raise), or None.

    Expressible: an :class:`ACE` descriptor of PACE B functions (``LS`` couplings, not the explicit ``ctildes`` of
    a C-tilde file) with bonds that are the same for both orders of each element pair, a
    :class:`~mliap_torch.models.heads.LinearHead` (one density, F = ρ) or an :class:`EmbeddingHead`, and
    optionally a :class:`PaceCoreRepulsion` on the descriptor's cutoffs with a zero head bias (PACE adds E0 after
    the core-density cutoff, as the reference's ``energy_shift``; the head's bias is switched off with the rest of the model).
    """
    descriptor, head, reference = potential.descriptor, potential.head, potential.reference
    if not isinstance(descriptor, ACE):
        return TypeError(f"write_pace: pacemaker files hold ACE descriptors, not {type(descriptor).__name__} "
                         f"({descriptor.type_name}); PACE's B functions are the only descriptors its evaluators "
                         "compute, so bispectrum and SO3 models cannot be written as .yaml/.yace (use the snap, mliap "
                         "or plugin LAMMPS routes for them)")
    if type(head) is not LinearHead and not isinstance(head, EmbeddingHead):
        return TypeError(f"write_pace: PACE's energy is an embedding of per-element linear densities "
                         f"(LinearHead: F = ρ, or EmbeddingHead: FinnisSinclair/FinnisSinclairShiftedScaled), not a "
                         f"{type(head).__name__}; quadratic and MLP heads have no PACE form (use the plugin or "
                         "unified LAMMPS route for them)")
    if reference is not None and not isinstance(reference, PaceCoreRepulsion):
        return TypeError(f"write_pace: pacemaker files hold PACE's own core repulsion, not a {reference.type_name!r} "
                         "reference potential; write Potential(descriptor, head) and add the reference as a separate "
                         "LAMMPS pair style (export_lammps' pace route overlays ZBL)")
    explicit = [f for fs in descriptor.functions for f in fs if f.coupling is not None]
    if explicit:
        return TypeError(f"write_pace: {len(explicit)} of the ACE descriptor's functions have an explicit "
                         "complex-harmonic coupling (ms_combs/ctildes, as read from a C-tilde .yace) instead of PACE's "
                         "LS couplings; a B-basis holds only the latter (write the original B-basis instead)")
    elements = descriptor.elements
    radial = descriptor.radial
    tables = {"radial basis": radial.kind_index, "radial parameter": radial.lam,
              "cutoff": descriptor.current_rcut().detach(), "cutoff width dcut": radial.dcut,
              "inner cutoff r_in": radial.r_in, "inner cutoff width delta_in": radial.delta_in,
              "radial coefficients crad": descriptor.crad.detach()}
    if reference is not None:
        tables.update({"core repulsion prefactor": reference.prehc, "core repulsion exponent": reference.lambdahc,
                       "core repulsion inner cutoff r_in": reference.r_in,
                       "core repulsion inner cutoff width delta_in": reference.delta_in})
    try:
        for what, table in tables.items():
            _symmetric_table(table, what, elements)
    except ValueError as exc:
        return exc
    if reference is not None:
        rcut, r_in, delta_in = descriptor.current_rcut().detach(), radial.r_in, radial.delta_in
        same = torch.equal(reference.rcut, rcut)
        if reference.inner_cutoff_type == "distance":
            same = same and torch.equal(reference.r_in, r_in) and torch.equal(reference.delta_in, delta_in)
        elif reference.inner_cutoff_type == "zbl":  # the radial basis' inner cutoff follows from the bond's
            inner = torch.tensor([[pace_inner_cutoff("zbl", float(r), float(d)) for r, d in zip(rows, drows)]
                                  for rows, drows in zip(reference.r_in, reference.delta_in)], dtype=torch.float64)
            same = (same and torch.equal(inner[..., 0], r_in.to(torch.float64))
                    and torch.equal(inner[..., 1], delta_in.to(torch.float64)) and torch.equal(reference.dcut, radial.dcut))
        elif bool((r_in > 0).any()):
            same = False
        if not same:
            return ValueError("write_pace: the core repulsion's cutoffs (rcut; r_in/delta_in with inner_cutoff_type "
                              "distance or zbl, and dcut with zbl) differ from the ACE descriptor's; PACE takes both "
                              "from the same bonds")
        if bool((head.bias.detach() != 0).any()):
            return ValueError("write_pace: a head with per-element energies (bias) and a core repulsion: the bias is "
                              "multiplied by the core-density cutoff f_cut here, while PACE adds E0 after it; "
                              "such a potential has no exact PACE form (the core repulsion's energy_shift is PACE's E0)")
    return None


def pace_configuration(potential: Potential, delta_spline_bins: float = 1e-4) -> Any:
    """The pyace ``BBasisConfiguration`` (pacemaker's B-basis) of ``potential`` (needs ``pyace``).

    Raises what :func:`pace_export_problem` returns for potentials PACE cannot express. Learned cutoffs and
    radial coefficients are taken at their current values. ``delta_spline_bins``: PACE's spline step of the radial
    functions, Å (its tabulation error is PACE's, not part of the potential). The head's bias (E0) is not part of
    a B-basis; :func:`write_pace` puts it into the ``.yace``.
    """
    from pyace import BBasisConfiguration, BBasisFunctionSpecification, BBasisFunctionsSpecificationBlock

    problem = pace_export_problem(potential)
    if problem is not None:
        raise problem
    ace, head, reference = potential.descriptor, potential.head, potential.reference
    assert isinstance(ace, ACE) and (reference is None or isinstance(reference, PaceCoreRepulsion))
    elements = ace.elements
    nel = len(elements)
    radial = ace.radial
    rcut = ace.current_rcut().detach().to(torch.float64)
    crad = ace.crad.detach().to(torch.float64)
    if reference is not None and reference.inner_cutoff_type != "density":
        kind = reference.inner_cutoff_type
    else:
        kind = "distance" if bool((radial.r_in > 0).any()) else "density"
    # the bonds' rcut_in/dcut_in: the reference's (its inner cutoff and, with zbl, ZBL's switch), else the basis'
    inner = (reference.r_in, reference.delta_in) if reference is not None and kind != "density" else (
        radial.r_in, radial.delta_in)
    if isinstance(head, EmbeddingHead):
        embeddings = [(head.embedding[e], head.fs_parameters[e]) for e in range(nel)]
        density = head.coefficients.detach().to(torch.float64)
    else:
        assert isinstance(head, LinearHead)
        embeddings = [(PACE_LINEAR_EMBEDDING[0], list(PACE_LINEAR_EMBEDDING[1]))] * nel
        density = head.weight.detach().to(torch.float64)[:, None, :]

    blocks: dict[tuple[int, ...], list[Any]] = {}
    for e in range(nel):
        blocks[(e,)] = []
        for other in range(nel):
            if other != e:
                blocks[(e, other)] = []
    for e, functions in enumerate(ace.functions):
        ndensity = len(embeddings[e][1]) // 2
        for k, f in enumerate(functions):
            key = (e, *sorted(set(f.mus) - {e}))
            coeffs = [float(v) for v in density[e, :ndensity, k]]
            blocks.setdefault(key, []).append(BBasisFunctionSpecification(
                elements=[elements[e]] + [elements[m] for m in f.mus], ns=list(f.ns), ls=list(f.ls), LS=list(f.LS),
                coeffs=coeffs))

    config = BBasisConfiguration()
    config.deltaSplineBins = float(delta_spline_bins)
    out = []
    for key, specs in sorted(blocks.items(), key=lambda kv: (kv[0][0], len(kv[0]), kv[0])):
        block = BBasisFunctionsSpecificationBlock()
        block.block_name = " ".join(elements[m] for m in key)
        block.nradbaseij, block.nradmaxi, block.lmaxi = ace.nradbase, ace.nradmax, ace.lmax  # checked by funcspecs
        block.funcspecs = specs  # sets elements_vec, mu0, rankmax, number_of_species, ndensityi
        if len(key) <= 2:
            i, j = key[0], key[-1]
            block.radbase = radial.kinds[i][j]
            block.radparameters = [float(radial.lam[i, j])]
            block.rcutij = float(rcut[i, j])
            block.dcutij = float(radial.dcut[i, j])
            block.inner_cutoff_type = kind
            block.r_in = float(inner[0][i, j]) if kind != "density" else 0.0
            block.delta_in = float(inner[1][i, j]) if kind != "density" else 0.0
            block.radcoefficients = crad[i, j].tolist()
            block.core_rep_parameters = (_NO_CORE["core"] if reference is None else
                                         [float(reference.prehc[i, j]), float(reference.lambdahc[i, j])])
            if len(key) == 1:
                npoti, fs = embeddings[i]
                block.npoti, block.fs_parameters, block.ndensityi = npoti, [float(v) for v in fs], len(fs) // 2
                block.rho_cut = _NO_CORE["rho_core_cut"] if reference is None else float(reference.rho_core_cut[i])
                block.drho_cut = _NO_CORE["drho_core_cut"] if reference is None else float(reference.drho_core_cut[i])
            else:
                block.ndensityi = 0
        else:  # blocks of three or more species hold functions only (pacemaker leaves their bond fields empty)
            block.nradbaseij = block.nradmaxi = block.lmaxi = block.ndensityi = 0
        out.append(block)
    config.funcspecs_blocks = out
    config.validate(True)
    return config


def write_pace(potential: Potential, path: str | Path, delta_spline_bins: float = 1e-4) -> Path:
    """Write ``potential`` as a pacemaker B-basis ``.yaml``/``.yml`` or a C-tilde ``.yace`` (LAMMPS ``pair_style
    pace``) and return the path (needs ``pyace``).

    The ``.yace`` is pyace's conversion of the B-basis (as ``pace_yaml2yace`` writes it) with the per-element
    energies as ``E0``, eV: the head's bias, or with a core repulsion its ``energy_shift`` (added after the cutoff, as PACE
    does). A B-basis ``.yaml`` has no per-element energy: nonzero ones are refused there (``ModelFileError``; write
    the ``.yace``). Potentials PACE cannot express raise the TypeError or ValueError of
    :func:`pace_export_problem`. ``delta_spline_bins``: PACE's spline step of the radial functions, Å.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".yace"):
        raise ModelFileError(f"{path}: write_pace writes pacemaker B-basis .yaml and C-tilde .yace files, not "
                             f"{suffix or 'files without a suffix'}")
    config = pace_configuration(potential, delta_spline_bins)
    reference = potential.reference
    energies = potential.head.bias if reference is None else cast(PaceCoreRepulsion, reference).energy_shift
    bias = [float(v) for v in energies.detach()]
    if suffix == ".yace":
        from pyace import ACEBBasisSet

        ACEBBasisSet(config).to_ACECTildeBasisSet().save_yaml(str(path))
        text, count = re.subn(r"^E0: \[.*\]$", f"E0: [{', '.join(repr(v) for v in bias)}]", path.read_text(),
                              count=1, flags=re.MULTILINE)
        if count != 1:
            raise ModelFileError(f"{path}: pyace wrote no 'E0:' line to hold the per-element energies")
        path.write_text(text)
        return path
    if any(bias):
        raise ModelFileError(f"{path}: the per-element energies {bias} (E0) cannot be written to a B-basis "
                             ".yaml, which has no such field (pyace would evaluate the potential without them); "
                             "write the C-tilde .yace, whose E0 holds them")
    config.save(str(path))
    return path
