"""Tests for recovery: catch-up on open, rebuild from the journal, no regressions.

Real files under ``tmp_path`` and real DuckDB files. A process that dies
between its journal write and its DB commit is simulated by making one
``MetadataStore.sync_record`` call raise, then closing that tracker and
opening a new one on the same paths.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

import consist
from consist import ConsistRecord, Tracker
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.recovery import RecoveryReport, catch_up


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _open(tmp_path: Path, run_dir: str = "runs") -> Tracker:
    (tmp_path / "inputs").mkdir(exist_ok=True)
    return Tracker(
        run_dir=tmp_path / run_dir,
        db_path=tmp_path / "store.duckdb",
        mounts={"inputs": tmp_path / "inputs"},
    )


def _fail_sync_once(monkeypatch: pytest.MonkeyPatch, *, on_call: int = 1) -> None:
    calls: list[int] = []
    real = MetadataStore.sync_record

    def flaky(self, record, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            raise OSError(errno.EIO, "simulated database write failure")
        return real(self, record, **kwargs)

    monkeypatch.setattr(MetadataStore, "sync_record", flaky)


def _delete_db(db_path: Path) -> None:
    for path in (db_path, Path(f"{db_path}.wal")):
        if path.exists():
            path.unlink()
    assert not db_path.exists()


def _artifact_rows(tracker: Tracker) -> list[tuple]:
    return [
        tuple(r)
        for r in tracker.run_query(
            "SELECT id, key, uri, driver, hash, content_id, table_path, array_path, "
            "size_bytes, run_id, meta, created_at FROM artifact ORDER BY id"
        )
    ]


def _link_rows(tracker: Tracker) -> list[tuple]:
    return [
        tuple(r)
        for r in tracker.run_query(
            "SELECT run_id, artifact_id, direction, key, meta FROM run_artifact_link "
            "ORDER BY run_id, artifact_id, direction"
        )
    ]


def _run_artifacts(tracker: Tracker, run_id: str) -> dict[str, Any]:
    arts = tracker.get_artifacts_for_run(run_id)
    return {
        "dump": arts.model_dump(),
        "paths": {
            d: {k: a.path for k, a in getattr(arts, d).items()} for d in ("inputs", "outputs")
        },
    }


# --------------------------------------------------------------------------- #
# (1) Catch-up on open
# --------------------------------------------------------------------------- #
def test_catch_up_on_open_after_db_write_failed_at_end_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    trk = _open(tmp_path)
    src = _write(tmp_path / "inputs" / "zones.csv", "z\n1\n")
    with pytest.warns(RuntimeWarning), trk.start_run("r1", "model_a", config={"a": 1}):
        inp = trk.log_input(src, key="zones")
        out_dir = trk.run_artifact_dir()
        outs = trk.log_artifacts(
            {f"o{i}": _write(out_dir / f"o{i}.csv", f"{i}\n") for i in range(3)}
        )
        _fail_sync_once(monkeypatch)  # the final write (end_run) never reaches the DB
    monkeypatch.undo()
    assert trk.get_run("r1").status == "running"
    assert trk.journal.pending_run_ids() == ["r1"]
    trk.close()  # the process "dies"

    fresh = _open(tmp_path)
    try:
        run = fresh.get_run("r1")
        assert run is not None
        assert run.status == "completed"
        assert run.ended_at is not None
        assert fresh.recovery is not None and "r1" in fresh.recovery.replayed
        assert fresh.recovery.errors == {}
        assert fresh.journal.pending_run_ids() == []
        assert not (fresh.run_dir / "consist_runs" / ".pending" / "r1").exists()
        arts = fresh.get_artifacts_for_run("r1")
        assert {k: a.id for k, a in arts.inputs.items()} == {"zones": inp.id}
        assert {k: a.id for k, a in arts.outputs.items()} == {k: a.id for k, a in outs.items()}
        assert arts.outputs["o1"].hash == outs["o1"].hash
        assert fresh.get_run_config("r1") == {"a": 1}
    finally:
        fresh.close()


def test_catch_up_on_open_after_crash_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    trk = _open(tmp_path)
    trk.begin_run("r1", "model_a", config={"run": "r1"})
    path = _write(trk.run_artifact_dir() / "o.csv", "o\n")
    _fail_sync_once(monkeypatch)
    with pytest.warns(RuntimeWarning):
        out = trk.log_output(path, key="o")
    monkeypatch.undo()
    assert trk.store.table_counts()["artifact"] == 0
    trk.close()  # the process "dies" without end_run

    fresh = _open(tmp_path)
    try:
        assert fresh.recovery.replayed == ["r1"]
        assert fresh.get_run_outputs("r1")["o"].id == out.id
        assert fresh.get_run("r1").status == "running"  # what the journal last said
        assert fresh.journal.pending_run_ids() == []
        # The recovered output is discoverable by URI and key like any other.
        assert fresh.get_artifact_by_uri(str(path)).id == out.id
        assert fresh.get_artifact("o").id == out.id
    finally:
        fresh.close()


def test_catch_up_is_a_noop_when_nothing_is_pending(tmp_path: Path):
    trk = _open(tmp_path)
    with trk.start_run("r1", "model_a", config={"run": "r1"}):
        pass
    counts = trk.store.table_counts()
    trk.close()
    fresh = _open(tmp_path)
    try:
        assert fresh.recovery == RecoveryReport()
        assert fresh.store.table_counts() == counts
    finally:
        fresh.close()


# --------------------------------------------------------------------------- #
# (2) Rebuild a deleted database from the journal
# --------------------------------------------------------------------------- #
def _populate(trk: Tracker, tmp_path: Path) -> list[str]:
    """Several runs with inputs, outputs, lineage links, a failed run and metadata."""
    zones = _write(tmp_path / "inputs" / "zones.csv", "z\n1\n2\n")
    with trk.start_run("producer", "model_a", config={"step": 1}, tags=["base"], year=2030):
        trk.log_input(zones, key="zones", source="survey")
        out_dir = trk.run_artifact_dir()
        produced = trk.log_artifacts(
            {
                "persons": _write(out_dir / "persons.csv", "p\n1\n"),
                "households": _write(out_dir / "households.csv", "h\n1\n"),
            },
            metadata_by_key={"households": {"role": "primary"}},
            batch="b1",
        )
        trk.log_meta(note="first")
    with trk.start_run("consumer", "model_b", config={"step": 2}, parent_run_id="producer"):
        trk.log_input(produced["persons"].path, key="persons_in", role="demand")
        trk.log_input(zones, key="zones")
        trk.log_output(_write(trk.run_artifact_dir() / "trips.csv", "t\n1\n"), key="trips")
    with pytest.raises(RuntimeError), trk.start_run("crashed", "model_b", config={"step": 3}):
        trk.log_input(produced["households"].path, key="households")
        raise RuntimeError("model blew up")
    return ["producer", "consumer", "crashed"]


def _snapshot_db(trk: Tracker, run_ids: list[str]) -> dict[str, Any]:
    return {
        "runs": {rid: trk.get_run(rid).model_dump() for rid in run_ids},
        "artifacts": {rid: _run_artifacts(trk, rid) for rid in run_ids},
        "artifact_rows": _artifact_rows(trk),
        "link_rows": _link_rows(trk),
        "counts": {k: v for k, v in trk.store.table_counts().items() if k != "stat_cache"},
    }


def test_rebuild_from_journal_restores_runs_artifacts_and_links(tmp_path: Path):
    trk = _open(tmp_path)
    run_ids = _populate(trk, tmp_path)
    before = _snapshot_db(trk, run_ids)
    assert before["counts"]["run"] == 3
    # The consumer's input is the producer's output (one row, two links).
    assert (
        before["artifacts"]["consumer"]["dump"]["inputs"]["persons_in"]["id"]
        == before["artifacts"]["producer"]["dump"]["outputs"]["persons"]["id"]
    )
    trk.close()

    db_path = tmp_path / "store.duckdb"
    _delete_db(db_path)
    report = consist.rebuild_from_journal(db_path, [tmp_path / "runs"])
    assert isinstance(report, RecoveryReport)
    assert sorted(report.replayed) == sorted(run_ids)
    assert report.errors == {}

    fresh = _open(tmp_path)
    try:
        after = _snapshot_db(fresh, run_ids)
        assert after["counts"] == before["counts"]
        assert after["runs"] == before["runs"]
        for rid in run_ids:
            assert after["artifacts"][rid] == before["artifacts"][rid], rid
        assert after["link_rows"] == before["link_rows"]
        assert after["artifact_rows"] == before["artifact_rows"]
        assert fresh.get_run("crashed").status == "failed"
        assert fresh.journal.pending_run_ids() == []
    finally:
        fresh.close()


def test_rebuild_restores_key_lookups_of_linked_artifacts(tmp_path: Path):
    """An artifact's own key must survive a rebuild whatever order runs replay in.

    Run ids here sort with the consumer first ("consumer" < "producer").
    """
    trk = _open(tmp_path)
    _populate(trk, tmp_path)
    keys = ["persons", "households", "trips", "zones"]
    before = {k: trk.get_artifact(k) for k in keys}
    assert all(a is not None for a in before.values())
    trk.close()

    db_path = tmp_path / "store.duckdb"
    _delete_db(db_path)
    consist.rebuild_from_journal(db_path, [tmp_path / "runs"])

    fresh = _open(tmp_path)
    try:
        for key in keys:
            found = fresh.get_artifact(key)
            assert found is not None, f"get_artifact({key!r}) lost by the rebuild"
            assert found.id == before[key].id
            assert found.meta == before[key].meta
    finally:
        fresh.close()


def test_rebuild_lineage_still_links_new_inputs(tmp_path: Path):
    trk = _open(tmp_path)
    with trk.start_run("a", "model_a", config={"run": "a"}):
        produced = trk.log_output(_write(trk.run_artifact_dir() / "x.csv", "x\n"), key="x")
    trk.close()
    db_path = tmp_path / "store.duckdb"
    _delete_db(db_path)
    consist.rebuild_from_journal(db_path, [tmp_path / "runs"])

    fresh = _open(tmp_path)
    try:
        with fresh.start_run("b", "model_b", config={"run": "b"}):
            linked = fresh.log_input(produced.path, key="x_in")
        assert linked.id == produced.id
        with pytest.raises(ValueError, match="already exists"):
            fresh.begin_run("a", "model_a", config={"run": "a"})
    finally:
        fresh.close()


def test_rebuild_from_several_run_dirs_and_is_idempotent(tmp_path: Path):
    first = _open(tmp_path, "runs_one")
    with first.start_run("one", "model_a", config={"run": "one"}):
        first.log_output(_write(first.run_artifact_dir() / "a.csv", "a\n"), key="a")
    first.close()
    second = _open(tmp_path, "runs_two")
    with second.start_run("two", "model_b", config={"run": "two"}):
        second.log_output(_write(second.run_artifact_dir() / "b.csv", "b\n"), key="b")
    counts = second.store.table_counts()
    second.close()

    db_path = tmp_path / "store.duckdb"
    _delete_db(db_path)
    report = consist.rebuild_from_journal(db_path, [tmp_path / "runs_one", tmp_path / "runs_two"])
    assert sorted(report.replayed) == ["one", "two"]
    again = consist.rebuild_from_journal(db_path, [tmp_path / "runs_one", tmp_path / "runs_two"])
    assert again.errors == {}

    fresh = _open(tmp_path, "runs_one")
    try:
        got = {k: v for k, v in fresh.store.table_counts().items() if k != "stat_cache"}
        assert got == {k: v for k, v in counts.items() if k != "stat_cache"}
        assert fresh.get_run("one").status == "completed"
        assert fresh.get_run("two").status == "completed"
        assert set(fresh.get_run_outputs("two")) == {"b"}
    finally:
        fresh.close()


def test_rebuilding_another_db_does_not_cancel_catch_up_of_the_trackers_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Pending markers belong to the store that missed the write.

    Rebuilding a *different* database file (e.g. a scratch copy for analysis)
    from the same run_dir must not make the tracker's own store skip the
    snapshot it never received.
    """
    trk = _open(tmp_path)
    with pytest.warns(RuntimeWarning), trk.start_run("r1", "model_a", config={"run": "r1"}):
        trk.log_output(_write(trk.run_artifact_dir() / "o.csv", "o\n"), key="o")
        _fail_sync_once(monkeypatch)
    monkeypatch.undo()
    assert trk.get_run("r1").status == "running"
    trk.close()

    copy = consist.rebuild_from_journal(tmp_path / "analysis_copy.duckdb", [tmp_path / "runs"])
    assert copy.replayed == ["r1"]

    fresh = _open(tmp_path)
    try:
        assert fresh.get_run("r1").status == "completed"
    finally:
        fresh.close()


