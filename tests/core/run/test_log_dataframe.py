"""``Tracker.log_dataframe``: write, log, and ingest when a schema is given.

Real files and a real DuckDB file under ``tmp_path``; nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import SQLModel

import consist
from consist import Tracker
from consist.core.store.hot_store import IngestSchemaError


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    consist.use_tracker(None)
    return tmp_path.resolve()


class Household(SQLModel):
    hh_id: int
    size: int
    income: float | None = None


def households() -> pd.DataFrame:
    return pd.DataFrame({"hh_id": [1, 2, 3], "size": [2, 4, 1], "income": [10.0, None, 7.5]})


def test_parquet_default_path_and_output_artifact(tracker: Tracker) -> None:
    df = households()
    with tracker.start_run("r1", "model"):
        art = tracker.log_dataframe(df, "households")
        expected = tracker.run_artifact_dir() / "households.parquet"
    assert art.path == expected and expected.is_file()
    assert art.driver == "parquet" and art.key == "households"
    assert tracker.get_run_outputs("r1")["households"].id == art.id
    pd.testing.assert_frame_equal(pd.read_parquet(expected), df)
    assert "is_ingested" not in art.meta  # no schema: not ingested
    assert tracker.hot_data_store.tables() == []


def test_csv_driver_and_kwargs_forwarded(tracker: Tracker) -> None:
    df = households()
    with tracker.start_run("r1", "model"):
        art = tracker.log_dataframe(df, "households", driver="csv", sep=";")
    assert art.path.suffix == ".csv" and art.driver == "csv"
    text = art.path.read_text().splitlines()
    assert text[0] == "hh_id;size;income"  # no index column by default
    pd.testing.assert_frame_equal(pd.read_csv(art.path, sep=";"), df)


def test_explicit_path_infers_driver_and_creates_directories(tracker: Tracker, base: Path) -> None:
    target = base / "runs" / "custom" / "deep" / "hh.csv"
    with tracker.start_run("r1", "model"):
        art = tracker.log_dataframe(
            households(), "households", path=target, direction="input", meta={"source": "s"}
        )
    assert art.path == target and art.driver == "csv" and art.meta["source"] == "s"
    assert tracker.get_run_inputs("r1")["households"].id == art.id
    assert not list(target.parent.glob(".tmp-*"))  # written atomically


def test_bad_driver_and_arguments_write_nothing(tracker: Tracker, base: Path) -> None:
    with tracker.start_run("r1", "model"):
        with pytest.raises(ValueError, match="driver='feather'"):
            tracker.log_dataframe(households(), "households", driver="feather")
        with pytest.raises(TypeError, match="DataFrame"):
            tracker.log_dataframe([{"a": 1}], "households")
        with pytest.raises(ValueError, match="key"):
            tracker.log_dataframe(households(), "a/b")
        with pytest.raises(ValueError, match="meta"):
            tracker.log_dataframe(households(), "households", meta={"driver": "x"})
        with pytest.raises(ValueError, match="path must be a non-empty path"):
            tracker.log_dataframe(households(), "households", path="")
        assert not tracker.run_artifact_dir().exists() or not any(
            tracker.run_artifact_dir().iterdir()
        )
    assert tracker.get_run_outputs("r1") == {}


def test_outside_a_run_raises(tracker: Tracker) -> None:
    with pytest.raises(RuntimeError, match="log_dataframe"):
        tracker.log_dataframe(households(), "households")


def test_schema_logs_and_ingests(tracker: Tracker) -> None:
    with tracker.start_run("r1", "model", year=2030):
        art = tracker.log_dataframe(households(), "households", schema=Household)
    assert art.meta["schema_name"] == "Household"
    assert art.meta["is_ingested"] is True and art.meta["ingested_rows"] == 3
    rows = tracker.hot_data_store.read_artifact_rows(art.id, include_provenance=True)
    assert rows.num_rows == 3 and set(rows.column("consist_year").to_pylist()) == {2030}
    stored = tracker.get_artifact(art.id)
    assert stored.meta["ingested_table"] == "global_tables.household"  # Household's table
    # The file can go: the rows are still loadable.
    art.path.unlink()
    pd.testing.assert_frame_equal(tracker.load_df(art), households())


def test_schema_mismatch_rejected_before_writing(tracker: Tracker) -> None:
    bad = households().rename(columns={"size": "persons"})
    with tracker.start_run("r1", "model"):
        with pytest.raises(IngestSchemaError, match="'persons'") as err:
            tracker.log_dataframe(bad, "households", schema=Household)
        assert set(err.value.columns) == {"persons", "size"}
        assert not (tracker.run_artifact_dir() / "households.parquet").exists()
    assert tracker.get_run_outputs("r1") == {}


def test_schema_without_database_logs_and_warns(base: Path) -> None:
    tracker = Tracker(base / "journal_only", project_root=base)
    with tracker.start_run("r1", "model"), pytest.warns(UserWarning, match="not ingested"):
        art = tracker.log_dataframe(households(), "households", schema=Household)
    assert art.path.is_file() and art.meta["schema_name"] == "Household"
    assert "is_ingested" not in art.meta


def test_profile_file_schema_is_passed_to_log_artifact(tracker: Tracker) -> None:
    with tracker.start_run("r1", "model"):
        art = tracker.log_dataframe(
            households(), "households", profile_file_schema=True, file_schema_sample_rows=10
        )
    assert "schema_id" in art.meta
