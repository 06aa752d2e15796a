"""Ingest on a PostgreSQL store (team mode): rows land in the server's global_tables by COPY.

Every test runs against the session's throwaway server; several run the same
steps on a DuckDB store and compare what a user reads back.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import Field, SQLModel

import consist
from consist import Tracker
from consist.core.store.hot_store import IngestSchemaError


class Household(SQLModel):
    hh_id: int = Field(primary_key=True)
    size: int
    income: float | None = None
    zone: str


def _tracker(run_dir: Path, url: str | None = None, **kwargs: Any) -> Tracker:
    if url is None:
        return Tracker(
            run_dir, db_path=run_dir / "store.duckdb", project_root=run_dir.parent, **kwargs
        )
    return Tracker(run_dir, db_url=url, project_root=run_dir.parent, **kwargs)


def _server(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _column_types(url: str, table: str) -> dict[str, str]:
    with _server(url) as con:
        rows = con.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            [f"global_tables.{table}"],
        ).fetchall()
    return dict(rows)


def _typed_table() -> pa.Table:
    return pa.table(
        {
            "i": pa.array([1, 2, None], pa.int64()),
            "small": pa.array([1, -2, 3], pa.int16()),
            "f": pa.array([0.1, float("nan"), 1e300], pa.float64()),
            "s": pa.array(["a", "", None], pa.string()),
            "b": pa.array([True, False, None], pa.bool_()),
            "d": pa.array([dt.date(2020, 1, 1), None, dt.date(1999, 12, 31)], pa.date32()),
            "ts": pa.array(
                [dt.datetime(2020, 1, 2, 3, 4, 5, 123456), None, dt.datetime(1970, 1, 1)],
                pa.timestamp("us"),
            ),
            "dec": pa.array([Decimal("1.250"), None, Decimal("-3.500")], pa.decimal128(10, 3)),
            "blob": pa.array([b"\x00\xffA", None, b""], pa.binary()),
            "lst": pa.array([[1, 2], [], None], pa.list_(pa.int64())),
            'text,with "quotes"': pa.array(['x,"y"', "line\nbreak", "\\N"], pa.string()),
        }
    )


def test_a_parquet_file_lands_in_a_postgresql_table_with_provenance(
    pg_url: str, tmp_path: Path
) -> None:
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        with tracker.start_run("r1", "model", year=2030, iteration=2):
            path = tracker.output_path("typed", ext="parquet")
            pq.write_table(_typed_table(), path)
            art = tracker.log_artifact(path, key="typed")
            result = tracker.ingest(art)
        assert (result.table, result.rows, result.mode, result.created_table) == (
            "global_tables.typed",
            3,
            "file",
            True,
        )
        types = _column_types(pg_url, "typed")
        assert types == {
            "i": "bigint",
            "small": "smallint",
            "f": "double precision",
            "s": "text",
            "b": "boolean",
            "d": "date",
            "ts": "timestamp without time zone",
            "dec": "numeric(10,3)",
            "blob": "bytea",
            "lst": "jsonb",
            'text,with "quotes"': "text",
            "consist_run_id": "text",
            "consist_artifact_id": "text",
            "consist_year": "integer",
            "consist_iteration": "integer",
        }
        with _server(pg_url) as con:
            rows = con.execute(
                'SELECT i, small, f, s, b, d, ts, dec, blob, lst, "text,with ""quotes""", '
                "consist_run_id, consist_artifact_id, consist_year, consist_iteration "
                "FROM global_tables.typed ORDER BY small DESC"
            ).fetchall()
            ledger = con.execute(
                "SELECT artifact_id::text, table_name, artifact_key, run_id, row_count, mode, "
                "columns FROM ingested_artifact"
            ).fetchall()
        aid = str(art.id)
        first, second, third = rows
        assert first[:10] == (
            None,
            3,
            1e300,
            None,
            None,
            dt.date(1999, 12, 31),
            dt.datetime(1970, 1, 1),
            Decimal("-3.500"),
            b"",
            None,
        )
        assert first[10:] == ("\\N", "r1", aid, 2030, 2)
        assert second[:10] == (
            1,
            1,
            0.1,
            "a",
            True,
            dt.date(2020, 1, 1),
            dt.datetime(2020, 1, 2, 3, 4, 5, 123456),
            Decimal("1.250"),
            b"\x00\xffA",
            [1, 2],
        )
        assert second[10] == 'x,"y"'
        assert third[2] != third[2] and third[3] == "" and third[8] is None  # NaN, "" kept
        assert third[9] == [] and third[10] == "line\nbreak"
        assert ledger == [
            (aid, "typed", "typed", "r1", 3, "file", list(_typed_table().column_names))
        ]
        stored = tracker.get_artifact(art.id)
        for meta in (stored.meta, art.meta):
            assert meta["is_ingested"] is True and meta["ingested_rows"] == 3
            assert meta["ingested_table"] == "global_tables.typed"
            assert meta["ingested_run_id"] == "r1"
        assert stored.meta["schema_summary"]["source"] == "duckdb"  # profiled after the ingest
        assert stored.meta["schema_summary"]["n_rows"] == 3
    finally:
        tracker.close()


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_reingest_replaces_and_new_columns_are_added(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("pg_url") if engine == "postgresql" else None
    tracker = _tracker(tmp_path / "runs", url)
    try:
        with tracker.start_run("r1", "model"):
            first = tracker.log_dataframe(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "t1")
            assert tracker.ingest(first, table="shared").rows == 2
            second = tracker.log_dataframe(pd.DataFrame({"a": [3], "c": [True]}), "t2")
            added = tracker.ingest(second, table="shared")
            again = tracker.ingest(first, table="shared")
        assert added.added_columns == ("c",) and not added.created_table
        assert (again.rows, again.replaced_rows) == (2, 2)
        hot = tracker.hot_data_store
        assert hot.row_count("shared") == 3
        assert hot.row_count("shared", artifact_id=first.id) == 2
        rows = hot.read_artifact_rows(second.id, include_provenance=True).to_pylist()
        assert rows == [
            {
                "a": 3,
                "c": True,
                "consist_run_id": "r1",
                "consist_artifact_id": str(second.id),
                "consist_year": None,
                "consist_iteration": None,
            }
        ]
        # A value the existing column cannot hold: refused, naming it, nothing written.
        with tracker.start_run("r2", "model"):
            bad = tracker.log_dataframe(pd.DataFrame({"a": [1.5]}), "bad")
            with pytest.raises(IngestSchemaError, match=r"'a'.*cannot be stored"):
                tracker.ingest(bad, table="shared")
        assert hot.row_count("shared") == 3 and hot.ingest_records(artifact_id=bad.id) == []
    finally:
        tracker.close()


def test_schema_validation_table_naming_and_rows_like_duckdb(pg_url: str, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"hh_id": [1, 2], "size": [3, 1], "income": [5.5, None], "zone": ["007", "12"]}
    )
    results = {}
    for engine, url in (("duckdb", None), ("postgresql", pg_url)):
        tracker = _tracker(tmp_path / engine, url, schemas=[Household])
        try:
            with tracker.start_run("r1", "model"):
                art = tracker.log_dataframe(frame, "households", schema=Household)
                csv = tracker.output_path("hh_csv", ext="csv")
                csv.write_text("hh_id,size,zone\n3,2,0042\n")
                from_csv = tracker.log_artifact(csv, key="hh_csv", schema=Household)
                tracker.ingest(from_csv)  # the registered schema: its table, "0042" kept
                wrong = pd.DataFrame({"hh_id": [1], "size": [None], "zone": ["a"], "x": [1]})
                with pytest.raises(IngestSchemaError, match=r"'x'[\s\S]*'size'"):
                    tracker.ingest(art, data=wrong, schema=Household)
            assert art.meta["ingested_table"] == "global_tables.household"
            hot = tracker.hot_data_store
            results[engine] = (
                hot.read_artifact_rows(art.id).to_pylist(),
                hot.read_artifact_rows(from_csv.id).to_pylist(),
                hot.row_count("household"),
                [r.columns for r in hot.ingest_records(table="household")],
            )
        finally:
            tracker.close()
    assert results["postgresql"] == results["duckdb"]
    assert results["postgresql"][1] == [{"hh_id": 3, "size": 2, "income": None, "zone": "0042"}]
    assert results["postgresql"][2] == 3


