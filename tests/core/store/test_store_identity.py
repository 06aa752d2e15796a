"""The store is what it says it is: a ``db_path`` that is not a Consist store is refused.

DuckDB opens an existing CSV or Parquet file given as a database path as an
in-memory database, so a tracker pointed at a data file used to accept every
write and keep none of them. Real files (CSV, Parquet written by DuckDB, an
SQLite database, random bytes, another application's DuckDB database) in a
modeler's project repository; the refusal must come before anything is
written (no lock file, no run_dir, the file's bytes unchanged).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import duckdb
import pytest

import consist
from _support import git, make_git_repo
from consist import Tracker
from consist.core.store.metadata_store import MetadataStore


def _project(tmp_path: Path) -> Path:
    """A model repository with untracked data files beside the code."""
    repo = make_git_repo(tmp_path / "model", {"model.py": "def step():\n    return 1\n"})
    data = repo / "data"
    data.mkdir()
    (data / "zones.csv").write_text("zone,pop\n1,100\n2,250\n")
    duckdb.sql(f"COPY (SELECT 1 AS zone, 100 AS pop) TO '{data / 'zones.parquet'}'")
    (data / "zones.json").write_text('[{"zone": 1, "pop": 100}]\n')
    (data / "noise.bin").write_bytes(os.urandom(8192))
    con = sqlite3.connect(data / "legacy.sqlite")
    con.execute("CREATE TABLE t (x INTEGER)")
    con.commit()
    con.close()
    return repo


def _state(repo: Path) -> tuple[str, dict[str, bytes]]:
    """Everything a refused open could have written: git status and every file's bytes."""
    status = git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored")
    files = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }
    return status, files


@pytest.mark.parametrize(
    ("name", "looks_like"),
    [
        ("zones.csv", "text file"),
        ("zones.parquet", "Parquet file"),
        ("zones.json", "text file"),
        ("noise.bin", "not a DuckDB database"),
        ("legacy.sqlite", "SQLite database"),
    ],
)
def test_a_data_file_as_db_path_is_refused_before_anything_is_written(
    tmp_path: Path, name: str, looks_like: str
):
    repo = _project(tmp_path)
    target = repo / "data" / name
    before = _state(repo)
    with pytest.raises(ValueError, match="db_path") as info:
        Tracker(run_dir=repo / "runs", db_path=target, project_root=repo)
    message = str(info.value)
    assert str(target) in message
    assert looks_like in message
    assert "point db_path at a new file" in message
    assert _state(repo) == before  # no run_dir, no lock file, the data file untouched
    assert not (repo / "runs").exists()
    assert not Path(f"{target}.consist.lock").exists()


def test_a_data_file_is_not_silently_used_as_a_scratch_store(tmp_path: Path):
    """The reported failure: runs recorded into a CSV were gone at the next open."""
    repo = _project(tmp_path)
    csv = repo / "data" / "zones.csv"
    with pytest.raises(ValueError, match="not a DuckDB database"):
        Tracker(run_dir=repo / "runs", db_path=csv, project_root=repo)
    # The fix the message names works: a new file becomes a store that keeps runs.
    db = repo / "provenance.duckdb"
    tracker = Tracker(run_dir=repo / "runs", db_path=db, project_root=repo)
    tracker.run(fn=lambda: None, name="step", config={"k": 1})
    tracker.close()
    again = Tracker(run_dir=repo / "runs", db_path=db, project_root=repo)
    try:
        assert [r.model_name for r in again.find_runs()] == ["step"]
        assert again.journal.pending_run_ids() == []
    finally:
        again.close()
    assert csv.read_text() == "zone,pop\n1,100\n2,250\n"


def test_a_directory_and_an_empty_file_are_refused(tmp_path: Path):
    folder = tmp_path / "store.duckdb"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        Tracker(run_dir=tmp_path / "runs", db_path=folder)
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    with pytest.raises(ValueError, match="not a valid DuckDB database") as info:
        Tracker(run_dir=tmp_path / "runs", db_path=empty)
    assert str(empty) in str(info.value)
    assert empty.read_bytes() == b""


def test_rebuild_refuses_a_data_file(tmp_path: Path):
    csv = tmp_path / "zones.csv"
    csv.write_text("zone\n1\n")
    with pytest.raises(ValueError, match="db_path"):
        consist.rebuild_from_journal(csv, [tmp_path / "runs"])
    assert csv.read_text() == "zone\n1\n"


