"""Tracker.export_runs / merge_store / purge_run through the public API, on real stores."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from _support import make_model_project, project_tracker
from consist import Tracker
from consist.core.store.connection import ReadOnlyStoreError
from consist.core.store.purge import PurgeRefusedError
from consist.core.store.shards import ShardConflictError, ShardError


def prepare(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    return households.assign(persons=households["size"] * scale)


def demand(persons: pd.DataFrame, survey: pd.DataFrame, year: int = 2030) -> pd.DataFrame:
    return persons.assign(trips=persons["persons"] * (year - 2000) + len(survey))


def build_history(repo: Path) -> dict[str, str]:
    """prep (facet) and survey (artifact facet, schema) -> demand; a hit of prep; another run."""
    tracker = project_tracker(repo)
    households = repo / "data" / "households.csv"
    with tracker.start_run("survey_wave3", "survey"):
        out = tracker.run_artifact_dir() / "survey.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("hh_id,answer\n1,yes\n2,no\n")
        survey = tracker.log_output(
            out, key="survey", facet={"wave": 3}, facet_index=True, profile_file_schema=True
        )
    prep = tracker.run(
        fn=prepare,
        name="prep",
        config={"scale": 1},
        facet={"scale": 1, "region": "north"},
        inputs={"households": households},
        outputs=["persons"],
    )
    hit = tracker.run(
        fn=prepare,
        name="prep",
        config={"scale": 1},
        facet={"scale": 1, "region": "north"},
        inputs={"households": households},
        outputs=["persons"],
    )
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
    tracker.close()
    return {
        "survey": "survey_wave3",
        "prep": prep.run.id,
        "hit": hit.run.id,
        "demand": dem.run.id,
        "other": other.run.id,
    }


def empty_store(repo: Path) -> Path:
    """A fresh Consist store in a new model repository."""
    make_model_project(repo)
    project_tracker(repo).close()
    return repo


def rows(db: Path, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(sql, params or []).fetchall(), key=repr)
    finally:
        con.close()


# Rows that belong to a set of runs, per table ($1 = the run ids).
_ARTS = "SELECT artifact_id FROM run_artifact_link WHERE run_id IN (SELECT unnest($1))"
BELONGING = {
    "run": "SELECT * FROM run WHERE id IN (SELECT unnest($1))",
    # lineage_group: the label of the link's group in the store that holds it.
    "run_artifact_link": (
        "SELECT * EXCLUDE (lineage_group) FROM run_artifact_link "
        "WHERE run_id IN (SELECT unnest($1))"
    ),
    "artifact": f"SELECT * FROM artifact WHERE id IN ({_ARTS})",
    "content_identity": (
        f"SELECT * FROM content_identity WHERE id IN (SELECT content_id FROM artifact "
        f"WHERE id IN ({_ARTS}))"
    ),
    "run_facet": "SELECT * FROM run_facet WHERE run_id IN (SELECT unnest($1))",
    "run_config_kv": "SELECT * FROM run_config_kv WHERE run_id IN (SELECT unnest($1))",
    "config_facet": (
        "SELECT * FROM config_facet WHERE id IN (SELECT facet_id FROM run_facet "
        f"WHERE run_id IN (SELECT unnest($1))) OR id IN (SELECT facet_id FROM artifact_facet "
        f"WHERE artifact_id IN ({_ARTS}))"
    ),
    "artifact_facet": f"SELECT * FROM artifact_facet WHERE artifact_id IN ({_ARTS})",
    "artifact_kv": f"SELECT * FROM artifact_kv WHERE artifact_id IN ({_ARTS})",
    "artifact_schema": f"SELECT * FROM artifact_schema WHERE artifact_id IN ({_ARTS})",
    "schema_profile": (
        "SELECT * FROM schema_profile WHERE id IN (SELECT schema_id FROM artifact_schema "
        f"WHERE artifact_id IN ({_ARTS}))"
    ),
}


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = make_model_project(tmp_path / "source")
    return repo, build_history(repo)


def test_export_then_merge_copies_everything_upstream_and_is_idempotent(
    history: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, ids = history
    source_db = repo / "provenance.duckdb"
    with closing(Tracker(repo / "runs", db_path=source_db, read_only=True)) as reader:
        manifest = reader.export_runs(ids["demand"], tmp_path / "shard")
    # The hit was handed prep's output, so it is upstream too.
    expected = {ids["demand"], ids["prep"], ids["hit"], ids["survey"]}
    assert manifest.run_ids[0] == ids["demand"]
    assert set(manifest.run_ids) == expected
    assert set(manifest.journal) == expected
    on_disk = json.loads((tmp_path / "shard" / "shard.json").read_text())
    assert on_disk["format"] == "consist-shard" and set(on_disk["run_ids"]) == expected
    # Export never writes to the source store.
    assert rows(source_db, "SELECT count(*) FROM run") == [(5,)]

    target = empty_store(tmp_path / "target")
    target_db = target / "provenance.duckdb"
    with closing(project_tracker(target)) as tracker:
        result = tracker.merge_store(tmp_path / "shard")
        assert set(result.added_runs) == expected and result.skipped_runs == ()
        assert result.changed
        # Visible at once in this process (write log applied, signature index updated).
        assert tracker.get_run(ids["demand"]).parent_run_id is None
        assert tracker.get_config_value(ids["demand"], "year") == 2030
        found = tracker.find_runs_by_facet_kv(namespace="prep", key="region", value_str="north")
        assert {r.id for r in found} == {ids["prep"], ids["hit"]}
        assert tracker.get_run_config(ids["prep"]) == {"scale": 1}  # from the merged journal
        again = tracker.merge_store(tmp_path / "shard")
        assert not again.changed and again.added_runs == ()
        assert set(again.skipped_runs) == expected
        assert set(again.inserted.values()) == {0}

    wanted = sorted(expected)
    for table, sql in BELONGING.items():
        source_rows = rows(source_db, sql, [wanted])
        assert source_rows, table  # the history exercises every table
        columns = "* EXCLUDE (lineage_group)" if table == "run_artifact_link" else "*"
        assert rows(target_db, f"SELECT {columns} FROM {table}") == source_rows, table
    # The merged links are labelled in the target: the groups split the runs as in the source.
    groups = (
        "SELECT list(DISTINCT run_id ORDER BY run_id) FROM run_artifact_link "
        "WHERE run_id IN (SELECT unnest($1)) GROUP BY lineage_group ORDER BY 1"
    )
    assert rows(target_db, groups, [wanted]) == rows(source_db, groups, [wanted])
    assert rows(target_db, "SELECT id FROM run WHERE id = $1", [ids["other"]]) == []
    for run_id in expected:
        snapshot = target / "runs" / "consist_runs" / f"{run_id}.json"
        assert (
            snapshot.read_bytes() == (repo / "runs" / "consist_runs" / snapshot.name).read_bytes()
        )


def test_merge_conflict_is_reported_and_nothing_is_written(
    history: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, ids = history
    with closing(project_tracker(repo)) as source:
        source.export_runs(ids["demand"], tmp_path / "shard")
    target = empty_store(tmp_path / "target")
    with closing(project_tracker(target)) as tracker:
        # Another run under one of the shard's run ids.
        tracker.run(
            fn=prepare,
            name="prep",
            run_id=ids["prep"],
            config={"scale": 9},
            inputs={"households": target / "data" / "households.csv"},
            outputs=["persons"],
        )
        before = tracker.find_runs()
        with pytest.raises(ShardConflictError) as caught:
            tracker.merge_store(tmp_path / "shard")
        assert [(c.kind, c.id) for c in caught.value.conflicts] == [("run", ids["prep"])]
        assert "config_hash" in caught.value.conflicts[0].fields
        assert ids["prep"] in str(caught.value) and "nothing was merged" in str(caught.value)
        assert [r.id for r in tracker.find_runs()] == [r.id for r in before]
        assert tracker.get_run(ids["prep"]).config_hash == before[0].config_hash
    assert not (target / "runs" / "consist_runs" / f"{ids['demand']}.json").exists()


def test_export_and_merge_errors(history: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    repo, ids = history
    (tmp_path / "taken").mkdir()
    with closing(project_tracker(repo)) as tracker:
        with pytest.raises(ValueError, match="no run with id 'nope'"):
            tracker.export_runs("nope", tmp_path / "x")
        with pytest.raises(ShardError, match="already exists"):
            tracker.export_runs(ids["prep"], tmp_path / "taken")
        with pytest.raises(ShardError, match="does not exist"):
            tracker.export_runs(ids["prep"], tmp_path / "missing" / "shard")
        with pytest.raises(ShardError, match=r"no shard\.json"):
            tracker.merge_store(tmp_path / "taken")
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source", "taken"]  # no temp left
    with closing(
        Tracker(repo / "runs", db_path=repo / "provenance.duckdb", read_only=True)
    ) as reader:
        reader.export_runs(ids["prep"], tmp_path / "shard")
        with pytest.raises(ReadOnlyStoreError):
            reader.merge_store(tmp_path / "shard")
        with pytest.raises(ReadOnlyStoreError):
            reader.purge_run(ids["other"], dry_run=False)


def _snapshot(repo: Path) -> tuple[Any, ...]:
    db = repo / "provenance.duckdb"
    counts = tuple(
        rows(db, f"SELECT count(*) FROM {t}")[0][0]
        for t in ("run", "artifact", "run_artifact_link", "run_facet", "run_config_kv")
    )
    files = sorted(str(p) for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    return counts, files


def test_purge_dry_run_refusal_and_cascade(history: tuple[Path, dict[str, str]]) -> None:
    repo, ids = history
    households = repo / "data" / "households.csv"
    before = _snapshot(repo)
    with closing(project_tracker(repo)) as tracker:
        plan = tracker.purge_run(ids["prep"])
        assert not plan.executed and plan.blocked
        assert {r.id for r in plan.blocked_by} == {ids["hit"], ids["demand"]}
        reasons = {r.id: r.reason for r in plan.blocked_by}
        assert reasons[ids["demand"]] == f"consumes persons of {ids['prep']}"
        assert reasons[ids["hit"]] == f"cache hit handed persons of {ids['prep']}"
        with pytest.raises(PurgeRefusedError, match="--cascade"):
            tracker.purge_run(ids["prep"], dry_run=False)
        cascade_plan = tracker.purge_run(ids["prep"], cascade=True)
        assert cascade_plan.runs[0].id == ids["prep"]
        assert {r.id for r in cascade_plan.runs} == {ids["prep"], ids["hit"], ids["demand"]}
        assert str(households) in {f.path for f in cascade_plan.kept_files}
    assert _snapshot(repo) == before  # dry runs and a refusal change nothing

    with closing(project_tracker(repo)) as tracker:
        plan = tracker.purge_run(ids["prep"], cascade=True, dry_run=False)
        assert plan.executed and plan.errors == []
        assert plan.deleted_rows["run"] == 3
        assert {r.id for r in tracker.find_runs()} == {ids["other"], ids["survey"]}
        other = tracker.get_artifacts_for_run(ids["other"])
        assert Path(other.outputs["persons"].abs_path).is_file()
        # Upstream of the purged runs stays, file included.
        survey = tracker.get_artifacts_for_run(ids["survey"])
        assert Path(survey.outputs["survey"].abs_path).is_file()
    for f in plan.files:
        assert not Path(f.path).exists()
        assert Path(f.path).is_relative_to(repo / "runs")
    assert households.is_file()  # an input outside run_dir survives
    assert not (repo / "runs" / "outputs" / "demand").exists()  # emptied directories pruned
    for rid in (ids["prep"], ids["hit"], ids["demand"]):
        assert not (repo / "runs" / "consist_runs" / f"{rid}.json").exists()
    assert rows(repo / "provenance.duckdb", "SELECT count(*) FROM run_facet") == [(0,)]
    # Re-opening (journal recovery) brings nothing back.
    with closing(project_tracker(repo)) as tracker:
        assert tracker.get_run(ids["prep"]) is None
        assert {r.id for r in tracker.find_runs()} == {ids["other"], ids["survey"]}


def test_purge_never_deletes_outputs_outside_run_dir(tmp_path: Path) -> None:
    repo = make_model_project(tmp_path / "model")
    outside = tmp_path / "elsewhere" / "report.csv"
    outside.parent.mkdir()
    outside.write_text("a,b\n1,2\n")
    mount = tmp_path / "shared"
    mount.mkdir()
    inside_mount = mount / "table.csv"
    inside_mount.write_text("x\n1\n")
    tracker = Tracker(
        repo / "runs",
        db_path=repo / "provenance.duckdb",
        project_root=repo,
        mounts={"shared": mount},
        allow_external_paths=True,
    )
    with tracker.start_run("writer", "writer"):
        tracker.log_output(outside, key="report")
        tracker.log_output(inside_mount, key="table")
    plan = tracker.purge_run("writer", dry_run=False)
    tracker.close()
    assert {f.path for f in plan.files} == {str(inside_mount)}
    assert {(f.path, f.reason) for f in plan.kept_files} == {
        (str(outside), "outside run_dir and the mounts")
    }
    assert outside.read_text() == "a,b\n1,2\n"
    assert not inside_mount.exists()
    assert mount.is_dir()  # a mount root is never removed


def test_purge_unknown_run(history: tuple[Path, dict[str, str]]) -> None:
    repo, _ = history
    with (
        closing(project_tracker(repo)) as tracker,
        pytest.raises(ValueError, match="no run with id"),
    ):
        tracker.purge_run("nope")


def test_purge_of_the_latest_run_removes_its_copy_in_consist_json(
    history: tuple[Path, dict[str, str]],
) -> None:
    repo, ids = history
    latest = repo / "runs" / "consist.json"
    assert json.loads(latest.read_text())["run"]["id"] == ids["other"]
    with closing(project_tracker(repo)) as tracker:
        plan = tracker.purge_run(ids["other"], dry_run=False)
        assert not plan.blocked and [r.id for r in plan.runs] == [ids["other"]]
        assert str(latest) in plan.journal_files
        output = repo / "runs" / "outputs" / "other" / ids["other"] / "persons.parquet"
        assert [f.path for f in plan.files] == [str(output)]
        assert tracker.get_run(ids["prep"]) is not None
    assert not latest.exists() and not output.exists()
    assert (repo / "runs" / "consist_runs" / f"{ids['prep']}.json").is_file()


def test_merge_detects_changed_links_and_artifacts(
    history: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, ids = history
    with closing(project_tracker(repo)) as source:
        source.export_runs(ids["demand"], tmp_path / "shard")
    target = empty_store(tmp_path / "target")
    with closing(project_tracker(target)) as tracker:
        tracker.merge_store(tmp_path / "shard")
    db = target / "provenance.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "UPDATE run_artifact_link SET key = 'renamed' WHERE run_id = ? AND direction = 'input' "
        "AND key = 'survey'",
        [ids["demand"]],
    )
    survey_id = con.execute(
        "SELECT id FROM artifact WHERE run_id = ? AND key = 'survey'", [ids["survey"]]
    ).fetchone()[0]
    con.execute("UPDATE artifact SET size_bytes = size_bytes + 1 WHERE id = ?", [survey_id])
    con.close()
    links_before = rows(db, "SELECT * FROM run_artifact_link")
    with closing(project_tracker(target)) as tracker, pytest.raises(ShardConflictError) as caught:
        tracker.merge_store(tmp_path / "shard")
    found = {(c.kind, c.id, c.fields) for c in caught.value.conflicts}
    assert found == {
        ("run", ids["demand"], ("links",)),
        ("artifact", str(survey_id), ("size_bytes",)),
    }
    assert rows(db, "SELECT * FROM run_artifact_link") == links_before


def test_purge_refuses_a_run_whose_output_was_ingested(
    history: tuple[Path, dict[str, str]],
) -> None:
    repo, ids = history
    with closing(project_tracker(repo)) as tracker:
        persons = tracker.get_artifacts_for_run(ids["other"]).outputs["persons"]
        tracker.ingest(persons, run=tracker.get_run(ids["other"]))
        for dry_run in (True, False):
            with pytest.raises(PurgeRefusedError, match="hot data"):
                tracker.purge_run(ids["other"], dry_run=dry_run)
        assert tracker.get_run(ids["other"]) is not None
    assert (repo / "runs" / "outputs" / "other" / ids["other"] / "persons.parquet").is_file()
