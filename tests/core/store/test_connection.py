"""Tests for consist.core.store.connection: one DuckDB file shared by processes.

Everything here uses real DuckDB files under ``tmp_path`` and, where another
process is involved, a real child process (``sys.executable -c``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from _support import Child
from consist.core.store.connection import (
    DuckDBConnectionManager,
    StoreLockTimeout,
    is_lock_error,
)
from consist.core.tracker import Tracker

# A child that opens the file, says "locked", holds it for HOLD seconds, closes it.
HOLDER = """
import sys, time, duckdb
path, hold = sys.argv[1], float(sys.argv[2])
con = duckdb.connect(path)
con.execute("CREATE TABLE IF NOT EXISTS holder (v INTEGER)")
print("locked", flush=True)
time.sleep(hold)
con.close()
print("released", flush=True)
"""

# A child that opens the file once (no retry), writes one row and exits 0.
WRITER = """
import sys, duckdb
path, value = sys.argv[1], int(sys.argv[2])
con = duckdb.connect(path)
con.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
con.execute("INSERT INTO t VALUES (?)", [value])
con.close()
print("wrote", value, flush=True)
"""

# A child that keeps retrying to open the file (tight loop) for up to
# PATIENCE seconds, then writes one row; exit 3 if it never got in.
PATIENT_WRITER = """
import sys, time, duckdb
path, value, patience = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("trying", flush=True)
deadline = time.monotonic() + patience
while True:
    try:
        con = duckdb.connect(path)
        break
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower() or time.monotonic() > deadline:
            print("gave up:", exc, flush=True)
            sys.exit(3)
        time.sleep(0.002)
