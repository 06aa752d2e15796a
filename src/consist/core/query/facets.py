"""Comparing and selecting config facets: typed diffs and ``keys=`` arguments.

The facet records and their value typing live in
:mod:`consist.core.store.facet_rows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from consist.core.store.facet_rows import dumps_json, typed_value

__all__ = ["diff_values", "unique_keys"]


def _comparable(value: Any) -> tuple[str, str]:
    """A type-aware comparison key: ``1``, ``1.0`` and ``True`` all differ."""
    typed = typed_value(value)
    if typed.value_type == "num" and typed.value_json is None:
        return ("num", repr(typed.value_num))  # nan / inf
    text = typed.value_json if typed.value_json is not None else dumps_json(value)
    return (typed.value_type, text)


def diff_values(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    include_equal: bool = False,
) -> dict[str, dict[str, Any]]:
    """Compare two flattened facets key by key.

    Returns
    -------
    dict
        ``{key: {"a": value_or_None, "b": value_or_None, "status": status}}``
        sorted by key, where ``status`` is ``"changed"``, ``"added"`` (only in
        ``b``), ``"removed"`` (only in ``a``) or, with ``include_equal``,
        ``"equal"``. Values compare with their type: ``1``, ``1.0`` and
        ``True`` are three different values.
    """
    changes: dict[str, dict[str, Any]] = {}
    for key in sorted(set(a) | set(b)):
        in_a, in_b = key in a, key in b
        if in_a and in_b:
            status = "equal" if _comparable(a[key]) == _comparable(b[key]) else "changed"
        else:
            status = "removed" if in_a else "added"
        if status == "equal" and not include_equal:
            continue
        changes[key] = {"a": a.get(key), "b": b.get(key), "status": status}
    return changes


def unique_keys(keys: Iterable[str] | None, param: str = "keys") -> list[str] | None:
    """Validate a ``keys=`` argument: an iterable of strings (not one bare string)."""
    if keys is None:
        return None
    if isinstance(keys, str):
        raise TypeError(f"{param} must be a list of flattened keys: use {param}=[{keys!r}]")
    out: list[str] = []
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"{param} must contain strings, got {key!r}")
        if key not in out:
            out.append(key)
    return out
