"""``Tracker.validate_artifacts``: recorded files against their digests, through the public API."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import consist.core.identity.hashing as hashing
from consist import Tracker
from consist.core.run.artifact_check import ArtifactCheck, availability_patches


def _record(tracker: Tracker, base: Path) -> dict[str, Path]:
    """Run ``make`` with an input and two outputs; return their paths by key."""
    source = base / "data" / "source.csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("a,b\n1,2\n")
    with tracker.start_run("make_1", "make", inputs=[source]):
        out_dir = tracker.run_artifact_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
        table = out_dir / "table.csv"
        table.write_text("x\n1\n2\n")
        tracker.log_artifact(table, key="table")
        blob = out_dir / "blob.bin"
        blob.write_bytes(os.urandom(64 * 1024))
        tracker.log_artifact(blob, key="blob")
    return {"source": source, "table": table, "blob": blob}


def _statuses(report) -> dict[str, str]:
    return {c.key: c.status for c in report.checks}


def test_intact_changed_missing_and_scoping(tracker: Tracker, base: Path) -> None:
    paths = _record(tracker, base)
    with tracker.start_run("other_1", "other"):
        extra = tracker.run_artifact_dir() / "extra.txt"
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text("more")
        tracker.log_artifact(extra, key="extra")

    report = tracker.validate_artifacts()
    assert report.ok and report.run_ids is None
    assert _statuses(report) == {"source": "ok", "table": "ok", "blob": "ok", "extra": "ok"}
    assert report.counts == {"ok": 4, "missing": 0, "changed": 0, "unresolved": 0, "unhashed": 0}

    paths["table"].write_text("x\n1\n3\n")  # same size, other bytes
    paths["blob"].unlink()
    report = tracker.validate_artifacts(run_ids=["make_1"])
    assert not report.ok and report.run_ids == ["make_1"]
    assert _statuses(report) == {"source": "ok", "table": "changed", "blob": "missing"}
    assert {c.key for c in report.problems} == {"table", "blob"}
    (blob,) = [c for c in report.checks if c.key == "blob"]
    assert blob.path == str(paths["blob"]) and blob.run_id == "make_1"
    as_dict = report.to_dict()
    assert as_dict["counts"]["missing"] == 1 and as_dict["checks"][0]["status"] in {"ok"}


def test_arguments_are_checked_before_anything(tracker: Tracker, base: Path) -> None:
    _record(tracker, base)
    with pytest.raises(KeyError, match="nope"):
        tracker.validate_artifacts(run_ids=["make_1", "nope"])
    with pytest.raises(ValueError, match="list of run id strings"):
        tracker.validate_artifacts(run_ids="make_1")
    with pytest.raises(ValueError, match="fix must be True or False"):
        tracker.validate_artifacts(fix="yes")
    tracker.close()
    reader = Tracker(base / "runs", db_path=base / "prov.duckdb", read_only=True)
    with pytest.raises(ValueError, match="read_only"):
        reader.validate_artifacts(fix=True)
    assert reader.validate_artifacts().ok  # reading works
    reader.close()
    with pytest.raises(RuntimeError, match="db_path"):
        Tracker(base / "nodb").validate_artifacts()


def test_fix_records_and_clears_missing_since(tracker: Tracker, base: Path) -> None:
    paths = _record(tracker, base)
    kept = paths["blob"].read_bytes()
    paths["blob"].unlink()
    first = tracker.validate_artifacts(fix=True)
    (blob,) = [c for c in first.checks if c.key == "blob"]
    assert first.fixed and first.marked_missing == [blob.artifact_id] and first.cleared == []
    assert blob.missing_since is not None
    stored = tracker.get_artifact(blob.artifact_id)
    assert stored.meta["missing_since"] == blob.missing_since
    assert tracker.get_run_outputs("make_1")["blob"].meta["missing_since"] == blob.missing_since

    time.sleep(1.1)  # a later validation keeps the first date
    second = tracker.validate_artifacts(fix=True)
    assert second.marked_missing == []
    assert tracker.get_artifact(blob.artifact_id).meta["missing_since"] == blob.missing_since

    paths["blob"].write_bytes(kept)
    third = tracker.validate_artifacts(fix=True)
    assert third.ok and third.cleared == [blob.artifact_id]
    assert "missing_since" not in tracker.get_artifact(blob.artifact_id).meta
    assert "missing_since" not in tracker.get_run_outputs("make_1")["blob"].meta


def test_unchanged_files_are_judged_by_the_stat_cache(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    paths = _record(tracker, base)
    # The stat cache trusts an entry read at least 2 s after the file last changed.
    time.sleep(2.2)
    reads: list[int] = []
    real = hashing._hash_fd

    def counting(fd: int, size: int) -> str:
        reads.append(size)
        return real(fd, size)

    monkeypatch.setattr(hashing, "_hash_fd", counting)
    assert tracker.validate_artifacts(fix=True).ok  # reads each file once, saves the entries
    assert len(reads) == 3
    tracker.close()

    reads.clear()
    fresh = Tracker(base / "runs", db_path=base / "prov.duckdb", read_only=True)
    assert fresh.validate_artifacts().ok
    assert reads == []  # nothing read: every file judged by its stat entry
    fresh.close()

    paths["table"].write_text("x\n9\n9\n")  # same size: the stat identity still changes
    reads.clear()
    fresh = Tracker(base / "runs", db_path=base / "prov.duckdb", read_only=True)
    assert _statuses(fresh.validate_artifacts())["table"] == "changed"
    assert reads == [len("x\n9\n9\n")]  # only the edited file was read
    fresh.close()


def test_unhashed_and_progress(tracker: Tracker, base: Path) -> None:
    elsewhere = base / "kept_elsewhere.dat"
    elsewhere.write_text("payload")
    with tracker.start_run("ext_1", "ext"):
        tracker.log_artifact(elsewhere, key="ext", content_hash="md5:abc")
    seen: list[tuple[int, int]] = []
    report = tracker.validate_artifacts(on_progress=lambda done, total: seen.append((done, total)))
    assert _statuses(report) == {"ext": "unhashed"} and report.ok
    assert seen == [(0, 1), (1, 1)]
    elsewhere.unlink()
    assert _statuses(tracker.validate_artifacts()) == {"ext": "missing"}


def test_availability_patches() -> None:
    def check(status: str, since: str | None = None) -> ArtifactCheck:
        return ArtifactCheck(
            artifact_id=f"{status}-{since}",
            key="k",
            uri="./k",
            driver="csv",
            run_id=None,
            path=None if status == "unresolved" else "/k",
            expected_hash=None,
            status=status,
            missing_since=since,
        )

    patches = availability_patches(
        [
            check("missing"),
            check("missing", "2026-01-01T00:00:00+00:00"),
            check("ok", "2026-01-01T00:00:00+00:00"),
            check("changed", "2026-01-01T00:00:00+00:00"),
            check("unresolved", "2026-01-01T00:00:00+00:00"),
            check("ok"),
        ],
        "NOW",
    )
    assert patches == {
        "missing-None": {"missing_since": "NOW"},
        "ok-2026-01-01T00:00:00+00:00": {"missing_since": None},
        "changed-2026-01-01T00:00:00+00:00": {"missing_since": None},
    }