con.execute("INSERT INTO t VALUES (?)", [value])
con.close()
print("wrote", value, flush=True)
"""


def spawn(children: list[Child], source: str, *args: object) -> Child:
    child = Child(source, *args, timeout=30.0)
    children.append(child)
    return child


def run_writer(db: Path, value: int) -> subprocess.CompletedProcess[str]:
    """Open ``db`` from another process (no retry), insert ``value``, exit."""
    return subprocess.run(
        [sys.executable, "-c", WRITER, str(db), str(value)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_until(predicate, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def values(manager: DuckDBConnectionManager) -> list[int]:
    with manager.connection() as con:
        return [r[0] for r in con.execute("SELECT v FROM t ORDER BY v").fetchall()]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


# -- opening and re-entrancy ---------------------------------------------------------


def test_opens_lazily(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=10)
    try:
        assert not manager.is_open
        assert manager.open_count == 0
        assert not db.exists(), "constructing the manager must not touch the file"

        with manager.connection() as con:
            assert manager.is_open
            assert con.execute("SELECT 42").fetchone() == (42,)
        assert db.exists()
        assert manager.open_count == 1
    finally:
        manager.close()


def test_connection_is_reentrant_and_shares_one_open(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=10)
    try:
        with manager.connection() as outer:
            with manager.connection() as inner:
                assert inner is outer
                with manager.transaction() as innermost:
                    assert innermost is outer
                    innermost.execute("CREATE TABLE t (v INTEGER)")
            assert manager.is_open
        with manager.connection() as again:
            assert again is outer
        assert manager.open_count == 1
    finally:
        manager.close()


def test_nested_exit_does_not_release_while_outer_use_continues(db: Path) -> None:
    # With a tiny idle_release_s, the end of an inner use schedules a release;
    # it must not close the connection while the outer use still holds it.
    manager = DuckDBConnectionManager(str(db), idle_release_s=0.05, max_hold_s=60)
    try:
        with manager.connection() as con:
            with manager.connection():
                con.execute("CREATE TABLE t (v INTEGER)")
            time.sleep(0.4)
            assert manager.is_open
            con.execute("INSERT INTO t VALUES (1)")  # still a live connection
        assert manager.open_count == 1
        assert wait_until(lambda: not manager.is_open, timeout=5)
    finally:
        manager.close()


# -- transactions --------------------------------------------------------------------


def test_transaction_commits(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=0)
    try:
        with manager.transaction() as con:
            con.execute("CREATE TABLE t (v INTEGER)")
            con.execute("INSERT INTO t VALUES (1), (2)")
        assert not manager.is_open  # idle_release_s=0 closes after each use
    finally:
        manager.close()
    # Committed means durable: a fresh connection sees the rows.
    con = duckdb.connect(str(db))
    try:
        assert con.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (2,)]
    finally:
        con.close()


def test_transaction_rolls_back_on_error(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=10)
    try:
        with manager.transaction() as con:
            con.execute("CREATE TABLE t (v INTEGER)")
            con.execute("INSERT INTO t VALUES (1)")

        with pytest.raises(ValueError, match="boom"), manager.transaction() as con:
            con.execute("INSERT INTO t VALUES (2)")
            con.execute("DELETE FROM t WHERE v = 1")
            raise ValueError("boom")

        assert values(manager) == [1]
        # The connection is left outside any transaction: a new one can begin.
        with manager.transaction() as con:
            con.execute("INSERT INTO t VALUES (3)")
        assert values(manager) == [1, 3]
    finally:
        manager.close()
    con = duckdb.connect(str(db))
    try:
        assert con.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (3,)]
    finally:
        con.close()


def test_transaction_rolls_back_on_sql_error(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=10)
    try:
        with manager.transaction() as con:
            con.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            con.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(duckdb.ConstraintException), manager.transaction() as con:
            con.execute("INSERT INTO t VALUES (2)")
            con.execute("INSERT INTO t VALUES (1)")
        assert values(manager) == [1]
    finally:
        manager.close()


# -- release -----------------------------------------------------------------------


def test_idle_release_closes_and_another_process_can_write(db: Path) -> None:
    idle = 0.3
    manager = DuckDBConnectionManager(str(db), idle_release_s=idle, max_hold_s=60)
    try:
        with manager.transaction() as con:
            con.execute("CREATE TABLE t (v INTEGER)")
            con.execute("INSERT INTO t VALUES (1)")
        released_from = time.monotonic()
        assert manager.is_open, "the connection is kept open right after use"

        assert wait_until(lambda: not manager.is_open, timeout=10), "never released when idle"
        waited = time.monotonic() - released_from
        assert waited >= idle * 0.8, f"released after {waited:.3f} s, before idle_release_s"

        # Another process can now open the file and write (it does not retry).
        result = run_writer(db, 2)
        assert result.returncode == 0, result.stderr

        # And this process transparently re-opens and sees the other's row.
        assert values(manager) == [1, 2]
        assert manager.open_count == 2
    finally:
        manager.close()


def test_a_reopen_keeps_the_epoch_only_when_nobody_wrote_the_file(db: Path) -> None:
    """What a process learned about the store survives its own idle release, nothing more.

    Epoch-keyed knowledge (completed signatures, raw inputs with no producer,
    the write-log mirror) is trusted only while no other process can have
    written: a re-open that finds the file's bytes as this manager left them
    keeps the epoch; another process's write, or a plain DuckDB client's,
    starts a new one.
    """
    manager = DuckDBConnectionManager(str(db), idle_release_s=60, max_hold_s=60)
    try:
        with manager.transaction() as con:
            con.execute("CREATE TABLE t (v INTEGER)")
            con.execute("INSERT INTO t VALUES (1)")
        first = manager.epoch
        manager.release()
        assert values(manager) == [1] and manager.epoch == first  # nobody else wrote
        with manager.transaction() as con:  # our own write, while held: same epoch
            con.execute("INSERT INTO t VALUES (2)")
        manager.release()
        assert values(manager) == [1, 2] and manager.epoch == first
        manager.release()
        # Read-only openers (another process, or DuckDB's CLI) change nothing.
        reader = subprocess.run(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; "
                "duckdb.connect(sys.argv[1], read_only=True).execute('SELECT * FROM t').fetchall()",
                str(db),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reader.returncode == 0, reader.stderr
        assert values(manager) == [1, 2] and manager.epoch == first
        manager.release()
        result = run_writer(db, 3)  # a plain DuckDB client writes
        assert result.returncode == 0, result.stderr
        assert values(manager) == [1, 2, 3] and manager.epoch == first + 1
        manager.release()
        other = DuckDBConnectionManager(str(db), idle_release_s=60, max_hold_s=60)
        try:
            with other.transaction() as con:  # another manager (as another tracker would)
                con.execute("INSERT INTO t VALUES (4)")
        finally:
            other.close()
        assert values(manager) == [1, 2, 3, 4] and manager.epoch == first + 2
    finally:
        manager.close()


def test_a_finalizer_releasing_during_an_open_does_not_close_the_connection_in_use(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped tracker's finalizer may call ``release`` in the middle of an open.

    Garbage collection runs finalizers in whichever thread allocates, inside
    the manager's (re-entrant) lock: a tracker dropped without ``close()``
    (a notebook cell run again) released the shared manager while another
    tracker was opening it, and that tracker got a closed connection
    ("Connection already closed!").
    """
    import consist.core.store.connection as connection

    manager = DuckDBConnectionManager(str(db), idle_release_s=60, max_hold_s=60)
    real_stamp = connection._file_stamp
    calls: list[int] = []

    def stamp_with_gc(path: str):
        calls.append(1)
        manager.release()  # what the finalizer does
        return real_stamp(path)

    try:
        with manager.transaction() as con:
            con.execute("CREATE TABLE t (v INTEGER)")
            con.execute("INSERT INTO t VALUES (1)")
        manager.release()
        monkeypatch.setattr(connection, "_file_stamp", stamp_with_gc)
        with manager.connection() as con:
            assert con.execute("SELECT v FROM t").fetchall() == [(1,)]
            manager.release()  # in use: a release must wait for the use to end
            assert con.execute("SELECT count(*) FROM t").fetchall() == [(1,)]
        assert calls
    finally:
        monkeypatch.undo()
        manager.close()


