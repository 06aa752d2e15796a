"""Tests for the JSON journal: snapshot layout, atomic writes, journal-before-DB.

Real files under ``tmp_path`` and a real DuckDB file. Failures of the database
write are simulated by wrapping ``MetadataStore.sync_record`` so that one call
raises; every other call goes to the real method.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

import consist.core.store.journal as journal_mod
from consist import ConsistRecord, Tracker
from consist.core.store.journal import Journal, atomic_write_bytes
from consist.core.store.metadata_store import MetadataStore

CONFIG = {"alpha": 1, "name": "base", "nested": {"weights": [0.5, 0.25], "on": True}}


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _make_tracker(tmp_path: Path, **kwargs: Any) -> Tracker:
    (tmp_path / "inputs").mkdir(exist_ok=True)
    kwargs.setdefault("db_path", tmp_path / "store.duckdb")
    return Tracker(run_dir=tmp_path / "runs", mounts={"inputs": tmp_path / "inputs"}, **kwargs)


@pytest.fixture
def tracker(tmp_path: Path):
    trk = _make_tracker(tmp_path)
    yield trk
    trk.close()


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_bytes())


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


def _pending(tracker: Tracker) -> list[str]:
    return tracker.journal.pending_run_ids()


def _fail_sync_once(monkeypatch: pytest.MonkeyPatch, *, on_call: int = 1) -> list[int]:
    """Make the ``on_call``-th ``sync_record`` call raise; return the call log."""
    calls: list[int] = []
    real = MetadataStore.sync_record

    def flaky(self, record, **kwargs):
        calls.append(len(calls) + 1)
        if len(calls) == on_call:
            raise OSError(errno.EIO, "simulated database write failure")
        return real(self, record, **kwargs)

    monkeypatch.setattr(MetadataStore, "sync_record", flaky)
    return calls


# --------------------------------------------------------------------------- #
# Snapshot layout and content
# --------------------------------------------------------------------------- #
def test_snapshots_are_valid_json_with_run_config_inputs_outputs(tmp_path: Path, tracker: Tracker):
    src = _write(tmp_path / "inputs" / "zones.csv", "z\n1\n")
    with tracker.start_run("r1", "model_a", config=CONFIG, tags=["base"], year=2030):
        inp = tracker.log_input(src, key="zones", source="survey")
        out = tracker.log_output(
            _write(tracker.run_artifact_dir() / "trips.csv", "t\n1\n"), key="trips"
        )

    run_file = tracker.run_dir / "consist_runs" / "r1.json"
    latest_file = tracker.run_dir / "consist.json"
    assert run_file.is_file() and latest_file.is_file()
    snap = _load(run_file)
    assert {"run", "config", "inputs", "outputs"} <= set(snap)

    assert snap["run"]["id"] == "r1"
    assert snap["run"]["model_name"] == "model_a"
    assert snap["run"]["status"] == "completed"
    assert snap["run"]["tags"] == ["base"]
    assert snap["run"]["year"] == 2030
    assert snap["run"]["ended_at"] is not None
    assert snap["config"] == CONFIG

    assert [a["id"] for a in snap["inputs"]] == [str(inp.id)]
    assert snap["inputs"][0]["key"] == "zones"
    assert snap["inputs"][0]["uri"] == "inputs://zones.csv"
    assert snap["inputs"][0]["hash"] == inp.hash
    assert snap["inputs"][0]["meta"] == {"source": "survey"}
    assert [a["id"] for a in snap["outputs"]] == [str(out.id)]
    assert snap["outputs"][0]["uri"] == out.uri
    assert snap["outputs"][0]["hash"] == out.hash

    assert _load(latest_file) == snap
    record = ConsistRecord.model_validate_json(run_file.read_bytes())
    assert record.run.id == "r1"
    assert record.inputs[0].id == inp.id


def test_latest_pointer_follows_the_newest_run(tracker: Tracker):
    with tracker.start_run("r1", "model_a", config={"v": 1}):
        pass
    with tracker.start_run("r2", "model_a", config={"v": 2}):
        pass
    assert _load(tracker.run_dir / "consist.json")["run"]["id"] == "r2"
    assert _load(tracker.run_dir / "consist_runs" / "r1.json")["config"] == {"v": 1}
    assert _load(tracker.run_dir / "consist_runs" / "r2.json")["config"] == {"v": 2}


def test_snapshot_is_updated_during_the_run(tracker: Tracker):
    run_file = tracker.run_dir / "consist_runs" / "r1.json"
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        assert _load(run_file)["run"]["status"] == "running"
        assert _load(run_file)["outputs"] == []
        out = tracker.log_output(_write(tracker.run_artifact_dir() / "o.csv", "o\n"), key="o")
        snap = _load(run_file)
        assert snap["run"]["status"] == "running"
        assert [a["id"] for a in snap["outputs"]] == [str(out.id)]
        tracker.log_meta(note="halfway")
        assert _load(run_file)["run"]["meta"]["note"] == "halfway"
    assert _load(run_file)["run"]["status"] == "completed"


def test_failed_run_snapshot_records_status_and_error(tracker: Tracker):
    with pytest.raises(KeyError), tracker.start_run("r1", "model_a", config={"run": "r1"}):
        raise KeyError("boom")
    snap = _load(tracker.run_dir / "consist_runs" / "r1.json")
    assert snap["run"]["status"] == "failed"
    assert "boom" in snap["run"]["meta"]["error"]
    assert tracker.get_run("r1").status == "failed"


def test_get_run_record_and_config(tracker: Tracker):
    with tracker.start_run("r1", "model_a", config=CONFIG):
        pass
    record = tracker.get_run_record("r1")
    assert isinstance(record, ConsistRecord)
    assert record.run.status == "completed"
    assert record.config == CONFIG
    assert tracker.get_run_config("r1") == CONFIG

    with pytest.raises(FileNotFoundError):
        tracker.get_run_record("missing")
    with pytest.raises(FileNotFoundError):
        tracker.get_run_config("missing")
    assert tracker.get_run_record("missing", allow_missing=True) is None
    assert tracker.get_run_config("missing", allow_missing=True) is None

    (tracker.run_dir / "consist_runs" / "broken.json").write_text("{not json")
    with pytest.raises(FileNotFoundError):
        tracker.get_run_record("broken")
    assert tracker.get_run_record("broken", allow_missing=True) is None


@pytest.mark.parametrize("bad_id", ["../consist", "../../runs/consist", "sub/../r1"])
def test_get_run_record_does_not_read_outside_the_journal(tracker: Tracker, bad_id: str):
    """Run ids never contain '/', so such an id must not resolve to some other file."""
    with tracker.start_run("r1", "model_a", config=CONFIG):
        pass
    with pytest.raises((ValueError, FileNotFoundError)):
        tracker.get_run_record(bad_id)
    assert tracker.get_run_record(bad_id, allow_missing=True) is None
    assert tracker.get_run_config(bad_id, allow_missing=True) is None


def test_journal_only_mode_writes_snapshots_and_leaves_nothing_pending(tmp_path: Path):
    trk = _make_tracker(tmp_path, db_path=None)
    with trk.start_run("r1", "model_a", config=CONFIG):
        trk.log_output(_write(trk.run_artifact_dir() / "o.csv", "o\n"), key="o")
    snap = _load(trk.run_dir / "consist_runs" / "r1.json")
    assert snap["run"]["status"] == "completed"
    assert len(snap["outputs"]) == 1
    assert _pending(trk) == []
    assert trk.get_run_outputs("r1") == {}


def test_pending_markers_cleared_after_successful_sync(tracker: Tracker):
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        assert _pending(tracker) == []
        tracker.log_output(_write(tracker.run_artifact_dir() / "o.csv", "o\n"), key="o")
        assert _pending(tracker) == []
    assert _pending(tracker) == []
    assert (tracker.run_dir / "consist_runs" / ".pending").is_dir()


# --------------------------------------------------------------------------- #
# Atomic writes
# --------------------------------------------------------------------------- #
def test_no_temp_files_left_after_runs(tracker: Tracker):
    for i in range(3):
        with tracker.start_run(f"r{i}", "model_a", config={"i": i}):
            out_dir = tracker.run_artifact_dir()
            tracker.log_artifacts(
                {f"o{j}": _write(out_dir / f"o{j}.csv", f"{i},{j}\n") for j in range(3)}
            )
            tracker.log_meta(step=i)
    assert _temp_files(tracker.run_dir) == []
    names = sorted(p.name for p in (tracker.run_dir / "consist_runs").iterdir())
    assert names == [".pending", "r0.json", "r1.json", "r2.json"]


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path):
    target = tmp_path / "snap.json"
    atomic_write_bytes(target, b'{"v": 1}')
    atomic_write_bytes(target, b'{"v": 2, "longer": true}')
    atomic_write_bytes(target, b"{}", fsync=False)
    assert target.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.json"]


def test_atomic_write_failed_rename_keeps_old_content_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    target = tmp_path / "snap.json"
    atomic_write_bytes(target, b"old")

    def failing_replace(src, dst):
        raise OSError(errno.EXDEV, "simulated rename failure")

    monkeypatch.setattr(journal_mod.os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.json"]


def test_atomic_write_failed_fsync_keeps_old_content_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A full disk surfaces at write/fsync time; the temp file must not linger."""
    target = tmp_path / "snap.json"
    atomic_write_bytes(target, b"old")

    def failing_fsync(fd):
        raise OSError(errno.ENOSPC, "simulated: no space left on device")

    monkeypatch.setattr(journal_mod.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.json"]


def test_failed_journal_write_leaves_db_untouched(
    tmp_path: Path, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
):
    """Journal first: if the snapshot cannot be written, the DB is not written either."""
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        path = _write(tracker.run_artifact_dir() / "o.csv", "o\n")
        counts = tracker.store.table_counts()
        snap_before = (tracker.run_dir / "consist_runs" / "r1.json").read_bytes()

        def failing_write(path, data, **kwargs):
            raise OSError(errno.ENOSPC, "simulated: no space left on device")

        monkeypatch.setattr(journal_mod, "atomic_write_bytes", failing_write)
        with pytest.raises(OSError):
            tracker.log_output(path, key="o")
        monkeypatch.undo()
        # Not committed, and not queued for a later commit either.
        assert tracker.store.pending_writes == 0
        assert tracker.store.table_counts() == counts
        assert (tracker.run_dir / "consist_runs" / "r1.json").read_bytes() == snap_before


# --------------------------------------------------------------------------- #
# Journal before DB
# --------------------------------------------------------------------------- #
def test_journal_is_written_before_every_db_sync(tracker: Tracker, monkeypatch: pytest.MonkeyPatch):
    seen: list[tuple[str, str, int, int, bool]] = []
    real = MetadataStore.sync_record

    def observing(self, record, **kwargs):
        guard = kwargs.get("before_commit")

        def check_then_commit() -> None:
            # The store calls this after writing the row and before committing
            # it: from here on the snapshot must be complete on disk.
            if guard is not None:
                guard()
            on_disk = json.loads(tracker.journal.path_for(record.run.id).read_bytes())
            marker = record.run.id in tracker.journal.pending_run_ids()
            seen.append(
                (
                    record.run.status,
                    on_disk["run"]["status"],
                    record.updated_ns,
                    on_disk["updated_ns"],
                    marker,
                )
            )

        return real(self, record, **{**kwargs, "before_commit": check_then_commit})

    monkeypatch.setattr(MetadataStore, "sync_record", observing)
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        tracker.log_output(_write(tracker.run_artifact_dir() / "o.csv", "o\n"), key="o")
        tracker.log_meta(k=1)

    assert len(seen) == 4  # begin, log_output, log_meta, end
    for status, disk_status, record_ns, disk_ns, marker in seen:
        assert disk_status == status
        assert disk_ns == record_ns, "the snapshot being committed is already on disk"
        assert marker, "a pending marker exists while the DB write is in flight"
    assert seen[-1][0] == "completed"
    assert _pending(tracker) == []


def test_db_failure_mid_run_keeps_journal_and_pending_marker(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
):
    with tracker.start_run("r1", "model_a", config={"run": "r1"}):
        path = _write(tracker.run_artifact_dir() / "o.csv", "o\n")
        _fail_sync_once(monkeypatch)
        with pytest.warns(RuntimeWarning, match="r1"):
            out = tracker.log_output(path, key="o")

        snap = _load(tracker.journal.path_for("r1"))
        assert [a["id"] for a in snap["outputs"]] == [str(out.id)]
        assert "r1" in tracker.journal.pending_run_ids()
        assert _pending(tracker) == ["r1"]
        assert tracker.store.table_counts()["artifact"] == 0
        assert tracker.get_run_outputs("r1") == {}
        assert tracker.get_run("r1").status == "running"

    # The next flush (end_run) succeeds and carries the artifact that missed the DB.
    assert tracker.get_run("r1").status == "completed"
    assert tracker.get_run_outputs("r1")["o"].id == out.id
    assert _pending(tracker) == []


def test_db_failure_at_end_run_keeps_journal_and_pending_marker(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
):
    with (
        pytest.warns(RuntimeWarning, match="journaled but not written"),
        tracker.start_run("r1", "model_a", config=CONFIG),
    ):
        out = tracker.log_output(_write(tracker.run_artifact_dir() / "o.csv", "o\n"), key="o")
        _fail_sync_once(monkeypatch)

    snap = _load(tracker.journal.path_for("r1"))
    assert snap["run"]["status"] == "completed"
    assert [a["id"] for a in snap["outputs"]] == [str(out.id)]
    assert _load(tracker.run_dir / "consist.json")["run"]["status"] == "completed"
    assert _pending(tracker) == ["r1"]
    assert tracker.get_run("r1").status == "running"  # the DB missed the final write
    assert tracker.last_run is not None and tracker.last_run.run.status == "completed"


def test_journal_scan_reports_unreadable_files(tmp_path: Path, tracker: Tracker):
    with tracker.start_run("good", "model_a", config={"run": "good"}):
        pass
    runs_dir = tracker.run_dir / "consist_runs"
    (runs_dir / "bad.json").write_text('{"run": ')
    (runs_dir / "notes.txt").write_text("ignored")
    results = {p.name: (rec, err) for p, rec, err in Journal(tracker.run_dir).scan()}
    assert set(results) == {"bad.json", "good.json"}
    assert results["good.json"][0].run.id == "good" and results["good.json"][1] is None
    assert results["bad.json"][0] is None and results["bad.json"][1]