# --------------------------------------------------------------------------- #
# (3) An older snapshot never overwrites a newer row
# --------------------------------------------------------------------------- #
def test_older_snapshot_does_not_overwrite_newer_row(tmp_path: Path):
    trk = _open(tmp_path)
    try:
        with trk.start_run("r1", "model_a", config={"run": "r1"}):
            old = trk.get_run_record("r1")  # status "running"
            trk.log_meta(stage_note="late")
        assert old.run.status == "running"
        assert trk.get_run("r1").status == "completed"
        newer = trk.get_run_record("r1")
        assert newer.updated_ns > old.updated_ns

        trk.store.sync_record(old)
        run = trk.get_run("r1")
        assert run.status == "completed"
        assert run.ended_at is not None
        assert run.meta.get("stage_note") == "late"

        trk.store.sync_record(newer)  # equal version: accepted, unchanged
        assert trk.get_run("r1").status == "completed"
    finally:
        trk.close()


def test_rebuild_with_older_snapshot_does_not_regress(tmp_path: Path):
    trk = _open(tmp_path)
    with trk.start_run("r1", "model_a", config={"run": "r1"}):
        old_bytes = trk.journal.path_for("r1").read_bytes()
    assert json.loads(old_bytes)["run"]["status"] == "running"
    trk.close()

    stale_dir = tmp_path / "stale_copy"
    _write(stale_dir / "consist_runs" / "r1.json", old_bytes)
    report = consist.rebuild_from_journal(tmp_path / "store.duckdb", [stale_dir])
    assert report.errors == {}

    fresh = _open(tmp_path)
    try:
        assert fresh.get_run("r1").status == "completed"
    finally:
        fresh.close()


