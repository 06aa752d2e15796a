"""Lineage groups written by several processes at once (DuckDB), and none on PostgreSQL.

Four processes write the runs of one random graph, interleaved, each run in
its own transaction (``sync_record``), so groups are joined while other
writers read and extend them. Afterwards every link of a DuckDB store
carries the root of its group and, from every artifact, the walk over the
root's group reaches what the walk over the whole link table reaches. A
PostgreSQL store walks by index and keeps no groups: its links stay
unlabelled (its writers never wait on group bookkeeping) and lineage
still finds everything.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from _support import random_lineage_graph
from consist.core.store.lineage_groups import run_label
from consist.core.store.lineage_store import _WALK_NODES, _WALK_NODES_GROUPED
from consist.core.store.metadata_store import MetadataStore
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run

_TIMEOUT = 180
_WRITERS = 4


def _open(engine: str, locator: str) -> MetadataStore:
    if engine == "postgresql":
        from consist.core.store.engines.pg_store import PostgresMetadataStore

        store: MetadataStore = PostgresMetadataStore(locator)
    else:
        store = MetadataStore(locator, idle_release_s=0.01)
    store.ensure_schema()
    return store


def _write_runs(engine: str, locator: str, runs: list, barrier: Any) -> int:
    store = _open(engine, locator)
    try:
        barrier.wait(timeout=_TIMEOUT)
        for run_id, inputs, outputs in runs:
            record = ConsistRecord(
                run=Run(id=run_id, model_name="m", status="completed"),
                inputs=[Artifact(id=a, key=f"in{i}", uri=f"/d/{a}") for i, a in enumerate(inputs)],
                outputs=[
                    Artifact(id=a, key=f"out{i}", uri=f"/d/{a}", run_id=run_id)
                    for i, a in enumerate(outputs)
                ],
            )
            store.sync_record(record, first=True)
        return len(runs)
    finally:
        store.close()


@pytest.fixture(params=["duckdb", "postgresql"])
def locator(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "postgresql":
        return "postgresql", request.getfixturevalue("pg_url")
    return "duckdb", str(tmp_path / "store.duckdb")


@pytest.mark.slow
def test_groups_joined_by_concurrent_writers_keep_every_walk_whole(
    locator: tuple[str, str],
) -> None:
    engine, where = locator
    graph = random_lineage_graph(seed=7, runs=120)
    _open(engine, where).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(_WRITERS) as pool:
        barrier = manager.Barrier(_WRITERS)
        jobs = [
            pool.apply_async(_write_runs, (engine, where, graph[k::_WRITERS], barrier))
            for k in range(_WRITERS)
        ]
        assert sum(job.get(_TIMEOUT) for job in jobs) == len(graph)
    store = _open(engine, where)
    try:
        with store.connections.connection() as con:
            if engine == "postgresql":
                assert con.execute(
                    "SELECT count(lineage_group) FROM run_artifact_link"
                ).fetchone() == (0,)
                assert con.execute("SELECT count(*) FROM lineage_group_alias").fetchone() == (0,)
            else:
                assert con.execute(
                    "SELECT count(*) FROM run_artifact_link WHERE lineage_group IS NULL"
                ).fetchone() == (0,)
                aliases = dict(con.execute("SELECT grp, root FROM lineage_group_alias").fetchall())
                assert aliases  # writers did join groups
                links = con.execute("SELECT run_id, lineage_group FROM run_artifact_link")
                for run_id, label in links.fetchall():
                    assert label not in aliases  # links carry roots only
                    assert label == aliases.get(run_label(run_id), run_label(run_id)), run_id
            artifacts = {a for _, ins, outs in graph for a in ins + outs}
            deepest = 0
            for artifact in artifacts:
                params = {"root": str(artifact)}
                whole = set(con.execute(_WALK_NODES, params).fetchall())
                if engine == "duckdb":
                    assert set(con.execute(_WALK_NODES_GROUPED, params).fetchall()) == whole
                deepest = max(deepest, len(whole))
        assert deepest > 5
        # Through the store's own lineage read: every producer upstream is there.
        lineage = store.lineage_store()
        assert lineage.grouped == (engine == "duckdb")
        for artifact in list(artifacts)[:20]:
            graph_ = lineage.upstream(artifact)
            assert graph_ is not None
            with store.connections.connection() as con:
                nodes = con.execute(_WALK_NODES, {"root": str(artifact)}).fetchall()
            walked = {str(n) for n, is_artifact in nodes if is_artifact}
            assert {str(a) for a in graph_.artifacts} == walked
    finally:
        store.close()
