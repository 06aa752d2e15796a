"""SQLModel table models of the metadata tables, for SQLModel/SQLAlchemy queries.

Design
------
The records the library passes around on the hot path (:class:`Run`,
:class:`Artifact`) stay plain pydantic models; the classes here are separate
SQLModel ``table=True`` models mapped onto the same tables, and ``Run`` /
``Artifact`` stand for their table model inside statements
(``select(Run).where(Run.model_name == "x")``, see
:mod:`consist.models.queryable`). ``tracker.run_query`` converts the loaded
rows back into ``Run`` / ``Artifact`` records, identical to what
``find_runs`` / ``get_run`` return.

Making ``Run`` and ``Artifact`` table models themselves was measured and
rejected:

* ``import sqlmodel`` costs ~190 ms on top of pydantic, and every run imports
  the record classes, so ``from consist import Tracker`` would roughly double
  (~175 ms today, no SQLAlchemy on the hot path);
* constructing a SQLModel table instance costs ~40 µs against ~2-4 µs for the
  pydantic records (a run builds several), because of SQLAlchemy's
  instrumentation;
* table models skip validation in ``__init__`` and share SQLAlchemy instance
  state through ``model_copy``, both of which the record code relies on
  (journal replay, run views of artifacts).

The DDL belongs to the numbered migrations in
:mod:`consist.core.store.schema`; these models only describe the existing
columns (the tests compare them with a migrated database) and are never used
to create tables. They live in their own SQLAlchemy registry/metadata, so
they neither collide with a user's ``SQLModel.metadata`` (a user table called
``run`` stays possible) nor get created by ``SQLModel.metadata.create_all``.
The ``run`` table's bookkeeping columns ``updated_ns`` and ``identity`` are
not mapped. ``meta`` columns are JSON (``Run.meta["key"].as_string()``);
``tags`` and the other DuckDB lists (``VARCHAR[]``) map as ``ARRAY(String)``
(``Run.tags.contains(["base"])``); timestamps are stored as naive UTC and
loaded timezone-aware (:class:`UTCTimestamp`). A ``Session`` on
``tracker.engine`` loads the table models themselves (``RunTable``);
``tracker.run_query`` hands back ``Run`` / ``Artifact`` records.

Foreign keys are declared here only so that SQLAlchemy can infer join
conditions (``select(Artifact).join(RunArtifactLink)``); the database
does not enforce them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Double, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from consist.models.artifact import Artifact
from consist.models.run import Run

__all__ = [
    "METADATA",
    "ArtifactFacet",
    "ArtifactKV",
    "ArtifactSchemaLink",
    "ArtifactTable",
    "ConfigFacet",
    "ContentIdentity",
    "IngestedArtifact",
    "RunArtifactLink",
    "RunConfigKV",
    "RunFacet",
    "RunTable",
    "SchemaProfile",
    "SchemaVersion",
    "StatCacheRow",
    "UTCTimestamp",
]


class UTCTimestamp(TypeDecorator[datetime]):
    """A ``TIMESTAMP`` column holding UTC: aware datetimes in and out.

    Bound values are converted to naive UTC (a naive value is taken as UTC
    already), so comparisons in queries match how the store writes them;
    loaded values carry ``tzinfo=UTC``.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_registry = registry()
METADATA = _registry.metadata
"""The SQLAlchemy ``MetaData`` of the consist tables (separate from ``SQLModel.metadata``)."""


class _ConsistTable(SQLModel, registry=_registry):
    """Base of the table models: the consist registry, no table of its own."""


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=JSON, nullable=nullable)


def _timestamp(nullable: bool = False) -> Any:
    return Field(default=None, sa_type=UTCTimestamp, nullable=nullable)


def _str_list(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(ARRAY(String), nullable=nullable))


# -- runs, artifacts, links (migration 1) -------------------------------------


