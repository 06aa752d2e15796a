"""Write-log rows commit only after the journal write, which runs beside the insert.

Real DuckDB files under ``tmp_path``; the guard stands in for the journal's
file write and looks at the database while it runs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from _support import in_threads
from consist import Tracker
from consist.core.store.connection import DuckDBConnectionManager
from consist.core.store.journal import JournalWriteError
from consist.core.store.overlapped_commit import Guard, commit_beside


@pytest.fixture()
def manager(tmp_path: Path):
    manager = DuckDBConnectionManager(str(tmp_path / "db.duckdb"), idle_release_s=10)
    with manager.transaction() as con:  # the write log as migration 6 creates it
        con.execute("CREATE TABLE write_log (seq BIGINT NOT NULL, payload VARCHAR NOT NULL)")
    yield manager
    manager.close()


def _logged(manager: DuckDBConnectionManager) -> list[str]:
    with manager.connection() as con:
        return [r[0] for r in con.execute("SELECT payload FROM write_log ORDER BY seq").fetchall()]


def test_rows_commit_after_the_guard_which_runs_in_the_calling_thread(manager) -> None:
    seen: dict[str, object] = {}

    def journal_write() -> None:
        seen["thread"] = threading.current_thread()
        # Another cursor of the same database sees only committed rows.
        with manager.connection() as con:
            cursor = con.cursor()
            try:
                seen["rows_during"] = cursor.execute("SELECT count(*) FROM write_log").fetchone()
            finally:
                cursor.close()

    guard = Guard(journal_write)
    commit_beside(manager, [[1, '{"a":1}'], [2, '{"b":2}']], guard)

    assert seen["thread"] is threading.current_thread()
    assert seen["rows_during"] == (0,)
    assert not guard.pending and not guard.failed
    assert _logged(manager) == ['{"a":1}', '{"b":2}']


def test_a_failing_guard_rolls_the_rows_back(manager) -> None:
    def journal_write() -> None:
        raise OSError(28, "No space left on device")

    guard = Guard(journal_write)
    with pytest.raises(OSError, match="No space left"):
        commit_beside(manager, [[1, "{}"]], guard)

    assert guard.failed
    assert _logged(manager) == []
    # The connection is usable again: no transaction was left open.
    commit_beside(manager, [[2, "{}"]], Guard(lambda: None))
    assert _logged(manager) == ["{}"]


def test_a_database_error_still_lets_the_guard_finish(manager) -> None:
    ran = []
    guard = Guard(lambda: ran.append(True))
    with pytest.raises(duckdb.Error):
        # NULL violates the write log's NOT NULL payload column.
        commit_beside(manager, [[1, None]], guard)

    assert ran == [True] and not guard.failed
    assert _logged(manager) == []
    commit_beside(manager, [[2, "{}"]], Guard(lambda: None))
    assert _logged(manager) == ["{}"]


def test_an_interrupt_in_the_guard_waits_for_the_statements_then_rolls_back(manager) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    guard = Guard(interrupted)
    with pytest.raises(KeyboardInterrupt):
        commit_beside(manager, [[1, "{}"]], guard)

    assert guard.failed
    assert _logged(manager) == []


def test_guard_runs_once() -> None:
    calls = []
    guard = Guard(lambda: calls.append(1))
    assert guard.pending
    guard.run()
    guard.run()
    assert calls == [1] and not guard.pending
    assert not Guard(None).pending


def test_a_journal_failure_leaves_no_trace_in_the_database(tmp_path: Path, monkeypatch) -> None:
    """Through the tracker: a run whose snapshot cannot be written is never committed."""
    import consist.core.store.journal as journal_module

    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)

    def step(k: int) -> None:
        return None

    tracker.run(step, config={"k": 1})

    def full_disk(path, data, *, fsync=True):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(journal_module, "atomic_write_bytes", full_disk)
    with pytest.raises(JournalWriteError, match="no space left"):
        tracker.run(step, config={"k": 2})
    monkeypatch.undo()

    runs = tracker.find_runs(model="step")
    assert [r.status for r in runs] == ["completed"]
    assert tracker.run(step, config={"k": 1}).cache_hit
    tracker.close()


def test_a_snapshot_that_cannot_be_serialised_fails_the_call(tmp_path: Path, monkeypatch) -> None:
    """Serialisation runs inside the journal write, beside the insert: its error still fails
    the call (it is not mistaken for a database failure the journal would cover)."""
    import consist.core.store.journal as journal_module

    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)

    def step(k: int) -> None:
        return None

    tracker.run(step, config={"k": 1})
    real = journal_module.snapshot_bytes

    def unserialisable(record, **kwargs):
        if record.config.get("k") == 2 and record.run.status == "completed":
            raise ValueError("cannot serialise this snapshot")
        return real(record, **kwargs)

    monkeypatch.setattr(journal_module, "snapshot_bytes", unserialisable)
    with pytest.raises(ValueError, match="cannot serialise"):
        tracker.run(step, config={"k": 2})
    monkeypatch.undo()

    # Never committed as completed: the lifecycle records it as failed instead.
    runs = {r.config_hash: r for r in tracker.find_runs(model="step")}
    assert sorted(r.status for r in runs.values()) == ["completed", "failed"]
    failed = next(r for r in runs.values() if r.status == "failed")
    assert "cannot serialise" in failed.meta["error"]
    assert tracker.run(step, config={"k": 3}).run.status == "completed"
    tracker.close()


def test_the_write_log_connection_skips_the_optimizer_and_the_store_keeps_it(manager) -> None:
    with manager.write_session() as writer:
        assert writer.execute("SELECT current_setting('enable_optimizer')").fetchone() == (False,)
        writer.begin()
        writer.execute("INSERT INTO write_log VALUES (1, '{}')")
        writer.commit()
    with manager.connection() as con:
        assert con.execute("SELECT current_setting('enable_optimizer')").fetchone() == (True,)
        assert con.execute("SELECT count(*) FROM write_log").fetchone() == (1,)


def test_releasing_the_store_closes_the_write_log_connection_too(manager, tmp_path: Path) -> None:
    commit_beside(manager, [[1, "{}"]], Guard(lambda: None))
    manager.release()
    # The database file is free: another process can open it for writing.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; con = duckdb.connect(sys.argv[1]); "
            "print(con.execute('SELECT count(*) FROM write_log').fetchone()[0])",
            str(tmp_path / "db.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "1"
    commit_beside(manager, [[2, "{}"]], Guard(lambda: None))
    assert len(_logged(manager)) == 2


def test_trackers_on_different_stores_in_threads_share_the_worker(tmp_path: Path) -> None:
    """Each store's statements queue on the one worker thread; no store waits on another's lock."""
    ids: dict[int, list[str]] = {}

    def step(i: int) -> None:
        return None

    def work(n: int) -> None:
        tracker = Tracker(
            tmp_path / f"runs_{n}", db_path=tmp_path / f"db_{n}.duckdb", project_root=tmp_path
        )
        ids[n] = [tracker.run(step, config={"i": i}).run_id for i in range(25)]
        assert all(tracker.run(step, config={"i": i}).cache_hit for i in range(25))
        tracker.close()

    errors = in_threads(work, 3)
    assert not errors, errors
    for n in range(3):
        reader = Tracker(
            tmp_path / f"runs_{n}", db_path=tmp_path / f"db_{n}.duckdb", project_root=tmp_path
        )
        assert {r.id for r in reader.find_runs(model="step", limit=100)} >= set(ids[n])
        assert len(reader.find_runs(model="step", limit=100)) == 50
        reader.close()


def test_a_worker_that_cannot_start_leaves_the_guard_to_the_caller(manager, monkeypatch) -> None:
    from consist.core.store import worker_thread

    def no_thread(work):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(worker_thread, "submit", no_thread)
    guard = Guard(lambda: None)
    with pytest.raises(RuntimeError, match="new thread"):
        commit_beside(manager, [[1, "{}"]], guard)
    assert guard.pending  # never started: MetadataStore.flush runs it and keeps the write queued
    monkeypatch.undo()
    commit_beside(manager, [[2, "{}"]], Guard(lambda: None))
    assert _logged(manager) == ["{}"]
