"""Function-shaped runs queue their final database write; nothing may be lost.

The journal is written at once; the store commits queued snapshots together
(before any read, when the queue fills, when the process goes idle, at exit),
and a store opened after a crash replays what was never committed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from consist import Tracker
from consist.core.store.journal import Journal


def _count_rows(db_path: Path, sql: str) -> int:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def _step() -> None:
    return None


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    # A long idle timeout so the queue is not committed behind the test's back.
    t = Tracker(
        tmp_path / "runs",
        db_path=tmp_path / "db.duckdb",
        project_root=tmp_path,
        idle_release_s=60,
    )
    yield t
    t.close()


def test_queued_runs_are_visible_to_reads_in_the_same_process(tracker: Tracker) -> None:
    results = [tracker.run(_step, name="q", config={"i": i}) for i in range(5)]
    assert tracker.store.pending_writes > 0  # really queued
    for result in results:
        run = tracker.get_run(result.run_id)
        assert run is not None and run.status == "completed"
    assert tracker.store.pending_writes == 0
    assert tracker.journal.pending_run_ids() == []


def test_queue_is_committed_when_full(tmp_path: Path) -> None:
    t = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    t.store.max_pending = 3
    for i in range(7):
        t.run(_step, name="q", config={"i": i})
    assert t.store.pending_writes < 3
    t.close()
    assert _count_rows(tmp_path / "db.duckdb", "SELECT count(*) FROM run") == 7


def test_idle_process_commits_and_releases_for_other_processes(tmp_path: Path) -> None:
    t = Tracker(
        tmp_path / "runs",
        db_path=tmp_path / "db.duckdb",
        project_root=tmp_path,
        idle_release_s=0.1,
    )
    t.run(_step, name="idle", config={"i": 1})
    deadline = time.monotonic() + 5
    while (t.store.pending_writes or t.store.connections.is_open) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert t.store.pending_writes == 0
    assert not t.store.connections.is_open
    # Another process (a plain read-only DuckDB client) sees the run.
    code = (
        "import duckdb,sys; c=duckdb.connect(sys.argv[1], read_only=True); "
        "print(c.execute(\"select status from run where model_name='idle'\").fetchone()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "db.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "completed"


def _child_script(tmp_path: Path, then: str) -> str:
    return textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from consist import Tracker
        from test_batched_writes import _step
        t = Tracker({str(tmp_path / "runs")!r}, db_path={str(tmp_path / "db.duckdb")!r},
                    project_root={str(tmp_path)!r}, idle_release_s=600)
        ids = [t.run(_step, name="child", config={{"i": i}}).run_id for i in range(10)]
        assert t.store.pending_writes > 0
        print(" ".join(ids), flush=True)
        {then}
        """
    )


@pytest.mark.slow
def test_queued_writes_are_committed_at_normal_exit(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _child_script(tmp_path, "pass")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert _count_rows(tmp_path / "db.duckdb", "SELECT count(*) FROM run") == 10
    assert Journal(tmp_path / "runs").pending_run_ids() == []


@pytest.mark.slow
def test_queued_writes_of_a_killed_process_are_replayed(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _child_script(tmp_path, "time.sleep(600)")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        run_ids = line.split()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # The journal has every run; the database lacks the queued ones.
    journal = Journal(tmp_path / "runs")
    outstanding = set(journal.pending_run_ids())
    assert outstanding, "the killed process had queued writes"
    for run_id in run_ids:
        snapshot = json.loads(journal.path_for(run_id).read_bytes())
        assert snapshot["run"]["status"] == "completed"
    # Reopening the store catches up from the journal: nothing is lost.
    fresh = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    assert fresh.recovery is not None
    assert outstanding <= set(fresh.recovery.replayed)
    for run_id in run_ids:
        run = fresh.get_run(run_id)
        assert run is not None and run.status == "completed", run_id
    assert fresh.journal.pending_run_ids() == []
    # The dead process's ledger is gone; only ours may remain.
    ledgers = list((tmp_path / "runs" / "consist_runs" / ".pending").glob("*.log"))
    assert all(p.name.startswith(f"{os.getpid()}-") for p in ledgers)
    # ...and the replayed runs serve as cache sources again.
    assert fresh.run(_step, name="child", config={"i": 3}).cache_hit
    fresh.close()


def test_input_discovery_sees_queued_outputs(tracker: Tracker, tmp_path: Path) -> None:
    def produce() -> Path:
        path = tracker.output_path("table", ext="csv")
        path.write_text("a\n1\n")
        return path

    def consume(table: Path) -> None:
        assert table.read_text() == "a\n1\n"

    first = tracker.run(produce, outputs=["table"])
    assert tracker.store.pending_writes > 0
    second = tracker.run(consume, inputs={"table": first.outputs["table"].path})
    assert tracker.store.pending_writes > 0, "discovery answered without flushing"
    linked = tracker.get_run_inputs(second.run_id)["table"]
    assert linked.id == first.outputs["table"].id
    producer = tracker.get_run(first.run_id)
    manifest = tracker.store.get_identity_manifest(second.run_id)
    assert manifest["inputs"]["table"]["producer_signature"] == producer.signature
