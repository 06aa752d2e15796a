"""Ingest with a schema lands in the schema's table; offline ingest; the modelers' layout.

Real DuckDB files, real parquet files and real git repositories under
``tmp_path``; everything goes through the public API (``Tracker``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import Field, SQLModel, select

import consist
from _support import make_git_repo, write
from consist import Tracker


class LinkStats(SQLModel):
    __tablename__ = "link_stats"
    link_id: int = Field(primary_key=True)
    volume: float
    mode: str | None = None


class Household(SQLModel):  # no __tablename__: SQLModel's default is "household"
    hh_id: int
    size: int


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    consist.use_tracker(None)
    return tmp_path.resolve()


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base, schemas=[LinkStats])
    yield t
    t.close()


def linkstats(n: int = 3, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "link_id": list(range(offset, offset + n)),
            "volume": [10.0 * (i + 1) for i in range(n)],
            "mode": ["car"] * n,
        }
    )


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def tables(tracker: Tracker) -> list[str]:
    assert tracker.hot_data_store is not None
    return tracker.hot_data_store.tables()


def view_rows(tracker: Tracker, model: type) -> list[tuple[Any, ...]]:
    view = tracker.view(model)
    rows = tracker.run_query(select(view.link_id, view.volume, view.consist_run_id))
    return sorted(rows)


# --------------------------------------------------------------------------- #
# (a) the schema's table
# --------------------------------------------------------------------------- #
def test_registered_schema_ingest_writes_schema_table_and_view_shows_rows(
    tracker: Tracker, base: Path
) -> None:
    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    with tracker.start_run("assign_2030", "beam", year=2030):
        art = tracker.log_artifact(path, key="linkstats", schema=LinkStats)
        result = tracker.ingest(art)  # schema looked up by meta["schema_name"]
    assert art.meta["schema_name"] == "LinkStats"
    assert result.schema_name == "LinkStats"
    assert result.table == "global_tables.link_stats"
    assert tables(tracker) == ["link_stats"]  # not "linkstats" (the key)
    assert art.meta["ingested_table"] == "global_tables.link_stats"
    path.unlink()  # the view must read the ingested rows, not the file
    assert view_rows(tracker, LinkStats) == [
        (0, 10.0, "assign_2030"),
        (1, 20.0, "assign_2030"),
        (2, 30.0, "assign_2030"),
    ]
    assert tracker.views.LinkStats is not None
    # the rows also come back through load() from the schema's table
    loaded = tracker.load_df(tracker.get_artifact("linkstats"))
    assert sorted(loaded["link_id"]) == [0, 1, 2]


def test_schema_name_in_meta_selects_table_across_sessions(base: Path) -> None:
    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    first = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    with first.start_run("r1", "beam", year=2030):
        # no schemas registered here: the name is only recorded
        first.log_artifact(path, key="linkstats", schema_name="LinkStats")
    first.close()

    second = Tracker(
        base / "runs", db_path=base / "prov.duckdb", project_root=base, schemas=[LinkStats]
    )
    try:
        art = second.get_artifact("linkstats")
        assert art is not None and art.meta["schema_name"] == "LinkStats"
        result = second.ingest(art, run=second.get_run("r1"))  # offline, second session
        assert result.table == "global_tables.link_stats" and result.rows == 3
        assert [r[2] for r in view_rows(second, LinkStats)] == ["r1"] * 3
    finally:
        second.close()


def test_explicit_schema_uses_its_default_tablename(tracker: Tracker, base: Path) -> None:
    df = pd.DataFrame({"hh_id": [1, 2], "size": [3, 4]})
    with tracker.start_run("r1", "asim", year=2030):
        art = tracker.log_dataframe(df, "households", schema=Household)
    assert art.meta["ingested_table"] == "global_tables.household"
    view = tracker.view(Household)
    assert sorted(tracker.run_query(select(view.hh_id, view.size))) == [(1, 3), (2, 4)]


def test_without_schema_the_key_names_the_table(tracker: Tracker, base: Path) -> None:
    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    with tracker.start_run("r1", "beam"):
        art = tracker.log_artifact(path, key="Link Stats 2030")
        result = tracker.ingest(art)
    assert result.table == "global_tables.link_stats_2030" and result.schema_name is None


def test_plain_pydantic_schema_has_no_table_so_the_key_names_it(
    tracker: Tracker, base: Path
) -> None:
    from pydantic import BaseModel

    class Row(BaseModel):
        link_id: int
        volume: float
        mode: str | None = None

    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    with tracker.start_run("r1", "beam"):
        result = tracker.ingest(tracker.log_artifact(path, key="linkstats"), schema=Row)
    assert result.schema_name == "Row" and result.table == "global_tables.linkstats"


def test_unregistered_schema_name_warns_and_uses_the_key(base: Path) -> None:
    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    try:
        with t.start_run("r1", "beam"):
            art = t.log_artifact(path, key="linkstats", schema_name="LinkStats")
            with pytest.warns(UserWarning, match="not registered"):
                result = t.ingest(art)
        assert result.table == "global_tables.linkstats"
    finally:
        t.close()


def test_view_of_schema_covers_cold_artifacts_logged_with_it(tracker: Tracker, base: Path) -> None:
    hot = write_parquet(base / "data" / "hot.parquet", linkstats(2))
    cold = write_parquet(base / "data" / "cold.parquet", linkstats(2, offset=10))
    with tracker.start_run("hot_run", "beam", year=2030):
        tracker.ingest(tracker.log_artifact(hot, key="linkstats", schema=LinkStats))
    with tracker.start_run("cold_run", "beam", year=2040):
        tracker.log_artifact(cold, key="linkstats_2040", schema=LinkStats)  # never ingested
    assert view_rows(tracker, LinkStats) == [
        (0, 10.0, "hot_run"),
        (1, 20.0, "hot_run"),
        (10, 10.0, "cold_run"),
        (11, 20.0, "cold_run"),
    ]


# --------------------------------------------------------------------------- #
# (b) offline ingest of in-memory data
# --------------------------------------------------------------------------- #
def test_offline_ingest_of_dataframe_after_a_lookup(tracker: Tracker, base: Path) -> None:
    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    with tracker.start_run("r1", "beam", year=2030):
        art = tracker.log_artifact(path, key="extra")
    # Outside any run: a lookup leaves a partly read result on the shared
    # connection (fetchone), then the DataFrame is registered on it.
    run = tracker.get_run("r1")
    assert run is not None
    result = tracker.ingest(art, data=linkstats(4, offset=100), run=run)
    assert result.offline and result.mode == "dataframe" and result.rows == 4
    assert tracker.get_artifact(art.id).meta["ingested_rows"] == 4
    # and again, right after another single-row lookup
    assert tracker.get_run("r1") is not None
    again = tracker.ingest(art, data=linkstats(2, offset=200), run=tracker.get_run("r1"))
    assert again.replaced_rows == 4 and again.rows == 2


def test_offline_ingest_of_rows_with_dlt(tracker: Tracker, base: Path) -> None:
    pytest.importorskip("dlt")
    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    with tracker.start_run("r1", "beam", year=2030):
        art = tracker.log_artifact(path, key="events")
    rows = [{"event": "start", "t": 1}, {"event": "stop", "t": 2}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = tracker.ingest(art, data=rows, run=tracker.get_run("r1"))
    assert result.offline and result.loader == "dlt" and result.rows == 2
    assert (tracker.run_dir / ".consist" / "dlt").is_dir()  # pipelines under the tracker


def test_offline_load_of_ingested_rows_after_lookup(tracker: Tracker, base: Path) -> None:
    path = write_parquet(base / "data" / "ls.parquet", linkstats())
    with tracker.start_run("r1", "beam", year=2030):
        art = tracker.log_artifact(path, key="linkstats", schema=LinkStats)
        tracker.ingest(art)
    path.unlink()
    stored = tracker.get_artifact("linkstats")  # leaves nothing unfinished behind
    assert stored is not None
    frame = tracker.load_df(stored)
    assert list(frame["link_id"]) == [0, 1, 2]


# --------------------------------------------------------------------------- #
# The layout modelers use: run_dir and DB inside the project's git repository
# --------------------------------------------------------------------------- #
def test_schema_ingest_and_view_inside_a_git_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consist.use_tracker(None)
    repo = make_git_repo(
        tmp_path / "project",
        {"model.py": "def step():\n    return 1\n", "README.md": "model\n"},
    )
    monkeypatch.chdir(repo)
    write(repo / "logs" / "model.log", "started\n")  # untracked log beside the code
    data = write_parquet(repo / "data" / "linkstats.parquet", linkstats())  # untracked data
    tracker = Tracker(
        repo / "runs",
        db_path=repo / "runs" / "prov.duckdb",
        project_root=repo,
        schemas=[LinkStats],
    )
    try:
        with tracker.start_run("assign_2030", "beam", year=2030):
            art = tracker.log_artifact(data, key="linkstats", schema=LinkStats)
            tracker.ingest(art)
        with tracker.start_run("assign_2040", "beam", year=2040):
            art2 = tracker.log_artifact(data, key="linkstats", schema=LinkStats)
        write(repo / "logs" / "model.log", "started\nfinished\n")
        tracker.ingest(art2, data=linkstats(2, offset=50), run=tracker.get_run("assign_2040"))
        assert tables(tracker) == ["link_stats"]
        view = tracker.view(LinkStats)
        got = tracker.run_query(select(view.consist_year, view.link_id))
        assert sorted(got) == [(2030, 0), (2030, 1), (2030, 2), (2040, 50), (2040, 51)]
    finally:
        tracker.close()
