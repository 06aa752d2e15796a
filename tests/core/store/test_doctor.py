"""Tracker.store_report, Tracker.doctor and Tracker.compact_store on real stores.

Problems are made the way they happen: a child process killed with SIGKILL
in the middle of a run, rows deleted from the DuckDB file by another
program, a journal snapshot restored from an old copy.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from _support import Child, make_git_repo
from consist import Tracker
from consist.core.store.doctor import DoctorReport, process_state
from consist.core.store.lineage_store import link_nodes
from consist.models.run import Run

VICTIM = r"""
import sys, time
from consist import Tracker
run_dir, db_path, root, mode = sys.argv[1:5]
hold = {"idle_release_s": 600.0, "max_hold_s": 600.0} if mode == "hold" else {}
t = Tracker(run_dir, db_path=db_path, project_root=root, **hold)
if mode in ("begin", "hold"):
    t.begin_run("victim", "sim", config={"x": 1})
    out = t.run_artifact_dir() / "part.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("partial\n")
    t.log_output(out, key="part")
    print("ready", flush=True)
else:
    sys.path.insert(0, root)
    from slow_step import slow
    t.run(fn=slow, name="victim", run_id="victim", config={"x": 1})
time.sleep(120)
"""

SLOW_STEP = """import time


def slow(x: int = 1) -> None:
    print("ready", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "model", {"model.py": "X = 1\n", "slow_step.py": SLOW_STEP})


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def record_runs(repo: Path, n: int = 3) -> Tracker:
    tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    for i in range(n):
        with tracker.start_run(f"r{i}", "sim", config={"x": i}):
            out = tracker.run_artifact_dir() / "out.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"{i}\n")
            tracker.log_output(out, key="out")
    return tracker


def reader(repo: Path) -> Tracker:
    return Tracker(
        repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo, read_only=True
    )


def kinds(report: DoctorReport) -> list[tuple[str, str]]:
    return sorted((f.kind, f.subject) for f in report.findings)


def test_a_clean_store_is_healthy_and_described(repo: Path) -> None:
    tracker = record_runs(repo)
    tracker.close()
    ro = reader(repo)
    report = ro.doctor()
    assert report.healthy and report.findings == [] and report.notes == []
    info = ro.store_report()
    assert info.tables["run"] == 3
    assert info.tables["artifact"] == 3
    assert info.tables["run_artifact_link"] == 3
    assert info.schema_version >= 6
    assert info.size_bytes == os.path.getsize(repo / "provenance.duckdb")
    assert info.journal_pending == [] and info.dead_starts == [] and info.logged_writes == 0
    with pytest.raises(ValueError, match="read_only"):
        ro.doctor(fix=True)
    ro.close()


def test_the_report_names_ingested_tables_as_readers_query_them(repo: Path) -> None:
    import pandas as pd

    tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    with tracker.start_run("ingesting", "sim"):
        people = tracker.log_dataframe(pd.DataFrame({"x": range(5)}), key="people")
        tracker.ingest(people)
    report = tracker.store_report()
    assert report.tables["global_tables.people"] == 5
    assert not any(label.startswith("hot_rows.") for label in report.tables)
    tracker.close()
    with duckdb.connect(str(repo / "provenance.duckdb")) as con:
        # A base table that already holds the view's name keeps it; the rows
        # table behind the view is then listed under its physical name.
        con.execute("DROP VIEW global_tables.people")
        con.execute("CREATE TABLE global_tables.people AS SELECT 1 AS x")
    ro = reader(repo)
    labels = ro.store_report().tables
    ro.close()
    assert labels["global_tables.people"] == 1 and labels["hot_rows.people"] == 5


