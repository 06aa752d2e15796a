"""A failed write never leaves the tracker stuck (issue 10, point 2).

A real full disk: an 8 MiB tmpfs mounted by the test (needs root; skipped with
the reason otherwise), holding a model's git repository with the run
directory and the DuckDB file inside it, filled to the last byte and then
freed again.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support import make_git_repo
from consist import Tracker
from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.journal import JournalWriteError

DISK_SIZE = "8m"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs mounted for this test (unmounted afterwards)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {proc.stderr.strip() or proc.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill(directory: Path, name: str = "filler.bin") -> Path:
    """Write a file until the file system holding ``directory`` is full."""
    path = directory / name
    with open(path, "ab", buffering=0) as handle:
        chunk = b"\0" * 4096
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # Top up with single bytes so that not even one block is left.
    with open(path, "ab", buffering=0) as handle:
        for _ in range(8192):
            try:
                handle.write(b"\0")
            except OSError:
                break
    return path


def project(disk: Path) -> Path:
    """A model repository on the small disk; run_dir and DB live inside it."""
    return make_git_repo(
        disk / "model",
        {"model.py": "def step(k):\n    return k\n", ".gitignore": "runs/\n*.duckdb*\n"},
    )


def open_tracker(repo: Path, db_path: Path | None = None) -> Tracker:
    return Tracker(
        repo / "runs",
        db_path=db_path or repo / "provenance.duckdb",
        project_root=repo,
    )


CALLS: list[int] = []


def step(k: int) -> None:
    CALLS.append(k)


def filling_step(k: int, where: str) -> None:
    CALLS.append(k)
    fill(Path(where), f"filled-by-{k}.bin")


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def _snapshots(repo: Path) -> dict[str, bytes]:
    runs = repo / "runs" / "consist_runs"
    return {p.name: p.read_bytes() for p in sorted(runs.glob("*.json"))}


def test_full_disk_fails_the_call_clearly_and_the_next_run_works(disk: Path) -> None:
    repo = project(disk)
    tracker = open_tracker(repo)
    first = tracker.run(fn=step, config={"k": 0}, name="step")
    with tracker.start_run("by-hand", "step", config={"k": -1}):
        pass
    tracker.close()
    recorded = _snapshots(repo)
    filler = fill(disk)

    # Every call fails with the cause, the path and the fix; never "still active".
    for attempt in (1, 2):
        with pytest.raises(JournalWriteError) as info:
            tracker.run(fn=step, config={"k": 1}, name="step")
        assert info.value.errno == errno.ENOSPC
        message = str(info.value)
        assert "no space left on the device holding" in message
        assert str(repo / "runs") in message and "free space" in message
        assert tracker.current_run is None, attempt
    with pytest.raises(JournalWriteError, match="no space left"):
        tracker.begin_run("by-hand-2", "step", config={"k": -2})
    assert tracker.current_run is None
    assert CALLS == [0]  # the step never ran without a durable start record

    # Reading still works on the full disk, in this tracker and in a new one.
    assert tracker.get_run(first.run.id).status == "completed"
    assert tracker.get_run_config("by-hand") == {"k": -1}
    reader = open_tracker(repo)
    assert {r.id for r in reader.find_runs(model="step")} == {first.run.id, "by-hand"}
    assert reader.get_run_record(first.run.id).config == {"k": 0}
    reader.close()

    # Once there is room again, the next run works and nothing earlier is lost.
    filler.unlink()
    again = tracker.run(fn=step, config={"k": 1}, name="step")
    assert not again.cache_hit and CALLS == [0, 1]
    assert tracker.run(fn=step, config={"k": 0}, name="step").cache_hit
    tracker.close()
    after = open_tracker(repo)
    assert {r.id: r.status for r in after.find_runs(model="step")} == {
        first.run.id: "completed",
        "by-hand": "completed",
        again.run.id: "completed",
        after.find_latest_run(model="step").id: "completed",
    }
    assert after.get_run("by-hand-2") is None
    snapshots = _snapshots(repo)
    assert {name: snapshots[name] for name in recorded} == recorded
    after.close()


def test_disk_filling_up_while_the_step_runs_closes_the_run_as_failed(disk: Path) -> None:
    repo = project(disk)
    tracker = open_tracker(repo)
    earlier = tracker.run(fn=step, config={"k": 0}, name="step")
    with pytest.raises(JournalWriteError, match="no space left") as info:
        tracker.run(fn=filling_step, config={"k": 1, "where": str(disk)}, name="fills")
    assert info.value.errno == errno.ENOSPC
    assert tracker.current_run is None
    failed_id = tracker.last_run.run.id
    assert CALLS == [0, 1]

    for path in disk.glob("filled-by-*.bin"):
        path.unlink()
    # The next run first records the earlier one as failed, then runs.
    nxt = tracker.run(fn=step, config={"k": 2}, name="step")
    assert CALLS == [0, 1, 2]
    tracker.close()
    reader = open_tracker(repo)
    failed = reader.get_run(failed_id)
    assert failed is not None and failed.status == "failed"
    assert "could not be recorded" in failed.meta["error"]
    assert "No space left" in failed.meta["error"] or "no space left" in failed.meta["error"]
    assert reader.get_run(earlier.run.id).status == "completed"
    assert reader.get_run(nxt.run.id).status == "completed"
    reader.close()


def test_start_run_block_on_a_full_disk_ends_and_frees_the_tracker(disk: Path) -> None:
    repo = project(disk)
    tracker = open_tracker(repo)
    filler: Path | None = None
    with (
        pytest.raises(JournalWriteError, match="no space left"),
        tracker.start_run("block", "model", config={"k": 1}),
    ):
        filler = fill(disk)
        tracker.log_meta(stage_done="calibration")  # this write fails first
    assert tracker.current_run is None
    assert filler is not None
    filler.unlink()
    with tracker.start_run("block-2", "model", config={"k": 2}):
        tracker.log_meta(ok=True)
    tracker.close()
    reader = open_tracker(repo)
    assert reader.get_run("block-2").status == "completed"
    block = reader.get_run("block")
    assert block is not None and block.status == "failed"  # its start was recorded
    reader.close()


def test_database_on_a_full_disk_keeps_the_run_in_the_journal(tmp_path: Path, disk: Path) -> None:
    repo = make_git_repo(tmp_path / "model", {"model.py": "x = 1\n", ".gitignore": "runs/\n"})
    db_path = disk / "provenance.duckdb"
    tracker = open_tracker(repo, db_path)
    tracker.run(fn=step, config={"k": 0}, name="step")
    tracker.close()
    filler = fill(disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tracker.run(fn=step, config={"k": 1}, name="step")
    assert any("journaled but not written to the database" in str(w.message) for w in caught)
    assert tracker.current_run is None
    assert tracker.get_run_record(result.run.id).run.status == "completed"
    # Reads still work with the write queued, here and in another process
    # whose catch-up cannot write either.
    assert tracker.find_runs(model="step")
    script = (
        "import sys, warnings\n"
        "from consist import Tracker\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    t = Tracker(sys.argv[1], db_path=sys.argv[2], project_root=sys.argv[3])\n"
        "print(any('replayed when the store can be written' in str(w.message) for w in caught))\n"
        "print(t.get_run_record(sys.argv[4]).run.status)\n"
        "print(len(t.find_runs(model='step')) >= 1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, repo / "runs", db_path, repo, result.run.id],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "completed", "True"]
    filler.unlink()
    tracker.close()  # the queued write is committed now that there is room
    reader = open_tracker(repo, db_path)
    assert reader.get_run(result.run.id).status == "completed"
    assert reader.run(fn=step, config={"k": 1}, name="step").cache_hit
    reader.close()
    assert os.path.getsize(db_path) > 0


# -- read-only stores ------------------------------------------------------------------


def _record_some_runs(repo: Path) -> tuple[str, str]:
    tracker = open_tracker(repo)
    result = tracker.run(fn=step, config={"k": 0}, name="step")
    with tracker.start_run("by-hand", "step", config={"k": -1}):
        out = tracker.run_artifact_dir() / "table.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("a,b\n1,2\n")
        tracker.log_artifact(out, key="table")
    tracker.close()
    return result.run.id, "by-hand"


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root`` (but .git) with its mtime and bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            out[str(path.relative_to(root))] = (path.stat().st_mtime_ns, path.read_bytes())
    return out


def _assert_reads(reader: Tracker, run_id: str) -> None:
    assert reader.get_run(run_id).status == "completed"
    assert reader.get_run_config(run_id) == {"k": 0}
    assert {r.id for r in reader.find_runs(model="step")} == {run_id, "by-hand"}
    assert reader.get_run_record("by-hand").outputs[0].key == "table"
    assert reader.get_artifact("table", run_id="by-hand") is not None
    assert reader.run_query("SELECT count(*) FROM run")[0][0] == 2


def _assert_writes_refused(reader: Tracker) -> None:
    attempts = {
        "run": lambda: reader.run(fn=step, config={"k": 5}, name="step"),
        "begin_run": lambda: reader.begin_run("new", "step", config={"k": 6}),
        "start_run": lambda: reader.start_run("new2", "step").__enter__(),
        "log_meta": lambda: reader.log_meta(note="x"),
        "log_artifact": lambda: reader.log_artifact(__file__, key="f"),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ReadOnlyStoreError, match="read_only=True") as info:
            attempt()
        assert "read_only=False" in str(info.value), name
    assert reader.current_run is None
    assert 5 not in CALLS


def test_read_only_tracker_reads_a_store_on_a_read_only_file_system(disk: Path) -> None:
    repo = project(disk)
    run_id, _ = _record_some_runs(repo)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)

    # Without read_only the error says how to read it.
    with pytest.raises(OSError, match="read_only=True") as info:
        open_tracker(repo)
    assert info.value.errno == errno.EROFS

    reader = Tracker(
        repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo, read_only=True
    )
    _assert_reads(reader, run_id)
    _assert_writes_refused(reader)
    reader.close()

    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    writer = open_tracker(repo)
    assert writer.run(fn=step, config={"k": 0}, name="step").cache_hit
    assert not writer.run(fn=step, config={"k": 7}, name="step").cache_hit
    writer.close()


def test_read_only_tracker_writes_nothing_to_a_writable_store(tmp_path: Path) -> None:
    repo = make_git_repo(
        tmp_path / "model", {"model.py": "x = 1\n", ".gitignore": "runs/\n*.duckdb*\n"}
    )
    run_id, _ = _record_some_runs(repo)
    before = _tree(repo)
    reader = Tracker(
        repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo, read_only=True
    )
    _assert_reads(reader, run_id)
    _assert_writes_refused(reader)
    reader.close()
    assert _tree(repo) == before

    # A writer in another process records while a read-only tracker is open.
    reader = Tracker(
        repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo, read_only=True
    )
    assert reader.get_run(run_id) is not None
    script = (
        "import sys\n"
        "from consist import Tracker\n"
        "t = Tracker(sys.argv[1], db_path=sys.argv[2], project_root=sys.argv[3])\n"
        "with t.start_run('other-run', 'other', config={'k': 42}):\n"
        "    pass\n"
        "t.close()\n"
        "print('other-run')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, repo / "runs", repo / "provenance.duckdb", repo],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    other_id = proc.stdout.strip()
    assert reader.get_run(other_id).status == "completed"
    reader.close()


def test_read_only_needs_an_existing_store_and_a_bool(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="read_only=True opens an existing store"):
        Tracker(tmp_path / "runs", db_path=tmp_path / "missing.duckdb", read_only=True)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "missing.duckdb").exists()
    with pytest.raises(ValueError, match="read_only"):
        Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", read_only="yes")
    assert not (tmp_path / "runs").exists()


def test_read_only_tracker_on_a_full_disk(disk: Path) -> None:
    repo = project(disk)
    run_id, _ = _record_some_runs(repo)
    fill(disk)
    reader = Tracker(
        repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo, read_only=True
    )
    _assert_reads(reader, run_id)
    _assert_writes_refused(reader)
    reader.close()


def test_metadata_the_snapshot_cannot_hold_leaves_the_run_usable(tmp_path: Path) -> None:
    repo = make_git_repo(tmp_path / "model", {"model.py": "x = 1\n", ".gitignore": "runs/\n"})
    tracker = open_tracker(repo)
    deep: dict = {"v": 1}
    for _ in range(300):
        deep = {"a": deep}
    with tracker.start_run("meta", "model", config={"k": 1}):
        with pytest.raises(ValueError, match=r"journal snapshot|nested"):
            tracker.log_meta(deep=deep)
        assert tracker.current_run is not None and "deep" not in tracker.current_run.meta
        tracker.log_meta(fine=1)
    assert tracker.current_run is None
    record = tracker.get_run_record("meta")
    assert record.run.status == "completed" and record.run.meta["fine"] == 1
    assert "deep" not in record.run.meta
    # Given at begin_run, the same value fails the call and leaves no active run.
    with pytest.raises(ValueError, match=r"journal snapshot|nested"):
        tracker.begin_run("meta-2", "model", deep=deep)
    assert tracker.current_run is None
    assert tracker.run(fn=step, config={"k": 3}, name="step").run.status == "completed"
    tracker.close()
