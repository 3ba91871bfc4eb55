"""Range checks of configuration values that raise one-paragraph :class:`~mliap_torch.errors.ConfigError` s
(used by the CLI schema and by the components' ``check_config``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ConfigError


def at_least(key: str, value: Any, minimum: float, *, strict: bool = False, optional: bool = False) -> None:
    """ConfigError unless ``value`` ≥ ``minimum`` (> with ``strict``); ``None`` passes when ``optional``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"Configuration error: '{key}' is {value!r}; it must be a number.")
    if value < minimum or (strict and value == minimum):
        bound = f"greater than {minimum}" if strict else f"at least {minimum}"
        raise ConfigError(f"Configuration error: '{key}' is {value}; it must be {bound}.")


def per_element_values(value: Any) -> list[Any]:
    """A per-element setting (one number for all elements, or a list) as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def per_element(value: Any, elements: Sequence[str], key: str) -> list[float]:
    """``descriptor.<key>`` as one float per element: one number for all ``elements``, or a list with one per
    element (ValueError naming the key otherwise)."""
    if isinstance(value, (int, float)):
        return [float(value)] * len(elements)
    values = [float(v) for v in value]
    if len(values) != len(elements):
        raise ValueError(f"descriptor.{key} has {len(values)} values for {len(elements)} elements {list(elements)}")
    return values
