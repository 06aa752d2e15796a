"""Canonical, versioned serialisation of configuration for hashing.

Two configs that mean the same thing serialise to the same bytes: dict keys
are sorted, tuples become lists, sets are sorted, numpy scalars and arrays
become plain numbers and lists, paths become POSIX strings, pydantic models
are dumped. Anything else that cannot be represented truthfully raises
``TypeError`` (fail closed: never a ``repr`` with a memory address, never a
timestamp stand-in).

This module is also the one place that decides what a config may contain so
that the journal records exactly what ran (:func:`check_recordable`, called
by ``validate_config`` before anything is written):

* NaN, ``inf`` and ``-inf`` are recorded faithfully (the snapshot writes the
  JSON constants ``NaN`` / ``Infinity`` / ``-Infinity``) and hash distinctly.
* Nesting deeper than :data:`MAX_CONFIG_DEPTH` levels, and containers that
  contain themselves, are rejected with a ``ValueError`` naming the key path:
  the snapshot could not be read back (JSON parsers stop at ~200 levels).
* Values the snapshot cannot write (numpy integers and arrays, arbitrary
  objects) are rejected with a ``TypeError`` naming the key path.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import os
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

CANONICAL_VERSION = "consist-config-v1"

#: Deepest nesting of dicts and lists a config may have (the top-level dict
#: is level 1). Snapshots are read back by a JSON parser that stops at about
#: 200 levels; real configs rarely exceed 10.
MAX_CONFIG_DEPTH = 100


class CanonicalizationError(TypeError):
    """A config value has no faithful canonical form."""


class _Path:
    """Depth and cycle guard of one walk (the containers on the current path)."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open: list[int] = []

    def enter(self, node: Any, where: str, param: str) -> None:
        if id(node) in self.open:
            raise ValueError(
                f"{_shorten(where)} contains itself (a reference cycle); {param} must be "
                "a tree of dicts and lists: copy the shared part instead of referring to it"
            )
        if len(self.open) >= MAX_CONFIG_DEPTH:
            raise ValueError(
                f"{_shorten(where)} is nested more than {MAX_CONFIG_DEPTH} levels deep; the run's "
                f"snapshot could not be read back. Flatten {param} (e.g. join keys with '.') "
                "or pass the structure as a file via inputs"
            )
        self.open.append(id(node))

    def leave(self) -> None:
        self.open.pop()


def _shorten(where: str) -> str:
    """A key path cut to its first and last steps (a deep one runs to kilobytes)."""
    if len(where) <= 160:
        return where
    return f"{where[:70]}...{where[-70:]}"


def _root_param(where: str) -> str:
    return where.split("[", 1)[0] or "config"


def to_canonical(value: Any, where: str = "config") -> Any:
    """Convert ``value`` to plain JSON data in canonical form.

    Parameters
    ----------
    value:
        The config (or part of it).
    where:
        Location used in error messages, e.g. ``config['model']['seed']``.

    Raises
    ------
    CanonicalizationError
        If a value cannot be represented faithfully (with its location).
    ValueError
        If ``value`` contains itself or is nested more than
        :data:`MAX_CONFIG_DEPTH` levels deep.
    """
    return _canonical(value, where, _Path())


