"""The module-level helpers (``consist.run``, ``consist.output_path``, ``consist.load``, ...)
and the tracker's loading / retrieval helpers (``get_run_artifact``,
``load_run_output``, ``materialize``).

Real files and a real DuckDB file under ``tmp_path``; nothing is mocked.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import consist
from consist import Tracker

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture(autouse=True)
def _isolated(base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run from tmp_path and never leave a default tracker behind."""
    monkeypatch.chdir(base)
    consist.use_tracker(None)
    yield
    consist.use_tracker(None)


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    yield t
    t.close()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def data_csv(base: Path) -> Path:
    return write(base / "data" / "trips.csv", "origin,dest,n\n1,2,10\n2,1,5\n")


def relation_rows(rel: Any) -> list[tuple[Any, ...]]:
    return sorted(rel.fetchall())


# --------------------------------------------------------------------------- #
# use_tracker + consist.run / consist.trace
# --------------------------------------------------------------------------- #
class TestModuleLevelRunAndTrace:
    def test_helpers_need_a_tracker(self) -> None:
        assert consist.current_tracker() is None
        with pytest.raises(RuntimeError, match="use_tracker"):
            consist.run(lambda: None, name="x")
        with pytest.raises(RuntimeError, match="use_tracker"), consist.trace("x"):
            pass
        with pytest.raises(RuntimeError, match="output_path"):
            consist.output_path("key")

    def test_use_tracker_then_run(self, tracker: Tracker, data_csv: Path) -> None:
        calls: list[int] = []

        def double(data: Path) -> pd.DataFrame:
            calls.append(1)
            return pd.read_csv(data) * 2

        consist.use_tracker(tracker)
        assert consist.current_tracker() is tracker
        first = consist.run(double, inputs={"data": data_csv}, outputs=["doubled"])
        second = consist.run(double, inputs={"data": data_csv}, outputs=["doubled"])
        assert isinstance(first, consist.RunResult)
        assert first.cache_hit is False
        assert second.cache_hit is True
        assert len(calls) == 1
        assert tracker.get_run(first.run_id).status == "completed"
        assert second.outputs["doubled"].id == first.outputs["doubled"].id

    def test_use_tracker_as_context_manager_restores_previous(
        self, tracker: Tracker, base: Path
    ) -> None:
        other = Tracker(base / "other_runs", db_path=base / "other.duckdb", project_root=base)
        try:
            consist.use_tracker(tracker)
            with consist.use_tracker(other):
                assert consist.current_tracker() is other
                result = consist.run(lambda: None, name="on_other")
                assert other.get_run(result.run_id) is not None
                assert tracker.get_run(result.run_id) is None
            assert consist.current_tracker() is tracker
        finally:
            other.close()

    def test_trace(self, tracker: Tracker) -> None:
        consist.use_tracker(tracker)
        target = tracker.run_dir / "traced" / "out.csv"
        with consist.trace("module_trace", run_id="mt", output_paths={"out": target}) as t:
            assert t is tracker
            assert tracker.current_run.id == "mt"
            write(target, "x\n1\n")
        assert set(tracker.get_run_outputs("mt")) == {"out"}
        assert tracker.get_run("mt").status == "completed"

    def test_current_tracker_inside_a_step_is_the_running_one(
        self, tracker: Tracker, base: Path
    ) -> None:
        other = Tracker(base / "other_runs", db_path=base / "other.duckdb", project_root=base)
        seen: list[Any] = []
        try:
            consist.use_tracker(other)

            def step() -> None:
                seen.append(consist.current_tracker())

            tracker.run(step)
            assert seen == [tracker]
            assert consist.current_tracker() is other
        finally:
            other.close()

    def test_define_step(self, tracker: Tracker) -> None:
        @consist.define_step(outputs=["made"], tags=["api"])
        def make() -> pd.DataFrame:
            return pd.DataFrame({"m": [1, 2]})

        consist.use_tracker(tracker)
        result = consist.run(make)
        assert set(result.outputs) == {"made"}
        assert tracker.get_run(result.run_id).tags == ["api"]
        with pytest.raises(TypeError):
            consist.define_step(no_such_option=True)


