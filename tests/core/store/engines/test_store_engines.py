"""The metadata store's domain verbs give the same answers on DuckDB and PostgreSQL.

Each test runs once per engine (``store_engine``): real run snapshots,
recorded by real functions writing real files, are written with
``sync_record`` and read back through the store's query, lineage and facet
methods. PostgreSQL runs on the session's throwaway server.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS


def _write(store, records) -> None:
    for record in records:
        store.sync_record(record, first=True)


def test_migrations_are_numbered_as_in_duckdb(store_engine) -> None:
    store = store_engine()
    assert store.schema_version() == LATEST_VERSION
    with store.connections.connection() as con:
        rows = con.execute("SELECT version, description FROM schema_version ORDER BY 1").fetchall()
    assert rows == [(m.version, m.description) for m in MIGRATIONS]
    # Opening again (another tracker) migrates nothing.
    assert store_engine().ensure_schema() == LATEST_VERSION
    with store.connections.connection() as con:
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_record_a_run_and_read_it_back(store_engine, recorded) -> None:
    records = recorded(4)
    store = store_engine()
    _write(store, records)
    first, last = records[0], records[-1]

    got = store.get_run(first.run.id)
    assert got is not None
    assert got.model_dump() == first.run.model_dump()
    assert got.created_at.tzinfo is UTC
    assert store.get_run("no-such-run") is None
    assert store.run_exists(last.run.id)
    assert store.count_runs() == 4
    assert store.get_identity_manifest(first.run.id) == first.identity
    assert store.table_counts() == {
        "run": 4,
        "artifact": 4,
        "run_artifact_link": 7,  # 4 outputs + 3 chained inputs
        "content_identity": 4,
        "stat_cache": 0,
    }

    ids = [r.run.id for r in records]
    assert [r.id for r in store.find_runs()] == ids[::-1]  # newest first
    assert [r.id for r in store.find_runs(tags=["all", "even"])] == [ids[2], ids[0]]
    assert [r.id for r in store.find_runs(model="maker", year=2021)] == [ids[3], ids[1]]
    assert [r.id for r in store.query_runs({}, tags_any=["odd", "none"])] == [ids[3], ids[1]]
    assert store.find_runs(tags=["all", "missing"]) == []
    assert [r.id for r in store.find_runs(limit=2)] == [ids[3], ids[2]]
    since = records[2].run.created_at
    assert [r.id for r in store.find_runs(since=since)] == [ids[3], ids[2]]
    # find_latest_run's query: the newest of a window, ordered by iteration then time.
    latest = store.query_runs({"model": "maker"}, order="latest_iteration", limit=1, window=10)
    assert [r.id for r in latest] == [ids[3]]

    history = store.history_rows(3, None)
    assert [row[0] for row in history] == [ids[3], ids[2], ids[1]]
    assert history[0][7] == ["all", "odd"]
    assert history[0][11] is False  # not a cache hit
    assert [r.id for r in store.search_runs("maker", None)] == ids[::-1]
    assert [r.id for r in store.search_runs("ODD", None)] == [ids[3], ids[1]]  # a tag matches
    counts = store.store_counts()
    assert counts["by_model"] == [("maker", "completed", 4, 0)]
    assert counts["artifacts"] == 4 and counts["links"] == 7 and counts["scenarios"] == 0


def test_artifacts_and_cache_lookups(store_engine, recorded) -> None:
    records = recorded(3)
    store = store_engine()
    _write(store, records)
    second = records[1]
    output = second.outputs[0]

    pairs = store.get_run_artifacts(second.run.id)
    assert [(a.id, d) for a, d in pairs] == [
        (records[0].outputs[0].id, "input"),
        (output.id, "output"),
    ]
    assert pairs[0][0].key == "prev"  # the key this run logged the input under
    assert store.get_artifact_by_id(output.id).hash == output.hash
    assert store.get_artifact_by_key("table", run_id=second.run.id).id == output.id
    assert store.get_artifact_by_uri(output.uri).id == output.id
    assert [a.id for a in store.artifacts_with_content(output.content_id)] == [output.id]

    candidates = store.find_cache_candidates(second.run.signature)
    assert [(run.id, [a.id for a in outs]) for run, outs in candidates] == [
        (second.run.id, [output.id])
    ]
    assert store.find_cache_candidates("blake3:none") == []
    assert store.find_completed_run(second.run.signature).id == second.run.id
    nearest = store.nearest_completed_run("maker", exclude_id=records[2].run.id)
    assert nearest is not None and nearest[0].id == second.run.id
    assert nearest[1] == second.identity
    assert store.producer_signatures([output.id]) == {output.id: second.run.signature}
    assert store.latest_outputs_at([output.uri, "/nowhere"]) == {output.uri: output}
    versions = store.run_versions([second.run.id, "missing"])
    assert versions == {second.run.id: ("completed", second.updated_ns)}


def test_an_older_snapshot_never_overwrites_a_newer_one(store_engine, recorded) -> None:
    (record,) = recorded(1)
    store = store_engine()
    store.sync_record(record, first=True)
    older = record.model_copy(deep=True)
    older.updated_ns = record.updated_ns - 1
    older.run.status = "running"
    store.sync_record(older)
    assert store.get_run(record.run.id).status == "completed"
    newer = record.model_copy(deep=True)
    newer.updated_ns = record.updated_ns + 1
    newer.run.description = "edited"
    store.sync_record(newer)
    assert store.get_run(record.run.id).description == "edited"
    assert store.count_runs() == 1


def test_a_second_store_sees_a_run_as_soon_as_it_is_written(store_engine, recorded) -> None:
    (record,) = recorded(1)
    writer = store_engine()
    reader = store_engine()  # another tracker: its own connection manager (or file handle)
    assert reader.find_cache_candidates(record.run.signature) == []
    writer.sync_record(record, first=True)
    found = reader.find_cache_candidates(record.run.signature)
    assert [run.id for run, _ in found] == [record.run.id]


def test_lineage(store_engine, recorded) -> None:
    records = recorded(3)
    store = store_engine()
    _write(store, records)
    lineage = store.lineage_store()
    root = records[2].outputs[0].id
    graph = lineage.upstream(root)
    assert graph is not None
    assert set(graph.artifacts) == {r.outputs[0].id for r in records}
    assert graph.producer == {r.outputs[0].id: r.run.id for r in records}
    assert graph.inputs[records[2].run.id] == ((records[1].outputs[0].id, "prev"),)
    assert set(lineage.upstream(root, max_depth=1).runs) == {records[2].run.id}
    bounded = lineage.upstream(root, max_depth=2)
    assert set(bounded.runs) == {records[2].run.id, records[1].run.id}
    inputs = lineage.run_inputs(records[1].run.id)
    assert inputs.inputs == ((records[0].outputs[0].id, "prev"),)
    assert inputs.run.tags == ("all", "odd")
    assert lineage.upstream("00000000-0000-0000-0000-000000000000") is None


def test_facets(store_engine, recorded) -> None:
    records = recorded(3)
    store = store_engine()
    _write(store, records)
    ids = [r.run.id for r in records]
    facet = store.facets.run_facet(ids[1])
    assert facet is not None and facet.facet == {"x": 1, "scenario": {"name": "s1"}}
    assert [kv.key for kv in store.facets.run_kv(ids[1])] == ["scenario.name", "x"]
    assert store.facet_values(ids, "x") == {ids[0]: 0, ids[1]: 1, ids[2]: 2}
    found = store.facets.find_runs_by_kv(
        namespace="maker", key="scenario.name", value_type="str", value_str="s0"
    )
    assert [r.id for r in found] == [ids[2], ids[0]]
    values = store.facets.config_values(ids, limit_per_run=1)
    assert values == {i: {"scenario.name": f"s{n % 2}"} for n, i in enumerate(ids)}
    many = store.facets.config_values([*ids, *(f"absent{i}" for i in range(20))], keys=["x"])
    assert many == {i: {"x": n} for n, i in enumerate(ids)}
    assert store.facets.get_value(ids[2], "x") == (True, 2)


def test_stat_cache_entries_round_trip(store_engine, tmp_path) -> None:
    from consist.core.identity.hashing import StatCacheEntry, StatKey

    store = store_engine()
    big = 2**64 - 5  # an unsigned 64-bit inode number fits
    entry = StatCacheEntry(
        path=str(tmp_path / "f"),
        key=StatKey(dev=7, ino=big, size=10, mtime_ns=1, ctime_ns=2),
        digest="blake3:abc",
        recorded_ns=3,
    )
    store.put_many([entry])
    got = store.get_many([entry.path, "/other"])
    assert got == {entry.path: entry}
    assert type(got[entry.path].key.ino) is int


def test_read_only_store_refuses_writes(store_engine, recorded) -> None:
    (record,) = recorded(1)
    writer = store_engine()
    writer.sync_record(record, first=True)
    writer.close()  # DuckDB: one process opens a file read-only or read-write, not both
    reader = store_engine(read_only=True)
    assert reader.get_run(record.run.id) is not None
    with pytest.raises(ReadOnlyStoreError, match="read_only"):
        reader.sync_record(record)


def test_run_query_text(store_engine, recorded) -> None:
    records = recorded(2)
    store = store_engine()
    _write(store, records)
    rows = store.run_query("SELECT id, status FROM run ORDER BY created_at")
    assert [tuple(r) for r in rows] == [(r.run.id, "completed") for r in records]


def test_timestamps_are_stored_as_utc(store_engine, recorded) -> None:
    (record,) = recorded(1)
    store = store_engine()
    store.sync_record(record, first=True)
    got = store.get_run(record.run.id)
    assert got.created_at == record.run.created_at
    assert got.created_at <= datetime.now(UTC)


def test_runs_with_values_limited_per_run(store_engine, recorded) -> None:
    """diff_runs' query: a QUALIFY inside a joined subquery."""
    records = recorded(2)
    store = store_engine()
    _write(store, records)
    ids = [r.run.id for r in records]
    got = store.facets.runs_with_values([*ids, "absent"], limit_per_run=1)
    assert got == {i: ("maker", {"scenario.name": f"s{n}"}) for n, i in enumerate(ids)}


def test_run_query_returns_records(store_engine, recorded) -> None:
    from sqlmodel import select

    from consist.models.tables import ArtifactTable, RunTable

    records = recorded(2)
    store = store_engine()
    _write(store, records)
    runs = store.run_query(select(RunTable).order_by(RunTable.created_at))
    assert [r.model_dump() for r in runs] == [r.run.model_dump() for r in records]
    artifacts = store.run_query(select(ArtifactTable).where(ArtifactTable.key == "table"))
    assert {a.id for a in artifacts} == {r.outputs[0].id for r in records}
