"""Recovery speaks up and finishes its work.

Pending snapshots come from real processes that journal runs whose database
commit never happens (the commit is made to fail inside the child) and are
then killed with SIGKILL, so their ledgers are dead exactly as after a crash.
The damage is real bytes written into real files: a garbled snapshot, a
ledger line with a hostile run id, a ledger overwritten with random bytes, a
directory and a FIFO named ``*.log``, a temporary file left by a process
killed between write and rename. Every problem must be reported (a
``RecoveryWarning`` and a ``consist`` log record naming the file and what was
done), dealt with once, and never replayed again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from _support import Child, make_git_repo
from consist import Tracker
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.recovery import RecoveryReport, RecoveryWarning

# Journals runs whose DB commit fails, then reports and waits (to be killed or told to exit).
# argv: project, run_dir, db, first run index, count, mode ("kill" | "hold" | "crash_rename")
CHILD = r"""
import logging, os, signal, sys, warnings
from consist import Tracker
from consist.core.store.metadata_store import MetadataStore

project, run_dir, db, first, count, mode = sys.argv[1:7]
warnings.simplefilter("ignore")
logging.getLogger("consist").setLevel(logging.CRITICAL)
tracker = Tracker(run_dir=run_dir, db_path=db, project_root=project)

def refuse(self, *args, **kwargs):
    raise OSError(5, "database commit refused (test)")

MetadataStore.sync_record = refuse
for i in range(int(first), int(first) + int(count)):
    with tracker.start_run(f"r{i:04d}", "model", config={"k": i}):
        pass
if mode == "crash_rename":
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith("victim.json"):
            os.kill(os.getpid(), signal.SIGKILL)  # written, not yet renamed
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
    tracker.begin_run("victim", "model", config={"k": -1})
print("ready", flush=True)
sys.stdin.readline()  # "hold": the parent tells it to exit; otherwise it is SIGKILLed
os._exit(0)
"""


def _project(tmp_path: Path) -> Path:
    """A model repository holding run_dir and the store (untracked, beside the code)."""
    return make_git_repo(tmp_path / "model", {"model.py": "def step(k):\n    return k\n"})


def _paths(project: Path) -> tuple[Path, Path]:
    return project / "runs", project / "store.duckdb"


def _create_store(project: Path) -> None:
    run_dir, db = _paths(project)
    Tracker(run_dir=run_dir, db_path=db, project_root=project).close()


def _crashed(
    project: Path, children: list[Child], count: int, *, first: int = 0, mode: str = "kill"
) -> Child:
    """A process that journaled ``count`` runs, none committed, then died (or waits)."""
    run_dir, db = _paths(project)
    child = Child(CHILD, project, run_dir, db, first, count, mode, stdin=True, timeout=120)
    children.append(child)
    if mode == "crash_rename":  # it kills itself between write and rename
        assert child.finish() == -9
        return child
    child.wait_for("ready")
    if mode == "kill":
        child.sigkill()
    return child


def _ledgers(project: Path) -> list[Path]:
    return sorted((project / "runs" / "consist_runs" / ".pending").glob("*.log"))


def _quarantine(project: Path) -> list[Path]:
    folder = project / "runs" / "consist_runs" / ".pending" / "quarantine"
    return sorted(folder.iterdir()) if folder.exists() else []


def _open(project: Path) -> Tracker:
    run_dir, db = _paths(project)
    return Tracker(run_dir=run_dir, db_path=db, project_root=project)


def _open_warned(
    project: Path, caplog: pytest.LogCaptureFixture
) -> tuple[Tracker, list[str], list[str]]:
    """Open a tracker; return it, its RecoveryWarning texts and consist WARNING log texts."""
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="consist"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        tracker = _open(project)
    texts = [str(w.message) for w in caught if issubclass(w.category, RecoveryWarning)]
    logged = [r.getMessage() for r in caplog.records if r.name == "consist"]
    return tracker, texts, logged


def _quiet_open(project: Path) -> Tracker:
    """Open a tracker that must find nothing to recover (any RecoveryWarning fails)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecoveryWarning)
        tracker = _open(project)
    assert tracker.recovery == RecoveryReport()
    return tracker


def _statuses(tracker: Tracker) -> dict[str, str]:
    return {r.id: r.status for r in tracker.find_runs(limit=None)}


def test_garbled_pending_snapshot_is_reported_once_and_its_ledger_set_aside(
    tmp_path: Path, children: list[Child], caplog: pytest.LogCaptureFixture
):
    project = _project(tmp_path)
    _create_store(project)
    _crashed(project, children, 3)
    [ledger] = _ledgers(project)
    garbled = project / "runs" / "consist_runs" / "r0001.json"
    garbled.write_bytes(b'{"run": {"id": "r0001", "status": "compl\x00\xff')

    tracker, texts, logged = _open_warned(project, caplog)
    try:
        assert sorted(tracker.recovery.replayed) == ["r0000", "r0002"]
        assert set(tracker.recovery.errors) == {"r0001"}
        statuses = _statuses(tracker)
        assert statuses["r0000"] == statuses["r0002"] == "completed"
        assert "r0001" not in statuses  # nothing readable to restore it from
    finally:
        tracker.close()
    assert any(str(garbled) in t and "left in place" in t for t in texts), texts
    assert any(str(ledger) in t and "/.pending/quarantine/" in t for t in texts), texts
    assert any(str(garbled) in m for m in logged), logged
    assert not ledger.exists()
    [moved] = _quarantine(project)
    assert moved.name.startswith(ledger.name)
    assert garbled.exists()  # the evidence stays where it was
    _quiet_open(project).close()  # never replayed again


