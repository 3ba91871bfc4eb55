"""The one registry of components by the ``type`` name their settings carry: descriptors, heads and
reference potentials.

A component registers itself with one line, a class decorator::

    @register_descriptor("gaussians")
    class Gaussians(Descriptor): ...

The decorator sets the class's ``type_name`` (the ``type`` written into settings and model files).
Everything that turns a name into a class — the CLI schema, :func:`mliap_torch.models.io.load`, the
training setup, the exports — asks this module. The builtin components live in
:data:`BUILTIN_MODULES`, imported on the first lookup (so this module imports none of them and
they can import it); components of other packages register when their module is imported, e.g.
through the training config's ``plugins`` list (:func:`import_plugins`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T", bound=type)

BUILTIN_MODULES = (
    "mliap_torch.descriptors.bispectrum",
    "mliap_torch.descriptors.ace",
    "mliap_torch.descriptors.so3",
    "mliap_torch.descriptors.concatenated",
    "mliap_torch.models.heads",
    "mliap_torch.models.embedding",
    "mliap_torch.models.zbl",
    "mliap_torch.models.pace_core",
)
"""Modules whose classes register the builtin components."""

KINDS = ("descriptor", "head", "reference potential")
_TABLES: dict[str, dict[str, type[Any]]] = {kind: {} for kind in KINDS}
_builtins_loaded = False


def _register(kind: str, name: str) -> Callable[[T], T]:
    def decorate(cls: T) -> T:
        known = _TABLES[kind].get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"{kind} type {name!r} is already registered to {known.__module__}.{known.__qualname__}")
        cls.type_name = name  # type: ignore[attr-defined]  # the settings' "type" of every registered class
        _TABLES[kind][name] = cls
        return cls

    return decorate


def register_descriptor(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`~mliap_torch.descriptors.base.Descriptor` as ``name``."""
    return _register("descriptor", name)


def register_head(name: str) -> Callable[[T], T]:
    """Class decorator: register a head (``forward(B, species) -> E_i`` and ``settings()``) as ``name``."""
    return _register("head", name)


def register_reference(name: str) -> Callable[[T], T]:
    """Class decorator: register a reference pair potential (e.g. ZBL) as ``name``."""
    return _register("reference potential", name)


def _table(kind: str) -> dict[str, type[Any]]:
    global _builtins_loaded
    if not _builtins_loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True
    return _TABLES[kind]


def names(kind: str) -> list[str]:
    """Sorted registered names of one ``kind`` (``descriptor``, ``head`` or ``reference potential``)."""
    return sorted(_table(kind))


def lookup(kind: str, name: str) -> type[Any]:
    """The class registered as ``name``; ValueError listing the known names otherwise."""
    table = _table(kind)
    if name not in table:
        raise ValueError(f"unknown {kind} type {name!r}; known: {sorted(table)}")
    return table[name]


def descriptor_class(name: str) -> type[Any]:
    """The descriptor class registered as ``name``."""
    return lookup("descriptor", name)


def head_class(name: str) -> type[Any]:
    """The head class registered as ``name``."""
    return lookup("head", name)


def reference_class(name: str) -> type[Any]:
    """The reference potential class registered as ``name``."""
    return lookup("reference potential", name)


def build(kind: str, settings: dict[str, Any]) -> Any:
    """``cls(**rest)`` for settings ``{"type": name, **rest}`` (as the components' ``settings()`` give)."""
    rest = dict(settings)
    return lookup(kind, rest.pop("type"))(**rest)


def import_plugins(modules: Iterable[str]) -> None:
    """Import ``modules`` (dotted names) so that the components they define register themselves;
    ConfigError naming the module if one cannot be imported."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"Configuration error: 'plugins' names {module!r}, which cannot be imported "
                              f"({exc}); put its folder on PYTHONPATH or install it.") from None