def test_catch_up_with_stale_pending_snapshot_does_not_regress(tmp_path: Path):
    trk = _open(tmp_path)
    with trk.start_run("r1", "model_a", config={"run": "r1"}):
        old_bytes = trk.journal.path_for("r1").read_bytes()
    trk.close()

    # A stale snapshot (e.g. restored from a backup) left marked as pending.
    trk.journal.path_for("r1").write_bytes(old_bytes)
    (trk.journal.pending_dir / "r1").touch()
    fresh = _open(tmp_path)
    try:
        assert fresh.get_run("r1").status == "completed"
        assert fresh.journal.pending_run_ids() == []
    finally:
        fresh.close()


# --------------------------------------------------------------------------- #
# (4) Corrupt journal files
# --------------------------------------------------------------------------- #
def test_corrupt_journal_files_are_reported_and_do_not_stop_rebuild(tmp_path: Path):
    trk = _open(tmp_path)
    for rid in ("a", "m", "z"):
        with trk.start_run(rid, "model_a", config={"run": rid}):
            trk.log_output(_write(trk.run_artifact_dir() / f"{rid}.csv", f"{rid}\n"), key=rid)
    trk.close()
    runs_dir = tmp_path / "runs" / "consist_runs"
    garbage = _write(runs_dir / "b_garbage.json", b"\x00\xffnot json at all")
    torn = runs_dir / "n_torn.json"
    torn.write_bytes((runs_dir / "m.json").read_bytes()[:40])
    wrong = _write(runs_dir / "y_wrong_schema.json", json.dumps({"hello": "world"}))

    db_path = tmp_path / "store.duckdb"
    _delete_db(db_path)
    report = consist.rebuild_from_journal(db_path, [tmp_path / "runs"])

    assert sorted(report.replayed) == ["a", "m", "z"]
    assert set(report.errors) == {str(garbage), str(torn), str(wrong)}
    assert all(isinstance(msg, str) and msg for msg in report.errors.values())

    fresh = _open(tmp_path)
    try:
        for rid in ("a", "m", "z"):
            assert fresh.get_run(rid).status == "completed"
            assert set(fresh.get_run_outputs(rid)) == {rid}
        assert fresh.store.count_runs() == 3
    finally:
        fresh.close()