# --------------------------------------------------------------------------- #
# consist.output_path and consist.capture_outputs
# --------------------------------------------------------------------------- #
class TestOutputHelpers:
    def test_output_path_returned(self, tracker: Tracker) -> None:
        def step() -> Path:
            path = consist.output_path("summary", ext="txt")
            path.write_text("returned\n")
            return path

        result = tracker.run(step)
        art = result.outputs["summary"]
        assert art.path == tracker.run_artifact_dir(result.run) / "summary.txt"
        assert art.path.read_text() == "returned\n"
        assert set(tracker.get_run_outputs(result.run_id)) == {"summary"}

    def test_output_path_not_returned(self, tracker: Tracker) -> None:
        def step() -> None:
            consist.output_path("table").write_bytes(b"")  # default ext: parquet
            pd.DataFrame({"v": [1]}).to_parquet(consist.output_path("table"))

        result = tracker.run(step)
        art = tracker.get_run_outputs(result.run_id)["table"]
        assert art.path == tracker.run_artifact_dir(result.run) / "table.parquet"
        assert art.driver == "parquet"

    def test_output_path_declared_in_outputs(self, tracker: Tracker) -> None:
        def step() -> Path:
            path = consist.output_path("data", ext="csv")
            path.write_text("a\n1\n")
            return path

        result = tracker.run(step, outputs=["data"])
        assert set(result.outputs) == {"data"}
        assert result.outputs["data"].driver == "csv"

    def test_output_path_not_written_is_not_logged(self, tracker: Tracker) -> None:
        def step() -> None:
            consist.output_path("never_written", ext="txt")

        result = tracker.run(step)
        assert tracker.get_run_outputs(result.run_id) == {}

    def test_output_path_rejects_escaping_keys(self, tracker: Tracker) -> None:
        errors: list[BaseException] = []

        def step() -> None:
            for key, ext in (("../escape", "txt"), ("ok", "../x"), ("", "txt")):
                try:
                    consist.output_path(key, ext=ext)
                except ValueError as exc:
                    errors.append(exc)

        tracker.run(step)
        assert len(errors) == 3

    def test_output_path_inside_trace(self, tracker: Tracker) -> None:
        with tracker.trace("traced", run_id="tr"):
            consist.output_path("note", ext="txt").write_text("n\n")
        assert set(tracker.get_run_outputs("tr")) == {"note"}

    def test_capture_outputs(self, tracker: Tracker, base: Path) -> None:
        work = base / "work"
        write(work / "existing.csv", "e\n1\n")
        with tracker.start_run("cap", "capture_model"):
            with consist.capture_outputs(work, pattern="*.csv") as capture:
                write(work / "fresh.csv", "f\n1\n")
                write(work / "skipped.txt", "s\n")
            assert [a.key for a in capture.artifacts] == ["fresh"]
        assert set(tracker.get_run_outputs("cap")) == {"fresh"}

    def test_capture_outputs_inside_a_step(self, tracker: Tracker, base: Path) -> None:
        work = base / "work"
        write(work / "existing.csv", "e\n1\n")
        keys: list[str] = []

        def step() -> None:
            with consist.capture_outputs(work, pattern="*.csv") as capture:
                write(work / "fresh.csv", "f\n1\n")
                write(work / "skipped.txt", "s\n")
            keys.extend(a.key for a in capture.artifacts)

        result = tracker.run(step)
        assert keys == ["fresh"]
        assert set(tracker.get_run_outputs(result.run_id)) == {"fresh"}

    def test_tracker_capture_outputs_recursive(self, tracker: Tracker, base: Path) -> None:
        work = base / "work"
        with tracker.trace("cap_rec", run_id="cr"):
            with tracker.capture_outputs(work, pattern="*.csv", recursive=True) as capture:
                write(work / "deep" / "nested.csv", "n\n1\n")
            assert [a.key for a in capture.artifacts] == ["nested"]
        assert set(tracker.get_run_outputs("cr")) == {"nested"}

    def test_output_path_inside_start_run(self, tracker: Tracker) -> None:
        """The helpers' own error message promises they work inside start_run()."""
        with tracker.start_run("sr", "start_run_model"):
            consist.output_path("manual", ext="txt").write_text("m\n")
        assert set(tracker.get_run_outputs("sr")) == {"manual"}

    def test_capture_outputs_outside_a_run(self, tracker: Tracker, base: Path) -> None:
        consist.use_tracker(tracker)
        with pytest.raises(RuntimeError), consist.capture_outputs(base):
            pass


