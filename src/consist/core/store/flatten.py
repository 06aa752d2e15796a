"""Flattening nested mappings to dotted keys (used by miss explanations and facets)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def escape_key(key: str) -> str:
    """Escape a literal dot in one key segment as ``\\.``."""
    return str(key).replace(".", "\\.")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to ``a.b.c`` keys; leaves (incl. lists) are kept as values.

    A literal dot inside a key is escaped as ``\\.`` so the flat key can be
    split back unambiguously. An empty nested dict is kept as a ``{}`` leaf.
    """
    if not isinstance(value, Mapping):
        return {prefix: value} if prefix else {}
    if not value:
        return {prefix: {}} if prefix else {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = escape_key(key)
        out.update(flatten(item, f"{prefix}.{name}" if prefix else name))
    return out
