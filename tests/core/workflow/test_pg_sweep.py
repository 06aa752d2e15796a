"""Sweeps recording into a PostgreSQL store (``Tracker(db_url=...)``, team mode).

Every test gets a fresh database on the session's throwaway server
(``pg_url``). The URL carries a password (the test server trusts loopback,
so any password is accepted): the workers must be given the URL as
configured, not the redacted ``tracker.db_path``, and each execution logs
the URL its worker's tracker was opened with. The process-pool step is a
function of this module (spawned workers import it by name); the Dask step
lives in a module written under a temporary folder and sent to a real
2-worker ``LocalCluster`` (spawned processes) with ``client.upload_file``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import consist
from consist import Tracker
from consist.core.store.engines.pg_store import PostgresMetadataStore
from consist.core.workflow.sweep import worker_options

STEP = '''
"""The Dask step of test_pg_sweep (imported by the workers by name)."""

import json
import os

import consist


def score(config: dict, log: str) -> object:
    tracker = consist.current_tracker()
    line = {"i": config["i"], "pid": os.getpid(), "db_url": tracker.config.db_url}
    with open(log, "a") as fh:
        fh.write(json.dumps(line) + "\\n")
    out = consist.output_path("score", ext="json")
    out.write_text(json.dumps({"i": config["i"], "score": config["i"] * config["scale"]}))
    return out
'''


def score(config: dict, log: str) -> Path:
    """One sweep member (process pool): logs its execution, writes a small JSON result."""
    time.sleep(config.get("pause", 0.0))
    tracker = consist.current_tracker()
    line = {"i": config["i"], "pid": os.getpid(), "db_url": tracker.config.db_url}
    with open(log, "a") as fh:
        fh.write(json.dumps(line) + "\n")
    out = consist.output_path("score", ext="json")
    out.write_text(json.dumps({"i": config["i"], "score": config["i"] * config["scale"]}))
    return out


def executions(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def with_password(url: str) -> str:
    """``url`` (``...://postgres@host...``) with a password for its user."""
    assert "://postgres@" in url
    return url.replace("://postgres@", "://postgres:s3cr%40t@", 1)


@pytest.fixture
def url(pg_url: str) -> str:
    return with_password(pg_url)


@pytest.fixture
def tracker(base: Path, url: str) -> Iterator[Tracker]:
    t = Tracker(base / "runs", db_url=url, project_root=base)
    yield t
    t.close()


def check_first_sweep(
    tracker: Tracker, url: str, rows: list[Any], log: Path, parent_pid: int
) -> set[int]:
    """All 20 configs executed once in worker processes and recorded in PostgreSQL."""
    assert [r.index for r in rows] == list(range(20))
    assert all(r.ok and not r.cache_hit for r in rows), [r.error for r in rows if not r.ok]
    for r in rows:
        assert json.loads(r.output("score").path.read_text()) == {
            "i": r.index,
            "score": 3 * r.index,
        }
    lines = executions(log)
    assert sorted(e["i"] for e in lines) == list(range(20))
    # The workers opened the store with the full URL, password included.
    assert {e["db_url"] for e in lines} == {url}
    pids = {e["pid"] for e in lines}
    assert parent_pid not in pids
    runs = tracker.find_runs(year=2030, status="completed", limit=100)
    assert {run.id for run in runs} == {r.run_id for r in rows} and len(runs) == 20
    assert {run.meta["pid"] for run in runs} == pids
    return pids


def check_rerun(first: list[Any], again: list[Any], log: Path) -> None:
    assert [r.index for r in again] == list(range(20))
    assert [r.ok and r.cache_hit for r in again] == [True] * 20
    assert len(executions(log)) == 20  # nothing executed again
    for a, b in zip(first, again, strict=True):
        assert b.outputs["score"].id == a.outputs["score"].id
        assert b.run.meta["cache_source"] == a.run_id


# --------------------------------------------------------------------------- #
# The workers' tracker options
# --------------------------------------------------------------------------- #


def test_worker_options_carry_the_full_db_url_and_no_duckdb_timings(
    tracker: Tracker, url: str, base: Path
) -> None:
    assert isinstance(tracker.store, PostgresMetadataStore)
    assert "s3cr" not in str(tracker.db_path)  # the redacted form, for messages
    options = worker_options(tracker)
    assert options["db_url"] == url
    assert not {"db_path", "lock_timeout_s", "idle_release_s", "max_hold_s"} & set(options)
    # They open a tracker on the same database (the redacted URL would be refused as db_path).
    other = Tracker(**options)
    try:
        assert isinstance(other.store, PostgresMetadataStore)
        assert other.config.db_url == url
    finally:
        other.close()
    duck = Tracker(
        base / "duck",
        db_path=base / "prov.duckdb",
        project_root=base,
        max_hold_s=0.5,
        code_identity_source_suffixes=[".py", ".R"],
    )
    try:
        options = worker_options(duck)
        assert options["db_path"] == duck.db_path and options["max_hold_s"] == 0.5
        assert "db_url" not in options
        # The code identity is computed as in the parent (else a rerun there would miss).
        assert options["code_identity_source_suffixes"] == {".py", ".r"}
    finally:
        duck.close()


# --------------------------------------------------------------------------- #
# Process pool
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_process_pool_sweep_of_twenty_configs_records_into_postgresql_then_all_hits(
    tracker: Tracker, url: str, base: Path
) -> None:
    log = base / "executions.jsonl"
    configs = [{"i": i, "scale": 3} for i in range(20)]
    kwargs = {"outputs": ["score"], "runtime_kwargs": {"log": str(log)}, "year": 2030}

    first = tracker.sweep(score, configs, max_workers=2, **kwargs)

    pids = check_first_sweep(tracker, url, first, log, os.getpid())
    assert 1 <= len(pids) <= 2
    # Another tracker (as on another machine) on the same database sees them all.
    other = Tracker(base / "elsewhere", db_url=url, project_root=base)
    try:
        assert len(other.find_runs(year=2030, status="completed", limit=100)) == 20
    finally:
        other.close()

    again = tracker.sweep(score, configs, max_workers=2, **kwargs)

    check_rerun(first, again, log)
    # Nothing of a DuckDB store was made: the runs live in PostgreSQL only.
    assert not list(base.rglob("*.duckdb")) and not list(base.rglob("*.claims"))


@pytest.mark.slow
def test_scenario_sweep_on_postgresql_makes_children_of_the_header(
    tracker: Tracker, base: Path
) -> None:
    log = base / "executions.jsonl"
    configs = [{"i": i, "scale": 3} for i in range(4)]
    with tracker.scenario("calibration", config={"grid": "4x"}) as sc:
        rows = sc.sweep(
            score, configs, max_workers=2, outputs=["score"], runtime_kwargs={"log": str(log)}
        )
    assert all(r.ok and not r.cache_hit for r in rows), [r.error for r in rows.failed]
    children = tracker.find_runs(parent_id="calibration", limit=100)
    assert {c.id for c in children} == {r.run_id for r in rows} and len(children) == 4
    header = tracker.get_run("calibration")
    assert header.status == "completed" and header.meta["scenario_steps"] == 4
    assert sc.coupler.keys() == [f"score/{i}/score" for i in range(4)]

    with tracker.scenario("calibration", config={"grid": "4x"}) as sc:
        again = sc.sweep(
            score, configs, max_workers=2, outputs=["score"], runtime_kwargs={"log": str(log)}
        )
    assert [r.cache_hit for r in again] == [True] * 4
    assert len(executions(log)) == 4


@pytest.mark.slow
def test_one_config_twice_in_a_sweep_is_computed_once_on_postgresql(
    tracker: Tracker, base: Path
) -> None:
    # Both workers reach the same signature at once: one computes (holding the
    # advisory lock), the other waits for it and then hits its run.
    log = base / "executions.jsonl"
    same = {"i": 7, "scale": 3, "pause": 4.0}
    rows = tracker.sweep(
        score,
        [same, dict(same)],
        max_workers=2,
        outputs=["score"],
        runtime_kwargs={"log": str(log)},
    )
    assert all(r.ok for r in rows), [r.error for r in rows.failed]
    assert len(executions(log)) == 1
    assert sorted(r.cache_hit for r in rows) == [False, True]
    computed, hit = sorted(rows, key=lambda r: r.cache_hit)
    assert hit.run.meta["cache_source"] == computed.run_id
    assert hit.outputs["score"].id == computed.outputs["score"].id
    # The hit came from the other worker, which waited for the computing one
    # (served after it, not from a cache filled before it asked).
    assert hit.run.meta["pid"] != computed.run.meta["pid"]
    assert hit.duration_s > 1.0


# --------------------------------------------------------------------------- #
# Dask
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A 2-worker LocalCluster (spawned processes) with the step module uploaded."""
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    folder = tmp_path_factory.mktemp("pg_dask_steps")
    (folder / "pg_sweep_steps.py").write_text(textwrap.dedent(STEP))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    dask_client = distributed.Client(cluster, set_as_default=False)
    sys.path.insert(0, str(folder))  # after the workers were spawned: they get it by upload
    try:
        dask_client.upload_file(str(folder / "pg_sweep_steps.py"))
        yield dask_client
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("pg_sweep_steps", None)
        dask_client.close()
        cluster.close()


@pytest.fixture
def mod(client: Any) -> ModuleType:
    return importlib.import_module("pg_sweep_steps")


@pytest.mark.slow
def test_dask_sweep_of_twenty_configs_on_two_workers_records_into_postgresql_then_all_hits(
    tracker: Tracker, url: str, base: Path, client: Any, mod: ModuleType
) -> None:
    log = base / "executions.jsonl"
    configs = [{"i": i, "scale": 3} for i in range(20)]
    kwargs = {"outputs": ["score"], "runtime_kwargs": {"log": str(log)}, "year": 2030}

    first = tracker.sweep(mod.score, configs, executor="dask", client=client, **kwargs)

    pids = check_first_sweep(tracker, url, first, log, os.getpid())
    assert pids <= set(client.run(os.getpid).values())

    again = tracker.sweep(mod.score, configs, executor="dask", client=client, **kwargs)

    check_rerun(first, again, log)
    assert not list(base.rglob("*.duckdb"))
