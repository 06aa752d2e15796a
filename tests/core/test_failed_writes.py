"""A failed write never leaves the tracker stuck (issue 10, point 2).

A real full disk: a 2 MiB tmpfs mounted by the test (needs root; skipped with
the reason otherwise), holding a model's git repository with the run
directory and the DuckDB file inside it, filled to the last byte and then
freed again.
"""

from __future__ import annotations

import errno
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support import make_git_repo
from consist import Tracker
from consist.core.store.journal import JournalWriteError

DISK_SIZE = "2m"


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
    filler.unlink()
    tracker.close()  # the queued write is committed now that there is room
    reader = open_tracker(repo, db_path)
    assert reader.get_run(result.run.id).status == "completed"
    assert reader.run(fn=step, config={"k": 1}, name="step").cache_hit
    reader.close()
    assert os.path.getsize(db_path) > 0
