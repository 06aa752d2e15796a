"""Rendering a schema profile as an importable SQLModel stub (for export).

The stub is a starting point for a hand-edited schema: one field per column
with a Python type for its DuckDB type, optional statistics as comments, and
either a plain ``SQLModel`` class (abstract) or a mapped ``table=True`` class
with a primary key picked for review. Pure code: nothing here imports
sqlmodel.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Mapping, Sequence
from typing import Any

from consist.core.store.schema_fields import SYSTEM_COLUMNS, SchemaField, SchemaProfile

_INT_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "INT",
    "INT1",
    "INT2",
    "INT4",
    "INT8",
    "LONG",
    "SHORT",
}
_FLOAT_TYPES = {"FLOAT", "REAL", "DOUBLE", "FLOAT4", "FLOAT8"}
_STR_TYPES = {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "ENUM"}
_RESERVED_ATTRS = {"metadata", "registry"}


def _python_type(duckdb_type: str) -> tuple[str, dict[str, str], set[str]]:
    """``(annotation, extra Field kwargs as source, imports)`` for a DuckDB type."""
    kind = duckdb_type.strip().upper()
    if kind == "BOOLEAN" or kind == "BOOL":
        return "bool", {}, set()
    if kind in _INT_TYPES:
        return "int", {}, set()
    if kind in _FLOAT_TYPES:
        return "float", {}, set()
    match = re.fullmatch(r"(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", kind)
    if match:
        digits, places = match.groups()
        return (
            "decimal.Decimal",
            {"max_digits": digits, "decimal_places": places},
            {"import decimal"},
        )
    if kind in ("DECIMAL", "NUMERIC"):
        return "decimal.Decimal", {}, {"import decimal"}
    if kind in _STR_TYPES or kind.startswith("VARCHAR(") or kind.startswith("ENUM("):
        return "str", {}, set()
    if kind == "UUID":
        return "uuid.UUID", {}, {"import uuid"}
    if kind == "DATE":
        return "datetime.date", {}, {"import datetime"}
    if kind.startswith("TIMESTAMP") or kind == "DATETIME":
        return "datetime.datetime", {}, {"import datetime"}
    if kind.startswith("TIME"):
        return "datetime.time", {}, {"import datetime"}
    if kind == "INTERVAL":
        return "datetime.timedelta", {}, {"import datetime"}
    if kind in ("BLOB", "BYTEA", "VARBINARY", "BINARY"):
        return "bytes", {}, set()
    # JSON, lists, structs, maps, unions: a JSON column
    return "Any", {"sa_type": "sa.JSON"}, {"from typing import Any", "import sqlalchemy as sa"}


def _identifier(name: str, taken: set[str]) -> str:
    """A Python attribute name for column ``name`` (unique among ``taken``)."""
    ident = re.sub(r"\W", "_", name)
    ident = ident.lstrip("_")
    if not ident or ident[0].isdigit():
        ident = "col_" + ident
    if (
        keyword.iskeyword(ident)
        or ident in _RESERVED_ATTRS
        or ident.startswith("model_")
        or ident in {"sa", "datetime", "decimal", "uuid", "Any", "Field", "SQLModel"}
    ):
        ident += "_"
    base, n = ident, 2
    while ident in taken:
        ident = f"{base}_{n}"
        n += 1
    taken.add(ident)
    return ident


def class_name_for(table_name: str) -> str:
    """``"linkstats_2018"`` -> ``"Linkstats2018"`` (a valid class name)."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", table_name) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Table"
    if name[0].isdigit():
        name = "T" + name
    if keyword.iskeyword(name) or name in {"SQLModel", "Field", "Any"}:
        name += "_"
    return name


