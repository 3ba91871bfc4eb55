"""Model files of the mliap_torch LAMMPS plugin (``pair_style mliap/torch``, ``lammps_plugin/``).

Two kinds (:func:`write_plugin_files` picks): bispectrum models become a ``.pt`` file that the plugin
runs with LAMMPS' own SNA class and the head in libtorch (exact to LAMMPS' ``pair_style snap`` and at
its speed); ACE models are compiled ahead of time into a ``.pt2`` package
(:func:`mliap_torch.export.compiled.compile_potential`, weights in ``<stem>.weights.pt`` next to it,
so that one compiled architecture serves every training run).

The ``.pt`` model file is a ``torch.save`` archive of one dict of plain values and float64 tensors
(``torch.load(..., weights_only=True)`` reads it; the plugin reads it with libtorch's unpickler):

- ``format`` ``"mliap_torch.lammps_plugin"``, ``version`` (1, or 2 when the file has an ``active_set``;
  the plugin reads both, a plugin built before version 2 refuses version 2 files with a message),
  ``elements`` (list of symbols), ``num_descriptors`` K;
- ``descriptor``: the bispectrum settings as :meth:`Bispectrum.settings` gives them (current values of
  learned hyperparameters), per-element lists as tensors;
- ``head``: ``type`` and the head's tensors — ``linear``: ``bias`` (nelements,), ``weight``
  (nelements, K); ``quadratic``: also ``quadratic`` (nelements, K(K+1)/2); ``mlp``: ``shift``,
  ``scale`` (K,), ``offset`` (nelements,), ``linear_term`` and ``linear`` (nelements, K),
  ``activation``, ``networks``: per element a list of ``[weight (out, in), bias (out,)]`` layers;
- ``active_set`` (version 2, only when the potential has one, :mod:`mliap_torch.uncertainty`): ``num_features``
  F (the width of the head's :meth:`~mliap_torch.models.heads.Head.grade_features`) and ``inverse``, per
  element the (F, r_e) float64 matrix M_e of the active set (r_e ≤ F atoms; r_e = 0: the element had no
  training atoms and its atoms get γ = inf), so that ``γ_i = max_k |x_i · M_e|_k``. The plugin then gives
  per-atom γ to ``fix pair`` (``fix g all pair 10 mliap/torch gamma 1``; docs/uncertainty.md).

A reference potential (ZBL) is not in the file: it is its own LAMMPS pair style
(``pair_style hybrid/overlay zbl ... mliap/torch ...``), as for the native routes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..descriptors.bispectrum import Bispectrum
from ..files import atomic_path
from ..models.heads import LinearHead, MLPHead, QuadraticHead
from ..models.potential import Potential
from ..models.reference import overlaid_in_lammps
from ..uncertainty.active_set import ActiveSet
from .compiled import compile_potential, compiled_supported, weights_path

FORMAT = "mliap_torch.lammps_plugin"
VERSION = 1
VERSION_ACTIVE_SET = 2
"""The version of files with an ``active_set`` entry; files without one stay version 1, so that plugins built
before active sets still read them."""
PAIR_STYLE = "mliap/torch"


PLUGIN_ACTIVATIONS = ("silu", "tanh", "relu", "softplus", "gelu")
"""The MLP activations the plugin's libtorch head evaluates (``lammps_plugin/src/torch_head.cpp``)."""


def snap_plugin_supported(potential: Potential) -> bool:
    """True when the plugin's SNA route can run ``potential``: a bispectrum descriptor without ``chemflag`` and
    a linear, quadratic or MLP head (an MLP with one of PLUGIN_ACTIVATIONS on every hidden layer and none
    on its output).

    ``chemflag`` is left out because LAMMPS 4Feb2025's ``SNA::compute_yi`` gives chemflag forces that are
    not the gradient of its chemflag energy (``tests/test_bispectrum_lammps.py``), so the plugin would not
    reproduce the torch model; such models run through the unified route."""
    descriptor, head = potential.descriptor, potential.head
    if isinstance(head, MLPHead):
        head_supported = head.activation in PLUGIN_ACTIVATIONS and head.output_activation == "linear"
    else:
        head_supported = type(head) in (LinearHead, QuadraticHead)
    return (isinstance(descriptor, Bispectrum) and not descriptor.chemflag and head_supported
            and overlaid_in_lammps(potential.reference))


def plugin_supported(potential: Potential) -> bool:
    """True when the plugin can run ``potential``: by its SNA route or as a compiled (ACE) model."""
    return snap_plugin_supported(potential) or compiled_supported(potential)


def _float64(values: Any) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64).detach().cpu().clone().contiguous()