class RunTable(_ConsistTable, table=True):
    """Row of the ``run`` table (see :class:`consist.models.run.Run` for the fields).

    In statements, :class:`~consist.models.run.Run` stands for this class;
    ``run_query`` turns its rows into ``Run`` records (:meth:`to_record`).
    """

    __tablename__ = "run"

    id: str = Field(primary_key=True)
    model_name: str
    description: str | None = None
    status: str
    tags: list[str] | None = _str_list()
    year: int | None = None
    iteration: int | None = None
    stage: str | None = None
    phase: str | None = None
    parent_run_id: str | None = None
    config_hash: str | None = None
    input_hash: str | None = None
    git_hash: str | None = None
    signature: str | None = None
    meta: dict[str, Any] | None = _json()
    created_at: datetime = _timestamp()
    ended_at: datetime | None = _timestamp(nullable=True)

    def to_record(self) -> Run:
        """The :class:`Run` record for this row (as ``get_run`` returns it)."""
        return Run(
            id=self.id,
            model_name=self.model_name,
            description=self.description,
            status=self.status,
            tags=list(self.tags or []),
            year=self.year,
            iteration=self.iteration,
            stage=self.stage,
            phase=self.phase,
            parent_run_id=self.parent_run_id,
            config_hash=self.config_hash,
            input_hash=self.input_hash,
            git_hash=self.git_hash,
            signature=self.signature,
            meta=dict(self.meta or {}),
            created_at=self.created_at,
            ended_at=self.ended_at,
        )


class ArtifactTable(_ConsistTable, table=True):
    """Row of the ``artifact`` table (see :class:`consist.models.artifact.Artifact`).

    In statements, :class:`~consist.models.artifact.Artifact` stands for this
    class; ``run_query`` turns its rows into ``Artifact`` records.
    """

    __tablename__ = "artifact"

    id: uuid.UUID = Field(primary_key=True)
    key: str
    uri: str
    driver: str | None = None
    hash: str | None = None
    content_id: uuid.UUID | None = None
    table_path: str | None = None
    array_path: str | None = None
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)
    run_id: str | None = None
    meta: dict[str, Any] | None = _json()
    created_at: datetime = _timestamp()

    def to_record(self) -> Artifact:
        """The :class:`Artifact` record for this row (as ``get_artifact`` returns it)."""
        return Artifact(
            id=self.id,
            key=self.key,
            uri=self.uri,
            driver=self.driver or "other",
            hash=self.hash,
            content_id=self.content_id,
            table_path=self.table_path,
            array_path=self.array_path,
            size_bytes=self.size_bytes,
            run_id=self.run_id,
            meta=dict(self.meta or {}),
            created_at=self.created_at,
        )


class RunArtifactLink(_ConsistTable, table=True):
    """Row of ``run_artifact_link``: a run read (``input``) or wrote (``output``) an artifact.

    ``key`` and ``meta`` are the key and metadata under which that run logged
    the artifact. ``src`` -> ``dst`` is the link's lineage edge (an output
    artifact -> its run's node, a run's node -> an input artifact; a run's
    node is ``CAST(md5(run_id) AS UUID)``), written by the store; a link
    inserted through this model without them is not walked by lineage until
    ``doctor(fix=True)`` fills them. ``lineage_group`` is the label lineage
    uses to walk only the links of one connected part of the graph (schema
    10); while some link has none, lineage walks every link (correct, slower)
    until ``doctor(fix=True)`` labels it.
    """

    __tablename__ = "run_artifact_link"

    run_id: str = Field(primary_key=True, foreign_key="run.id")
    artifact_id: uuid.UUID = Field(primary_key=True, foreign_key="artifact.id")
    direction: str = Field(primary_key=True)
    key: str
    meta: dict[str, Any] | None = _json()
    src: uuid.UUID | None = None
    dst: uuid.UUID | None = None
    lineage_group: int | None = Field(default=None, sa_type=BigInteger)


class LineageGroupAlias(_ConsistTable, table=True):
    """Row of ``lineage_group_alias``: label ``grp`` belongs to the lineage group ``root``.

    A run's own label (see ``RunArtifactLink.lineage_group``) or a group's old
    root that was joined to a larger group. Written by the store only.
    """

    __tablename__ = "lineage_group_alias"

    grp: int = Field(primary_key=True, sa_type=BigInteger)
    root: int = Field(sa_type=BigInteger)


class ContentIdentity(_ConsistTable, table=True):
    """Row of ``content_identity``: one distinct content digest."""

    __tablename__ = "content_identity"

    id: uuid.UUID = Field(primary_key=True)
    hash: str
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)
    first_seen_at: datetime = _timestamp()


class StatCacheRow(_ConsistTable, table=True):
    """Row of ``stat_cache``: a file's stat key and the digest it had then."""

    __tablename__ = "stat_cache"

    path: str = Field(primary_key=True)
    dev: int = Field(sa_type=BigInteger)
    ino: int = Field(sa_type=BigInteger)
    size: int = Field(sa_type=BigInteger)
    mtime_ns: int = Field(sa_type=BigInteger)
    ctime_ns: int = Field(sa_type=BigInteger)
    digest: str
    recorded_ns: int = Field(sa_type=BigInteger)