@pytest.mark.parametrize("mode", ["begin", "run"])
def test_a_sigkilled_run_is_found_and_marked_failed(
    repo: Path, children: list[Child], mode: str
) -> None:
    record_runs(repo, 1).close()
    db = repo / "provenance.duckdb"
    child = Child(VICTIM, repo / "runs", db, repo, mode, timeout=60)
    children.append(child)
    child.wait_for("ready")
    pid = child.proc.pid
    child.sigkill()

    before = db.read_bytes()
    ro = reader(repo)
    found = ro.doctor()
    ro.close()
    assert db.read_bytes() == before, "doctor without fix writes nothing"
    assert not found.healthy
    subjects = {f.subject for f in found.findings}
    assert "victim" in subjects, kinds(found)
    if mode == "run":  # only a start record in the dead process's ledger
        assert ("unreplayed", "victim") in kinds(found)

    if mode == "begin":  # the row is in the database; its journal is not in this run_dir
        elsewhere = Tracker(repo / "other_runs", db_path=db, project_root=repo)
        kept = elsewhere.doctor(fix=True)
        elsewhere.close()
        [finding] = [f for f in kept.findings if f.kind == "dead_running"]
        assert not finding.fixed and "--run-dir" in finding.action
        assert not kept.healthy
        assert not (repo / "other_runs" / "consist_runs" / "victim.json").exists()

    rw = Tracker(repo / "runs", db_path=db, project_root=repo)
    fixed = rw.doctor(fix=True)
    assert fixed.healthy, fixed.as_dict()
    if mode == "run":
        assert "victim" in fixed.replayed_on_open
    dead = [f for f in fixed.findings if f.kind == "dead_running"]
    assert [f.subject for f in dead] == ["victim"]
    assert dead[0].fixed and f"pid {pid}" in dead[0].action
    run = rw.get_run("victim")
    assert run is not None and run.status == "failed" and run.ended_at is not None
    assert f"pid {pid}" in run.meta["error"] and "consist db doctor" in run.meta["error"]
    snapshot = json.loads((repo / "runs" / "consist_runs" / "victim.json").read_bytes())
    assert snapshot["run"]["status"] == "failed", "the journal says so too (rebuild agrees)"
    if mode == "begin":
        assert "part" in rw.get_run_outputs("victim")
    assert rw.get_run("r0").status == "completed"
    again = rw.doctor()
    assert again.healthy and again.findings == []
    rw.close()


def test_a_dead_run_missing_from_the_database_is_replayed_then_failed(
    repo: Path, children: list[Child]
) -> None:
    record_runs(repo, 1).close()
    db = repo / "provenance.duckdb"
    child = Child(VICTIM, repo / "runs", db, repo, "begin", timeout=60)
    children.append(child)
    child.wait_for("ready")
    child.sigkill()
    Tracker(repo / "runs", db_path=db, project_root=repo).close()  # applies its writes
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM run_artifact_link WHERE run_id = 'victim'")
    con.execute("DELETE FROM run WHERE id = 'victim'")
    con.close()

    ro = reader(repo)
    found = ro.doctor()
    ro.close()
    assert kinds(found) == [("dead_running", "victim"), ("missing_in_db", "victim")]
    rw = Tracker(repo / "runs", db_path=db, project_root=repo)
    fixed = rw.doctor(fix=True)
    assert fixed.healthy, fixed.as_dict()
    assert rw.get_run("victim").status == "failed"
    assert "part" in rw.get_run_outputs("victim")
    assert rw.doctor().findings == []
    rw.close()


def test_writes_a_killed_process_left_in_the_write_log(repo: Path, children: list[Child]) -> None:
    record_runs(repo, 1).close()
    db = repo / "provenance.duckdb"
    child = Child(VICTIM, repo / "runs", db, repo, "hold", timeout=60)
    children.append(child)
    child.wait_for("ready")
    child.sigkill()  # it held the file: its run writes are logged, not applied

    ro = reader(repo)
    info = ro.store_report()
    found = ro.doctor()
    ro.close()
    assert info.logged_writes > 0 and info.tables["run"] == 1
    assert ("unapplied_writes", str(db)) in kinds(found)
    assert ("missing_in_db", "victim") in kinds(found)
    assert ("dead_running", "victim") in kinds(found)
    rw = Tracker(repo / "runs", db_path=db, project_root=repo)
    fixed = rw.doctor(fix=True)
    assert fixed.healthy, fixed.as_dict()
    assert rw.get_run("victim").status == "failed"
    assert rw.store_report().logged_writes == 0
    rw.close()


def test_dangling_links_are_found_and_removed(repo: Path) -> None:
    tracker = record_runs(repo)
    art = tracker.get_run_outputs("r1")["out"]
    tracker.close()
    db = repo / "provenance.duckdb"
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM artifact WHERE id = ?", [str(art.id)])
    con.execute(
        "INSERT INTO run_artifact_link (run_id, artifact_id, direction, key, meta, src, dst) "
        "VALUES ('ghost', ?, 'input', 'out', NULL, ?, ?)",
        [str(art.id), *link_nodes("ghost", art.id, "input")],
    )
    con.close()
    ro = reader(repo)
    report = ro.doctor()
    ro.close()
    # The hand-written link also has no lineage group (lineage walks every link meanwhile).
    assert kinds(report) == [
        ("dangling_link", "ghost/out (input)"),
        ("dangling_link", "r1/out (output)"),
        ("link_without_group", str(db)),
    ]
    assert all(f.fixable and not f.fixed for f in report.findings)
    rw = Tracker(repo / "runs", db_path=db, project_root=repo)
    fixed = rw.doctor(fix=True)
    assert fixed.healthy
    dangling = [f for f in fixed.findings if f.kind == "dangling_link"]
    assert len(dangling) == 2 and all(f.action == "deleted the link row" for f in dangling)
    assert rw.store_report().tables["run_artifact_link"] == 2
    assert rw.doctor().findings == []
    rw.close()


