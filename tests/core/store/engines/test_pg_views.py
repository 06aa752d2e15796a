"""Views on a PostgreSQL store (team mode): SQL views over the server's global_tables.

The same runs are recorded and ingested into a DuckDB store and into a
database of the session's throwaway server; every view must show the same
rows and columns on both. Artifacts that were never ingested are left out on
PostgreSQL, with a warning naming them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
from sqlmodel import Field, SQLModel, select

from consist import Tracker


class Person(SQLModel):
    person_id: int = Field(primary_key=True)
    age: int
    name: str | None = None


def _tracker(run_dir: Path, url: str | None) -> Tracker:
    if url is None:
        return Tracker(
            run_dir,
            db_path=run_dir / "store.duckdb",
            project_root=run_dir.parent,
            schemas=[Person],
        )
    return Tracker(run_dir, db_url=url, project_root=run_dir.parent, schemas=[Person])


def _persons(n: int, offset: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": list(range(1, n + 1)),
            "age": [20 + offset + i for i in range(n)],
            "name": [f"p{i}" for i in range(n)],
        }
    )


def _produce(
    tracker: Tracker,
    run_id: str,
    frame: pd.DataFrame,
    *,
    key: str,
    year: int,
    iteration: int = 0,
    model: str = "synth",
    ingest: bool = True,
    **log_kwargs: Any,
) -> Any:
    with tracker.start_run(run_id, model, year=year, iteration=iteration):
        path = tracker.run_artifact_dir() / f"{key}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        art = tracker.log_artifact(path, key=key, **log_kwargs)
        if ingest:
            tracker.ingest(art)
    return art


def _scenario(tracker: Tracker) -> dict[str, Any]:
    """Three years of persons (one with an extra column), four linkstats with facets."""
    arts = {}
    for i, year in enumerate([2020, 2030, 2040]):
        frame = _persons(3, i)
        if year == 2040:
            frame["income"] = [1.5, 2.5, None]
        schema = {} if year == 2040 else {"schema": Person}  # 2040: the key's table, no schema
        arts[f"person_{year}"] = _produce(
            tracker, f"run_{year}", frame, key="person", year=year, **schema
        )
    for i in range(4):
        facet = {
            "artifact_family": "linkstats",
            "phys_sim_iteration": i,
            "scale": 0.5 * i,
            "final": i == 3,
        }
        arts[f"beam_{i}"] = _produce(
            tracker,
            f"beam_{i}",
            pd.DataFrame({"link": [1, 2], "volume": [10.0 * i, 20.0 * i]}),
            key="linkstats",
            year=2018,
            iteration=i,
            model="beam",
            facet=facet,
            facet_index=True,
            profile_file_schema=True,
        )
    return arts


def _rows(
    tracker: Tracker, view: str, columns: list[str], names: dict[str, str] | None = None
) -> list[tuple[Any, ...]]:
    """The view's rows, sorted; artifact ids replaced by ``names`` (ids differ per store)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    rows = tracker.run_query(f'SELECT {cols} FROM "{view}"')
    names = names or {}
    return sorted((tuple(names.get(v, v) for v in r) for r in rows), key=repr)


def _views(tracker: Tracker, arts: dict[str, Any]) -> dict[str, Any]:
    """Create every kind of view; what a user reads from each."""
    names = {str(art.id): name for name, art in arts.items()}
    out: dict[str, Any] = {}
    cls = tracker.view(Person)
    assert tracker.views.Person is cls
    found = tracker.run_query(select(cls).where(cls.consist_year == 2030))
    out["model"] = sorted((r.person_id, r.age, r.name, r.consist_run_id) for r in found)
    result = tracker.create_view("v_people", "person")
    out["create_view"] = (
        result.columns,
        result.hot_artifacts,
        result.cold_artifacts,
        _rows(tracker, "v_people", result.columns, names),
    )
    sid = tracker.find_artifacts(key="linkstats")[0].meta["schema_id"]
    grouped = tracker.create_grouped_view(
        "v_ls",
        schema_id=sid,
        namespace="beam",
        params=["artifact_family=linkstats", "phys_sim_iteration>=1"],
        attach_facets=["artifact_family", "phys_sim_iteration", "scale", "final", "missing"],
        drivers=["parquet"],
        year=2018,
    )
    out["grouped"] = (
        grouped.columns,
        grouped.hot_artifacts,
        _rows(tracker, "v_ls", grouped.columns, names),
    )
    plain = tracker.create_grouped_view(
        "v_plain", schema_id=sid, include_system_columns=False, mode="hot_only", iteration=2
    )
    out["plain"] = (plain.columns, _rows(tracker, "v_plain", plain.columns, names))
    empty = tracker.create_grouped_view("v_none", schema_id=sid, params=["scale>=100"])
    out["empty"] = (empty.columns, _rows(tracker, "v_none", empty.columns, names))
    return out


def test_views_show_the_same_rows_and_columns_as_on_duckdb(pg_url: str, tmp_path: Path) -> None:
    got = {}
    for engine, url in (("duckdb", None), ("postgresql", pg_url)):
        tracker = _tracker(tmp_path / engine, url)
        try:
            arts = _scenario(tracker)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # everything is ingested: nothing left out
                got[engine] = _views(tracker, arts)
        finally:
            tracker.close()
    assert got["postgresql"] == got["duckdb"]
    columns, hot, cold, rows = got["postgresql"]["create_view"]
    assert columns == [
        "person_id",
        "age",
        "name",
        "income",
        "consist_run_id",
        "consist_artifact_id",
        "consist_year",
        "consist_iteration",
    ]
    assert (hot, cold, len(rows)) == (3, 0, 9)
    assert got["postgresql"]["model"] == [
        (1, 21, "p0", "run_2030"),
        (2, 22, "p1", "run_2030"),
        (3, 23, "p2", "run_2030"),
    ]
    grouped_columns, hot, grouped_rows = got["postgresql"]["grouped"]
    assert hot == 3
    facets = [grouped_columns.index(f"facet_{k}") for k in ("phys_sim_iteration", "scale")]
    facets += [grouped_columns.index("facet_final"), grouped_columns.index("facet_missing")]
    assert {tuple(r[i] for i in facets) for r in grouped_rows} == {
        (1, 0.5, False, None),
        (2, 1.0, False, None),
        (3, 1.5, True, None),
    }
    assert got["postgresql"]["plain"] == (["link", "volume"], [(1, 20.0), (2, 40.0)])
    assert got["postgresql"]["empty"][1] == []


