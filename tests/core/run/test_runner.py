"""Function-shaped runs (``Tracker.run``) and inline runs (``Tracker.trace``).

Argument validation (bad input writes nothing), binding of inputs / config /
context into the step function, logging of what a step returns or writes,
output policies, failures, ``define_step`` defaults, and trace semantics
(the block always executes; hits are visible inside it). Real files and a
real DuckDB file under ``tmp_path``; nothing is mocked.
"""

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import consist
from _support import make_git_repo, persisted, write
from consist import (
    CacheOptions,
    ConsistRunError,
    ExecutionOptions,
    OutputPolicyOptions,
    RunContext,
    Tracker,
)

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _isolated_cwd(in_base_dir: None) -> None:
    """Every test of this module runs in its own temporary directory."""


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    """project_root is tmp_path (not a git repo): code identity comes from the callable."""
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    yield t
    t.close()


@pytest.fixture
def git_tracker(base: Path) -> Iterator[Tracker]:
    """A tracker whose project_root is a clean git repository.

    ``trace`` has no function, so it can only be cached with a repository's
    code identity.
    """
    repo = make_git_repo(base / "project", {"model.py": "RATE = 0.5\n"})
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=repo)
    yield t
    t.close()


@pytest.fixture
def data_csv(base: Path) -> Path:
    return write(base / "data" / "input.csv", "a,b\n1,2\n3,4\n")


def seed(tracker: Tracker, data_csv: Path) -> None:
    """A completed run, so that the journal directory and DB rows already exist."""

    def seed_step(data: Path) -> pd.DataFrame:
        return pd.read_csv(data)

    tracker.run(seed_step, inputs={"data": data_csv}, outputs=["seeded"])


# --------------------------------------------------------------------------- #
# Validation: rejected before anything is written
# --------------------------------------------------------------------------- #
def _noop(data: Path | None = None, threads: int = 1) -> None:
    return None


def _needs_data(data: Path) -> None:
    return None


