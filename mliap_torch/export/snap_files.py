"""SNAP potential files as LAMMPS reads them.

* ``pair_style snap``: ``.snapcoeff`` (per-element radius, weight and coefficients) + ``.snapparam``
  (descriptor keywords) — :func:`read_snap`, :func:`write_snap`;
* ``pair_style mliap model linear|quadratic|nn ... descriptor sna ...``: ``.mliap.model`` (a block of
  coefficients per element, no element names; or a network, :mod:`mliap_torch.export.mliap_nn`) +
  ``.mliap.descriptor`` (keywords including the element list, radii and weights) —
  :func:`read_mliap`, :func:`write_mliap`.

Formats follow ``src/ML-SNAP/pair_snap.cpp``, ``src/ML-IAP/mliap_model.cpp`` and
``src/ML-IAP/mliap_descriptor_snap.cpp`` (LAMMPS 4Feb2025): ``#`` starts a comment, quotes are
stripped, blank lines are skipped. The readers accept everything LAMMPS accepts and name the file
and line of anything they reject. Numbers are written as the shortest text that reads back as the
same double, so a write → read round trip is exact.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..descriptors.bispectrum import Bispectrum
from ..descriptors.so3 import SO3
from ..models.heads import LinearHead, MLPHead, QuadraticHead
from ..models.potential import Potential
from .file_words import FileLine, SnapFileError, file_lines, format_float, parse_number
from .mliap_nn import nn_export_problem, nn_model_text, read_nn_model

__all__ = ["SnapFileError", "read_snap", "write_snap", "read_mliap", "write_mliap", "mliap_model_kind"]


def _flag(line: FileLine, word: str, what: str) -> bool:
    value = parse_number(line, word, what, integer=True)
    return value != 0


def _scalar(line: FileLine, word: str, key: str, floats: set[str], ints: set[str]) -> float | int | bool:
    """The value of a one-word keyword: a float for ``floats``, an integer for ``ints``, else a 0/1 flag."""
    if key in floats:
        return float(parse_number(line, word, key))
    if key in ints:
        return int(parse_number(line, word, key, integer=True))
    return _flag(line, word, key)


# ---------------------------------------------------------------------------------------------- snapparam
_SNAPPARAM_FLOATS = {"rcutfac", "rfac0", "rmin0"}
_SNAPPARAM_INTS = {"twojmax", "chunksize", "parallelthresh"}
_SNAPPARAM_FLAGS = {"switchflag", "bzeroflag", "quadraticflag", "chemflag", "bnormflag", "wselfallflag",
                    "switchinnerflag"}


def _read_snapparam(path: str | Path, nelements: int) -> dict[str, Any]:
    """Keywords of a ``.snapparam`` file (LAMMPS defaults for the optional ones)."""
    params: dict[str, Any] = {"rfac0": 0.99363, "rmin0": 0.0, "switchflag": True, "bzeroflag": True,
                              "quadraticflag": False, "chemflag": False, "bnormflag": False,
                              "wselfallflag": False, "switchinnerflag": False}
    seen: dict[str, FileLine] = {}
    for line in file_lines(path):
        key, values = line.words[0], line.words[1:]
        if not values:
            raise line.error(f"keyword {key!r} has no value")
        if key in ("sinner", "dinner"):
            if len(values) != nelements:
                raise line.error(f"{key} needs one value per element ({nelements}), got {len(values)}")
            params[key] = [float(parse_number(line, v, key)) for v in values]
        elif key in _SNAPPARAM_FLOATS | _SNAPPARAM_INTS | _SNAPPARAM_FLAGS:
            if len(values) != 1:
                raise line.error(f"keyword {key!r} takes one value, got {len(values)}")
            params[key] = _scalar(line, values[0], key, _SNAPPARAM_FLOATS, _SNAPPARAM_INTS)
        else:
            raise line.error(f"unknown keyword {key!r} in SNAP parameter file")
        seen[key] = line
    for key in ("rcutfac", "twojmax"):
        if key not in params:
            raise SnapFileError(f"{path}: required keyword {key!r} is missing")
    if params["switchinnerflag"] and not ("sinner" in params and "dinner" in params):
        raise SnapFileError(f"{path}: switchinnerflag 1 needs both sinner and dinner")
    if not params["switchinnerflag"] and ("sinner" in params or "dinner" in params):
        key = "sinner" if "sinner" in params else "dinner"
        raise seen[key].error(f"{key} given but switchinnerflag is 0 (LAMMPS rejects this)")
    if params["twojmax"] < 0:
        raise seen["twojmax"].error("twojmax must be non-negative")
    if params["rcutfac"] <= 0:
        raise seen["rcutfac"].error("rcutfac must be positive")
    return params


def _descriptor_from_params(elements, radelem, wj, params: dict[str, Any], where: str) -> Bispectrum:
    try:
        return Bispectrum(elements, twojmax=params["twojmax"], rcutfac=params["rcutfac"], radelem=radelem, wj=wj,
                          rfac0=params["rfac0"], rmin0=params["rmin0"], switchflag=params["switchflag"],
                          bzeroflag=params["bzeroflag"], bnormflag=params["bnormflag"],
                          wselfallflag=params["wselfallflag"], chemflag=params["chemflag"],
                          switchinnerflag=params["switchinnerflag"], sinner=params.get("sinner"),
                          dinner=params.get("dinner"))
    except ValueError as exc:
        raise SnapFileError(f"{where}: {exc}") from exc


def _head_for(ncoeff: int, num_descriptors: int, nelements: int, quadratic: bool, where: str):
    """A linear or quadratic head whose coefficient count (without the constant) matches ``ncoeff``."""
    k = num_descriptors
    nlin, nquad = k, k + k * (k + 1) // 2
    if quadratic:
        if ncoeff != nquad:
            raise SnapFileError(f"{where}: quadratic SNAP with {k} descriptors needs 1 + {nquad} coefficients "
                                f"per element, the file has {ncoeff + 1}")
        return QuadraticHead(nelements, k)
    if ncoeff != nlin:
        hint = " (quadraticflag missing?)" if ncoeff == nquad else ""
        raise SnapFileError(f"{where}: linear SNAP with {k} descriptors needs {nlin + 1} coefficients per "
                            f"element, the file has {ncoeff + 1}{hint}")
    return LinearHead(nelements, k)


# ---------------------------------------------------------------------------------------------- snapcoeff
def _read_coefficient_blocks(path: str | Path, with_names: bool):
    """Header ``nelements ncoeff`` and the per-element blocks of a .snapcoeff / .mliap.model file."""
    lines = file_lines(path)
    try:
        header = next(lines)
    except StopIteration:
        raise SnapFileError(f"{path}: empty file (expected a header line 'nelements ncoefficients')") from None
    if len(header.words) != 2:
        raise header.error(f"expected a header 'nelements ncoefficients', got {' '.join(header.words)!r}")
    nelem = int(parse_number(header, header.words[0], "number of elements", integer=True))
    ncoeff = int(parse_number(header, header.words[1], "number of coefficients", integer=True))
    if nelem < 1 or ncoeff < 1:
        raise header.error(f"the header needs at least one element and one coefficient, got {nelem} {ncoeff}")
    blocks: list[tuple[Any, ...]] = []  # (name, radius, weight, coefficients)
    for _ in range(nelem):
        name, radius, weight = None, None, None
        if with_names:
            try:
                line = next(lines)
            except StopIteration:
                raise SnapFileError(f"{path}: ends before the block of element {len(blocks) + 1} of {nelem}") from None
            if len(line.words) != 3:
                raise line.error(f"expected 'element radius weight', got {' '.join(line.words)!r}")
            name = line.words[0]
            radius = float(parse_number(line, line.words[1], f"radius of {name}"))
            weight = float(parse_number(line, line.words[2], f"weight of {name}"))
        values = []
        for k in range(ncoeff):
            try:
                line = next(lines)
            except StopIteration:
                what = f"element {name}" if name else f"element block {len(blocks) + 1}"
                raise SnapFileError(f"{path}: ends after {k} of {ncoeff} coefficients of {what}") from None
            if len(line.words) != 1:
                raise line.error(f"expected one coefficient per line, got {' '.join(line.words)!r}")
            values.append(float(parse_number(line, line.words[0], "coefficient")))
        blocks.append((name, radius, weight, values))
    extra = next(lines, None)
    if extra is not None:
        raise extra.error(f"unexpected content after the {nelem} element block(s): {' '.join(extra.words)!r}")
    return ncoeff, blocks


def read_snap(snapcoeff: str | Path, snapparam: str | Path) -> Potential:
    """A :class:`Potential` (bispectrum + linear or quadratic head) from a LAMMPS SNAP file pair.

    Elements, radii, weights and coefficients come from ``snapcoeff`` (elements in file order);
    ``sinner``/``dinner`` in ``snapparam`` are per element in that order. ``chunksize`` and
    ``parallelthresh`` (Kokkos tuning) are accepted and ignored.

    Raises:
        SnapFileError: malformed or inconsistent files (message names file and line).
        FileNotFoundError: a file is missing.
    """
    ncoeffall, blocks = _read_coefficient_blocks(snapcoeff, with_names=True)
    elements = [b[0] for b in blocks]
    if len(set(elements)) != len(elements):
        raise SnapFileError(f"{snapcoeff}: element listed twice: {elements}")
    params = _read_snapparam(snapparam, len(elements))
    descriptor = _descriptor_from_params(elements, [b[1] for b in blocks], [b[2] for b in blocks], params,
                                         f"{snapparam}")
    head = _head_for(ncoeffall - 1, descriptor.num_descriptors, len(elements), params["quadraticflag"],
                     f"{snapcoeff} with {snapparam}")
    head.set_coefficients(torch.tensor([b[3] for b in blocks], dtype=torch.float64))
    return Potential(descriptor, head)


def _check_descriptor(potential: Potential) -> Bispectrum:
    descriptor = potential.descriptor
    if not isinstance(descriptor, Bispectrum):
        raise TypeError(f"SNAP files need a Bispectrum descriptor, not {type(descriptor).__name__}")
    if potential.reference is not None:
        raise TypeError("SNAP files cannot hold a reference potential (write it as a separate pair style)")
    return descriptor


def _check_exportable(potential: Potential) -> tuple[Bispectrum, LinearHead]:
    descriptor, head = _check_descriptor(potential), potential.head
    if type(head) not in (LinearHead, QuadraticHead):
        raise TypeError(f"SNAP files need a linear or quadratic head, not {type(head).__name__}")
    return descriptor, head


def _coefficient_labels(descriptor: Bispectrum, head) -> list[str]:
    from ..descriptors.sna_tables import bispectrum_triples

    triples = bispectrum_triples(descriptor.twojmax) * descriptor.num_chem ** 3
    labels = ["B0"] + [f"B{k + 1} (j1 j2 j = {a} {b} {c})" for k, (a, b, c) in enumerate(triples)]
    if isinstance(head, QuadraticHead):
        k = descriptor.num_descriptors
        labels += [f"B{a + 1}*B{b + 1}" for a in range(k) for b in range(a, k)]
    return labels


def write_snap(potential: Potential, prefix: str | Path) -> tuple[Path, Path]:
    """Write ``prefix.snapcoeff`` and ``prefix.snapparam`` for ``pair_style snap``.

    Use in LAMMPS as ``pair_coeff * * prefix.snapcoeff prefix.snapparam <elements in type order>``.

    Returns:
        the two paths.
    """
    descriptor, head = _check_exportable(potential)
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    coeff_path = prefix.with_name(prefix.name + ".snapcoeff")
    param_path = prefix.with_name(prefix.name + ".snapparam")
    coeffs = head.coefficients().detach().cpu().to(torch.float64)
    labels = _coefficient_labels(descriptor, head)
    lines = ["# SNAP coefficients written by mliap_torch", f"{len(descriptor.elements)} {coeffs.shape[1]}"]
    for e, element in enumerate(descriptor.elements):
        lines.append(f"{element} {format_float(descriptor.radelem[e])} {format_float(descriptor.wj[e])}")
        lines += [f"{format_float(c)}  # {label}" for c, label in zip(coeffs[e].tolist(), labels)]
    coeff_path.write_text("\n".join(lines) + "\n")
    param_path.write_text(_snapparam_text(descriptor, quadratic=isinstance(head, QuadraticHead)))
    return coeff_path, param_path


def _snapparam_text(d: Bispectrum, quadratic: bool) -> str:
    lines = ["# SNAP parameters written by mliap_torch", f"rcutfac {format_float(d.rcutfac)}", f"twojmax {d.twojmax}",
             f"rfac0 {format_float(d.rfac0)}", f"rmin0 {format_float(d.rmin0)}", f"switchflag {int(d.switchflag)}",
             f"bzeroflag {int(d.bzeroflag)}", f"quadraticflag {int(quadratic)}", f"chemflag {int(d.chemflag)}",
             f"bnormflag {int(d.bnormflag)}", f"wselfallflag {int(d.wselfallflag)}",
             f"switchinnerflag {int(d.switchinnerflag)}"]
    if d.switchinnerflag:
        assert d.sinner is not None and d.dinner is not None  # Bispectrum checks this
        lines.append("sinner " + " ".join(format_float(v) for v in d.sinner))
        lines.append("dinner " + " ".join(format_float(v) for v in d.dinner))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- ML-IAP
_MLIAP_PER_ELEMENT = {"elems", "radelems", "welems", "sinnerelems", "dinnerelems"}
_MLIAP_SCALARS = {"nelems", "rcutfac", "twojmax", "rfac0", "rmin0", "switchflag", "bzeroflag", "chemflag",
                  "bnormflag", "wselfallflag", "switchinnerflag"}


def _read_mliap_descriptor(path: str | Path) -> tuple[list[str], list[float], list[float], dict[str, Any]]:
    params: dict[str, Any] = {"rfac0": 0.99363, "rmin0": 0.0, "switchflag": True, "bzeroflag": True,
                              "chemflag": False, "bnormflag": False, "wselfallflag": False,
                              "switchinnerflag": False, "quadraticflag": False}
    nelem = None
    per_element: dict[str, list] = {}
    seen: dict[str, FileLine] = {}
    for line in file_lines(path):
        key, values = line.words[0], line.words[1:]
        if key in _MLIAP_PER_ELEMENT:
            if nelem is None:
                raise line.error(f"{key} before nelems")
            if len(values) != nelem:
                raise line.error(f"{key} needs {nelem} values (nelems), got {len(values)}")
            if key == "elems":
                per_element[key] = list(values)
            else:
                per_element[key] = [float(parse_number(line, v, key)) for v in values]
        elif key in _MLIAP_SCALARS:
            if len(values) != 1:
                raise line.error(f"keyword {key!r} takes one value, got {len(values)}")
            if key == "nelems":
                nelem = int(parse_number(line, values[0], key, integer=True))
                if nelem < 1:
                    raise line.error("nelems must be at least 1")
            else:
                params[key] = _scalar(line, values[0], key, {"rcutfac", "rfac0", "rmin0"}, {"twojmax"})
        else:
            raise line.error(f"unknown keyword {key!r} in ML-IAP SNAP descriptor file")
        seen[key] = line
    missing = [k for k in ("rcutfac", "twojmax") if k not in params] + [
        k for k in ("nelems",) if nelem is None] + [k for k in ("elems", "radelems", "welems") if k not in per_element]
    if missing:
        raise SnapFileError(f"{path}: required keyword(s) {missing} missing")
    if params["switchinnerflag"] and not ("sinnerelems" in per_element and "dinnerelems" in per_element):
        raise SnapFileError(f"{path}: switchinnerflag 1 needs both sinnerelems and dinnerelems")
    if not params["switchinnerflag"] and ("sinnerelems" in per_element or "dinnerelems" in per_element):
        key = "sinnerelems" if "sinnerelems" in per_element else "dinnerelems"
        raise seen[key].error(f"{key} given but switchinnerflag is 0 (LAMMPS rejects this)")
    params["sinner"] = per_element.get("sinnerelems")
    params["dinner"] = per_element.get("dinnerelems")
    return per_element["elems"], per_element["radelems"], per_element["welems"], params


def _is_nn_model(path: str | Path) -> bool:
    """True when the model file has a ``NET`` line (``mliap model nn``)."""
    return any(line.words[0].startswith("NET") for line in file_lines(path))


def read_mliap(model: str | Path, descriptor: str | Path, model_type: str | None = None,
               descriptor_type: str | None = None) -> Potential:
    """A :class:`Potential` from an ML-IAP ``model`` file and ``descriptor sna`` or ``descriptor so3`` file.

    Args:
        model: the ``.mliap.model`` file (coefficient blocks in the descriptor's element order, or an
            ``nn`` network: :mod:`mliap_torch.export.mliap_nn`).
        descriptor: the ``.mliap.descriptor`` file (SNAP bispectrum or SO(3) power spectrum).
        model_type: ``"linear"``, ``"quadratic"`` or ``"nn"``; by default ``nn`` when the file has a
            ``NET`` line, else inferred from the number of coefficients per element (K + 1 or
            1 + K + K(K+1)/2 for K descriptors).
        descriptor_type: ``"sna"`` or ``"so3"``; by default ``so3`` when the descriptor file has an
            ``nmax``, ``lmax`` or ``alpha`` keyword (:class:`~mliap_torch.descriptors.so3.SO3`), else ``sna``.
    """
    from .so3_files import is_so3_descriptor_file, read_so3_descriptor

    if descriptor_type not in (None, "sna", "so3"):
        raise ValueError(f"descriptor_type must be 'sna' or 'so3', got {descriptor_type!r}")
    desc: Bispectrum | SO3
    if descriptor_type == "so3" or (descriptor_type is None and is_so3_descriptor_file(descriptor)):
        desc = read_so3_descriptor(descriptor)
        elements = desc.elements
    else:
        elements, radelem, wj, params = _read_mliap_descriptor(descriptor)
        desc = _descriptor_from_params(elements, radelem, wj, params, f"{descriptor}")
    if model_type not in (None, "linear", "quadratic", "nn"):
        raise ValueError(f"model_type must be 'linear', 'quadratic' or 'nn', got {model_type!r}")
    if model_type == "nn" or (model_type is None and _is_nn_model(model)):
        return Potential(desc, read_nn_model(model, desc.num_descriptors, len(elements)))
    nparams, blocks = _read_coefficient_blocks(model, with_names=False)
    if len(blocks) != len(elements):
        raise SnapFileError(f"{model}: {len(blocks)} element block(s), the descriptor {descriptor} has "
                            f"{len(elements)} element(s)")
    k = desc.num_descriptors
    if model_type is None:
        model_type = "quadratic" if nparams == 1 + k + k * (k + 1) // 2 else "linear"
    head = _head_for(nparams - 1, k, len(elements), model_type == "quadratic", f"{model} with {descriptor}")
    head.set_coefficients(torch.tensor([b[3] for b in blocks], dtype=torch.float64))
    return Potential(desc, head)


def mliap_model_kind(potential: Potential) -> str:
    """The ``pair_style mliap model`` keyword of ``potential``'s head: linear, quadratic or nn."""
    if isinstance(potential.head, MLPHead):
        return "nn"
    return "quadratic" if isinstance(potential.head, QuadraticHead) else "linear"