def test_view_columns_are_typed_by_the_server(pg_url: str, tmp_path: Path) -> None:
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        _scenario(tracker)
        sid = tracker.find_artifacts(key="linkstats")[0].meta["schema_id"]
        tracker.create_grouped_view(
            "v_ls", schema_id=sid, attach_facets=["phys_sim_iteration", "scale", "final"]
        )
        tracker.view(Person, key="nobody")  # nothing selected: the model's columns, no rows
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as con:
            types = dict(
                con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'v_ls'"
                ).fetchall()
            )
            nobody = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'v_nobody' ORDER BY ordinal_position"
            ).fetchall()
            kinds = con.execute(
                "SELECT table_name, table_type FROM information_schema.tables "
                "WHERE table_name IN ('v_ls', 'v_nobody') ORDER BY 1"
            ).fetchall()
        assert types["facet_phys_sim_iteration"] == "bigint"
        assert types["facet_scale"] == "double precision"
        assert types["facet_final"] == "boolean"
        assert types["volume"] == "double precision" and types["consist_year"] == "integer"
        assert nobody[:3] == [("person_id", "bigint"), ("age", "bigint"), ("name", "text")]
        assert kinds == [("v_ls", "VIEW"), ("v_nobody", "VIEW")]
    finally:
        tracker.close()


def test_a_view_is_recreated_when_its_columns_change(pg_url: str, tmp_path: Path) -> None:
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        _produce(tracker, "r1", _persons(2, 0), key="person", year=2020)
        first = tracker.create_view("v_people", "person")
        assert "income" not in first.columns
        frame = _persons(1, 5)
        frame["income"] = [3.5]
        _produce(tracker, "r2", frame, key="person", year=2021)
        second = tracker.create_view("v_people", "person")  # CREATE OR REPLACE would refuse
        assert second.columns[3:] == ["income", *first.columns[3:]]  # data, then provenance
        rows = _rows(tracker, "v_people", ["person_id", "income", "consist_run_id"])
        assert rows == [(1, 3.5, "r2"), (1, None, "r1"), (2, None, "r1")]
        _produce(tracker, "r3", pd.DataFrame({"link": [7]}), key="links", year=2022)
        third = tracker.create_view("v_people", "links")  # other columns entirely
        assert third.columns[0] == "link"
        assert tracker.run_query('SELECT link, consist_run_id FROM "v_people"') == [(7, "r3")]
        tracker.create_view("v_people", "person")
        with pytest.raises(ValueError, match="already exists"):
            tracker.create_grouped_view("v_people", schema=Person, if_exists="error")
        with pytest.raises(ValueError, match="name of a table"):
            tracker.create_view("run", "person")
        other = _tracker(tmp_path / "other", pg_url)  # another machine sees the view
        try:
            assert len(other.run_query("SELECT * FROM v_people")) == 3
        finally:
            other.close()
    finally:
        tracker.close()


def test_artifacts_never_ingested_are_left_out_naming_them(pg_url: str, tmp_path: Path) -> None:
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        hot = _produce(tracker, "r1", _persons(2, 0), key="person", year=2020, schema=Person)
        cold = _produce(
            tracker, "r2", _persons(3, 10), key="person", year=2021, schema=Person, ingest=False
        )
        with pytest.warns(UserWarning, match=r"not ingested.*person \(.*person\.parquet\)") as w:
            result = tracker.create_view("v_people", "person")
        assert "tracker.ingest(artifact)" in str(w[0].message)
        assert (result.hot_artifacts, result.cold_artifacts) == (1, 0)
        assert result.skipped == [cold.uri]
        rows = _rows(tracker, "v_people", ["consist_artifact_id"])
        assert set(rows) == {(str(hot.id),)}
        with pytest.warns(UserWarning, match="not ingested"):
            cls = tracker.view(Person)
        assert len(tracker.run_query(select(cls))) == 2
        # missing_files is the policy for them: silent, or an error before anything is made.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            quiet = tracker.create_grouped_view(
                "v_quiet", schema=Person, missing_files="skip_silent"
            )
        assert quiet.skipped == [cold.uri] and quiet.hot_artifacts == 1
        with pytest.raises(ValueError, match=r"not ingested.*tracker\.ingest"):
            tracker.create_grouped_view("v_strict", schema=Person, missing_files="error")
        assert tracker.run_query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'v_strict'"
        ) == [(0,)]
        with pytest.raises(ValueError, match=r"cold_only.*db_url.*ingest"):
            tracker.create_grouped_view("v_cold", schema=Person, mode="cold_only")
        # hot_only never looks at files: no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tracker.create_grouped_view("v_hot", schema=Person, mode="hot_only")
        # The fix the warning names: ingest it, and the view has its rows.
        tracker.ingest(cold, run=tracker.get_run("r2"))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = tracker.create_view("v_people", "person")
        assert result.hot_artifacts == 2 and result.skipped == []
        assert len(_rows(tracker, "v_people", ["person_id"])) == 5
    finally:
        tracker.close()
