"""Database schema for the metadata store, as numbered migrations.

Each migration is applied once, in order, inside one transaction, and
recorded in ``schema_version``. Never edit a released migration: add a new
one. Timestamps are stored as UTC ``TIMESTAMP`` values.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Migration:
    """One schema step: a version number, a description and its statements.

    ``convert``, when set, runs on a DuckDB store after the statements, in
    the same transaction: a step that depends on what the store holds (which
    tables exist). PostgreSQL stores run the statements only.
    """

    version: int
    description: str
    statements: tuple[str, ...]
    convert: Callable[[Any], None] | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, artifacts, links, content identities, stat cache",
        (
            """
            CREATE TABLE IF NOT EXISTS run (
                id VARCHAR PRIMARY KEY,
                model_name VARCHAR NOT NULL,
                description VARCHAR,
                status VARCHAR NOT NULL,
                tags VARCHAR[],
                year INTEGER,
                iteration INTEGER,
                stage VARCHAR,
                phase VARCHAR,
                parent_run_id VARCHAR,
                config_hash VARCHAR,
                input_hash VARCHAR,
                git_hash VARCHAR,
                signature VARCHAR,
                meta JSON,
                created_at TIMESTAMP NOT NULL,
                ended_at TIMESTAMP,
                updated_ns BIGINT NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX IF NOT EXISTS run_signature_idx ON run (signature)",
            "CREATE INDEX IF NOT EXISTS run_model_idx ON run (model_name)",
            "CREATE INDEX IF NOT EXISTS run_parent_idx ON run (parent_run_id)",
            """
            CREATE TABLE IF NOT EXISTS artifact (
                id UUID PRIMARY KEY,
                key VARCHAR NOT NULL,
                uri VARCHAR NOT NULL,
                driver VARCHAR,
                hash VARCHAR,
                content_id UUID,
                table_path VARCHAR,
                array_path VARCHAR,
                size_bytes BIGINT,
                run_id VARCHAR,
                meta JSON,
                created_at TIMESTAMP NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS artifact_key_idx ON artifact (key)",
            "CREATE INDEX IF NOT EXISTS artifact_uri_idx ON artifact (uri)",
            "CREATE INDEX IF NOT EXISTS artifact_content_idx ON artifact (content_id)",
            """
            CREATE TABLE IF NOT EXISTS run_artifact_link (
                run_id VARCHAR NOT NULL,
                artifact_id UUID NOT NULL,
                direction VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                meta JSON,
                PRIMARY KEY (run_id, artifact_id, direction)
            )
            """,
            "CREATE INDEX IF NOT EXISTS link_artifact_idx ON run_artifact_link (artifact_id)",
            "CREATE INDEX IF NOT EXISTS link_key_idx ON run_artifact_link (key)",
            """
            CREATE TABLE IF NOT EXISTS content_identity (
                id UUID PRIMARY KEY,
                hash VARCHAR NOT NULL,
                size_bytes BIGINT,
                first_seen_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS stat_cache (
                path VARCHAR PRIMARY KEY,
                dev UBIGINT NOT NULL,
                ino UBIGINT NOT NULL,
                size UBIGINT NOT NULL,
                mtime_ns BIGINT NOT NULL,
                ctime_ns BIGINT NOT NULL,
                digest VARCHAR NOT NULL,
                recorded_ns BIGINT NOT NULL
            )
            """,
        ),
    ),
)

MIGRATIONS += (
    Migration(
        2,
        "identity manifest (config, input digests, code identity) on each run",
        ("ALTER TABLE run ADD COLUMN IF NOT EXISTS identity JSON",),
    ),
)

MIGRATIONS += (
    Migration(
        3,
        "config facets (deduplicated payloads) and typed key/value indexes",
        (
            """
            CREATE TABLE IF NOT EXISTS config_facet (
                id VARCHAR PRIMARY KEY,
                namespace VARCHAR NOT NULL,
                schema_name VARCHAR,
                schema_version VARCHAR,
                facet_json JSON NOT NULL,
                created_at TIMESTAMP NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS config_facet_namespace_idx ON config_facet (namespace)",
            """
            CREATE TABLE IF NOT EXISTS run_facet (
                run_id VARCHAR PRIMARY KEY,
                facet_id VARCHAR NOT NULL,
                namespace VARCHAR NOT NULL,
                indexed BOOLEAN NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS run_facet_facet_idx ON run_facet (facet_id)",
            """
            CREATE TABLE IF NOT EXISTS run_config_kv (
                run_id VARCHAR NOT NULL,
                facet_id VARCHAR NOT NULL,
                namespace VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                value_type VARCHAR NOT NULL,
                value_str VARCHAR,
                value_num DOUBLE,
                value_bool BOOLEAN,
                value_json JSON,
                PRIMARY KEY (run_id, namespace, key)
            )
            """,
            "CREATE INDEX IF NOT EXISTS run_config_kv_run_idx ON run_config_kv (run_id)",
            "CREATE INDEX IF NOT EXISTS run_config_kv_ns_key_idx ON run_config_kv (namespace, key)",
            """
            CREATE TABLE IF NOT EXISTS artifact_facet (
                artifact_id UUID PRIMARY KEY,
                facet_id VARCHAR NOT NULL,
                namespace VARCHAR NOT NULL,
                indexed BOOLEAN NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS artifact_kv (
                artifact_id UUID NOT NULL,
                facet_id VARCHAR NOT NULL,
                namespace VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                value_type VARCHAR NOT NULL,
                value_str VARCHAR,
                value_num DOUBLE,
                value_bool BOOLEAN,
                value_json JSON,
                PRIMARY KEY (artifact_id, key)
            )
            """,
            "CREATE INDEX IF NOT EXISTS artifact_kv_ns_key_idx ON artifact_kv (namespace, key)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        4,
        "hot data: global_tables schema and the ingested-artifact ledger",
        (
            "CREATE SCHEMA IF NOT EXISTS global_tables",
            # One row per (artifact, table) ingested into global_tables; see
            # consist.core.store.hot_tables for the conventions.
            """
            CREATE TABLE IF NOT EXISTS ingested_artifact (
                artifact_id UUID NOT NULL,
                table_name VARCHAR NOT NULL,
                artifact_key VARCHAR NOT NULL,
                run_id VARCHAR,
                row_count BIGINT NOT NULL,
                mode VARCHAR NOT NULL,
                source_hash VARCHAR,
                schema_name VARCHAR,
                columns VARCHAR[] NOT NULL,
                ingested_at TIMESTAMP NOT NULL,
                PRIMARY KEY (artifact_id, table_name)
            )
            """,
            "CREATE INDEX IF NOT EXISTS ingested_artifact_table_idx "
            "ON ingested_artifact (table_name)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        5,
        "schema profiles (deduplicated by digest) and artifact -> schema links",
        (
            """
            CREATE TABLE IF NOT EXISTS schema_profile (
                id VARCHAR PRIMARY KEY,
                field_names VARCHAR[] NOT NULL,
                fields JSON NOT NULL,
                n_fields INTEGER NOT NULL,
                created_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS artifact_schema (
                artifact_id UUID NOT NULL,
                schema_id VARCHAR NOT NULL,
                source VARCHAR NOT NULL,
                content_id UUID,
                hash VARCHAR,
                table_name VARCHAR,
                n_rows BIGINT,
                sampled_rows BIGINT,
                stats JSON,
                created_at TIMESTAMP NOT NULL,
                PRIMARY KEY (artifact_id, source)
            )
            """,
            "CREATE INDEX IF NOT EXISTS artifact_schema_schema_idx ON artifact_schema (schema_id)",
            "CREATE INDEX IF NOT EXISTS artifact_schema_content_idx "
            "ON artifact_schema (content_id)",
        ),
    ),
)

MIGRATIONS += (
    Migration(
        6,
        "write log: each run write committed as one narrow row, applied to the tables in batches",
        (
            """
            CREATE TABLE IF NOT EXISTS write_log (
                seq BIGINT NOT NULL,
                payload VARCHAR NOT NULL
            )
            """,
        ),
    ),
)

MIGRATIONS += (
    Migration(
        7,
        "lineage edges: each link also as src -> dst between UUID nodes (artifact -> the run "
        "that output it, run -> its input)",
        (
            # A run's node is CAST(md5(run_id) AS UUID) (lineage_store.run_node);
            # writers fill both columns with every link they insert.
            "ALTER TABLE run_artifact_link ADD COLUMN IF NOT EXISTS src UUID",
            "ALTER TABLE run_artifact_link ADD COLUMN IF NOT EXISTS dst UUID",
            """
            UPDATE run_artifact_link SET
                src = CASE WHEN direction = 'output' THEN artifact_id
                           ELSE CAST(md5(run_id) AS UUID) END,
                dst = CASE WHEN direction = 'output' THEN CAST(md5(run_id) AS UUID)
                           ELSE artifact_id END
            WHERE src IS NULL OR dst IS NULL
            """,
        ),
    ),
    # Its own migration: DuckDB refuses CREATE INDEX after an UPDATE in the
    # same transaction, and indexing first would make the UPDATE rewrite every
    # link through four indexes (5 s instead of 0.1 s beside 200,000 links).
    Migration(
        8,
        "index of the lineage edges by src",
        ("CREATE INDEX IF NOT EXISTS link_src_idx ON run_artifact_link (src)",),
    ),
)


def _convert_hot_tables(con: Any) -> None:
    from consist.core.store.hot_layout import convert_legacy_tables

    convert_legacy_tables(con)


MIGRATIONS += (
    Migration(
        9,
        "hot data: rows in hot_rows.<t> with one ingest number, global_tables.<t> a view "
        "adding the provenance columns from the ledger",
        (
            "ALTER TABLE ingested_artifact ADD COLUMN IF NOT EXISTS ingest_no INTEGER",
            "ALTER TABLE ingested_artifact ADD COLUMN IF NOT EXISTS year INTEGER",
            "ALTER TABLE ingested_artifact ADD COLUMN IF NOT EXISTS iteration INTEGER",
        ),
        convert=_convert_hot_tables,
    ),
)


def _label_links(con: Any) -> None:
    # Lineage groups are DuckDB's (see lineage_groups): PostgreSQL gets the
    # column and the table only, and its links stay unlabelled.
    from consist.core.store.lineage_groups import label_unlabelled

    label_unlabelled(con)


MIGRATIONS += (
    Migration(
        10,
        "lineage groups: each link labelled with its run's group, groups joined in "
        "lineage_group_alias, so a walk joins only the links of its own group",
        (
            "ALTER TABLE run_artifact_link ADD COLUMN IF NOT EXISTS lineage_group BIGINT",
            """
            CREATE TABLE IF NOT EXISTS lineage_group_alias (
                grp BIGINT PRIMARY KEY,
                root BIGINT NOT NULL
            )
            """,
        ),
        convert=_label_links,
    ),
)

LATEST_VERSION = max(m.version for m in MIGRATIONS)
assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1)), (
    "migrations must be numbered 1..N in order"
)

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
)
"""


def current_version(con: Any) -> int:
    """The highest migration recorded in the DuckDB store ``con`` holds (0: none).

    Parameters
    ----------
    con:
        A DuckDB connection to the store.

    Returns
    -------
    int
        The schema version in force.
    """
    # duckdb_tables() costs a fraction of information_schema.tables.
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return 0
    value = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    return int(value or 0)


def apply_migrations(con: Any, now: Callable[[], Any]) -> int:
    """Apply the pending migrations of the DuckDB store ``con`` holds.

    A new store (version 0: its tables are empty) gets every migration in
    one transaction. An existing store gets one transaction per migration,
    so that a migration may index what the one before it filled (DuckDB
    refuses ``CREATE INDEX`` after an ``UPDATE`` in the same transaction).
    The version is read again inside each transaction: another process may
    have migrated the store meanwhile.

    Parameters
    ----------
    con:
        A DuckDB connection holding the store's file (no transaction open).
    now:
        Returns the ``applied_at`` value recorded with each migration.

    Returns
    -------
    int
        The schema version now in force (:data:`LATEST_VERSION`).

    Raises
    ------
    Exception
        Whatever a statement raises; the migration being applied is rolled
        back (earlier ones stay applied).
    """
    while True:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(SCHEMA_VERSION_DDL)
            current = current_version(con)
            pending = [m for m in MIGRATIONS if m.version > current]
            if current > 0:
                pending = pending[:1]
            for migration in pending:
                for statement in migration.statements:
                    con.execute(statement)
                if migration.convert is not None:
                    migration.convert(con)
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [migration.version, migration.description, now()],
                )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        if not pending:
            return current
        if pending[-1].version >= LATEST_VERSION:
            return LATEST_VERSION


# The bytes of an empty store at LATEST_VERSION, made once per process.
_TEMPLATE: list[bytes] = []
_TEMPLATE_GUARD = threading.Lock()
# New stores this process let DuckDB create (and migrated statement by statement).
_MIGRATED_NEW: list[int] = [0]


def seed_new_store(path: str) -> bool:
    """Create the new store at ``path`` from the template, unless it is the process's first.

    Making the template costs about what it saves once (a DuckDB instance
    and the migrations, on a temporary file), so a process that creates one
    store (the common case) lets DuckDB create it and runs the migrations,
    as without a template; from its second new store on, the process copies
    the template (made then, once). See :func:`seed_store_file`.

    Returns
    -------
    bool
        True when the file was created from the template; False when the
        caller lets DuckDB create it (first new store of this process, or a
        file that appeared meanwhile).
    """
    with _TEMPLATE_GUARD:
        if not _TEMPLATE and _MIGRATED_NEW[0] == 0:
            _MIGRATED_NEW[0] += 1
            return False
    return seed_store_file(path)


def _template() -> bytes:
    """The file of an empty, fully migrated store (made by this process, once)."""
    with _TEMPLATE_GUARD:
        if _TEMPLATE:
            return _TEMPLATE[0]
        import duckdb

        from consist.core.store.rows import to_db_time

        with tempfile.TemporaryDirectory(prefix="consist-schema-") as directory:
            path = os.path.join(directory, "template.duckdb")
            con = duckdb.connect(path)
            try:
                apply_migrations(con, lambda: to_db_time(datetime.now(UTC)))
            finally:
                con.close()  # checkpoints: the file alone is the whole database
            if os.path.exists(path + ".wal"):
                raise RuntimeError("the empty store kept a write-ahead log after closing")
            with open(path, "rb") as fh:
                _TEMPLATE.append(fh.read())
        return _TEMPLATE[0]


def seed_store_file(path: str) -> bool:
    """Create a new store at ``path`` as a copy of an empty store at :data:`LATEST_VERSION`.

    Running the migrations on a new file costs DuckDB about 0.25 ms per
    statement (40 of them); writing the bytes of the empty store this
    process migrated once costs a fraction, fsync included. The copy appears under ``path``
    atomically (a hard link), only if nothing is there yet: a file another
    process created meanwhile is kept. The ``applied_at`` of its
    ``schema_version`` rows is when this process made its template.

    Parameters
    ----------
    path:
        The database file to create; its directory must exist.

    Returns
    -------
    bool
        True when the file was created, False when one already existed.

    Raises
    ------
    OSError
        When the copy cannot be made (e.g. no hard links on that file
        system); the caller then lets DuckDB create the file.
    """
    content = _template()
    part = f"{path}.{uuid.uuid4().hex[:12]}.new"
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)  # as DuckDB syncs a file it creates (not its directory)
        finally:
            os.close(fd)
        try:
            os.link(part, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
    return True
