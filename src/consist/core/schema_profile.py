"""Schema profiles: the column layout of a table, deduplicated by digest.

A *schema profile* is the ordered list of a table's fields (name, DuckDB
type, nullability, and for files the pandas dtype recorded in the file). Its
id is a digest of that canonical list, so every artifact with the same layout
shares one stored profile. What was observed in one particular artifact (row
count, per-column null counts, min and max) is kept beside the link between
the artifact and the profile, not in the profile.

Profiles come from three sources:

``"file"``
    A parquet, csv or json file read in place (:func:`profile_file`). Parquet
    types, row counts and statistics come from the file footer (no row is
    read); csv/json types come from DuckDB's sniffer over at most
    ``sample_rows`` rows and statistics from the same sample.
``"duckdb"``
    An ingested table in the store (built by
    :meth:`consist.core.store.schema_store.SchemaStore.profile_table` with
    :func:`profile_from_columns`).
``"user_provided"``
    A SQLModel class given by the user (:func:`profile_sqlmodel`).

This module also renders a profile as an importable SQLModel stub
(:func:`render_sqlmodel_stub`). Reading files uses a private in-memory DuckDB
connection, never the store's.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import keyword
import os
import re
import types
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consist.core.identity.canonical import canonical_bytes
from consist.core.identity.hashing import hash_bytes

__all__ = [
    "DEFAULT_SAMPLE_ROWS",
    "PROFILE_DRIVERS",
    "SCHEMA_ID_DOMAIN",
    "SCHEMA_SOURCES",
    "SYSTEM_COLUMNS",
    "ProfileObservation",
    "SchemaField",
    "SchemaProfile",
    "is_system_column",
    "profile_file",
    "profile_from_columns",
    "profile_sqlmodel",
    "render_sqlmodel_stub",
    "schema_digest",
    "stats_sql",
    "validate_profile_mode",
    "validate_sample_rows",
]

# Bump (never reuse) if the pre-image of a schema id ever changes.
SCHEMA_ID_DOMAIN = b"consist-schema/1\0"

SCHEMA_SOURCES = ("file", "duckdb", "user_provided")
PROFILE_DRIVERS = ("parquet", "csv", "json")
DEFAULT_SAMPLE_ROWS = 10_000

# The provenance columns every hybrid view row carries, with their types (ingested
# rows may carry more ``consist_*`` columns, e.g. ``consist_ingested_at``).
SYSTEM_COLUMNS: dict[str, str] = {
    "consist_run_id": "VARCHAR",
    "consist_artifact_id": "VARCHAR",
    "consist_year": "INTEGER",
    "consist_iteration": "INTEGER",
}

_MAX_STAT_TEXT = 60


def is_system_column(name: str) -> bool:
    """Provenance (``consist_*``, e.g. ``consist_ingested_at``) or loader (``_dlt_*``) column."""
    return name.startswith(("consist_", "_dlt_"))


# --------------------------------------------------------------------------- #
# Records
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class SchemaField:
    """One column of a schema profile.

    Attributes
    ----------
    name:
        Column name as stored (may not be a Python identifier).
    type:
        DuckDB logical type (``BIGINT``, ``VARCHAR``, ``TIMESTAMP``, ...).
    nullable:
        Whether the source declares the column nullable (csv columns and
        DuckDB tables always are).
    dtype:
        The pandas dtype recorded in a parquet file written by pandas
        (``"int64"``, ``"category"``, ``"Int64"``, ...), ``"category"`` for a
        dictionary-encoded column of another writer, else None.
    primary_key:
        Part of the primary key (only user-provided schemas say so).
    """

    name: str
    type: str
    nullable: bool = True
    dtype: str | None = None
    primary_key: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Canonical dict form (optional keys only when set)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.primary_key:
            out["primary_key"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SchemaField:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            nullable=bool(data.get("nullable", True)),
            dtype=data.get("dtype"),
            primary_key=bool(data.get("primary_key", False)),
        )


def schema_digest(fields: Sequence[SchemaField]) -> str:
    """Schema id: ``blake3:<hex>`` of a domain tag and the canonical field list.

    Field order is part of the layout (two files with the same columns in a
    different order have different profiles).
    """
    payload = [f.to_dict() for f in fields]
    return hash_bytes(SCHEMA_ID_DOMAIN + canonical_bytes(payload, where="schema"))


@dataclass(frozen=True)
class SchemaProfile:
    """An ordered field list and its digest.

    Attributes
    ----------
    fields:
        The columns, in table order (system columns excluded).
    """

    fields: tuple[SchemaField, ...]

    @property
    def id(self) -> str:
        """The schema id (see :func:`schema_digest`)."""
        return schema_digest(self.fields)

    @property
    def field_names(self) -> list[str]:
        """Column names in order."""
        return [f.name for f in self.fields]

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready field list."""
        return [f.to_dict() for f in self.fields]

    @classmethod
    def from_list(cls, data: Iterable[Mapping[str, Any]]) -> SchemaProfile:
        """Inverse of :meth:`to_list`."""
        return cls(tuple(SchemaField.from_dict(d) for d in data))


