"""A fork-based multiprocessing pool under a parent that holds a tracker.

Issue 10, point 7: modelers fan out with ``multiprocessing.Pool`` (fork start
method) while their own tracker is open. Each worker opens its own tracker on
the same store and records runs; the parent records runs before, during and
after. Nothing may hang, no returned run may be lost (DuckDB would hand a
forked child its parent's copy of the database), nothing is recorded twice.
Real processes, a real DuckDB file, code, run_dir and store in one git
repository; each execution appends a line to a file with ``O_APPEND``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _support import make_git_repo
from consist import Tracker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
    ),
]

WORKERS = 4
RUNS = 12
MODULE = "fork_pool_steps"  # a name no other test imports

STEPS = """
import os


def record(w: int, i: int) -> None:
    fd = os.open(os.environ["FORK_POOL_EXEC_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {w} {i}\\n".encode())
    finally:
        os.close(fd)
"""


def _worker(repo: str, w: int, runs: int) -> list[tuple[str, bool, int]]:
    """One pool task: its own tracker on the parent's store, ``runs`` runs."""
    steps = sys.modules[MODULE]
    tracker = Tracker(Path(repo) / "runs", db_path=Path(repo) / "provenance.duckdb")
    try:
        out = []
        for i in range(runs):
            result = tracker.run(fn=steps.record, name="pool", config={"w": w, "i": i})
            out.append((result.run.id, bool(result.cache_hit), os.getpid()))
        return out
    finally:
        tracker.close()


@pytest.fixture
def steps_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    repo = make_git_repo(tmp_path / "model", {f"{MODULE}.py": STEPS})
    monkeypatch.setenv("FORK_POOL_EXEC_LOG", str(repo / "executions.log"))
    monkeypatch.chdir(repo)  # the modeler's working directory: the project
    monkeypatch.syspath_prepend(str(repo))
    module = importlib.import_module(MODULE)
    yield repo, module
    sys.modules.pop(MODULE, None)


def test_fork_pool_under_an_open_tracker_records_every_run_once(steps_repo: Any) -> None:
    repo, steps = steps_repo
    db = repo / "provenance.duckdb"
    parent = Tracker(repo / "runs", db_path=db)
    ids: list[str] = []

    def parent_runs(w: int, hits: bool = False) -> None:
        for i in range(3):
            result = parent.run(fn=steps.record, name="pool", config={"w": w, "i": i})
            assert result.cache_hit == hits
            ids.append(result.run.id)

    parent_runs(-1)
    assert parent.store.connections.is_open  # the parent holds the file when it forks

    pool = multiprocessing.get_context("fork").Pool(WORKERS)
    try:
        pending = pool.starmap_async(_worker, [(str(repo), w, RUNS) for w in range(WORKERS)])
        parent_runs(-2)  # the parent keeps using its tracker while the workers run
        # A hang (a child waiting forever for the parent's turn, or dead of
        # SIGSEGV and never answering) fails here instead of blocking the suite.
        results = pending.get(timeout=120)
        parent_runs(-3)
        # The parent sees the workers' runs: the same config is a hit.
        for w in range(WORKERS):
            hit = parent.run(fn=steps.record, name="pool", config={"w": w, "i": 0})
            assert hit.cache_hit
            ids.append(hit.run.id)
    except BaseException:
        pool.terminate()  # workers that hang or keep dying must not block the suite
        raise
    finally:
        pool.close()
        pool.join()
    parent_runs(-1, hits=True)
    parent.close()

    child_rows = [row for rows in results for row in rows]
    assert {pid for _, _, pid in child_rows}.isdisjoint({os.getpid()})
    assert not any(hit for _, hit, _ in child_rows)  # every worker config is new
    ids += [run_id for run_id, _, _ in child_rows]
    assert len(ids) == len(set(ids))

    executions = Counter(
        tuple(line.split()[1:]) for line in (repo / "executions.log").read_text().splitlines()
    )
    expected = {(str(w), str(i)) for w in range(WORKERS) for i in range(RUNS)}
    expected |= {(str(w), str(i)) for w in (-1, -2, -3) for i in range(3)}
    assert set(executions) == expected
    assert set(executions.values()) == {1}  # executed once each

    fresh = Tracker(repo / "runs_check", db_path=db)
    try:
        stored = fresh.find_runs(model="pool", limit=10 * len(ids))
        assert sorted(r.id for r in stored) == sorted(ids)  # none lost, none extra
        assert {r.status for r in stored} == {"completed"}
    finally:
        fresh.close()


_INHERITED: dict[str, Any] = {}  # the parent's tracker, seen by forked workers


def _inherited_worker(w: int) -> list[str]:
    """One pool task recording runs through the tracker the worker inherited."""
    tracker, steps = _INHERITED["tracker"], sys.modules[MODULE]
    return [
        tracker.run(fn=steps.record, name="inherited", config={"w": w, "i": i}).run.id
        for i in range(RUNS)
    ]


def test_fork_pool_workers_can_use_the_parents_tracker(steps_repo: Any) -> None:
    repo, steps = steps_repo
    parent = Tracker(repo / "runs", db_path=repo / "provenance.duckdb")
    first = parent.run(fn=steps.record, name="inherited", config={"w": -1, "i": 0})
    _INHERITED["tracker"] = parent
    try:
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            results = pool.map_async(_inherited_worker, range(WORKERS)).get(timeout=120)
    finally:
        _INHERITED.clear()
    ids = [first.run.id] + [run_id for rows in results for run_id in rows]
    assert len(ids) == len(set(ids)) == 1 + WORKERS * RUNS
    assert all(
        parent.run(fn=steps.record, name="inherited", config={"w": w, "i": RUNS - 1}).cache_hit
        for w in range(WORKERS)
    )
    parent.close()
    fresh = Tracker(repo / "runs_check", db_path=repo / "provenance.duckdb")
    try:
        stored = fresh.find_runs(model="inherited", limit=10 * len(ids))
        assert set(ids) <= {r.id for r in stored}
        assert len(stored) == len(ids) + WORKERS  # plus the parent's hits
    finally:
        fresh.close()


def test_child_forked_inside_a_store_operation_refuses_the_store(steps_repo: Any) -> None:
    """The one fork the parent cannot prepare for fails closed in the child."""
    repo, steps = steps_repo
    db = repo / "provenance.duckdb"
    parent = Tracker(repo / "runs", db_path=db)
    parent.run(fn=steps.record, name="pool", config={"w": 0, "i": 0})
    read, write = os.pipe()
    with parent.store.connections.connection():  # a store operation in progress
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(read)
            message = b"opened"
            try:
                Tracker(repo / "runs_child", db_path=db).close()
            except RuntimeError as exc:
                message = str(exc).encode()
            os.write(write, message)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert "forked while its parent was using the store" in message
    assert "'spawn'" in message
    # The parent is unaffected and its store intact.
    assert parent.run(fn=steps.record, name="pool", config={"w": 0, "i": 0}).cache_hit
    parent.close()