def _descriptor_entry(descriptor: Bispectrum) -> dict[str, Any]:
    settings = descriptor.settings()
    entry: dict[str, Any] = {"type": "bispectrum", "twojmax": int(settings["twojmax"]),
                             "rcutfac": float(settings["rcutfac"]), "rfac0": float(settings["rfac0"]),
                             "rmin0": float(settings["rmin0"]), "radelem": _float64(settings["radelem"]),
                             "wj": _float64(settings["wj"])}
    for flag in ("switchflag", "bzeroflag", "bnormflag", "chemflag", "wselfallflag", "switchinnerflag"):
        entry[flag] = int(bool(settings[flag]))
    if settings["switchinnerflag"]:
        entry["sinner"] = _float64(settings["sinner"])
        entry["dinner"] = _float64(settings["dinner"])
    return entry


def _head_entry(head: nn.Module) -> dict[str, Any]:
    if isinstance(head, MLPHead):
        networks = []
        for e in range(head.num_elements):
            networks.append([[_float64(m.weight), _float64(m.bias)] for m in head.layers(e)])
        entry: dict[str, Any] = {"type": "mlp", "shift": _float64(head.shift), "scale": _float64(head.scale),
                                 "offset": _float64(head.offset), "linear_term": bool(head.linear_term),
                                 "activation": head.activation, "networks": networks}
        if head.linear_term:
            entry["linear"] = _float64(head.linear)
        return entry
    entry = {"type": head.type_name, "bias": _float64(head.bias), "weight": _float64(head.weight)}
    if isinstance(head, QuadraticHead):
        entry["quadratic"] = _float64(head.quadratic)
    return entry


def _active_set_entry(active_set: ActiveSet) -> dict[str, Any]:
    """``num_features`` F and ``inverse``: per element the (F, size[e]) float64 columns of the active set's
    inverse that are in use (the rest of ActiveSet.inverse is zero padding)."""
    inverse = [_float64(active_set.inverse[e, :, : int(active_set.size[e])]) for e in range(active_set.num_elements)]
    return {"num_features": int(active_set.num_features), "inverse": inverse}


def plugin_model(potential: Potential) -> dict[str, Any]:
    """The plugin model dict of ``potential`` (its descriptor, head and active set, if any; see the module
    docstring)."""
    if not snap_plugin_supported(potential):
        raise TypeError(f"the LAMMPS plugin runs bispectrum models (without chemflag) with a linear, quadratic or "
                        f"MLP head, not {type(potential.descriptor).__name__} + {type(potential.head).__name__}")
    model: dict[str, Any] = {"format": FORMAT, "version": VERSION, "elements": list(potential.elements),
                             "num_descriptors": int(potential.descriptor.num_descriptors),
                             # snap_plugin_supported: a Bispectrum
                             "descriptor": _descriptor_entry(cast(Bispectrum, potential.descriptor)),
                             "head": _head_entry(potential.head)}
    if potential.active_set is not None:
        model["version"] = VERSION_ACTIVE_SET
        model["active_set"] = _active_set_entry(potential.active_set)
    return model


def write_plugin_model(potential: Potential, path: str | Path) -> Path:
    """Write the ``.pt`` plugin model file of a bispectrum ``potential`` to ``path`` (atomically); returns the path."""
    path = Path(path)
    model = plugin_model(potential)
    with atomic_path(path) as tmp:
        torch.save(model, tmp)
    return path


def write_plugin_files(potential: Potential, prefix: str | Path, dtype: str = "float64") -> list[Path]:
    """The plugin's files for ``potential``, the model file (``pair_style mliap/torch <it>``) first:
    ``<prefix>.pt`` for bispectrum models, ``<prefix>.pt2`` and ``<prefix>.weights.pt`` for ACE models
    (compiled in ``dtype``, ``"float64"`` or ``"float32"``).

    Raises:
        TypeError: the plugin cannot run the model (:func:`plugin_supported`).
        ValueError: float32 for a bispectrum model (LAMMPS' SNA computes in double precision).
    """
    prefix = Path(prefix)
    if snap_plugin_supported(potential):
        if dtype != "float64":
            raise ValueError(f"the plugin runs bispectrum models in float64 only (LAMMPS' SNA is double "
                             f"precision), not {dtype}")
        return [write_plugin_model(potential, prefix.with_name(prefix.name + ".pt"))]
    if compiled_supported(potential):
        package = compile_potential(potential, prefix.with_name(prefix.name + ".pt2"), dtype=dtype,
                                    weights="separate")
        return [package, weights_path(package)]
    raise TypeError(f"the LAMMPS plugin runs bispectrum models (without chemflag) with a linear, quadratic or MLP "
                    f"head and ACE models with those or a PACE embedding head, not "
                    f"{type(potential.descriptor).__name__} + {type(potential.head).__name__}"
                    + ("" if potential.reference is None else f" with a {potential.reference.type_name!r} reference"))
