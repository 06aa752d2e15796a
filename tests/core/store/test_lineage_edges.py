"""Lineage edges (schema migration 7): each link also stored as ``src -> dst`` UUID nodes.

An output link is an edge from the artifact to its run's node, an input link
from the run's node to the artifact. Every writer fills them (a run's links,
a replayed journal, a merged shard, one written before the migration), the
migration fills the links of an older store, and lineage walks them: real
DuckDB files, real runs writing real files under ``tmp_path``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pytest

import consist
from consist import Tracker
from consist.core.store.compaction import rebuild_file
from consist.core.store.lineage_store import (
    _SQL_BOUNDED,
    _SQL_UNBOUNDED,
    LINK_DST_SQL,
    LINK_SRC_SQL,
    _bounded_rows,
    _unbounded_rows,
    link_nodes,
    run_node,
)
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_DDL


def _step(config: dict, upstream: Path | None = None) -> Path:
    out = consist.output_path("out", ext="txt")
    out.write_text(f"{config['k']}\n" + (upstream.read_text() if upstream is not None else ""))
    return out


def _chain(tracker: Tracker, n: int, first: Path | None = None) -> list:
    results, prev = [], first
    for k in range(n):
        result = tracker.run(
            _step,
            name="step",
            config={"k": k},
            inputs={"upstream": prev} if prev is not None else None,
            outputs=["out"],
        )
        results.append(result)
        prev = result.outputs["out"]
    return results


def _links(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT run_id, artifact_id, direction, src, dst FROM run_artifact_link ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def _assert_nodes(links: list[tuple]) -> None:
    assert links
    for run_id, artifact_id, direction, src, dst in links:
        assert (str(src), str(dst)) == link_nodes(run_id, artifact_id, direction), run_id


@pytest.mark.parametrize("run_id", ["plain_20261205T000000_abc", "ünïcødé run/✓", ""])
def test_run_node_is_the_sql_md5_uuid(run_id: str) -> None:
    con = duckdb.connect()
    (sql,) = con.execute("SELECT CAST(md5(?) AS UUID)", [run_id]).fetchone()
    assert sql == run_node(run_id)
    artifact = uuid.uuid4()
    assert link_nodes(run_id, artifact, "output") == (str(artifact), str(run_node(run_id)))
    assert link_nodes(run_id, str(artifact), "input") == (str(run_node(run_id)), str(artifact))


def test_runs_write_their_links_as_edges(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    seed = tmp_path / "seed.txt"
    seed.write_text("seed\n")
    results = _chain(tracker, 3, first=seed)
    with tracker.start_run("manual", "manual"):  # start_run / log_* writes too
        tracker.log_input(results[-1].outputs["out"], key="last")
        tracker.log_output(seed, key="again")
    tracker.close()
    links = _links(db)
    assert len(links) == 3 * 2 + 2
    _assert_nodes(links)


def test_journal_replay_and_purge_keep_edges_with_their_links(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    results = _chain(tracker, 3)
    tracker.close()
    db.unlink()
    rebuild_file(db, [tmp_path / "runs"])  # replayed from the journal
    links = _links(db)
    assert len(links) == 5
    _assert_nodes(links)

    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    last = results[-1]
    tracker.purge_run(last.run.id, dry_run=False)
    graph = tracker.store.lineage_store().upstream(results[1].outputs["out"].id)
    assert graph is not None and set(graph.runs) == {results[0].run.id, results[1].run.id}
    tracker.close()
    links = _links(db)
    assert {r[0] for r in links} == {results[0].run.id, results[1].run.id}
    assert str(run_node(last.run.id)) not in {str(r[3]) for r in links} | {str(r[4]) for r in links}


def _store_at_version_6(db: Path) -> dict[str, str]:
    """A store as Consist wrote it before migration 7: a 3-run chain, links without nodes."""
    con = duckdb.connect(str(db))
    con.execute(SCHEMA_VERSION_DDL)
    for migration in MIGRATIONS[:6]:
        for statement in migration.statements:
            con.execute(statement)
        con.execute(
            "INSERT INTO schema_version VALUES (?, ?, now())",
            [migration.version, migration.description],
        )
    arts = {f"a{k}": str(uuid.uuid4()) for k in range(3)}
    for k in range(3):
        run_id = f"old_run_{k}"
        con.execute(
            "INSERT INTO run (id, model_name, status, tags, meta, created_at) "
            "VALUES (?, 'legacy', 'completed', [], '{}', now())",
            [run_id],
        )
        con.execute(
            "INSERT INTO artifact (id, key, uri, driver, run_id, created_at) "
            "VALUES (?, ?, ?, 'txt', ?, now())",
            [arts[f"a{k}"], f"a{k}", f"./a{k}.txt", run_id],
        )
        con.execute(
            "INSERT INTO run_artifact_link VALUES (?, ?, 'output', ?, '{}')",
            [run_id, arts[f"a{k}"], f"a{k}"],
        )
        if k:
            con.execute(
                "INSERT INTO run_artifact_link VALUES (?, ?, 'input', 'upstream', '{}')",
                [run_id, arts[f"a{k - 1}"]],
            )
    con.close()
    return arts


def test_migrations_7_and_8_fill_and_index_the_links_of_an_older_store(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    arts = _store_at_version_6(db)
    con = duckdb.connect(str(db))
    assert "src" not in {r[0] for r in con.execute("DESCRIBE run_artifact_link").fetchall()}
    con.close()

    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    assert tracker.store.schema_version() == LATEST_VERSION
    tree = tracker.get_artifact_lineage(arts["a2"])
    assert tree["producing_run"]["id"] == "old_run_2"
    (middle,) = tree["producing_run"]["inputs"]
    assert middle["id"] == arts["a1"] and middle["producing_run"]["id"] == "old_run_1"
    (first,) = middle["producing_run"]["inputs"]
    assert first["producing_run"]["id"] == "old_run_0"
    assert tracker.get_run_lineage("old_run_1")["inputs"][0]["id"] == arts["a0"]
    # New runs beside the migrated ones.
    _chain(tracker, 2)
    with tracker.store.connections.connection() as con:
        for root in arts.values():
            expected = con.execute(_SQL_UNBOUNDED, {"root": root}).fetchall()
            assert sorted(map(repr, _unbounded_rows(con, root))) == sorted(map(repr, expected))
    tracker.close()
    links = _links(db)
    assert len(links) == 5 + 3
    _assert_nodes(links)
    con = duckdb.connect(str(db), read_only=True)
    indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    con.close()
    assert "link_src_idx" in indexes


def _drop_link_nodes(store_file: Path) -> None:
    """Rewrite a shard's link table in the layout before migration 7 (no src/dst)."""
    con = duckdb.connect(str(store_file))
    con.execute(
        "CREATE TABLE old_links AS "
        "SELECT run_id, artifact_id, direction, key, meta FROM run_artifact_link"
    )
    con.execute("DROP TABLE run_artifact_link")
    (create,) = [
        s for s in MIGRATIONS[0].statements if "TABLE IF NOT EXISTS run_artifact_link" in s
    ]
    con.execute(create)
    con.execute("INSERT INTO run_artifact_link SELECT * FROM old_links")
    con.execute("DROP TABLE old_links")
    con.close()


