"""Sweeps on a Dask cluster: ``tracker.sweep(..., executor="dask", client=...)``.

A real ``distributed.LocalCluster`` with two spawned worker processes (one
thread each) is started once for the module and closed in teardown. The step
function lives in a module written under a temporary folder: the workers get
it through ``client.upload_file`` (the folder is put on this process's
``sys.path`` only after the cluster started, so the workers could not import
it otherwise). Each execution appends a JSON line (config, pid, start and end
times) to a log passed as a runtime kwarg, so executions are counted across
processes and their overlap can be measured.

Argument checks happen in this process before anything runs (and write
nothing); the slow tests record into a real DuckDB store from the workers.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from consist import SweepResults, Tracker
from consist.core.workflow import dask_sweep

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

STEPS = '''
"""Step functions of the Dask sweep tests (imported by the workers by name)."""

import json
import os
import time

import consist
from consist import Tracker


def score(config: dict, log: str) -> object:
    started = time.time()
    time.sleep(config.get("pause", 0.0))
    if config.get("die"):
        os._exit(3)  # the worker process dies mid-task
    with open(log, "a") as fh:
        line = {"i": config["i"], "pid": os.getpid(), "start": started, "end": time.time()}
        fh.write(json.dumps(line) + "\\n")
    if config.get("fail"):
        raise ValueError(f"config {config['i']} diverged")
    out = consist.output_path("score", ext="json")
    out.write_text(json.dumps({"i": config["i"], "score": config["i"] * config.get("scale", 1)}))
    return out


class NoStoreOnWorkers(Tracker):
    """A tracker that cannot be opened on a Dask worker (as on a machine without the store)."""

    def __init__(self, *args, **kwargs):
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:  # not on a worker: open as usual
            super().__init__(*args, **kwargs)
        else:
            raise RuntimeError("the store is not reachable from this worker")
'''


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder holding the step module (``dask_sweep_steps.py``)."""
    folder = tmp_path_factory.mktemp("dask_steps")
    (folder / "dask_sweep_steps.py").write_text(textwrap.dedent(STEPS))
    yield folder


@pytest.fixture(scope="module")
def client(steps: Path) -> Iterator[Any]:
    """A 2-worker LocalCluster (spawned processes) with the step module uploaded."""
    # A task whose worker dies is not retried elsewhere (KilledWorker at once).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    dask_client = distributed.Client(cluster, set_as_default=False)
    sys.path.insert(0, str(steps))  # after the workers were spawned: they do not inherit it
    try:
        assert not any(dask_client.run(lambda: any("dask_steps" in p for p in sys.path)).values())
        dask_client.upload_file(str(steps / "dask_sweep_steps.py"))
        yield dask_client
    finally:
        sys.path.remove(str(steps))
        sys.modules.pop("dask_sweep_steps", None)
        dask_client.close()
        cluster.close()


@pytest.fixture
def mod(client: Any) -> ModuleType:
    return importlib.import_module("dask_sweep_steps")


