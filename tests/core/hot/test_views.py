"""Hybrid and grouped views over ingested rows and files read in place.

Real parquet/csv files written by several runs under ``tmp_path`` and a real
DuckDB store. Hot rows come from ``tracker.ingest`` when it exists, else from
a ``global_tables.<key>`` table built here with the ingest convention
(provenance columns ``consist_run_id``, ``consist_artifact_id``,
``consist_year``, ``consist_iteration``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import Field, SQLModel, select

from consist.core.hot.views import parse_predicate, parse_value
from consist.core.store.hot_store import table_name_for
from consist.core.tracker import Tracker


# --------------------------------------------------------------------------- #
# Schemas, fixtures, helpers
# --------------------------------------------------------------------------- #
class Person(SQLModel):
    person_id: int = Field(primary_key=True)
    age: int | None = None
    income: float | None = None


class PersonWithHeight(SQLModel):
    person_id: int = Field(primary_key=True)
    age: int | None = None
    height: float | None = None


class PersonIdAge(SQLModel):
    person_id: int
    age: int | None = None


class Unrelated(SQLModel):
    zone: str
    trips: int


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # project_root="." is never the repository
    return tmp_path.resolve()


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    t = Tracker(base / "runs", db_path=base / "prov.duckdb")
    yield t
    t.close()


def persons(n: int = 3, age_offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": list(range(1, n + 1)),
            "age": [20 + age_offset + i for i in range(n)],
            "income": [1000.0 * (i + 1) for i in range(n)],
        }
    )


def produce(
    tracker: Tracker,
    run_id: str,
    df: pd.DataFrame,
    *,
    key: str = "person",
    fmt: str = "parquet",
    year: int | None = None,
    model: str = "synth",
    **log_kwargs: Any,
) -> Any:
    """One run writing ``df`` as ``<key>.<fmt>`` and logging it as an output."""
    run_kwargs: dict[str, Any] = {"year": year}
    for name in ("parent_run_id", "iteration"):
        if name in log_kwargs:
            run_kwargs[name] = log_kwargs.pop(name)
    with tracker.start_run(run_id, model, **run_kwargs):
        path = tracker.run_artifact_dir() / f"{key}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
        return tracker.log_artifact(path, key=key, **log_kwargs)


def make_hot(tracker: Tracker, art: Any, run_id: str) -> None:
    """Put the artifact's rows in global_tables (the real ingest when available)."""
    if hasattr(Tracker, "ingest"):
        tracker.ingest(art, run=tracker.get_run(run_id))
        return
    run = tracker.get_run(run_id)
    assert tracker.store is not None and run is not None
    table = table_name_for(art.key)
    with tracker.store.connections.transaction() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS global_tables")
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'global_tables' AND table_name = ?",
            [table],
        ).fetchone()[0]
        select_sql = (
            "SELECT *, CAST(? AS VARCHAR) AS consist_run_id, "
            "CAST(? AS VARCHAR) AS consist_artifact_id, CAST(? AS INTEGER) AS consist_year, "
            "CAST(? AS INTEGER) AS consist_iteration FROM read_parquet(?)"
        )
        params = [run_id, str(art.id), run.year, run.iteration, str(art.path)]
        if exists:
            con.execute(f"INSERT INTO global_tables.{table} BY NAME {select_sql}", params)
        else:
            con.execute(f"CREATE TABLE global_tables.{table} AS {select_sql}", params)


def query(tracker: Tracker, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in tracker.run_query(sql)]


def view_exists(tracker: Tracker, name: str) -> bool:
    rows = query(
        tracker,
        "SELECT count(*) FROM information_schema.tables "
        f"WHERE table_schema = 'main' AND table_name = '{name}'",
    )
    return rows[0][0] == 1


def three_years(tracker: Tracker, **log_kwargs: Any) -> list[Any]:
    return [
        produce(tracker, f"run_{year}", persons(3, age_offset=i), year=year, **log_kwargs)
        for i, year in enumerate([2020, 2030, 2040])
    ]