@dataclass
class ProfileObservation:
    """A profile plus what was observed in one artifact or table.

    Attributes
    ----------
    profile:
        The (deduplicated) layout.
    source:
        ``"file"``, ``"duckdb"`` or ``"user_provided"``.
    n_rows:
        Rows in the table (exact for parquet footers and DuckDB tables), or
        None when unknown (csv/json: only a sample is read).
    sampled_rows:
        Rows actually read to infer types and statistics (None when no row was
        read, e.g. parquet footers, or for user-provided schemas).
    stats:
        ``{column: {"null_count": int, "min": str, "max": str}}`` (each key
        optional). For a sample, counts refer to the sample.
    table_name:
        The DuckDB table profiled (``"duckdb"`` source only).
    """

    profile: SchemaProfile
    source: str
    n_rows: int | None = None
    sampled_rows: int | None = None
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    table_name: str | None = None

    def summary(self) -> dict[str, Any]:
        """The small ``schema_summary`` written into artifact metadata."""
        out: dict[str, Any] = {
            "source": self.source,
            "n_fields": len(self.profile.fields),
        }
        if self.n_rows is not None:
            out["n_rows"] = self.n_rows
        if self.sampled_rows is not None:
            out["sampled_rows"] = self.sampled_rows
        return out


# --------------------------------------------------------------------------- #
# Argument validation (before anything is written)
# --------------------------------------------------------------------------- #
def validate_profile_mode(value: Any, param: str = "profile_file_schema") -> bool | str:
    """``True``, ``False``/``None`` or ``"if_changed"``.

    Raises
    ------
    ValueError
        For any other value.
    """
    if value is None or value is False:
        return False
    if value is True or value == "if_changed":
        return value
    raise ValueError(
        f"{param} must be True, False or 'if_changed', got {value!r}; "
        "'if_changed' skips profiling when the same content already has a schema"
    )