class TestValidation:
    @pytest.fixture(autouse=True)
    def _seed(self, tracker: Tracker, data_csv: Path) -> None:
        seed(tracker, data_csv)

    def _rejected(
        self, tracker: Tracker, exc: type[BaseException], match: str | None, call: Any
    ) -> BaseException:
        before = persisted(tracker)
        files_before = sorted(p for p in tracker.run_dir.rglob("*"))
        with pytest.raises(exc, match=match) as info:
            call()
        assert persisted(tracker) == before, "nothing may be written for invalid arguments"
        assert sorted(p for p in tracker.run_dir.rglob("*")) == files_before
        assert tracker.current_run is None
        return info.value

    def test_runtime_kwargs_in_both_places(self, tracker: Tracker, data_csv: Path) -> None:
        self._rejected(
            tracker,
            ValueError,
            "runtime_kwargs",
            lambda: tracker.run(
                _noop,
                inputs={"data": data_csv},
                runtime_kwargs={"threads": 2},
                execution_options=ExecutionOptions(runtime_kwargs={"threads": 4}),
            ),
        )

    def test_config_plan_is_rejected(self, tracker: Tracker, data_csv: Path) -> None:
        err = self._rejected(
            tracker,
            ValueError,
            "config_plan",
            lambda: tracker.run(_noop, inputs={"data": data_csv}, config_plan=object()),
        )
        assert "adapter" in str(err)
        assert "identity_inputs" in str(err)

    def test_hash_inputs_is_rejected(self, tracker: Tracker, data_csv: Path) -> None:
        err = self._rejected(
            tracker,
            ValueError,
            "hash_inputs",
            lambda: tracker.run(_noop, inputs={"data": data_csv}, hash_inputs=[data_csv]),
        )
        assert "identity_inputs" in str(err)

    def test_trace_rejects_config_plan_and_hash_inputs(
        self, tracker: Tracker, data_csv: Path
    ) -> None:
        def enter(**kwargs: Any) -> None:
            with tracker.trace("t", **kwargs):
                raise AssertionError("the block must not run")

        err = self._rejected(tracker, ValueError, "config_plan", lambda: enter(config_plan={}))
        assert "adapter" in str(err) or "identity_inputs" in str(err)
        err = self._rejected(
            tracker, ValueError, "hash_inputs", lambda: enter(hash_inputs=[data_csv])
        )
        assert "identity_inputs" in str(err)

    def test_fn_none(self, tracker: Tracker) -> None:
        self._rejected(tracker, ValueError, "fn", lambda: tracker.run(None, name="nothing"))
        self._rejected(tracker, ValueError, "fn", lambda: tracker.run(name="nothing"))

    def test_unknown_cache_mode(self, tracker: Tracker, data_csv: Path) -> None:
        with pytest.raises(ValueError):
            CacheOptions(cache_mode="sometimes")

        def enter() -> None:
            with tracker.trace("t", cache_mode="sometimes"):
                raise AssertionError("the block must not run")

        self._rejected(tracker, ValueError, "cache_mode", enter)
        self._rejected(
            tracker,
            ValueError,
            "cache_mode",
            lambda: tracker.run(_noop, inputs={"data": data_csv}, cache_mode="sometimes"),
        )

    def test_other_invalid_arguments(self, tracker: Tracker, data_csv: Path) -> None:
        # A runtime kwarg the function does not accept.
        self._rejected(
            tracker,
            TypeError,
            "nope",
            lambda: tracker.run(_noop, runtime_kwargs={"nope": 1}),
        )
        # A required parameter nothing supplies.
        self._rejected(tracker, TypeError, "data", lambda: tracker.run(_needs_data))
        # A context requested but no parameter to receive it.
        self._rejected(
            tracker,
            TypeError,
            "ctx",
            lambda: tracker.run(_noop, execution_options=ExecutionOptions(inject_context=True)),
        )
        # inputs as a single path.
        self._rejected(tracker, TypeError, "inputs", lambda: tracker.run(_noop, inputs=data_csv))
        # Unknown keyword.
        self._rejected(
            tracker, TypeError, "bogus_option", lambda: tracker.run(_noop, bogus_option=1)
        )
        # A wrong options type.
        self._rejected(
            tracker,
            TypeError,
            "cache_options",
            lambda: tracker.run(_noop, cache_options={"cache_mode": "reuse"}),
        )

    def test_input_keys_is_deprecated(self, tracker: Tracker, data_csv: Path) -> None:
        seen: list[Any] = []

        def step(data: Path) -> None:
            seen.append(data)

        with pytest.warns(DeprecationWarning, match="inputs"):
            result = tracker.run(step, inputs={"data": data_csv}, input_keys=["data"])
        assert seen == [data_csv]
        assert tracker.get_run(result.run_id).status == "completed"

        with pytest.warns(DeprecationWarning):
            tracker.run(
                step,
                inputs={"data": data_csv},
                optional_input_keys=["data"],
                config={"again": True},
            )


