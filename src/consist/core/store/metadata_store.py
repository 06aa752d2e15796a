"""All SQL for runs, artifacts, links, content identities and the stat cache.

The rest of the package asks this store questions in domain terms
(``find_completed_run(signature)``, ``sync_record(record)``); swapping DuckDB
for another engine means re-implementing this class, nothing else.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from consist.core.identity.hashing import StatCacheEntry, StatKey
from consist.core.store.connection import DuckDBConnectionManager
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_DDL
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run

RUN_COLUMNS = (
    "id, model_name, description, status, tags, year, iteration, stage, phase, "
    "parent_run_id, config_hash, input_hash, git_hash, signature, meta, created_at, ended_at"
)
ARTIFACT_COLUMNS = (
    "id, key, uri, driver, hash, content_id, table_path, array_path, size_bytes, "
    "run_id, meta, created_at"
)

# Artifact columns as a run saw them: the link's key and metadata.
_LINKED_ARTIFACT_COLUMNS = (
    "a.id, l.key, a.uri, a.driver, a.hash, a.content_id, a.table_path, a.array_path, "
    "a.size_bytes, a.run_id, coalesce(l.meta, a.meta), a.created_at"
)


def _to_db_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _from_db_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC)


def _json_dump(value: Mapping[str, Any] | None) -> str:
    return json.dumps(value or {}, default=str, sort_keys=True)


def _json_load(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return json.loads(value)


def run_from_row(row: Sequence[Any]) -> Run:
    """Build a :class:`Run` from a row in ``RUN_COLUMNS`` order."""
    return Run.model_construct(
        id=row[0],
        model_name=row[1],
        description=row[2],
        status=row[3],
        tags=list(row[4] or []),
        year=row[5],
        iteration=row[6],
        stage=row[7],
        phase=row[8],
        parent_run_id=row[9],
        config_hash=row[10],
        input_hash=row[11],
        git_hash=row[12],
        signature=row[13],
        meta=_json_load(row[14]),
        created_at=_from_db_time(row[15]),
        ended_at=_from_db_time(row[16]),
    )


def artifact_from_row(row: Sequence[Any]) -> Artifact:
    """Build an :class:`Artifact` from a row in ``ARTIFACT_COLUMNS`` order."""
    return Artifact.model_construct(
        id=row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0])),
        key=row[1],
        uri=row[2],
        driver=row[3] or "other",
        hash=row[4],
        content_id=row[5],
        table_path=row[6],
        array_path=row[7],
        size_bytes=row[8],
        run_id=row[9],
        meta=_json_load(row[10]),
        created_at=_from_db_time(row[11]),
    )


def _run_params(run: Run, updated_ns: int) -> list[Any]:
    return [
        run.id,
        run.model_name,
        run.description,
        run.status,
        list(run.tags),
        run.year,
        run.iteration,
        run.stage,
        run.phase,
        run.parent_run_id,
        run.config_hash,
        run.input_hash,
        run.git_hash,
        run.signature,
        _json_dump(run.meta),
        _to_db_time(run.created_at),
        _to_db_time(run.ended_at),
        updated_ns,
    ]


def _artifact_params(art: Artifact) -> list[Any]:
    return [
        str(art.id),
        art.key,
        art.uri,
        art.driver,
        art.hash,
        str(art.content_id) if art.content_id else None,
        art.table_path,
        art.array_path,
        art.size_bytes,
        art.run_id,
        _json_dump(art.meta),
        _to_db_time(art.created_at),
    ]


_INSERT_RUN = f"""
INSERT INTO run ({RUN_COLUMNS}, updated_ns, identity)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_UPSERT_RUN = f"""
INSERT INTO run ({RUN_COLUMNS}, updated_ns, identity)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    identity = coalesce(excluded.identity, run.identity),
    model_name = excluded.model_name, description = excluded.description,
    status = excluded.status, tags = excluded.tags, year = excluded.year,
    iteration = excluded.iteration, stage = excluded.stage, phase = excluded.phase,
    parent_run_id = excluded.parent_run_id, config_hash = excluded.config_hash,
    input_hash = excluded.input_hash, git_hash = excluded.git_hash,
    signature = excluded.signature, meta = excluded.meta,
    created_at = excluded.created_at, ended_at = excluded.ended_at,
    updated_ns = excluded.updated_ns
WHERE excluded.updated_ns >= run.updated_ns
"""

