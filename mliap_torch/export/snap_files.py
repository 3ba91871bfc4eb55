"""LAMMPS SNAP files: ``.snapcoeff``/``.snapparam`` (``pair_style snap``) and the ML-IAP pair
``.mliap.model``/``.mliap.descriptor`` (``pair_style mliap model linear|quadratic descriptor sna``).

Readers build a ready :class:`~mliap_torch.models.potential.Potential` (bispectrum + linear or
quadratic head per element); writers write a bispectrum potential with such a head. Formats and
defaults follow LAMMPS' ``PairSNAP::read_files``, ``MLIAPDescriptorSNAP::read_paramfile`` and
``MLIAPModelSimple::read_coeffs``. Errors name the file and line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..descriptors.bispectrum import Bispectrum
from ..models.heads import LinearHead, QuadraticHead
from ..models.io import float64_default
from ..models.potential import Potential

SNAPPARAM_DEFAULTS: dict[str, Any] = {"rfac0": 0.99363, "rmin0": 0.0, "switchflag": 1, "bzeroflag": 1,
                                      "quadraticflag": 0, "chemflag": 0, "bnormflag": 0, "wselfallflag": 0,
                                      "switchinnerflag": 0}
INT_KEYS = {"twojmax", "switchflag", "bzeroflag", "quadraticflag", "chemflag", "bnormflag", "wselfallflag",
            "switchinnerflag", "chunksize", "parallelthresh", "nelems"}
FLOAT_KEYS = {"rcutfac", "rfac0", "rmin0"}


class SnapFileError(ValueError):
    """A malformed SNAP or ML-IAP file; the message names the file and line."""


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, words) of the non-blank lines of ``path`` with ``#`` comments and quotes removed."""
    if not path.is_file():
        raise FileNotFoundError(f"SNAP file {path} does not exist")
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        words = line.split("#", 1)[0].replace('"', " ").replace("'", " ").split()
        if words:
            out.append((number, words))
    return out


def _number(path: Path, line: int, word: str, kind: type, what: str):
    try:
        return kind(word) if kind is float else int(float(word)) if float(word).is_integer() else int(word)
    except ValueError:
        raise SnapFileError(f"{path}:{line}: {what} must be {'an integer' if kind is int else 'a number'}, "
                            f"not {word!r}") from None


def _read_params(path: Path, per_element: set[str], nelements: int | None) -> dict[str, Any]:
    """Keyword → value of a ``.snapparam`` or ``.mliap.descriptor`` file (per-element keys as lists)."""
    params: dict[str, Any] = {}
    for line, words in _lines(path):
        key = words[0]
        if key in per_element:
            values = words[1:]
            if nelements is not None and len(values) != nelements:
                raise SnapFileError(f"{path}:{line}: {key} needs {nelements} values (one per element), "
                                    f"got {len(values)}")
            params[key] = values if key == "elems" else [_number(path, line, v, float, key) for v in values]
        elif key in INT_KEYS | FLOAT_KEYS:
            if len(words) != 2:
                raise SnapFileError(f"{path}:{line}: {key} takes one value, got {len(words) - 1}")
            params[key] = _number(path, line, words[1], int if key in INT_KEYS else float, key)
        else:
            raise SnapFileError(f"{path}:{line}: unknown keyword {key!r}")
    for key in ("rcutfac", "twojmax"):
        if key not in params:
            raise SnapFileError(f"{path}: required keyword {key!r} is missing")
    return params


def _descriptor(params: dict[str, Any], elements: list[str], radelem: list[float], wj: list[float],
                sinner: list[float] | None, dinner: list[float] | None, path: Path) -> Bispectrum:
    p = {**SNAPPARAM_DEFAULTS, **params}
    if p["switchinnerflag"] and (sinner is None or dinner is None):
        raise SnapFileError(f"{path}: switchinnerflag 1 needs sinner and dinner values for every element")
    if not p["switchinnerflag"] and (sinner is not None or dinner is not None):
        raise SnapFileError(f"{path}: sinner/dinner given but switchinnerflag is 0")
    with float64_default():
        return Bispectrum(elements, twojmax=p["twojmax"], rcutfac=p["rcutfac"], radelem=radelem, wj=wj,
                          rfac0=p["rfac0"], rmin0=p["rmin0"], switchflag=bool(p["switchflag"]),
                          bzeroflag=bool(p["bzeroflag"]), bnormflag=bool(p["bnormflag"]),
                          wselfallflag=bool(p["wselfallflag"]), chemflag=bool(p["chemflag"]),
                          switchinnerflag=bool(p["switchinnerflag"]), sinner=sinner, dinner=dinner)


