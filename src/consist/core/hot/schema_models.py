"""SQLModel classes seen as columns: names, DuckDB types, nullability, keys.

Used to profile a user-provided schema (``"user_provided"`` source), to
project a hybrid view onto a model's columns, and to map view classes. Pure
code; ``sqlmodel`` is imported only when a class is checked.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import sys
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

from consist.core.store.schema_fields import (
    ProfileObservation,
    SchemaField,
    SchemaProfile,
    is_system_column,
)

_PY_TO_DUCKDB: tuple[tuple[type, str], ...] = (
    (bool, "BOOLEAN"),
    (int, "BIGINT"),
    (float, "DOUBLE"),
    (decimal.Decimal, "DECIMAL(18,3)"),
    (str, "VARCHAR"),
    (_dt.datetime, "TIMESTAMP"),
    (_dt.date, "DATE"),
    (_dt.time, "TIME"),
    (_dt.timedelta, "INTERVAL"),
    (bytes, "BLOB"),
    (uuid.UUID, "UUID"),
)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``(inner type, nullable)`` of ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        return annotation, nullable
    return annotation, False


def duckdb_type_for_annotation(annotation: Any) -> str:
    """DuckDB type of a Python annotation (VARCHAR when there is no exact match)."""
    inner, _ = _unwrap_optional(annotation)
    if isinstance(inner, type):
        for py, sql in _PY_TO_DUCKDB:
            if issubclass(inner, py):
                return sql
        if issubclass(inner, list | tuple | dict):
            return "JSON"
    origin = typing.get_origin(inner)
    if origin in (list, tuple, dict):
        return "JSON"
    return "VARCHAR"


class ModelColumn(NamedTuple):
    """One field of a SQLModel class as a column.

    Attributes
    ----------
    attr:
        The Python attribute (field) name.
    column:
        The column name (differs from ``attr`` with ``sa_column_kwargs={"name": ...}``).
    annotation:
        The field's annotation.
    nullable:
        ``X | None`` or not required (has a default).
    primary_key:
        Declared as (part of) the primary key.
    """

    attr: str
    column: str
    annotation: Any
    nullable: bool
    primary_key: bool


def mapped_columns(model: type) -> list[ModelColumn]:
    """The columns of a SQLModel (or pydantic) class, in field order.

    Parameters
    ----------
    model:
        A SQLModel class (a table class or a plain one).

    Returns
    -------
    list[ModelColumn]

    Raises
    ------
    TypeError
        If ``model`` has no pydantic ``model_fields``.
    """
    fields = getattr(model, "model_fields", None)
    if not isinstance(fields, Mapping):
        raise TypeError(f"expected a SQLModel class, got {model!r}")
    table = getattr(model, "__table__", None)
    out = []
    for name, info in fields.items():
        _, nullable = _unwrap_optional(info.annotation)
        pk = getattr(info, "primary_key", False) is True
        column_name = name
        if table is not None and name in table.c:
            column = table.c[name]
            column_name = column.name
            pk = pk or bool(column.primary_key)
        else:
            kwargs = getattr(info, "sa_column_kwargs", None)
            if isinstance(kwargs, Mapping) and isinstance(kwargs.get("name"), str):
                column_name = kwargs["name"]
        out.append(
            ModelColumn(name, column_name, info.annotation, nullable or not info.is_required(), pk)
        )
    return out


def model_columns(model: type) -> list[tuple[str, Any, bool, bool]]:
    """``(column name, annotation, nullable, primary key)`` of a SQLModel class.

    Raises
    ------
    TypeError
        If ``model`` is not a SQLModel (pydantic) class.
    """
    return [(c.column, c.annotation, c.nullable, c.primary_key) for c in mapped_columns(model)]


def is_sqlmodel_class(value: Any) -> bool:
    """Whether ``value`` is a SQLModel subclass (False when sqlmodel is not installed).

    Never imports sqlmodel (with SQLAlchemy, ~150 ms): a SQLModel class can
    only exist once sqlmodel has been imported by whoever defined it.
    """
    if not isinstance(value, type):
        return False
    module = sys.modules.get("sqlmodel")
    return module is not None and issubclass(value, module.SQLModel)


def profile_sqlmodel(model: type) -> ProfileObservation:
    """A ``"user_provided"`` observation of a SQLModel class's declared columns.

    Raises
    ------
    TypeError
        If ``model`` is not a SQLModel (pydantic) class.
    """
    fields = tuple(
        SchemaField(
            name=name,
            type=duckdb_type_for_annotation(annotation),
            nullable=nullable and not pk,
            primary_key=pk,
        )
        for name, annotation, nullable, pk in model_columns(model)
        if not is_system_column(name)
    )
    return ProfileObservation(profile=SchemaProfile(fields), source="user_provided")