def _pystr(text: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def _comment_for(stats: Mapping[str, Any] | None, f: SchemaField, rows: str | None) -> str | None:
    parts = []
    if f.dtype:
        parts.append(f"dtype: {f.dtype}")
    if stats:
        if "null_count" in stats:
            nulls = f"nulls: {stats['null_count']}"
            if rows is not None:
                nulls += f" of {rows}"
            parts.append(nulls)
        if stats.get("min") is not None:
            parts.append(f"min: {stats['min']}")
        if stats.get("max") is not None:
            parts.append(f"max: {stats['max']}")
    if not parts:
        return None
    return "# " + "; ".join(parts)


def _pick_primary_key(fields: Sequence[SchemaField], table_name: str) -> str | None:
    """Primary key column of a mapped stub: declared, else ``id``, else ``*_id``, else first."""
    declared = [f.name for f in fields if f.primary_key]
    if declared:
        return None  # already marked on the fields
    names = [f.name for f in fields]
    for candidate in ("id", f"{table_name}_id"):
        if candidate in names:
            return candidate
    for name in names:
        if name.lower().endswith("_id"):
            return name
    return names[0] if names else None


def render_sqlmodel_stub(
    profile: SchemaProfile,
    *,
    table_name: str,
    class_name: str | None = None,
    abstract: bool = True,
    include_system_cols: bool = False,
    stats: Mapping[str, Mapping[str, Any]] | None = None,
    n_rows: int | None = None,
    sampled_rows: int | None = None,
    source: str | None = None,
    schema_id: str | None = None,
) -> str:
    """Python source of a SQLModel class for ``profile``.

    Parameters
    ----------
    profile:
        The layout to render.
    table_name:
        ``__tablename__`` of the class.
    class_name:
        Class name (default: CamelCase of ``table_name``).
    abstract:
        True: a plain ``SQLModel`` class (no table) to subclass with
        ``table=True`` or to pass as a schema. False: a mapped table class;
        its primary key is the declared one, else ``id``, ``<table>_id``, the
        first ``*_id`` column or the first column (marked for review).
    include_system_cols:
        Add the ``consist_*`` provenance columns.
    stats:
        Per-column statistics rendered as comments (None: no comments).
    n_rows, sampled_rows, source, schema_id:
        Shown in the module docstring and comments (null counts read
        ``of <n_rows>``, or ``of <sampled_rows> sampled``).

    Returns
    -------
    str
        Importable Python source.

    Raises
    ------
    ValueError
        If ``class_name`` is not a valid class name, or there is no column.
    """
    class_name = class_name or class_name_for(table_name)
    if not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise ValueError(f"class_name={class_name!r} is not a valid Python class name")
    fields = list(profile.fields)
    if include_system_cols:
        present = {f.name for f in fields}
        fields += [
            SchemaField(name=name, type=kind)
            for name, kind in SYSTEM_COLUMNS.items()
            if name not in present
        ]
    if not fields:
        raise ValueError("cannot render a SQLModel class without columns")
    pk_name = None if abstract else _pick_primary_key(fields, table_name)
    rows = (
        str(n_rows)
        if n_rows is not None
        else f"{sampled_rows} sampled"
        if sampled_rows is not None
        else None
    )
    imports: set[str] = set()
    taken: set[str] = set()
    body: list[str] = []
    for f in fields:
        annotation, kwargs, needed = _python_type(f.type)
        imports |= needed
        attr = _identifier(f.name, taken)
        is_pk = f.primary_key or (f.name == pk_name)
        args: list[str] = []
        required = not f.nullable
        if not required:
            args.append("default=None")
            if annotation != "Any":
                annotation = f"{annotation} | None"
        if is_pk:
            args.append("primary_key=True")
        for key, value in kwargs.items():
            args.append(f"{key}={value}")
        if attr != f.name:
            args.append(f"sa_column_kwargs={{{_pystr('name')}: {_pystr(f.name)}}}")
        comment = _comment_for((stats or {}).get(f.name), f, rows) if stats is not None else None
        if stats is None and f.dtype:
            comment = f"# dtype: {f.dtype}"
        if f.name == pk_name and not f.primary_key:
            comment = (comment + "; " if comment else "# ") + "TODO: review the primary key"
        if comment:
            body.append(f"    {comment}")
        if kwargs.get("sa_type"):
            body.append(f"    # duckdb type: {f.type}")
        body.append(f"    {attr}: {annotation} = Field({', '.join(args)})")

    header = ["SQLModel stub exported by consist (edit freely)."]
    header.append("")
    if schema_id:
        header.append(f"Schema: {schema_id}")
    details = []
    if source:
        details.append(f"Source: {source}")
    if n_rows is not None:
        details.append(f"rows: {n_rows}")
    elif sampled_rows is not None:
        details.append(f"rows sampled: {sampled_rows}")
    if details:
        header.append("; ".join(details))
    if len(header) > 2:
        header.append("")
    header.append("Add primary/foreign keys, indexes and constraints as needed, then register")
    header.append("the class with Tracker(schemas=[...]).")
    lines = ['"""' + header[0]]
    lines += header[1:]
    lines.append('"""')
    lines.append("")
    std = sorted(i for i in imports if i.startswith("import ") and "sqlalchemy" not in i)
    typing_imports = sorted(i for i in imports if i.startswith("from typing"))
    lines += std + typing_imports
    if std or typing_imports:
        lines.append("")
    if "import sqlalchemy as sa" in imports:
        lines.append("import sqlalchemy as sa")
    lines.append("from sqlmodel import Field, SQLModel")
    lines.append("")
    lines.append("")
    bases = "SQLModel" if abstract else "SQLModel, table=True"
    lines.append(f"class {class_name}({bases}):")
    doc = f"Columns of ``{table_name}``"
    if abstract:
        doc += " (no table: subclass with ``table=True`` to map one)"
    lines.append(f'    """{doc}."""')
    lines.append("")
    lines.append(f"    __tablename__ = {_pystr(table_name)}")
    lines.append("")
    lines += body
    return "\n".join(lines) + "\n"
