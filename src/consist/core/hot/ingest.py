"""Ingestion: putting an artifact's rows into the hot store.

Resolves what to ingest (the artifact's file, a DataFrame, or dict rows),
which schema to validate against and which run the rows belong to, then
hands a :class:`~consist.core.store.hot_store.RowSource` to the hot store,
which owns every SQL statement. Three paths, one destination:

* ``data=None``: the artifact's parquet/csv/json file is read by DuckDB
  natively (``INSERT ... SELECT *, <provenance> FROM read_parquet(...)``):
  streamed, typed exactly as in the file, memory flat. A parquet file with
  fewer row groups than DuckDB threads (up to ``STAGE_MAX_BYTES``
  uncompressed) is first copied into a private in-memory table on a second
  connection while the store applies its write log on the first, so that
  the insert compresses on every core, and the memory used to read the
  file is handed back before the insert (see ``hot_store._staged_parquet``).
* a pandas/polars DataFrame or pyarrow Table: scanned in place by DuckDB
  (no copy, dtypes preserved).
* any other iterable of dict rows: loaded by dlt (type inference, schema
  evolution, nested values as JSON) into a staging file, then moved like
  the others (see :mod:`consist.core.hot.dlt_loader`).

Decision (the spec says ingestion goes through dlt): files DuckDB can read
itself (parquet, csv, json) and in-memory tables bypass dlt entirely. dlt
would turn them into batches and load packages of its own first (a dlt
based ingest of a million-row parquet file measured 7.9x DuckDB's own
``CREATE TABLE AS`` and 605 MiB, ``../shared/bench/reference.md``); read
natively they keep every type as written. dlt is kept for what needs it,
iterables of dict rows, with its telemetry off and its pipelines under the
tracker's folders. The spec's semantics hold on every path: the table an artifact lands in
(schema's ``__tablename__`` or the key), strict schema validation, the
provenance columns (``consist_run_id``, ``consist_artifact_id``,
``consist_year``, ``consist_iteration``), schema evolution, the ledger that
views and ``load`` read back, and offline ingest with ``run=``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import os
import types
import typing
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from consist.core.store.hot_store import (
    GLOBAL_SCHEMA,
    ColumnSpec,
    HotStore,
    IngestSchemaError,
    Provenance,
    RowSource,
    ingest_table_for,
    validate_source,
)
from consist.models.artifact import Artifact
from consist.models.run import Run

FILE_DRIVERS = ("parquet", "csv", "json")


@dataclasses.dataclass(frozen=True)
class IngestResult:
    """What :meth:`Tracker.ingest` did.

    Attributes
    ----------
    table:
        Qualified table name, ``"global_tables.<name>"``.
    table_name:
        The name inside ``global_tables``.
    rows:
        Rows written for this artifact.
    mode:
        ``"file"`` (read natively from the artifact's file), ``"dataframe"``
        or ``"rows"`` (dict rows through dlt).
    loader:
        ``"duckdb"`` or ``"dlt"``.
    run_id, artifact_id:
        Values of the ``consist_run_id`` / ``consist_artifact_id`` columns.
    offline:
        True when the rows were tagged with ``run=`` rather than the active run.
    schema_name:
        The schema the rows were validated against, if any.
    replaced_rows:
        Rows of an earlier ingest of the same artifact that were replaced.
    created_table, added_columns:
        Whether the table was created, and columns added to it (evolution).
    load_info:
        dlt's ``LoadInfo`` for ``mode="rows"``, else None.
    schema:
        The SQLModel class the rows were validated against, if any.
    """

    table: str
    table_name: str
    rows: int
    mode: str
    loader: str
    run_id: str
    artifact_id: str
    offline: bool
    schema_name: str | None
    replaced_rows: int
    created_table: bool
    added_columns: tuple[str, ...]
    load_info: Any = dataclasses.field(default=None, repr=False, compare=False)
    schema: type | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict (without ``load_info`` and ``schema``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("load_info", "schema")
        }


class IngestService:
    """Ingests artifacts' rows into ``global_tables``.

    Parameters
    ----------
    hot:
        The hot store (all SQL).
    local_path:
        Resolves an artifact to a local file path (None if impossible).
    schema_lookup:
        Registered schema by class name (``Tracker.get_registered_schema``).
    dlt_dir:
        Folder for dlt pipelines and staging files.
    """

    def __init__(
        self,
        hot: HotStore,
        *,
        local_path: Callable[[Artifact], str | None],
        schema_lookup: Callable[[str], type | None],
        dlt_dir: Path,
    ) -> None:
        self.hot = hot
        self.local_path = local_path
        self.schema_lookup = schema_lookup
        self.dlt_dir = Path(dlt_dir)

    def ingest(
        self,
        artifact: Artifact,
        run: Run,
        *,
        data: Any = None,
        schema: type | None = None,
        offline: bool = False,
        table: str | None = None,
    ) -> IngestResult:
        """Validate and write the rows; see ``Tracker.ingest``."""
        schema_cls = self.resolve_schema(artifact, schema)
        columns = schema_columns(schema_cls) if schema_cls is not None else None
        label = schema_cls.__name__ if schema_cls is not None else None
        if table is None:
            table = ingest_table_for(artifact.key, schema_cls)
        elif not isinstance(table, str) or ingest_table_for(table, None) != table:
            raise ValueError(
                f"table={table!r}: a table name is lower-case letters, digits and '_' "
                f"(e.g. {ingest_table_for(str(table), None)!r})"
            )
        provenance = Provenance(
            run_id=run.id, artifact_id=str(artifact.id), year=run.year, iteration=run.iteration
        )
        kind = classify_data(data)

        def write(source: RowSource, mode: str, source_hash: str | None = None) -> Any:
            return self.hot.ingest(
                source,
                table,
                provenance,
                columns=columns,
                schema_label=label,
                artifact_key=artifact.key,
                mode=mode,
                source_hash=source_hash,
            )

        load_info = None
        if kind == "file":
            source = RowSource(kind=artifact.driver, path=self.file_path(artifact))
            stats, mode, loader = write(source, "file", artifact.hash), "file", "duckdb"
        elif kind == "frame":
            stats, mode, loader = (
                write(RowSource("frame", frame=data), "dataframe"),
                "dataframe",
                "duckdb",
            )
        else:
            from consist.core.hot.dlt_loader import stage_rows

            with stage_rows(data, table, self.dlt_dir) as staged:
                if staged is None:
                    raise ValueError(
                        f"data for {artifact.key!r} produced no rows; nothing to ingest"
                    )
                if staged.variant_columns:
                    raise IngestSchemaError(
                        f"rows for {artifact.key!r} do not have one type per column",
                        [
                            (col, f"mixes value types (dlt variant columns {variants})")
                            for col, variants in staged.variant_columns.items()
                        ],
                    )
                source = RowSource(
                    "staged", attach=staged.path, table=staged.table, exclude=staged.exclude
                )
                stats, mode, loader = write(source, "rows"), "rows", "dlt"
                load_info = staged.load_info
        return IngestResult(
            table=f"{GLOBAL_SCHEMA}.{stats.table}",
            table_name=stats.table,
            rows=stats.rows,
            mode=mode,
            loader=loader,
            run_id=run.id,
            artifact_id=str(artifact.id),
            offline=offline,
            schema_name=label,
            replaced_rows=stats.replaced_rows,
            created_table=stats.created_table,
            added_columns=stats.added_columns,
            load_info=load_info,
            schema=schema_cls,
        )

    def resolve_schema(self, artifact: Artifact, schema: type | None) -> type | None:
        """``schema`` if given, else the registered schema named by ``artifact.meta``."""
        if schema is not None:
            check_schema(schema)
            return schema
        name = (artifact.meta or {}).get("schema_name")
        if not isinstance(name, str) or not name.strip():
            return None
        found = self.schema_lookup(name)
        if found is None:
            warnings.warn(
                f"artifact {artifact.key!r} names schema {name!r}, which is not registered on "
                "this tracker; ingesting without validation (pass Tracker(schemas=[...]) or "
                "schema=)",
                UserWarning,
                stacklevel=4,
            )
        return found

    def file_path(self, artifact: Artifact) -> str:
        """The artifact's local file, checked to be a readable table file.

        Raises
        ------
        ValueError
            If the driver cannot be read natively.
        FileNotFoundError
            If the file is missing.
        """
        if artifact.driver not in FILE_DRIVERS:
            raise ValueError(
                f"cannot ingest artifact {artifact.key!r} from its file: driver "
                f"{artifact.driver!r} is not one of {FILE_DRIVERS}; pass data= (a DataFrame "
                "or an iterable of dict rows)"
            )
        path = artifact.abs_path or self.local_path(artifact)
        if path is None or not os.path.isfile(path):
            raise FileNotFoundError(
                f"cannot ingest artifact {artifact.key!r}: its file {path or artifact.uri} "
                "is missing; pass data= to ingest rows from memory"
            )
        return path


def validate_frame(df: Any, schema: type) -> None:
    """Check a DataFrame against a schema (nothing written).

    Raises
    ------
    IngestSchemaError
        Naming every offending column.
    """
    validate_source(RowSource("frame", frame=df), schema_columns(schema), schema.__name__)


# --------------------------------------------------------------------------- #
# Data and schema inspection
# --------------------------------------------------------------------------- #


def classify_data(data: Any) -> str:
    """``"file"`` (None), ``"frame"`` (DataFrame / Arrow table) or ``"rows"`` (iterable).

    Raises
    ------
    TypeError
        For anything else (a single dict, a string, a Series ...).
    """
    if data is None:
        return "file"
    cls = type(data)
    module, name = cls.__module__, cls.__name__
    if (
        (module.startswith("pandas") and name == "DataFrame")
        or (module.startswith("pyarrow") and name in ("Table", "RecordBatch"))
        or (module.startswith("polars") and name == "DataFrame")
    ):
        return "frame"
    if module.startswith("pandas") and name == "Series":
        raise TypeError(
            "data must be a DataFrame or an iterable of dict rows; use series.to_frame()"
        )
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
        raise TypeError(
            f"data must be None (read the artifact's file), a DataFrame, or an iterable of "
            f"dict rows; got {cls.__name__}"
        )
    return "rows"


def check_schema(schema: Any) -> None:
    """``schema`` must be a SQLModel/pydantic model class with fields."""
    fields = getattr(schema, "model_fields", None) if isinstance(schema, type) else None
    if not isinstance(fields, Mapping) or not fields:
        raise TypeError(
            f"schema must be a SQLModel (or pydantic model) class with fields, got {schema!r}"
        )


def schema_columns(schema: type) -> list[ColumnSpec]:
    """The strict column list of a SQLModel class, in field order.

    Each field is a column named like the field. ``X | None`` makes it
    nullable; a field with a default may be missing from the data (it is
    filled with the default). Python types map to DuckDB types (``int`` ->
    BIGINT, ``float`` -> DOUBLE, ``str`` -> VARCHAR, ``bool`` -> BOOLEAN,
    ``datetime`` -> TIMESTAMP, ``date`` -> DATE, ``time`` -> TIME,
    ``bytes`` -> BLOB, ``UUID`` -> UUID, str/int enums); other annotations
    (Decimal, lists, dicts, Any) accept the source type as it is.
    """
    check_schema(schema)
    specs = []
    for name, info in schema.model_fields.items():  # type: ignore[attr-defined]
        nullable, base = _unwrap_optional(info.annotation)
        sql_type, accepts = _sql_type(base)
        required = info.is_required()
        has_default = not required and info.default_factory is None
        specs.append(
            ColumnSpec(
                name=name,
                sql_type=sql_type,
                nullable=nullable,
                has_default=has_default,
                default=info.default if has_default else None,
                accepts=accepts,
            )
        )
    return specs


def _unwrap_optional(annotation: Any) -> tuple[bool, Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation is None or annotation is type(None):
        return True, None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return nullable, _unwrap_optional(args[0])[1]
        return nullable, None
    if annotation is typing.Any:
        return True, None
    return False, annotation


_TYPES: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (bool, "BOOLEAN", ()),
    (int, "BIGINT", ()),
    (float, "DOUBLE", ()),
    (str, "VARCHAR", ()),
    (bytes, "BLOB", ()),
    (dt.datetime, "TIMESTAMP", ("TIMESTAMP",)),  # any precision / with time zone kept
    (dt.date, "DATE", ()),
    (dt.time, "TIME", ()),
    (uuid.UUID, "UUID", ()),
)


def _sql_type(base: Any) -> tuple[str | None, tuple[str, ...]]:
    if not isinstance(base, type) or issubclass(base, decimal.Decimal):
        return None, ()
    if issubclass(base, enum.Enum):
        if issubclass(base, str):
            return "VARCHAR", ()
        if issubclass(base, int):
            return "BIGINT", ()
        return None, ()
    for py_type, sql_type, accepts in _TYPES:
        if issubclass(base, py_type):
            return sql_type, accepts
    return None, ()