def test_dataframes_and_dict_rows_through_dlt(pg_url: str, tmp_path: Path) -> None:
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        with tracker.start_run("r1", "model"):
            art = tracker.log_artifact(tracker.output_path("x", ext="csv"), key="events")
            Path(art.path).write_text("unused\n1\n")
            frame = pd.DataFrame({"k": ["a", "b"], "v": [1.0, 2.0]})
            from_frame = tracker.ingest(art, data=frame)
            rows = [{"k": "c", "v": 3.0, "extra": {"nested": 1}}]
            from_rows = tracker.ingest(art, data=iter(rows), table="events_rows")
        assert (from_frame.mode, from_frame.rows) == ("dataframe", 2)
        assert (from_rows.mode, from_rows.loader, from_rows.rows) == ("rows", "dlt", 1)
        got = tracker.hot_data_store.read_artifact_rows(art.id, key="events").to_pylist()
        assert got == [{"k": "a", "v": 1.0}, {"k": "b", "v": 2.0}]
        assert not any(c.startswith("_dlt_") for c in _column_types(pg_url, "events_rows"))
        with _server(pg_url) as con:
            assert con.execute("SELECT k, v FROM global_tables.events_rows").fetchall() == [
                ("c", 3.0)
            ]
    finally:
        tracker.close()