def test_regular_use_postpones_idle_release(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=0.5, max_hold_s=60)
    try:
        with manager.connection() as con:
            con.execute("CREATE TABLE t (v INTEGER)")
        for i in range(10):  # one use every 0.1 s, each well within idle_release_s
            time.sleep(0.1)
            with manager.connection() as con:
                con.execute("INSERT INTO t VALUES (?)", [i])
            assert manager.is_open
        assert manager.open_count == 1
        assert wait_until(lambda: not manager.is_open, timeout=10)
    finally:
        manager.close()


def test_release_thread_stops_after_releasing(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=0.05)
    try:
        with manager.connection() as con:
            con.execute("SELECT 1")
        assert wait_until(lambda: not manager.is_open, timeout=5)

        def release_threads() -> list[threading.Thread]:
            # Only this manager's timer: other tests' managers may still be idling.
            suffix = f"-{id(manager):x}"
            return [
                t
                for t in threading.enumerate()
                if t.name.startswith("consist-store-release-") and t.name.endswith(suffix)
            ]

        assert wait_until(lambda: not release_threads(), timeout=5), release_threads()
    finally:
        manager.close()


def test_max_hold_forces_release_between_operations(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=60, max_hold_s=0.3)
    try:
        with manager.connection() as first:
            first.execute("CREATE TABLE t (v INTEGER)")
            time.sleep(0.45)
            # Inside one operation (nested use) the hold is never broken.
            with manager.connection() as nested:
                assert nested is first
            assert manager.open_count == 1
        # The next top-level operation finds the hold too old: release, re-open.
        with manager.connection() as second:
            assert second is not first
            second.execute("INSERT INTO t VALUES (1)")
        assert manager.open_count == 2
        # A freshly opened connection is not released again right away.
        with manager.connection() as third:
            assert third is second
        assert manager.open_count == 2
    finally:
        manager.close()