def _head(descriptor: Bispectrum, coeffs: list[list[float]], quadratic: bool, path: Path) -> LinearHead:
    K = descriptor.num_descriptors
    head = (QuadraticHead if quadratic else LinearHead)(len(coeffs), K)
    expected = 1 + head.num_features
    if len(coeffs[0]) != expected:
        kind = "quadratic" if quadratic else "linear"
        raise SnapFileError(f"{path}: {len(coeffs[0])} coefficients per element, but a {kind} model with "
                            f"2Jmax {descriptor.twojmax} ({K} descriptors) needs {expected}")
    head.set_coefficients(torch.tensor(coeffs, dtype=torch.float64))
    return head


def read_snap(snapcoeff: str | Path, snapparam: str | Path) -> Potential:
    """The potential of a LAMMPS ``pair_style snap`` file pair (elements in ``.snapcoeff`` order)."""
    snapcoeff, snapparam = Path(snapcoeff), Path(snapparam)
    lines = _lines(snapcoeff)
    if not lines or len(lines[0][1]) != 2:
        raise SnapFileError(f"{snapcoeff}:{lines[0][0] if lines else 1}: expected 'nelements ncoeff'")
    nelem = _number(snapcoeff, lines[0][0], lines[0][1][0], int, "nelements")
    ncoeff = _number(snapcoeff, lines[0][0], lines[0][1][1], int, "ncoeff")
    elements, radelem, wj, coeffs = [], [], [], []
    k = 1
    for _ in range(nelem):
        if k >= len(lines):
            raise SnapFileError(f"{snapcoeff}: ends after {len(elements)} of {nelem} element blocks")
        line, words = lines[k]
        if len(words) != 3:
            raise SnapFileError(f"{snapcoeff}:{line}: expected 'element radius weight', got {' '.join(words)!r}")
        if words[0] in elements:
            raise SnapFileError(f"{snapcoeff}:{line}: element {words[0]} appears twice")
        elements.append(words[0])
        radelem.append(_number(snapcoeff, line, words[1], float, "radius"))
        wj.append(_number(snapcoeff, line, words[2], float, "weight"))
        block = lines[k + 1: k + 1 + ncoeff]
        if len(block) != ncoeff:
            raise SnapFileError(f"{snapcoeff}: element {words[0]} has {len(block)} of {ncoeff} coefficients")
        for cline, cwords in block:
            if len(cwords) != 1:
                raise SnapFileError(f"{snapcoeff}:{cline}: expected one coefficient per line")
        coeffs.append([_number(snapcoeff, cl, cw[0], float, "coefficient") for cl, cw in block])
        k += 1 + ncoeff
    if k != len(lines):
        raise SnapFileError(f"{snapcoeff}:{lines[k][0]}: unexpected content after {nelem} element blocks")
    params = _read_params(snapparam, {"sinner", "dinner"}, nelem)
    descriptor = _descriptor(params, elements, radelem, wj, params.get("sinner"), params.get("dinner"), snapparam)
    head = _head(descriptor, coeffs, bool(params.get("quadraticflag", 0)), snapcoeff)
    return Potential(descriptor, head)


def read_mliap(model: str | Path, descriptor: str | Path) -> Potential:
    """The potential of a ``pair_style mliap model linear|quadratic ... descriptor sna ...`` file pair.

    Linear or quadratic is decided by the number of parameters per element.
    """
    model, descriptor = Path(model), Path(descriptor)
    params = _read_params(descriptor, {"elems", "radelems", "welems", "sinnerelems", "dinnerelems"}, None)
    for key in ("nelems", "elems", "radelems", "welems"):
        if key not in params:
            raise SnapFileError(f"{descriptor}: required keyword {key!r} is missing")
    n = params.pop("nelems")
    elements = params.pop("elems")
    for key in ("elems", "radelems", "welems", "sinnerelems", "dinnerelems"):
        if key in params and len(params[key]) != n:
            raise SnapFileError(f"{descriptor}: {key} has {len(params[key])} values for nelems {n}")
    radelem, wj = params.pop("radelems"), params.pop("welems")
    desc = _descriptor(params, elements, radelem, wj, params.pop("sinnerelems", None),
                       params.pop("dinnerelems", None), descriptor)
    lines = _lines(model)
    if not lines or len(lines[0][1]) != 2:
        raise SnapFileError(f"{model}:{lines[0][0] if lines else 1}: expected 'nelements nparams'")
    nelem = _number(model, lines[0][0], lines[0][1][0], int, "nelements")
    nparams = _number(model, lines[0][0], lines[0][1][1], int, "nparams")
    if nelem != n:
        raise SnapFileError(f"{model}: {nelem} elements, but the descriptor file {descriptor} has {n}")
    values = [_number(model, line, w, float, "coefficient") for line, words in lines[1:] for w in words]
    if len(values) != nelem * nparams:
        raise SnapFileError(f"{model}: {len(values)} coefficients, expected {nelem} × {nparams}")
    coeffs = [values[e * nparams:(e + 1) * nparams] for e in range(nelem)]
    K = desc.num_descriptors
    return Potential(desc, _head(desc, coeffs, nparams != 1 + K, model))