def write_mliap(potential: Potential, prefix: str | Path) -> tuple[Path, Path]:
    """Write ``prefix.mliap.model`` and ``prefix.mliap.descriptor``.

    Use in LAMMPS as ``pair_style mliap model linear|quadratic|nn prefix.mliap.model descriptor sna|so3
    prefix.mliap.descriptor`` (:func:`mliap_model_kind`; ``so3`` for an
    :class:`~mliap_torch.descriptors.so3.SO3` descriptor) and ``pair_coeff * * <elements in type order>``.
    A linear or quadratic head, or an MLP head that LAMMPS' ``nn`` can hold
    (:func:`~mliap_torch.export.mliap_nn.nn_export_problem` says why not otherwise).

    Returns:
        (model path, descriptor path).
    """
    if isinstance(potential.descriptor, SO3):
        from .so3_files import so3_descriptor_text

        if potential.reference is not None:
            raise TypeError("ML-IAP files cannot hold a reference potential (write it as a separate pair style)")
        desc_text = so3_descriptor_text(potential.descriptor)
    else:
        desc_text = _sna_descriptor_text(_check_descriptor(potential))
    model_text = _mliap_model_text(potential)
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    model_path = prefix.with_name(prefix.name + ".mliap.model")
    desc_path = prefix.with_name(prefix.name + ".mliap.descriptor")
    model_path.write_text(model_text)
    desc_path.write_text(desc_text)
    return model_path, desc_path


