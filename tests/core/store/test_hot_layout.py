"""Ingested rows in ``hot_rows.<t>`` under the ``global_tables.<t>`` view (schema 9).

Real DuckDB files and real parquet files under ``tmp_path``; the upgrade
test turns a store written by this version back into the layout of schema
version 8 (provenance columns on every row, no ingest numbers) and opens it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import consist
from consist import Tracker
from consist.core.store.hot_tables import PROVENANCE_COLUMNS
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS

PROVENANCE = [name for name, _ in PROVENANCE_COLUMNS]


@pytest.fixture(autouse=True)
def _no_default_tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    consist.use_tracker(None)


def _tracker(base: Path) -> Tracker:
    return Tracker(run_dir=base / "runs", db_path=base / "runs" / "provenance.duckdb")


def _sql(tracker: Tracker, query: str, params: list[Any] | None = None) -> list[tuple]:
    assert tracker.store is not None
    with tracker.store.connections.connection() as con:
        return con.execute(query, params or []).fetchall()


def _ingest(tracker: Tracker, run_id: str, frame: pd.DataFrame, *, year: int | None = None):
    path = tracker.run_dir / "data" / f"{run_id}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    with tracker.start_run(run_id, "model", year=year):
        art = tracker.log_artifact(path, key="trips", direction="input")
        result = tracker.ingest(art)
    return art, result


def _frame(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"trip_id": range(start, start + n), "km": [float(i) for i in range(n)]})


def test_rows_are_stored_once_and_the_view_adds_the_provenance(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    first, _ = _ingest(tracker, "r1", _frame(0, 3), year=2030)
    second, _ = _ingest(tracker, "r2", _frame(100, 2))

    stored = [r[0] for r in _sql(tracker, "DESCRIBE hot_rows.trips")]
    assert stored == ["trip_id", "km", "consist_ingest"]
    kinds = _sql(
        tracker,
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_schema = 'global_tables' AND table_name = 'trips'",
    )
    assert kinds == [("VIEW",)]
    rows = _sql(tracker, "SELECT * FROM global_tables.trips")
    # Insertion order, and each artifact's own provenance.
    assert rows == [
        (0, 0.0, "r1", str(first.id), 2030, None),
        (1, 1.0, "r1", str(first.id), 2030, None),
        (2, 2.0, "r1", str(first.id), 2030, None),
        (100, 0.0, "r2", str(second.id), None, None),
        (101, 1.0, "r2", str(second.id), None, None),
    ]
    numbers = _sql(
        tracker,
        "SELECT artifact_id::VARCHAR, ingest_no, year FROM ingested_artifact ORDER BY ingest_no",
    )
    assert numbers == [(str(first.id), 1, 2030), (str(second.id), 2, None)]
    assert tracker.load(first).fetchall() == [(0, 0.0), (1, 1.0), (2, 2.0)]
    tracker.close()


def test_reingest_replaces_only_its_rows_and_a_new_column_reaches_the_view(
    tmp_path: Path,
) -> None:
    tracker = _tracker(tmp_path)
    first, _ = _ingest(tracker, "r1", _frame(0, 3))
    second, _ = _ingest(tracker, "r2", _frame(100, 2))
    frame = _frame(200, 2)
    frame["mode"] = ["car", "bus"]
    with tracker.start_run("r3", "model"):
        again = tracker.ingest(first, data=frame)
    assert again.replaced_rows == 3 and again.added_columns == ("mode",)
    cols = [r[0] for r in _sql(tracker, "DESCRIBE global_tables.trips")]
    assert cols == ["trip_id", "km", "mode", *PROVENANCE]
    rows = _sql(
        tracker,
        "SELECT trip_id, mode, consist_artifact_id FROM global_tables.trips ORDER BY trip_id",
    )
    assert rows == [
        (100, None, str(second.id)),
        (101, None, str(second.id)),
        (200, "car", str(first.id)),
        (201, "bus", str(first.id)),
    ]
    assert _sql(tracker, "SELECT count(*) FROM hot_rows.trips") == [(4,)]
    # The re-ingest kept the artifact's number.
    assert _sql(
        tracker, "SELECT ingest_no FROM ingested_artifact WHERE artifact_id = ?", [str(first.id)]
    ) == [(1,)]
    tracker.close()


def test_a_table_not_made_by_ingest_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    tracker = _tracker(tmp_path)
    _sql(tracker, "CREATE TABLE global_tables.trips (trip_id BIGINT, consist_artifact_id VARCHAR)")
    path = tmp_path / "t.parquet"
    _frame(0, 2).to_parquet(path, index=False)
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="trips", direction="input")
        with pytest.raises(ValueError, match="not made by Consist's ingest"):
            tracker.ingest(art)
    assert _sql(tracker, "SELECT count(*) FROM global_tables.trips") == [(0,)]
    assert _sql(tracker, "SELECT count(*) FROM ingested_artifact") == [(0,)]
    tracker.close()


def test_a_second_tracker_and_a_compacted_store_read_the_same_rows(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    first, _ = _ingest(tracker, "r1", _frame(0, 3), year=2030)
    other = _tracker(tmp_path)
    expected = _sql(tracker, "SELECT * FROM global_tables.trips")
    assert _sql(other, "SELECT * FROM global_tables.trips") == expected
    other.close()
    tracker.compact_store()
    assert _sql(tracker, "SELECT * FROM global_tables.trips") == expected
    assert tracker.load(first).fetchall() == [(0, 0.0), (1, 1.0), (2, 2.0)]
    tracker.close()


# --------------------------------------------------------------------------- #
# Upgrade from schema version 8
# --------------------------------------------------------------------------- #
_LEDGER_V8 = (
    "artifact_id, table_name, artifact_key, run_id, row_count, mode, source_hash, "
    "schema_name, columns, ingested_at"
)


def _back_to_version_8(db: Path) -> None:
    """Rewrite a store in the layout schema version 8 had (what Consist wrote before)."""
    con = duckdb.connect(str(db))
    con.execute("BEGIN")
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'hot_rows'"
        ).fetchall()
    ]
    for table in tables:
        con.execute(
            f'CREATE TABLE global_tables."{table}_v8" AS SELECT * FROM global_tables."{table}"'
        )
        con.execute(f'DROP VIEW global_tables."{table}"')
        con.execute(f'ALTER TABLE global_tables."{table}_v8" RENAME TO "{table}"')
        con.execute(f'DROP TABLE hot_rows."{table}"')
    con.execute("DROP SCHEMA hot_rows")
    con.execute(f"CREATE TEMP TABLE ledger_v8 AS SELECT {_LEDGER_V8} FROM ingested_artifact")
    con.execute("DROP TABLE ingested_artifact")
    for statement in MIGRATIONS[3].statements[1:]:
        con.execute(statement)
    con.execute(f"INSERT INTO ingested_artifact SELECT {_LEDGER_V8} FROM ledger_v8")
    con.execute("DELETE FROM schema_version WHERE version >= 9")
    # ...and without what migration 10 wrote (DuckDB cannot drop a column of an
    # indexed table; the migration adds it only if it is missing anyway).
    con.execute("UPDATE run_artifact_link SET lineage_group = NULL")
    con.execute("DROP TABLE lineage_group_alias")
    # A table some other tool put in global_tables: left alone by the upgrade.
    con.execute("CREATE TABLE global_tables.notes AS SELECT 1 AS n")
    con.execute("COMMIT")
    con.close()


def test_a_version_8_store_is_upgraded_with_its_rows_order_and_provenance(
    tmp_path: Path,
) -> None:
    assert LATEST_VERSION >= 9
    tracker = _tracker(tmp_path)
    first, _ = _ingest(tracker, "r1", _frame(0, 3), year=2030)
    second, _ = _ingest(tracker, "r2", _frame(100, 2))
    before = _sql(tracker, "SELECT * FROM global_tables.trips")
    db = Path(tracker.store.db_path)
    tracker.close()
    _back_to_version_8(db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (8,)
    legacy = con.execute("SELECT * FROM global_tables.trips").fetchall()
    kind = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_name = 'trips'"
    ).fetchall()
    con.close()
    assert kind == [("BASE TABLE",)]  # provenance columns stored on every row
    assert legacy == before

    tracker = _tracker(tmp_path)
    assert tracker.store.schema_version() == LATEST_VERSION
    assert _sql(tracker, "SELECT * FROM global_tables.trips") == before
    assert [r[0] for r in _sql(tracker, "DESCRIBE hot_rows.trips")] == [
        "trip_id",
        "km",
        "consist_ingest",
    ]
    assert _sql(tracker, "SELECT * FROM global_tables.notes") == [(1,)]
    assert tracker.load(second).fetchall() == [(100, 0.0), (101, 1.0)]
    # New ingests beside the migrated rows, and a re-ingest of a migrated one.
    third, _ = _ingest(tracker, "r3", _frame(300, 1))
    with tracker.start_run("r4", "model"):
        tracker.ingest(first, data=_frame(400, 1))
    rows = _sql(
        tracker,
        "SELECT trip_id, consist_run_id, consist_artifact_id FROM global_tables.trips",
    )
    assert rows == [
        (100, "r2", str(second.id)),
        (101, "r2", str(second.id)),
        (300, "r3", str(third.id)),
        (400, "r4", str(first.id)),
    ]
    numbers = [r[0] for r in _sql(tracker, "SELECT ingest_no FROM ingested_artifact")]
    assert sorted(numbers) == [1, 2, 3]
    tracker.close()
