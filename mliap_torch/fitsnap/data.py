"""The data of a FitSNAP ``.in`` file: ``[GROUPS]`` under ``[PATH] dataPath``, ``[ESHIFT]``, weights and splits.

Energies are total energies (eV) with the ``[ESHIFT]`` per-atom shifts applied; each configuration
carries its group's ``eweight``/``fweight``/``vweight`` as ``energy_weight``/``force_weight``/
``stress_weight``. Groups come in ``[GROUPS]`` table order.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.configuration import Configuration
from ..data.groups import GroupSpec, apply_energy_shift, assign_group_weights, make_split
from ..data.readers._common import located
from ..data.readers.fitsnap_json import read_fitsnap_json
from ..errors import DataError
from .input import read_fitsnap_input


def read_fitsnap_data(input_path: str | Path, **options: Any) -> list[Configuration]:
    """The configurations a FitSNAP input trains on: its ``[GROUPS]`` (in table order) under ``dataPath``,
    with ``[ESHIFT]`` applied and each group's ``eweight``/``fweight``/``vweight`` as weights.

    ``options`` go to :func:`~mliap_torch.data.readers.read_fitsnap_json` (e.g. ``order=``).
    """
    settings = read_fitsnap_input(input_path)
    if "PATH" not in settings or "data_path" not in settings["PATH"]:
        raise DataError(f"{input_path} field 'dataPath': [PATH] dataPath is missing")
    specs = settings["GROUPS"]["groups"] if "GROUPS" in settings else None
    configs = _read_groups(settings, settings["PATH"]["data_path"], [s.name for s in specs] if specs else None,
                           **options)
    return assign_group_weights(configs, specs) if specs else configs


def _read_groups(settings: dict[str, Any], data_path: str | Path, groups: list[str] | None,
                 **options: Any) -> list[Configuration]:
    """The JSON data of ``groups`` (all groups: None) under ``data_path``, ``[ESHIFT]`` applied."""
    configs = read_fitsnap_json(data_path, groups=groups, **options)
    return apply_energy_shift(configs, settings["ESHIFT"]) if settings.get("ESHIFT") else configs


def read_fitsnap_split(settings: dict[str, Any], input_file: str | Path, data_order: str | Sequence[str] = "sorted",
                       data_path: str | Path | None = None) -> tuple[list[Configuration], list[Configuration], list[str]]:
    """``(train, test, group names)`` of a parsed FitSNAP input, split and weighted as FitSNAP does.

    Args:
        settings: ``read_fitsnap_input(input_file)``.
        input_file: the ``.in`` file (for messages, and ``JSON/`` beside it when ``[PATH]`` is absent).
        data_order: file order within groups (see :func:`mliap_torch.data.readers.read_fitsnap_json`).
        data_path: the folder of group folders, overriding ``[PATH] dataPath``.
    """
    groups = settings.get("GROUPS", {})
    specs = groups.get("groups", [])
    if not specs:
        raise ValueError(f"{input_file}: [GROUPS] lists no groups")
    names = [s.name for s in specs]
    if data_path is None:
        data_path = settings.get("PATH", {}).get("data_path", Path(input_file).parent / "JSON")
        if not Path(data_path).is_dir():
            raise located(input_file, "section PATH", "dataPath", f"the data folder {data_path} does not exist "
                          "(a relative dataPath is taken from the input file's folder, as FitSNAP does)")
    configs = _read_groups(settings, data_path, names, order=data_order)
    split = make_split(configs, specs, random_sampling=bool(groups.get("random_sampling", 0)),
                       seed=int(groups.get("random_seed", 0)), smartweights=bool(groups.get("smartweights", 0)))
    train, test = split.apply(configs)
    return train, test, names


def group_table(input_path: str | Path) -> tuple[list[GroupSpec], dict[str, bool]]:
    """The ``[GROUPS]`` table of a FitSNAP input (sizes and weights per group) and its sampling settings
    (``random_sampling``, ``smartweights``), as :func:`~mliap_torch.data.groups.make_split` takes them."""
    table = read_fitsnap_input(input_path).get("GROUPS")
    if not table:
        raise ValueError(f"{input_path}: no [GROUPS] section to take group weights from")
    return table["groups"], {"random_sampling": bool(table.get("random_sampling", 0)),
                             "smartweights": bool(table.get("smartweights", 0))}