def test_hostile_run_id_in_a_ledger_is_quarantined_and_never_followed(
    tmp_path: Path, children: list[Child], caplog: pytest.LogCaptureFixture
):
    project = _project(tmp_path)
    _create_store(project)
    _crashed(project, children, 2)
    [ledger] = _ledgers(project)
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"not": "a snapshot"}))
    with ledger.open("ab") as fh:
        fh.write(f"P\t{time.time_ns()}\t../../../outside\n".encode())
        fh.write(f"P\t{time.time_ns()}\tr\x01ctl\n".encode())

    tracker, texts, logged = _open_warned(project, caplog)
    try:
        assert sorted(tracker.recovery.replayed) == ["r0000", "r0001"]
        assert set(_statuses(tracker).values()) == {"completed"}
    finally:
        tracker.close()
    [warning] = [t for t in texts if str(ledger) in t]
    assert "2 line(s) that are not ledger entries" in warning
    assert "../../../outside" in warning and "/.pending/quarantine/" in warning
    assert any(str(ledger) in m for m in logged)
    assert outside.read_text() == json.dumps({"not": "a snapshot"})
    assert [p.name.split(".log")[0] for p in _quarantine(project)] == [ledger.stem]
    _quiet_open(project).close()


def test_ledger_overwritten_with_random_bytes_restores_the_runs_it_listed(
    tmp_path: Path, children: list[Child], caplog: pytest.LogCaptureFixture
):
    project = _project(tmp_path)
    _create_store(project)
    _crashed(project, children, 5)
    [ledger] = _ledgers(project)
    ledger.write_bytes(os.urandom(6000))  # every pending entry lost

    tracker, texts, logged = _open_warned(project, caplog)
    try:
        assert sorted(tracker.recovery.restored) == [f"r{i:04d}" for i in range(5)]
        assert _statuses(tracker) == {f"r{i:04d}": "completed" for i in range(5)}
        assert tracker.get_run_config("r0003") == {"k": 3}
    finally:
        tracker.close()
    assert any(str(ledger) in t and "/.pending/quarantine/" in t for t in texts), texts
    assert any("restored 5 run(s)" in t for t in texts), texts
    assert any("restored 5 run(s)" in m for m in logged), logged
    assert not ledger.exists() and len(_quarantine(project)) == 1
    _quiet_open(project).close()


def test_a_live_processs_damaged_ledger_is_reported_but_left_alone(
    tmp_path: Path, children: list[Child], caplog: pytest.LogCaptureFixture
):
    project = _project(tmp_path)
    _create_store(project)
    child = _crashed(project, children, 2, mode="hold")
    [ledger] = _ledgers(project)
    with ledger.open("ab") as fh:
        fh.write(b"\x00garbage line\n")

    tracker, texts, _ = _open_warned(project, caplog)
    tracker.close()
    assert any(str(ledger) in t and "still running" in t for t in texts), texts
    assert ledger.exists() and _quarantine(project) == []

    child.send("exit")
    assert child.finish() == 0  # os._exit: the ledger stays, unlocked
    tracker, texts, _ = _open_warned(project, caplog)
    try:
        assert _statuses(tracker) == {"r0000": "completed", "r0001": "completed"}
    finally:
        tracker.close()
    assert any(str(ledger) in t and "/.pending/quarantine/" in t for t in texts), texts
    assert not ledger.exists()
    _quiet_open(project).close()


