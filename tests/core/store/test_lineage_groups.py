"""Lineage groups (schema migration 10): a walk joins only the links of the root's group.

The property that matters: for every artifact, the walk over the links of its
group reaches exactly the nodes the walk over the whole link table reaches.
Random graphs (chains, diamonds, cache hits re-outputting an artifact, runs
re-outputting an artifact others read raw, runs written over several
batches) are written through the store's real batch writer into a real
DuckDB file, or inserted unlabelled and labelled afterwards as migrations,
shard merges and the doctor do; then both walks run from every artifact.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_lineage_edges import _chain, _step

from _support import random_lineage_graph as _random_graph
from consist import Tracker
from consist.core.store.batch import freeze, write_batch
from consist.core.store.lineage_groups import label_unlabelled, run_label
from consist.core.store.lineage_store import (
    _WALK_NODES,
    _WALK_NODES_BOUNDED,
    _WALK_NODES_BOUNDED_GROUPED,
    _WALK_NODES_GROUPED,
    link_nodes,
)
from consist.core.store.schema import LATEST_VERSION, apply_migrations
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run


def _store(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    assert apply_migrations(con, lambda: "2026-12-05 00:00:00") == LATEST_VERSION
    return con


def _write(con: Any, graph: list, seed: int) -> None:
    """Write the graph through ``write_batch`` in random batches, some runs in two writes."""
    rng = random.Random(seed + 1)
    pending: list[Any] = []
    later: list[Any] = []
    for run_id, inputs, outputs in graph:
        run = Run(id=run_id, model_name="m", status="completed")
        links = [
            (Artifact(id=a, key=f"in{i}", uri=f"/d/{a}"), "input") for i, a in enumerate(inputs)
        ]
        links += [
            (Artifact(id=a, key=f"out{i}", uri=f"/d/{a}", run_id=run_id), "output")
            for i, a in enumerate(outputs)
        ]
        if len(links) > 1 and rng.random() < 0.3:  # inputs now, outputs in a later batch
            cut = rng.randrange(1, len(links))
            pending.append(freeze(ConsistRecord(run=run), links[:cut], [], with_identity=False))
            later.append(freeze(ConsistRecord(run=run), links[cut:], [], with_identity=False))
        else:
            pending.append(freeze(ConsistRecord(run=run), links, [], with_identity=False))
        if rng.random() < 0.3:
            write_batch(con, pending)
            pending = later if rng.random() < 0.5 else []
            later = [] if pending is later else later
    write_batch(con, pending + later)


def _nodes(con: Any, sql: str, root: uuid.UUID, last_hop: int | None = None) -> set:
    params: dict[str, Any] = {"root": str(root)}
    if last_hop is not None:
        params["last_hop"] = last_hop
    return set(con.execute(sql, params).fetchall())


def _assert_walks_agree(con: Any, graph: list) -> int:
    assert con.execute(
        "SELECT count(*) FROM run_artifact_link WHERE lineage_group IS NULL"
    ).fetchone() == (0,)
    # Links carry roots only, one per run, and a run's own label leads to it.
    assert con.execute(
        "SELECT count(*) FROM run_artifact_link l JOIN lineage_group_alias a "
        "ON a.grp = l.lineage_group"
    ).fetchone() == (0,)
    by_run = con.execute(
        "SELECT run_id, list(DISTINCT lineage_group) FROM run_artifact_link GROUP BY run_id"
    ).fetchall()
    aliases = dict(con.execute("SELECT grp, root FROM lineage_group_alias").fetchall())
    for run_id, labels in by_run:
        assert labels == [aliases.get(run_label(run_id), run_label(run_id))], run_id
    artifacts = {a for _, ins, outs in graph for a in ins + outs}
    longest = 0
    for artifact in artifacts:
        whole = _nodes(con, _WALK_NODES, artifact)
        assert _nodes(con, _WALK_NODES_GROUPED, artifact) == whole, artifact
        longest = max(longest, len(whole))
        for hops in (2, 6):
            assert _nodes(con, _WALK_NODES_BOUNDED_GROUPED, artifact, hops) == _nodes(
                con, _WALK_NODES_BOUNDED, artifact, hops
            )
    return longest


@pytest.mark.parametrize("seed", range(12))
def test_the_group_walk_reaches_what_the_whole_table_walk_reaches(
    tmp_path: Path, seed: int
) -> None:
    graph = _random_graph(seed, runs=60)
    con = _store(tmp_path / "store.duckdb")
    _write(con, graph, seed)
    longest = _assert_walks_agree(con, graph)
    assert longest > 5  # the graphs do have depth
    groups = con.execute(
        "SELECT count(DISTINCT coalesce(a.root, l.lineage_group)) FROM run_artifact_link l "
        "LEFT JOIN lineage_group_alias a ON a.grp = l.lineage_group"
    ).fetchone()[0]
    assert groups >= 1
    # The alias table stays flat: every alias points at a root.
    assert con.execute(
        "SELECT count(*) FROM lineage_group_alias a JOIN lineage_group_alias b ON b.grp = a.root"
    ).fetchone() == (0,)


@pytest.mark.parametrize("seed", range(6))
def test_links_labelled_afterwards_agree_too(tmp_path: Path, seed: int) -> None:
    """As after migration 10, a shard merge or the doctor: links inserted without labels."""
    graph = _random_graph(seed, runs=60)
    con = _store(tmp_path / "store.duckdb")
    _write(con, graph, seed)
    # Unlabel part of the store (all of it for even seeds), then label it again.
    share = 1.0 if seed % 2 == 0 else 0.4
    con.execute(
        "UPDATE run_artifact_link SET lineage_group = NULL WHERE hash(run_id) % 100 < ?",
        [int(share * 100)],
    )
    if share == 1.0:
        con.execute("DELETE FROM lineage_group_alias")
    assert label_unlabelled(con) > 0
    _assert_walks_agree(con, graph)
    assert label_unlabelled(con) == 0


def test_a_sweep_over_one_raw_input_stays_many_small_groups(tmp_path: Path) -> None:
    con = _store(tmp_path / "store.duckdb")
    network = uuid.uuid4()
    graph = [(f"sweep_{k}", [network], [uuid.uuid4()]) for k in range(30)]
    producer = ("prep", [], [uuid.uuid4()])
    chain = [producer]
    for k in range(10):
        chain.append((f"year_{k}", [chain[-1][2][0]], [uuid.uuid4()]))
    _write(con, graph + chain, seed=3)
    labels = dict(con.execute("SELECT grp, root FROM lineage_group_alias").fetchall())

    def group(run_id: str) -> int:
        label = run_label(run_id)
        return labels.get(label, label)

    assert len({group(f"sweep_{k}") for k in range(30)}) == 30
    assert len({group(run_id) for run_id, _, _ in chain}) == 1
    assert _assert_walks_agree(con, graph + chain) == 22  # the chain: 11 artifacts, 11 runs


def _depth(lineage: dict) -> int:
    depth, node = 0, lineage
    while node is not None:
        depth += 1
        inputs = (node.get("producing_run") or {}).get("inputs") or []
        node = inputs[0] if inputs else None
    return depth


def test_a_hand_written_link_makes_lineage_walk_everything_until_the_doctor_labels_it(
    tmp_path: Path,
) -> None:
    """A link without a group must not hide a node: lineage falls back to the whole table."""
    db = tmp_path / "provenance.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    first = _chain(tracker, 3)
    second = _chain(tracker, 1)  # k=0 again: a cache hit of the first chain's head
    assert second[0].cache_hit
    solo = tracker.run(_step, name="solo", config={"k": 99}, outputs=["out"])
    tracker.close()
    # By hand: solo also read the last output of the first chain.
    con = duckdb.connect(str(db))
    link = first[-1].outputs["out"].id
    con.execute(
        "INSERT INTO run_artifact_link (run_id, artifact_id, direction, key, src, dst) "
        "VALUES (?, ?, 'input', 'extra', ?, ?)",
        [solo.run.id, str(link), *link_nodes(solo.run.id, link, "input")],
    )
    con.close()
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    lineage = tracker.get_artifact_lineage(solo.outputs["out"])
    inputs = lineage["producing_run"]["inputs"]
    assert [(i["input_key"], i["id"]) for i in inputs] == [("extra", str(link))]
    assert _depth(lineage["producing_run"]["inputs"][0]) == 3
    report = tracker.doctor(fix=True)
    assert [f.kind for f in report.findings] == ["link_without_group"]
    assert report.findings[0].fixed
    assert tracker.doctor().findings == []
    again = tracker.get_artifact_lineage(solo.outputs["out"])
    assert again == lineage
    assert _depth(again["producing_run"]["inputs"][0]) == 3
    tracker.close()


def test_migration_10_labels_the_links_of_a_version_9_store(tmp_path: Path) -> None:
    db = tmp_path / "provenance.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    results = _chain(tracker, 6)
    before = tracker.get_artifact_lineage(results[-1].outputs["out"])
    tracker.close()
    # Back to version 9: no labels, no alias table (the column itself cannot be
    # dropped from an indexed DuckDB table; the migration adds it only if missing).
    con = duckdb.connect(str(db))
    con.execute("UPDATE run_artifact_link SET lineage_group = NULL")
    con.execute("DROP TABLE lineage_group_alias")
    con.execute("DELETE FROM schema_version WHERE version >= 10")
    con.close()
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    assert tracker.store.schema_version() == LATEST_VERSION
    tracker.close()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute(
        "SELECT count(*) FROM run_artifact_link WHERE lineage_group IS NULL"
    ).fetchone() == (0,)
    roots = con.execute(
        "SELECT DISTINCT coalesce(a.root, l.lineage_group) FROM run_artifact_link l "
        "LEFT JOIN lineage_group_alias a ON a.grp = l.lineage_group"
    ).fetchall()
    con.close()
    assert len(roots) == 1  # one chain: one group
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    assert tracker.get_artifact_lineage(results[-1].outputs["out"]) == before
    tracker.close()