# --------------------------------------------------------------------------- #
# consist.load / consist.load_df
# --------------------------------------------------------------------------- #
class TestLoad:
    def test_load_parquet_and_csv_as_duckdb_relations(
        self, tracker: Tracker, data_csv: Path
    ) -> None:
        def step(data: Path) -> pd.DataFrame:
            return pd.read_csv(data)

        result = tracker.run(step, inputs={"data": data_csv}, outputs=["table"])
        parquet_art = result.outputs["table"]
        csv_art = tracker.get_run_inputs(result.run_id)["data"]

        rel = consist.load(parquet_art)
        assert isinstance(rel, duckdb.DuckDBPyRelation)
        assert relation_rows(rel) == [(1, 2, 10), (2, 1, 5)]
        rel_csv = consist.load(csv_art, tracker=tracker)
        assert isinstance(rel_csv, duckdb.DuckDBPyRelation)
        assert relation_rows(rel_csv) == [(1, 2, 10), (2, 1, 5)]
        assert isinstance(tracker.load(parquet_art), duckdb.DuckDBPyRelation)

    def test_load_df(self, tracker: Tracker, data_csv: Path) -> None:
        def step(data: Path) -> pd.DataFrame:
            return pd.read_csv(data)

        result = tracker.run(step, inputs={"data": data_csv}, outputs=["table"])
        df = consist.load_df(result.outputs["table"])
        assert isinstance(df, pd.DataFrame)
        pd.testing.assert_frame_equal(df, pd.read_csv(data_csv))
        csv_df = consist.load_df(tracker.get_run_inputs(result.run_id)["data"])
        pd.testing.assert_frame_equal(csv_df, pd.read_csv(data_csv))

    def test_load_missing_file(self, tracker: Tracker) -> None:
        def step() -> pd.DataFrame:
            return pd.DataFrame({"v": [1]})

        art = tracker.run(step, outputs=["gone"]).outputs["gone"]
        art.path.unlink()
        with pytest.raises(FileNotFoundError):
            consist.load(art)
        with pytest.raises(FileNotFoundError):
            consist.load_df(art)

    def test_load_rejects_non_artifacts(self, data_csv: Path) -> None:
        with pytest.raises(TypeError):
            consist.load(data_csv)  # type: ignore[arg-type]

    def test_load_unknown_driver(self, tracker: Tracker, base: Path) -> None:
        blob = write(base / "blob.bin", "\x00\x01")

        def step() -> Path:
            return blob

        art = tracker.run(step, outputs=["blob"]).outputs["blob"]
        with pytest.raises(ValueError, match="driver"):
            consist.load(art)