def test_journal_and_database_mismatches(repo: Path) -> None:
    tracker = record_runs(repo)
    tracker.close()
    runs_dir = repo / "runs" / "consist_runs"
    old_r2 = (runs_dir / "r2.json").read_bytes()
    # Another program edits the file: r0's row is lost, r1's row is older than its
    # snapshot, r2's row claims a newer version than its snapshot.
    db = repo / "provenance.duckdb"
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM run_artifact_link WHERE run_id = 'r0'")
    con.execute("DELETE FROM run WHERE id = 'r0'")
    con.execute("UPDATE run SET updated_ns = updated_ns - 5 WHERE id = 'r1'")
    con.execute("UPDATE run SET updated_ns = updated_ns + 5 WHERE id = 'r2'")
    con.close()
    ro = reader(repo)
    report = ro.doctor()
    ro.close()
    assert kinds(report) == [("db_newer", "r2"), ("db_older", "r1"), ("missing_in_db", "r0")]
    rw = Tracker(repo / "runs", db_path=db, project_root=repo)
    fixed = rw.doctor(fix=True)
    state = {f.subject: f.fixed for f in fixed.findings}
    assert state == {"r0": True, "r1": True, "r2": False}
    assert not fixed.healthy  # the newer row cannot be re-journaled
    assert rw.get_run("r0").status == "completed"
    assert "out" in rw.get_run_outputs("r0")
    assert kinds(rw.doctor()) == [("db_newer", "r2")]
    assert (runs_dir / "r2.json").read_bytes() == old_r2  # nothing rewritten behind our back
    rw.close()


def test_runs_of_other_hosts_and_live_processes_are_left_alone() -> None:
    now = datetime.now(UTC)
    here = socket.gethostname()
    other = Run(id="a", model_name="m", meta={"host": "elsewhere", "pid": 1}, created_at=now)
    assert process_state(other)[0] == "unknown"
    assert process_state(Run(id="b", model_name="m", meta={}, created_at=now))[0] == "unknown"
    mine = Run(id="c", model_name="m", meta={"host": here, "pid": os.getpid()}, created_at=now)
    assert process_state(mine)[0] == "alive"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started_before = Run(
            id="d",
            model_name="m",
            meta={"host": here, "pid": sleeper.pid},
            created_at=now + timedelta(minutes=5),
        )
        assert process_state(started_before)[0] == "alive"
        if Path(f"/proc/{sleeper.pid}/stat").exists():
            # The pid belongs to a process that started after the run: a reused pid.
            reused = Run(
                id="e",
                model_name="m",
                meta={"host": here, "pid": sleeper.pid},
                created_at=now - timedelta(hours=1),
            )
            assert process_state(reused)[0] == "dead"
    finally:
        sleeper.kill()
        sleeper.wait()
    gone = Run(id="f", model_name="m", meta={"host": here, "pid": sleeper.pid}, created_at=now)
    assert process_state(gone)[0] == "dead"


def test_compact_store_gives_space_back_and_keeps_every_row(repo: Path) -> None:
    tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    for i in range(40):
        with tracker.start_run(f"big{i}", "sim", config={"x": i}):
            tracker.log_meta(blob="x" * 20000 + str(i))
    tracker.close()
    db = repo / "provenance.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE scratch AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(300000)"
    )
    con.execute("CHECKPOINT")
    con.execute("DELETE FROM scratch WHERE i > 10")
    con.execute("CHECKPOINT")
    expected = {
        t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in ("run", "scratch")
    }
    con.close()
    size = os.path.getsize(db)
    rw = Tracker(repo / "runs", db_path=db, project_root=repo)
    report = rw.compact_store()
    assert report.size_before >= size - 1
    assert report.size_after < report.size_before / 2
    assert report.saved == report.size_before - report.size_after
    assert report.tables["run"] == 40 and report.tables["scratch"] == 11
    assert os.path.getsize(db) == report.size_after
    assert rw.get_run("big7").meta["blob"].endswith("7")  # the tracker reads the new file
    with rw.start_run("after", "sim", config={"x": -1}):
        pass
    rw.close()
    con = duckdb.connect(str(db), read_only=True)
    for table, rows in expected.items():
        got = con.execute(
            f"SELECT * FROM {table} WHERE id IS DISTINCT FROM 'after' ORDER BY ALL"
            if table == "run"
            else f"SELECT * FROM {table} ORDER BY ALL"
        ).fetchall()
        assert got == rows
    con.close()
    assert not list(repo.glob("provenance.duckdb.compact-*"))
    ro = reader(repo)
    with pytest.raises(ValueError, match="read_only"):
        ro.compact_store()
    ro.close()
