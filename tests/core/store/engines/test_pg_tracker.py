"""Tracker(db_url=...): team mode on a real PostgreSQL server (the session's throwaway one)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from consist import Tracker
from consist.core.store.engines.pg_store import PostgresMetadataStore
from consist.core.store.schema import LATEST_VERSION
from consist.core.tracker_config import TrackerConfig

_TIMEOUT = 180


def _table(x: int = 0) -> Path:
    import consist

    path = consist.current_tracker().output_path("table", ext="csv")
    path.write_text(f"x\n{x}\n")
    return path


def _tracker(run_dir: Path, url: str, **kwargs: object) -> Tracker:
    return Tracker(run_dir, db_url=url, project_root=run_dir.parent, **kwargs)


def test_db_url_is_validated_before_anything_is_written(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs"
    cases = [
        ({"db_url": "mysql://u@h/db"}, r"db_url[\s\S]*mysql://"),
        ({"db_url": "postgresql://u@h"}, r"db_url[\s\S]*no database"),
        (
            {"db_url": "postgresql://u@h/db", "db_path": tmp_path / "s.duckdb"},
            "db_path and db_url",
        ),
        (
            {"db_url": "postgresql://u@h/db", "max_hold_s": 1.0},
            r"max_hold_s.*db_url",
        ),
        ({"db_path": "postgresql://u@h/db"}, r"db_path[\s\S]*db_url="),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValidationError, match=message):
            Tracker(run_dir, **kwargs)
        with pytest.raises(ValidationError, match=message):
            TrackerConfig(run_dir=run_dir, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_run_is_recorded_in_postgresql_and_read_back(pg_url: str, tmp_path: Path) -> None:
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        assert isinstance(tracker.store, PostgresMetadataStore)
        first = tracker.run(_table, name="table", config={"x": 1}, tags=["a"], year=2030)
        second = tracker.run(_table, name="table", config={"x": 2}, tags=["b"], year=2031)
        assert tracker.get_run(first.run_id).status == "completed"
        assert [r.id for r in tracker.find_runs(model="table")] == [second.run_id, first.run_id]
        assert [r.id for r in tracker.find_runs(tags=["a"])] == [first.run_id]
        assert tracker.find_latest_run(model="table").id == second.run_id
        assert tracker.find_latest_run(model="table", year=2030).id == first.run_id
        history = tracker.history(limit=5)
        assert list(history["id"]) == [second.run_id, first.run_id]
        assert tracker.store.schema_version() == LATEST_VERSION
        lineage = tracker.get_artifact_lineage(second.outputs["table"])
        assert lineage["run_id"] == second.run_id
    finally:
        tracker.close()
    # Nothing beside the database: no DuckDB file, lock file or claims folder.
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert not list(tmp_path.rglob("*.duckdb")) and not list(tmp_path.rglob("*.lock"))


def test_a_second_tracker_hits_a_run_the_first_just_completed(pg_url: str, tmp_path: Path) -> None:
    first = _tracker(tmp_path / "runs", pg_url)
    second = _tracker(tmp_path / "runs", pg_url)  # another process on the same file system
    try:
        made = first.run(_table, name="table", config={"x": 7})
        again = second.run(_table, name="table", config={"x": 7})
        assert not made.cache_hit
        assert again.cache_hit
        assert again.run.meta["cache_source"] == made.run_id
    finally:
        second.close()
        first.close()


def _writer(url: str, run_dir: str, worker: int, count: int) -> list[str]:
    tracker = _tracker(Path(run_dir), url)
    try:
        return [
            tracker.run(_table, name=f"w{worker}", config={"x": i}).run_id for i in range(count)
        ]
    finally:
        tracker.close()


def test_two_processes_writing_to_one_server_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 20
    with ctx.Pool(2) as pool:
        jobs = [
            pool.apply_async(_writer, (pg_url, str(tmp_path / f"m{w}"), w, count)) for w in range(2)
        ]
        run_ids = [run_id for job in jobs for run_id in job.get(_TIMEOUT)]
    reader = _tracker(tmp_path / "reader", pg_url, read_only=True)
    try:
        assert len(set(run_ids)) == 2 * count
        assert {r.id for r in reader.find_runs(limit=None)} == set(run_ids)
    finally:
        reader.close()


def _slow_counted(x: int = 0) -> Path:
    """Counts its executions in a file next to the run_dir, then takes a while."""
    import consist

    tracker = consist.current_tracker()
    with open(tracker.run_dir.parent / "executions", "a") as f:
        f.write("x\n")
    time.sleep(1.0)
    path = tracker.output_path("table", ext="csv")
    path.write_text(f"x\n{x}\n")
    return path


def _racer(url: str, run_dir: str, barrier: object) -> tuple[bool, str]:
    tracker = _tracker(Path(run_dir), url)
    try:
        barrier.wait(timeout=_TIMEOUT)  # type: ignore[attr-defined]
        result = tracker.run(_slow_counted, name="slow", config={"x": 1})
        return result.cache_hit, result.outputs["table"].hash
    finally:
        tracker.close()


def test_four_processes_on_one_signature_compute_it_once(pg_url: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        jobs = [
            pool.apply_async(_racer, (pg_url, str(tmp_path / "runs"), barrier)) for _ in range(4)
        ]
        results = [job.get(_TIMEOUT) for job in jobs]
    assert (tmp_path / "executions").read_text() == "x\n"  # the function ran once
    assert sorted(hit for hit, _ in results) == [False, True, True, True]
    assert len({digest for _, digest in results}) == 1  # all four got its output


_SERVER: list = []


def _halts_the_server(x: int = 0) -> Path:
    import consist

    _SERVER[0].halt()  # the server goes away while the step runs
    path = consist.current_tracker().output_path("table", ext="csv")
    path.write_text(f"x\n{x}\n")
    return path


def test_a_run_the_server_lost_is_journaled_and_replayed(tmp_path: Path) -> None:
    from pg_server import PostgresServer

    server = PostgresServer(durable=True).start()
    _SERVER[:] = [server]
    try:
        url = server.create_database()
        tracker = _tracker(tmp_path / "runs", url)
        with pytest.warns(RuntimeWarning, match="journaled but not written"):
            lost = tracker.run(_halts_the_server, name="lost", config={"x": 1})
        assert tracker.journal.pending_run_ids() == [lost.run_id]
        server.resume()
        opener = _tracker(tmp_path / "runs", url)
        assert opener.recovery.replayed == [lost.run_id]
        assert opener.get_run(lost.run_id).status == "completed"
        opener.close()
        tracker.close()  # its queued copy is written again: an upsert, no duplicate
        reader = _tracker(tmp_path / "runs", url, read_only=True)
        assert [r.id for r in reader.find_runs()] == [lost.run_id]
        reader.close()
    finally:
        _SERVER.clear()
        server.stop()
