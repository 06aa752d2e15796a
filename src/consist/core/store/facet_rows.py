"""Config facets as rows: content ids and flattening to typed key/value rows.

A *facet* is a small, queryable summary of a run's (or an artifact's)
configuration. This module is pure: it computes the facet's content id,
flattens a facet to dotted keys (a literal dot inside a key is escaped as
``\\.``) with a typed value each, turns stored rows back into Python values.
Comparing facets lives in :mod:`consist.core.query.facets`. The SQL lives in
:mod:`consist.core.store.facet_store`.

Value typing (the ``value_type`` column of a key/value row):

========  ============================  =========================================
type      Python value                  stored in
========  ============================  =========================================
``str``   ``str``                       ``value_str``
``num``   ``int`` / ``float``           ``value_num`` (DOUBLE) and the exact JSON
                                        literal in ``value_json`` (so ``1`` and
                                        ``1.0`` and big ints survive the trip)
``bool``  ``bool``                      ``value_bool`` (never ``value_num``)
``null``  ``None``                      nothing
``json``  list, or an empty dict        ``value_json`` (JSON text)
========  ============================  =========================================
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from consist.core.identity.canonical import canonical_bytes
from consist.core.identity.hashing import hash_bytes
from consist.core.store.flatten import flatten

__all__ = [
    "FACET_ID_DOMAIN",
    "VALUE_TYPES",
    "ArtifactKV",
    "ConfigFacet",
    "ConfigKV",
    "TypedValue",
    "decode_value",
    "dumps_json",
    "facet_id",
    "flatten_facet",
    "loads_json",
    "typed_value",
]

VALUE_TYPES = ("str", "num", "bool", "null", "json")

# Domain tag of the facet-id pre-image: bump it (never reuse it) if the
# pre-image ever changes, so old and new ids cannot collide.
FACET_ID_DOMAIN = b"consist-facet/1\0"


class ConfigFacet(BaseModel):
    """One persisted facet payload (deduplicated by content).

    Attributes
    ----------
    id:
        ``blake3:<hex>`` digest of the namespace, schema name, schema version
        and the canonical JSON of ``facet`` (see :func:`facet_id`).
    namespace:
        The model name of the run: of the run itself for run facets, of the
        run that produced (first logged) the artifact for artifact facets.
    schema_name, schema_version:
        Optional schema tags (the version is stored as text).
    facet:
        The facet payload (nested, as given).
    created_at:
        When the payload was first recorded (its first run's start time).
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    namespace: str
    schema_name: str | None = None
    schema_version: str | None = None
    facet: dict[str, Any]
    created_at: datetime | None = None


class _KVRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facet_id: str
    namespace: str
    key: str
    value_type: str
    value_str: str | None = None
    value_num: float | None = None
    value_bool: bool | None = None
    value_json: str | None = None

    @property
    def value(self) -> Any:
        """The typed Python value of this row."""
        return decode_value(
            self.value_type, self.value_str, self.value_num, self.value_bool, self.value_json
        )


class ConfigKV(_KVRow):
    """One flattened facet entry of a run (a row of ``run_config_kv``).

    Attributes
    ----------
    run_id, facet_id, namespace:
        The run, its facet payload and the facet namespace.
    key:
        Flattened dotted key (a literal dot in a key segment is ``\\.``).
    value_type:
        One of ``"str"``, ``"num"``, ``"bool"``, ``"null"``, ``"json"``.
    value_str, value_num, value_bool, value_json:
        The typed value columns (see the module docstring); ``value`` gives
        the Python value back.
    """

    run_id: str


class ArtifactKV(_KVRow):
    """One flattened scalar facet entry of an artifact (a row of ``artifact_kv``)."""

    artifact_id: uuid.UUID


class TypedValue(NamedTuple):
    """A value split into the typed columns of a key/value row."""

    value_type: str
    value_str: str | None
    value_num: float | None
    value_bool: bool | None
    value_json: str | None


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, Mapping):
        return {str(k): _encode_non_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode_non_finite(v) for v in value]
    return value


