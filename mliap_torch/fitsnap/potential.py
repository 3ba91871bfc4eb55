"""The potential a FitSNAP ``.in`` file describes: descriptor, linear/quadratic head and ZBL reference.

``[BISPECTRUM]`` becomes a :class:`~mliap_torch.descriptors.bispectrum.Bispectrum` (SNAP; a
:class:`~mliap_torch.models.heads.QuadraticHead` with ``quadraticflag = 1``), ``[ACE]`` an
:class:`~mliap_torch.descriptors.ace.ACE` (:func:`~mliap_torch.fitsnap.ace.ace_from_fitsnap`), and the
``zbl inner outer`` term of ``[REFERENCE]`` a :class:`~mliap_torch.models.zbl.ZBL` (cutoffs in Å).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..descriptors.base import Descriptor
from ..models.heads import LinearHead, QuadraticHead
from ..models.potential import Potential
from ..models.zbl import ZBL

if TYPE_CHECKING:
    from ..descriptors.bispectrum import Bispectrum


def _per_element(value: Any, n: int, name: str, source: str) -> list[float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1 and n > 1:
        values = list(values) * n
    if len(values) != n:
        raise ValueError(f"{source}: [BISPECTRUM] {name} has {len(values)} values for {n} elements")
    return [float(v) for v in values]


def zbl_from_fitsnap_reference(reference: dict[str, Any], elements: Sequence[str], source: str = "<input>") -> ZBL | None:
    """The ZBL term of a FitSNAP ``[REFERENCE]`` section (``pair_style ... zbl inner outer`` + ``pair_coeff``).

    Supports ``hybrid/overlay zero R zbl inner outer`` and plain ``zbl inner outer``; the nuclear
    charges come from the ``i i zbl Z Z`` (or ``* * zbl Z Z``) pair_coeff lines; mixed pairs
    must use the elements' own charges. Returns None when there is no ZBL term.
    """
    style = str(reference.get("pair_style", ""))
    m = re.search(r"\bzbl\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)", style)
    if m is None:
        return None
    inner, outer = float(m.group(1)), float(m.group(2))
    n = len(elements)
    z: list[float | None] = [None] * n
    pairs: list[tuple[int, int, float, float]] = []
    for key, line in reference.items():
        if not key.startswith("pair_coeff"):
            continue
        words = str(line).split()
        if len(words) < 3 or "zbl" not in words:
            continue
        k = words.index("zbl")
        try:
            zi, zj = float(words[k + 1]), float(words[k + 2])
        except (IndexError, ValueError):
            raise ValueError(f"{source}: [REFERENCE] {key} = {line!r}: expected 'i j zbl Zi Zj'") from None
        ti = range(n) if words[0] == "*" else [int(words[0]) - 1]
        tj = range(n) if words[1] == "*" else [int(words[1]) - 1]
        for a in ti:
            for b in tj:
                pairs.append((a, b, zi, zj))
                if a == b:
                    z[a] = zi
    if any(v is None for v in z):
        raise ValueError(f"{source}: [REFERENCE] has no 'i i zbl Z Z' pair_coeff for element(s) "
                         f"{[e for e, v in zip(elements, z) if v is None]}")
    for a, b, zi, zj in pairs:
        if (zi, zj) != (z[a], z[b]):
            raise ValueError(f"{source}: [REFERENCE] pair {elements[a]}-{elements[b]} uses Z = {zi}, {zj}, "
                             f"not the elements' own {z[a]}, {z[b]}")
    return ZBL(list(elements), [float(v) for v in z if v is not None], inner, outer)  # none is None (checked above)


def fitsnap_potential(settings: dict[str, Any], source: str = "<input>") -> Potential:
    """Potential of a parsed FitSNAP input: ``[BISPECTRUM]`` (SNAP, linear or quadratic) or ``[ACE]``
    (linear ACE, :func:`~mliap_torch.fitsnap.ace.ace_from_fitsnap`), plus ``[REFERENCE]``."""
    if "BISPECTRUM" in settings and "ACE" in settings:
        raise ValueError(f"{source}: both [BISPECTRUM] and [ACE] sections; give one descriptor")
    descriptor: Descriptor
    if "ACE" in settings:
        from .ace import ace_from_fitsnap

        descriptor = ace_from_fitsnap(settings["ACE"], source)
        elements = list(descriptor.elements)
        head = LinearHead(len(elements), descriptor.num_descriptors)
    elif "BISPECTRUM" in settings:
        descriptor = _bispectrum_from_fitsnap(settings["BISPECTRUM"], source)
        elements = list(descriptor.elements)
        head_cls = QuadraticHead if bool(settings["BISPECTRUM"].get("quadraticflag", 0)) else LinearHead
        head = head_cls(len(elements), descriptor.num_descriptors)
    else:
        raise ValueError(f"{source}: no [BISPECTRUM] or [ACE] section (only SNAP and ACE inputs are supported)")
    reference = zbl_from_fitsnap_reference(settings.get("REFERENCE", {}), elements, source)
    return Potential(descriptor, head, reference)


def _bispectrum_from_fitsnap(bs: dict[str, Any], source: str) -> Bispectrum:
    """The :class:`~mliap_torch.descriptors.bispectrum.Bispectrum` of a ``[BISPECTRUM]`` section."""
    from ..descriptors.bispectrum import Bispectrum

    elements = list(bs["type"])
    n = len(elements)
    twojmax = bs["twojmax"]
    twojmax = max(twojmax) if isinstance(twojmax, (list, tuple)) else twojmax
    return Bispectrum(elements, int(twojmax), float(bs["rcutfac"]), _per_element(bs["radelem"], n, "radelem", source),
                      _per_element(bs.get("wj", 1.0), n, "wj", source), rfac0=float(bs.get("rfac0", 0.99363)),
                      rmin0=float(bs.get("rmin0", 0.0)), switchflag=bool(bs.get("switchflag", 1)),
                      bzeroflag=bool(bs.get("bzeroflag", 1)), bnormflag=bool(bs.get("bnormflag", 0)),
                      wselfallflag=bool(bs.get("wselfallflag", 0)), chemflag=bool(bs.get("chemflag", 0)))