# --------------------------------------------------------------------------- #
# tracker.view(Model)
# --------------------------------------------------------------------------- #
def test_view_over_cold_files_across_runs(tracker: Tracker) -> None:
    arts = three_years(tracker)
    cls = tracker.view(Person)

    assert cls.__tablename__ == "v_person" and view_exists(tracker, "v_person")
    assert tracker.views.Person is cls and "Person" in tracker.views
    rows = tracker.run_query(select(cls).where(cls.consist_year == 2030))
    assert sorted(r.age for r in rows) == [21, 22, 23]
    assert {r.consist_run_id for r in rows} == {"run_2030"}
    assert {r.consist_artifact_id for r in rows} == {str(arts[1].id)}
    ages = tracker.run_query(select(cls.consist_year, cls.age).order_by(cls.age))
    assert len(ages) == 9 and tuple(ages[0]) == (2020, 20)
    columns = [c.name for c in cls.__table__.columns]
    assert columns == [
        "person_id",
        "age",
        "income",
        "consist_run_id",
        "consist_artifact_id",
        "consist_year",
        "consist_iteration",
    ]
    assert [c.name for c in cls.__table__.primary_key.columns] == [
        "person_id",
        "consist_artifact_id",
    ]


def test_view_orm_session_loads_entities(tracker: Tracker) -> None:
    from sqlmodel import Session

    three_years(tracker)
    cls = tracker.view(Person)
    with Session(tracker.engine) as session:
        loaded = session.exec(select(cls).where(cls.person_id == 1)).all()
    assert sorted(p.consist_year for p in loaded) == [2020, 2030, 2040]


def test_view_model_columns_missing_in_files_are_null(tracker: Tracker) -> None:
    three_years(tracker)
    cls = tracker.view(PersonWithHeight, key="person")
    assert cls.__tablename__ == "v_person"
    rows = tracker.run_query(select(cls.height, cls.age))
    assert len(rows) == 9 and {r[0] for r in rows} == {None}
    assert tracker.views.PersonWithHeight is cls


def test_view_is_recreated_over_new_runs(tracker: Tracker) -> None:
    three_years(tracker)
    cls = tracker.view(Person)
    assert len(tracker.run_query(select(cls))) == 9
    produce(tracker, "run_2050", persons(2), year=2050)
    assert len(tracker.run_query(select(cls))) == 9  # the view records its selection
    cls = tracker.view(Person)
    assert len(tracker.run_query(select(cls))) == 11


def test_registered_schema_view_on_first_access(base: Path) -> None:
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", schemas=[Person])
    try:
        three_years(t)
        cls = t.views.Person
        assert len(t.run_query(select(cls))) == 9
        assert "Person" in dir(t.views)
        with pytest.raises(AttributeError, match="no view for 'Nope'"):
            _ = t.views.Nope
    finally:
        t.close()


