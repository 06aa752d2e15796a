"""Store maintenance with a PostgreSQL store (db_url): purge, report, doctor, compaction, shards.

Every test runs against the session's throwaway PostgreSQL server (a fresh
database per test) and reads the server's tables directly to check what the
Tracker says it did. Where the outcome must match DuckDB's, the same history
is built on a DuckDB store too and the two compared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from _support import make_model_project
from consist import Tracker
from consist.core.store.purge import PurgeRefusedError

# Tables a run's rows live in (besides the artifacts it owns).
_RUN_TABLES = ("run", "run_artifact_link", "run_facet", "run_config_kv")


def prepare(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    return households.assign(persons=households["size"] * scale)


def demand(persons: pd.DataFrame, survey: pd.DataFrame, year: int = 2030) -> pd.DataFrame:
    return persons.assign(trips=persons["persons"] * (year - 2000) + len(survey))


def pg_tracker(repo: Path, url: str, **kwargs: Any) -> Tracker:
    return Tracker(repo / "runs", db_url=url, project_root=repo, **kwargs)


def duck_tracker(repo: Path, **kwargs: Any) -> Tracker:
    return Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo, **kwargs)


def build_history(tracker: Tracker, repo: Path) -> dict[str, str]:
    """survey (artifact facet, schema) and prep (facet) -> demand; a hit of prep; another run."""
    households = repo / "data" / "households.csv"
    with tracker.start_run("survey_wave3", "survey"):
        out = tracker.run_artifact_dir() / "survey.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("hh_id,answer\n1,yes\n2,no\n")
        survey = tracker.log_output(
            out, key="survey", facet={"wave": 3}, facet_index=True, profile_file_schema=True
        )
    common: dict[str, Any] = {
        "fn": prepare,
        "name": "prep",
        "config": {"scale": 1},
        "facet": {"scale": 1, "region": "north"},
        "inputs": {"households": households},
        "outputs": ["persons"],
    }
    prep = tracker.run(**common)
    hit = tracker.run(**common)
    assert hit.cache_hit
    dem = tracker.run(
        fn=demand,
        name="demand",
        config={"year": 2030},
        facet={"year": 2030},
        inputs={"persons": prep.outputs["persons"], "survey": survey},
        outputs=["trips"],
    )
    other = tracker.run(
        fn=prepare,
        name="other",
        config={"scale": 5},
        inputs={"households": households},
        outputs=["persons"],
    )
    return {
        "survey": "survey_wave3",
        "prep": prep.run.id,
        "hit": hit.run.id,
        "demand": dem.run.id,
        "other": other.run.id,
    }


@contextmanager
def server(url: str) -> Iterator[psycopg.Connection]:
    """A direct session on the test database (autocommit), to check what the Tracker did."""
    con = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    try:
        yield con
    finally:
        con.close()


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with server(url) as con:
        return con.execute(sql, params).fetchall()


def run_rows(url: str, run_ids: list[str]) -> dict[str, int]:
    """Rows of ``run_ids`` per table, with their owned artifacts' rows and their lineage edges."""
    counts = {
        table: query(
            url,
            f"SELECT count(*) FROM {table} WHERE {'id' if table == 'run' else 'run_id'} = ANY(%s)",
            [run_ids],
        )[0][0]
        for table in _RUN_TABLES
    }
    owned = "SELECT id FROM artifact WHERE run_id = ANY(%s)"
    counts["artifact"] = query(url, f"SELECT count(*) FROM ({owned}) a", [run_ids])[0][0]
    for table in ("artifact_kv", "artifact_facet", "artifact_schema"):
        counts[table] = query(
            url, f"SELECT count(*) FROM {table} WHERE artifact_id IN ({owned})", [run_ids]
        )[0][0]
    # A run's node in the lineage graph is md5(run_id) as a UUID, on either end of an edge.
    counts["edges"] = query(
        url,
        "SELECT count(*) FROM run_artifact_link WHERE src IN (SELECT md5(r)::uuid FROM "
        "unnest(%s::text[]) r) OR dst IN (SELECT md5(r)::uuid FROM unnest(%s::text[]) r)",
        [run_ids, run_ids],
    )[0][0]
    return counts