# -- facets and key/value indexes (migration 3) -------------------------------


class ConfigFacet(_ConsistTable, table=True):
    """Row of ``config_facet``: a deduplicated facet payload."""

    __tablename__ = "config_facet"

    id: str = Field(primary_key=True)
    namespace: str
    schema_name: str | None = None
    schema_version: str | None = None
    facet_json: dict[str, Any] | None = _json(nullable=False)
    created_at: datetime = _timestamp()


class RunFacet(_ConsistTable, table=True):
    """Row of ``run_facet``: which facet a run carries."""

    __tablename__ = "run_facet"

    run_id: str = Field(primary_key=True, foreign_key="run.id")
    facet_id: str = Field(foreign_key="config_facet.id")
    namespace: str
    indexed: bool


class RunConfigKV(_ConsistTable, table=True):
    """Row of ``run_config_kv``: one flattened, typed key of a run's facet."""

    __tablename__ = "run_config_kv"

    run_id: str = Field(primary_key=True, foreign_key="run.id")
    facet_id: str = Field(foreign_key="config_facet.id")
    namespace: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value_type: str
    value_str: str | None = None
    value_num: float | None = Field(default=None, sa_type=Double)
    value_bool: bool | None = None
    value_json: Any = _json()


class ArtifactFacet(_ConsistTable, table=True):
    """Row of ``artifact_facet``: which facet an artifact carries."""

    __tablename__ = "artifact_facet"

    artifact_id: uuid.UUID = Field(primary_key=True, foreign_key="artifact.id")
    facet_id: str = Field(foreign_key="config_facet.id")
    namespace: str
    indexed: bool


class ArtifactKV(_ConsistTable, table=True):
    """Row of ``artifact_kv``: one flattened, typed key of an artifact's facet."""

    __tablename__ = "artifact_kv"

    artifact_id: uuid.UUID = Field(primary_key=True, foreign_key="artifact.id")
    facet_id: str = Field(foreign_key="config_facet.id")
    namespace: str
    key: str = Field(primary_key=True)
    value_type: str
    value_str: str | None = None
    value_num: float | None = Field(default=None, sa_type=Double)
    value_bool: bool | None = None
    value_json: Any = _json()


# -- hot data and schema profiles (migrations 4, 5) ---------------------------


class IngestedArtifact(_ConsistTable, table=True):
    """Row of ``ingested_artifact``: an artifact's rows ingested into ``global_tables``."""

    __tablename__ = "ingested_artifact"

    artifact_id: uuid.UUID = Field(primary_key=True, foreign_key="artifact.id")
    table_name: str = Field(primary_key=True)
    artifact_key: str
    run_id: str | None = Field(default=None, foreign_key="run.id")
    row_count: int = Field(sa_type=BigInteger)
    mode: str
    source_hash: str | None = None
    schema_name: str | None = None
    columns: list[str] | None = _str_list(nullable=False)
    ingested_at: datetime = _timestamp()
    year: int | None = None
    iteration: int | None = None
    ingest_no: int | None = None


class SchemaProfile(_ConsistTable, table=True):
    """Row of ``schema_profile``: a deduplicated column profile of a table artifact."""

    __tablename__ = "schema_profile"

    id: str = Field(primary_key=True)
    field_names: list[str] | None = _str_list(nullable=False)
    fields: Any = _json(nullable=False)
    n_fields: int
    created_at: datetime = _timestamp()


class ArtifactSchemaLink(_ConsistTable, table=True):
    """Row of ``artifact_schema``: the schema profile an artifact was observed with."""

    __tablename__ = "artifact_schema"

    artifact_id: uuid.UUID = Field(primary_key=True, foreign_key="artifact.id")
    schema_id: str = Field(foreign_key="schema_profile.id")
    source: str = Field(primary_key=True)
    content_id: uuid.UUID | None = None
    hash: str | None = None
    table_name: str | None = None
    n_rows: int | None = Field(default=None, sa_type=BigInteger)
    sampled_rows: int | None = Field(default=None, sa_type=BigInteger)
    stats: Any = _json()
    created_at: datetime = _timestamp()


class SchemaVersion(_ConsistTable, table=True):
    """Row of ``schema_version``: one applied migration."""

    __tablename__ = "schema_version"

    version: int = Field(primary_key=True)
    description: str
    applied_at: datetime = _timestamp()