@pytest.mark.slow
def test_max_hold_lets_a_waiting_process_take_its_turn(db: Path, children: list[Child]) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=60, max_hold_s=0.2, lock_timeout_s=20)
    try:
        with manager.transaction() as con:
            con.execute("CREATE TABLE t (v INTEGER)")
        child = spawn(children, PATIENT_WRITER, db, 7, 15)
        child.wait_for("trying")
        # A busy loop that never idles: only max_hold_s gives the file back.
        deadline = time.monotonic() + 20
        while child.proc.poll() is None and time.monotonic() < deadline:
            with manager.connection() as con:
                con.execute("SELECT count(*) FROM t").fetchone()
            time.sleep(0.001)
        assert child.finish() == 0, child.stderr()
        assert values(manager) == [7]
        assert manager.open_count >= 2
    finally:
        manager.close()


def test_release_and_close(db: Path) -> None:
    manager = DuckDBConnectionManager(str(db), idle_release_s=60)
    with manager.connection() as con:
        con.execute("CREATE TABLE t (v INTEGER)")
        manager.release()  # ignored while in use
        assert manager.is_open
    manager.release()
    assert not manager.is_open
    assert run_writer(db, 1).returncode == 0

    assert values(manager) == [1]
    assert manager.is_open
    manager.close()
    assert not manager.is_open
    with pytest.raises(RuntimeError, match="closed"), manager.connection():
        pass
    assert run_writer(db, 2).returncode == 0


# -- waiting for another process ------------------------------------------------------


@pytest.mark.slow
def test_waits_for_a_lock_held_by_another_process(db: Path, children: list[Child]) -> None:
    holder = spawn(children, HOLDER, db, 1.0)
    holder.wait_for("locked")
    manager = DuckDBConnectionManager(str(db), lock_timeout_s=20, idle_release_s=10)
    try:
        started = time.monotonic()
        with manager.connection() as con:
            waited = time.monotonic() - started
            # The holder's table is visible: we really opened the same file after it.
            assert con.execute("SELECT count(*) FROM holder").fetchone() == (0,)
        assert waited >= 0.3, f"opened after {waited:.2f} s although another process held it"
        assert waited < 15
        assert manager.open_count == 1
    finally:
        manager.close()
    assert holder.finish() == 0


@pytest.mark.slow
def test_lock_timeout_raises_store_lock_timeout(db: Path, children: list[Child]) -> None:
    holder = spawn(children, HOLDER, db, 4.0)
    holder.wait_for("locked")
    manager = DuckDBConnectionManager(str(db), lock_timeout_s=0.3, idle_release_s=10)
    try:
        started = time.monotonic()
        with pytest.raises(StoreLockTimeout) as info, manager.connection():
            pass
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 3.0, f"gave up after {elapsed:.2f} s with lock_timeout_s=0.3"
        message = str(info.value)
        assert "lock_timeout_s" in message
        assert str(db) in message
        assert isinstance(info.value.__cause__, duckdb.Error)
        assert is_lock_error(info.value.__cause__)
        assert not manager.is_open
        assert manager.open_count == 0

        # Not broken for good: once the other process is gone, it opens.
        holder.kill()
        with manager.connection() as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
    finally:
        manager.close()


@pytest.mark.slow
def test_lock_timeout_message_reports_the_configured_timeout(
    db: Path, children: list[Child]
) -> None:
    holder = spawn(children, HOLDER, db, 4.0)
    holder.wait_for("locked")
    manager = DuckDBConnectionManager(str(db), lock_timeout_s=0.3, idle_release_s=10)
    try:
        with pytest.raises(StoreLockTimeout) as info, manager.connection():
            pass
    finally:
        manager.close()
    # The message must tell the truth about how long it waited (0.3 s, not "0 s").
    assert "0.3" in str(info.value), str(info.value)


def test_tracker_hands_its_lock_options_to_the_store(tmp_path: Path) -> None:
    tracker = Tracker(
        tmp_path / "work",
        tmp_path / "store.duckdb",
        lock_timeout_s=7.5,
        idle_release_s=0.05,
        max_hold_s=0.75,
    )
    store = tracker.store
    assert store is not None
    manager = store.connections
    assert (manager.lock_timeout_s, manager.idle_release_s, manager.max_hold_s) == (
        7.5,
        0.05,
        0.75,
    )
    # Opening the tracker used the file; it is handed back once idle.
    assert wait_until(lambda: not manager.is_open, timeout=5)
    assert run_writer(tmp_path / "store.duckdb", 1).returncode == 0
    store.close()