def test_merging_a_shard_written_before_migration_7_fills_its_edges(tmp_path: Path) -> None:
    source = Tracker(run_dir=tmp_path / "a" / "runs", db_path=tmp_path / "a" / "p.duckdb")
    results = _chain(source, 3)
    shard = tmp_path / "shard"
    source.export_runs(results[-1].run.id, shard)
    source.close()
    _drop_link_nodes(shard / "store.duckdb")
    manifest = json.loads((shard / "shard.json").read_text())
    assert manifest["run_ids"]

    db = tmp_path / "b" / "p.duckdb"
    target = Tracker(run_dir=tmp_path / "b" / "runs", db_path=db)
    merged = target.merge_store(shard)
    assert merged.inserted["run_artifact_link"] == 5
    tree = target.get_artifact_lineage(results[-1].outputs["out"].id)
    depth, node = 0, tree
    while node is not None and node.get("producing_run"):
        depth += 1
        inputs = node["producing_run"]["inputs"]
        node = inputs[0] if inputs else None
    assert depth == 3
    target.close()
    _assert_nodes(_links(db))


def test_the_sql_pair_matches_the_python_pair(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE run_artifact_link (run_id VARCHAR, artifact_id UUID, direction VARCHAR, "
        "src UUID, dst UUID)"
    )
    rows = [("r1", str(uuid.uuid4()), "output"), ("r1", str(uuid.uuid4()), "input")]
    con.executemany("INSERT INTO run_artifact_link VALUES (?, ?, ?, NULL, NULL)", rows)
    con.execute(f"UPDATE run_artifact_link SET src = {LINK_SRC_SQL}, dst = {LINK_DST_SQL}")
    _assert_nodes(
        con.execute(
            "SELECT run_id, artifact_id, direction, src, dst FROM run_artifact_link"
        ).fetchall()
    )


def test_doctor_finds_and_fills_links_without_edges(tmp_path: Path) -> None:
    """Links written without src/dst (by hand, or by a Consist older than schema 7)."""
    db = tmp_path / "p.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    first, _, third = _chain(tracker, 3)
    tracker.close()
    con = duckdb.connect(str(db))  # run 3 also read run 1's output, recorded by hand
    con.execute(
        "INSERT INTO run_artifact_link (run_id, artifact_id, direction, key, meta) "
        "VALUES (?, ?, 'input', 'by_hand', '{}')",
        [third.run.id, str(first.outputs["out"].id)],
    )
    con.execute(
        "UPDATE run_artifact_link SET src = NULL WHERE run_id = ? AND direction = 'output'",
        [first.run.id],
    )
    con.close()

    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    report = tracker.doctor()
    (finding,) = [f for f in report.findings if f.kind == "link_without_edge"]
    assert finding.fixable and "2 link row(s)" in finding.detail
    root = third.outputs["out"].id
    (upstream,) = tracker.get_artifact_lineage(root)["producing_run"]["inputs"]  # not walked
    assert upstream["producing_run"]["inputs"][0]["producing_run"] is None
    fixed = tracker.doctor(fix=True)
    assert fixed.healthy, fixed.as_dict()
    assert tracker.doctor().findings == []
    inputs = tracker.get_artifact_lineage(root)["producing_run"]["inputs"]
    by_key = {n["input_key"]: n for n in inputs}
    assert set(by_key) == {"upstream", "by_hand"}
    assert by_key["by_hand"]["producing_run"]["id"] == first.run.id
    assert by_key["upstream"]["producing_run"]["inputs"][0]["producing_run"]["id"] == first.run.id
    tracker.close()
    _assert_nodes(_links(db))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_walks_return_the_rows_of_the_one_statement_forms(tmp_path: Path) -> None:
    """Unbounded and bounded walks over the edges equal the joins over the link columns.

    Shapes: a chain, a diamond, a self-cycle, a two-run cycle, a run without
    inputs, a cache hit, an input link to a missing artifact and an output
    link of a missing run.
    """
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    raw = _write(tmp_path / "raw.txt", "raw\n")
    chain = _chain(tracker, 4, first=raw)
    _chain(tracker, 1, first=raw)  # the same step again: a cache hit of the first link
    with tracker.start_run("up_run", "up"):
        up = tracker.log_output(_write(tmp_path / "w" / "up.txt", "up"), key="up")
    with tracker.start_run("left_run", "side"):
        tracker.log_input(up, key="up")
        left = tracker.log_output(_write(tmp_path / "w" / "l.txt", "l"), key="left")
    with tracker.start_run("right_run", "side"):
        tracker.log_input(up, key="up")
        right = tracker.log_output(_write(tmp_path / "w" / "r.txt", "r"), key="right")
    with tracker.start_run("merge_run", "merge"):
        tracker.log_input(left, key="a_left")
        tracker.log_input(right, key="b_right")
        merged = tracker.log_output(_write(tmp_path / "w" / "m.txt", "m"), key="merged")
    with tracker.start_run("edit_run", "edit"):  # a self-cycle
        state = tracker.log_output(_write(tmp_path / "w" / "s.txt", "s"), key="state")
        tracker.log_input(state, key="previous")
    with tracker.start_run("a_run", "a"):
        a = tracker.log_output(_write(tmp_path / "w" / "a.txt", "a"), key="a")
    with tracker.start_run("b_run", "b"):
        tracker.log_input(a, key="a_in")
        b = tracker.log_output(_write(tmp_path / "w" / "b.txt", "b"), key="b")
    tracker.store.flush()
    columns = "run_artifact_link (run_id, artifact_id, direction, key, meta, src, dst)"
    extra = [
        ("a_run", str(b.id), "input", "b_in"),  # closes the two-run cycle
        ("merge_run", str(uuid.uuid4()), "input", "ghost"),  # no such artifact
        ("no_such_run", str(up.id), "output", "up"),  # no such run
    ]
    with tracker.store.connections.transaction() as con:
        for run_id, art, direction, key in extra:
            con.execute(
                f"INSERT INTO {columns} VALUES (?, ?, ?, ?, NULL, ?, ?)",
                [run_id, art, direction, key, *link_nodes(run_id, art, direction)],
            )
    raw_id = tracker.get_artifacts_for_run(chain[0].run.id).inputs["upstream"].id
    roots = [merged.id, state.id, b.id, up.id, chain[-1].outputs["out"].id, raw_id, uuid.uuid4()]
    with tracker.store.connections.connection() as con:
        for root in roots:
            root_id = str(root)
            expected = con.execute(_SQL_UNBOUNDED, {"root": root_id}).fetchall()
            assert sorted(map(repr, _unbounded_rows(con, root_id))) == sorted(
                map(repr, expected)
            ), root_id
            for depth in (0, 1, 2, 3, 5):
                params = {"root": root_id, "max_depth": depth}
                expected = con.execute(_SQL_BOUNDED, params).fetchall()
                got = _bounded_rows(con, root_id, depth)
                assert sorted(map(repr, got)) == sorted(map(repr, expected)), (root_id, depth)
    tracker.close()


def test_compaction_keeps_edges_and_their_index(tmp_path: Path) -> None:
    db = tmp_path / "p.duckdb"
    tracker = Tracker(run_dir=tmp_path / "runs", db_path=db)
    chain = _chain(tracker, 4)
    tracker.purge_run(chain[-1].run.id, dry_run=False)  # something for compaction to give back
    root = chain[-2].outputs["out"].id
    before = tracker.get_artifact_lineage(root)
    tracker.compact_store()
    assert tracker.get_artifact_lineage(root) == before
    tracker.close()
    _assert_nodes(_links(db))
    con = duckdb.connect(str(db), read_only=True)
    indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    con.close()
    assert "link_src_idx" in indexes