def _sna_descriptor_text(d: Bispectrum) -> str:
    dl = ["# ML-IAP SNAP descriptor written by mliap_torch (pair_style mliap ... descriptor sna)",
          f"rcutfac {format_float(d.rcutfac)}", f"twojmax {d.twojmax}", f"nelems {len(d.elements)}",
          "elems " + " ".join(d.elements), "radelems " + " ".join(format_float(v) for v in d.radelem),
          "welems " + " ".join(format_float(v) for v in d.wj), f"rfac0 {format_float(d.rfac0)}", f"rmin0 {format_float(d.rmin0)}",
          f"switchflag {int(d.switchflag)}", f"bzeroflag {int(d.bzeroflag)}", f"chemflag {int(d.chemflag)}",
          f"bnormflag {int(d.bnormflag)}", f"wselfallflag {int(d.wselfallflag)}",
          f"switchinnerflag {int(d.switchinnerflag)}"]
    if d.switchinnerflag:
        assert d.sinner is not None and d.dinner is not None  # Bispectrum checks this
        dl.append("sinnerelems " + " ".join(format_float(v) for v in d.sinner))
        dl.append("dinnerelems " + " ".join(format_float(v) for v in d.dinner))
    return "\n".join(dl) + "\n"


def _mliap_model_text(potential: Potential) -> str:
    """The ``.mliap.model`` text of a linear, quadratic or (LAMMPS-compatible) MLP head."""
    if isinstance(potential.head, MLPHead):
        problem = nn_export_problem(potential.head)
        if problem is not None:
            raise TypeError(f"cannot write an mliap nn model: {problem}")
        return nn_model_text(potential.head)
    head = potential.head
    if type(head) not in (LinearHead, QuadraticHead):
        raise TypeError(f"ML-IAP model files need a linear, quadratic or MLP head, not {type(head).__name__}")
    coeffs = head.coefficients().detach().cpu().to(torch.float64)
    kind = mliap_model_kind(potential)
    lines = [f"# ML-IAP {kind} model written by mliap_torch (pair_style mliap model {kind})",
             f"{coeffs.shape[0]} {coeffs.shape[1]}"]
    for e in range(coeffs.shape[0]):
        lines += [format_float(c) for c in coeffs[e].tolist()]
    return "\n".join(lines) + "\n"