def table_counts(url: str) -> dict[str, int]:
    names = [
        r[0]
        for r in query(
            url,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
    ]
    return {n: query(url, f'SELECT count(*) FROM "{n}"')[0][0] for n in sorted(names)}


@pytest.fixture
def history(pg_url: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = make_model_project(tmp_path / "source")
    with closing(pg_tracker(repo, pg_url)) as tracker:
        return repo, build_history(tracker, repo)


# -- purge ------------------------------------------------------------------------------


def test_purge_dry_run_refusal_and_cascade(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    repo, ids = history
    households = repo / "data" / "households.csv"
    purged = [ids["prep"], ids["hit"], ids["demand"]]
    kept = [ids["other"], ids["survey"]]
    before = table_counts(pg_url)
    kept_before = run_rows(pg_url, kept)
    assert all(v for t, v in run_rows(pg_url, purged).items() if not t.startswith("artifact_"))
    with closing(pg_tracker(repo, pg_url)) as tracker:
        plan = tracker.purge_run(ids["prep"])
        assert not plan.executed and plan.blocked
        reasons = {r.id: r.reason for r in plan.blocked_by}
        assert reasons == {
            ids["demand"]: f"consumes persons of {ids['prep']}",
            ids["hit"]: f"cache hit handed persons of {ids['prep']}",
        }
        with pytest.raises(PurgeRefusedError, match="--cascade"):
            tracker.purge_run(ids["prep"], dry_run=False)
        cascade_plan = tracker.purge_run(ids["prep"], cascade=True)
        assert cascade_plan.runs[0].id == ids["prep"]
        assert {r.id for r in cascade_plan.runs} == set(purged)
        assert str(households) in {f.path for f in cascade_plan.kept_files}
    assert table_counts(pg_url) == before  # dry runs and a refusal change nothing

    with closing(pg_tracker(repo, pg_url)) as tracker:
        plan = tracker.purge_run(ids["prep"], cascade=True, dry_run=False)
        assert plan.executed and plan.errors == []
        assert plan.deleted_rows["run"] == 3
        assert {r.id for r in tracker.find_runs()} == set(kept)
    after = table_counts(pg_url)
    # The counts the purge reports are the rows the server lost.
    for table, deleted in plan.deleted_rows.items():
        assert before[table] - after[table] == deleted, table
    assert plan.deleted_rows["run_artifact_link"] > 0 and plan.deleted_rows["config_facet"] > 0
    assert set(run_rows(pg_url, purged).values()) == {0}  # rows, links, edges, facets, KV
    assert run_rows(pg_url, kept) == kept_before  # other runs intact
    for f in plan.files:
        assert not Path(f.path).exists()
        assert Path(f.path).is_relative_to(repo / "runs")
    assert plan.files and households.is_file()  # an input outside run_dir survives
    assert not (repo / "runs" / "outputs" / "demand").exists()  # emptied directories pruned
    for rid in purged:
        assert not (repo / "runs" / "consist_runs" / f"{rid}.json").exists()
    with closing(pg_tracker(repo, pg_url)) as tracker:  # reopening brings nothing back
        assert tracker.get_run(ids["prep"]) is None
        assert {r.id for r in tracker.find_runs()} == set(kept)
        survey = tracker.get_artifacts_for_run(ids["survey"])
        assert Path(survey.outputs["survey"].abs_path).is_file()
        # survey's output carries an artifact facet, key/value rows and a schema.
        owned = run_rows(pg_url, [ids["survey"]])
        assert all(owned[t] for t in ("artifact_kv", "artifact_facet", "artifact_schema"))
        plan = tracker.purge_run(ids["survey"], dry_run=False)
        assert plan.executed and [f.path for f in plan.files] == [survey.outputs["survey"].abs_path]
        assert plan.deleted_rows["artifact_kv"] == owned["artifact_kv"]
        assert [r.id for r in tracker.find_runs()] == [ids["other"]]
    assert set(run_rows(pg_url, [ids["survey"]]).values()) == {0}
    assert not Path(survey.outputs["survey"].abs_path).exists()
    assert query(pg_url, "SELECT count(*) FROM schema_profile") == [(1,)]  # kept, as on DuckDB


def _relative(plan: Any, repo: Path, ids: dict[str, str]) -> dict[str, Any]:
    """What a purge did, with paths relative to the repository and run ids by role."""
    names = {run_id: role for role, run_id in ids.items()}

    def rel(path: str) -> str:
        text = str(Path(path).relative_to(repo)) if Path(path).is_relative_to(repo) else path
        for run_id, role in names.items():
            text = text.replace(run_id, f"<{role}>")
        return text

    return {
        "runs": [names[r.id] for r in plan.runs],
        "deleted_rows": dict(plan.deleted_rows),
        "files": sorted(rel(f.path) for f in plan.files),
        "kept_files": sorted((rel(f.path), f.reason) for f in plan.kept_files),
        "journal_files": sorted(rel(p) for p in plan.journal_files),
    }


def test_purge_removes_the_same_rows_and_files_as_on_duckdb(pg_url: str, tmp_path: Path) -> None:
    outcomes = []
    for name, open_tracker in (
        ("duck", duck_tracker),
        ("pg", lambda repo: pg_tracker(repo, pg_url)),
    ):
        repo = make_model_project(tmp_path / name)
        with closing(open_tracker(repo)) as tracker:
            ids = build_history(tracker, repo)
            plan = tracker.purge_run(ids["prep"], cascade=True, dry_run=False)
            outcomes.append(_relative(plan, repo, ids))
        files = sorted(str(p.relative_to(repo)) for p in (repo / "runs").rglob("*") if p.is_file())
        outcomes[-1]["left"] = [
            f for f in files if "provenance.duckdb" not in f and ".pending" not in f
        ]
        for role, run_id in ids.items():
            outcomes[-1]["left"] = [f.replace(run_id, f"<{role}>") for f in outcomes[-1]["left"]]
    duck, pg = outcomes
    assert pg == duck


def test_a_purge_waits_for_a_writer_and_sees_its_new_dependent(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    """Between the purge's dependents check and its commit no run may start depending on it.

    Another session links ``other``'s output as an input of ``survey`` and has
    not committed yet: the purge waits for it (its table locks), then sees the
    new dependent and deletes nothing.
    """
    repo, ids = history
    with closing(pg_tracker(repo, pg_url)) as tracker:
        plan = tracker.purge_run(ids["other"])
        assert not plan.blocked
        output = tracker.get_artifacts_for_run(ids["other"]).outputs["persons"]
        before = table_counts(pg_url)
        with server(pg_url) as writer:
            writer.execute("BEGIN")
            writer.execute(
                "INSERT INTO run_artifact_link (run_id, artifact_id, direction, key, src, dst) "
                "VALUES (%s, %s, 'input', 'persons', md5(%s)::uuid, %s)",
                [ids["survey"], output.id, ids["survey"], output.id],
            )
            outcome: list[BaseException | Any] = []

            def purge() -> None:
                try:
                    outcome.append(tracker.purge_run(ids["other"], dry_run=False))
                except BaseException as exc:  # handed to the test thread
                    outcome.append(exc)

            thread = threading.Thread(target=purge)
            thread.start()
            time.sleep(1.0)
            assert thread.is_alive() and not outcome  # waiting for the writer
            writer.execute("COMMIT")
            thread.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], PurgeRefusedError), outcome
        assert "started depending" in str(outcome[0])
        after = table_counts(pg_url)
        assert after == {**before, "run_artifact_link": before["run_artifact_link"] + 1}
        assert tracker.get_run(ids["other"]) is not None
        assert Path(output.abs_path).is_file()


def test_purge_of_a_read_only_tracker_is_refused(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    from consist.core.store.connection import ReadOnlyStoreError

    repo, ids = history
    with closing(pg_tracker(repo, pg_url, read_only=True)) as reader:
        assert not reader.purge_run(ids["other"]).executed  # a dry run reads only
        with pytest.raises(ReadOnlyStoreError):
            reader.purge_run(ids["other"], dry_run=False)
        with pytest.raises(ValueError, match="no run with id"):
            reader.purge_run("nope")
    assert query(pg_url, "SELECT count(*) FROM run WHERE id = %s", [ids["other"]]) == [(1,)]


# -- store_report ----------------------------------------------------------------------


def test_store_report_reads_counts_and_sizes_from_the_server(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    repo, _ = history
    with closing(pg_tracker(repo, pg_url, read_only=True)) as reader:
        info = reader.store_report()
    assert info.db_path == pg_url  # no password in the test URL; db_path is the redacted URL
    assert info.tables == table_counts(pg_url)  # every table of the store, counted exactly
    assert info.tables["run"] == 5 and info.tables["write_log"] == 0
    sizes = dict(
        query(
            pg_url,
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace",
        )
    )
    assert info.table_bytes == sizes and info.table_bytes["run"] > 0
    assert info.size_bytes == sum(sizes.values())
    assert info.wal_bytes is None and info.logged_writes is None
    assert info.journal_pending == [] and info.dead_starts == []
    assert info.run_dir == str(repo / "runs")
    assert info.schema_version == query(pg_url, "SELECT max(version) FROM schema_version")[0][0]


def test_store_report_names_tables_of_other_schemas_like_duckdb(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    repo, _ = history
    with server(pg_url) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS global_tables")
        con.execute("CREATE TABLE global_tables.persons (x int)")
        con.execute("INSERT INTO global_tables.persons VALUES (1), (2)")
    with closing(pg_tracker(repo, pg_url)) as tracker:
        info = tracker.store_report()
    assert info.tables["global_tables.persons"] == 2
    labels = list(info.tables)  # the store's own tables first, unqualified
    first = next(i for i, label in enumerate(labels) if "." in label)
    assert "run" in labels[:first] and all("." in label for label in labels[first:])
    assert info.table_bytes is not None and info.table_bytes["global_tables.persons"] > 0


# -- doctor ----------------------------------------------------------------------------


def kinds(report: Any) -> list[tuple[str, str]]:
    return sorted((f.kind, f.subject) for f in report.findings)


def test_doctor_on_a_clean_postgresql_store(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    repo, _ = history
    with closing(pg_tracker(repo, pg_url, read_only=True)) as reader:
        report = reader.doctor()
        assert report.healthy and report.findings == []
        assert len(report.notes) == 1 and "unapplied_writes not checked" in report.notes[0]
        with pytest.raises(ValueError, match="read_only"):
            reader.doctor(fix=True)


def test_doctor_finds_and_repairs_what_other_programs_did_to_the_tables(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    """Rows deleted or edited by hand: a run row, an artifact row, a link's lineage edge."""
    repo, ids = history
    with server(pg_url) as con:
        con.execute("DELETE FROM run WHERE id = %s", [ids["other"]])  # its journal stays
        gone = con.execute(
            "DELETE FROM artifact WHERE run_id = %s RETURNING id", [ids["demand"]]
        ).fetchone()[0]
        con.execute(
            "UPDATE run_artifact_link SET src = NULL WHERE run_id = %s AND direction = 'input'",
            [ids["prep"]],
        )
    before = table_counts(pg_url)
    with closing(pg_tracker(repo, pg_url, read_only=True)) as reader:
        found = reader.doctor()
    assert table_counts(pg_url) == before  # the diagnosis writes nothing
    other_links = [f"{ids['other']}/households (input)", f"{ids['other']}/persons (output)"]
    assert kinds(found) == sorted(
        [
            ("missing_in_db", ids["other"]),
            ("dangling_link", f"{ids['demand']}/trips (output)"),
            *(("dangling_link", subject) for subject in other_links),
            ("link_without_edge", pg_url),
        ]
    )
    with closing(pg_tracker(repo, pg_url)) as tracker:
        fixed = tracker.doctor(fix=True)
        assert fixed.healthy, fixed.as_dict()
        assert all(f.fixed for f in fixed.findings)
        actions = {f.subject: f.action for f in fixed.findings if f.kind == "dangling_link"}
        assert actions[f"{ids['demand']}/trips (output)"] == "deleted the link row"
        # The other run's links are its rows: back whole with its replayed snapshot.
        assert all("restored" in actions[subject] for subject in other_links)
        assert tracker.get_run(ids["other"]).status == "completed"
        assert set(tracker.get_run_outputs(ids["other"])) == {"persons"}
        assert tracker.doctor().findings == []
    assert query(
        pg_url, "SELECT count(*) FROM run_artifact_link WHERE artifact_id = %s", [gone]
    ) == [(0,)]
    assert query(
        pg_url, "SELECT count(*) FROM run_artifact_link WHERE src IS NULL OR dst IS NULL"
    ) == [(0,)]
    # The filled edge is the one the store writes: the run's node md5(run_id) as a UUID.
    assert query(
        pg_url,
        "SELECT count(*) FROM run_artifact_link WHERE run_id = %s AND direction = 'input' "
        "AND src <> md5(run_id)::uuid",
        [ids["prep"]],
    ) == [(0,)]


VICTIM = r"""
import sys, time
from consist import Tracker
run_dir, url, root = sys.argv[1:4]
t = Tracker(run_dir, db_url=url, project_root=root)
t.begin_run("victim", "sim", config={"x": 1})
print("ready", flush=True)
time.sleep(120)
"""


def test_a_sigkilled_run_is_found_and_marked_failed(pg_url: str, tmp_path: Path) -> None:
    from _support import Child

    repo = make_model_project(tmp_path / "model")
    child = Child(VICTIM, repo / "runs", pg_url, repo, timeout=60)
    try:
        child.wait_for("ready")
        pid = child.proc.pid
        child.sigkill()
    finally:
        child.kill()
    with closing(pg_tracker(repo, pg_url, read_only=True)) as reader:
        found = reader.doctor()
    assert ("dead_running", "victim") in kinds(found)
    assert query(pg_url, "SELECT status FROM run WHERE id = 'victim'") == [("running",)]
    with closing(pg_tracker(repo, pg_url)) as tracker:
        fixed = tracker.doctor(fix=True)
        assert fixed.healthy, fixed.as_dict()
        [dead] = [f for f in fixed.findings if f.kind == "dead_running"]
        assert dead.fixed and f"pid {pid}" in dead.action
    status, meta = query(pg_url, "SELECT status, meta FROM run WHERE id = 'victim'")[0]
    assert status == "failed" and f"pid {pid}" in meta and "consist db doctor" in meta


# -- compact_store ---------------------------------------------------------------------


def test_compact_store_vacuums_the_tables(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    repo, ids = history
    with closing(pg_tracker(repo, pg_url)) as tracker:
        tracker.purge_run(ids["prep"], cascade=True, dry_run=False)
        report = tracker.compact_store()
    assert report.db_path == pg_url
    assert report.tables == table_counts(pg_url) and report.tables["run"] == 2
    assert report.size_before > 0 and report.size_after > 0
    assert report.saved == report.size_before - report.size_after
    vacuumed = dict(
        query(
            pg_url,
            "SELECT relname, last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
            "FROM pg_stat_user_tables WHERE schemaname = current_schema()",
        )
    )
    assert set(vacuumed) == set(report.tables) and all(vacuumed.values()), vacuumed
    with (
        closing(pg_tracker(repo, pg_url, read_only=True)) as reader,
        pytest.raises(ValueError, match="read_only"),
    ):
        reader.compact_store()


def test_compact_store_waits_for_a_lock_up_to_the_lock_timeout(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    from consist.core.store.compaction import compact
    from consist.core.store.connection import StoreLockTimeout

    repo, _ = history
    with closing(pg_tracker(repo, pg_url)) as tracker, server(pg_url) as other:
        other.execute("BEGIN")
        other.execute("LOCK TABLE run IN SHARE UPDATE EXCLUSIVE MODE")  # as another VACUUM
        started = time.monotonic()
        with pytest.raises(StoreLockTimeout, match="stayed locked"):
            compact(tracker.store, lock_timeout_s=0.5)
        assert 0.4 < time.monotonic() - started < 10
        other.execute("ROLLBACK")
        assert tracker.compact_store().tables["run"] == 5  # the session is usable again


# -- export_runs / merge_store ---------------------------------------------------------

_SHARD_TABLES = (
    "run",
    "artifact",
    "run_artifact_link",
    "content_identity",
    "config_facet",
    "run_facet",
    "run_config_kv",
    "artifact_facet",
    "artifact_kv",
    "schema_profile",
    "artifact_schema",
)


def _value(value: Any) -> Any:
    """A column value comparable across the engines (UUIDs as text, JSON text decoded)."""
    import json
    import uuid

    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def _canonical(columns: list[str], rows: list[tuple[Any, ...]]) -> list[str]:
    # A link's lineage_group is its group's root label in the store that holds it:
    # links travel without it and are labelled where they land (the group of a
    # run can differ between stores), so rows compare without it.
    return sorted(
        repr(
            sorted(
                (c, repr(_value(v)))
                for c, v in zip(columns, row, strict=True)
                if c != "lineage_group"
            )
        )
        for row in rows
    )


def pg_table(url: str, table: str) -> list[str]:
    with server(url) as con:
        cur = con.execute(f"SELECT * FROM {table}")
        return _canonical([d.name for d in cur.description], cur.fetchall())


def duck_table(db: Path, table: str) -> list[str]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(f"SELECT * FROM {table}")
        return _canonical([d[0] for d in cur.description], cur.fetchall())
    finally:
        con.close()


def test_export_from_postgresql_then_merge_into_duckdb(
    history: tuple[Path, dict[str, str]], pg_url: str, tmp_path: Path
) -> None:
    repo, ids = history
    expected = {ids["demand"], ids["prep"], ids["hit"], ids["survey"]}
    before = table_counts(pg_url)
    with closing(pg_tracker(repo, pg_url, read_only=True)) as reader:
        manifest = reader.export_runs(ids["demand"], tmp_path / "shard")
    assert manifest.run_ids[0] == ids["demand"] and set(manifest.run_ids) == expected
    assert set(manifest.journal) == expected
    assert manifest.source == pg_url  # the store's URL (without a password), not a path
    assert table_counts(pg_url) == before  # export never writes to the source store
    assert (tmp_path / "shard" / "store.duckdb").is_file()

    target = make_model_project(tmp_path / "target")
    with closing(duck_tracker(target)) as tracker:
        result = tracker.merge_store(tmp_path / "shard")
        assert set(result.added_runs) == expected and result.changed
        assert tracker.get_config_value(ids["demand"], "year") == 2030
        found = tracker.find_runs_by_facet_kv(namespace="prep", key="region", value_str="north")
        assert {r.id for r in found} == {ids["prep"], ids["hit"]}
        lineage = tracker.get_artifact_lineage(
            tracker.get_artifacts_for_run(ids["demand"]).outputs["trips"]
        )
        assert lineage["run_id"] == ids["demand"]
        again = tracker.merge_store(tmp_path / "shard")
        assert not again.changed and set(again.skipped_runs) == expected
    # Every row of the exported runs is in the DuckDB store as it is on the server.
    others = [ids["other"]]
    for table in _SHARD_TABLES:
        source = pg_table(pg_url, table)
        copied = duck_table(target / "provenance.duckdb", table)
        assert copied, table  # the history exercises every table
        assert set(copied) <= set(source), table
    assert len(duck_table(target / "provenance.duckdb", "run")) == 4
    assert set(run_rows(pg_url, others).values()) != {0}


def test_export_from_duckdb_then_merge_into_postgresql(pg_url: str, tmp_path: Path) -> None:
    source = make_model_project(tmp_path / "source")
    with closing(duck_tracker(source)) as tracker:
        ids = build_history(tracker, source)
        tracker.export_runs(ids["demand"], tmp_path / "shard")
    expected = {ids["demand"], ids["prep"], ids["hit"], ids["survey"]}
    target = make_model_project(tmp_path / "target")
    with closing(pg_tracker(target, pg_url)) as tracker:
        result = tracker.merge_store(tmp_path / "shard")
        assert set(result.added_runs) == expected and result.skipped_runs == ()
        # The counts are the rows the server gained.
        assert result.inserted == {
            t: n for t, n in table_counts(pg_url).items() if t in result.inserted
        }
        # Visible at once: queries, facets, config, lineage.
        assert tracker.get_config_value(ids["demand"], "year") == 2030
        found = tracker.find_runs_by_facet_kv(namespace="prep", key="region", value_str="north")
        assert {r.id for r in found} == {ids["prep"], ids["hit"]}
        assert tracker.get_run_config(ids["prep"]) == {"scale": 1}  # from the merged journal
        lineage = tracker.get_artifact_lineage(
            tracker.get_artifacts_for_run(ids["demand"]).outputs["trips"]
        )
        assert lineage["run_id"] == ids["demand"]
        again = tracker.merge_store(tmp_path / "shard")
        assert not again.changed and set(again.skipped_runs) == expected
        assert set(again.inserted.values()) == {0}
    # Every row of the shard is on the server as it was in the DuckDB store.
    for table in _SHARD_TABLES:
        shard = duck_table(tmp_path / "shard" / "store.duckdb", table)
        assert shard, table
        assert set(shard) <= set(pg_table(pg_url, table)), table
    for run_id in expected:
        snapshot = target / "runs" / "consist_runs" / f"{run_id}.json"
        assert (
            snapshot.read_bytes() == (source / "runs" / "consist_runs" / snapshot.name).read_bytes()
        )


def test_merge_into_postgresql_refuses_a_conflict_and_writes_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    from consist.core.store.shards import ShardConflictError

    source = make_model_project(tmp_path / "source")
    with closing(duck_tracker(source)) as tracker:
        ids = build_history(tracker, source)
        tracker.export_runs(ids["demand"], tmp_path / "shard")
    target = make_model_project(tmp_path / "target")
    with closing(pg_tracker(target, pg_url)) as tracker:
        tracker.run(
            fn=prepare,
            name="prep",
            run_id=ids["prep"],
            config={"scale": 9},
            inputs={"households": target / "data" / "households.csv"},
            outputs=["persons"],
        )
        before = table_counts(pg_url)
        with pytest.raises(ShardConflictError) as caught:
            tracker.merge_store(tmp_path / "shard")
        assert [(c.kind, c.id) for c in caught.value.conflicts] == [("run", ids["prep"])]
        assert "config_hash" in caught.value.conflicts[0].fields
    assert table_counts(pg_url) == before
    assert not (target / "runs" / "consist_runs" / f"{ids['demand']}.json").exists()


def test_a_merge_waits_for_a_writer_and_sees_its_conflicting_run(
    pg_url: str, tmp_path: Path
) -> None:
    """Another session records a run under a shard run's id and has not committed yet:
    the merge waits for it (its table locks), then reports the conflict and writes nothing."""
    from consist.core.store.shards import ShardConflictError

    source = make_model_project(tmp_path / "source")
    with closing(duck_tracker(source)) as tracker:
        ids = build_history(tracker, source)
        tracker.export_runs(ids["survey"], tmp_path / "shard")
    target = make_model_project(tmp_path / "target")
    with closing(pg_tracker(target, pg_url)) as tracker:
        before = table_counts(pg_url)
        with server(pg_url) as writer:
            writer.execute("BEGIN")
            writer.execute(
                "INSERT INTO run (id, model_name, status, created_at, updated_ns) "
                "VALUES (%s, 'survey', 'failed', now(), 1)",
                [ids["survey"]],
            )
            outcome: list[Any] = []

            def merge() -> None:
                try:
                    outcome.append(tracker.merge_store(tmp_path / "shard"))
                except BaseException as exc:  # handed to the test thread
                    outcome.append(exc)

            thread = threading.Thread(target=merge)
            thread.start()
            time.sleep(1.0)
            assert thread.is_alive() and not outcome  # waiting for the writer
            writer.execute("COMMIT")
            thread.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], ShardConflictError), outcome
        assert [(c.kind, c.id) for c in outcome[0].conflicts] == [("run", ids["survey"])]
    assert table_counts(pg_url) == {**before, "run": before["run"] + 1}


def test_compact_store_refuses_to_run_inside_a_transaction(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    from consist.core.store.compaction import compact

    repo, _ = history
    with closing(pg_tracker(repo, pg_url)) as tracker:
        store = tracker.store
        with store.connections.transaction(), pytest.raises(RuntimeError, match="transaction"):
            compact(store)
        assert compact(store).tables["run"] == 5  # the session is usable afterwards


def test_doctor_keeps_the_links_of_a_run_it_replays_on_duckdb_too(tmp_path: Path) -> None:
    """A run row lost to another program: its links dangle until its snapshot is replayed,
    after which they are whole; the repair must not delete them (DuckDB store)."""
    import duckdb

    repo = make_model_project(tmp_path / "model")
    with closing(duck_tracker(repo)) as tracker:
        ids = build_history(tracker, repo)
    con = duckdb.connect(str(repo / "provenance.duckdb"))
    con.execute("DELETE FROM run WHERE id = ?", [ids["other"]])
    con.close()
    with closing(duck_tracker(repo)) as tracker:
        fixed = tracker.doctor(fix=True)
        assert fixed.healthy, fixed.as_dict()
        assert ("missing_in_db", ids["other"]) in kinds(fixed)
        assert set(tracker.get_run_outputs(ids["other"])) == {"persons"}
        assert set(tracker.get_run_inputs(ids["other"])) == {"households"}
        assert tracker.doctor().findings == []


def test_an_exclusive_change_gives_up_after_the_lock_timeout(
    history: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    """A session that keeps a table locked (idle in a transaction): purge waits, then says so."""
    from consist.core.store.connection import StoreLockTimeout
    from consist.core.store.engines.pg_maintenance import exclusive_transaction

    repo, ids = history
    with closing(pg_tracker(repo, pg_url)) as tracker, server(pg_url) as other:
        other.execute("BEGIN")
        other.execute("UPDATE run SET tags = tags WHERE id = %s", [ids["survey"]])
        started = time.monotonic()
        with pytest.raises(StoreLockTimeout, match="nothing was changed"):
            exclusive_transaction(
                tracker.store,
                ["run"],
                lambda con: con.execute("DELETE FROM run").fetchone(),
                lock_timeout_s=0.5,
            )
        assert 0.4 < time.monotonic() - started < 10
        other.execute("ROLLBACK")
        assert tracker.purge_run(ids["other"], dry_run=False).executed  # usable afterwards
    assert query(pg_url, "SELECT count(*) FROM run") == [(4,)]


WRITER = r"""
import sys
from consist import Tracker
run_dir, url, root, name, count = sys.argv[1:6]

t = Tracker(run_dir, db_url=url, project_root=root)
print("ready", flush=True)
for i in range(int(count)):
    with t.start_run(f"{name}_{i}", name, config={"i": i}, facet={"i": i}):
        out = t.run_artifact_dir() / "table.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"x\n{i}\n")
        t.log_output(out, key="table")
t.close()
print("done", flush=True)
"""


def test_purges_and_a_merge_while_two_processes_record_runs(
    history: tuple[Path, dict[str, str]], pg_url: str, tmp_path: Path
) -> None:
    """Writers in flight and the exclusive changes take turns: nothing fails, nothing is lost."""
    from _support import Child

    repo, ids = history
    source = make_model_project(tmp_path / "duck")
    with closing(duck_tracker(source)) as duck:
        duck.run(
            fn=prepare,
            name="imported",
            config={"scale": 7},
            inputs={"households": source / "data" / "households.csv"},
            outputs=["persons"],
        )
        imported = duck.find_runs(model="imported")[0].id
        duck.export_runs(imported, tmp_path / "shard")
    count = 15
    writers = [
        Child(WRITER, tmp_path / f"w{n}" / "runs", pg_url, repo, f"writer{n}", count, timeout=120)
        for n in range(2)
    ]
    try:
        for child in writers:
            child.wait_for("ready")
        with closing(pg_tracker(repo, pg_url)) as tracker:
            purged = tracker.purge_run(ids["prep"], cascade=True, dry_run=False)
            merged = tracker.merge_store(tmp_path / "shard")
            second = tracker.purge_run(ids["other"], dry_run=False)
        for child in writers:
            child.wait_for("done")
    finally:
        for child in writers:
            child.kill()
    assert purged.executed and second.executed and merged.added_runs == (imported,)
    models = dict(query(pg_url, "SELECT model_name, count(*) FROM run GROUP BY model_name"))
    assert models == {"writer0": count, "writer1": count, "survey": 1, "imported": 1}
    assert query(pg_url, "SELECT count(*) FROM run_facet") == [(2 * count,)]