# The run that created an artifact owns its key and metadata; other runs that
# link it (with their own key/metadata on the link) only carry hash updates.
_UPSERT_OWN_ARTIFACT = f"""
INSERT INTO artifact ({ARTIFACT_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    key = excluded.key, meta = excluded.meta,
    hash = excluded.hash, content_id = excluded.content_id
"""

_UPSERT_LINKED_ARTIFACT = f"""
INSERT INTO artifact ({ARTIFACT_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    hash = excluded.hash, content_id = excluded.content_id
"""


class MetadataStore:
    """Domain-level access to the metadata tables of one DuckDB file.

    Parameters
    ----------
    db_path:
        The DuckDB file (created on first use).
    connections:
        Optional pre-built connection manager (tests inject one with other
        timings); by default one is created with the given timings.
    """

    def __init__(
        self,
        db_path: str,
        *,
        connections: DuckDBConnectionManager | None = None,
        lock_timeout_s: float = 120.0,
        idle_release_s: float = 0.25,
        max_hold_s: float = 2.0,
    ) -> None:
        self.db_path = db_path
        self.connections = connections or DuckDBConnectionManager(
            db_path,
            lock_timeout_s=lock_timeout_s,
            idle_release_s=idle_release_s,
            max_hold_s=max_hold_s,
        )
        self._engine: Any = None

    # -- schema ---------------------------------------------------------------

    def ensure_schema(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        with self.connections.connection() as con:
            current = self._current_version(con)
            if current >= LATEST_VERSION:
                return current
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(SCHEMA_VERSION_DDL)
                current = self._current_version(con)
                for migration in MIGRATIONS:
                    if migration.version <= current:
                        continue
                    for statement in migration.statements:
                        con.execute(statement)
                    con.execute(
                        "INSERT INTO schema_version VALUES (?, ?, ?)",
                        [migration.version, migration.description, _to_db_time(datetime.now(UTC))],
                    )
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return LATEST_VERSION

    @staticmethod
    def _current_version(con: Any) -> int:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        ).fetchone()[0]
        if not exists:
            return 0
        value = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return int(value or 0)

    def schema_version(self) -> int:
        """The highest applied migration."""
        with self.connections.connection() as con:
            return self._current_version(con)

    # -- writes ---------------------------------------------------------------

    def sync_record(
        self,
        record: ConsistRecord,
        *,
        artifacts: Iterable[tuple[Artifact, str]] | None = None,
        stat_entries: Sequence[StatCacheEntry] = (),
        first: bool = False,
    ) -> None:
        """Write a run snapshot in one transaction.

        Parameters
        ----------
        record:
            The run snapshot (its run row is upserted; an older snapshot never
            overwrites a newer one).
        artifacts:
            ``(artifact, direction)`` pairs to upsert and link; defaults to
            every input and output in ``record`` (used by recovery).
        stat_entries:
            Newly learned stat-cache entries to persist in the same batch.
        first:
            The run has never been written to the store by this process: a
            plain insert (cheaper than an upsert) carrying the identity
            manifest; falls back to an upsert if the row exists after all.
        """
        full = artifacts is None
        if artifacts is None:
            artifacts = [(a, "input") for a in record.inputs] + [
                (a, "output") for a in record.outputs
            ]
        artifacts = list(artifacts)
        updated_ns = record.updated_ns or time.time_ns()
        identity = None
        if record.identity is not None and (first or full):
            identity = json.dumps(record.identity, default=str, sort_keys=True)
        params = [*_run_params(record.run, updated_ns), identity]
        if first and not full:
            import duckdb

            try:
                self._write_run(
                    run_sql=_INSERT_RUN,
                    params=params,
                    record=record,
                    artifacts=artifacts,
                    stat_entries=stat_entries,
                )
                return
            except duckdb.ConstraintException:
                pass  # the row exists after all (e.g. replayed by another process)
        self._write_run(
            run_sql=_UPSERT_RUN,
            params=params,
            record=record,
            artifacts=artifacts,
            stat_entries=stat_entries,
        )

    def _write_run(
        self,
        *,
        run_sql: str,
        params: list[Any],
        record: ConsistRecord,
        artifacts: Sequence[tuple[Artifact, str]],
        stat_entries: Sequence[StatCacheEntry],
    ) -> None:
        with self.connections.transaction() as con:
            con.execute(run_sql, params)
            if artifacts:
                self._write_artifacts(con, record.run.id, artifacts)
            if stat_entries:
                self._write_stat_entries(con, stat_entries)

    def _write_artifacts(
        self, con: Any, run_id: str, artifacts: Sequence[tuple[Artifact, str]]
    ) -> None:
        seen: dict[uuid.UUID, Artifact] = {}
        for art, _ in artifacts:
            seen[art.id] = art
        own = [_artifact_params(a) for a in seen.values() if a.run_id == run_id]
        linked = [_artifact_params(a) for a in seen.values() if a.run_id != run_id]
        if own:
            con.executemany(_UPSERT_OWN_ARTIFACT, own)
        if linked:
            con.executemany(_UPSERT_LINKED_ARTIFACT, linked)
        con.executemany(
            "INSERT INTO run_artifact_link VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
            "key = excluded.key, meta = excluded.meta",
            [
                [run_id, str(a.id), direction, a.key, _json_dump(a.meta)]
                for a, direction in artifacts
            ],
        )
        now = _to_db_time(datetime.now(UTC))
        contents = {
            a.content_id: [str(a.content_id), a.hash, a.size_bytes, now]
            for a in seen.values()
            if a.content_id is not None and a.hash
        }
        if contents:
            con.executemany(
                "INSERT INTO content_identity VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                list(contents.values()),
            )

    @staticmethod
    def _write_stat_entries(con: Any, entries: Sequence[StatCacheEntry]) -> None:
        con.executemany(
            """
            INSERT INTO stat_cache VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino,
                size = excluded.size, mtime_ns = excluded.mtime_ns,
                ctime_ns = excluded.ctime_ns, digest = excluded.digest,
                recorded_ns = excluded.recorded_ns
            """,
            [
                [
                    e.path,
                    e.key.dev,
                    e.key.ino,
                    e.key.size,
                    e.key.mtime_ns,
                    e.key.ctime_ns,
                    e.digest,
                    e.recorded_ns,
                ]
                for e in entries
            ],
        )

    def put_stat_entries(self, entries: Sequence[StatCacheEntry]) -> None:
        """Persist stat-cache entries outside a run write."""
        if entries:
            with self.connections.transaction() as con:
                self._write_stat_entries(con, entries)

    # -- stat cache (StatCacheBackend protocol) --------------------------------

    def get_many(self, paths: Sequence[str]) -> dict[str, StatCacheEntry]:
        """Stat-cache entries for ``paths`` (missing ones are absent)."""
        if not paths:
            return {}
        with self.connections.connection() as con:
            rows = con.execute(
                "SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest, recorded_ns "
                "FROM stat_cache WHERE path IN (SELECT unnest(?))",
                [list(paths)],
            ).fetchall()
        return {
            r[0]: StatCacheEntry(
                path=r[0],
                key=StatKey(dev=r[1], ino=r[2], size=r[3], mtime_ns=r[4], ctime_ns=r[5]),
                digest=r[6],
                recorded_ns=r[7],
            )
            for r in rows
        }

    def put_many(self, entries: Sequence[StatCacheEntry]) -> None:
        """Persist stat-cache entries (StatCacheBackend protocol)."""
        self.put_stat_entries(entries)

    # -- run reads --------------------------------------------------------------

    def get_run(self, run_id: str) -> Run | None:
        """The run with this id, or None."""
        with self.connections.connection() as con:
            row = con.execute(f"SELECT {RUN_COLUMNS} FROM run WHERE id = ?", [run_id]).fetchone()
        return run_from_row(row) if row else None

    def run_exists(self, run_id: str) -> bool:
        """Whether a run row with this id exists."""
        with self.connections.connection() as con:
            return con.execute("SELECT 1 FROM run WHERE id = ?", [run_id]).fetchone() is not None

    def count_runs(self) -> int:
        """Number of run rows."""
        with self.connections.connection() as con:
            return int(con.execute("SELECT count(*) FROM run").fetchone()[0])

    def find_runs(
        self,
        *,
        tags: Sequence[str] | None = None,
        year: int | None = None,
        iteration: int | None = None,
        stage: str | None = None,
        phase: str | None = None,
        model: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        limit: int | None = 100,
    ) -> list[Run]:
        """Runs matching all given filters, newest first."""
        clauses, params = [], []
        for column, value in (
            ("year", year),
            ("iteration", iteration),
            ("stage", stage),
            ("phase", phase),
            ("model_name", model),
            ("status", status),
            ("parent_run_id", parent_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if tags:
            clauses.append("list_has_all(tags, ?)")
            params.append(list(tags))
        sql = f"SELECT {RUN_COLUMNS} FROM run"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.connections.connection() as con:
            rows = con.execute(sql, params).fetchall()
        return [run_from_row(r) for r in rows]

    def find_completed_run(self, signature: str) -> Run | None:
        """The newest completed run with this identity signature."""
        with self.connections.connection() as con:
            row = con.execute(
                f"SELECT {RUN_COLUMNS} FROM run WHERE signature = ? AND status = 'completed' "
                "ORDER BY created_at DESC LIMIT 1",
                [signature],
            ).fetchone()
        return run_from_row(row) if row else None

    def find_completed_run_by_hashes(
        self, config_hash: str, input_hash: str, git_hash: str
    ) -> Run | None:
        """The newest completed run with these three identity digests."""
        with self.connections.connection() as con:
            row = con.execute(
                f"SELECT {RUN_COLUMNS} FROM run WHERE config_hash = ? AND input_hash = ? "
                "AND git_hash = ? AND status = 'completed' ORDER BY created_at DESC LIMIT 1",
                [config_hash, input_hash, git_hash],
            ).fetchone()
        return run_from_row(row) if row else None

    def find_cache_candidates(
        self, signature: str, limit: int = 5
    ) -> list[tuple[Run, list[Artifact]]]:
        """Completed runs with this signature, newest first, with their outputs.

        One query: cache lookups are on every run's critical path.
        """
        run_cols = ", ".join("r." + c for c in RUN_COLUMNS.split(", "))
        with self.connections.connection() as con:
            rows = con.execute(
                f"SELECT {run_cols}, {_LINKED_ARTIFACT_COLUMNS} FROM "
                "(SELECT * FROM run WHERE signature = ? AND status = 'completed' "
                " ORDER BY created_at DESC LIMIT ?) r "
                "LEFT JOIN run_artifact_link l ON l.run_id = r.id AND l.direction = 'output' "
                "LEFT JOIN artifact a ON a.id = l.artifact_id "
                "ORDER BY r.created_at DESC, a.created_at",
                [signature, limit],
            ).fetchall()
        n = len(RUN_COLUMNS.split(", "))
        found: dict[str, tuple[Run, list[Artifact]]] = {}
        for row in rows:
            run_id = row[0]
            if run_id not in found:
                found[run_id] = (run_from_row(row[:n]), [])
            if row[n] is not None:
                found[run_id][1].append(artifact_from_row(row[n:]))
        return list(found.values())

    def nearest_completed_run(
        self, model: str, *, exclude_id: str | None = None
    ) -> tuple[Run, dict[str, Any] | None] | None:
        """The newest completed run of ``model`` with its identity manifest."""
        with self.connections.connection() as con:
            row = con.execute(
                f"SELECT {RUN_COLUMNS}, identity FROM run "
                "WHERE model_name = ? AND status = 'completed' AND id IS DISTINCT FROM ? "
                "ORDER BY created_at DESC LIMIT 1",
                [model, exclude_id],
            ).fetchone()
        if row is None:
            return None
        manifest = json.loads(row[-1]) if row[-1] else None
        return run_from_row(row[:-1]), manifest

    def get_identity_manifest(self, run_id: str) -> dict[str, Any] | None:
        """The stored identity manifest of a run, or None."""
        with self.connections.connection() as con:
            row = con.execute("SELECT identity FROM run WHERE id = ?", [run_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def producer_signatures(self, artifact_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """For each artifact, the signature of the first completed run that output it."""
        if not artifact_ids:
            return {}
        with self.connections.connection() as con:
            rows = con.execute(
                "SELECT l.artifact_id, r.signature FROM run_artifact_link l "
                "JOIN run r ON r.id = l.run_id "
                "WHERE l.direction = 'output' AND r.status = 'completed' "
                "AND r.signature IS NOT NULL AND l.artifact_id IN (SELECT unnest(?::UUID[])) "
                "QUALIFY row_number() OVER (PARTITION BY l.artifact_id ORDER BY r.created_at) = 1",
                [[str(a) for a in artifact_ids]],
            ).fetchall()
        return {(r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(str(r[0]))): r[1] for r in rows}

    def artifacts_with_content(self, content_id: uuid.UUID, limit: int = 20) -> list[Artifact]:
        """Artifacts sharing ``content_id`` (newest first), to restore lost copies."""
        with self.connections.connection() as con:
            rows = con.execute(
                f"SELECT {ARTIFACT_COLUMNS} FROM artifact WHERE content_id = ? "
                "ORDER BY created_at DESC LIMIT ?",
                [str(content_id), limit],
            ).fetchall()
        return [artifact_from_row(r) for r in rows]

    # -- artifact reads --------------------------------------------------------------

    def get_artifact_by_id(self, artifact_id: uuid.UUID | str) -> Artifact | None:
        """The artifact with this id, or None."""
        with self.connections.connection() as con:
            row = con.execute(
                f"SELECT {ARTIFACT_COLUMNS} FROM artifact WHERE id = ?", [str(artifact_id)]
            ).fetchone()
        return artifact_from_row(row) if row else None

    def get_artifact_by_key(self, key: str, *, run_id: str | None = None) -> Artifact | None:
        """The newest artifact with this key, optionally linked to ``run_id``.

        Without ``run_id`` the artifact's own key is matched; with it, the key
        under which that run logged the artifact (its link key).
        """
        if run_id is None:
            sql = (
                f"SELECT {ARTIFACT_COLUMNS} FROM artifact WHERE key = ? "
                "ORDER BY created_at DESC LIMIT 1"
            )
            params: list[Any] = [key]
        else:
            sql = (
                f"SELECT {_LINKED_ARTIFACT_COLUMNS} "
                "FROM artifact a JOIN run_artifact_link l ON l.artifact_id = a.id "
                "WHERE l.key = ? AND l.run_id = ? "
                "ORDER BY (l.direction = 'output') DESC, a.created_at DESC LIMIT 1"
            )
            params = [key, run_id]
        with self.connections.connection() as con:
            row = con.execute(sql, params).fetchone()
        return artifact_from_row(row) if row else None

    def get_artifact_by_uri(
        self, uri: str, *, table_path: str | None = None, array_path: str | None = None
    ) -> Artifact | None:
        """The newest artifact at ``uri`` (and inner table/array path)."""
        sql = f"SELECT {ARTIFACT_COLUMNS} FROM artifact WHERE uri = ?"
        params: list[Any] = [uri]
        for column, value in (("table_path", table_path), ("array_path", array_path)):
            if value is None:
                sql += f" AND {column} IS NULL"
            else:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += " ORDER BY created_at DESC LIMIT 1"
        with self.connections.connection() as con:
            row = con.execute(sql, params).fetchone()
        return artifact_from_row(row) if row else None

    def latest_outputs_at(self, uris: Sequence[str]) -> dict[str, Artifact]:
        """For each URI, the newest artifact a completed run logged there as output.

        Used by automatic input discovery.
        """
        if not uris:
            return {}
        cols = ", ".join("a." + c for c in ARTIFACT_COLUMNS.split(", "))
        sql = (
            f"SELECT {cols} FROM artifact a "
            "JOIN run_artifact_link l ON l.artifact_id = a.id AND l.direction = 'output' "
            "JOIN run r ON r.id = l.run_id AND r.status = 'completed' "
            "WHERE a.uri IN (SELECT unnest(?)) AND a.table_path IS NULL "
            "AND a.array_path IS NULL "
            "QUALIFY row_number() OVER (PARTITION BY a.uri ORDER BY a.created_at DESC) = 1"
        )
        with self.connections.connection() as con:
            rows = con.execute(sql, [list(uris)]).fetchall()
        return {r[2]: artifact_from_row(r) for r in rows}

    def get_run_artifacts(self, run_id: str) -> list[tuple[Artifact, str]]:
        """Every ``(artifact, direction)`` linked to ``run_id``, oldest first.

        Each artifact carries the key and metadata the run logged it with.
        """
        with self.connections.connection() as con:
            rows = con.execute(
                f"SELECT {_LINKED_ARTIFACT_COLUMNS}, l.direction FROM artifact a "
                "JOIN run_artifact_link l ON l.artifact_id = a.id WHERE l.run_id = ? "
                "ORDER BY a.created_at, a.key",
                [run_id],
            ).fetchall()
        return [(artifact_from_row(r[:-1]), r[-1]) for r in rows]

    def table_counts(self) -> dict[str, int]:
        """Row counts of the metadata tables (diagnostics and tests)."""
        with self.connections.connection() as con:
            return {
                t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in (
                    "run",
                    "artifact",
                    "run_artifact_link",
                    "content_identity",
                    "stat_cache",
                )
            }

    # -- SQLAlchemy -----------------------------------------------------------

    @property
    def engine(self) -> Any:
        """A SQLAlchemy engine over the same DuckDB database.

        Its connections are cursors of this process's store connection, so
        they share one database instance (DuckDB refuses a second instance
        of the same file with other settings) and the same lock discipline.
        NullPool closes them as soon as SQLAlchemy releases them.
        """
        if self._engine is None:
            from sqlalchemy import create_engine, event
            from sqlalchemy.pool import NullPool

            engine = create_engine("duckdb:///:memory:", poolclass=NullPool)

            @event.listens_for(engine, "do_connect")
            def _connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
                from duckdb_engine import ConnectionWrapper

                with self.connections.connection() as con:
                    return ConnectionWrapper(con.cursor())

            self._engine = engine
        return self._engine

    def run_query(self, query: Any) -> list[Any]:
        """Execute a SQLAlchemy/SQLModel statement (or SQL text) and return all rows."""
        from sqlalchemy import text

        if isinstance(query, str):
            query = text(query)
        with self.connections.connection(), self.engine.connect() as con:
            result = con.execute(query)
            rows = list(result.all()) if result.returns_rows else []
            con.commit()
        return [r[0] if len(r) == 1 and _is_entity(r[0]) else r for r in rows]

    def close(self) -> None:
        """Release the database file and dispose of the engine."""
        self.connections.close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _is_entity(value: Any) -> bool:
    return hasattr(value, "__table__") or hasattr(value, "model_fields")
