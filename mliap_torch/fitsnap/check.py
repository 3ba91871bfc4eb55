"""What ``mliap_torch fitsnap`` runs of a FitSNAP input: every section and key it honours, and the values.

FitSNAP itself rejects keys it does not know ("Found unmatched variable in … section of input");
:func:`check_settings` does the same for the subset that the exact fit reproduces, so that no
setting of an input is ignored without a word. Each error is a :class:`~mliap_torch.errors.DataError`
naming the file, the section and the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.readers._common import located
from .ace import ENUMERATION_KEYS, MODEL_KEYS

#: keys honoured per section; ``None``: the parser checks the keys (``[ESHIFT]``: element symbols;
#: ``[GROUPS]``: group rows and sampling settings); ``[REFERENCE]`` also takes ``pair_coeff*`` keys
SECTION_KEYS: dict[str, frozenset[str] | None] = {
    "BISPECTRUM": frozenset({"numTypes", "twojmax", "rcutfac", "rfac0", "rmin0", "wj", "radelem", "type",
                             "wselfallflag", "chemflag", "bzeroflag", "quadraticflag", "bnormflag", "switchflag"}),
    "ACE": frozenset(MODEL_KEYS + ENUMERATION_KEYS),
    "CALCULATOR": frozenset({"calculator", "energy", "force", "stress"}),
    "ESHIFT": None,
    "SOLVER": frozenset({"solver", "compute_testerrs", "detailed_errors"}),
    "RIDGE": frozenset({"alpha", "local_solver"}),
    "SCRAPER": frozenset({"scraper"}),
    "PATH": frozenset({"dataPath"}),
    "OUTFILE": frozenset({"metrics", "potential", "output_style", "metrics_style"}),
    "REFERENCE": frozenset({"units", "atom_style", "pair_style"}),
    "GROUPS": None,
    "EXTRAS": frozenset({"dump_descriptors", "dump_truth", "dump_weights", "dump_dataframe", "only_test"}),
    "MEMORY": frozenset({"override"}),
}

#: (section, key) → the values supported (compared as upper-case strings), with the default FitSNAP assumes
SUPPORTED_VALUES: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("SCRAPER", "scraper"): (("JSON",), "JSON"),
    ("OUTFILE", "metrics_style"): (("MD",), "MD"),
    ("REFERENCE", "units"): (("METAL",), "METAL"),
    ("REFERENCE", "atom_style"): (("ATOMIC",), "ATOMIC"),
    ("EXTRAS", "only_test"): (("0",), "0"),
}

#: calculator and output style of each descriptor section
DESCRIPTOR_STYLES = {"BISPECTRUM": ("LAMMPSSNAP", "SNAP"), "ACE": ("LAMMPSPACE", "PACE")}


def _value(settings: dict[str, Any], section: str, key: str, default: str) -> str:
    return str(settings.get(section, {}).get(key, default)).upper()


def _check_reference(path: Path, reference: dict[str, Any]) -> None:
    """``pair_style`` may only combine ``zero`` and ``zbl`` (the reference the fit subtracts)."""
    style = str(reference.get("pair_style", "zero"))
    words = [w for w in style.split() if w not in ("hybrid/overlay", "hybrid")]
    others = [w for w in words if not _is_number(w) and w not in ("zero", "zbl")]
    if others:
        raise located(path, "section REFERENCE", "pair_style",
                      f"{style!r}: only 'zero' and 'zbl inner outer' reference terms are supported, not {others}")


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def check_settings(settings: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`~mliap_torch.errors.DataError` for any section, key or value of a parsed FitSNAP
    input (``read_fitsnap_input(path)``) that the exact fit does not reproduce."""
    path = Path(path)
    for section, values in settings.items():
        if section not in SECTION_KEYS:
            raise located(path, f"section {section}", None,
                          f"unknown or unsupported section; supported: {', '.join(SECTION_KEYS)}")
        known = SECTION_KEYS[section]
        if known is None:
            continue
        unknown = sorted(k for k in values if k not in known and k != "data_path"
                         and not (section == "REFERENCE" and k.startswith("pair_coeff")))
        if unknown:
            raise located(path, f"section {section}", unknown[0],
                          f"unknown or unsupported key; supported keys of [{section}]: {', '.join(sorted(known))}")
    for (section, key), (allowed, default) in SUPPORTED_VALUES.items():
        value = _value(settings, section, key, default)
        if value not in allowed:
            raise located(path, f"section {section}", key, f"{value!r} is not supported (supported: {', '.join(allowed)})")
    groups = settings.get("GROUPS", {})
    if float(groups.get("boltz", 0)) != 0:
        raise located(path, "section GROUPS", "boltz", "Boltzmann weighting of energies is not supported (use 0)")
    for spec in groups.get("groups", []):
        if spec.extra:
            raise located(path, "section GROUPS", "group_sections", f"column(s) {sorted(spec.extra)} are not "
                          "supported (name, training_size or size, testing_size, eweight, fweight, vweight)")
    descriptor = next((s for s in DESCRIPTOR_STYLES if s in settings), None)
    if descriptor is not None:
        calculator, output = DESCRIPTOR_STYLES[descriptor]
        for section, key, expected, default in (("CALCULATOR", "calculator", calculator, calculator),
                                                 ("OUTFILE", "output_style", output, "SNAP")):
            value = _value(settings, section, key, default)
            if value != expected:
                raise located(path, f"section {section}", key,
                              f"{value!r} does not go with the [{descriptor}] section (expected {expected})")
    _check_reference(path, settings.get("REFERENCE", {}))
