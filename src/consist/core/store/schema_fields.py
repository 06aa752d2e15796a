"""The canonical form of a schema profile: its ordered field list and digest.

A *schema profile* is the ordered list of a table's fields (name, DuckDB
type, nullability, and for files the pandas dtype recorded in the file). Its
id is a digest of that canonical list, so every artifact with the same layout
shares one stored profile. What was observed in one particular artifact (row
count, per-column null counts, min and max) is kept beside the link between
the artifact and the profile (:class:`ProfileObservation`), not in the
profile. Pure code: profiles are read from files by
:mod:`consist.core.hot.schema_profile` and stored by
:mod:`consist.core.store.schema_store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consist.core.identity.canonical import canonical_bytes
from consist.core.identity.hashing import hash_bytes
from consist.core.store.hot_tables import PROVENANCE_COLUMNS

# Bump (never reuse) if the pre-image of a schema id ever changes.
SCHEMA_ID_DOMAIN = b"consist-schema/1\0"

SCHEMA_SOURCES = ("file", "duckdb", "user_provided")
PROFILE_DRIVERS = ("parquet", "csv", "json")
DEFAULT_SAMPLE_ROWS = 10_000

# The provenance columns every hybrid view row carries, with their types (ingested
# rows may carry more ``consist_*`` columns, e.g. ``consist_ingested_at``).
SYSTEM_COLUMNS: dict[str, str] = dict(PROVENANCE_COLUMNS)

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
# Building observations
# --------------------------------------------------------------------------- #
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

    System columns (``consist_*``, ``_dlt_*``) are left out of the profile
    and of its statistics.

    Parameters
    ----------
    columns:
        ``(name, DuckDB type, nullable)`` in table order.
    source:
        ``"file"``, ``"duckdb"`` or ``"user_provided"``.
    n_rows, sampled_rows, stats, table_name:
        As in :class:`ProfileObservation`.
    dtypes:
        ``{column: pandas dtype}`` recorded in the file, if any.

    Returns
    -------
    ProfileObservation
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


def stat_text(value: Any) -> str | None:
    """A statistic (min/max) as one line of at most 60 characters; None if not text."""
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
