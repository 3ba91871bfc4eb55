"""Saving and loading potentials as plain settings + weights (never pickled code).

Each component's settings carry its registered ``type`` (:mod:`mliap_torch.registry`); loading a model
whose components come from a plugin needs the plugin imported first."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch

from ..descriptors.base import Descriptor
from ..errors import ModelFileError
from ..files import atomic_path
from ..registry import build
from ..safe_load import load_weights_only, refusal_reason
from ..uncertainty.active_set import ActiveSet
from .potential import Potential

FORMAT = "mliap_torch.potential"
FORMAT_VERSION = 1


@contextmanager
def float64_default():
    """Build modules with float64 as torch's default dtype (index and coupling tables stay exact)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def potential_from_settings(settings: dict[str, Any]) -> Potential:
    """Rebuild an (untrained) float64 :class:`Potential` from :meth:`Potential.settings`."""
    with float64_default():
        return _potential_from_settings(settings)


def _potential_from_settings(settings: dict[str, Any]) -> Potential:
    descriptor = cast(Descriptor, build("descriptor", settings["descriptor"]))
    head = build("head", settings["head"])
    reference = None if settings.get("reference") is None else build("reference potential", settings["reference"])
    potential = Potential(descriptor, head, reference)
    if settings.get("active_set") is not None:  # absent from files written before active sets, and without one
        potential.active_set = ActiveSet(**settings["active_set"])
    return potential


def save(potential: Potential, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``potential`` to ``path`` (``.pt``, atomically): settings and tensors only, loadable with ``weights_only``
    (its active set, when it has one, is a settings entry and buffers like any other component)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in potential.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": FORMAT_VERSION, "settings": potential.settings(),
                    "state_dict": state, "metadata": metadata or {}}, tmp)
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> Potential:
    """Load a potential written by :func:`save`. Executes no code from the file (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}")
    try:
        blob = load_weights_only(path, map_location)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a mliap_torch model file, or is not safe to load (it was read with "
                             f"weights_only=True, which refuses code): {refusal_reason(exc)}.") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a mliap_torch model file (format tag missing)")
    if blob.get("version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer mliap_torch (format {blob['version']})")
    try:
        potential = potential_from_settings(blob["settings"])
        potential.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: its settings or weights do not form a mliap_torch potential "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return potential.to(map_location)