def executions(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def executed(log: Path) -> list[int]:
    return sorted(e["i"] for e in executions(log))


def journal_files(tracker: Tracker) -> list[str]:
    runs = tracker.run_dir / "consist_runs"
    return sorted(p.name for p in runs.glob("*.json")) if runs.exists() else []


def trackers_per_worker(client: Any) -> dict[str, int]:
    return client.run(lambda: len(dask_sweep._TRACKERS))


# --------------------------------------------------------------------------- #
# Rejected before anything runs
# --------------------------------------------------------------------------- #


def test_bad_executor_arguments_are_rejected_up_front(
    tracker: Tracker, base: Path, client: Any, mod: ModuleType
) -> None:
    log = base / "log.jsonl"
    good = [{"i": 1}]
    kwargs = {"runtime_kwargs": {"log": str(log)}}
    with pytest.raises(ValueError, match="unknown sweep executor='threads'"):
        tracker.sweep(mod.score, good, executor="threads", **kwargs)
    with pytest.raises(ValueError, match=r"ExecutionOptions\(executor='container'"):
        tracker.sweep(mod.score, good, executor="container", **kwargs)
    with pytest.raises(ValueError, match="client= is used only with executor='dask'"):
        tracker.sweep(mod.score, good, client=client, **kwargs)
    # The fixture's client exists but is not the default one (set_as_default=False).
    with pytest.raises(ValueError, match=r"needs client=distributed.Client"):
        tracker.sweep(mod.score, good, executor="dask", **kwargs)
    with pytest.raises(TypeError, match=r"client must be a distributed\.Client, got str"):
        tracker.sweep(mod.score, good, executor="dask", client="tcp://127.0.0.1:8786", **kwargs)
    with pytest.raises(ValueError, match="max_workers"):
        tracker.sweep(mod.score, good, executor="dask", client=client, max_workers=0, **kwargs)
    # The usual sweep checks apply to a Dask sweep too, before any task is sent.
    with pytest.raises(TypeError, match="needs \\['log'\\]"):
        tracker.sweep(mod.score, good, executor="dask", client=client)
    with pytest.raises(ValueError, match="run_id="):
        tracker.sweep(mod.score, good, executor="dask", client=client, run_id="x", **kwargs)
    closed = distributed.Client(client.scheduler.address, set_as_default=False)
    closed.close()
    with pytest.raises(ValueError, match="client is 'closed'"):
        tracker.sweep(mod.score, good, executor="dask", client=closed, **kwargs)
    assert journal_files(tracker) == []
    assert tracker.find_runs(limit=10) == []
    assert not log.exists()


def test_missing_dask_names_the_extra(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch, mod: ModuleType
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'consist\[dask\]'"):
        tracker.sweep(mod.score, [{"i": 1}], executor="dask", runtime_kwargs={"log": "x"})


def test_empty_dask_sweep_sends_nothing(tracker: Tracker, client: Any, mod: ModuleType) -> None:
    rows = tracker.sweep(
        mod.score, [], executor="dask", client=client, runtime_kwargs={"log": "unused"}
    )
    assert isinstance(rows, SweepResults) and rows == []


# --------------------------------------------------------------------------- #
# Real Dask workers recording into the shared store
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_twenty_configs_on_two_dask_workers_then_rerun_as_all_hits(
    tracker: Tracker, base: Path, client: Any, mod: ModuleType
) -> None:
    log = base / "executions.jsonl"
    configs = [{"i": i, "scale": 3} for i in range(20)]
    kwargs = {"outputs": ["score"], "runtime_kwargs": {"log": str(log)}, "year": 2030}
    before = trackers_per_worker(client)

    first = tracker.sweep(mod.score, configs, executor="dask", client=client, **kwargs)

    assert [r.index for r in first] == list(range(20))
    assert [r.config for r in first] == configs
    assert all(r.ok and not r.cache_hit for r in first), [r.error for r in first.failed]
    assert executed(log) == list(range(20))
    for r in first:
        written = json.loads(r.output("score").path.read_text())
        assert written == {"i": r.index, "score": 3 * r.index}
    # All recorded in the shared store, each its own run, run by the two workers.
    runs = tracker.find_runs(year=2030, status="completed", limit=100)
    assert len(runs) == 20
    assert {run.id for run in runs} == {r.run_id for r in first}
    assert len({r.run_id for r in first}) == 20
    worker_pids = set(client.run(os.getpid).values())
    pids = {run.meta["pid"] for run in runs}
    assert os.getpid() not in pids and pids <= worker_pids

    again = tracker.sweep(mod.score, configs, executor="dask", client=client, **kwargs)

    assert [r.index for r in again] == list(range(20))
    assert [r.cache_hit for r in again] == [True] * 20 and again.cache_hits == 20
    assert executed(log) == list(range(20))  # nothing executed again
    for a, b in zip(first, again, strict=True):
        assert b.outputs["score"].id == a.outputs["score"].id
        assert b.run.meta["cache_source"] == a.run_id
    # One tracker opened per worker process for both sweeps (one thread each).
    after = trackers_per_worker(client)
    opened = {addr: after[addr] - before.get(addr, 0) for addr in after}
    assert set(opened.values()) <= {0, 1} and sum(opened.values()) == len(pids)


@pytest.mark.slow
def test_a_failing_config_is_reported_on_its_row_and_rows_keep_input_order(
    tracker: Tracker, base: Path, client: Any, mod: ModuleType
) -> None:
    log = base / "executions.jsonl"
    # config 0 is slow, so it finishes after the others: rows still come in input order
    configs = [{"i": 0, "pause": 1.0}] + [{"i": i, "fail": i == 3} for i in range(1, 6)]
    rows = tracker.sweep(
        mod.score, configs, executor="dask", client=client, runtime_kwargs={"log": str(log)}
    )
    assert [r.index for r in rows] == list(range(6))
    assert [r.config for r in rows] == configs
    assert [r.status for r in rows] == ["completed"] * 3 + ["failed"] + ["completed"] * 2
    finish_order = [e["i"] for e in executions(log)]
    assert finish_order[0] != 0 and finish_order.index(0) > 0  # others finished before it
    failed = rows[3]
    assert failed.error == "ValueError: config 3 diverged"
    assert "diverged" in failed.error_traceback and failed.outputs == {}
    assert tracker.get_run(failed.run_id).status == "failed"
    assert executed(log) == list(range(6))
    assert len(tracker.find_runs(status="completed", limit=100)) == 5


@pytest.mark.slow
def test_max_workers_bounds_the_configs_in_flight(
    tracker: Tracker, base: Path, client: Any, mod: ModuleType
) -> None:
    def overlaps(log: Path) -> int:
        spans = sorted((e["start"], e["end"]) for e in executions(log))
        return sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])

    configs = [{"i": i, "pause": 0.3} for i in range(4)]
    one = base / "one.jsonl"
    rows = tracker.sweep(
        mod.score,
        configs,
        executor="dask",
        client=client,
        max_workers=1,
        runtime_kwargs={"log": str(one)},
    )
    assert all(r.ok for r in rows) and executed(one) == [0, 1, 2, 3]
    assert overlaps(one) == 0  # one at a time
    two = base / "two.jsonl"
    configs = [{"i": i, "pause": 0.3, "batch": 2} for i in range(4)]
    tracker.sweep(
        mod.score, configs, executor="dask", client=client, runtime_kwargs={"log": str(two)}
    ).raise_for_failures()
    assert overlaps(two) >= 1  # without the bound the two workers run side by side