def _canonical(value: Any, where: str, path: _Path) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _canonical_float(value, where)
    if isinstance(value, Mapping):
        path.enter(value, where, _root_param(where))
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalizationError(
                    f"{where} has a non-string key {key!r}; config keys must be strings"
                )
            out[key] = _canonical(item, f"{where}[{key!r}]", path)
        path.leave()
        return {k: out[k] for k in sorted(out)}
    if isinstance(value, list | tuple):
        path.enter(value, where, _root_param(where))
        items = [_canonical(item, f"{where}[{i}]", path) for i, item in enumerate(value)]
        path.leave()
        return items
    if isinstance(value, set | frozenset):
        items = [_canonical(item, f"{where}{{...}}", path) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return _canonical(value.value, where, path)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return _canonical(value.model_dump(mode="json"), where, path)
    if _is_numpy(value) and hasattr(value, "tolist"):
        return _canonical(value.tolist(), where, path)
    raise CanonicalizationError(
        f"{where} has a value of type {type(value).__name__} that cannot be hashed "
        "faithfully; convert it to str/int/float/bool/list/dict (or a pydantic model)"
    )


def _canonical_float(value: float, where: str) -> Any:
    if math.isnan(value):
        return {"__float__": "nan"}
    if math.isinf(value):
        return {"__float__": "inf" if value > 0 else "-inf"}
    # 1 and 1.0 stay distinct: conflating them could produce a wrong hit for a
    # model that branches on the type, while keeping them apart only costs a miss.
    return float(value)


def canonical_bytes(value: Any, where: str = "config") -> bytes:
    """Versioned canonical pre-image of ``value`` (domain tag + compact JSON)."""
    data = to_canonical(value, where)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return CANONICAL_VERSION.encode() + b"\0" + text.encode()


def _is_numpy(value: Any) -> bool:
    module = type(value).__module__
    return module == "numpy" or module.startswith("numpy.")


# Leaves the journal snapshot writes as themselves (pydantic's JSON mode):
# Paths as POSIX strings, enums by value, dates in ISO form, UUIDs and
# Decimals as strings. numpy's float64 is a float; other numpy types are not.
_RECORDABLE_LEAVES = (
    str,
    int,
    float,
    PurePath,
    enum.Enum,
    _dt.datetime,
    _dt.date,
    _dt.time,
    uuid.UUID,
    Decimal,
)


def check_recordable(value: Any, where: str = "config", *, max_string: int | None = None) -> None:
    """Check that the journal can record ``value`` exactly as the step receives it.

    The one rule for configs (see the module docstring): NaN and infinities
    are recorded faithfully; cycles, nesting beyond :data:`MAX_CONFIG_DEPTH`
    and values the snapshot cannot write are refused. Runs before anything
    is written; the walk never recurses past the depth limit, so a
    self-referencing or 5,000-level config is a ``ValueError``, not a
    ``RecursionError``.

    Parameters
    ----------
    value:
        The config (a mapping) or part of it.
    where:
        The parameter name, used as the root of key paths in messages.
    max_string:
        Longest string value allowed (None: no limit).

    Raises
    ------
    TypeError
        For a non-string key or a value the snapshot cannot write (naming
        its key path and the conversion to use).
    ValueError
        For a cycle, nesting deeper than :data:`MAX_CONFIG_DEPTH`, or a
        string longer than ``max_string``.
    """
    _check(value, where, _Path(), max_string)


def _check(node: Any, where: str, path: _Path, max_string: int | None) -> None:
    if node is None or isinstance(node, bool):
        return
    if isinstance(node, Mapping):
        path.enter(node, where, _root_param(where))
        for key, item in node.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has a non-string key {key!r} ({type(key).__name__}); "
                    "config keys must be strings"
                )
            _check(item, f"{where}[{key!r}]", path, max_string)
        path.leave()
    elif isinstance(node, list | tuple | set | frozenset):
        path.enter(node, where, _root_param(where))
        for i, item in enumerate(node):
            _check(item, f"{where}[{i}]", path, max_string)
        path.leave()
    elif isinstance(node, str):
        if max_string is not None and len(node) > max_string:
            raise ValueError(
                f"{where} is a string of {len(node)} characters; the limit is {max_string} "
                "(raise it with CONSIST_MAX_CONFIG_VALUE_LENGTH, or pass a file via inputs)"
            )
    elif hasattr(node, "model_dump") and callable(node.model_dump):
        _check(node.model_dump(mode="json"), where, path, max_string)
    elif isinstance(node, enum.Enum):
        _check(node.value, where, path, max_string)
    elif _is_numpy(node) and not isinstance(node, float):  # numpy.float64 is a float
        raise TypeError(
            f"{where} is a numpy {type(node).__name__}, which the run's snapshot cannot "
            "record as it is; convert it with .item() (a scalar) or .tolist() (an array)"
        )
    elif not isinstance(node, _RECORDABLE_LEAVES):
        raise TypeError(
            f"{where} is a {type(node).__name__}, which the run's snapshot cannot record "
            "faithfully; convert it to str/int/float/bool/None, a list or a dict (or a "
            "pydantic model)"
        )
