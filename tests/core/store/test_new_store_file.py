"""A new store file starts as a copy of an empty, fully migrated store.

``Tracker()`` on a new path used to run every migration statement by
statement (about 40 DDL statements); the store now writes the bytes of an
empty store this process migrated once. These tests check that the copy is
the same database the migrations make, that it never replaces a file, that
several processes creating one store at once end with one valid store, and
that without it (a failing copy) DuckDB creates the file as before. Real
DuckDB files and real processes under ``tmp_path``.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import duckdb
import pytest

from consist import Tracker
from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS, seed_store_file

_CATALOG = {
    "columns": "SELECT schema_name, table_name, column_index, column_name, data_type, "
    "is_nullable, column_default FROM duckdb_columns() WHERE database_name = current_database() "
    "ORDER BY ALL",
    "indexes": "SELECT schema_name, table_name, index_name, expressions, is_unique "
    "FROM duckdb_indexes() WHERE database_name = current_database() ORDER BY ALL",
    "constraints": "SELECT schema_name, table_name, constraint_type, constraint_column_names "
    "FROM duckdb_constraints() WHERE database_name = current_database() ORDER BY ALL",
    "schemas": "SELECT schema_name FROM duckdb_schemas() "
    "WHERE database_name = current_database() ORDER BY ALL",
    "versions": "SELECT version, description FROM schema_version ORDER BY version",
}


def _catalog(db: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in _CATALOG.items()}
    finally:
        con.close()


def _migrated_statement_by_statement(db: Path) -> None:
    store = MetadataStore(str(db))
    store.connections.create_file = None  # DuckDB creates the file; the migrations run
    assert store.ensure_schema() == LATEST_VERSION
    store.close()


def test_the_copy_is_the_database_the_migrations_make(tmp_path: Path) -> None:
    migrated, copied = tmp_path / "migrated.duckdb", tmp_path / "copied.duckdb"
    _migrated_statement_by_statement(migrated)
    assert seed_store_file(str(copied)) is True
    expected = _catalog(migrated)
    assert expected["versions"] == [(m.version, m.description) for m in MIGRATIONS]
    assert _catalog(copied) == expected
    assert not list(tmp_path.glob("*.new"))


def test_a_tracker_on_a_new_path_gets_a_working_copy(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    assert tracker.store.connections.created_file is False  # consumed by ensure_schema
    assert tracker.store.schema_version() == LATEST_VERSION
    with tracker.start_run("first", "m", config={"x": 1}):
        pass
    assert tracker.get_run("first").status == "completed"
    tracker.close()
    reopened = Tracker(run_dir=tmp_path / "runs", db_path=db, read_only=True)
    assert reopened.get_run("first") is not None
    reopened.close()
    assert _catalog(db)["versions"] == [(m.version, m.description) for m in MIGRATIONS]


def test_an_existing_file_is_never_replaced(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    with tracker.start_run("kept", "m"):
        pass
    tracker.close()
    before = db.read_bytes()
    assert seed_store_file(str(db)) is False
    assert db.read_bytes() == before
    assert not list(tmp_path.glob("*.new"))


def test_a_failing_copy_leaves_the_creation_to_duckdb(tmp_path: Path) -> None:
    def refuse(path: str) -> bool:
        raise OSError(f"no hard links here: {path}")

    db = tmp_path / "p.duckdb"
    store = MetadataStore(str(db))
    store.connections.create_file = refuse
    assert store.ensure_schema() == LATEST_VERSION
    store.close()
    assert _catalog(db)["versions"] == [(m.version, m.description) for m in MIGRATIONS]


def test_read_only_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "missing.duckdb"
    with pytest.raises(FileNotFoundError):
        Tracker(run_dir=tmp_path / "runs", db_path=db, read_only=True)
    store = MetadataStore(str(db), read_only=True)  # below the tracker's own check
    with pytest.raises((ReadOnlyStoreError, duckdb.Error)):
        store.ensure_schema()
    store.close()
    assert not db.exists()
    assert not list(tmp_path.glob("*.new"))


def _open_and_record(db: str, run_dir: str, name: str, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    tracker = Tracker(run_dir=run_dir, db_path=db)
    with tracker.start_run(name, "m"):
        pass
    tracker.close()


def test_processes_creating_one_store_at_once_share_it(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [
        ctx.Process(
            target=_open_and_record, args=(str(db), str(tmp_path / f"runs{k}"), f"r{k}", barrier)
        )
        for k in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    con = duckdb.connect(str(db), read_only=True)
    runs = {r[0] for r in con.execute("SELECT id FROM run").fetchall()}
    versions = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    con.close()
    assert runs == {"r0", "r1", "r2", "r3"}
    assert [v[0] for v in versions] == list(range(1, LATEST_VERSION + 1))
    assert not list(tmp_path.glob("*.new"))


_FIRST_AND_LATER = """
import sys, time
from consist import Tracker
from consist.core.store import schema

base = sys.argv[1]
made = []
for i in range(3):
    tracker = Tracker(run_dir=f"{base}/runs{i}", db_path=f"{base}/s{i}.duckdb")
    made.append(bool(schema._TEMPLATE))
    with tracker.start_run(f"r{i}", "m", config={"i": i}):
        pass
    tracker.close()
print(made)
"""


def test_a_process_first_store_is_migrated_and_later_ones_copied(tmp_path: Path) -> None:
    # The template costs about what one copy saves: a process that creates
    # one store never builds it; its second new store builds it, once.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _FIRST_AND_LATER, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[False, True, True]"
    for i in range(3):
        assert _catalog(tmp_path / f"s{i}.duckdb")["versions"] == [
            (m.version, m.description) for m in MIGRATIONS
        ]
