"""Schema profiles: profiling files and ingested tables, dedupe, if_changed, export.

Real parquet/csv files written under ``tmp_path``, a real DuckDB store;
exported stubs are written to disk and imported. Nothing is mocked except a
counter around the file profiler, to prove ``"if_changed"`` skips reading.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import Field, SQLModel

from consist.core.facade import views as tracker_views
from consist.core.hot.schema_profile import (
    SchemaField,
    SchemaProfile,
    profile_file,
    profile_sqlmodel,
    render_sqlmodel_stub,
    schema_digest,
    validate_profile_mode,
    validate_sample_rows,
)
from consist.core.store.schema_store import SchemaStore
from consist.core.tracker import Tracker


# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #
@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # project_root="." is never the repository
    return tmp_path.resolve()


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", schemas=[Household])
    yield t
    t.close()


class Household(SQLModel):
    """A user-provided schema (registered with the tracker)."""

    household_id: int = Field(primary_key=True)
    size: int | None = None
    income: float | None = None


def households(n: int = 5, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "household_id": list(range(1 + offset, n + 1 + offset)),
            "size": [1 + (i % 4) for i in range(n)],
            "income": [None if i == 0 else 1000.0 * i for i in range(n)],
        }
    )


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def store_of(tracker: Tracker) -> SchemaStore:
    assert tracker.store is not None
    return SchemaStore(tracker.store.connections, before_read=tracker.store.flush)


def import_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def log_in_run(tracker: Tracker, run_id: str, path: Path, key: str, **kwargs: Any) -> Any:
    with tracker.start_run(run_id, "profiling"):
        return tracker.log_artifact(path, key=key, **kwargs)


# --------------------------------------------------------------------------- #
# Pure profiling
# --------------------------------------------------------------------------- #
def test_parquet_profile_reads_types_dtypes_and_footer_stats(base: Path) -> None:
    df = households(4)
    df["zone"] = pd.Categorical(["a", "b", "a", "c"])
    df["when"] = pd.to_datetime(["2020-01-01", "2020-01-02", None, "2020-01-04"])
    path = write_parquet(base / "hh.parquet", df)

    obs = profile_file(path, "parquet", sample_rows=1)  # footer only: sample ignored

    assert obs.source == "file"
    assert obs.n_rows == 4 and obs.sampled_rows is None
    fields = {f.name: f for f in obs.profile.fields}
    assert obs.profile.field_names == ["household_id", "size", "income", "zone", "when"]
    assert fields["household_id"].type == "BIGINT" and fields["household_id"].dtype == "int64"
    assert fields["income"].type == "DOUBLE"
    assert fields["zone"].type == "VARCHAR" and fields["zone"].dtype == "category"
    assert fields["when"].type.startswith("TIMESTAMP")
    assert obs.stats["income"]["null_count"] == 1
    assert obs.stats["household_id"]["min"] == "1" and obs.stats["household_id"]["max"] == "4"
    assert obs.stats["when"]["null_count"] == 1


def test_csv_profile_samples_at_most_sample_rows(base: Path) -> None:
    path = base / "big.csv"
    households(50).to_csv(path, index=False)

    sampled = profile_file(path, "csv", sample_rows=10)
    assert sampled.sampled_rows == 10 and sampled.n_rows is None
    assert sampled.stats["household_id"]["max"] == "10"  # stats of the sample only
    assert [f.type for f in sampled.profile.fields] == ["BIGINT", "BIGINT", "DOUBLE"]

    everything = profile_file(path, "csv")
    assert everything.sampled_rows == 50
    assert everything.stats["household_id"]["max"] == "50"
    assert everything.profile.id == sampled.profile.id  # same layout, same schema id


def test_digest_is_canonical_and_layout_sensitive() -> None:
    a = (SchemaField("x", "BIGINT"), SchemaField("y", "VARCHAR"))
    assert SchemaProfile(a).id == schema_digest(list(a))
    assert SchemaProfile(a).id.startswith("blake3:")
    assert SchemaProfile(a).id == SchemaProfile.from_list(SchemaProfile(a).to_list()).id
    assert SchemaProfile(a).id != SchemaProfile(a[::-1]).id  # order is part of the layout
    assert SchemaProfile(a).id != SchemaProfile((a[0], SchemaField("y", "BIGINT"))).id
    assert SchemaProfile(a).id != SchemaProfile((a[0], SchemaField("y", "VARCHAR", False))).id
    assert SchemaProfile(a).id != SchemaProfile((a[0], SchemaField("y", "VARCHAR", dtype="c"))).id


def test_system_columns_stay_out_of_profiles(base: Path) -> None:
    df = households(2)
    df["consist_run_id"] = "r"
    df["_dlt_id"] = "x"
    obs = profile_file(write_parquet(base / "x.parquet", df), "parquet")
    assert obs.profile.field_names == ["household_id", "size", "income"]


def test_sqlmodel_profile_keeps_primary_key_and_nullability() -> None:
    obs = profile_sqlmodel(Household)
    fields = {f.name: f for f in obs.profile.fields}
    assert obs.source == "user_provided"
    assert fields["household_id"].primary_key and not fields["household_id"].nullable
    assert fields["size"].type == "BIGINT" and fields["size"].nullable
    assert fields["income"].type == "DOUBLE"


def test_profile_unsupported_driver_and_missing_file(base: Path) -> None:
    with pytest.raises(ValueError, match="cannot profile"):
        profile_file(base / "x.h5", "h5")
    with pytest.raises(FileNotFoundError):
        profile_file(base / "nope.parquet", "parquet")


@pytest.mark.parametrize("value", ["yes", 1, "IF_CHANGED", 2.0])
def test_invalid_profile_mode(value: Any) -> None:
    with pytest.raises(ValueError, match="profile_file_schema"):
        validate_profile_mode(value)


def test_profile_mode_and_sample_rows_values() -> None:
    assert validate_profile_mode(None) is False and validate_profile_mode(False) is False
    assert validate_profile_mode(True) is True
    assert validate_profile_mode("if_changed") == "if_changed"
    assert validate_sample_rows(None) is None and validate_sample_rows(5) == 5
    for bad in (0, -1, True, 1.5, "10"):
        with pytest.raises(ValueError, match="file_schema_sample_rows"):
            validate_sample_rows(bad)


# --------------------------------------------------------------------------- #
# Profiling on log_artifact
# --------------------------------------------------------------------------- #
def test_store_has_migration_5(tracker: Tracker) -> None:
    assert tracker.store is not None
    assert tracker.store.schema_version() >= 5
    assert store_of(tracker).counts() == {"schema_profile": 0, "artifact_schema": 0}


def test_profiles_are_deduplicated_by_digest(tracker: Tracker, base: Path) -> None:
    a = log_in_run(
        tracker,
        "r1",
        write_parquet(base / "a.parquet", households(3)),
        "households",
        profile_file_schema=True,
    )
    b = log_in_run(
        tracker,
        "r2",
        write_parquet(base / "b.parquet", households(7, offset=100)),
        "households",
        profile_file_schema=True,
    )
    assert a.hash != b.hash
    assert a.meta["schema_id"] == b.meta["schema_id"]
    assert a.meta["schema_summary"] == {"source": "file", "n_fields": 3, "n_rows": 3}
    assert b.meta["schema_summary"]["n_rows"] == 7
    assert store_of(tracker).counts() == {"schema_profile": 1, "artifact_schema": 2}
    # the schema id is persisted with the artifact (DB row and journal)
    stored = tracker.store.get_artifact_by_id(a.id)  # type: ignore[union-attr]
    assert stored is not None and stored.meta["schema_id"] == a.meta["schema_id"]
    record = tracker.get_run_record("r1")
    assert record is not None and record.outputs[0].meta["schema_id"] == a.meta["schema_id"]
    # another layout is another profile
    c = log_in_run(
        tracker,
        "r3",
        write_parquet(base / "c.parquet", households(3).drop(columns=["income"])),
        "households",
        profile_file_schema=True,
    )
    assert c.meta["schema_id"] != a.meta["schema_id"]
    assert store_of(tracker).counts() == {"schema_profile": 2, "artifact_schema": 3}


def test_if_changed_skips_reading_known_content(
    tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = tracker_views.profile_file

    def counting(path: Any, driver: str, **kwargs: Any) -> Any:
        calls.append(str(path))
        return real(path, driver, **kwargs)

    monkeypatch.setattr(tracker_views, "profile_file", counting)
    df = households(4)
    first = log_in_run(
        tracker,
        "r1",
        write_parquet(base / "one" / "hh.parquet", df),
        "households",
        profile_file_schema="if_changed",
    )
    assert len(calls) == 1
    # same bytes at another path: content_id matches, the file is not read again
    same = log_in_run(
        tracker,
        "r2",
        write_parquet(base / "two" / "hh.parquet", df),
        "households",
        profile_file_schema="if_changed",
    )
    assert same.content_id == first.content_id and same.id != first.id
    assert len(calls) == 1
    assert same.meta["schema_id"] == first.meta["schema_id"]
    assert same.meta["schema_summary"] == first.meta["schema_summary"]
    links = store_of(tracker).links_for_artifact(same.id)
    assert [(link.source, link.schema_id) for link in links] == [("file", first.meta["schema_id"])]
    # profile_file_schema=True always profiles
    log_in_run(
        tracker,
        "r3",
        write_parquet(base / "three" / "hh.parquet", df),
        "households",
        profile_file_schema=True,
    )
    assert len(calls) == 2
    # changed content is profiled again
    log_in_run(
        tracker,
        "r4",
        write_parquet(base / "four" / "hh.parquet", households(6)),
        "households",
        profile_file_schema="if_changed",
    )
    assert len(calls) == 3


def test_if_changed_falls_back_to_hash_for_legacy_links(tracker: Tracker, base: Path) -> None:
    store = store_of(tracker)
    obs = profile_file(write_parquet(base / "x.parquet", households(2)), "parquet")
    legacy_artifact = uuid.uuid4()
    store.record([(obs, legacy_artifact)], content_id=None, hash="blake3:legacy")
    found = store.find_file_link(uuid.uuid4(), "blake3:legacy")
    assert found is not None and found.artifact_id == str(legacy_artifact)
    assert store.find_file_link(None, "blake3:legacy") is not None
    assert store.find_file_link(uuid.uuid4(), "blake3:other") is None
    assert store.find_file_link(None, None) is None


def test_sample_rows_are_recorded_for_csv(tracker: Tracker, base: Path) -> None:
    path = base / "hh.csv"
    households(40).to_csv(path, index=False)
    art = log_in_run(
        tracker, "r1", path, "households", profile_file_schema=True, file_schema_sample_rows=15
    )
    assert art.meta["schema_summary"] == {"source": "file", "n_fields": 3, "sampled_rows": 15}
    link = store_of(tracker).links_for_artifact(art.id)[0]
    assert link.sampled_rows == 15 and link.n_rows is None
    assert link.stats["household_id"]["max"] == "15"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"profile_file_schema": "yes"},
        {"profile_file_schema": True, "file_schema_sample_rows": 0},
        {"profile_file_schema": True, "file_schema_sample_rows": "100"},
    ],
)
def test_invalid_profiling_arguments_write_nothing(
    tracker: Tracker, base: Path, kwargs: dict[str, Any]
) -> None:
    path = write_parquet(base / "a.parquet", households(2))
    with tracker.start_run("r1", "profiling"):
        with pytest.raises(ValueError):
            tracker.log_artifact(path, key="households", **kwargs)
        assert tracker.current_run is not None
    assert tracker.find_artifacts(creator="r1") == []
    assert store_of(tracker).counts()["artifact_schema"] == 0


def test_non_tabular_artifacts_warn_and_are_logged(tracker: Tracker, base: Path) -> None:
    path = base / "notes.txt"
    path.write_text("hello")
    with pytest.warns(UserWarning, match="file schemas are profiled"):
        art = log_in_run(tracker, "r1", path, "notes", profile_file_schema=True)
    assert "schema_id" not in art.meta
    assert tracker.find_artifacts(creator="r1")[0].id == art.id


def test_unreadable_file_warns_and_is_logged(tracker: Tracker, base: Path) -> None:
    path = base / "broken.parquet"
    path.write_bytes(b"not a parquet file")
    with pytest.warns(UserWarning, match="could not profile"):
        art = log_in_run(tracker, "r1", path, "broken", profile_file_schema=True)
    assert "schema_id" not in art.meta
    assert tracker.find_artifacts(creator="r1")[0].id == art.id


def test_journal_only_tracker_profiles_into_meta(base: Path) -> None:
    t = Tracker(base / "runs")
    art = log_in_run(
        t,
        "r1",
        write_parquet(base / "a.parquet", households(2)),
        "households",
        profile_file_schema=True,
    )
    assert art.meta["schema_summary"]["n_rows"] == 2
    with pytest.raises(ValueError, match="needs a database"):
        t.export_schema_sqlmodel(schema_id=art.meta["schema_id"])


def test_default_logging_records_no_profile(tracker: Tracker, base: Path) -> None:
    art = log_in_run(tracker, "r1", write_parquet(base / "a.parquet", households(2)), "households")
    assert "schema_id" not in art.meta
    assert store_of(tracker).counts() == {"schema_profile": 0, "artifact_schema": 0}


# --------------------------------------------------------------------------- #
# Ingested tables (duckdb source)
# --------------------------------------------------------------------------- #
def _ingest(tracker: Tracker, art: Any, run_id: str, schema: type | None = None) -> dict:
    """Ingest ``art`` and return the schema entries recorded for it.

    Uses ``tracker.ingest`` (which calls ``_profile_ingested_table``) when it
    exists; otherwise builds ``global_tables.<key>`` per the ingest convention
    and calls the hook directly.
    """
    if hasattr(Tracker, "ingest"):
        tracker.ingest(art, schema=schema, run=tracker.get_run(run_id))
        return {"schema_id": art.meta["schema_id"], "schema_summary": art.meta["schema_summary"]}
    assert tracker.store is not None
    with tracker.store.connections.transaction() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS global_tables")
        con.execute(
            f"CREATE TABLE global_tables.{art.key} AS SELECT *, ? AS consist_run_id, "
            "? AS consist_artifact_id, CAST(NULL AS INTEGER) AS consist_year, "
            "CAST(NULL AS INTEGER) AS consist_iteration FROM read_parquet(?)",
            [run_id, str(art.id), str(art.path)],
        )
    return tracker._profile_ingested_table(art, f"global_tables.{art.key}", schema=schema)


def test_ingested_table_profile_and_export_source_preference(tracker: Tracker, base: Path) -> None:
    art = log_in_run(
        tracker,
        "r1",
        write_parquet(base / "a.parquet", households(4)),
        "households",
        profile_file_schema=True,
    )
    file_schema_id = art.meta["schema_id"]
    entries = _ingest(tracker, art, "r1")
    assert entries["schema_summary"] == {"source": "duckdb", "n_fields": 3, "n_rows": 4}
    assert entries["schema_id"] != file_schema_id  # no pandas dtypes after ingestion
    links = {link.source: link for link in store_of(tracker).links_for_artifact(art.id)}
    assert set(links) == {"file", "duckdb"}
    assert links["file"].schema_id == file_schema_id
    assert links["duckdb"].schema_id == entries["schema_id"]
    assert links["duckdb"].table_name == "global_tables.households"
    assert links["duckdb"].stats["income"]["null_count"] == 1

    default = tracker.export_schema_sqlmodel(artifact_id=art.id)
    assert "Source: file" in default and "dtype: int64" in default
    duck = tracker.export_schema_sqlmodel(artifact_id=str(art.id), prefer_source="duckdb")
    assert "Source: duckdb" in duck and "dtype:" not in duck
    assert "consist_" not in duck  # provenance columns stay out of profiles
    # no user-provided schema: that preference falls back to file
    fallback = tracker.export_schema_sqlmodel(artifact_id=art.id, prefer_source="user_provided")
    assert "Source: file" in fallback
    with pytest.raises(KeyError):
        tracker._profile_ingested_table(art, "global_tables.nope")


def test_schema_used_for_ingest_is_user_provided(tracker: Tracker, base: Path) -> None:
    art = log_in_run(tracker, "r1", write_parquet(base / "a.parquet", households(3)), "households")
    _ingest(tracker, art, "r1", schema=Household)
    sources = {link.source for link in store_of(tracker).links_for_artifact(art.id)}
    assert sources == {"duckdb", "user_provided"}
    text = tracker.export_schema_sqlmodel(artifact_id=art.id, prefer_source="duckdb")
    assert "Source: user_provided" in text


def test_user_provided_schema_always_wins(tracker: Tracker, base: Path) -> None:
    art = log_in_run(
        tracker,
        "r1",
        write_parquet(base / "a.parquet", households(4)),
        "households",
        schema=Household,
        profile_file_schema=True,
    )
    sources = {link.source for link in store_of(tracker).links_for_artifact(art.id)}
    assert sources == {"file", "user_provided"}
    for prefer in (None, "file", "duckdb"):
        text = tracker.export_schema_sqlmodel(artifact_id=art.id, prefer_source=prefer)
        assert "Source: user_provided" in text
        assert "household_id: int = Field(primary_key=True)" in text


def test_registered_schema_name_counts_as_user_provided(tracker: Tracker, base: Path) -> None:
    path = write_parquet(base / "a.parquet", households(2))
    with tracker.start_run("r1", "profiling"):
        art = tracker.log_artifact(path, key="households", profile_file_schema=True)
    # a later artifact that only names a registered schema in its metadata
    with tracker.start_run("r2", "profiling"):
        named = tracker.log_artifact(
            path, key="households", profile_file_schema=True, schema_name="Household"
        )
    assert "Source: file" in tracker.export_schema_sqlmodel(artifact_id=art.id)
    assert "Source: user_provided" in tracker.export_schema_sqlmodel(artifact_id=named.id)


# --------------------------------------------------------------------------- #
# Export
# --------------------------------------------------------------------------- #
def test_exported_stub_imports_as_sqlmodel(tracker: Tracker, base: Path) -> None:
    df = households(3)
    df["zone"] = pd.Categorical(["a", "b", "a"])
    df["trip id"] = [1, 2, 3]
    df["class"] = ["x", "y", "z"]
    df["2020_pop"] = [1.5, 2.5, 3.5]
    df["metadata"] = ["m", "n", "o"]
    art = log_in_run(
        tracker, "r1", write_parquet(base / "a.parquet", df), "households", profile_file_schema=True
    )
    out = base / "generated" / "households_schema.py"
    text = tracker.export_schema_sqlmodel(artifact_id=art.id, out_path=out)
    assert out.read_text() == text
    assert "# dtype: category" in text and "nulls: 1 of 3" in text

    module = import_module(out, "households_schema_abstract")
    cls = module.Households
    assert issubclass(cls, SQLModel) and not hasattr(cls, "__table__")
    assert cls.__tablename__ == "households"
    assert list(cls.model_fields) == [
        "household_id",
        "size",
        "income",
        "zone",
        "trip_id",
        "class_",
        "col_2020_pop",
        "metadata_",
    ]
    assert cls.model_fields["income"].annotation == float | None
    row = cls(household_id=1, income=2.0, zone="a")
    assert row.household_id == 1

    # the abstract class maps a table when subclassed; odd names keep their column names
    table_cls = type(SQLModel)(
        "HouseholdsTable",
        (cls,),
        {
            "__module__": __name__,
            "__tablename__": f"households_{uuid.uuid4().hex[:8]}",
            "__annotations__": {"row_id": int | None},
            "row_id": Field(default=None, primary_key=True),
        },
        table=True,
    )
    column_names = [c.name for c in table_cls.__table__.columns]
    assert {"trip id", "class", "2020_pop", "metadata"} <= set(column_names)


def test_export_mapped_class_with_system_columns(tracker: Tracker, base: Path) -> None:
    art = log_in_run(
        tracker,
        "r1",
        write_parquet(base / "a.parquet", households(3)),
        "households",
        profile_file_schema=True,
    )
    table_name = f"hh_{uuid.uuid4().hex[:8]}"  # unique in SQLModel.metadata
    out = base / "mapped.py"
    text = tracker.export_schema_sqlmodel(
        schema_id=art.meta["schema_id"],
        out_path=out,
        table_name=table_name,
        class_name="HH",
        abstract=False,
        include_system_cols=True,
        include_stats_comments=False,
    )
    assert "nulls:" not in text and "min:" not in text
    module = import_module(out, "households_schema_mapped")
    table = module.HH.__table__
    assert table.name == table_name
    assert [c.name for c in table.primary_key.columns] == ["household_id"]
    assert "consist_artifact_id" in table.c and "consist_year" in table.c


def test_export_by_schema_id_defaults_to_linked_key(tracker: Tracker, base: Path) -> None:
    art = log_in_run(
        tracker,
        "r1",
        write_parquet(base / "a.parquet", households(3)),
        "households",
        profile_file_schema=True,
    )
    text = tracker.export_schema_sqlmodel(schema_id=art.meta["schema_id"])
    assert "class Households(SQLModel):" in text and '__tablename__ = "households"' in text
    # prefer_source is ignored with a schema id
    assert text == tracker.export_schema_sqlmodel(
        schema_id=art.meta["schema_id"], prefer_source="duckdb"
    )


def test_export_errors(tracker: Tracker, base: Path) -> None:
    art = log_in_run(tracker, "r1", write_parquet(base / "a.parquet", households(2)), "households")
    with pytest.raises(ValueError, match="exactly one"):
        tracker.export_schema_sqlmodel()
    with pytest.raises(ValueError, match="exactly one"):
        tracker.export_schema_sqlmodel(schema_id="blake3:x", artifact_id=art.id)
    with pytest.raises(ValueError, match="prefer_source"):
        tracker.export_schema_sqlmodel(artifact_id=art.id, prefer_source="parquet")
    with pytest.raises(ValueError, match="artifact UUID"):
        tracker.export_schema_sqlmodel(artifact_id="not-a-uuid")
    with pytest.raises(ValueError, match="class_name"):
        tracker.export_schema_sqlmodel(artifact_id=art.id, class_name="")
    with pytest.raises(KeyError):
        tracker.export_schema_sqlmodel(schema_id="blake3:unknown")
    with pytest.raises(KeyError, match="no stored schema"):
        tracker.export_schema_sqlmodel(artifact_id=art.id)
    with pytest.raises(KeyError, match="no artifact"):
        tracker.export_schema_sqlmodel(artifact_id=uuid.uuid4())


def test_render_rejects_invalid_class_name() -> None:
    profile = SchemaProfile((SchemaField("a", "BIGINT"),))
    with pytest.raises(ValueError, match="class_name"):
        render_sqlmodel_stub(profile, table_name="t", class_name="1bad")
    text = render_sqlmodel_stub(
        SchemaProfile((SchemaField("tags", "VARCHAR[]"), SchemaField("d", "DECIMAL(10,2)"))),
        table_name="odd types",
    )
    assert "class OddTypes(SQLModel):" in text
    assert "sa_type=sa.JSON" in text and "decimal.Decimal" in text
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(text, "<stub>", "exec"), namespace)
    assert set(namespace["OddTypes"].model_fields) == {"tags", "d"}