def _trips(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"trip_id": list(range(1, n + 1)), "mode": ["walk", "car", "bike"][:n]})


def _make_trips(households: Path) -> pd.DataFrame:
    return _trips()


def test_load_and_cache_hit_read_ingested_rows_back_when_the_file_is_gone(
    pg_url: str, tmp_path: Path
) -> None:
    households = tmp_path / "households.csv"
    households.write_text("hh\n1\n")
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        first = tracker.run(_make_trips, inputs={"households": households}, outputs=["trips"])
        tracker.ingest(first.outputs["trips"], run=first.run)  # offline, after the run
        first.outputs["trips"].path.unlink()
        again = tracker.run(_make_trips, inputs={"households": households}, outputs=["trips"])
        assert again.cache_hit
        frame = consist.load_df(again.outputs["trips"], tracker=tracker)
        assert frame.to_dict("list") == _trips().to_dict("list")
        with_prov = tracker.load_df(again.outputs["trips"], include_provenance=True)
        assert set(with_prov["consist_run_id"]) == {first.run_id}
        relation = tracker.load(again.outputs["trips"], columns=["mode"])
        assert [r[0] for r in relation.fetchall()] == ["walk", "car", "bike"]
    finally:
        tracker.close()


def test_validate_artifacts_marks_and_clears_missing_files(pg_url: str, tmp_path: Path) -> None:
    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        with tracker.start_run("r1", "model"):
            art = tracker.log_dataframe(_trips(), "trips")
        assert tracker.validate_artifacts().ok
        content = art.path.read_bytes()
        art.path.unlink()
        report = tracker.validate_artifacts(fix=True)
        assert report.counts["missing"] == 1 and report.marked_missing == [str(art.id)]
        assert tracker.get_artifact(art.id).meta["missing_since"]
        art.path.write_bytes(content)
        report = tracker.validate_artifacts(run_ids=["r1"], fix=True)
        assert report.ok and report.cleared == [str(art.id)]
        assert "missing_since" not in tracker.get_artifact(art.id).meta
    finally:
        tracker.close()


_ROWS = 200_000  # each COPY takes a while: the three transactions overlap without the lock


def _ingest_worker(run_dir: str, url: str, index: int, start: Any) -> None:
    tracker = Tracker(Path(run_dir), db_url=url, project_root=Path(run_dir).parent)
    try:
        with tracker.start_run(f"w{index}", "model"):
            frame = pd.DataFrame({"w": [index] * _ROWS, f"col{index}": range(_ROWS)})
            art = tracker.log_dataframe(frame, f"part{index}")
            start.wait(60)
            tracker.ingest(art, table="together")
    finally:
        tracker.close()