def _checked(potential: Potential) -> tuple[Bispectrum, LinearHead]:
    if not isinstance(potential.descriptor, Bispectrum) or type(potential.head) not in (LinearHead, QuadraticHead):
        raise ValueError("SNAP files hold a bispectrum descriptor with a linear or quadratic head; this potential "
                         f"has {type(potential.descriptor).__name__} + {type(potential.head).__name__}")
    return potential.descriptor, potential.head


def _flag_lines(s: dict[str, Any]) -> list[str]:
    lines = [f"rfac0 {s['rfac0']!r}", f"rmin0 {s['rmin0']!r}"]
    lines += [f"{k} {int(bool(s[k]))}" for k in ("switchflag", "bzeroflag", "chemflag", "bnormflag", "wselfallflag",
                                                 "switchinnerflag")]
    return lines


def write_snap(potential: Potential, prefix: str | Path) -> tuple[Path, Path]:
    """Write ``<prefix>.snapcoeff`` and ``<prefix>.snapparam`` for ``pair_style snap``."""
    descriptor, head = _checked(potential)
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    s = descriptor.settings()
    coeffs = head.coefficients().detach().cpu().tolist()
    out = [f"# mliap_torch SNAP coefficients ({type(head).__name__}, 2Jmax {s['twojmax']})",
           f"{len(s['elements'])} {len(coeffs[0])}"]
    for e, radius, weight, c in zip(s["elements"], s["radelem"], s["wj"], coeffs):
        out.append(f"{e} {radius!r} {weight!r}")
        out += [repr(float(v)) for v in c]
    coeff_path = prefix.with_name(prefix.name + ".snapcoeff")
    coeff_path.write_text("\n".join(out) + "\n")
    params = ["# mliap_torch SNAP parameters", f"rcutfac {s['rcutfac']!r}", f"twojmax {s['twojmax']}",
              f"quadraticflag {int(isinstance(head, QuadraticHead))}", *_flag_lines(s)]
    if s["switchinnerflag"]:
        params += ["sinner " + " ".join(repr(v) for v in s["sinner"]),
                   "dinner " + " ".join(repr(v) for v in s["dinner"])]
    param_path = prefix.with_name(prefix.name + ".snapparam")
    param_path.write_text("\n".join(params) + "\n")
    return coeff_path, param_path


def write_mliap(potential: Potential, prefix: str | Path) -> tuple[Path, Path]:
    """Write ``<prefix>.mliap.model`` and ``<prefix>.mliap.descriptor`` for ``pair_style mliap``."""
    descriptor, head = _checked(potential)
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    s = descriptor.settings()
    coeffs = head.coefficients().detach().cpu().tolist()
    out = [f"# mliap_torch {'quadratic' if isinstance(head, QuadraticHead) else 'linear'} model, "
           f"elements {' '.join(s['elements'])}", f"{len(coeffs)} {len(coeffs[0])}"]
    for c in coeffs:
        out += [repr(float(v)) for v in c]
    model_path = prefix.with_name(prefix.name + ".mliap.model")
    model_path.write_text("\n".join(out) + "\n")
    desc = ["# mliap_torch SNAP descriptor", f"rcutfac {s['rcutfac']!r}", f"twojmax {s['twojmax']}",
            f"nelems {len(s['elements'])}", "elems " + " ".join(s["elements"]),
            "radelems " + " ".join(repr(v) for v in s["radelem"]),
            "welems " + " ".join(repr(v) for v in s["wj"]), *_flag_lines(s)]
    if s["switchinnerflag"]:
        desc += ["sinnerelems " + " ".join(repr(v) for v in s["sinner"]),
                 "dinnerelems " + " ".join(repr(v) for v in s["dinner"])]
    descriptor_path = prefix.with_name(prefix.name + ".mliap.descriptor")
    descriptor_path.write_text("\n".join(desc) + "\n")
    return model_path, descriptor_path