@pytest.mark.slow
def test_scenario_sweep_on_the_active_client(
    tracker: Tracker, base: Path, client: Any, mod: ModuleType
) -> None:
    log = base / "executions.jsonl"
    configs = [{"i": i} for i in range(3)]
    with client.as_current(), tracker.scenario("grid") as sc:  # client=None: the active one
        rows = sc.sweep(
            mod.score, configs, executor="dask", outputs=["score"], runtime_kwargs={"log": str(log)}
        )
    rows.raise_for_failures()
    assert all(r.run.parent_run_id == "grid" for r in rows)
    assert {r.id for r in tracker.find_runs(parent_id="grid")} == {r.run_id for r in rows}
    assert sc.coupler.keys() == [f"score/{i}/score" for i in range(3)]
    assert tracker.get_run("grid").status == "completed"


@pytest.mark.slow
def test_a_step_the_workers_cannot_import_fails_each_row_instead_of_hanging(
    tracker: Tracker, base: Path, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module this process imports but the workers were never given.
    local_only = base / "local_only"
    local_only.mkdir()
    (local_only / "dask_sweep_local_only.py").write_text(
        "def step(config: dict) -> None:\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(local_only))
    monkeypatch.delitem(sys.modules, "dask_sweep_local_only", raising=False)
    step = importlib.import_module("dask_sweep_local_only").step
    try:
        rows = tracker.sweep(step, [{"i": 0}, {"i": 1}], executor="dask", client=client)
    finally:
        sys.modules.pop("dask_sweep_local_only", None)
    assert [r.status for r in rows] == ["failed", "failed"]
    assert [r.config for r in rows] == [{"i": 0}, {"i": 1}]
    for r in rows:
        assert r.error.startswith(
            "the worker could not load the step: ModuleNotFoundError: "
            "No module named 'dask_sweep_local_only'"
        )
        assert "client.upload_file" in r.error and r.run_id is None
    assert tracker.find_runs(limit=10) == []


@pytest.mark.slow
def test_a_worker_that_cannot_open_the_tracker_reports_on_every_row(
    base: Path, client: Any, mod: ModuleType
) -> None:
    log = base / "executions.jsonl"
    tracker = mod.NoStoreOnWorkers(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    try:
        rows = tracker.sweep(
            mod.score,
            [{"i": i} for i in range(3)],
            executor="dask",
            client=client,
            runtime_kwargs={"log": str(log)},
        )
        assert [r.status for r in rows] == ["failed"] * 3
        for r in rows:
            assert r.error == (
                "the worker could not open the tracker: "
                "RuntimeError: the store is not reachable from this worker"
            )
            assert "dask_sweep_steps.py" in r.error_traceback and r.run_id is None
        assert not log.exists() and tracker.find_runs(limit=10) == []
    finally:
        tracker.close()


@pytest.mark.slow
def test_a_config_whose_worker_dies_is_a_failed_row_and_siblings_complete(
    tracker: Tracker, base: Path, client: Any, mod: ModuleType
) -> None:
    log = base / "executions.jsonl"
    configs = [{"i": 0}, {"i": 1, "die": True}, {"i": 2}, {"i": 3}]
    try:
        # One config in flight: with allowed-failures=0 a task merely queued on the
        # dying worker would be a KilledWorker too (by default Dask retries those).
        rows = tracker.sweep(
            mod.score,
            configs,
            executor="dask",
            client=client,
            max_workers=1,
            runtime_kwargs={"log": str(log)},
        )
        assert [r.status for r in rows] == ["completed", "failed", "completed", "completed"]
        assert rows[1].error.startswith("KilledWorker: ") and rows[1].config == configs[1]
        assert executed(log) == [0, 2, 3]
        assert len(tracker.find_runs(status="completed", limit=10)) == 3
    finally:
        client.wait_for_workers(2, timeout=60)  # the nanny starts a new worker