@pytest.mark.slow
def test_tracker_waits_for_or_gives_up_on_a_locked_store(
    tmp_path: Path, children: list[Child]
) -> None:
    db = tmp_path / "store.duckdb"
    # A Consist store first (made by another process): a DuckDB file holding
    # only another client's tables is not a store (test_store_identity.py).
    setup = "import sys; from consist import Tracker; Tracker(sys.argv[1], sys.argv[2]).close()"
    subprocess.run([sys.executable, "-c", setup, tmp_path / "setup", db], check=True, timeout=60)
    holder = spawn(children, HOLDER, db, 1.5)
    holder.wait_for("locked")
    with pytest.raises(StoreLockTimeout, match="lock_timeout_s"):
        Tracker(tmp_path / "impatient", db, lock_timeout_s=0.3)
    tracker = Tracker(tmp_path / "patient", db, lock_timeout_s=20)
    assert holder.finish() == 0
    with tracker.start_run("r1", "sim", config={"a": 1}):
        pass
    assert tracker.get_run("r1").status == "completed"
    tracker.store.close()


def test_non_lock_errors_are_not_retried(tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-db.duckdb"
    garbage.write_bytes(b"this is not a duckdb database file" * 200)
    manager = DuckDBConnectionManager(str(garbage), lock_timeout_s=30)
    started = time.monotonic()
    with pytest.raises(duckdb.Error) as info, manager.connection():
        pass
    assert not isinstance(info.value, StoreLockTimeout)
    assert not is_lock_error(info.value)
    assert time.monotonic() - started < 5, "a non-lock error was retried until the timeout"
    assert not manager.is_open
    manager.close()


# -- is_lock_error ---------------------------------------------------------------------


@pytest.mark.slow
def test_is_lock_error_recognises_the_real_duckdb_error(db: Path, children: list[Child]) -> None:
    holder = spawn(children, HOLDER, db, 4.0)
    holder.wait_for("locked")
    with pytest.raises(duckdb.Error) as info:
        duckdb.connect(str(db))
    assert is_lock_error(info.value), str(info.value)
    # The text alone is enough (e.g. an error re-raised by another layer).
    assert is_lock_error(RuntimeError(str(info.value)))
    holder.kill()


def test_is_lock_error_rejects_other_errors(db: Path) -> None:
    con = duckdb.connect(str(db))
    try:
        with pytest.raises(duckdb.Error) as info:
            con.execute("SELECT * FROM no_such_table")
    finally:
        con.close()
    assert not is_lock_error(info.value)
    assert not is_lock_error(ValueError("bad value"))
    assert not is_lock_error(OSError("No such file or directory"))


def test_a_dropped_tracker_hands_its_file_back_at_once(tmp_path: Path) -> None:
    # A notebook re-running a cell drops the old tracker without close():
    # its DuckDB instance must not linger until the idle timer fires (two
    # instances in memory at once, and another process locked out meanwhile).
    import gc

    db = tmp_path / "p.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db, idle_release_s=60)
    with tracker.start_run("first", "m", config={"x": 1}):
        pass
    manager = tracker.store.connections
    assert manager.is_open
    del tracker
    gc.collect()
    assert not manager.is_open
    assert run_writer(db, 2).returncode == 0  # another process gets in at once

    # A closed tracker that is dropped later, and two trackers on one file.
    closed = Tracker(run_dir=tmp_path / "runs", db_path=db)
    closed.close()
    del closed
    gc.collect()
    kept = Tracker(run_dir=tmp_path / "runs", db_path=db)
    dropped = Tracker(run_dir=tmp_path / "runs", db_path=db)
    del dropped
    gc.collect()
    with kept.start_run("second", "m", config={"x": 2}):
        pass
    assert kept.get_run("first") is not None and kept.get_run("second") is not None
    kept.close()


# --------------------------------------------------------------------------- #
# Threads: one for the store's own statements, all of them for bulk work
# --------------------------------------------------------------------------- #
def _threads(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


def test_the_store_runs_on_one_thread_and_bulk_work_on_all(tmp_path: Path) -> None:
    manager = DuckDBConnectionManager(str(tmp_path / "t.duckdb"), idle_release_s=600)
    manager.bulk_threads = 3  # more than one, whatever this machine has
    try:
        with manager.connection() as con:
            assert _threads(con) == 1
        with manager.all_cores():
            with manager.connection() as con:
                assert _threads(con) == 3
            with manager.all_cores(), manager.connection() as con:  # re-entrant
                assert _threads(con) == 3
            with manager.connection() as con:
                assert _threads(con) == 3
        with manager.connection() as con:
            assert _threads(con) == 1
        manager.release()  # a re-opened file starts on one thread again
        with manager.connection() as con:
            assert _threads(con) == 1
        with manager.all_cores():
            manager.release()  # re-opened inside all_cores(): all threads
            with manager.connection() as con:
                assert _threads(con) == 3
    finally:
        manager.close()


def test_a_plain_duckdb_connection_in_the_process_shares_the_store(tmp_path: Path) -> None:
    db = tmp_path / "runs" / "provenance.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    try:
        tracker.run(fn=_noop, name="one", config={"k": 1})
        with tracker.store.connections.connection():
            mine = duckdb.connect(str(db))  # same instance: no configuration conflict
            try:
                assert mine.execute("SELECT count(*) FROM run").fetchall() == [(1,)]
                assert _threads(mine) == 1
            finally:
                mine.close()
        assert tracker.run_query("SELECT current_setting('threads')")[0][0] == max(
            tracker.store.connections._cores, 1
        )
    finally:
        tracker.close()


def _noop() -> None:
    return None


def test_coarse_file_times_never_keep_the_epoch() -> None:
    """Where a file system keeps whole milliseconds or seconds (FAT: 2 s), times prove nothing."""
    from consist.core.store.connection import _coarse_times

    fine = (1, 2, 4096, 1_796_473_941_403_926_675, 1_796_473_941_403_926_675)
    coarse = (1, 2, 4096, 1_796_473_940_000_000_000, 1_796_473_940_000_000_000)
    assert not _coarse_times((fine, None))
    assert _coarse_times((coarse, None))
    assert _coarse_times((None, None))


# A child that opens a tracker on a store (in a git repository) and reports whether its
# git state was ready when Tracker() returned, then makes one run.
PREPARED_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[4])
from consist import Tracker
from steps_for_wait import step
t0 = time.monotonic()
t = Tracker(sys.argv[1], db_path=sys.argv[2], project_root=sys.argv[3])
print("opened", round(time.monotonic() - t0, 3), t.code_identity._core is not None, flush=True)
print("ran", t.run(step, config={"x": 1}).run.status, flush=True)
t.close()
"""


def test_a_tracker_waiting_for_the_store_prepares_its_git_state_meanwhile(
    tmp_path: Path, children: list[Child]
) -> None:
    from _support import make_git_repo

    repo = make_git_repo(
        tmp_path / "model", {"steps_for_wait.py": "def step(x):\n    return None\n"}
    )
    db = repo / "work" / "db.duckdb"
    holder = Tracker(repo / "work" / "runs", db_path=db, project_root=repo, idle_release_s=60)
    holder.run_query("SELECT 1")  # holds the file until released
    assert holder.store.connections.is_open
    child = Child(PREPARED_CHILD, repo / "work" / "runs_child", db, repo, repo)
    children.append(child)
    time.sleep(1.0)  # the child is waiting for the turn
    holder.close()
    opened = child.wait_for("opened").split()
    assert float(opened[1]) >= 0.5 and opened[2] == "True", opened
    assert child.wait_for("ran") == "ran completed"
    assert child.finish() == 0

    # With the store free nothing is prepared ahead: Tracker() stays as cheap as before.
    free = Child(PREPARED_CHILD, repo / "work" / "runs_free", db, repo, repo)
    children.append(free)
    assert free.wait_for("opened").split()[2] == "False"
    assert free.wait_for("ran") == "ran completed"
    assert free.finish() == 0