# --------------------------------------------------------------------------- #
# Binding inputs, config and context into parameters
# --------------------------------------------------------------------------- #
class TestBinding:
    @pytest.fixture
    def two_csvs(self, base: Path) -> tuple[Path, Path]:
        return (
            write(base / "in" / "raw.csv", "a\n1\n2\n"),
            write(base / "in" / "table.csv", "b\n3\n4\n"),
        )

    def _run_binding(
        self, tracker: Tracker, two_csvs: tuple[Path, Path], **kwargs: Any
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def step(raw=None, table: pd.DataFrame = None) -> None:
            seen["raw"] = raw
            seen["table"] = table

        raw, table = two_csvs
        tracker.run(step, inputs={"raw": raw, "table": table}, **kwargs)
        return seen

    def test_auto_gives_path_or_dataframe_by_annotation(
        self, tracker: Tracker, two_csvs: tuple[Path, Path]
    ) -> None:
        seen = self._run_binding(tracker, two_csvs)
        assert isinstance(seen["raw"], Path)
        assert seen["raw"] == two_csvs[0]
        assert isinstance(seen["table"], pd.DataFrame)
        pd.testing.assert_frame_equal(seen["table"], pd.read_csv(two_csvs[1]))

    def test_auto_with_string_annotation(self, tracker: Tracker, base: Path) -> None:
        seen: dict[str, Any] = {}

        def step(table: "pd.DataFrame") -> None:
            seen["table"] = table

        csv = write(base / "in" / "s.csv", "c\n5\n")
        tracker.run(step, inputs={"table": csv})
        assert isinstance(seen["table"], pd.DataFrame)

    def test_paths(self, tracker: Tracker, two_csvs: tuple[Path, Path]) -> None:
        seen = self._run_binding(
            tracker, two_csvs, execution_options=ExecutionOptions(input_binding="paths")
        )
        assert seen == {"raw": two_csvs[0], "table": two_csvs[1]}
        assert all(isinstance(v, Path) for v in seen.values())

    def test_loaded(self, tracker: Tracker, two_csvs: tuple[Path, Path]) -> None:
        seen = self._run_binding(
            tracker, two_csvs, execution_options=ExecutionOptions(input_binding="loaded")
        )
        pd.testing.assert_frame_equal(seen["raw"], pd.read_csv(two_csvs[0]))
        pd.testing.assert_frame_equal(seen["table"], pd.read_csv(two_csvs[1]))

    def test_none(self, tracker: Tracker, two_csvs: tuple[Path, Path]) -> None:
        seen = self._run_binding(
            tracker, two_csvs, execution_options=ExecutionOptions(input_binding="none")
        )
        assert seen == {"raw": None, "table": None}

    def test_legacy_load_inputs(self, tracker: Tracker, two_csvs: tuple[Path, Path]) -> None:
        seen = self._run_binding(
            tracker, two_csvs, execution_options=ExecutionOptions(load_inputs=True)
        )
        assert isinstance(seen["raw"], pd.DataFrame)

    def test_inputs_are_logged_whatever_the_binding(
        self, tracker: Tracker, two_csvs: tuple[Path, Path]
    ) -> None:
        seen: dict[str, Any] = {}

        def unbound() -> None:
            seen["called"] = True

        result = tracker.run(unbound, inputs={"raw": two_csvs[0], "table": two_csvs[1]})
        assert seen == {"called": True}
        assert set(tracker.get_run_inputs(result.run_id)) == {"raw", "table"}

    def test_list_inputs_are_logged_but_not_bound(
        self, tracker: Tracker, two_csvs: tuple[Path, Path]
    ) -> None:
        seen: dict[str, Any] = {}

        def step(raw=None) -> None:
            seen["raw"] = raw

        result = tracker.run(step, inputs=list(two_csvs))
        assert seen == {"raw": None}
        inputs = tracker.get_run_inputs(result.run_id)
        assert {a.path for a in inputs.values()} == set(two_csvs)

    def test_config_parameter_receives_the_config(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(config) -> None:
            seen["config"] = config

        config = {"rate": 0.5, "zones": [1, 2], "nested": {"x": "y"}}
        tracker.run(step, config=config)
        assert seen["config"] == config

    def test_config_parameter_without_config(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(config) -> None:
            seen["config"] = config

        tracker.run(step)
        assert seen["config"] == {}

    def test_inject_context(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(ctx) -> None:
            seen["ctx"] = ctx
            seen["id"] = ctx.run.id
            seen["config"] = ctx.config
            path = ctx.output_path("notes", ext="txt")
            path.write_text("context notes\n")
            seen["path"] = path

        result = tracker.run(
            step, config={"alpha": 1}, execution_options=ExecutionOptions(inject_context=True)
        )
        assert isinstance(seen["ctx"], RunContext)
        assert seen["id"] == result.run_id
        assert seen["config"] == {"alpha": 1}
        assert seen["path"].parent == tracker.run_artifact_dir(result.run)
        assert seen["path"].name == "notes.txt"
        assert result.outputs["notes"].path == seen["path"]
        assert set(tracker.get_run_outputs(result.run_id)) == {"notes"}

    def test_inject_context_under_another_name(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        def step(run_context) -> None:
            seen["id"] = run_context.run.id

        result = tracker.run(step, execution_options=ExecutionOptions(inject_context="run_context"))
        assert seen["id"] == result.run_id


# --------------------------------------------------------------------------- #
# What a step returns or writes becomes outputs
# --------------------------------------------------------------------------- #
class TestOutputs:
    def test_dataframe_return_is_written_as_parquet_under_the_artifact_dir(
        self, tracker: Tracker
    ) -> None:
        df = pd.DataFrame({"x": [1, 2, 3]})

        def step() -> pd.DataFrame:
            return df

        result = tracker.run(step, outputs=["table"])
        art = result.outputs["table"]
        assert art.driver == "parquet"
        assert art.path.suffix == ".parquet"
        assert art.path.parent == tracker.run_artifact_dir(result.run)
        pd.testing.assert_frame_equal(pd.read_parquet(art.path), df)
        assert set(tracker.get_run_outputs(result.run_id)) == {"table"}
        assert result.output("table") is art
        with pytest.raises(KeyError, match="table"):
            result.output("nope")

    def test_series_return_is_written_as_parquet(self, tracker: Tracker) -> None:
        def step() -> pd.Series:
            return pd.Series([1.5, 2.5], name="speed")

        result = tracker.run(step, outputs=["speeds"])
        art = result.outputs["speeds"]
        assert art.driver == "parquet"
        assert art.path.parent == tracker.run_artifact_dir(result.run)
        assert pd.read_parquet(art.path)["speed"].tolist() == [1.5, 2.5]

    def test_path_return_is_logged(self, tracker: Tracker) -> None:
        target = tracker.run_dir / "made" / "result.csv"

        def step() -> Path:
            write(target, "r\n1\n")
            return target

        result = tracker.run(step, outputs=["result"])
        assert result.outputs["result"].path == target
        assert tracker.get_run_outputs(result.run_id)["result"].path == target

    def test_undeclared_path_return_is_logged_by_stem(self, tracker: Tracker) -> None:
        target = tracker.run_dir / "made" / "summary.csv"

        def step() -> str:
            write(target, "s\n1\n")
            return str(target)

        result = tracker.run(step)
        assert set(result.outputs) == {"summary"}
        assert result.outputs["summary"].path == target

    def test_undeclared_dict_of_paths_is_logged(self, tracker: Tracker) -> None:
        a = tracker.run_dir / "made" / "a.csv"
        b = tracker.run_dir / "made" / "b.csv"

        def step() -> dict[str, Path]:
            write(a, "a\n1\n")
            write(b, "b\n1\n")
            return {"first": a, "second": b, "note": "not a path"}  # type: ignore[dict-item]

        result = tracker.run(step)
        assert set(result.outputs) == {"first", "second"}

    def test_dict_for_several_outputs(self, tracker: Tracker) -> None:
        target = tracker.run_dir / "made" / "side.txt"

        def step() -> dict[str, Any]:
            write(target, "side\n")
            return {"table": pd.DataFrame({"v": [1]}), "side": target}

        result = tracker.run(step, outputs=["table", "side"])
        assert set(result.outputs) == {"table", "side"}
        assert result.outputs["table"].driver == "parquet"
        assert result.outputs["side"].path == target
        assert set(tracker.get_run_outputs(result.run_id)) == {"table", "side"}

    def test_tuple_for_several_outputs(self, tracker: Tracker) -> None:
        def step() -> tuple[pd.DataFrame, pd.DataFrame]:
            return pd.DataFrame({"p": [1]}), pd.DataFrame({"q": [2]})

        result = tracker.run(step, outputs=["persons", "households"])
        assert set(result.outputs) == {"persons", "households"}
        assert pd.read_parquet(result.outputs["persons"].path).columns.tolist() == ["p"]
        assert pd.read_parquet(result.outputs["households"].path).columns.tolist() == ["q"]

    def test_unrecordable_return_fails_the_run(self, tracker: Tracker) -> None:
        def step() -> int:
            return 42

        with pytest.raises(TypeError, match="int"):
            tracker.run(step, outputs=["answer"], run_id="bad_return")
        assert tracker.get_run("bad_return").status == "failed"

    def test_output_paths_are_logged(self, tracker: Tracker) -> None:
        first = tracker.run_dir / "ops" / "one.csv"
        second = tracker.run_dir / "ops" / "two.txt"

        def step() -> None:
            write(first, "x\n1\n")
            write(second, "two\n")

        result = tracker.run(step, output_paths={"one": first, "two": str(second)})
        outputs = tracker.get_run_outputs(result.run_id)
        assert set(outputs) == {"one", "two"}
        assert outputs["one"].path == first
        assert outputs["two"].path == second
        assert outputs["one"].driver == "csv"

    def test_output_path_helper_returned_or_not(self, tracker: Tracker) -> None:
        def returns_it() -> Path:
            path = consist.output_path("report", ext="txt")
            path.write_text("returned\n")
            return path

        def writes_only() -> None:
            consist.output_path("log", ext="txt").write_text("not returned\n")

        r1 = tracker.run(returns_it)
        r2 = tracker.run(writes_only)
        assert set(r1.outputs) == {"report"}
        assert r1.outputs["report"].path == tracker.run_artifact_dir(r1.run) / "report.txt"
        assert set(r2.outputs) == {"log"}
        assert r2.outputs["log"].path.read_text() == "not returned\n"
        assert set(tracker.get_run_outputs(r2.run_id)) == {"log"}

    def test_capture_dir_logs_new_and_modified_files_only(
        self, tracker: Tracker, base: Path
    ) -> None:
        work = base / "legacy_out"
        untouched = write(work / "untouched.csv", "u\n1\n")
        modified = write(work / "modified.csv", "m\n1\n")
        write(work / "ignored.log", "log\n")
        old = os.stat(modified)
        # Pre-existing files look old, so a rewrite is seen as a modification.
        for p in work.iterdir():
            os.utime(p, ns=(old.st_atime_ns - 10**10, old.st_mtime_ns - 10**10))

        def legacy_tool() -> None:
            write(work / "created.csv", "c\n1\n")
            write(modified, "m\n2\n")
            write(work / "also_new.log", "log\n")

        result = tracker.run(legacy_tool, capture_dir=work, capture_pattern="*.csv")
        outputs = tracker.get_run_outputs(result.run_id)
        assert set(outputs) == {"created", "modified"}
        assert outputs["modified"].path == modified
        assert untouched.exists()

    def test_capture_dir_default_pattern(self, tracker: Tracker, base: Path) -> None:
        work = base / "legacy_all"
        work.mkdir()

        def tool() -> None:
            write(work / "a.txt", "a\n")
            write(work / "b.bin", "b\n")

        result = tracker.run(tool, capture_dir=str(work))
        assert set(tracker.get_run_outputs(result.run_id)) == {"a", "b"}

    def test_output_missing_error_fails_the_run(self, tracker: Tracker) -> None:
        def step() -> dict[str, pd.DataFrame]:
            return {"made": pd.DataFrame({"v": [1]})}

        with pytest.raises(RuntimeError, match="forgotten"):
            tracker.run(
                step,
                run_id="missing_out",
                outputs=["made", "forgotten"],
                output_policy=OutputPolicyOptions(output_missing="error"),
            )
        run = tracker.get_run("missing_out")
        assert run.status == "failed"
        assert "forgotten" in run.meta["error"]
        assert tracker.current_run is None

    def test_output_missing_error_for_output_paths(self, tracker: Tracker) -> None:
        never = tracker.run_dir / "never.csv"

        with pytest.raises(RuntimeError, match="never"):
            tracker.run(
                _noop,
                run_id="missing_path",
                output_paths={"never": never},
                output_policy=OutputPolicyOptions(output_missing="error"),
            )
        assert tracker.get_run("missing_path").status == "failed"

    def test_output_missing_warns_by_default_and_ignore_is_silent(self, tracker: Tracker) -> None:
        with pytest.warns(UserWarning, match="absent"):
            result = tracker.run(_noop, outputs=["absent"])
        assert tracker.get_run(result.run_id).status == "completed"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tracker.run(
                _noop,
                outputs=["absent"],
                config={"second": True},
                output_policy=OutputPolicyOptions(output_missing="ignore"),
            )

    def test_output_mismatch_warns(self, tracker: Tracker) -> None:
        def step() -> tuple[pd.DataFrame, ...]:
            return (pd.DataFrame({"a": [1]}),) * 3

        with pytest.warns(UserWarning, match="3"):
            result = tracker.run(step, outputs=["one", "two"])
        assert set(result.outputs) == {"one", "two"}
        assert tracker.get_run(result.run_id).status == "completed"

    def test_output_mismatch_error(self, tracker: Tracker) -> None:
        def step() -> tuple[pd.DataFrame, ...]:
            return (pd.DataFrame({"a": [1]}),) * 3

        with pytest.raises(RuntimeError):
            tracker.run(
                step,
                run_id="mismatch",
                outputs=["one", "two"],
                output_policy=OutputPolicyOptions(output_mismatch="error"),
            )
        assert tracker.get_run("mismatch").status == "failed"


# --------------------------------------------------------------------------- #
# A step that raises
# --------------------------------------------------------------------------- #
class TestFailure:
    def test_exception_is_wrapped_and_the_run_recorded_failed(self, tracker: Tracker) -> None:
        original = KeyError("zone_id")

        def step() -> None:
            raise original

        with pytest.raises(ConsistRunError) as info:
            tracker.run(step, run_id="boom")
        err = info.value
        assert isinstance(err, RuntimeError)
        assert err.__cause__ is original
        assert err.run_id == "boom"
        assert "boom" in str(err)

        run = tracker.get_run("boom")
        assert run.status == "failed"
        assert "KeyError" in run.meta["error"]
        assert "zone_id" in run.meta["error"]
        assert run.ended_at is not None
        assert tracker.current_run is None
        assert tracker.journal.read("boom").run.status == "failed"

    def test_failed_run_is_re_executed(self, tracker: Tracker) -> None:
        calls: list[int] = []

        def step() -> None:
            calls.append(1)
            raise ValueError("always")

        for _ in range(3):
            with pytest.raises(ConsistRunError):
                tracker.run(step)
        assert len(calls) == 3

    def test_tracker_usable_after_failure(self, tracker: Tracker) -> None:
        def bad() -> None:
            raise ValueError("x")

        with pytest.raises(ConsistRunError):
            tracker.run(bad)

        def good() -> pd.DataFrame:
            return pd.DataFrame({"ok": [1]})

        assert tracker.run(good, outputs=["ok"]).outputs["ok"].path.exists()


# --------------------------------------------------------------------------- #
# trace
# --------------------------------------------------------------------------- #
class TestTrace:
    def test_block_always_executes_and_sees_the_cache(
        self, git_tracker: Tracker, data_csv: Path
    ) -> None:
        tracker = git_tracker
        report = tracker.run_dir / "reports" / "report.txt"
        executed: list[bool] = []
        cached: list[Any] = []
        run_ids: list[str] = []
        for _ in range(2):
            with tracker.trace(
                "summarize",
                config={"k": 1},
                inputs={"data": data_csv},
                output_paths={"report": report},
            ) as t:
                assert t is tracker
                executed.append(tracker.is_cached)
                cached.append(tracker.cached_output("report"))
                run_ids.append(tracker.current_run.id)
                write(report, "summary of " + data_csv.read_text())

        assert executed == [False, True], "the block runs both times; only the 2nd is a hit"
        assert cached[0] is None
        first_outputs = tracker.get_run_outputs(run_ids[0])
        assert cached[1] is not None
        assert cached[1].id == first_outputs["report"].id
        assert cached[1].path == report
        hit = tracker.get_run(run_ids[1])
        assert hit.status == "completed"
        assert hit.meta["cache_hit"] is True
        assert hit.meta["cache_source"] == run_ids[0]
        assert tracker.is_cached is False  # no run active any more

    def test_cached_artifacts_inside_a_hit(self, git_tracker: Tracker, data_csv: Path) -> None:
        tracker = git_tracker
        out = tracker.run_dir / "o.csv"
        for _ in range(2):
            with tracker.trace("t", inputs={"data": data_csv}, output_paths={"o": out}):
                if tracker.is_cached:
                    assert set(tracker.cached_artifacts()) == {"o"}
                    assert tracker.cached_output() is not None
                    assert set(tracker.cached_artifacts("input")) == {"data"}
                else:
                    assert tracker.cached_artifacts() == {}
                    write(out, "o\n1\n")

    def test_changed_config_is_not_cached(self, git_tracker: Tracker) -> None:
        seen = []
        for k in (1, 2):
            with git_tracker.trace("cfg", config={"k": k}):
                seen.append(git_tracker.is_cached)
        assert seen == [False, False]

    def test_output_paths_logged_on_exit(self, git_tracker: Tracker) -> None:
        tracker = git_tracker
        target = tracker.run_dir / "traced" / "result.csv"
        with tracker.trace("writer", run_id="traced_run", output_paths={"result": target}):
            write(target, "r\n1\n")
            assert tracker.get_run_outputs("traced_run") == {}
        outputs = tracker.get_run_outputs("traced_run")
        assert set(outputs) == {"result"}
        assert outputs["result"].path == target
        assert tracker.get_run("traced_run").status == "completed"

    def test_exception_marks_failed_and_propagates_unchanged(self, git_tracker: Tracker) -> None:
        tracker = git_tracker
        original = ValueError("inside the block")
        with pytest.raises(ValueError) as info, tracker.trace("fails", run_id="bad_trace"):
            raise original
        assert info.value is original
        run = tracker.get_run("bad_trace")
        assert run.status == "failed"
        assert "inside the block" in run.meta["error"]
        assert tracker.current_run is None

        # A failed trace is never a cache source.
        with tracker.trace("fails"):
            assert tracker.is_cached is False

    def test_trace_output_missing_error(self, git_tracker: Tracker) -> None:
        tracker = git_tracker
        with (
            pytest.raises(RuntimeError, match="ghost"),
            tracker.trace(
                "ghost_writer",
                run_id="ghost",
                output_paths={"ghost": tracker.run_dir / "ghost.csv"},
                output_missing="error",
            ),
        ):
            pass
        assert tracker.get_run("ghost").status == "failed"

    def test_trace_outside_a_repository_never_hits(self, tracker: Tracker) -> None:
        """No function and no git repository: no code identity, so no caching (fail closed)."""
        seen = []
        for _ in range(2):
            with tracker.trace("no_code", config={"k": 1}):
                seen.append(tracker.is_cached)
        assert seen == [False, False]


# --------------------------------------------------------------------------- #
# define_step
# --------------------------------------------------------------------------- #
class TestDefineStep:
    def test_metadata_is_honoured(self, tracker: Tracker) -> None:
        calls: list[int] = []

        @consist.define_step(outputs=["summary"], tags=["nightly"], cache_mode="overwrite")
        def summarize() -> pd.DataFrame:
            calls.append(1)
            return pd.DataFrame({"n": [len(calls)]})

        r1 = tracker.run(summarize)
        r2 = tracker.run(summarize)
        assert set(r1.outputs) == {"summary"}
        assert tracker.get_run(r1.run_id).tags == ["nightly"]
        assert r2.cache_hit is False
        assert len(calls) == 2, "cache_mode='overwrite' from define_step executes every time"

    def test_explicit_arguments_win(self, tracker: Tracker) -> None:
        @consist.define_step(outputs=["summary"], tags=["nightly"])
        def summarize() -> pd.DataFrame:
            return pd.DataFrame({"n": [1]})

        result = tracker.run(summarize, outputs=["custom"], tags=["manual"])
        assert set(result.outputs) == {"custom"}
        assert tracker.get_run(result.run_id).tags == ["manual"]

    def test_explicit_flat_cache_mode_wins(self, tracker: Tracker) -> None:
        calls: list[int] = []

        @consist.define_step(cache_mode="overwrite")
        def step() -> None:
            calls.append(1)

        tracker.run(step, cache_mode="reuse")
        assert tracker.run(step, cache_mode="reuse").cache_hit
        assert len(calls) == 1

    def test_explicit_cache_options_win(self, tracker: Tracker) -> None:
        calls: list[int] = []

        @consist.define_step(cache_mode="overwrite")
        def step() -> None:
            calls.append(1)

        opts = CacheOptions(cache_mode="reuse")
        tracker.run(step, cache_options=opts)
        second = tracker.run(step, cache_options=opts)
        assert second.cache_hit, "explicit cache_options=CacheOptions(cache_mode='reuse') wins"
        assert len(calls) == 1

    def test_inject_context_from_define_step(self, tracker: Tracker) -> None:
        seen: dict[str, Any] = {}

        @consist.define_step(inject_context=True)
        def step(ctx) -> None:
            seen["id"] = ctx.run.id

        result = tracker.run(step)
        assert seen["id"] == result.run_id

    def test_unknown_keyword_is_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="outptus"):
            consist.define_step(outptus=["typo"])

    def test_function_is_returned_unchanged(self) -> None:
        def step() -> int:
            return 7

        decorated = consist.define_step(tags=["x"])(step)
        assert decorated is step
        assert decorated() == 7

    def test_tracker_define_step(self, tracker: Tracker) -> None:
        """The spec lists define_step(**kwargs) as a Tracker method too."""

        @tracker.define_step(outputs=["made"])
        def step() -> pd.DataFrame:
            return pd.DataFrame({"m": [1]})

        assert set(tracker.run(step).outputs) == {"made"}
        with pytest.raises(TypeError):
            tracker.define_step(not_a_run_parameter=1)


def test_capture_pattern_without_capture_dir_is_refused(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    calls = []
    with pytest.raises(ValueError, match=r"capture_pattern.*capture_dir"):
        tracker.run(lambda: calls.append(1), name="cap", capture_pattern="*.csv")
    assert calls == []
    assert tracker.find_runs(model="cap") == []
    tracker.close()


def _same_table_twice(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"rows": [len(a), len(b)], "same": [a.equals(b), a.equals(b)]})


def test_one_artifact_under_two_input_keys_binds_both_parameters(
    tracker: Tracker, base: Path
) -> None:
    source = write(base / "data" / "zones.csv", "zone,pop\n1,10\n2,20\n3,30\n")
    made = tracker.run(fn=lambda_free_copy, name="copy", inputs={"src": source}, outputs=["t"])
    table = made.outputs["t"]
    first = tracker.run(
        fn=_same_table_twice, name="twice", inputs={"a": table, "b": table}, outputs=["out"]
    )
    assert not first.cache_hit
    result = tracker.load_df(first.outputs["out"])
    assert result["rows"].tolist() == [3, 3] and result["same"].all()
    # The run links the artifact once; the identical call is a hit.
    again = tracker.run(
        fn=_same_table_twice, name="twice", inputs={"a": table, "b": table}, outputs=["out"]
    )
    assert again.cache_hit
    assert list(tracker.get_run_inputs(first.run.id)) == ["b"]  # the last key given


def lambda_free_copy(src: pd.DataFrame) -> pd.DataFrame:
    return src
