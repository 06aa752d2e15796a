"""The write log: each run committed as one narrow row, applied to the tables later.

A run is durable and in the database when ``run()`` returns (as a
``write_log`` row); the tables receive it before any read of this process,
before the file is given back to another process, or - after a crash - when
the next tracker opens the store.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import duckdb
import pytest

import consist
from _support import Child, write
from consist import Tracker
from consist.core.identity.hashing import StatCacheEntry, StatKey
from consist.core.store.batch import freeze
from consist.core.store.write_log import decode, encode

TESTS_DIR = Path(__file__).parent


def _step(x: int = 0) -> None:
    return None


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_encode_decode_round_trip_keeps_every_row(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    data = write(tmp_path / "zones.csv", "zone\n1\n")

    def produce(zones: Path) -> Path:
        out = tracker.output_path("table", ext="csv")
        out.write_text(zones.read_text())
        return out

    result = tracker.run(
        produce,
        inputs={"zones": data},
        outputs=["table"],
        config={"scale": 2},
        facet={"scale": 2, "label": "x"},
    )
    record = tracker.get_run_record(result.run_id)
    stat = StatCacheEntry(
        path=str(data),
        key=StatKey(dev=1, ino=2, size=3, mtime_ns=4, ctime_ns=5),
        digest="blake3:" + "0" * 64,
        recorded_ns=6,
    )
    artifacts = [(a, "input") for a in record.inputs] + [(a, "output") for a in record.outputs]
    original = freeze(record, artifacts, [stat], with_identity=True, new_run=True)
    back = decode(encode(original))
    assert back.run_id == original.run_id and back.updated_ns == original.updated_ns
    assert back.new_run is True
    assert len(back.run_row) == len(original.run_row)
    assert back.run_row[0] == record.run.id and back.run_row[13] == record.run.signature
    assert [owned for _, owned in back.artifacts] == [owned for _, owned in original.artifacts]
    assert back.links == [[str(v) if v is not None else None for v in r] for r in original.links]
    assert back.stat_entries == [stat]
    assert back.facets.run_kv and len(back.facets.run_kv) == len(original.facets.run_kv)
    tracker.close()


def test_close_applies_the_log_for_plain_readers(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    tracker = Tracker(tmp_path / "runs", db_path=db, project_root=tmp_path, idle_release_s=600)
    ids = [tracker.run(_step, name="logged", config={"x": i}).run_id for i in range(5)]
    tracker.close()
    assert _rows(db, "SELECT count(*) FROM write_log") == [(0,)]
    stored = {r[0] for r in _rows(db, "SELECT id FROM run WHERE status = 'completed'")}
    assert set(ids) <= stored


def test_reads_of_this_process_see_logged_runs(tmp_path: Path) -> None:
    tracker = Tracker(
        tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path, idle_release_s=600
    )
    ids = [tracker.run(_step, name="mine", config={"x": i}).run_id for i in range(3)]
    # Any read (queries, SQL, counts) applies the log first.
    assert {r.id for r in tracker.find_runs(model="mine")} == set(ids)
    assert tracker.run_query("SELECT count(*) FROM run WHERE model_name = 'mine'") == [(3,)]
    assert tracker.run_query("SELECT count(*) FROM write_log") == [(0,)]
    tracker.close()


@pytest.mark.slow
def test_runs_logged_by_a_killed_process_reach_the_tables(
    tmp_path: Path, children: list[Child]
) -> None:
    db = tmp_path / "db.duckdb"
    child = Child(
        textwrap.dedent(
            f"""
            import sys, time
            sys.path.insert(0, {str(TESTS_DIR)!r})
            sys.path.insert(0, {str(TESTS_DIR.parent.parent)!r})
            from consist import Tracker
            from test_write_log import _step
            t = Tracker({str(tmp_path / "runs")!r}, db_path={str(db)!r},
                        project_root={str(tmp_path)!r}, idle_release_s=600, max_hold_s=600)
            ids = [t.run(_step, name="victim", config={{"x": i}}).run_id for i in range(4)]
            print("done", " ".join(ids), flush=True)
            time.sleep(600)
            """
        )
    )
    children.append(child)
    ids = child.wait_for("done").split()[1:]
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(timeout=30)
    # Committed: the last runs to the log only (an earlier read applied the first).
    [(logged,)] = _rows(db, "SELECT count(*) FROM write_log")
    [(in_tables,)] = _rows(db, "SELECT count(*) FROM run WHERE model_name = 'victim'")
    assert logged >= 2 and logged + in_tables == 4
    # The next tracker to open the store applies them: nothing is lost, and
    # the runs serve as cache sources.
    tracker = Tracker(tmp_path / "runs", db_path=db, project_root=tmp_path)
    for run_id in ids:
        assert tracker.get_run(run_id).status == "completed"
    assert tracker.run(_step, name="victim", config={"x": 2}).cache_hit
    tracker.close()
    assert _rows(db, "SELECT count(*) FROM write_log") == [(0,)]
    assert _rows(db, "SELECT count(*) FROM run WHERE model_name = 'victim'") == [(5,)]


def test_a_second_tracker_hits_on_logged_runs_with_their_outputs(tmp_path: Path) -> None:
    first = Tracker(
        tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path, idle_release_s=600
    )

    def produce(x: int = 0) -> Path:
        out = consist.output_path("table", ext="csv")
        out.write_text(f"x\n{x}\n")
        return out

    made = first.run(produce, name="producer", config={"x": 4}, outputs=["table"])
    second = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    # Served from this process's unapplied writes or the tables: the same outputs.
    hit = second.run(produce, name="producer", config={"x": 4}, outputs=["table"])
    assert hit.cache_hit, hit.run.meta.get("cache_miss_explanation")
    assert hit.run.meta["cache_source"] == made.run_id
    assert hit.outputs["table"].id == made.outputs["table"].id
    assert hit.outputs["table"].path.read_text() == "x\n4\n"
    second.close()
    first.close()