def test_corrupt_pending_snapshot_is_reported_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    trk = _open(tmp_path)
    for rid in ("good", "bad"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            _fail_sync_once(monkeypatch, on_call=2)  # begin syncs, end_run does not
            with trk.start_run(rid, "model_a", config={"run": rid}):
                pass
            monkeypatch.undo()
    assert trk.journal.pending_run_ids() == ["bad", "good"]
    trk.close()
    trk.journal.path_for("bad").write_text('{"run": {"id": "bad"')  # torn

    fresh = _open(tmp_path)
    try:
        assert fresh.recovery.replayed == ["good"]
        assert set(fresh.recovery.errors) == {"bad"}
        assert fresh.get_run("good").status == "completed"
        assert fresh.get_run("bad").status == "running"
    finally:
        fresh.close()


def test_catch_up_function_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    trk = _open(tmp_path)
    try:
        _fail_sync_once(monkeypatch)
        with pytest.warns(RuntimeWarning):
            trk.begin_run("r1", "model_a", config={"run": "r1"})
        monkeypatch.undo()
        assert trk.get_run("r1") is None
        report = catch_up(trk.store, trk.journal)
        assert report.replayed == ["r1"]
        assert trk.get_run("r1").status == "running"
        assert catch_up(trk.store, trk.journal) == RecoveryReport()
        trk.end_run()
        assert trk.get_run("r1").status == "completed"
        record = trk.get_run_record("r1")
        assert isinstance(record, ConsistRecord)
    finally:
        trk.close()


def test_rebuild_without_journals_creates_an_empty_store(tmp_path: Path):
    """A rebuild with no journals creates an empty, usable store."""
    db_path = tmp_path / "fresh.duckdb"
    report = consist.rebuild_from_journal(db_path, [tmp_path / "nothing_here"])
    assert report == RecoveryReport()
    assert os.path.exists(db_path)
    store = MetadataStore(str(db_path))
    try:
        assert store.count_runs() == 0
    finally:
        store.close()
