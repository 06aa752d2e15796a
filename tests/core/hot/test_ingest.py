"""Ingestion into ``global_tables``: files, DataFrames, dict rows (dlt), schemas, fallback.

Real parquet/csv files written by the tests, a real DuckDB file and real dlt
pipelines, all under ``tmp_path``; nothing is mocked except the absence of
dlt (one test hides the module to check the install hint).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import Field, SQLModel

import consist
from consist import Tracker
from consist.core.hot.ingest import IngestResult
from consist.core.store.hot_store import (
    PROVENANCE_COLUMNS,
    IngestSchemaError,
    table_name_for,
)

PROVENANCE = [name for name, _ in PROVENANCE_COLUMNS]


# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #
@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # project_root="." is never the repository
    consist.use_tracker(None)
    return tmp_path.resolve()


def sql(tracker: Tracker, query: str, params: list[Any] | None = None) -> list[tuple]:
    assert tracker.store is not None
    with tracker.store.connections.connection() as con:
        return con.execute(query, params or []).fetchall()


def columns_of(tracker: Tracker, table: str) -> dict[str, str]:
    return dict(tracker.hot_data_store.table_columns(table))


def trips_frame(n: int = 4, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trip_id": list(range(offset, offset + n)),
            "mode": ["car", "bike", "walk", "bus"][:n] * (n // 4 or 1),
            "distance": [1.5 * (i + 1) for i in range(n)],
        }
    ).head(n)


def write_parquet(base: Path, name: str, df: pd.DataFrame) -> Path:
    path = base / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def write_csv(base: Path, name: str, text: str) -> Path:
    path = base / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Trip(SQLModel, table=True):
    __tablename__ = "trip_schema_test"
    trip_id: int = Field(primary_key=True)
    mode: str
    distance: float | None = None


class TripWithDefault(SQLModel):
    trip_id: int
    mode: str
    distance: float
    source: str = "survey"


# --------------------------------------------------------------------------- #
# Files (DuckDB native path)
# --------------------------------------------------------------------------- #
def test_parquet_file_online_adds_provenance_and_keeps_types(tracker: Tracker, base: Path) -> None:
    path = write_parquet(base, "trips.parquet", trips_frame())
    with tracker.start_run("r1", "model", year=2030, iteration=2):
        art = tracker.log_artifact(path, key="trips", direction="input")
        result = tracker.ingest(art)

    assert isinstance(result, IngestResult)
    assert (result.table, result.table_name, result.rows) == ("global_tables.trips", "trips", 4)
    assert (result.mode, result.loader, result.run_id, result.offline) == (
        "file",
        "duckdb",
        "r1",
        False,
    )
    assert result.created_table and result.replaced_rows == 0
    assert result.to_dict()["rows"] == 4
    cols = columns_of(tracker, "trips")
    assert list(cols) == ["trip_id", "mode", "distance", *PROVENANCE]
    assert cols["trip_id"] == "BIGINT" and cols["distance"] == "DOUBLE"
    assert cols["consist_run_id"] == "VARCHAR" and cols["consist_artifact_id"] == "VARCHAR"
    assert cols["consist_year"] == "INTEGER" and cols["consist_iteration"] == "INTEGER"
    rows = sql(
        tracker,
        "SELECT DISTINCT consist_run_id, consist_artifact_id, consist_year, consist_iteration "
        "FROM global_tables.trips",
    )
    assert rows == [("r1", str(art.id), 2030, 2)]
    assert sql(tracker, "SELECT trip_id, mode FROM global_tables.trips ORDER BY trip_id")[0] == (
        0,
        "car",
    )


def test_csv_file_online(tracker: Tracker, base: Path) -> None:
    path = write_csv(base, "counts.csv", "zone,count\n1,10\n2,20\n3,30\n")
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="counts", direction="input")
        result = tracker.ingest(art)
    assert result.rows == 3 and result.mode == "file"
    assert sql(
        tracker, "SELECT sum(count), count(DISTINCT consist_run_id) FROM global_tables.counts"
    )[0] == (60, 1)


def test_offline_ingest_tags_rows_with_the_given_run(tracker: Tracker, base: Path) -> None:
    path = write_csv(base, "counts.csv", "zone,count\n1,10\n2,20\n")
    with tracker.start_run("producer", "model", year=2040):
        art = tracker.log_artifact(path, key="counts")
    run = tracker.get_run("producer")
    assert run is not None
    result = tracker.ingest(art, run=run)  # no active run: offline mode
    assert result.offline and result.run_id == "producer"
    assert sql(
        tracker, "SELECT DISTINCT consist_run_id, consist_year FROM global_tables.counts"
    ) == [("producer", 2040)]
    # Offline while another run is active still tags with the given run.
    with tracker.start_run("other", "model"):
        again = tracker.ingest(tracker.get_artifact("counts"), run=run)
    assert again.offline and again.run_id == "producer" and again.replaced_rows == 2


def test_repeated_ingest_replaces_rows_and_runs_accumulate(tracker: Tracker, base: Path) -> None:
    first = write_parquet(base, "a.parquet", trips_frame(4))
    second = write_parquet(base, "b.parquet", trips_frame(2, offset=100))
    with tracker.start_run("r1", "model", year=2020):
        art1 = tracker.log_artifact(first, key="trips", direction="input")
        tracker.ingest(art1)
        again = tracker.ingest(art1)
    assert again.rows == 4 and again.replaced_rows == 4 and not again.created_table
    with tracker.start_run("r2", "model", year=2030):
        art2 = tracker.log_artifact(second, key="trips", direction="input")
        tracker.ingest(art2)
    counts = sql(
        tracker,
        "SELECT consist_run_id, count(*) FROM global_tables.trips GROUP BY 1 ORDER BY 1",
    )
    assert counts == [("r1", 4), ("r2", 2)]
    hot = tracker.hot_data_store
    assert hot.ingested_artifacts("trips") == {str(art1.id): "trips", str(art2.id): "trips"}
    assert hot.ingested_artifacts("other") == {}
    assert hot.row_count("trips", artifact_id=art2.id) == 2
    (record,) = hot.ingest_records(artifact_id=art1.id)
    assert (record.row_count, record.mode, record.run_id) == (4, "file", "r1")
    assert record.columns == ("trip_id", "mode", "distance")
    assert record.source_hash == art1.hash and record.qualified_name == "global_tables.trips"


def test_artifact_meta_records_the_ingest(tracker: Tracker, base: Path) -> None:
    path = write_parquet(base, "trips.parquet", trips_frame())
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="Trips 2030", direction="input")
        tracker.ingest(art, profile_schema=False)
        assert art.meta["is_ingested"] is True
    expected = {
        "is_ingested": True,
        "ingested_table": "global_tables.trips_2030",
        "ingested_rows": 4,
        "ingested_run_id": "r1",
    }
    stored = tracker.get_artifact(art.id)
    assert stored is not None and {k: stored.meta.get(k) for k in expected} == expected
    linked = tracker.get_run_inputs("r1")["Trips 2030"]
    assert linked.meta["ingested_rows"] == 4
    snapshot = json.loads((base / "runs" / "consist_runs" / "r1.json").read_text())
    text = json.dumps(snapshot)
    assert '"ingested_table": "global_tables.trips_2030"' in text


def test_table_name_rule() -> None:
    assert table_name_for("trips") == "trips"
    assert table_name_for("Trips 2030") == "trips_2030"
    assert table_name_for("link-stats.v2") == "link_stats_v2"
    assert table_name_for("2030_trips") == "_2030_trips"
    with pytest.raises(ValueError):
        table_name_for("")


# --------------------------------------------------------------------------- #
# DataFrames and dict rows
# --------------------------------------------------------------------------- #
def test_dataframe_ingest_and_schema_evolution(tracker: Tracker, base: Path) -> None:
    path = write_parquet(base, "trips.parquet", trips_frame())
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="trips", direction="input")
        tracker.ingest(art)
        extra = pd.DataFrame({"trip_id": [7], "mode": ["tram"], "co2": [0.5]})
        other = tracker.log_artifact(
            write_parquet(base, "extra.parquet", extra), key="trips", direction="input"
        )
        result = tracker.ingest(other, data=extra)
    assert (result.mode, result.loader, result.rows) == ("dataframe", "duckdb", 1)
    assert result.added_columns == ("co2",)
    rows = sql(tracker, "SELECT trip_id, distance, co2 FROM global_tables.trips ORDER BY trip_id")
    assert rows[0] == (0, 1.5, None) and rows[-1] == (7, None, 0.5)


def test_dict_rows_go_through_dlt_with_evolution(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model", year=2025):
        art = tracker.log_artifact(write_csv(base, "e.csv", "a\n1\n"), key="events")
        first = tracker.ingest(art, data=[{"id": 1, "kind": "start"}, {"id": 2, "kind": "stop"}])
        rows = ({"id": i, "kind": "tick", "payload": {"v": i}} for i in range(3))
        art2 = tracker.log_artifact(write_csv(base, "f.csv", "a\n2\n"), key="events")
        second = tracker.ingest(art2, data=rows)
    assert (first.mode, first.loader, first.rows) == ("rows", "dlt", 2)
    assert first.load_info is not None
    assert second.rows == 3 and second.added_columns == ("payload",)
    cols = columns_of(tracker, "events")
    assert list(cols) == ["id", "kind", "payload", *PROVENANCE]  # data, then provenance
    assert not any(c.startswith("_dlt") for c in cols)
    payloads = sql(
        tracker,
        "SELECT id, payload FROM global_tables.events WHERE consist_artifact_id = ? ORDER BY id",
        [str(art2.id)],
    )
    assert json.loads(payloads[2][1]) == {"v": 2}
    assert (
        sql(tracker, "SELECT count(*) FROM global_tables.events WHERE payload IS NULL")[0][0] == 2
    )
    # Keys are kept as they are (dlt's "direct" naming), like file columns.
    with tracker.start_run("r2", "model"):
        art3 = tracker.log_artifact(write_csv(base, "g.csv", "a\n3\n"), key="Named")
        tracker.ingest(art3, data=[{"Trip Id": 1, "CamelCase": "x"}])
    assert list(columns_of(tracker, "named"))[:2] == ["Trip Id", "CamelCase"]


def test_mixed_value_types_in_rows_name_the_column(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "e.csv", "a\n1\n"), key="mixed")
        with pytest.raises(IngestSchemaError) as err:
            tracker.ingest(art, data=[{"id": 1, "v": 1}, {"id": 2, "v": "text"}])
    assert err.value.columns == ["v"]
    assert tracker.hot_data_store.tables() == []


def test_type_conflict_with_existing_table_writes_nothing(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "c.csv", "zone,count\n1,10\n"), key="counts")
        tracker.ingest(art)
        bad = write_csv(base, "bad.csv", "zone,count\nx,10\n")
        art2 = tracker.log_artifact(bad, key="counts")
        with pytest.raises(IngestSchemaError, match="'zone'") as err:
            tracker.ingest(art2)
    assert err.value.columns == ["zone"]
    assert sql(tracker, "SELECT count(*) FROM global_tables.counts")[0][0] == 1
    assert str(art2.id) not in tracker.hot_data_store.ingested_artifacts("counts")


def test_empty_rows_and_reserved_columns_are_rejected(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "e.csv", "a\n1\n"), key="events")
        with pytest.raises(ValueError, match="no rows"):
            tracker.ingest(art, data=iter([]))
        with pytest.raises(ValueError, match="consist_run_id"):
            tracker.ingest(art, data=pd.DataFrame({"consist_run_id": ["x"]}))


# --------------------------------------------------------------------------- #
# Schemas
# --------------------------------------------------------------------------- #
def test_schema_casts_to_field_types(tracker: Tracker, base: Path) -> None:
    df = pd.DataFrame(
        {
            "trip_id": pd.Series([1, 2], dtype="int32"),
            "mode": ["car", "bus"],
            "distance": [1.0, None],
        }
    )
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_parquet(base, "t.parquet", df), key="trips")
        result = tracker.ingest(art, schema=Trip)
    assert result.schema_name == "Trip"
    assert result.table == "global_tables.trip_schema_test"  # the schema's __tablename__
    cols = columns_of(tracker, "trip_schema_test")
    assert cols["trip_id"] == "BIGINT" and cols["distance"] == "DOUBLE"


def test_schema_default_fills_missing_column(tracker: Tracker, base: Path) -> None:
    df = pd.DataFrame({"trip_id": [1], "mode": ["car"], "distance": [2.0]})
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_parquet(base, "t.parquet", df), key="trips")
        tracker.ingest(art, schema=TripWithDefault)
    # no declared __tablename__: SQLModel's default, the class name in lower case
    assert sql(tracker, "SELECT source FROM global_tables.tripwithdefault") == [("survey",)]


@pytest.mark.parametrize(
    ("frame", "column", "message"),
    [
        (pd.DataFrame({"trip_id": [1], "distance": [1.0]}), "mode", "missing"),
        (pd.DataFrame({"trip_id": [1], "mode": ["car"], "speed": [3]}), "speed", "not a field"),
        (pd.DataFrame({"trip_id": ["x1"], "mode": ["car"]}), "trip_id", "cannot be converted"),
        (pd.DataFrame({"trip_id": [1.5], "mode": ["car"]}), "trip_id", "cannot be converted"),
        (pd.DataFrame({"trip_id": [1], "mode": [None]}), "mode", "NULL"),
    ],
)
def test_strict_schema_errors_name_the_column(
    tracker: Tracker, base: Path, frame: pd.DataFrame, column: str, message: str
) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_parquet(base, "t.parquet", frame), key="trips")
        for data in (None, frame):  # file path and DataFrame path
            with pytest.raises(IngestSchemaError, match=message) as err:
                tracker.ingest(art, data=data, schema=Trip)
            assert column in err.value.columns
            assert f"column {column!r}" in str(err.value) and "Nothing was written" in str(
                err.value
            )
    assert tracker.hot_data_store.tables() == []
    assert tracker.hot_data_store.ingested_artifacts() == {}


def test_schema_validates_dict_rows_before_writing(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "e.csv", "a\n1\n"), key="trips")
        with pytest.raises(IngestSchemaError, match="'mode'"):
            tracker.ingest(art, data=[{"trip_id": 1, "distance": 2.0}], schema=Trip)
        ok = tracker.ingest(art, data=[{"trip_id": 1, "mode": "car"}], schema=Trip)
    assert ok.rows == 1
    assert sql(tracker, "SELECT trip_id, mode, distance FROM global_tables.trip_schema_test") == [
        (1, "car", None)
    ]


def test_registered_schema_is_found_by_artifact_meta(base: Path) -> None:
    tracker = Tracker(
        base / "runs", db_path=base / "prov.duckdb", project_root=base, schemas=[Trip]
    )
    try:
        bad = write_parquet(base, "bad.parquet", pd.DataFrame({"trip_id": [1], "speed": [2]}))
        good = write_parquet(base, "good.parquet", pd.DataFrame({"trip_id": [1], "mode": ["car"]}))
        with tracker.start_run("r1", "model"):
            art_bad = tracker.log_artifact(bad, key="trips", schema=Trip)
            assert art_bad.meta["schema_name"] == "Trip"
            with pytest.raises(IngestSchemaError, match="'speed'"):
                tracker.ingest(art_bad)
            art_good = tracker.log_artifact(good, key="trips", schema=Trip)
            assert tracker.ingest(art_good).schema_name == "Trip"
        # An unregistered name warns and ingests without validation.
        other = Tracker(base / "runs2", db_path=base / "prov2.duckdb", project_root=base)
        try:
            with other.start_run("r2", "model"):
                art = other.log_artifact(bad, key="trips", schema=Trip)
                with pytest.warns(UserWarning, match="not registered"):
                    assert other.ingest(art).schema_name is None
        finally:
            other.close()
    finally:
        tracker.close()


def test_schema_argument_must_be_a_model_class(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "c.csv", "a\n1\n"), key="c")
        with pytest.raises(TypeError, match="schema"):
            tracker.ingest(art, schema=dict)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #
def test_ingest_outside_a_run_or_without_database(tracker: Tracker, base: Path) -> None:
    path = write_csv(base, "c.csv", "a\n1\n")
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="c")
    with pytest.raises(RuntimeError, match="active run"):
        tracker.ingest(art)
    no_db = Tracker(base / "journal_only", project_root=base)
    with no_db.start_run("r1", "model"):
        art2 = no_db.log_artifact(path, key="c")
        with pytest.raises(RuntimeError, match="db_path"):
            no_db.ingest(art2)
    assert no_db.hot_data_store is None


def test_bad_arguments(tracker: Tracker, base: Path) -> None:
    h5 = base / "data" / "x.h5"
    h5.parent.mkdir(parents=True, exist_ok=True)
    h5.write_bytes(b"not really hdf5")
    path = write_csv(base, "c.csv", "a\n1\n")
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="c")
        with pytest.raises(TypeError, match="artifact"):
            tracker.ingest(str(path))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="run"):
            tracker.ingest(art, run="r1")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="data"):
            tracker.ingest(art, data={"a": 1})
        with pytest.raises(TypeError, match="data"):
            tracker.ingest(art, data=42)
        other = tracker.log_artifact(h5, key="h5")
        with pytest.raises(ValueError, match="driver 'h5'"):
            tracker.ingest(other)
        path.unlink()
        with pytest.raises(FileNotFoundError, match="missing"):
            tracker.ingest(art)


def test_missing_dlt_names_the_extra(
    tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dlt", None)  # import dlt -> ImportError
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "c.csv", "a\n1\n"), key="c")
        with pytest.raises(ImportError, match=r"pip install 'consist\[ingest\]'"):
            tracker.ingest(art, data=[{"a": 1}])
        assert tracker.ingest(art, data=pd.DataFrame({"a": [1]})).rows == 1  # no dlt needed


def test_dlt_stays_inside_run_dir(
    tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = base / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("RUNTIME__DLTHUB_TELEMETRY", raising=False)
    monkeypatch.delenv("DLT_DATA_DIR", raising=False)
    var_dlt_before = os.path.exists("/var/dlt")
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "c.csv", "a\n1\n"), key="c")
        tracker.ingest(art, data=[{"a": 1, "b": "x"}])
    assert not (home / ".dlt").exists()
    assert os.path.exists("/var/dlt") == var_dlt_before
    assert "RUNTIME__DLTHUB_TELEMETRY" not in os.environ and "DLT_DATA_DIR" not in os.environ
    dlt_dir = base / "runs" / ".consist" / "dlt"
    assert tracker.dlt_dir == dlt_dir and dlt_dir.is_dir()
    leftovers = [p for p in dlt_dir.rglob("*") if p.is_file() and p.name != ".anonymous_id"]
    assert leftovers == []  # pipeline folders and staging files are removed
    outside = [p for p in base.rglob("*") if ".dlt" in p.parts or p.suffix == ".duckdb"]
    assert outside == [base / "prov.duckdb"]


# --------------------------------------------------------------------------- #
# Profiling hook and database fallback for load / load_df
# --------------------------------------------------------------------------- #
def test_profile_hook_is_called_and_its_meta_persisted(tracker: Tracker, base: Path) -> None:
    calls: list[tuple[Any, ...]] = []

    def hook(artifact: Any, table: str, *, schema: Any = None) -> dict[str, Any]:
        calls.append((artifact.key, table, schema))
        return {"schema_id": "test-schema"}

    tracker._profile_ingested_table = hook  # type: ignore[attr-defined]
    path = write_parquet(base, "t.parquet", trips_frame())
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="trips")
        tracker.ingest(art, schema=Trip)
        tracker.ingest(art, profile_schema=False)
    assert calls == [("trips", "global_tables.trip_schema_test", Trip)]
    assert tracker.get_artifact(art.id).meta["schema_id"] == "test-schema"


def test_load_falls_back_to_ingested_rows(tracker: Tracker, base: Path) -> None:
    df = trips_frame()
    path = write_parquet(base, "trips.parquet", df)
    with tracker.start_run("r1", "model", year=2030):
        art = tracker.log_artifact(path, key="trips")
        tracker.ingest(art)
        other = tracker.log_artifact(
            write_parquet(base, "o.parquet", pd.DataFrame({"trip_id": [9], "extra": [1]})),
            key="trips",
        )
        tracker.ingest(other)  # adds a column the first artifact does not have
    never = None
    with tracker.start_run("r2", "model"):
        never = tracker.log_artifact(write_csv(base, "n.csv", "a\n1\n"), key="never")
    path.unlink()
    (base / "data" / "n.csv").unlink()

    loaded = tracker.load_df(art)
    pd.testing.assert_frame_equal(loaded, df)
    rel = consist.load(art, tracker=tracker)
    assert sorted(rel.fetchall()) == sorted(df.itertuples(index=False, name=None))
    with consist.use_tracker(tracker):
        assert consist.load_df(art, columns=["mode"])["mode"].tolist() == df["mode"].tolist()
    with_prov = tracker.load_df(art, include_provenance=True)
    assert list(with_prov.columns) == [*df.columns, *PROVENANCE]
    assert set(with_prov["consist_year"]) == {2030}
    fresh = tracker.get_artifact(art.id)  # from the database, path resolved locally
    assert tracker.load(fresh).shape == (4, 3)
    with pytest.raises(FileNotFoundError):
        tracker.load_df(never)
    with pytest.raises(KeyError, match="nope"):
        tracker.load_df(art, columns=["nope"])


def test_load_with_file_present_is_unchanged(tracker: Tracker, base: Path) -> None:
    path = write_csv(base, "c.csv", "a,b\n1,x\n")
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="c")
        tracker.ingest(art)
    assert tracker.load_df(art, include_provenance=True).columns.tolist() == ["a", "b"]
    assert tracker.load(art).columns == ["a", "b"]


def test_store_is_released_after_ingest(tracker: Tracker, base: Path) -> None:
    import duckdb

    path = write_parquet(base, "trips.parquet", trips_frame())
    with tracker.start_run("r1", "model"):
        tracker.ingest(tracker.log_artifact(path, key="trips"))
    tracker.close()
    con = duckdb.connect(str(base / "prov.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM global_tables.trips").fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM ingested_artifact").fetchone() == (1,)
    finally:
        con.close()


def test_timestamps_and_dates_round_trip(tracker: Tracker, base: Path) -> None:
    df = pd.DataFrame(
        {
            "at": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:30"]),
            "day": [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = write_parquet(base, "ts.parquet", df)
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="times")
        tracker.ingest(art)
    path.unlink()
    rows = tracker.load(art).fetchall()
    assert rows[0][0] == dt.datetime(2024, 1, 1, 10, 0) and rows[1][1] == dt.date(2024, 1, 2)


class ZoneCount(SQLModel):
    zip: str
    n: int


def test_csv_text_fields_keep_their_text(tracker: Tracker, base: Path) -> None:
    path = write_csv(base, "z.csv", "zip,n\n007,1\n010,2\n")
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(path, key="zones")
        tracker.ingest(art, schema=ZoneCount)
    assert sql(tracker, "SELECT zip, n FROM global_tables.zonecount ORDER BY n") == [
        ("007", 1),
        ("010", 2),
    ]


def test_dict_rows_keep_python_types(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "e.csv", "a\n1\n"), key="stamps")
        tracker.ingest(art, data=[{"label": "2024-01-01T00:00:00", "n": 1, "ok": True}])
    cols = columns_of(tracker, "stamps")
    assert (cols["label"], cols["n"], cols["ok"]) == ("VARCHAR", "BIGINT", "BOOLEAN")


def test_small_single_row_group_parquet_is_staged(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from consist.core.store import hot_store

    table = pa.table({"a": list(range(1000)), "b": [float(i) for i in range(1000)]})
    one = base / "one.parquet"
    many = base / "many.parquet"
    pq.write_table(table, one)
    pq.write_table(table, many, row_group_size=100)
    con = duckdb.connect()
    try:
        con.execute("SET threads = 4")
        assert hot_store._should_stage(con, hot_store.sql_literal(str(one)))
        assert not hot_store._should_stage(con, hot_store.sql_literal(str(many)))
        monkeypatch.setattr(hot_store, "STAGE_MAX_BYTES", 10)
        assert not hot_store._should_stage(con, hot_store.sql_literal(str(one)))
    finally:
        con.close()
    # Staged or not, rows arrive complete and in file order.
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    try:
        with t.start_run("r1", "model"):
            a1 = t.log_artifact(one, key="nums")
            a2 = t.log_artifact(many, key="nums")
            t.ingest(a1)
            t.ingest(a2)
        for art in (a1, a2):
            got = t.hot_data_store.read_artifact_rows(art.id)
            assert got.column("a").to_pylist() == list(range(1000))
        assert sql(t, "SELECT count(*) FROM duckdb_tables() WHERE temporary") == [(0,)]
    finally:
        t.close()


def test_categoricals_are_stored_as_text(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_artifact(write_csv(base, "e.csv", "a\n1\n"), key="modes")
        tracker.ingest(art, data=pd.DataFrame({"mode": pd.Categorical(["car", "bus"])}))
        art2 = tracker.log_artifact(write_csv(base, "f.csv", "a\n2\n"), key="modes")
        tracker.ingest(art2, data=pd.DataFrame({"mode": pd.Categorical(["tram"])}))
    assert columns_of(tracker, "modes")["mode"] == "VARCHAR"
    assert sorted(r[0] for r in sql(tracker, "SELECT mode FROM global_tables.modes")) == [
        "bus",
        "car",
        "tram",
    ]
