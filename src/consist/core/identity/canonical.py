"""Canonical, versioned serialisation of configuration for hashing.

Two configs that mean the same thing serialise to the same bytes: dict keys
are sorted, tuples become lists, sets are sorted, numpy scalars and arrays
become plain numbers and lists, paths become POSIX strings, pydantic models
are dumped. Anything else that cannot be represented truthfully raises
``TypeError`` (fail closed: never a ``repr`` with a memory address, never a
timestamp stand-in).
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


class CanonicalizationError(TypeError):
    """A config value has no faithful canonical form."""


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
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _canonical_float(value, where)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalizationError(
                    f"{where} has a non-string key {key!r}; config keys must be strings"
                )
            out[key] = to_canonical(item, f"{where}[{key!r}]")
        return {k: out[k] for k in sorted(out)}
    if isinstance(value, list | tuple):
        return [to_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [to_canonical(item, f"{where}{{...}}") for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return to_canonical(value.value, where)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return to_canonical(value.model_dump(mode="json"), where)
    module = type(value).__module__
    if (module == "numpy" or module.startswith("numpy.")) and hasattr(value, "tolist"):
        return to_canonical(value.tolist(), where)
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