def test_view_argument_errors(tracker: Tracker, base: Path) -> None:
    with pytest.raises(TypeError, match="SQLModel class"):
        tracker.view(dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        tracker.view(Person, key="")
    journal_only = Tracker(base / "runs2")
    with pytest.raises(RuntimeError, match="database"):
        journal_only.view(Person)
    with pytest.raises(RuntimeError, match="database"):
        journal_only.create_view("v", "person")
    with pytest.raises(RuntimeError, match="database"):
        journal_only.create_grouped_view("v", schema_id="x")


def test_views_survive_reopening_the_store(base: Path) -> None:
    t = Tracker(base / "runs", db_path=base / "prov.duckdb")
    three_years(t)
    t.create_view("v_people", "person")
    t.close()
    again = Tracker(base / "runs", db_path=base / "prov.duckdb")
    try:
        assert query(again, "SELECT count(*) FROM v_people") == [(9,)]
    finally:
        again.close()


# --------------------------------------------------------------------------- #
# create_view: hot + cold, missing files, formats
# --------------------------------------------------------------------------- #
def test_hybrid_view_unions_hot_rows_and_cold_files(tracker: Tracker) -> None:
    arts = three_years(tracker)
    make_hot(tracker, arts[0], "run_2020")
    arts[0].path.unlink()  # hot rows no longer need the file

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = tracker.create_view("v_people", "person")
    assert (result.hot_artifacts, result.cold_artifacts) == (1, 2)
    assert result.missing_files == []
    assert "consist_year" in result.columns and not any(
        c.startswith("_dlt_") for c in result.columns
    )
    rows = query(
        tracker,
        "SELECT consist_year, consist_run_id, count(*), min(age) FROM v_people "
        "GROUP BY ALL ORDER BY consist_year",
    )
    assert rows == [
        (2020, "run_2020", 3, 20),
        (2030, "run_2030", 3, 21),
        (2040, "run_2040", 3, 22),
    ]
    ids = query(tracker, "SELECT DISTINCT consist_artifact_id FROM v_people ORDER BY 1")
    assert sorted(r[0] for r in ids) == sorted(str(a.id) for a in arts)


def test_modes_select_storage_tiers(tracker: Tracker) -> None:
    arts = three_years(tracker)
    make_hot(tracker, arts[1], "run_2030")
    profiled = [
        produce(tracker, f"p_{i}", persons(2), year=2000 + i, profile_file_schema=True)
        for i in range(2)
    ]
    sid = profiled[0].meta["schema_id"]  # the file profile (ingest may record another)
    make_hot(tracker, profiled[0], "p_0")

    hot = tracker.create_grouped_view("v_hot", schema_id=sid, mode="hot_only")
    cold = tracker.create_grouped_view("v_cold", schema_id=sid, mode="cold_only")
    both = tracker.create_grouped_view("v_both", schema_id=sid)
    assert (hot.hot_artifacts, hot.cold_artifacts) == (1, 0)
    assert (cold.hot_artifacts, cold.cold_artifacts) == (0, 1)
    assert (both.hot_artifacts, both.cold_artifacts) == (1, 1)
    assert query(tracker, "SELECT DISTINCT consist_run_id FROM v_hot") == [("p_0",)]
    assert query(tracker, "SELECT DISTINCT consist_run_id FROM v_cold") == [("p_1",)]
    assert query(tracker, "SELECT count(*) FROM v_both") == [(4,)]

    # the concept view takes the key's whole hot table (both ingested artifacts)
    concept = tracker.create_view("v_person_all", "person")
    assert concept.hot_artifacts == 2 and concept.cold_artifacts == 3
    assert query(tracker, "SELECT count(*) FROM v_person_all") == [(13,)]


def test_missing_cold_files_follow_the_policy(tracker: Tracker) -> None:
    arts = three_years(tracker, profile_file_schema=True)
    sid = arts[0].meta["schema_id"]
    arts[2].path.unlink()

    with pytest.warns(UserWarning, match="left out 1 missing file"):
        result = tracker.create_view("v_people", "person")
    assert result.missing_files == [arts[2].uri] and result.cold_artifacts == 2
    assert query(tracker, "SELECT count(*) FROM v_people") == [(6,)]

    with pytest.raises(FileNotFoundError, match="missing"):
        tracker.create_grouped_view("v_strict", schema_id=sid, missing_files="error")
    assert not view_exists(tracker, "v_strict")
    # an existing view is left untouched by a failed replacement
    with pytest.raises(FileNotFoundError):
        tracker.create_grouped_view("v_people", schema_id=sid, missing_files="error")
    assert query(tracker, "SELECT count(*) FROM v_people") == [(6,)]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = tracker.create_grouped_view("v_quiet", schema_id=sid, missing_files="skip_silent")
    assert quiet.missing_files == [arts[2].uri]
    assert query(tracker, "SELECT count(*) FROM v_quiet") == [(6,)]


def test_mixed_formats_union_by_column_name(tracker: Tracker) -> None:
    produce(tracker, "a", persons(2)[["person_id", "age"]], year=2020)
    produce(tracker, "b", persons(3)[["person_id", "income"]], fmt="csv", year=2030)
    result = tracker.create_view("v_mixed", "person")
    assert result.cold_artifacts == 2
    assert {"person_id", "age", "income"} <= set(result.columns)
    rows = query(
        tracker,
        "SELECT consist_year, count(age), count(income), count(*) FROM v_mixed "
        "GROUP BY ALL ORDER BY 1",
    )
    assert rows == [(2020, 2, 0, 2), (2030, 0, 3, 3)]


def test_same_file_logged_by_two_runs_gives_rows_per_artifact(tracker: Tracker) -> None:
    first = produce(tracker, "a", persons(2), year=2020)
    with tracker.start_run("b", "reader", year=2021):
        again = tracker.log_artifact(first.path, key="person", direction="input")
    assert again.id == first.id  # automatic input discovery: the same artifact
    assert query(tracker, "SELECT 1") == [(1,)]
    tracker.create_view("v_people", "person")
    assert query(tracker, "SELECT count(*) FROM v_people") == [(2,)]


def test_empty_concept_gives_an_empty_view(tracker: Tracker) -> None:
    result = tracker.create_view("v_nothing", "nobody")
    assert result.columns == [
        "consist_run_id",
        "consist_artifact_id",
        "consist_year",
        "consist_iteration",
    ]
    assert query(tracker, "SELECT count(*) FROM v_nothing") == [(0,)]
    cls = tracker.view(Person, key="nobody")
    assert tracker.run_query(select(cls)) == []


def test_if_exists_and_table_names(tracker: Tracker) -> None:
    three_years(tracker, profile_file_schema=True)
    tracker.create_view("v_people", "person")
    sid = tracker.find_artifacts(key="person")[0].meta["schema_id"]
    with pytest.raises(ValueError, match="already exists"):
        tracker.create_grouped_view("v_people", schema_id=sid, if_exists="error")
    tracker.create_grouped_view("v_people", schema_id=sid, if_exists="replace")
    with pytest.raises(ValueError, match="table"):
        tracker.create_view("run", "person")
    with pytest.raises(ValueError, match="table"):
        tracker.create_grouped_view("artifact", schema_id=sid)
    with pytest.raises(ValueError, match="view_name"):
        tracker.create_view("", "person")
    with pytest.raises(ValueError, match="concept_key"):
        tracker.create_view("v_x", "")


# --------------------------------------------------------------------------- #
# create_grouped_view
# --------------------------------------------------------------------------- #
def linkstats(tracker: Tracker) -> list[Any]:
    """Four 'beam' runs of 'linkstats' with indexed artifact facets (namespace = the model)."""
    out = []
    for i in range(4):
        facet = {
            "artifact_family": "linkstats",
            "phys_sim_iteration": i,
            "scale": 0.5 * i,
            "final": i == 3,
            "label": "2018" if i % 2 == 0 else "x",
        }
        out.append(
            produce(
                tracker,
                f"beam_{i}",
                pd.DataFrame({"link": [1, 2], "volume": [10.0 * i, 20.0 * i]}),
                key="linkstats",
                year=2018,
                model="beam",
                iteration=i,
                facet=facet,
                facet_index=True,
                profile_file_schema=True,
            )
        )
    return out


def test_grouped_view_facet_predicates(tracker: Tracker) -> None:
    arts = linkstats(tracker)
    sid = arts[0].meta["schema_id"]

    def runs(*params: str, **kwargs: Any) -> list[str]:
        tracker.create_grouped_view("v_ls", schema_id=sid, params=list(params), **kwargs)
        return [r[0] for r in query(tracker, "SELECT DISTINCT consist_run_id FROM v_ls ORDER BY 1")]

    assert runs() == ["beam_0", "beam_1", "beam_2", "beam_3"]
    assert runs("phys_sim_iteration>=2") == ["beam_2", "beam_3"]
    assert runs("phys_sim_iteration<=1", "artifact_family=linkstats") == ["beam_0", "beam_1"]
    assert runs("beam.phys_sim_iteration=2") == ["beam_2"]  # explicit namespace
    assert runs("phys_sim_iteration=2", namespace="beam") == ["beam_2"]
    assert runs("phys_sim_iteration=2", namespace="linkstats") == []  # not the key
    assert runs("phys_sim_iteration=2", namespace="other") == []
    assert runs("scale<=0.5") == ["beam_0", "beam_1"]
    assert runs("final=true") == ["beam_3"]
    assert runs("label=2018") == ["beam_0", "beam_2"]  # a numeric literal also matches text
    assert runs('label="2018"') == ["beam_0", "beam_2"]
    assert runs("artifact_family=other") == []


def test_grouped_view_attaches_typed_facets(tracker: Tracker) -> None:
    arts = linkstats(tracker)
    result = tracker.create_grouped_view(
        "v_ls",
        schema_id=arts[0].meta["schema_id"],
        namespace="beam",
        params=["artifact_family=linkstats", "phys_sim_iteration>=1"],
        attach_facets=["artifact_family", "phys_sim_iteration", "scale", "final", "missing"],
        drivers=["parquet"],
        mode="hybrid",
    )
    assert result.cold_artifacts == 3
    types = dict(
        query(
            tracker,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'v_ls'",
        )
    )
    assert types["facet_artifact_family"] == "VARCHAR"
    assert types["facet_phys_sim_iteration"] == "BIGINT"
    assert types["facet_scale"] == "DOUBLE"
    assert types["facet_final"] == "BOOLEAN"
    assert types["facet_missing"] == "VARCHAR"
    rows = query(
        tracker,
        "SELECT DISTINCT facet_phys_sim_iteration, facet_scale, facet_final, facet_missing, "
        "consist_iteration FROM v_ls ORDER BY 1",
    )
    assert rows == [(1, 0.5, False, None, 1), (2, 1.0, False, None, 2), (3, 1.5, True, None, 3)]


def test_grouped_view_without_system_columns(tracker: Tracker) -> None:
    arts = linkstats(tracker)
    result = tracker.create_grouped_view(
        "v_plain",
        schema_id=arts[0].meta["schema_id"],
        attach_facets=["beam.phys_sim_iteration"],
        include_system_columns=False,
    )
    assert result.columns == ["link", "volume", "facet_phys_sim_iteration"]
    assert query(tracker, "SELECT count(*) FROM v_plain") == [(8,)]


def test_grouped_view_run_filters_and_drivers(tracker: Tracker) -> None:
    produce(tracker, "parent", persons(1), year=1999, profile_file_schema=True)
    for i, year in enumerate([2020, 2030]):
        produce(
            tracker,
            f"p_{year}",
            persons(2),
            year=year,
            model="synth" if i == 0 else "other",
            parent_run_id="parent",
            iteration=i,
            profile_file_schema=True,
        )
    produce(tracker, "csv_run", persons(2), fmt="csv", year=2030, profile_file_schema=True)
    sid = tracker.find_artifacts(creator="p_2020")[0].meta["schema_id"]

    def runs(**kwargs: Any) -> list[str]:
        tracker.create_grouped_view("v_f", schema_compatible=True, schema=Person, **kwargs)
        return [r[0] for r in query(tracker, "SELECT DISTINCT consist_run_id FROM v_f ORDER BY 1")]

    assert runs() == ["csv_run", "p_2020", "p_2030", "parent"]
    assert runs(year=2030) == ["csv_run", "p_2030"]
    assert runs(model="other") == ["p_2030"]
    assert runs(parent_run_id="parent") == ["p_2020", "p_2030"]
    assert runs(run_id="p_2020") == ["p_2020"]
    assert runs(iteration=1, status="completed") == ["p_2030"]
    assert runs(drivers=["csv"]) == ["csv_run"]
    assert runs(status="failed") == []
    # a schema id selects only artifacts linked to that exact profile (parquet)
    tracker.create_grouped_view("v_sid", schema_id=sid)
    assert "csv_run" not in {r[0] for r in query(tracker, "SELECT consist_run_id FROM v_sid")}


def test_grouped_view_schema_model_resolution(tracker: Tracker) -> None:
    base_art = produce(tracker, "base", persons(2), year=2020, profile_file_schema=True)
    wide = persons(2)
    wide["height"] = [1.5, 1.6]
    wide_art = produce(tracker, "wide", wide, year=2030, profile_file_schema=True)
    assert base_art.meta["schema_id"] != wide_art.meta["schema_id"]

    def runs(**kwargs: Any) -> list[str]:
        tracker.create_grouped_view("v_s", **kwargs)
        return [r[0] for r in query(tracker, "SELECT DISTINCT consist_run_id FROM v_s ORDER BY 1")]

    assert runs(schema=Person) == ["base"]  # exact field names
    assert runs(schema=Person, schema_compatible=True) == ["base", "wide"]
    assert runs(schema_id=base_art.meta["schema_id"]) == ["base"]
    assert runs(schema_id=base_art.meta["schema_id"], schema_compatible=True) == ["base", "wide"]
    # no exact match: compatible subset/superset variants are used
    assert runs(schema=PersonIdAge) == ["base", "wide"]
    with pytest.raises(ValueError, match="matches no stored schema"):
        tracker.create_grouped_view("v_s2", schema=Unrelated)
    assert not view_exists(tracker, "v_s2")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"schema_id": "SID", "schema": Person}, "exactly one"),
        ({"schema_id": "blake3:unknown"}, "matches no stored schema"),
        ({"schema": dict}, "SQLModel class"),
        ({"params": "phys_sim_iteration=1"}, "list of strings"),
        ({"params": ["phys_sim_iteration!=1"]}, "invalid facet predicate"),
        ({"params": ["phys_sim_iteration==1"]}, "invalid facet predicate"),
        ({"params": ["phys_sim_iteration>1"]}, "invalid facet predicate"),
        ({"params": ["=1"]}, "invalid facet predicate"),
        ({"params": ["phys_sim_iteration="]}, "invalid facet predicate"),
        ({"params": ["phys_sim_iteration>=abc"]}, "numeric bound"),
        ({"params": [3]}, "strings"),
        ({"drivers": ["parquet", "xlsx"]}, "unknown names"),
        ({"drivers": "parquet"}, "list of strings"),
        ({"attach_facets": "scale"}, "list of strings"),
        ({"attach_facets": ["a.b", "a_b"]}, "two keys"),
        ({"mode": "warm"}, "mode"),
        ({"if_exists": "append"}, "if_exists"),
        ({"missing_files": "ignore"}, "missing_files"),
        ({"year": "2018"}, "year must be an int"),
        ({"iteration": True}, "iteration must be an int"),
        ({"model": ""}, "model must be"),
        ({"namespace": ""}, "namespace"),
        ({"include_system_columns": "no"}, "include_system_columns"),
    ],
)
def test_grouped_view_rejects_bad_arguments_before_creating(
    tracker: Tracker, kwargs: dict[str, Any], match: str
) -> None:
    arts = linkstats(tracker)
    sid = arts[0].meta["schema_id"]
    kwargs = {k: sid if isinstance(v, str) and v == "SID" else v for k, v in kwargs.items()}
    if kwargs and not {"schema_id", "schema"} & set(kwargs):
        kwargs["schema_id"] = sid  # a valid selector, so the other argument is at fault
    with pytest.raises(ValueError, match=match):
        tracker.create_grouped_view("v_bad", **kwargs)
    assert not view_exists(tracker, "v_bad")


# --------------------------------------------------------------------------- #
# Predicate parsing
# --------------------------------------------------------------------------- #
def test_parse_predicate_types_and_namespaces() -> None:
    known = {"beam", "asim"}
    p = parse_predicate("beam.phys_sim_iteration=2", None, known)
    assert (p.namespace, p.key, p.op, p.value) == ("beam", "phys_sim_iteration", "=", 2)
    p = parse_predicate("config.sub.key >= 1.5", "asim", known)
    assert (p.namespace, p.key, p.op, p.value) == ("asim", "config.sub.key", ">=", 1.5)
    assert parse_predicate("k<=-3", None, known).value == -3
    assert parse_predicate("k=TRUE", None, known).value is True
    assert parse_predicate("k=null", None, known).value is None
    assert parse_predicate("k='007'", None, known).value == "007"
    assert parse_predicate("k = a=b", None, known).value == "a=b"
    assert parse_value("1e3") == 1000.0 and parse_value("abc") == "abc"
    for bad in ("k", "k<3", "k>=inf", "k<=true", ">=3", "k=<3"):
        with pytest.raises(ValueError):
            parse_predicate(bad, None, known)
