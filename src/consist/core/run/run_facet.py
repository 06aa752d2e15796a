"""The facet a run records: built from its arguments, validated, sized for the index.

``begin_run`` / ``start_run`` / ``run`` / ``trace`` take ``facet=`` (a dict
or a pydantic model) and ``facet_from=`` (config keys to copy); a config
object with a ``to_consist_facet()`` method supplies the facet when no
explicit one is given. :func:`build_run_facet` turns those into the plain
JSON payload the run stores, and decides whether the payload goes into the
typed key/value index (``run_config_kv``).

The payload is always kept whole (as JSON, in ``config_facet`` and the run's
snapshot). It is indexed only when it fits the index: at most
:data:`FACET_INDEX_MAX_KEYS` flattened keys and at most
:data:`FACET_INDEX_MAX_BYTES` bytes of JSON (each indexed key is one row per
run, written with the run). A larger facet is stored but not indexed, with a
warning, exactly like ``facet_index=False``: ``get_config_facet(s)`` returns
it, key/value queries do not see it. The limits can be raised with the
environment variables ``CONSIST_FACET_INDEX_MAX_KEYS`` and
``CONSIST_FACET_INDEX_MAX_BYTES``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consist.core.store.facet_rows import dumps_json
from consist.core.store.flatten import flatten

__all__ = [
    "FACET_INDEX_MAX_BYTES",
    "FACET_INDEX_MAX_KEYS",
    "RunFacet",
    "build_run_facet",
    "facet_index_limits",
]

FACET_INDEX_MAX_KEYS = 500
FACET_INDEX_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class RunFacet:
    """The facet of a run about to begin.

    Attributes
    ----------
    data:
        The JSON payload, or None when the run has no facet.
    schema_name:
        The pydantic class the payload came from, if any.
    indexed:
        Whether the payload goes into the key/value index (``facet_index``
        and it fits the index).
    """

    data: dict[str, Any] | None
    schema_name: str | None
    indexed: bool


def facet_index_limits() -> tuple[int, int]:
    """``(max flattened keys, max JSON bytes)`` of an indexed facet, right now.

    Raises
    ------
    ValueError
        If an environment variable overriding a limit is not a positive integer.
    """
    return (
        _env_limit("CONSIST_FACET_INDEX_MAX_KEYS", FACET_INDEX_MAX_KEYS),
        _env_limit("CONSIST_FACET_INDEX_MAX_BYTES", FACET_INDEX_MAX_BYTES),
    )


def build_run_facet(
    facet: Any,
    facet_from: Any,
    config: Mapping[str, Any],
    *,
    config_source: Any = None,
    facet_schema_version: Any = None,
    facet_index: Any = True,
) -> RunFacet:
    """Build and validate the facet of a run (writes nothing).

    Parameters
    ----------
    facet : dict | pydantic.BaseModel | None
        The explicit facet. None: the config's ``to_consist_facet()``, if
        it has one.
    facet_from : list[str] | None
        Config keys copied into the facet; explicit facet keys win.
    config : Mapping[str, Any]
        The run's validated config (plain data).
    config_source : Any
        The config as the user passed it (e.g. a pydantic model); its
        ``to_consist_facet()`` method, when callable, supplies the facet
        when ``facet`` is None.
    facet_schema_version : str | int | None
        Tag for the payload.
    facet_index : bool
        Whether to index the payload (when it fits).

    Returns
    -------
    RunFacet

    Raises
    ------
    TypeError
        If ``facet`` (or what ``to_consist_facet()`` returns) is not a dict
        or a pydantic model, a key is not a string, a value is not JSON data,
        ``facet_from`` is a bare string, ``facet_schema_version`` is not a
        str/int or ``facet_index`` is not a bool.
    ValueError
        If ``facet_from`` names a key that is not in ``config``.
    """
    if facet_schema_version is not None and not isinstance(facet_schema_version, str | int):
        raise TypeError("facet_schema_version must be a str, an int or None")
    if not isinstance(facet_index, bool):
        raise TypeError("facet_index must be True or False")
    where = "facet"
    if facet is None and config_source is not None:
        supplier = getattr(config_source, "to_consist_facet", None)
        if callable(supplier):
            facet = supplier()
            where = f"{type(config_source).__name__}.to_consist_facet()"
    schema_name = type(facet).__name__ if _is_model(facet) else None
    data: dict[str, Any] = {}
    if facet_from is not None:
        if isinstance(facet_from, str):
            raise TypeError(f"facet_from must be a list of config keys: use [{facet_from!r}]")
        for key in facet_from:
            if key not in config:
                raise ValueError(
                    f"facet_from names {key!r}, which is not a key of config "
                    f"(available: {sorted(config)[:20]})"
                )
            data[key] = config[key]
    if facet is not None:
        if _is_model(facet):
            facet = facet.model_dump(mode="json")
        if not isinstance(facet, Mapping):
            raise TypeError(
                f"{where} must be a dict or a pydantic model, got {type(facet).__name__}"
            )
        data.update(facet)
    if facet is None and facet_from is None:
        return RunFacet(data=None, schema_name=None, indexed=facet_index)
    payload = _plain(data, where)
    indexed = facet_index and _fits_index(payload, where)
    return RunFacet(data=payload, schema_name=schema_name, indexed=indexed)


# --------------------------------------------------------------------------- #
# internals
# --------------------------------------------------------------------------- #
def _is_model(value: Any) -> bool:
    return hasattr(value, "model_dump") and callable(value.model_dump)


def _env_limit(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be a positive integer")
    return value


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON data (numpy scalars and paths converted).

    Raises
    ------
    TypeError
        Naming the offending entry.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"{where} keys must be non-empty strings, got {key!r}")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return _plain(value.item(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(
        f"{where} is a {type(value).__name__}, which is not JSON data; pass plain "
        "str/int/float/bool/None values, lists or dicts of them"
    )


def _fits_index(payload: dict[str, Any], where: str) -> bool:
    """Whether the payload fits the key/value index; warn when it does not."""
    max_keys, max_bytes = facet_index_limits()
    n_keys = len(flatten(payload))
    size = len(dumps_json(payload).encode())
    if n_keys <= max_keys and size <= max_bytes:
        return True
    if n_keys > max_keys:
        why = f"{n_keys} flattened keys (the index takes {max_keys}; CONSIST_FACET_INDEX_MAX_KEYS)"
    else:
        why = f"{size} bytes as JSON (the index takes {max_bytes}; CONSIST_FACET_INDEX_MAX_BYTES)"
    warnings.warn(
        f"{where} has {why}: it is stored whole as JSON (get_config_facet) but left out of "
        "the key/value index, so get_config_values/find_runs_by_facet_kv will not see it. "
        "Keep facets to the few values you query by, or raise the limit.",
        UserWarning,
        stacklevel=_caller_stacklevel(),
    )
    return False


def _caller_stacklevel() -> int:
    """``stacklevel`` pointing a warning at the user's code.

    The first frame outside consist and ``contextlib`` (``start_run`` is a
    context manager).
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    skipped = (package, os.path.abspath(contextlib.__file__))
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skipped):
        frame = frame.f_back
        level += 1
    return level