def test_processes_ingesting_into_one_new_table_take_turns(pg_url: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_ingest_worker, args=(str(tmp_path / f"w{i}"), pg_url, i, start))
        for i in range(3)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    types = _column_types(pg_url, "together")
    assert {"w", "col0", "col1", "col2"} <= set(types)
    with _server(pg_url) as con:
        counts = con.execute(
            "SELECT w, count(*), count(DISTINCT consist_artifact_id) FROM global_tables.together "
            "GROUP BY w ORDER BY w"
        ).fetchall()
        ledger = con.execute("SELECT count(*) FROM ingested_artifact").fetchone()[0]
    assert counts == [(i, _ROWS, 1) for i in range(3)] and ledger == 3


def _scalars() -> pa.Table:
    return pa.table(
        {
            "u8": pa.array([0, 255, None], pa.uint8()),
            "i32": pa.array([-(2**31), 2**31 - 1, None], pa.int32()),
            "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
            "f32": pa.array([0.1, -1.5, None], pa.float32()),
            "t": pa.array([dt.time(12, 0, 1, 500000), dt.time(0, 0), None], pa.time64("us")),
            "tz": pa.array(
                [
                    dt.datetime(2020, 1, 1, 12, tzinfo=dt.UTC),
                    None,
                    dt.datetime(1999, 1, 1, tzinfo=dt.UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "ns": pa.array([1_600_000_000_123_456_789, None, 0], pa.timestamp("ns")),
            "j": pa.array(['{"a": 1}', None, "[]"], pa.string()),
        }
    )


def test_values_read_back_as_on_duckdb_within_postgresql_precision(
    pg_url: str, tmp_path: Path
) -> None:
    read = {}
    for engine, url in (("duckdb", None), ("postgresql", pg_url)):
        tracker = _tracker(tmp_path / engine, url)
        try:
            with tracker.start_run("r1", "model"):
                art = tracker.log_artifact(tracker.output_path("s", ext="csv"), key="scalars")
                Path(art.path).write_text("x\n1\n")
                tracker.ingest(art, data=_scalars())
            read[engine] = tracker.hot_data_store.read_artifact_rows(art.id)
        finally:
            tracker.close()
    duck, pg = read["duckdb"], read["postgresql"]
    assert duck.column_names == pg.column_names == _scalars().column_names
    for name in ("u8", "i32", "u64", "f32", "t", "tz", "j"):
        assert pg.column(name).to_pylist() == duck.column(name).to_pylist(), name
    # PostgreSQL keeps microseconds: a nanosecond timestamp is rounded to them.
    ns = pg.column("ns").to_pylist()
    assert ns[0] == dt.datetime(2020, 9, 13, 12, 26, 40, 123457) and ns[1] is None
    assert _column_types(pg_url, "scalars") == {
        "u8": "smallint",
        "i32": "integer",
        "u64": "numeric(20,0)",
        "f32": "real",
        "t": "time without time zone",
        "tz": "timestamp with time zone",
        "ns": "timestamp without time zone",
        "j": "text",
        "consist_run_id": "text",
        "consist_artifact_id": "text",
        "consist_year": "integer",
        "consist_iteration": "integer",
    }


def test_a_read_only_tracker_ingests_and_creates_views_nothing(pg_url: str, tmp_path: Path) -> None:
    from consist.core.store.connection import ReadOnlyStoreError

    writer = _tracker(tmp_path / "runs", pg_url)
    try:
        with writer.start_run("r1", "model"):
            art = writer.log_dataframe(_trips(), "trips")
    finally:
        writer.close()
    reader = _tracker(tmp_path / "runs", pg_url, read_only=True)
    try:
        with pytest.raises(ReadOnlyStoreError, match=r"ingest.*read_only=True"):
            reader.ingest(art, run=reader.get_run("r1"))
        with pytest.raises(ReadOnlyStoreError, match=r"v_trips.*read_only=True"):
            reader.create_view("v_trips", "trips")
        assert reader.hot_data_store.tables() == []
        assert reader.hot_data_store.ingest_records() == []
        assert "is_ingested" not in reader.get_artifact(art.id).meta
    finally:
        reader.close()


def _binary_friendly() -> pa.Table:
    n = 70_000  # more than one Arrow batch of the binary encoder
    base = {
        "i8": pa.array([i % 100 - 50 for i in range(n)], pa.int8()),
        "u32": pa.array([i * 61_000 for i in range(n)], pa.uint32()),
        "i64": pa.array([None if i % 7 == 0 else i * 10**12 for i in range(n)], pa.int64()),
        "f": pa.array([float("nan"), float("inf"), -0.0, None, 1 / 3] * (n // 5), pa.float64()),
        "r": pa.array([0.1, None] * (n // 2), pa.float32()),
        "b": pa.array([True, False, None, True, False] * (n // 5), pa.bool_()),
        "s": pa.array(["", None, 'é,"q"\n\\N', "x" * 300, "日本"] * (n // 5), pa.string()),
        "raw": pa.array([b"", None, b"\x00\xff", b"\\x41", b"z"] * (n // 5), pa.binary()),
        "d": pa.array(
            [
                dt.date(1900, 3, 1),
                dt.date(2000, 1, 1),
                None,
                dt.date(2099, 12, 31),
                dt.date(1970, 1, 1),
            ]
            * (n // 5),
            pa.date32(),
        ),
        "ts": pa.array(
            [
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                None,
                dt.datetime(2000, 1, 1),
                dt.datetime(2024, 2, 29, 1, 2, 3, 4),
                dt.datetime(1800, 1, 1),
            ]
            * (n // 5),
            pa.timestamp("us"),
        ),
        "ts_s": pa.array([0, None, 10**9, -(10**9), 1] * (n // 5), pa.timestamp("s")),
        "tz": pa.array(
            [
                dt.datetime(2020, 6, 1, 12, tzinfo=dt.UTC),
                None,
                dt.datetime(1999, 1, 1, tzinfo=dt.UTC),
                dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                dt.datetime(1950, 5, 5, 5, 5, 5, 5, tzinfo=dt.UTC),
            ]
            * (n // 5),
            pa.timestamp("us", tz="UTC"),
        ),
        "lst": pa.array([[1, 2], None, [], [3], [None]] * (n // 5), pa.list_(pa.int64())),
    }
    return pa.table(base)


def test_binary_copy_and_csv_copy_store_the_same_rows(pg_url: str, tmp_path: Path) -> None:
    from consist.core.store.engines import pg_copy

    tracker = _tracker(tmp_path / "runs", pg_url)
    try:
        with tracker.start_run("r1", "model"):
            art = tracker.log_artifact(tracker.output_path("b", ext="csv"), key="edge")
            Path(art.path).write_text("x\n1\n")
            hot = tracker.hot_data_store
            assert hot.binary_copy is True
            assert tracker.ingest(art, data=_binary_friendly(), table="binary").rows == 70_000
            hot.binary_copy = False
            assert tracker.ingest(art, data=_binary_friendly(), table="text").rows == 70_000
        types = _column_types(pg_url, "binary")
        assert types == _column_types(pg_url, "text")
        assert pg_copy.supports(list(types.values()))  # the first ingest was binary
        columns = ", ".join(f'"{c}"' for c in types)
        with _server(pg_url) as con:
            binary = con.execute(f"SELECT {columns} FROM global_tables.binary").fetchall()
            text = con.execute(f"SELECT {columns} FROM global_tables.text").fetchall()
        assert len(binary) == 70_000
        assert repr(binary) == repr(text)  # repr: NaN != NaN
        expected = _binary_friendly().slice(0, 5).to_pylist()
        got = [dict(zip(types, row, strict=False)) for row in binary[:5]]
        for want, row in zip(expected, got, strict=True):
            for name in ("i8", "u32", "i64", "b", "s", "raw", "d", "ts", "tz"):
                assert row[name] == want[name], name
            assert row["lst"] == want["lst"]
    finally:
        tracker.close()
