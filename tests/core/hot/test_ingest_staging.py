"""The staged fast path for single-row-group parquet files (``hot_store._staged_parquet``).

A parquet file DuckDB could only read on one thread is copied into a private
in-memory database on a second connection, while the store applies its write
log on the first, then inserted from there with provenance columns. These
tests check that it lands exactly like the streamed path, cleans up after
itself (also when the copy fails), and leaves DuckDB's settings as they were
(the allocator flush resets DuckDB's default memory limit, never a user's).
Real parquet files, a real DuckDB store under ``tmp_path``; nothing mocked.
"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import consist
from consist import Tracker
from consist.core.store import hot_store
from consist.core.store.hot_store import PROVENANCE_COLUMNS, HotStore
from consist.core.store.metadata_store import MetadataStore

PROVENANCE = [name for name, _ in PROVENANCE_COLUMNS]
ART_A = "6f1c2d3e-0000-4000-8000-00000000000a"
ART_B = "6f1c2d3e-0000-4000-8000-00000000000b"
ROWS = 300_000  # more than two DuckDB row groups (122,880 rows each)


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    consist.use_tracker(None)
    return tmp_path.resolve()


def mixed_table(n: int) -> pa.Table:
    """Many column types, NULLs included, in one table."""
    start = dt.datetime(2024, 1, 1, 6, 30)
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "small": pa.array([i % 120 for i in range(n)], pa.int8()),
            "x": pa.array([i * 0.25 for i in range(n)], pa.float64()),
            "label": pa.array([None if i % 7 == 0 else f"zone-{i % 97}" for i in range(n)]),
            "flag": pa.array([i % 3 == 0 for i in range(n)]),
            "at": pa.array([start + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us")),
            "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 400) for i in range(n)]),
            "price": pa.array(
                [decimal.Decimal(i % 10_000) / 100 for i in range(n)], pa.decimal128(12, 2)
            ),
            "tags": pa.array([[i % 5, i % 11] if i % 13 else None for i in range(n)]),
        }
    )


def open_hot(db: Path) -> tuple[MetadataStore, HotStore]:
    """A store whose connection stays open (settings made on it hold for the test)."""
    store = MetadataStore(str(db), idle_release_s=600.0)
    store.ensure_schema()
    return store, HotStore(store.connections, before_write=store.flush)


def query(store: MetadataStore, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with store.connections.connection() as con:
        return con.execute(sql, params or []).fetchall()


def ingest_file(hot: HotStore, path: Path, table: str, run_id: str, artifact_id: str) -> Any:
    return hot.ingest(
        hot_store.RowSource("parquet", path=str(path)),
        table,
        hot_store.Provenance(run_id=run_id, artifact_id=artifact_id, year=2030, iteration=2),
        artifact_key=table,
        mode="file",
    )


def databases(store: MetadataStore) -> list[str]:
    return sorted(r[0] for r in query(store, "SELECT database_name FROM duckdb_databases()"))


def test_staged_parquet_lands_like_the_streamed_path(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = base / "big.parquet"
    pq.write_table(mixed_table(ROWS), path)  # one row group
    store, hot = open_hot(base / "prov.duckdb")
    try:
        store.connections.bulk_threads = 4  # staged even on a 1-core machine
        with store.connections.all_cores(), store.connections.connection() as con:
            assert hot_store._should_stage(con, hot_store.sql_literal(str(path)))
        staged = ingest_file(hot, path, "staged", "run-a", ART_A)
        monkeypatch.setattr(hot_store, "STAGE_MAX_BYTES", 0)  # the streamed path
        with store.connections.all_cores(), store.connections.connection() as con:
            assert not hot_store._should_stage(con, hot_store.sql_literal(str(path)))
        streamed = ingest_file(hot, path, "streamed", "run-b", ART_B)
    finally:
        store.close()
    store = MetadataStore(str(base / "prov.duckdb"))
    try:
        assert staged.rows == streamed.rows == ROWS
        assert staged.columns == streamed.columns == tuple(mixed_table(1).column_names)
        types = "SELECT column_name, data_type FROM information_schema.columns "
        types += "WHERE table_schema = 'global_tables' AND table_name = ? ORDER BY ordinal_position"
        assert query(store, types, ["staged"]) == query(store, types, ["streamed"])
        assert [name for name, _ in query(store, types, ["staged"])][-4:] == PROVENANCE
        data = ", ".join(f'"{c}"' for c in staged.columns)
        # Same rows in the same (file) order, every value equal (rowid: the
        # position in the stored table, hot_rows.<t> under the global_tables view).
        diff = query(
            store,
            f"SELECT count(*) FROM (SELECT rowid, {data} FROM hot_rows.staged "
            f"EXCEPT ALL SELECT rowid, {data} FROM hot_rows.streamed)",
        )
        assert diff == [(0,)]
        assert query(
            store,
            "SELECT id FROM hot_rows.staged ORDER BY rowid LIMIT 3 OFFSET 199998",
        ) == [(199998,), (199999,), (200000,)]
        assert query(
            store,
            "SELECT DISTINCT consist_run_id, consist_artifact_id, consist_year, "
            "consist_iteration FROM global_tables.staged",
        ) == [("run-a", ART_A, 2030, 2)]
        ledger = query(
            store, "SELECT table_name, row_count, mode FROM ingested_artifact ORDER BY 1"
        )
        assert ledger == [("staged", ROWS, "file"), ("streamed", ROWS, "file")]
    finally:
        store.close()


def test_staging_leaves_no_database_and_keeps_the_memory_limit(base: Path) -> None:
    path = base / "one.parquet"
    pq.write_table(mixed_table(20_000), path)
    store, hot = open_hot(base / "prov.duckdb")
    try:
        store.connections.bulk_threads = 4  # staged even on a 1-core machine
        before = databases(store)
        limit = query(store, "SELECT current_setting('memory_limit')")
        assert limit == [(hot_store._default_memory_limit(),)]
        ingest_file(hot, path, "t", "run-a", ART_A)
        assert databases(store) == before
        assert query(store, "SELECT current_setting('memory_limit')") == limit
        # Outside bulk work the store's DuckDB runs on one thread again.
        assert query(store, "SELECT current_setting('threads')") == [(1,)]
        assert query(store, "SELECT count(*) FROM global_tables.t") == [(20_000,)]
    finally:
        store.close()


def test_a_memory_limit_set_by_the_user_is_left_alone(base: Path) -> None:
    path = base / "one.parquet"
    pq.write_table(mixed_table(20_000), path)
    store, hot = open_hot(base / "prov.duckdb")
    try:
        store.connections.bulk_threads = 4  # staged even on a 1-core machine
        query(store, "SET memory_limit = '3GB'")
        limit = query(store, "SELECT current_setting('memory_limit')")
        ingest_file(hot, path, "t", "run-a", ART_A)
        assert query(store, "SELECT current_setting('memory_limit')") == limit
    finally:
        store.close()


def test_a_copy_that_fails_writes_nothing_and_cleans_up(base: Path) -> None:
    import duckdb

    good = base / "good.parquet"
    pq.write_table(mixed_table(50_000), good, compression="snappy")
    bad = base / "bad.parquet"
    bad.write_bytes(good.read_bytes())
    column = pq.ParquetFile(bad).metadata.row_group(0).column(2)  # "x"
    with bad.open("r+b") as fh:  # the footer stays readable; one data page does not
        fh.seek(column.data_page_offset + 40)
        fh.write(b"\xff" * 64)
    store, hot = open_hot(base / "prov.duckdb")
    try:
        store.connections.bulk_threads = 4  # staged even on a 1-core machine
        before = databases(store)
        limit = query(store, "SELECT current_setting('memory_limit')")
        with store.connections.all_cores(), store.connections.connection() as con:
            assert hot_store._should_stage(con, hot_store.sql_literal(str(bad)))
        with pytest.raises(duckdb.Error):
            ingest_file(hot, bad, "t", "run-a", ART_A)
        assert hot.tables() == []
        assert hot.ingest_records() == []
        assert databases(store) == before
        assert query(store, "SELECT current_setting('memory_limit')") == limit
        # The store goes on working.
        assert ingest_file(hot, good, "t", "run-a", ART_A).rows == 50_000
    finally:
        store.close()


def test_a_staged_ingest_in_a_run_annotates_the_artifact_logged_in_it(base: Path) -> None:
    """The write log (the run's artifact row) is applied while the file is copied."""
    path = base / "one.parquet"
    pq.write_table(mixed_table(20_000), path)
    tracker = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    try:
        with tracker.start_run("r1", "model", year=2030):
            art = tracker.log_artifact(path, key="zones")
            result = tracker.ingest(art)
        assert result.rows == 20_000
        stored = tracker.get_artifact(art.id)
        assert stored is not None and stored.meta["is_ingested"] is True
        assert stored.meta["ingested_rows"] == 20_000
        loaded = tracker.load(stored)
        assert loaded.shape[0] == 20_000
        assert tracker.hot_data_store.row_count("zones", artifact_id=art.id) == 20_000
    finally:
        tracker.close()