# --------------------------------------------------------------------------- #
# get_run_artifact, load_run_output, materialize
# --------------------------------------------------------------------------- #
class TestRetrieval:
    @pytest.fixture
    def produced(self, tracker: Tracker, data_csv: Path) -> consist.RunResult:
        def step(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
            df = pd.read_csv(data)
            return df, df[df["n"] > 6]

        return tracker.run(
            step, inputs={"data": data_csv}, outputs=["trips_all", "trips_large"], run_id="prod"
        )

    def test_get_run_artifact(self, tracker: Tracker, produced: consist.RunResult) -> None:
        exact = tracker.get_run_artifact("prod", key="trips_large")
        assert exact is not None
        assert exact.id == produced.outputs["trips_large"].id
        assert exact.path == produced.outputs["trips_large"].path

        by_substring = tracker.get_run_artifact("prod", key_contains="large")
        assert by_substring.id == produced.outputs["trips_large"].id

        assert tracker.get_run_artifact("prod", key="trips_all").id == (
            produced.outputs["trips_all"].id
        )
        assert tracker.get_run_artifact("prod", key="nope") is None
        assert tracker.get_run_artifact("prod", key_contains="zzz") is None

        # Inputs by direction.
        assert tracker.get_run_artifact("prod", key="data") is None
        data = tracker.get_run_artifact("prod", key="data", direction="input")
        assert data is not None and data.key == "data"
        assert tracker.get_run_artifact("prod", key_contains="dat", direction="input").key == (
            "data"
        )
        with pytest.raises(ValueError):
            tracker.get_run_artifact("prod", key="data", direction="sideways")

    def test_load_run_output(self, tracker: Tracker, produced: consist.RunResult) -> None:
        rel = tracker.load_run_output("prod", "trips_large")
        assert isinstance(rel, duckdb.DuckDBPyRelation)
        assert relation_rows(rel) == [(1, 2, 10)]
        with pytest.raises(KeyError, match="nope"):
            tracker.load_run_output("prod", "nope")

    def test_materialize_copies(self, tracker: Tracker, produced: consist.RunResult) -> None:
        art = produced.outputs["trips_all"]
        dest = tracker.run_dir / "materialized" / "trips.parquet"
        returned = tracker.materialize(art, dest)
        assert returned == str(dest)
        assert dest.read_bytes() == art.path.read_bytes()
        assert art.path.exists(), "materialize copies, it does not move"

    def test_materialize_outside_run_dir_is_honoured(
        self, tracker: Tracker, produced: consist.RunResult, base: Path
    ) -> None:
        # A destination the user names is honoured wherever it points (DESIGN 5).
        art = produced.outputs["trips_all"]
        outside = base / "elsewhere" / "trips.parquet"
        assert tracker.materialize(art, outside) == str(outside)
        assert outside.read_bytes() == art.path.read_bytes()
        with pytest.raises(ValueError, match="destination_path"):
            tracker.materialize(art, "")

    def test_materialize_outside_run_dir_with_allow_external_paths(
        self, base: Path, data_csv: Path
    ) -> None:
        t = Tracker(
            base / "runs",
            db_path=base / "prov.duckdb",
            project_root=base,
            allow_external_paths=True,
        )
        try:

            def step(data: Path) -> pd.DataFrame:
                return pd.read_csv(data)

            art = t.run(step, inputs={"data": data_csv}, outputs=["t"]).outputs["t"]
            outside = base / "elsewhere" / "t.parquet"
            assert t.materialize(art, outside) == str(outside)
            assert outside.read_bytes() == art.path.read_bytes()
        finally:
            t.close()

    def test_materialize_missing_source(
        self, tracker: Tracker, produced: consist.RunResult
    ) -> None:
        art = produced.outputs["trips_all"]
        art.path.unlink()
        dest = tracker.run_dir / "m" / "x.parquet"
        with pytest.warns(UserWarning):
            assert tracker.materialize(art, dest) is None
        with pytest.raises(FileNotFoundError):
            tracker.materialize(art, dest, on_missing="raise")
        assert not dest.exists()


# --------------------------------------------------------------------------- #
# Public surface
# --------------------------------------------------------------------------- #
def test_public_names_are_importable() -> None:
    for name in (
        "run",
        "trace",
        "output_path",
        "define_step",
        "use_tracker",
        "current_tracker",
        "capture_outputs",
        "load",
        "load_df",
        "RunResult",
        "RunContext",
        "ConsistRunError",
        "CacheOptions",
        "ExecutionOptions",
        "OutputPolicyOptions",
    ):
        assert getattr(consist, name) is not None
    assert issubclass(consist.ConsistRunError, RuntimeError)


def test_import_consist_is_light() -> None:
    """``import consist`` does not import pandas or duckdb (lazy public names)."""
    code = "import sys, consist; print('pandas' in sys.modules, 'duckdb' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_runs_and_logged_files_do_not_load_sqlalchemy(tmp_path: Path) -> None:
    """A run and ``log_artifact`` leave SQLModel/SQLAlchemy unloaded (~150 ms to import)."""
    code = (
        "import sys, consist\n"
        f"base = {str(tmp_path)!r}\n"
        "open(base + '/in.csv', 'w').write('a\\n1\\n')\n"
        "t = consist.Tracker(run_dir=base + '/runs', db_path=base + '/runs/p.duckdb')\n"
        "t.run(fn=lambda: None, name='step', config={'k': 1}, inputs={'data': base + '/in.csv'})\n"
        "with t.start_run('r1', 'm'):\n"
        "    t.log_artifact(base + '/in.csv', key='data', direction='input')\n"
        "print('sqlmodel' in sys.modules, 'sqlalchemy' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
