"""The extrapolation grade γ in stock LAMMPS for any route: ``compute sna/atom`` and atom-style variables.

For a bispectrum model with a linear or quadratic head, the features of γ are ``x = [1, B]`` or
``[1, B, quadratic_features(B)]`` (:meth:`~mliap_torch.models.heads.Head.grade_features`), which is exactly
what LAMMPS' ``compute sna/atom`` gives (with ``quadraticflag 1``: the products in ``.snapcoeff`` order,
halved on the diagonal). γ is then a per-atom formula of that compute's columns,

    c_k = Σ_e (type == e) · (M_e[0, k] + Σ_a M_e[a, k] · x_a)        γ = max_k |c_k|

with M_e the (F, r_e) active-set matrices (:class:`~mliap_torch.uncertainty.active_set.ActiveSet`), so any pair
style (``pair_style snap``, ``mliap``, ``mliap unified``, the plugin) can be monitored without the plugin's
``fix pair`` route. LAMMPS evaluates the compute and the variables only when something asks for ``v_<name>``
(``fix halt``, ``dump``, ``thermo``), so MD steps without that pay nothing.

``write_gamma_variables`` writes the commands as ``<name>.gamma.lammps`` next to the routes
(:func:`~mliap_torch.export.lammps_export.export_lammps`). Atom type k must hold the model's element k (as the
routes' ``pair_coeff * * <elements>`` lines); the pair style's cutoff must cover the descriptor's (true for the
model's own pair style). An element without training atoms grades its atoms 1e300 (torch: inf).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..descriptors.bispectrum import Bispectrum
from ..models.heads import LinearHead, QuadraticHead
from ..models.potential import Potential

UNTRAINED = 1e300
"""γ of atoms of an element without training atoms (torch gives inf, which LAMMPS variables cannot hold)."""


def gamma_variables_supported(potential: Potential) -> bool:
    """True when γ of ``potential`` can be written as LAMMPS variables: an active set, a bispectrum descriptor
    without ``chemflag`` (``compute sna/atom`` then has torch's B) and a linear or quadratic head."""
    descriptor = potential.descriptor
    return (potential.active_set is not None and isinstance(descriptor, Bispectrum) and not descriptor.chemflag
            and type(potential.head) in (LinearHead, QuadraticHead))


def _sna_atom_args(descriptor: Bispectrum, quadratic: bool) -> str:
    """``compute sna/atom`` arguments equal to ``descriptor`` (current values of learned hyperparameters),
    one LAMMPS type per element in the model's order."""
    s = descriptor.settings()
    args = [repr(float(s["rcutfac"])), repr(float(s["rfac0"])), str(int(s["twojmax"]))]
    args += [repr(float(r)) for r in s["radelem"]] + [repr(float(w)) for w in s["wj"]]
    args += ["rmin0", repr(float(s["rmin0"]))]
    args += [f"{flag} {int(bool(s[flag]))}" for flag in ("switchflag", "bzeroflag", "bnormflag", "wselfallflag")]
    if s["switchinnerflag"]:
        args += ["switchinnerflag 1", "sinner", *[repr(float(v)) for v in s["sinner"]],
                 "dinner", *[repr(float(v)) for v in s["dinner"]]]
    if quadratic:
        args.append("quadraticflag 1")
    return " ".join(args)


def _term(coefficient: float, feature: str | None) -> str:
    value = repr(float(coefficient))
    value = f"({value})" if value.startswith("-") else value
    return value if feature is None else f"{value}*{feature}"


def _max_tree(leaves: list[str]) -> str:
    """One formula for max(leaves), a balanced tree of ``ternary(a>b,a,b)`` (LAMMPS' atom-style variables have
    no two-argument max)."""
    while len(leaves) > 1:
        pairs = [f"ternary({a}>{b},{a},{b})" for a, b in zip(leaves[::2], leaves[1::2])]
        leaves = pairs + (leaves[-1:] if len(leaves) % 2 else [])
    return leaves[0]


def gamma_variable_commands(potential: Potential, name: str = "gamma") -> list[str]:
    """LAMMPS commands that define the atom-style variable ``<name>``: γ of every atom (see the module docstring).

    Defines ``compute <name>_sna all sna/atom ...``, one atom-style variable ``<name>_c<k>`` per active-set
    column k (the largest r_e over elements; missing columns of smaller sets are zero), ``fix <name>_columns all
    ave/atom 1 1 ${<name>_every}`` that evaluates them once on every ``<name>_every``-th step (an index variable,
    default 10: give it the N of the fix that reads ``v_<name>``), and ``<name>``: the largest ``|c_k|`` of
    those stored columns.

    Raises:
        TypeError: :func:`gamma_variables_supported` is false.
    """
    if not gamma_variables_supported(potential):
        raise TypeError("γ as LAMMPS variables needs an active set, a bispectrum descriptor without chemflag and a "
                        f"linear or quadratic head, not {type(potential.descriptor).__name__} + "
                        f"{type(potential.head).__name__}"
                        + ("" if potential.active_set is not None else " (the model has no active set)"))
    active_set = potential.active_set
    assert active_set is not None  # gamma_variables_supported
    descriptor = potential.descriptor
    assert isinstance(descriptor, Bispectrum)
    compute = f"{name}_sna"
    features: list[str | None] = [None] + [f"c_{compute}[{a}]" for a in range(1, active_set.num_features)]
    inverse = active_set.inverse.detach().to("cpu", torch.float64).numpy()
    sizes = [int(s) for s in active_set.size]
    columns = max(sizes)
    lines = [f"variable {name}_every index 10",
             f"compute {compute} all sna/atom {_sna_atom_args(descriptor, isinstance(potential.head, QuadraticHead))}"]
    for k in range(columns):
        parts = []
        for e, size in enumerate(sizes):
            if size == 0 and k == 0:
                parts.append(f"(type=={e + 1})*{UNTRAINED!r}")
            elif k < size:
                terms = "+".join(_term(m, x) for m, x in zip(inverse[e, :, k], features) if m != 0.0)
                parts.append(f"(type=={e + 1})*({terms or '0.0'})")
        lines.append(f"variable {name}_c{k + 1} atom {'+'.join(parts)}")
    values = " ".join(f"v_{name}_c{k + 1}" for k in range(columns))
    lines.append(f"fix {name}_columns all ave/atom 1 1 ${{{name}_every}} {values}")
    stored = ([f"abs(f_{name}_columns)"] if columns == 1
              else [f"abs(f_{name}_columns[{k + 1}])" for k in range(columns)])
    lines.append(f"variable {name} atom {_max_tree(stored)}")
    return lines


def write_gamma_variables(potential: Potential, path: str | Path, name: str = "gamma") -> Path:
    """Write :func:`gamma_variable_commands` with a header to ``path`` (an include file); returns the path."""
    path = Path(path)
    header = [f"# Per-atom extrapolation grade v_{name} of this model for any pair style (mliap_torch; "
              "docs/uncertainty.md, 'In LAMMPS').",
              f"# Atom type k = the model's element k. Computed every {name}_every steps (default 10; set it with",
              f"# 'variable {name}_every index N' before this file), e.g.",
              f"#   compute {name}_max all reduce max v_{name}",
              f"#   variable {name}_max equal c_{name}_max",
              f"#   fix stop all halt 10 v_{name}_max > 3 error soft"]
    path.write_text("\n".join(header + gamma_variable_commands(potential, name)) + "\n")
    return path
