"""Several processes on one PostgreSQL store: nothing lost, migrated once, visible at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import psycopg
import pytest
from engine_support import record_runs

from consist.core.store.engines.pg_store import PostgresMetadataStore
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS

_TIMEOUT = 180


def _open(url: str) -> PostgresMetadataStore:
    store = PostgresMetadataStore(url)
    store.ensure_schema()
    return store


def _migrate(url: str, barrier: object) -> int:
    barrier.wait(timeout=_TIMEOUT)  # type: ignore[attr-defined]
    store = PostgresMetadataStore(url)
    try:
        return store.ensure_schema()
    finally:
        store.close()


def _record_then_write(url: str, base: str, count: int, shared: str, barrier: object) -> list:
    """Record ``count`` runs, wait for the other writers, then write them all at once."""
    records = record_runs(Path(base), count, chain=False, shared_input=Path(shared))
    store = _open(url)
    try:
        barrier.wait(timeout=_TIMEOUT)  # type: ignore[attr-defined]
        for record in records:
            store.sync_record(record, first=True)
        assert store.pending_writes == 0
        return [r.run.id for r in records]
    finally:
        store.close()


def _pool(processes: int) -> tuple[object, object]:
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    return ctx.Pool(processes), manager


def test_concurrent_openers_migrate_a_new_database_once(pg_url: str) -> None:
    pool, manager = _pool(4)
    with pool, manager:  # type: ignore[attr-defined]
        barrier = manager.Barrier(4)  # type: ignore[attr-defined]
        results = [pool.apply_async(_migrate, (pg_url, barrier)) for _ in range(4)]  # type: ignore[attr-defined]
        assert [r.get(_TIMEOUT) for r in results] == [LATEST_VERSION] * 4
    with psycopg.connect(pg_url.replace("+psycopg", "")) as con:
        rows = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    assert rows == [(m.version,) for m in MIGRATIONS]


def test_processes_writing_at_once_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    shared = tmp_path / "raw.csv"
    shared.write_text("a,b\n1,2\n")
    writers, per_writer = 4, 15
    _open(pg_url).close()
    pool, manager = _pool(writers)
    with pool, manager:  # type: ignore[attr-defined]
        barrier = manager.Barrier(writers)  # type: ignore[attr-defined]
        jobs = [
            pool.apply_async(  # type: ignore[attr-defined]
                _record_then_write,
                (pg_url, str(tmp_path / f"w{i}"), per_writer, str(shared), barrier),
            )
            for i in range(writers)
        ]
        written = [run_id for job in jobs for run_id in job.get(_TIMEOUT)]
    assert len(set(written)) == writers * per_writer
    store = _open(pg_url)
    try:
        assert store.count_runs() == writers * per_writer
        assert store.run_versions(written).keys() == set(written)
        for run_id in written[:: per_writer // 3]:
            artifacts = store.get_run_artifacts(run_id)
            assert sorted(d for _, d in artifacts) == ["input", "output"]
        with store.connections.connection() as con:
            # Every run read the same bytes: one content identity for them.
            shared_hash = store.get_run_artifacts(written[0])[0][0].hash
            assert con.execute(
                "SELECT count(*) FROM content_identity WHERE hash = ?", [shared_hash]
            ).fetchone() == (1,)
            assert con.execute("SELECT count(*) FROM write_log").fetchone() == (0,)
    finally:
        store.close()


def test_a_database_of_another_application_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as con:
        con.execute("CREATE TABLE customers (id int)")
    store = PostgresMetadataStore(pg_url)
    try:
        with pytest.raises(ValueError, match=r"another application.*customers"):
            store.ensure_schema()
        with psycopg.connect(pg_url.replace("+psycopg", "")) as con:
            assert con.execute("SELECT to_regclass('run')").fetchone() == (None,)
    finally:
        store.close()


def test_a_failed_statement_fails_its_transaction(pg_url: str) -> None:
    store = _open(pg_url)
    try:
        failed = pytest.raises(RuntimeError, match="rolled back")
        with failed, store.connections.transaction() as con:
            con.execute("INSERT INTO write_log VALUES (1, 'x')")
            with pytest.raises(psycopg.errors.UndefinedTable):
                con.execute("SELECT * FROM missing_table")
        with store.connections.connection() as con:
            assert con.execute("SELECT count(*) FROM write_log").fetchone() == (0,)
    finally:
        store.close()


def test_postgresql_gets_indexes_for_the_query_orderings(pg_url: str) -> None:
    """History and newest-first pages read an index instead of sorting every run."""
    store = _open(pg_url)
    try:
        with store.connections.connection() as con:
            names = {
                r[0]
                for r in con.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'run'"
                ).fetchall()
            }
            assert {"run_created_idx", "run_model_created_idx", "run_tags_idx"} <= names
            con.execute("SET enable_seqscan = off")  # as on a large table
            plan = "\n".join(
                r[0]
                for r in con.execute(
                    "EXPLAIN SELECT id FROM run ORDER BY created_at DESC, id DESC LIMIT 10"
                ).fetchall()
            )
            con.execute("RESET enable_seqscan")
        assert "run_created_idx" in plan and "Sort" not in plan
    finally:
        store.close()


def test_a_lost_server_is_a_connection_error_and_the_store_reconnects(tmp_path: Path) -> None:
    from pg_server import PostgresServer

    server = PostgresServer(durable=True).start()
    try:
        store = _open(server.create_database())
        try:
            assert store.count_runs() == 0
            server.halt()
            with pytest.raises(ConnectionError, match="PostgreSQL store"):
                store.count_runs()
            server.resume()
            assert store.count_runs() == 0  # the next use opened a new session
        finally:
            store.close()
    finally:
        server.stop()