def test_entries_named_log_that_are_not_files_are_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    project = _project(tmp_path)
    _create_store(project)
    pending = project / "runs" / "consist_runs" / ".pending"
    pending.mkdir(parents=True, exist_ok=True)
    folder = pending / "stray.log"
    (folder / "inside").mkdir(parents=True)
    fifo = pending / "pipe.log"
    os.mkfifo(fifo)
    link = pending / "link.log"
    link.symlink_to(tmp_path / "elsewhere.log")

    # In a child with a deadline: opening a FIFO for reading must not hang.
    run_dir, db = _paths(project)
    code = (
        "import sys, warnings; from consist import Tracker\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    Tracker(run_dir=sys.argv[1], db_path=sys.argv[2], project_root=sys.argv[3]).close()\n"
        "for w in caught: print('WARNING', w.category.__name__, w.message)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, run_dir, db, project],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    texts = [ln for ln in proc.stdout.splitlines() if "RecoveryWarning" in ln]
    for path in (folder, fifo, link):
        assert any(str(path) in t and "/.pending/quarantine/" in t for t in texts), (path, texts)
        assert not os.path.lexists(path)
    moved = {p.name.split(".log")[0] for p in _quarantine(project)}
    assert moved == {"stray", "pipe", "link"}
    assert (next(p for p in _quarantine(project) if p.name.startswith("stray")) / "inside").is_dir()
    _quiet_open(project).close()


def test_temp_files_of_a_crash_between_write_and_rename_are_removed(
    tmp_path: Path, children: list[Child], caplog: pytest.LogCaptureFixture
):
    project = _project(tmp_path)
    _create_store(project)
    child = _crashed(project, children, 1, mode="crash_rename")
    runs_dir = project / "runs" / "consist_runs"
    [left] = [p for p in runs_dir.iterdir() if p.name.startswith(".victim.json.")]
    assert f".{child.proc.pid}." in left.name
    # An old leftover of a catch-up killed while restoring a start record.
    start_tmp = runs_dir / f".old.json.{child.proc.pid + 1}.{time.monotonic_ns()}.start.tmp"
    start_tmp.write_text("{}")
    os.utime(start_tmp, (time.time() - 3600, time.time() - 3600))

    tracker, texts, logged = _open_warned(project, caplog)
    try:
        # A live writer's fresh temp file is left alone (this process has a live ledger).
        tracker.begin_run("live", "model", config={"k": 0})
        mine = runs_dir / f".other.json.{os.getpid()}.{time.monotonic_ns()}.tmp"
        mine.write_text("{}")
        assert tracker.get_run("r0000").status == "completed"
    finally:
        tracker.end_run()
    assert not left.exists() and not start_tmp.exists()
    for path in (left, start_tmp):
        assert any(str(path) in t and "removed" in t for t in texts), (path, texts)
        assert any(str(path) in m for m in logged), (path, logged)
    # Another process opening the store now meets a dead ledger with this
    # process's pid (an earlier process that had the same pid, e.g. in another
    # container): this process's ledger is live, so its fresh file is kept.
    fake_dead = runs_dir / ".pending" / f"{os.getpid()}-1.log"
    fake_dead.write_text("")
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from consist import Tracker; "
            "Tracker(run_dir=sys.argv[1], db_path=sys.argv[2], project_root=sys.argv[3]).close()",
            project / "runs",
            project / "store.duckdb",
            project,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 0, other.stderr
    assert not fake_dead.exists()  # it was read as dead and removed
    assert mine.exists()
    tracker.close()


def test_get_run_record_refuses_a_snapshot_naming_another_run(
    tmp_path: Path, children: list[Child], caplog: pytest.LogCaptureFixture
):
    project = _project(tmp_path)
    run_dir, db = _paths(project)
    tracker = Tracker(run_dir=run_dir, db_path=db, project_root=project)
    for rid, k in (("a", 1), ("b", 2)):
        with tracker.start_run(rid, "model", config={"k": k}):
            pass
    b_row = tracker.get_run("b")
    tracker.close()
    runs_dir = run_dir / "consist_runs"
    shutil.copyfile(runs_dir / "b.json", runs_dir / "a.json")
    try:
        with pytest.raises(FileNotFoundError, match="holds the snapshot of run 'b', not 'a'"):
            tracker.get_run_record("a")
        assert tracker.get_run_record("a", allow_missing=True) is None
        assert tracker.get_run_record("b").config == {"k": 2}
    finally:
        tracker.close()

    # A pending entry whose snapshot names another run is not replayed as that run.
    _crashed(project, children, 1, first=7)
    shutil.copyfile(runs_dir / "b.json", runs_dir / "r0007.json")
    fresh, texts, _ = _open_warned(project, caplog)
    try:
        assert "r0007" in fresh.recovery.errors
        assert fresh.get_run("b") == b_row
        assert "r0007" not in _statuses(fresh) or fresh.get_run("r0007").status == "running"
    finally:
        fresh.close()
    assert any("r0007.json" in t and "holds the snapshot of run 'b'" in t for t in texts), texts


@pytest.mark.slow
def test_thousand_pending_snapshots_are_replayed_in_one_batch(
    tmp_path: Path, children: list[Child], monkeypatch: pytest.MonkeyPatch
):
    """1,000 snapshots of a killed process reach the DB in one commit, fast."""
    project = _project(tmp_path)
    _create_store(project)
    _crashed(project, children, 1000)
    commits: list[int] = []
    real_flush = MetadataStore.flush

    def counting_flush(self):
        commits.append(len(self._pending))
        return real_flush(self)

    monkeypatch.setattr(MetadataStore, "flush", counting_flush)
    started = time.perf_counter()
    tracker = _open(project)
    assert tracker.store.count_runs() == 1000  # the first read applies the logged batch
    elapsed = time.perf_counter() - started
    try:
        assert len(tracker.recovery.replayed) == 1000
        assert [c for c in commits if c] == [1000], commits  # one transaction
        assert set(_statuses(tracker).values()) == {"completed"}
        assert tracker.journal.pending_run_ids() == []
    finally:
        tracker.close()
    print(f"catch-up of 1,000 pending snapshots: {elapsed:.3f} s")
    assert elapsed < 5.0
    assert _ledgers(project) == []