def validate_sample_rows(value: Any, param: str = "file_schema_sample_rows") -> int | None:
    """None or a positive int.

    Raises
    ------
    ValueError
        For anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{param} must be a positive int (rows to sample) or None, got {value!r}")
    return value


# --------------------------------------------------------------------------- #
# Profiling
# --------------------------------------------------------------------------- #
def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_SCALAR_STAT_TYPES = re.compile(
    r"^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
    r"UHUGEINT|FLOAT|REAL|DOUBLE|DECIMAL.*|VARCHAR|DATE|TIME|TIMESTAMP.*|UUID)$"
)


def stats_sql(columns: Sequence[tuple[str, str]], source_sql: str) -> str:
    """One scan computing ``count(*)`` then, per column, null count, min and max.

    ``columns`` are ``(name, duckdb type)``; min/max are only computed for
    scalar types and returned as text.
    """
    parts = ["count(*)"]
    for name, kind in columns:
        q = _quote_ident(name)
        parts.append(f"count(*) - count({q})")
        if _SCALAR_STAT_TYPES.match(kind.upper()):
            parts.append(f"CAST(min({q}) AS VARCHAR)")
            parts.append(f"CAST(max({q}) AS VARCHAR)")
        else:
            parts.append("NULL")
            parts.append("NULL")
    return f"SELECT {', '.join(parts)} FROM {source_sql}"


def _stat_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    text = str(value).replace("\n", " ").replace("\r", " ")
    if len(text) > _MAX_STAT_TEXT:
        text = text[: _MAX_STAT_TEXT - 3] + "..."
    return text


def stats_from_row(columns: Sequence[tuple[str, str]], row: Sequence[Any]) -> tuple[int, dict]:
    """``(row count, stats)`` from the result row of :func:`stats_sql`."""
    total = int(row[0])
    stats: dict[str, dict[str, Any]] = {}
    for i, (name, _) in enumerate(columns):
        nulls, low, high = row[1 + 3 * i : 4 + 3 * i]
        entry: dict[str, Any] = {"null_count": int(nulls)}
        if low is not None:
            entry["min"] = _stat_text(low)
        if high is not None:
            entry["max"] = _stat_text(high)
        stats[name] = entry
    return total, stats


def profile_from_columns(
    columns: Sequence[tuple[str, str, bool]],
    *,
    source: str,
    n_rows: int | None = None,
    sampled_rows: int | None = None,
    stats: Mapping[str, dict[str, Any]] | None = None,
    dtypes: Mapping[str, str] | None = None,
    table_name: str | None = None,
) -> ProfileObservation:
    """Build an observation from ``(name, duckdb type, nullable)`` columns.

    System columns (``consist_*``, ``_dlt_*``) are left out of the profile.
    """
    dtypes = dtypes or {}
    fields = tuple(
        SchemaField(name=name, type=kind, nullable=bool(nullable), dtype=dtypes.get(name))
        for name, kind, nullable in columns
        if not is_system_column(name)
    )
    kept = {f.name for f in fields}
    return ProfileObservation(
        profile=SchemaProfile(fields),
        source=source,
        n_rows=n_rows,
        sampled_rows=sampled_rows,
        stats={k: dict(v) for k, v in (stats or {}).items() if k in kept},
        table_name=table_name,
    )


def profile_file(
    path: str | os.PathLike[str], driver: str, *, sample_rows: int | None = None
) -> ProfileObservation:
    """Profile a parquet, csv or json file without loading it.

    Parameters
    ----------
    path:
        The file.
    driver:
        ``"parquet"``, ``"csv"`` or ``"json"``.
    sample_rows:
        For csv/json: at most this many rows are read, to sniff types and
        compute statistics (default :data:`DEFAULT_SAMPLE_ROWS`). Parquet
        profiles read only the footer, whatever this says.

    Raises
    ------
    ValueError
        If the driver cannot be profiled.
    FileNotFoundError
        If the file does not exist.
    """
    path = os.fspath(path)
    if driver not in PROFILE_DRIVERS:
        raise ValueError(
            f"cannot profile a {driver!r} artifact; schema profiles cover {PROFILE_DRIVERS}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot profile {path}: no such file")
    import duckdb

    con = duckdb.connect()
    try:
        if driver == "parquet":
            return _profile_parquet(con, path)
        return _profile_sampled(con, path, driver, sample_rows or DEFAULT_SAMPLE_ROWS)
    finally:
        con.close()


def _describe(con: Any, source_sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source_sql}").fetchall()]


def _profile_parquet(con: Any, path: str) -> ProfileObservation:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    arrow_schema = pf.schema_arrow
    described = _describe(con, f"read_parquet({_quote_literal(path)})")
    nullable = {f.name: f.nullable for f in arrow_schema}
    dtypes: dict[str, str] = {}
    pandas_meta = arrow_schema.pandas_metadata or {}
    for col in pandas_meta.get("columns", []) or []:
        name = col.get("field_name") or col.get("name")
        if not isinstance(name, str):
            continue
        if col.get("pandas_type") == "categorical":
            dtypes[name] = "category"
        elif col.get("numpy_type"):
            dtypes[name] = str(col["numpy_type"])
    import pyarrow as pa

    for f in arrow_schema:
        if f.name not in dtypes and pa.types.is_dictionary(f.type):
            dtypes[f.name] = "category"
    metadata = pf.metadata
    stats = _parquet_footer_stats(metadata, {name for name, _ in described})
    columns = [(name, kind, nullable.get(name, True)) for name, kind in described]
    return profile_from_columns(
        columns,
        source="file",
        n_rows=int(metadata.num_rows),
        sampled_rows=None,
        stats=stats,
        dtypes=dtypes,
    )


def _parquet_footer_stats(metadata: Any, names: set[str]) -> dict[str, dict[str, Any]]:
    """Null counts and min/max of top-level leaf columns, over all row groups."""
    stats: dict[str, dict[str, Any]] = {}
    unusable: set[str] = set()
    for rg in range(metadata.num_row_groups):
        group = metadata.row_group(rg)
        for ci in range(group.num_columns):
            column = group.column(ci)
            name = column.path_in_schema
            if name not in names or name in unusable:
                continue  # nested leaves (a.b, list.element) are not summarised
            st = column.statistics
            if st is None:
                unusable.add(name)
                stats.pop(name, None)
                continue
            entry = stats.setdefault(name, {"null_count": 0})
            if st.has_null_count and "null_count" in entry:
                entry["null_count"] += int(st.null_count)
            else:
                entry.pop("null_count", None)
            if st.has_min_max:
                try:
                    low, high = st.min, st.max
                    if "min" not in entry or low < entry["_min"]:
                        entry["_min"], entry["min"] = low, _stat_text(low)
                    if "max" not in entry or high > entry["_max"]:
                        entry["_max"], entry["max"] = high, _stat_text(high)
                except (TypeError, ValueError):  # incomparable / undecodable values
                    entry.pop("min", None)
                    entry.pop("max", None)
    for entry in stats.values():
        entry.pop("_min", None)
        entry.pop("_max", None)
    return stats


def _profile_sampled(con: Any, path: str, driver: str, sample_rows: int) -> ProfileObservation:
    reader = "read_csv" if driver == "csv" else "read_json"
    source_sql = f"{reader}({_quote_literal(path)}, sample_size={int(sample_rows)})"
    described = _describe(con, source_sql)
    row = con.execute(
        stats_sql(described, f"(SELECT * FROM {source_sql} LIMIT {int(sample_rows)})")
    )
    sampled, stats = stats_from_row(described, row.fetchone())
    return profile_from_columns(
        [(name, kind, True) for name, kind in described],
        source="file",
        n_rows=None,
        sampled_rows=sampled,
        stats=stats,
    )


# --------------------------------------------------------------------------- #
# SQLModel <-> DuckDB types
# --------------------------------------------------------------------------- #
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
        if issubclass(inner, list | tuple):
            return "JSON"
        if issubclass(inner, dict):
            return "JSON"
    origin = typing.get_origin(inner)
    if origin in (list, tuple, dict):
        return "JSON"
    return "VARCHAR"


def model_columns(model: type) -> list[tuple[str, Any, bool, bool]]:
    """``(column name, annotation, nullable, primary key)`` of a SQLModel class."""
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
        out.append((column_name, info.annotation, nullable or not info.is_required(), pk))
    return out


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


# --------------------------------------------------------------------------- #
# Rendering a SQLModel stub
# --------------------------------------------------------------------------- #
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
