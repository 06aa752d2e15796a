"""SQLModel/SQLAlchemy queries over the metadata store through ``tracker.run_query``.

A model project as modelers lay it out: a git repository with the model code,
untracked input data and logs beside it, and the run directory and the DuckDB
file inside the repository. Several runs with input and output artifacts are
recorded through the public API, then queried with ``select(Run)``,
``select(Artifact)``, joins through ``RunArtifactLink`` and aggregates.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, text
from sqlmodel import Session, select

import consist
from _support import make_git_repo, write
from consist import Artifact, Run, Tracker
from consist.core.store.schema import LATEST_VERSION
from consist.models import (
    METADATA,
    ArtifactTable,
    ConfigFacet,
    RunArtifactLink,
    RunConfigKV,
    RunFacet,
    RunTable,
    SchemaVersion,
)

STEPS = '''\
"""Model steps (the code under version control)."""
'''


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_git_repo(tmp_path.resolve() / "model", {"steps.py": STEPS, "README.md": "m\n"})
    write(repo / "data" / "zones.csv", "zone,pop\n1,100\n2,250\n")  # untracked input data
    write(repo / "logs" / "setup.log", "started\n")  # untracked log
    return repo


@pytest.fixture
def tracker(repo: Path) -> Iterator[Tracker]:
    t = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    yield t
    t.close()


def prepare(tracker: Tracker, repo: Path, year: int) -> str:
    run_id = f"prepare_{year}"
    with tracker.start_run(
        run_id,
        "prepare",
        config={"year": year, "growth": 0.01 * (year - 2020)},
        facet_from=["year", "growth"],
        tags=["base", f"y{year}"],
        year=year,
        flavour="sweet" if year == 2030 else "plain",
    ):
        tracker.log_input(repo / "data" / "zones.csv", key="zones")
        out = write(repo / "runs" / "out" / f"households_{year}.csv", f"hh,year\n1,{year}\n")
        tracker.log_output(out, key="households", units="persons")
    return run_id


def assign(tracker: Tracker, repo: Path, households: Artifact) -> str:
    with tracker.start_run(
        "assign_2030", "assign", config={"iterations": 3}, facet={"iterations": 3}, year=2030
    ):
        tracker.log_input(households, key="demand")
        out = write(repo / "runs" / "out" / "skims.csv", "o,d,t\n1,2,5.5\n")
        tracker.log_output(out, key="skims")
    return "assign_2030"


@pytest.fixture
def workflow(tracker: Tracker, repo: Path) -> dict[str, Any]:
    """Three runs: prepare 2020 and 2030 (zones -> households), assign (households -> skims)."""
    ids = [prepare(tracker, repo, year) for year in (2020, 2030)]
    households_2030 = tracker.get_artifact("households", run_id="prepare_2030")
    assert households_2030 is not None
    started = datetime.now(UTC)
    ids.append(assign(tracker, repo, households_2030))
    write(repo / "logs" / "setup.log", "started\nfinished\n")
    return {"ids": ids, "assign_started": started, "households_2030": households_2030}


def assert_run_record(run: Any) -> None:
    assert type(run) is Run
    assert isinstance(run.tags, list) and all(isinstance(t, str) for t in run.tags)
    assert isinstance(run.meta, dict)
    assert run.created_at.tzinfo is not None and run.created_at.utcoffset().total_seconds() == 0
    assert run.ended_at is not None and run.ended_at.tzinfo is not None
    assert run.ended_at >= run.created_at


def assert_artifact_record(art: Any) -> None:
    assert type(art) is Artifact
    assert isinstance(art.id, uuid.UUID) and isinstance(art.content_id, uuid.UUID)
    assert isinstance(art.meta, dict)
    assert art.created_at.tzinfo is not None and art.created_at.utcoffset().total_seconds() == 0
    assert art.hash is not None and art.hash.startswith("blake3:")


# --------------------------------------------------------------------------- #
# select(Run)
# --------------------------------------------------------------------------- #
def test_select_run_where_returns_the_records_get_run_returns(
    tracker: Tracker, workflow: dict
) -> None:
    runs = tracker.run_query(select(Run).where(Run.model_name == "prepare").order_by(Run.year))
    assert [r.id for r in runs] == ["prepare_2020", "prepare_2030"]
    for run in runs:
        assert_run_record(run)
        assert run == tracker.get_run(run.id)
    assert runs[1].tags == ["base", "y2030"] and runs[1].meta["flavour"] == "sweet"
    assert runs[0].status == "completed" and runs[0].duration_seconds is not None
    # Same objects as find_runs gives for the same filter.
    assert sorted(runs, key=lambda r: r.id) == sorted(
        tracker.find_runs(model="prepare"), key=lambda r: r.id
    )


def test_select_run_order_limit_and_filters_on_typed_columns(
    tracker: Tracker, workflow: dict
) -> None:
    newest = tracker.run_query(select(Run).order_by(Run.created_at.desc()).limit(2))
    assert [r.id for r in newest] == ["assign_2030", "prepare_2030"]
    assert [
        r.id
        for r in tracker.run_query(
            select(Run).where(Run.year == 2030, Run.status == "completed").order_by(Run.id)
        )
    ] == ["assign_2030", "prepare_2030"]
    # Timestamps compare in UTC, whether the bound value is aware or naive UTC.
    since = workflow["assign_started"]
    assert [r.id for r in tracker.run_query(select(Run).where(Run.created_at >= since))] == [
        "assign_2030"
    ]
    naive = since.replace(tzinfo=None)
    assert [r.id for r in tracker.run_query(select(Run).where(Run.created_at >= naive))] == [
        "assign_2030"
    ]
    # The list and JSON columns are queryable as such.
    tagged = tracker.run_query(select(Run.id).where(Run.tags.contains(["y2030"])))
    assert [tuple(r) for r in tagged] == [("prepare_2030",)]
    sweet = tracker.run_query(select(Run.id).where(Run.meta["flavour"].as_string() == "sweet"))
    assert [r.id for r in sweet] == ["prepare_2030"]


def test_count_and_group_by(tracker: Tracker, workflow: dict) -> None:
    per_model = tracker.run_query(
        select(Run.model_name, func.count()).group_by(Run.model_name).order_by(Run.model_name)
    )
    assert [tuple(r) for r in per_model] == [("assign", 1), ("prepare", 2)]
    counts = tracker.store.table_counts()
    assert tracker.run_query(select(func.count()).select_from(Artifact))[0][0] == counts["artifact"]
    assert tracker.run_query(select(func.count(Run.id)))[0][0] == counts["run"] == 3
    outputs = tracker.run_query(
        select(RunArtifactLink.direction, func.count())
        .group_by(RunArtifactLink.direction)
        .order_by(RunArtifactLink.direction)
    )
    assert [tuple(r) for r in outputs] == [("input", 3), ("output", 3)]


# --------------------------------------------------------------------------- #
# select(Artifact) and joins through the link table
# --------------------------------------------------------------------------- #
def test_outputs_of_a_run_through_the_link_table(
    tracker: Tracker, workflow: dict, repo: Path
) -> None:
    arts = tracker.run_query(
        select(Artifact)
        .join(RunArtifactLink)
        .where(RunArtifactLink.run_id == "prepare_2030", RunArtifactLink.direction == "output")
    )
    (households,) = arts
    assert_artifact_record(households)
    assert households == tracker.get_artifact(households.id)
    assert households.id == workflow["households_2030"].id
    assert households.key == "households" and households.meta == {"units": "persons"}
    assert households.driver == "csv"
    assert households.path == repo / "runs" / "out" / "households_2030.csv"
    assert households.path.read_text() == "hh,year\n1,2030\n"
    expected = tracker.get_artifacts_for_run("prepare_2030").outputs["households"]
    assert (households.id, households.hash) == (expected.id, expected.hash)


def test_join_from_artifact_to_run_with_explicit_conditions(
    tracker: Tracker, workflow: dict
) -> None:
    stmt = (
        select(Artifact)
        .join(RunArtifactLink, RunArtifactLink.artifact_id == Artifact.id)
        .join(Run, Run.id == RunArtifactLink.run_id)
        .where(Run.model_name == "assign", RunArtifactLink.direction == "input")
    )
    (consumed,) = tracker.run_query(stmt)
    assert consumed.id == workflow["households_2030"].id
    # The same content shared by input and output: one artifact row, two links.
    producers = tracker.run_query(
        select(Run)
        .join(RunArtifactLink)
        .where(RunArtifactLink.artifact_id == consumed.id)
        .order_by(RunArtifactLink.direction)
    )
    assert [r.id for r in producers] == ["assign_2030", "prepare_2030"]
    assert all(type(r) is Run for r in producers)


def test_rows_mixing_records_and_columns(tracker: Tracker, workflow: dict) -> None:
    rows = tracker.run_query(
        select(Run, RunArtifactLink.key, Artifact)
        .join(RunArtifactLink, RunArtifactLink.run_id == Run.id)
        .join(Artifact, Artifact.id == RunArtifactLink.artifact_id)
        .where(RunArtifactLink.direction == "input")
        .order_by(Run.id)
    )
    assert [(r.Run.id, r.key, r.Artifact.key) for r in rows] == [
        ("assign_2030", "demand", "households"),
        ("prepare_2020", "zones", "zones"),
        ("prepare_2030", "zones", "zones"),
    ]
    for run, _key, art in rows:
        assert_run_record(run)
        assert_artifact_record(art)
        assert art.path is not None and art.path.exists()
    # Each prepare run logged the unchanged input file: same content identity.
    assert rows[1].Artifact.content_id == rows[2].Artifact.content_id


def test_link_rows_come_back_as_table_models(tracker: Tracker, workflow: dict) -> None:
    links = tracker.run_query(
        select(RunArtifactLink).where(RunArtifactLink.run_id == "assign_2030")
    )
    assert {(link.direction, link.key) for link in links} == {
        ("input", "demand"),
        ("output", "skims"),
    }
    assert all(isinstance(link, RunArtifactLink) for link in links)
    assert all(isinstance(link.artifact_id, uuid.UUID) for link in links)


# --------------------------------------------------------------------------- #
# The other metadata tables
# --------------------------------------------------------------------------- #
def test_facet_and_schema_tables_are_queryable(tracker: Tracker, workflow: dict) -> None:
    versions = tracker.run_query(select(SchemaVersion.version).order_by(SchemaVersion.version))
    assert [r[0] for r in versions] == list(range(1, LATEST_VERSION + 1))
    values = {
        row.key: row.value_num
        for row in tracker.run_query(
            select(RunConfigKV).where(RunConfigKV.run_id == "prepare_2030")
        )
    }
    namespaces = tracker.run_query(select(RunConfigKV.run_id, RunConfigKV.namespace).distinct())
    assert {tuple(r) for r in namespaces} == {
        ("prepare_2020", "prepare"),
        ("prepare_2030", "prepare"),
        ("assign_2030", "assign"),
    }
    assert values == tracker.get_config_values("prepare_2030") == {"year": 2030, "growth": 0.1}
    facets = tracker.run_query(
        select(ConfigFacet.facet_json)
        .join(RunFacet, RunFacet.facet_id == ConfigFacet.id)
        .where(RunFacet.run_id == "assign_2030")
    )
    assert [r[0] for r in facets] == [{"iterations": 3}]


def test_table_models_match_the_migrated_database(tracker: Tracker) -> None:
    rows = tracker.run_query(
        "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'main'"
    )
    db: dict[str, dict[str, bool]] = {}
    for table, column, nullable in rows:
        db.setdefault(table, {})[column] = nullable == "YES"
    # write_log is the store's internal queue of writes not applied yet (no model).
    internal = {"write_log"}
    assert set(METADATA.tables) == {t for t in db if not t.startswith("v_")} - internal
    unmapped = {"run": {"updated_ns", "identity"}}
    for name, table in METADATA.tables.items():
        model = {c.name: c.nullable for c in table.columns}
        assert set(db[name]) - set(model) == unmapped.get(name, set()), name
        assert set(model) <= set(db[name]), name
        for column, nullable in model.items():
            if not table.columns[column].primary_key:
                assert nullable == db[name][column], f"{name}.{column}"


# --------------------------------------------------------------------------- #
# Trackers sharing a store, sessions, names, bad input
# --------------------------------------------------------------------------- #
def test_query_while_a_second_tracker_shares_the_store(
    tracker: Tracker, workflow: dict, repo: Path
) -> None:
    other = Tracker(repo / "runs_b", db_path=repo / "provenance.duckdb", project_root=repo)
    try:
        seen = other.run_query(select(Run.id).order_by(Run.id))
        assert [r[0] for r in seen] == sorted(workflow["ids"])
        with other.start_run("report", "report", config={"fmt": "md"}, tags=["post"]):
            other.log_input(repo / "runs" / "out" / "skims.csv", key="skims")
        # The first tracker sees the second one's run at once, as a record.
        (report,) = tracker.run_query(select(Run).where(Run.tags.contains(["post"])))
        assert_run_record(report)
        assert report.id == "report" and report == other.get_run("report")
        readers = tracker.run_query(
            select(Run.id)
            .join(RunArtifactLink)
            .join(Artifact)
            .where(Artifact.key == "skims", RunArtifactLink.direction == "input")
        )
        assert [r[0] for r in readers] == ["report"]
    finally:
        other.close()
    assert len(tracker.run_query(select(Run))) == 4


def test_session_on_the_engine_loads_table_models(tracker: Tracker, workflow: dict) -> None:
    with Session(tracker.engine) as session:
        rows = session.exec(select(Run).where(Run.model_name == "assign")).all()
    assert [type(r) for r in rows] == [RunTable]
    assert rows[0].to_record() == tracker.get_run("assign_2030")
    assert rows[0].created_at.tzinfo is not None


def test_names_and_sql_text(tracker: Tracker, workflow: dict) -> None:
    assert consist.Run is consist.models.Run is Run
    assert consist.Artifact is consist.models.Artifact is Artifact
    assert Run.table_model() is RunTable and Artifact.table_model() is ArtifactTable
    assert [tuple(r) for r in tracker.run_query("SELECT count(*) FROM run")] == [(3,)]
    artifacts = tracker.run_query(text("SELECT count(*) FROM artifact"))
    assert [tuple(r) for r in artifacts] == [(tracker.store.table_counts()["artifact"],)]


def test_bad_query_is_rejected_with_the_fix(tracker: Tracker) -> None:
    with pytest.raises(TypeError, match=r"query must be a SQLAlchemy/SQLModel statement"):
        tracker.run_query(42)
    journal_only = Tracker(tracker.run_dir / "elsewhere", db_path=None)
    with pytest.raises(RuntimeError, match="db_path"):
        journal_only.run_query(select(Run))


# --------------------------------------------------------------------------- #
# The hot path stays free of SQLAlchemy
# --------------------------------------------------------------------------- #
def test_records_do_not_import_sqlalchemy_until_a_statement_uses_them(tmp_path: Path) -> None:
    code = """
import sys
import consist
from consist import Run, Artifact
run = Run(id="r", model_name="m", tags=["a"], meta={"k": 1})
art = Artifact(key="k", uri="./a.csv", run_id="r")
for name in Run.model_fields:
    setattr(run, name, getattr(run, name))
for name in Artifact.model_fields:
    setattr(art, name, getattr(art, name))
copy = run.model_copy(update={"status": "completed"})
Run.model_validate(copy.model_dump())
Artifact.model_validate_json(art.model_dump_json())
art.with_local_path("/tmp/a.csv")
print("before", "sqlalchemy" in sys.modules, "sqlmodel" in sys.modules)
column = Run.model_name
print("after", "sqlmodel" in sys.modules, type(column).__name__)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["before False False", "after True InstrumentedAttribute"]
