"""FitSNAP input files (``*.in``): configparser-like sections parsed into a typed dict.

Values are typed by content: ``0``/``1``-like integers → int, decimals → float, ``True``/``False`` → bool,
several numbers → list, anything else → str (``pair_style = hybrid/overlay zero 10.0 zbl 4.0 4.8``
stays a string). Special sections:

* ``[BISPECTRUM]``/``[ACE]`` ``type``: always a list of element symbols.
* ``[ESHIFT]``: ``{element: shift (eV)}``.
* ``[GROUPS]``: ``group_sections``/``group_types`` (lists), ``smartweights``, ``random_sampling``,
  ``random_seed`` and ``groups``: a list of :class:`~mliap_torch.data.groups.GroupSpec`, in table order.
* ``[PATH]`` ``dataPath``: also given as ``data_path``, an absolute path resolved as FitSNAP does
  (:func:`resolve_data_path`).
"""
from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from ..data.groups import GroupSpec
from ..data.readers._common import KNOWN_ELEMENTS, DataError, located

GROUP_SETTINGS = ("group_sections", "group_types", "smartweights", "random_sampling", "random_seed", "boltz")
_TYPES = {"str": str, "float": float, "int": int}


def _token(text: str) -> Any:
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def typed_value(text: str) -> Any:
    """A setting's value: a number, bool, list of numbers, or the string itself."""
    tokens = text.split()
    if not tokens:
        return ""
    values = [_token(t) for t in tokens]
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return values
    return text.strip()


def _groups(section: configparser.SectionProxy, path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in GROUP_SETTINGS:
        if key in section:
            out[key] = section[key].split() if key in ("group_sections", "group_types") else typed_value(section[key])
    columns = out.get("group_sections")
    types = out.get("group_types")
    if not columns or not types:
        raise located(path, "section GROUPS", "group_sections", "[GROUPS] needs 'group_sections' and 'group_types'")
    if len(columns) != len(types):
        raise located(path, "section GROUPS", "group_types", f"{len(types)} types for {len(columns)} group_sections")
    if columns[0] != "name":
        raise located(path, "section GROUPS", "group_sections", f"first column must be 'name', got {columns[0]!r}")
    unknown = sorted(set(types) - set(_TYPES))
    if unknown:
        raise located(path, "section GROUPS", "group_types", f"unknown type(s) {unknown}; known: {sorted(_TYPES)}")
    specs = []
    for name, raw in section.items():
        if name in GROUP_SETTINGS:
            continue
        fields = raw.split()
        if len(fields) != len(columns) - 1:
            raise located(path, "section GROUPS", name, f"has {len(fields)} values, expected {len(columns) - 1} "
                                                f"({' '.join(columns[1:])})")
        row: dict[str, Any] = {}
        for column, kind, text in zip(columns[1:], types[1:], fields):
            try:
                row[column] = _TYPES[kind](float(text)) if kind == "int" else _TYPES[kind](text)
            except ValueError:
                raise located(path, "section GROUPS", name, f"column {column!r}: {text!r} is not a {kind}") from None
        size_type = types[columns.index("training_size")] if "training_size" in columns else (
            types[columns.index("size")] if "size" in columns else "float")
        training = row.pop("training_size", None)
        size = row.pop("size", None)
        if training is not None and size is not None:
            raise located(path, "section GROUPS", name, "set either 'size' or 'training_size', not both")
        if training is None and size is None:
            raise located(path, "section GROUPS", name, "has no 'training_size' (or 'size') column")
        testing = row.pop("testing_size", None)
        if training is None:
            training = size
            if testing is None and size < 1:
                testing = 1.0 - size
        specs.append(GroupSpec(name=name, training_size=training, testing_size=testing or 0.0,
                               eweight=row.pop("eweight", 1.0), fweight=row.pop("fweight", 1.0),
                               vweight=row.pop("vweight", 1.0), fraction=size_type == "float", extra=row))
    out["groups"] = specs
    return out


def read_fitsnap_input(path: str | Path) -> dict[str, Any]:
    """Parse a FitSNAP ``.in`` file into ``{section: {key: typed value}}`` (module docstring).

    Keys keep their case (``dataPath``). Inline ``#`` comments are dropped. Errors name the file, the
    section (as the "configuration") and the key.
    """
    path = Path(path)
    text = path.read_text()
    if not text.strip():
        raise located(path, None, None, "file is empty")
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",), interpolation=None, strict=True,
                                       delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys' case: the documented override
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise DataError(f"{path}: not a valid FitSNAP input ({getattr(exc, 'message', exc)})") from None
    out: dict[str, Any] = {}
    for name in parser.sections():
        section = parser[name]
        if name == "GROUPS":
            out[name] = _groups(section, path)
        elif name == "ESHIFT":
            shifts = {}
            for element, value in section.items():
                if element not in KNOWN_ELEMENTS:
                    raise located(path, "section ESHIFT", element, "is not an element symbol")
                shift = typed_value(value)
                if not isinstance(shift, (int, float)) or isinstance(shift, bool):
                    raise located(path, "section ESHIFT", element, f"shift must be a number, got {value!r}")
                shifts[element] = float(shift)
            out[name] = shifts
        else:
            out[name] = {key: typed_value(value) for key, value in section.items()}
            if name in ("BISPECTRUM", "ACE") and "type" in out[name]:
                out[name]["type"] = str(section["type"]).split()
                unknown = [e for e in out[name]["type"] if e not in KNOWN_ELEMENTS]
                if unknown:
                    raise located(path, f"section {name}", "type", f"unknown element symbol(s) {unknown}")
    if "PATH" in out and "dataPath" in out["PATH"]:
        out["PATH"]["data_path"] = resolve_data_path(path, str(out["PATH"]["dataPath"]))
    return out


def resolve_data_path(input_file: str | Path, data_path: str) -> Path:
    """``[PATH] dataPath`` of ``input_file`` as an absolute path.

    FitSNAP (``fitsnap3lib/io/sections/path.py``) joins ``dataPath`` to the folder of the ``.in`` file,
    so an input runs the same from any working directory; so does this. Inputs written for FitSNAP
    versions that took ``dataPath`` from the working directory also run: when the path beside the
    input does not exist but the one relative to the working directory does, that one is used.
    Absolute paths are kept.
    """
    beside = (Path(input_file).parent / data_path).resolve()
    if not beside.exists() and Path(data_path).exists():
        return Path(data_path).resolve()
    return beside