def _tables(path: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()


def test_another_applications_duckdb_database_is_refused(tmp_path: Path):
    """Decision: a DuckDB file with tables but no Consist schema_version is not ours.

    Consist's tables (``run``, ``artifact``, ...) would sit beside, or collide
    with, another application's; the user points db_path at a file of its own.
    """
    other = tmp_path / "analysis.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE run (id INTEGER, label VARCHAR)")
    con.execute("INSERT INTO run VALUES (1, 'mine')")
    con.close()
    with pytest.raises(ValueError, match="another application") as info:
        Tracker(run_dir=tmp_path / "runs", db_path=other)
    assert "main.run" in str(info.value)
    # Told apart only once DuckDB has opened the file (under the store's lock),
    # after the tracker made its run_dir: nothing is written in it, nor in the file.
    tracker_leftovers = [p for p in (tmp_path / "runs").rglob("*") if not p.is_dir()]
    assert _tables(other) == [("main", "run")]
    con = duckdb.connect(str(other), read_only=True)
    assert con.execute("SELECT * FROM run").fetchall() == [(1, "mine")]
    con.close()
    assert tracker_leftovers == []


def test_a_foreign_schema_version_table_is_refused(tmp_path: Path):
    other = tmp_path / "migrations.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE schema_version (version INTEGER, checksum VARCHAR)")
    con.close()
    with pytest.raises(ValueError, match="not Consist's"):
        Tracker(run_dir=tmp_path / "runs", db_path=other)
    assert _tables(other) == [("main", "schema_version")]


def test_an_empty_duckdb_database_becomes_a_store(tmp_path: Path):
    db = tmp_path / "made_by_duckdb.duckdb"
    duckdb.connect(str(db)).close()
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    tracker.run(fn=lambda: None, name="step", config={"k": 1})
    tracker.close()
    fresh = Tracker(run_dir=tmp_path / "runs", db_path=db)
    try:
        assert fresh.store.count_runs() == 1
    finally:
        fresh.close()


def test_a_store_with_a_users_own_table_still_opens(tmp_path: Path):
    db = tmp_path / "store.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    tracker.run(fn=lambda: None, name="step", config={"k": 1})
    tracker.close()
    tracker.store.close()
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE my_notes (note VARCHAR)")
    con.close()
    fresh = Tracker(run_dir=tmp_path / "runs", db_path=db)
    try:
        assert fresh.store.count_runs() == 1
    finally:
        fresh.close()


def test_a_data_file_appearing_after_the_check_is_still_refused(tmp_path: Path):
    """Defence in depth: DuckDB's in-memory view of a data file is refused at open.

    The path is free when the store is built; a CSV lands there before the
    store first opens it. The store must refuse rather than migrate an
    in-memory database whose writes would vanish.
    """
    path = tmp_path / "late.csv"
    store = MetadataStore(str(path))
    path.write_text("a,b\n1,2\n")
    try:
        with pytest.raises(ValueError, match="in-memory"):
            store.ensure_schema()
    finally:
        store.close()
    assert path.read_text() == "a,b\n1,2\n"


_PROBE = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1]).close()
except duckdb.IOException as exc:
    print("locked out" if "lock" in str(exc).lower() else f"error: {exc}")
else:
    print("got in")
"""


def _another_process_opens(db: Path) -> str:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(db)], capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip() or out.stderr.strip()


def test_a_second_tracker_on_a_held_store_keeps_other_processes_out(tmp_path: Path):
    """Checking the header of a store this process holds must not drop DuckDB's lock.

    DuckDB locks its file with POSIX record locks, released for the whole
    process when any descriptor of the file is closed: the header check used
    to open and close the file, so a second tracker (or a notebook cell run
    again) let another process open the database beside the first tracker.
    The epoch check on every re-open reads no bytes of the file for the same
    reason.
    """
    db = tmp_path / "provenance.duckdb"
    first = Tracker(run_dir=tmp_path / "runs", db_path=db)
    try:
        first.run(fn=_noop, name="step", config={"k": 1})
        assert first.store.connections.is_open
        assert _another_process_opens(db) == "locked out"
        for name in ("again", "and_again"):  # a notebook cell run twice more
            Tracker(run_dir=tmp_path / name, db_path=db)
            assert first.store.connections.is_open
            assert _another_process_opens(db) == "locked out"
        first.store.connections.release()
        first.run(fn=_noop, name="step", config={"k": 2})  # re-open: the epoch check
        assert _another_process_opens(db) == "locked out"
    finally:
        first.close()
    assert _another_process_opens(db) == "got in"


def _noop() -> None:
    return None
