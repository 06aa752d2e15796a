"""A finished run is visible to every reader when ``run()`` returns.

``Tracker.run`` journals and commits its run before returning, so a second
tracker (same process or another) sees it and hits on it at once; two
trackers in one process share one connection and never race each other's
transactions; a run killed while its function executes still leaves a trace.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import warnings
from pathlib import Path

import pytest

from _support import Child, git, in_threads, make_git_repo, write
from consist import Tracker
from consist.core.store.journal import Journal

TESTS_DIR = Path(__file__).parent


def _step(x: int = 0) -> None:
    return None


def _slow_step(x: int = 0) -> None:
    """Announces itself and sleeps when a child process asks it to."""
    if os.environ.get("CONSIST_TEST_SLOW_STEP"):
        import consist

        print("running", consist.current_tracker().current_run.id, flush=True)
        import time

        time.sleep(600)


def _make_table(tracker_ref: list[Tracker], i: int) -> Path:
    path = tracker_ref[0].output_path("table", ext="csv")
    path.write_text(f"a\n{i}\n")
    return path


def _tracker(base: Path, **kwargs: object) -> Tracker:
    return Tracker(base / "runs", db_path=base / "db.duckdb", project_root=base, **kwargs)


def _child_source(body: str) -> str:
    return textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(TESTS_DIR)!r})
        sys.path.insert(0, {str(TESTS_DIR.parent.parent)!r})
        from consist import Tracker
        from test_visibility import _step
        """
    ) + textwrap.dedent(body)