def _decode_non_finite(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and obj.get("__float__") in _NON_FINITE:
        return _NON_FINITE[obj["__float__"]]
    return obj


def dumps_json(value: Any) -> str:
    """Strict JSON text (sorted keys) for a JSON column.

    NaN and infinities, which JSON cannot hold, are written as
    ``{"__float__": "nan" | "inf" | "-inf"}`` (as in the canonical config
    form) and turned back into floats by :func:`loads_json`.
    """
    return json.dumps(
        _encode_non_finite(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )


def loads_json(text: str) -> Any:
    """Inverse of :func:`dumps_json`."""
    return json.loads(text, object_hook=_decode_non_finite)


_json_text = dumps_json


def typed_value(value: Any) -> TypedValue:
    """Split ``value`` into ``(value_type, value_str, value_num, value_bool, value_json)``.

    ``bool`` is checked before numbers, so ``True`` is never stored as ``1``.
    Lists and dicts (only empty dicts reach here after flattening) are
    ``"json"``; anything else that is not a JSON scalar is stored as JSON
    text of its ``str`` (facets are validated as JSON data before this).
    """
    if value is None:
        return TypedValue("null", None, None, None, None)
    if isinstance(value, bool):
        return TypedValue("bool", None, None, value, None)
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond DOUBLE: the JSON literal keeps it exact
            number = math.copysign(math.inf, value)
        finite = not (isinstance(value, float) and not math.isfinite(value))
        return TypedValue("num", None, number, None, _json_text(value) if finite else None)
    if isinstance(value, str):
        return TypedValue("str", value, None, None, None)
    if isinstance(value, list | tuple | Mapping):
        return TypedValue("json", None, None, None, _json_text(value))
    return TypedValue("json", None, None, None, _json_text(str(value)))


def decode_value(
    value_type: str,
    value_str: str | None,
    value_num: float | None,
    value_bool: bool | None,
    value_json: str | None,
) -> Any:
    """The Python value of a stored key/value row (inverse of :func:`typed_value`)."""
    if value_type == "str":
        return value_str
    if value_type == "num":
        if value_json is None or value_num is None:
            return value_num  # nan / inf
        if any(c in value_json for c in ".eE"):
            return value_num  # a float: the DOUBLE is exactly it
        return int(value_json)  # an int, exact even beyond 2**53
    if value_type == "bool":
        return None if value_bool is None else bool(value_bool)
    if value_type == "json":
        return None if value_json is None else loads_json(value_json)
    return None


def facet_id(
    namespace: str,
    facet: Mapping[str, Any],
    *,
    schema_name: str | None = None,
    schema_version: str | int | None = None,
) -> str:
    """Content id of a facet payload: ``blake3:<hex>``.

    The pre-image is a domain tag followed by the canonical JSON
    (:func:`~consist.core.identity.canonical.canonical_bytes`) of the
    namespace, schema name, schema version (as text) and the payload, so two
    runs with the same facet in the same namespace share one stored payload.

    Raises
    ------
    TypeError
        If the payload has no faithful canonical form.
    """
    pre_image = {
        "namespace": namespace,
        "schema_name": schema_name,
        "schema_version": None if schema_version is None else str(schema_version),
        "facet": dict(facet),
    }
    return hash_bytes(FACET_ID_DOMAIN + canonical_bytes(pre_image, where="facet"))


def flatten_facet(
    facet: Mapping[str, Any], *, scalars_only: bool = False
) -> list[tuple[str, TypedValue]]:
    """Flatten ``facet`` to ``[(dotted key, TypedValue)]``, sorted by key.

    Nested dicts become dotted keys (a literal dot in a key is escaped as
    ``\\.``), lists and empty dicts are ``"json"`` leaves. With
    ``scalars_only`` the ``"json"`` leaves are left out (artifact facets
    index scalar fields only).
    """
    rows = []
    for key, value in flatten(facet).items():
        typed = typed_value(value)
        if scalars_only and typed.value_type == "json":
            continue
        rows.append((key, typed))
    rows.sort(key=lambda item: item[0])
    return rows
