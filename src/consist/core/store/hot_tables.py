"""Hot data conventions: table names, provenance columns and the ingest records.

Conventions (relied upon by the hot store, views and schema profiling):

* Ingested rows live in the DuckDB schema ``global_tables``, one table per
  artifact key (or, for rows validated against a schema, per schema:
  its ``__tablename__``, see :func:`ingest_table_for`), accumulating rows
  from many runs. The table name is :func:`table_name_for` the key: every
  non-word character (regex ``\\W``) replaced by ``_``, ``_`` prefixed when
  it is empty or starts with a digit, then lower-cased (``"Trips 2020"`` ->
  ``trips_2020``, ``"2020"`` -> ``_2020``). DuckDB matches identifiers
  case-insensitively, so tables are looked up case-insensitively too.
* Every row carries the provenance columns :data:`PROVENANCE_COLUMNS`
  (``consist_run_id VARCHAR``, ``consist_artifact_id VARCHAR``,
  ``consist_year INTEGER``, ``consist_iteration INTEGER``); data columns
  keep the names and types of the source. The ingest time is kept once per
  artifact in the ledger rather than on every row. In a DuckDB store the
  rows are stored without the provenance columns, in ``hot_rows.<t>``, and
  ``global_tables.<t>`` is a view that adds them from the ledger (see
  :mod:`consist.core.store.hot_layout`).
* Re-ingesting an artifact replaces its rows (delete + insert, one
  transaction), so rows are never duplicated.
* The ``ingested_artifact`` ledger (migration 4) has one row per
  ``(artifact_id, table_name)`` with the row count, the data columns, the
  run, year and iteration the rows are tagged with, their ingest number
  (migration 9) and how they were loaded;
  :meth:`HotStore.ingested_artifacts` answers "which artifacts of this key
  are hot". The artifact's ``meta`` (and the run links to it) carries the
  same facts under :data:`META_KEYS`.
* A table evolves by adding columns: a source column the table lacks is
  added (earlier rows read NULL); a column the source lacks is NULL for
  its rows. Existing column types never change; values that cannot be cast
  to them are rejected before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GLOBAL_SCHEMA = "global_tables"

PROVENANCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("consist_run_id", "VARCHAR"),
    ("consist_artifact_id", "VARCHAR"),
    ("consist_year", "INTEGER"),
    ("consist_iteration", "INTEGER"),
)
PROVENANCE_NAMES: frozenset[str] = frozenset(name for name, _ in PROVENANCE_COLUMNS)

# Keys written into artifact.meta (and the run links' meta) by an ingest.
META_KEYS = ("is_ingested", "ingested_table", "ingested_rows", "ingested_run_id")

_NON_WORD = re.compile(r"\W")


def table_name_for(key: str) -> str:
    """The ``global_tables`` table name for an artifact key (see the module docstring).

    Parameters
    ----------
    key:
        The artifact key, e.g. ``"Trips 2020"``.

    Returns
    -------
    str
        The table name inside ``global_tables``, e.g. ``"trips_2020"``.

    Raises
    ------
    ValueError
        If ``key`` is not a non-empty string.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"cannot derive a table name from key {key!r}")
    name = _NON_WORD.sub("_", key)
    if name[0].isdigit():
        name = "_" + name
    return name.lower()


def schema_table_key(schema: Any) -> str | None:
    """The table key a schema class names: its ``__tablename__``, or None.

    SQLModel gives every class a ``__tablename__`` (the class name in lower
    case unless declared), so ``Tracker.view(Model)`` and an ingest validated
    against ``Model`` meet in one table. A plain pydantic model has none.
    """
    name = getattr(schema, "__tablename__", None) if schema is not None else None
    return name if isinstance(name, str) and name.strip() else None


def ingest_table_for(key: str, schema: Any = None) -> str:
    """The ``global_tables`` table an ingest writes to.

    The schema's table (:func:`schema_table_key`) when the rows are validated
    against a schema, else the artifact key's; both through
    :func:`table_name_for`.
    """
    return table_name_for(schema_table_key(schema) or key)


def ingest_meta(table: str, rows: int, run_id: str) -> dict[str, Any]:
    """The metadata an ingest records on the artifact (keys :data:`META_KEYS`)."""
    return {
        "is_ingested": True,
        "ingested_table": f"{GLOBAL_SCHEMA}.{table}",
        "ingested_rows": rows,
        "ingested_run_id": run_id,
    }


# --------------------------------------------------------------------------- #
# Inputs and results of an ingest
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RowSource:
    """Where the rows of one ingest come from.

    Exactly one of ``path`` (a parquet/csv/json file read natively by
    DuckDB), ``frame`` (a pandas/polars DataFrame or pyarrow Table scanned
    in place) or ``attach`` + ``table`` (a table in another DuckDB file,
    e.g. rows staged by dlt) is set. ``exclude`` names source columns to
    drop (loader bookkeeping such as ``_dlt_id``).
    """

    kind: str
    path: str | None = None
    frame: Any = None
    attach: str | None = None
    table: str | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnSpec:
    """One column required by a schema (built from a SQLModel field).

    ``sql_type`` None means "any type" (kept as in the source); source types
    starting with one of ``accepts`` are also kept as they are (e.g. any
    ``TIMESTAMP`` precision for a datetime field). A column missing from the
    source is filled with ``default`` when ``has_default``.
    """

    name: str
    sql_type: str | None
    nullable: bool
    has_default: bool = False
    default: Any = None
    accepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provenance:
    """Values of the provenance columns for one ingest."""

    run_id: str
    artifact_id: str
    year: int | None
    iteration: int | None
    ingested_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class IngestStats:
    """What one ingest wrote."""

    table: str
    rows: int
    replaced_rows: int
    columns: tuple[str, ...]
    created_table: bool
    added_columns: tuple[str, ...]


@dataclass(frozen=True)
class IngestRecord:
    """One row of the ``ingested_artifact`` ledger."""

    artifact_id: str
    table_name: str
    artifact_key: str
    run_id: str | None
    row_count: int
    mode: str
    source_hash: str | None
    schema_name: str | None
    columns: tuple[str, ...]
    ingested_at: datetime | None
    year: int | None = None
    iteration: int | None = None

    @property
    def qualified_name(self) -> str:
        """``global_tables.<table_name>``."""
        return f"{GLOBAL_SCHEMA}.{self.table_name}"


class IngestSchemaError(ValueError):
    """Rows do not fit the schema (or the existing table); nothing was written.

    Attributes
    ----------
    problems:
        ``(column, message)`` pairs, one per offending column.
    """

    def __init__(self, what: str, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = "; ".join(f"column {col!r}: {msg}" for col, msg in self.problems)
        super().__init__(f"{what}: {lines}. Nothing was written.")

    @property
    def columns(self) -> list[str]:
        """The offending column names."""
        return [col for col, _ in self.problems]