def test_run_is_committed_when_run_returns(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path, idle_release_s=60)
    result = tracker.run(_step, name="visible", config={"x": 1})
    assert tracker.store.pending_writes == 0
    assert tracker.journal.pending_run_ids() == []
    # A second tracker of this process on the same store hits at once.
    other = _tracker(tmp_path, idle_release_s=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = other.run(_step, name="visible", config={"x": 1})
    assert again.cache_hit
    assert again.run.meta["cache_source"] == result.run_id
    other.close()
    tracker.close()


@pytest.mark.slow
def test_another_process_hits_as_soon_as_run_returns(tmp_path: Path, children: list[Child]) -> None:
    # The child records a run, says so, and stays alive (nothing flushed at exit).
    child = Child(
        _child_source(
            f"""
            t = Tracker({str(tmp_path / "runs")!r}, db_path={str(tmp_path / "db.duckdb")!r},
                        project_root={str(tmp_path)!r})
            r = t.run(_step, name="cross", config={{"x": 7}})
            print("done", r.run_id, flush=True)
            time.sleep(600)
            """
        )
    )
    children.append(child)
    run_id = child.wait_for("done").split()[1]
    tracker = _tracker(tmp_path)
    assert tracker.get_run(run_id).status == "completed"
    hit = tracker.run(_step, name="cross", config={"x": 7})
    assert hit.cache_hit and hit.run.meta["cache_source"] == run_id
    tracker.close()


def test_two_trackers_in_one_process_interleave_without_losing_writes(tmp_path: Path) -> None:
    a = _tracker(tmp_path, idle_release_s=60)
    b = Tracker(tmp_path / "runs_b", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    data = write(tmp_path / "data" / "zones.csv", "zone\n1\n2\n")
    ids = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rejected or replayed write would warn
        for i in range(10):
            for t in (a, b):
                # Both trackers log the same input file and their own outputs.
                ref = [t]
                r = t.run(
                    lambda zones, ref=ref, i=i: _make_table(ref, i),
                    name=f"interleave_{t is a}",
                    inputs={"zones": data},
                    config={"i": i},
                    outputs=["table"],
                )
                ids.append(r.run_id)
    for t in (a, b):
        assert t.store.pending_writes == 0
        assert t.journal.pending_run_ids() == []
    counts = a.store.table_counts()
    assert counts["run"] == 20
    # Each tracker sees (and hits on) what the other recorded.
    for run_id in ids:
        assert b.get_run(run_id).status == "completed"
    a.close()
    b.close()


def test_trackers_in_two_threads_share_one_store(tmp_path: Path) -> None:
    recorded: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        t = Tracker(tmp_path / f"runs_{n}", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
        recorded[n] = [t.run(_step, name=f"thread{n}", config={"i": i}).run_id for i in range(15)]
        t.close()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errors = in_threads(worker, 3)
    assert not errors, errors
    reader = _tracker(tmp_path)
    for n, ids in recorded.items():
        assert len(ids) == 15
        assert len(reader.find_runs(model=f"thread{n}", limit=100)) == 15
    reader.close()


@pytest.mark.slow
def test_killed_run_leaves_a_trace_from_its_start_record(
    tmp_path: Path, children: list[Child]
) -> None:
    child = Child(
        _child_source(
            f"""
            import os
            from test_visibility import _slow_step
            t = Tracker({str(tmp_path / "runs")!r}, db_path={str(tmp_path / "db.duckdb")!r},
                        project_root={str(tmp_path)!r})
            t.run(_step, name="killed", config={{"x": 0}})  # one committed run first
            os.environ["CONSIST_TEST_SLOW_STEP"] = "1"
            t.run(_slow_step, name="killed", config={{"x": 1}})
            """
        )
    )
    children.append(child)
    run_id = child.wait_for("running").split()[1]
    os.kill(child.proc.pid, signal.SIGKILL)
    child.proc.wait(timeout=30)
    journal = Journal(tmp_path / "runs")
    assert not journal.path_for(run_id).exists(), "no snapshot file before the end"

    tracker = _tracker(tmp_path)
    assert run_id in tracker.recovery.replayed
    snapshot = json.loads(journal.path_for(run_id).read_bytes())
    assert snapshot["run"]["status"] == "running"
    assert snapshot["config"] == {"x": 1}
    run = tracker.get_run(run_id)
    assert run is not None and run.status == "running"
    assert run.signature is not None
    assert tracker.store.find_completed_run(run.signature) is None
    # The killed run never serves as a cache source: the same step executes.
    result = tracker.run(_slow_step, name="killed", config={"x": 1})
    assert not result.cache_hit
    assert result.run.signature == run.signature
    # The dead process's ledger was consumed.
    ledgers = list((tmp_path / "runs" / "consist_runs" / ".pending").glob("*.log"))
    assert all(p.name.startswith(f"{os.getpid()}-") for p in ledgers)
    tracker.close()


@pytest.mark.slow
def test_in_repo_layout_two_processes_see_each_others_runs(
    tmp_path: Path, children: list[Child]
) -> None:
    repo = make_git_repo(tmp_path / "model", {"model.py": "A = 1\n", "settings.yaml": "a: 1\n"})
    write(repo / "data" / "land_use.csv", "zone,pop\n1,10\n")  # untracked data
    write(repo / "logs" / "model.log", "started\n")  # untracked log
    git(repo, "status", "--short")
    runs, db = repo / "work" / "runs", repo / "work" / "provenance.duckdb"
    child = Child(
        _child_source(
            f"""
            import os
            os.chdir({str(repo)!r})
            t = Tracker({str(runs)!r}, db_path={str(db)!r}, project_root={str(repo)!r})
            r = t.run(_step, name="repo_step", config={{"x": 3}},
                      inputs={{"land_use": {str(repo / "data" / "land_use.csv")!r}}})
            print("done", r.run_id, r.cache_hit, flush=True)
            time.sleep(600)
            """
        )
    )
    children.append(child)
    line = child.wait_for("done").split()
    run_id, was_hit = line[1], line[2]
    assert was_hit == "False"
    write(repo / "logs" / "model.log", "started\nfinished\n")  # a log written meanwhile
    tracker = Tracker(runs, db_path=db, project_root=repo)
    hit = tracker.run(
        _step,
        name="repo_step",
        config={"x": 3},
        inputs={"land_use": repo / "data" / "land_use.csv"},
    )
    assert hit.cache_hit, hit.run.meta.get("cache_miss_explanation")
    assert hit.run.meta["cache_source"] == run_id
    tracker.close()


def test_input_discovery_links_the_producing_run(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)

    def produce() -> Path:
        path = tracker.output_path("table", ext="csv")
        path.write_text("a\n1\n")
        return path

    def consume(table: Path) -> None:
        assert table.read_text() == "a\n1\n"

    first = tracker.run(produce, outputs=["table"])
    second = tracker.run(consume, inputs={"table": first.outputs["table"].path})
    linked = tracker.get_run_inputs(second.run_id)["table"]
    assert linked.id == first.outputs["table"].id
    producer = tracker.get_run(first.run_id)
    manifest = tracker.store.get_identity_manifest(second.run_id)
    assert manifest["inputs"]["table"]["producer_signature"] == producer.signature
    tracker.close()
