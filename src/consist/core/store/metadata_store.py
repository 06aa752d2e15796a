"""All SQL for runs, artifacts, links, content identities and the stat cache.

The rest of the package asks this store questions in domain terms
(``find_completed_run(signature)``, ``sync_record(record)``); swapping DuckDB
for another engine means re-implementing this class, nothing else.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from consist.core.identity.hashing import StatCacheEntry, StatKey
from consist.core.store.batch import (
    PendingWrite,
    completed_signatures,
    freeze,
    write_stat_entries,
)
from consist.core.store.connection import (
    DuckDBConnectionManager,
    ReadOnlyStoreError,
    all_cores,
    is_storage_error,
)
from consist.core.store.facet_store import FacetStore
from consist.core.store.lineage_store import LineageStore
from consist.core.store.output_lookup import OutputLookupMixin, absent_outputs_for
from consist.core.store.overlapped_commit import Guard, commit_beside
from consist.core.store.pending_log import PendingLog
from consist.core.store.rows import (
    ARTIFACT_COLUMNS,
    LINKED_ARTIFACT_COLUMNS,
    RUN_COLUMNS,
    artifact_from_row,
    run_from_row,
    to_db_time,
)
from consist.core.store.run_pages import RunPageQueryMixin
from consist.core.store.run_queries import RunQueryMixin
from consist.core.store.schema import (
    LATEST_VERSION,
    apply_migrations,
    current_version,
    seed_new_store,
)
from consist.core.store.signature_index import signatures_for
from consist.core.store.store_identity import check_store_connection, check_store_path
from consist.core.store.write_log import LogState, completed_runs_with, encode_rows, log_state
from consist.core.store.write_log import append as log_writes
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run

logger = logging.getLogger("consist")

_STORES: weakref.WeakSet[MetadataStore] = weakref.WeakSet()


@atexit.register
def _flush_all_stores() -> None:
    """Commit queued snapshots of every open store when the interpreter exits."""
    for store in list(_STORES):
        store._flush_quietly()
        store.connections.close()
    PendingLog.close_all()  # removes ledgers with nothing outstanding


class MetadataStore(RunQueryMixin, RunPageQueryMixin, OutputLookupMixin):
    """Domain-level access to the metadata tables of one DuckDB file.

    Parameters
    ----------
    db_path:
        The DuckDB file (created on first use).
    connections:
        Optional pre-built connection manager (tests inject one with other
        timings); by default one is created with the given timings.
    read_only:
        Open the file read-only: queries work, writes raise
        :class:`~consist.core.store.connection.ReadOnlyStoreError`.
    """

    def __init__(
        self,
        db_path: str,
        *,
        connections: DuckDBConnectionManager | None = None,
        lock_timeout_s: float = 120.0,
        idle_release_s: float = 0.25,
        max_hold_s: float = 2.0,
        read_only: bool = False,
    ) -> None:
        check_store_path(db_path)  # a data file is never opened as a store
        self.db_path = db_path
        self.read_only = read_only
        self.connections = connections or DuckDBConnectionManager.shared(
            db_path,
            lock_timeout_s=lock_timeout_s,
            idle_release_s=idle_release_s,
            max_hold_s=max_hold_s,
            read_only=read_only,
        )
        if not read_only:  # a second new file of a process: a copy of an empty store
            self.connections.create_file = seed_new_store
        self._attach(log_state(self.connections))

    def _attach(self, log: LogState) -> None:
        """Set up the write queue, indexes and facet store over ``self.connections``."""
        self._engine: Any = None
        self._pending: list[PendingWrite] = []
        self._pending_lock = threading.Lock()
        self.connections.before_release.append(self._flush_quietly)
        self._signatures = signatures_for(self.connections)
        self._log = log
        # Facet payloads and their key/value index (all facet SQL lives there).
        self.facets = FacetStore(self.connections, before_read=self._flush_before_read)
        _STORES.add(self)

    # -- schema ---------------------------------------------------------------

    def ensure_schema(self) -> int:
        """Check the file is a Consist store, apply pending migrations.

        Returns
        -------
        int
            The schema version now in force.

        Raises
        ------
        ValueError
            If the database is not a Consist store (see
            :mod:`consist.core.store.store_identity`); nothing is written.
        """
        with self._open_checked() as con:
            if self.connections.created_file:  # a copy of our empty store, just made
                self.connections.created_file = False
                return LATEST_VERSION
            try:
                check_store_connection(con, self.db_path)
            except ValueError:
                self.close()  # nobody gets a handle on a refused store: give the file back
                raise
            current = self._current_version(con)
            if current >= LATEST_VERSION:
                return current
            if self.read_only:
                raise ReadOnlyStoreError(
                    f"{self.db_path} has schema version {current} and this Consist needs "
                    f"{LATEST_VERSION}; it cannot be migrated with read_only=True: open it "
                    "once with read_only=False (on a writable file system) to migrate it"
                )
            return apply_migrations(con, lambda: to_db_time(datetime.now(UTC)))

    @contextmanager
    def _open_checked(self) -> Iterator[Any]:
        """The connection, with DuckDB's refusal of a non-database file made clear."""
        import duckdb

        try:
            with self.connections.connection() as con:
                yield con
        except duckdb.IOException as exc:
            if "not a valid DuckDB database" not in str(exc):
                raise
            raise ValueError(
                f"db_path={self.db_path!r} exists and is not a valid DuckDB database "
                f"(empty or damaged: {exc}); point db_path at a new file or an existing "
                "Consist store, or remove the file if it is an empty placeholder"
            ) from exc

    @staticmethod
    def _current_version(con: Any) -> int:
        return current_version(con)

    def schema_version(self) -> int:
        """The highest applied migration."""
        self._flush_before_read()
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
        on_synced: Callable[[], None] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        """Write a run snapshot and commit it before returning.

        Once this returns, every tracker and process that opens the store
        sees the snapshot. If the commit fails the write stays queued (the
        journal holds it anyway), is retried before the next read or write
        of this store, and the error propagates.

        Parameters
        ----------
        record:
            The run snapshot (its run row is upserted; an older snapshot never
            overwrites a newer one).
        artifacts:
            ``(artifact, direction)`` pairs to upsert and link; defaults to
            every input and output in ``record`` (used by recovery).
        stat_entries:
            Newly learned stat-cache entries to persist in the same transaction.
        first:
            First write of this run by this process: carries its identity
            manifest (always carried when replaying a full record).
        on_synced:
            Called once the snapshot is committed.
        before_commit:
            The journal's file write: called in this thread while the
            snapshot's row is written on the store's worker thread, and
            always before the commit; called even if the database fails. If
            it raises, the snapshot is rolled back and dropped, never
            committed, and its error propagates.
        """
        if self.read_only:
            raise ReadOnlyStoreError(
                f"run {record.run.id!r} cannot be written: the store {self.db_path} was "
                "opened with read_only=True"
            )
        full = artifacts is None
        if artifacts is None:
            artifacts = [(a, "input") for a in record.inputs] + [
                (a, "output") for a in record.outputs
            ]
        write = freeze(
            record,
            list(artifacts),
            stat_entries,
            with_identity=first or full,
            on_synced=on_synced,
            new_run=first and not full,
        )
        self.flush(before_commit, write)

    def sync_records(
        self,
        records: Sequence[ConsistRecord],
        *,
        on_synced: Callable[[], None] | None = None,
    ) -> None:
        """Write many full run snapshots (recovery) and commit them in one transaction.

        Each record is written as :meth:`sync_record` writes a replayed
        snapshot (every input and output linked, identity included); the
        whole batch costs one transaction instead of one per record.

        Parameters
        ----------
        records:
            Snapshots to write; an older snapshot never overwrites a newer row.
        on_synced:
            Called once, after the whole batch is committed.
        """
        writes = [
            freeze(
                record,
                [(a, "input") for a in record.inputs] + [(a, "output") for a in record.outputs],
                (),
                with_identity=True,
            )
            for record in records
        ]
        if not writes:
            return
        # Writes of one flush commit together: the last one's callback means all.
        writes[-1].on_synced = on_synced
        with self._pending_lock:
            self._pending.extend(writes)
        self.flush()

    def flush(
        self, before_commit: Callable[[], None] | None = None, write: PendingWrite | None = None
    ) -> None:
        """Commit the queued snapshots and ``write`` as write-log rows, in one transaction.

        The tables receive them before the next read or release (see
        :mod:`.write_log`). ``before_commit`` (see :meth:`sync_record`) runs
        in this thread while the statements execute on the store's worker
        thread (:mod:`.overlapped_commit`), and always runs, even when the
        database fails. On failure the writes stay queued (the journal holds
        them) and the error propagates; ``write`` is dropped if
        ``before_commit`` fails.
        """
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if write is not None:
            batch.append(write)
        if not batch:
            return
        guard = Guard(before_commit)
        try:
            if guard.pending:
                epoch = commit_beside(self.connections, encode_rows(batch), guard)
            else:
                with self.connections.transaction(hot=True) as con:
                    log_writes(con, batch)
                    epoch = self.connections.epoch
        except BaseException:
            try:
                guard.run()  # the database failed before the guard ran: journal the run
            finally:
                with self._pending_lock:
                    self._pending[:0] = batch[:-1] if guard.failed else batch
            raise
        self._log.logged(epoch, batch)
        self._signatures.add(epoch, completed_signatures(batch))
        absent_outputs_for(self.connections).discard_written(batch)
        for write in batch:
            if write.on_synced is not None:
                try:
                    write.on_synced()
                except Exception:  # bookkeeping only: the data is committed
                    logger.exception("consist: post-commit callback failed")

    @property
    def pending_writes(self) -> int:
        """Snapshots whose commit failed and that wait for a retry."""
        return len(self._pending)

    def _flush_before_read(self) -> None:
        if self._pending:
            try:
                self.flush()
            except Exception as exc:
                # A full disk must not make the store unreadable: the queued
                # writes are safe in the journal and retried before the next read.
                if not is_storage_error(exc):
                    raise
                logger.warning(
                    "consist: reading %s without %d queued run snapshot(s) (%s)",
                    self.db_path,
                    len(self._pending),
                    exc,
                )

    def _flush_quietly(self) -> None:
        """Flush for the idle timer / exit: log instead of raising."""
        try:
            self.flush()
        except Exception as exc:
            logger.error(
                "consist: could not write %d queued run snapshot(s) to %s (%s); they are "
                "safe in the journal and will be replayed when the store is next opened",
                len(self._pending),
                self.db_path,
                exc,
            )

    def put_stat_entries(self, entries: Sequence[StatCacheEntry]) -> None:
        """Persist stat-cache entries outside a run write."""
        if entries:
            with self.connections.transaction() as con:
                write_stat_entries(con, entries)

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
        self._flush_before_read()
        with self.connections.connection() as con:
            row = con.execute(f"SELECT {RUN_COLUMNS} FROM run WHERE id = ?", [run_id]).fetchone()
        return run_from_row(row) if row else None

    def run_exists(self, run_id: str) -> bool:
        """Whether a run row with this id exists."""
        self._flush_before_read()
        with self.connections.connection() as con:
            return con.execute("SELECT 1 FROM run WHERE id = ?", [run_id]).fetchone() is not None

    def run_versions(self, run_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """``{run_id: (status, updated_ns)}`` of the runs among ``run_ids`` that have a row."""
        if not run_ids:
            return {}
        self._flush_before_read()
        with self.connections.connection() as con:
            rows = con.execute(
                "SELECT id, status, updated_ns FROM run WHERE id IN (SELECT unnest(?))",
                [list(run_ids)],
            ).fetchall()
        return {r[0]: (r[1], int(r[2])) for r in rows}

    def count_runs(self) -> int:
        """Number of run rows."""
        self._flush_before_read()
        with self.connections.connection() as con:
            return int(con.execute("SELECT count(*) FROM run").fetchone()[0])

    def find_runs(
        self, *, tags: Sequence[str] | None = None, limit: int | None = 100, **filters: Any
    ) -> list[Run]:
        """Runs matching all given filters, newest first (see ``query_runs``)."""
        return self.query_runs(filters, tags=tags, limit=limit)

    def find_completed_run(self, signature: str) -> Run | None:
        """The newest completed run with this identity signature."""
        self._flush_before_read()
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
        self._flush_before_read()
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

        On every run's critical path, so it never applies the write log: in a
        loop of runs the signature index answers the common miss without a
        query (see :mod:`consist.core.store.signature_index`); otherwise a
        point query on the signature and one for the candidates' outputs,
        merged with this process's writes not applied yet.
        """
        with self.connections.connection(hot=True) as con:
            epoch = self.connections.epoch
            if self._signatures.known_absent(epoch, signature):
                return []
            if not self._signatures.may_exist(
                epoch, signature, lambda: self._completed_signatures(con)
            ):
                return []
            rows = con.execute(
                f"SELECT {RUN_COLUMNS} FROM run WHERE signature = ? AND status = 'completed'",
                [signature],
            ).fetchall()
            logged = self._logged_candidates(signature)
            runs = {r.id: r for r in (run_from_row(row) for row in rows) if r.id not in logged}
            if not runs and not logged:
                return []
            ordered = sorted(
                [*runs.values(), *(run for run, _ in logged.values())],
                key=lambda r: r.created_at,
                reverse=True,
            )[:limit]
            wanted = [r.id for r in ordered if r.id in runs]
            outputs = (
                con.execute(
                    f"SELECT l.run_id, {LINKED_ARTIFACT_COLUMNS} FROM run_artifact_link l "
                    "JOIN artifact a ON a.id = l.artifact_id "
                    "WHERE l.direction = 'output' AND l.run_id IN (SELECT unnest(?)) "
                    "ORDER BY a.created_at",
                    [wanted],
                ).fetchall()
                if wanted
                else []
            )
        by_run: dict[str, list[Artifact]] = {r.id: [] for r in ordered}
        for row in outputs:
            by_run[row[0]].append(artifact_from_row(row[1:]))
        for run_id, (_, arts) in logged.items():
            if run_id in by_run:
                by_run[run_id] = arts
        return [(r, by_run[r.id]) for r in ordered]

    def _completed_signatures(self, con: Any) -> list[str]:
        """Completed signatures in the tables plus this process's unapplied writes."""
        found = _completed_signatures(con)
        found.extend(completed_signatures(self._log.snapshot()))
        return found

    def _logged_candidates(self, signature: str) -> dict[str, tuple[Run, list[Artifact]]]:
        """Completed runs with ``signature`` among this process's unapplied writes."""
        with self._pending_lock:
            writes = self._log.snapshot() + list(self._pending)
        return completed_runs_with(writes, signature)

    def nearest_completed_run(
        self, model: str, *, exclude_id: str | None = None
    ) -> tuple[Run, dict[str, Any] | None] | None:
        """The newest completed run of ``model`` with its identity manifest."""
        with self.connections.connection() as con:
            found = con.execute(
                "SELECT arg_max(id, created_at) FROM run "
                "WHERE model_name = ? AND status = 'completed' AND id IS DISTINCT FROM ?",
                [model, exclude_id],
            ).fetchone()
            if not found or found[0] is None:
                return None
            row = con.execute(
                f"SELECT {RUN_COLUMNS}, identity FROM run WHERE id = ?", [found[0]]
            ).fetchone()
        if row is None:
            return None
        manifest = json.loads(row[-1]) if row[-1] else None
        return run_from_row(row[:-1]), manifest

    def get_identity_manifest(self, run_id: str) -> dict[str, Any] | None:
        """The stored identity manifest of a run, or None."""
        self._flush_before_read()
        with self.connections.connection() as con:
            row = con.execute("SELECT identity FROM run WHERE id = ?", [run_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def artifacts_with_content(self, content_id: uuid.UUID, limit: int = 20) -> list[Artifact]:
        """Artifacts sharing ``content_id`` (newest first), to restore lost copies."""
        self._flush_before_read()
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
        self._flush_before_read()
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
        self._flush_before_read()
        if run_id is None:
            sql = (
                f"SELECT {ARTIFACT_COLUMNS} FROM artifact WHERE key = ? "
                "ORDER BY created_at DESC LIMIT 1"
            )
            params: list[Any] = [key]
        else:
            sql = (
                f"SELECT {LINKED_ARTIFACT_COLUMNS} "
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
        self._flush_before_read()
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

    def get_run_artifacts(self, run_id: str) -> list[tuple[Artifact, str]]:
        """Every ``(artifact, direction)`` linked to ``run_id``, oldest first.

        Each artifact carries the key and metadata the run logged it with.
        """
        self._flush_before_read()
        with self.connections.connection() as con:
            rows = con.execute(
                f"SELECT {LINKED_ARTIFACT_COLUMNS}, l.direction FROM artifact a "
                "JOIN run_artifact_link l ON l.artifact_id = a.id WHERE l.run_id = ? "
                "ORDER BY a.created_at, a.key",
                [run_id],
            ).fetchall()
        return [(artifact_from_row(r[:-1]), r[-1]) for r in rows]

    def table_counts(self) -> dict[str, int]:
        """Row counts of the metadata tables (diagnostics and tests)."""
        self._flush_before_read()
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

    def facet_values(
        self, run_ids: Sequence[str], key: str, namespace: str | None = None
    ) -> dict[str, Any]:
        """``{run_id: typed value}`` of flattened facet ``key`` (see ``FacetStore``)."""
        return self.facets.facet_values(run_ids, key, namespace=namespace)

    # -- lineage -----------------------------------------------------------------

    def lineage_store(self) -> LineageStore:
        """Lineage reads (upstream graphs) over this store; queued writes are flushed first."""
        return LineageStore(self.connections, before_read=self._flush_before_read)

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
            from consist.core.store.sql_query import create_store_engine

            self._engine = create_store_engine(self._cursor, lambda: all_cores(self.connections))
        return self._engine

    def _cursor(self) -> Any:
        with self.connections.connection() as con:
            return con.cursor()

    def run_query(self, query: Any) -> list[Any]:
        """Execute a SQLAlchemy/SQLModel statement (or SQL text) and return all rows.

        ``select(Run)`` / ``select(Artifact)`` (and rows of their tables)
        return :class:`Run` / :class:`Artifact` records; see
        :func:`consist.core.store.sql_query.execute_query`.
        """
        self._flush_before_read()
        from consist.core.store.sql_query import execute_query

        return execute_query(self.engine, self.connections.connection, query)

    def close(self) -> None:
        """Commit queued writes, release the database file, dispose of the engine.

        Other trackers of this process on the same file keep their (shared)
        connection manager; the file is released when the last one closes.
        """
        if self not in _STORES:
            return
        self._flush_quietly()
        _STORES.discard(self)
        hooks = self.connections.before_release
        if self._flush_quietly in hooks:
            hooks.remove(self._flush_quietly)
        self.connections.close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _completed_signatures(con: Any) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT signature FROM run WHERE status = 'completed' AND signature IS NOT NULL"
    ).fetchall()
    return [r[0] for r in rows]
