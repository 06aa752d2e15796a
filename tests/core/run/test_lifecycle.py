"""The run lifecycle through the Tracker facade.

begin_run / end_run / start_run, argument validation (bad input writes
nothing), log_meta, hooks, per-run artifact directories, last_run /
is_cached, and persistence across processes. Real files and a real DuckDB
file under ``tmp_path``; nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from consist.core.tracker import Tracker
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.run import Run

State = tuple[dict[str, bytes | None], dict[str, int] | None]


# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _isolated_cwd(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from tmp_path, so project_root="." is never the repository's working tree."""
    monkeypatch.chdir(base)


@pytest.fixture
def run_dir(base: Path) -> Path:
    return base / "runs"


@pytest.fixture
def db_path(base: Path) -> Path:
    return base / "prov.duckdb"


@pytest.fixture
def tracker(run_dir: Path, db_path: Path) -> Iterator[Tracker]:
    t = Tracker(run_dir, db_path=db_path)
    yield t
    t.close()


def state(tracker: Tracker) -> State:
    """Every file (with its bytes) and directory under run_dir, plus DB row counts.

    Counts come first: reading the store commits queued writes, which updates
    the pending ledger (``consist_runs/.pending``, process bookkeeping rather
    than recorded data, so it is left out).
    """
    counts = tracker.store.table_counts() if tracker.store is not None else None
    files: dict[str, bytes | None] = {}
    if tracker.run_dir.exists():
        for p in sorted(tracker.run_dir.rglob("*")):
            rel = p.relative_to(tracker.run_dir)
            if ".pending" in rel.parts:
                continue
            files[str(rel)] = p.read_bytes() if p.is_file() else None
    return files, counts


def assert_unchanged(tracker: Tracker, before: State) -> None:
    after = state(tracker)
    assert sorted(after[0]) == sorted(before[0]), "files were added or removed under run_dir"
    assert after[0] == before[0], "a file under run_dir was rewritten"
    assert after[1] == before[1], "database row counts changed"


def journal(run_dir: Path, run_id: str) -> dict[str, Any]:
    return json.loads((run_dir / "consist_runs" / f"{run_id}.json").read_text())


def seed_run(tracker: Tracker, run_id: str = "seed") -> Run:
    """A completed run, so that the journal directory and DB rows already exist."""
    with tracker.start_run(run_id, "seed_model", config={"seed": True}):
        pass
    return tracker.get_run(run_id) or tracker.last_run.run


def write(path: Path, text: str = "data\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- #
# begin_run: every documented parameter
# --------------------------------------------------------------------------- #
class TestBeginRunParameters:
    def test_minimal_begin_and_end(self, tracker: Tracker, run_dir: Path) -> None:
        run = tracker.begin_run("r1", "model_a")
        assert isinstance(run, Run)
        assert run.id == "r1"
        assert run.model_name == "model_a"
        assert run.status == "running"
        assert run.ended_at is None
        assert tracker.current_run is run
        # Persisted at begin: journal file, latest pointer and DB row.
        assert journal(run_dir, "r1")["run"]["status"] == "running"
        assert json.loads((run_dir / "consist.json").read_text())["run"]["id"] == "r1"
        assert tracker.get_run("r1").status == "running"
        ended = tracker.end_run()
        assert ended.id == "r1"
        assert ended.status == "completed"
        assert ended.ended_at is not None
        assert tracker.current_run is None

    def test_every_parameter_is_recorded(self, tracker: Tracker, base: Path, run_dir: Path) -> None:
        households = write(base / "inputs" / "households.csv", "id,size\n1,2\n")
        bundle = write(base / "bundle" / "settings.yaml", "mode: fast\n")
        dep = write(base / "helpers.py", "X = 1\n")
        config = {"scenario": "base", "rate": 0.5, "nested": {"k": [1, 2]}}
        run = tracker.begin_run(
            "full",
            "urbansim",
            config=config,
            inputs=[households],
            tags=["baseline", "v1"],
            description="a full run",
            cache_mode="overwrite",
            artifact_dir="custom/full",
            allow_external_paths=False,
            facet={"rate": 0.75},
            facet_from=["scenario", "rate"],
            hash_inputs=[("bundle", bundle)],
            code_identity_extra_deps=[str(dep)],
            facet_schema_version=2,
            facet_index=False,
            year=2030,
            iteration=3,
            stage="demand",
            phase="calibration",
            parent_run_id="parent_run",
            owner="alice",
        )
        assert run.tags == ["baseline", "v1"]
        assert run.description == "a full run"
        assert run.year == 2030
        assert run.iteration == 3
        assert run.stage == "demand"
        assert run.phase == "calibration"
        assert run.parent_run_id == "parent_run"
        assert run.meta["owner"] == "alice"
        assert isinstance(run.config_hash, str) and run.config_hash
        assert isinstance(run.input_hash, str) and run.input_hash
        assert tracker.run_artifact_dir() == run_dir / "outputs" / "custom" / "full"
        assert tracker.is_cached is False

        # The journal holds config and facet (explicit facet keys win).
        snap = journal(run_dir, "full")
        assert snap["config"] == config
        assert snap["facet"] == {"scenario": "base", "rate": 0.75}
        assert [a["key"] for a in snap["inputs"]] == ["households"]

        tracker.end_run()

        stored = tracker.get_run("full")
        assert stored.status == "completed"
        assert stored.model_name == "urbansim"
        assert stored.tags == ["baseline", "v1"]
        assert stored.description == "a full run"
        assert (stored.year, stored.iteration) == (2030, 3)
        assert (stored.stage, stored.phase) == ("demand", "calibration")
        assert stored.parent_run_id == "parent_run"
        assert stored.meta["owner"] == "alice"
        assert stored.config_hash == run.config_hash
        assert stored.input_hash == run.input_hash
        # hash_inputs feed identity only; they are not logged as run inputs.
        inputs = tracker.get_run_inputs("full")
        assert set(inputs) == {"households"}
        assert inputs["households"].path == households
        assert tracker.get_run_outputs("full") == {}
        assert tracker.get_run_config("full") == config
        record = tracker.get_run_record("full")
        assert record.facet == {"scenario": "base", "rate": 0.75}

    @pytest.mark.parametrize("mode", ["reuse", "overwrite", "readonly"])
    def test_cache_modes_accepted(self, tracker: Tracker, mode: str) -> None:
        tracker.begin_run(f"r_{mode}", "m", cache_mode=mode)
        assert tracker.end_run().status == "completed"

    def test_pydantic_config_is_accepted(self, tracker: Tracker) -> None:
        class Settings(BaseModel):
            rate: float
            name: str
            zones: list[int]

        tracker.begin_run("pyd", "m", config=Settings(rate=0.25, name="x", zones=[1, 2]))
        tracker.end_run()
        assert tracker.get_run_config("pyd") == {"rate": 0.25, "name": "x", "zones": [1, 2]}

    def test_same_config_same_hash_different_config_different_hash(self, tracker: Tracker) -> None:
        a = tracker.begin_run("a", "m", config={"x": 1, "y": [1, 2]})
        tracker.end_run()
        b = tracker.begin_run("b", "m", config={"y": [1, 2], "x": 1})
        tracker.end_run()
        c = tracker.begin_run("c", "m", config={"x": 2, "y": [1, 2]})
        tracker.end_run()
        assert a.config_hash == b.config_hash
        assert a.config_hash != c.config_hash

    def test_model_at_length_limit_is_accepted(self, tracker: Tracker) -> None:
        tracker.begin_run("long_model", "m" * 256)
        assert tracker.end_run().model_name == "m" * 256

    def test_numpy_int_year_is_accepted(self, tracker: Tracker) -> None:
        np = pytest.importorskip("numpy")
        tracker.begin_run("np_year", "m", year=np.int64(2040), iteration=np.int32(2))
        tracker.end_run()
        stored = tracker.get_run("np_year")
        assert (stored.year, stored.iteration) == (2040, 2)

    def test_config_string_at_limit_is_accepted(
        self, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CONSIST_MAX_CONFIG_VALUE_LENGTH", "16")
        tracker.begin_run("cfg_ok", "m", config={"s": "x" * 16, "n": {"t": ["y" * 16]}})
        tracker.end_run()
        assert tracker.get_run_config("cfg_ok")["s"] == "x" * 16

    def test_metadata_at_limits_is_accepted(
        self, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CONSIST_MAX_METADATA_ITEMS", "2")
        monkeypatch.setenv("CONSIST_MAX_METADATA_KEY_LENGTH", "5")
        monkeypatch.setenv("CONSIST_MAX_METADATA_VALUE_LENGTH", "12")
        # year/iteration/stage/phase are run fields, not metadata items.
        tracker.begin_run(
            "meta_ok", "m", abcde="x" * 10, other=1, year=2020, iteration=1, stage="s", phase="p"
        )
        tracker.end_run()
        stored = tracker.get_run("meta_ok")
        assert stored.meta["abcde"] == "x" * 10
        assert stored.meta["other"] == 1

    def test_duplicate_tags_and_input_keys(self, tracker: Tracker, base: Path) -> None:
        a = write(base / "a" / "zones.csv")
        b = write(base / "b" / "zones.parquet")
        run = tracker.begin_run("tags", "m", tags=["x", "y"], inputs=[a, b])
        assert run.tags == ["x", "y"]
        tracker.end_run()
        assert len(tracker.get_run_inputs("tags")) == 2


# --------------------------------------------------------------------------- #
# begin_run: bad input is rejected and nothing is written
# --------------------------------------------------------------------------- #
MISSING = "<missing>"
OUTSIDE = "<outside>"


def _case(
    id_: str,
    kwargs: dict[str, Any],
    exc: type[BaseException],
    match: str,
    env: dict[str, str] | None = None,
) -> Any:
    return pytest.param(kwargs, exc, match, env or {}, id=id_)


BAD_BEGIN = [
    _case("model-empty", {"model": ""}, ValueError, "model"),
    _case("model-blank", {"model": "   "}, ValueError, "model"),
    _case("model-too-long", {"model": "m" * 257}, ValueError, "model"),
    _case("model-none", {"model": None}, TypeError, "model"),
    _case("run_id-empty", {"run_id": ""}, ValueError, "run_id"),
    _case("run_id-blank", {"run_id": "  "}, ValueError, "run_id"),
    _case("run_id-slash", {"run_id": "a/b"}, ValueError, "run_id"),
    _case("run_id-traversal", {"run_id": "../evil"}, ValueError, "run_id"),
    _case("run_id-dot", {"run_id": ".hidden"}, ValueError, "run_id"),
    _case("run_id-dotdot", {"run_id": ".."}, ValueError, "run_id"),
    _case("run_id-int", {"run_id": 7}, TypeError, "run_id"),
    _case("config-int-key", {"config": {1: "a"}}, TypeError, "config"),
    _case("config-nested-key", {"config": {"o": {"i": {2: "b"}}}}, TypeError, "config"),
    _case("config-key-in-list", {"config": {"l": [{3: "c"}]}}, TypeError, "config"),
    _case("config-list", {"config": [("a", 1)]}, TypeError, "config"),
    _case("config-str", {"config": "a=1"}, TypeError, "config"),
    _case(
        "config-huge-string",
        {"config": {"blob": "x" * 65}},
        ValueError,
        "CONSIST_MAX_CONFIG_VALUE_LENGTH",
        {"CONSIST_MAX_CONFIG_VALUE_LENGTH": "64"},
    ),
    _case(
        "config-huge-nested-string",
        {"config": {"a": {"b": ["ok", "x" * 65]}}},
        ValueError,
        "CONSIST_MAX_CONFIG_VALUE_LENGTH",
        {"CONSIST_MAX_CONFIG_VALUE_LENGTH": "64"},
    ),
    _case("tags-bare-string", {"tags": "baseline"}, TypeError, "tags"),
    _case("tags-empty-item", {"tags": ["ok", ""]}, ValueError, "tags"),
    _case("tags-blank-item", {"tags": ["  "]}, ValueError, "tags"),
    _case("tags-int-item", {"tags": ["ok", 1]}, TypeError, "tags"),
    _case("tags-int", {"tags": 5}, TypeError, "tags"),
    _case(
        "meta-too-many",
        {"a": 1, "b": 2, "c": 3},
        ValueError,
        "CONSIST_MAX_METADATA_ITEMS",
        {"CONSIST_MAX_METADATA_ITEMS": "2"},
    ),
    _case(
        "meta-key-too-long",
        {"abcdefghijk": 1},
        ValueError,
        "CONSIST_MAX_METADATA_KEY_LENGTH",
        {"CONSIST_MAX_METADATA_KEY_LENGTH": "10"},
    ),
    _case(
        "meta-value-too-long",
        {"note": "x" * 50},
        ValueError,
        "CONSIST_MAX_METADATA_VALUE_LENGTH",
        {"CONSIST_MAX_METADATA_VALUE_LENGTH": "20"},
    ),
    _case(
        "meta-nested-value-too-long",
        {"note": {"deep": ["x" * 50]}},
        ValueError,
        "CONSIST_MAX_METADATA_VALUE_LENGTH",
        {"CONSIST_MAX_METADATA_VALUE_LENGTH": "20"},
    ),
    _case("meta-unserialisable", {"obj": object()}, TypeError, "obj"),
    _case("year-str", {"year": "2020"}, TypeError, "year"),
    _case("year-float", {"year": 2020.0}, TypeError, "year"),
    _case("year-bool", {"year": True}, TypeError, "year"),
    _case("iteration-str", {"iteration": "1"}, TypeError, "iteration"),
    _case("iteration-float", {"iteration": 1.5}, TypeError, "iteration"),
    _case("stage-int", {"stage": 3}, TypeError, "stage"),
    _case("phase-list", {"phase": ["a"]}, TypeError, "phase"),
    _case("description-int", {"description": 5}, TypeError, "description"),
    _case("cache_mode-unknown", {"cache_mode": "sometimes"}, ValueError, "cache_mode"),
    _case("cache_mode-case", {"cache_mode": "REUSE"}, ValueError, "cache_mode"),
    _case("cache_mode-none", {"cache_mode": None}, ValueError, "cache_mode"),
    _case("artifact_dir-outside", {"artifact_dir": OUTSIDE}, ValueError, "artifact_dir"),
    _case("artifact_dir-climbs", {"artifact_dir": "../../elsewhere"}, ValueError, "artifact_dir"),
    _case(
        "artifact_dir-climbs-even-if-allowed",
        {"artifact_dir": "../x", "allow_external_paths": True},
        ValueError,
        "artifact_dir",
    ),
    _case(
        "allow_external_paths-str",
        {"allow_external_paths": "yes"},
        TypeError,
        "allow_external_paths",
    ),
    _case("code_identity-unknown", {"code_identity": "vibes"}, ValueError, "code_identity"),
    _case(
        "code_identity_extra_deps-str",
        {"code_identity_extra_deps": "dep.py"},
        TypeError,
        "code_identity_extra_deps",
    ),
    _case(
        "facet_from-missing-key",
        {"config": {"a": 1}, "facet_from": ["nope"]},
        ValueError,
        "facet_from",
    ),
    _case("facet_from-str", {"config": {"a": 1}, "facet_from": "a"}, TypeError, "facet_from"),
    _case("facet-list", {"facet": [1, 2]}, TypeError, "facet"),
    _case("facet_index-str", {"facet": {"a": 1}, "facet_index": "yes"}, TypeError, "facet_index"),
    _case(
        "facet_schema_version-float",
        {"facet": {"a": 1}, "facet_schema_version": 1.5},
        TypeError,
        "facet_schema_version",
    ),
    _case("inputs-single-path", {"inputs": "households.csv"}, TypeError, "inputs"),
    _case("inputs-int-item", {"inputs": [3]}, TypeError, "inputs"),
    _case("inputs-missing-file", {"inputs": [MISSING]}, FileNotFoundError, "does not exist"),
    _case(
        "hash_inputs-missing-file",
        {"hash_inputs": [("bundle", MISSING)]},
        FileNotFoundError,
        "hash_inputs",
    ),
    _case("parent_run_id-slash", {"parent_run_id": "a/b"}, ValueError, "parent_run_id"),
]


def _fill(kwargs: dict[str, Any], base: Path) -> dict[str, Any]:
    def sub(value: Any) -> Any:
        if value == MISSING:
            return base / "no_such_file.csv"
        if value == OUTSIDE:
            return base / "outside_dir"
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, tuple):
            return tuple(sub(v) for v in value)
        return value

    return {k: sub(v) for k, v in kwargs.items()}


class TestBeginRunRejects:
    @pytest.mark.parametrize(("bad", "exc", "match", "env"), BAD_BEGIN)
    def test_bad_input_raises_and_writes_nothing(
        self,
        tracker: Tracker,
        base: Path,
        monkeypatch: pytest.MonkeyPatch,
        bad: dict[str, Any],
        exc: type[BaseException],
        match: str,
        env: dict[str, str],
    ) -> None:
        seed_run(tracker)
        write(base / "inputs" / "ok.csv")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        kwargs: dict[str, Any] = {"run_id": "bad_run", "model": "model_x"}
        kwargs.update(_fill(bad, base))
        before = state(tracker)

        with pytest.raises(exc, match=match):
            tracker.begin_run(**kwargs)

        assert_unchanged(tracker, before)
        assert not (tracker.run_dir / "consist_runs" / "bad_run.json").exists()
        assert not (base / "outside_dir").exists()
        assert tracker.current_run is None
        assert tracker.get_run("bad_run") is None
        assert tracker.last_run.run.id == "seed"
        # The tracker is still usable.
        for name in env:
            monkeypatch.delenv(name)
        with tracker.start_run("after_bad", "model_x"):
            pass
        assert tracker.get_run("after_bad").status == "completed"

    @pytest.mark.parametrize(("bad", "exc", "match", "env"), BAD_BEGIN[:12])
    def test_start_run_rejects_before_the_block(
        self,
        tracker: Tracker,
        base: Path,
        bad: dict[str, Any],
        exc: type[BaseException],
        match: str,
        env: dict[str, str],
    ) -> None:
        seed_run(tracker)
        kwargs: dict[str, Any] = {"run_id": "bad_run", "model": "model_x"}
        kwargs.update(_fill(bad, base))
        run_id, model = kwargs.pop("run_id"), kwargs.pop("model")
        before = state(tracker)
        entered = []
        with pytest.raises(exc, match=match), tracker.start_run(run_id, model, **kwargs):
            entered.append(True)
        assert entered == []
        assert_unchanged(tracker, before)

    def test_existing_run_id_is_rejected(self, tracker: Tracker) -> None:
        seed = seed_run(tracker, "dup")
        before = state(tracker)
        with pytest.raises(ValueError, match="run_id"):
            tracker.begin_run("dup", "other_model", config={"changed": True})
        assert_unchanged(tracker, before)
        stored = tracker.get_run("dup")
        assert stored.status == "completed"
        assert stored.model_name == "seed_model"
        assert stored.ended_at == seed.ended_at
        assert tracker.get_run_config("dup") == {"seed": True}
        assert tracker.current_run is None

    def test_existing_failed_run_id_is_rejected(self, tracker: Tracker) -> None:
        with pytest.raises(RuntimeError), tracker.start_run("failed_once", "m"):
            raise RuntimeError("boom")
        before = state(tracker)
        with pytest.raises(ValueError, match="run_id"):
            tracker.begin_run("failed_once", "m")
        assert_unchanged(tracker, before)
        assert tracker.get_run("failed_once").status == "failed"

    def test_run_id_only_in_database_is_rejected(self, tracker: Tracker, run_dir: Path) -> None:
        seed_run(tracker, "db_only")
        (run_dir / "consist_runs" / "db_only.json").unlink()
        before = state(tracker)
        with pytest.raises(ValueError, match="run_id"):
            tracker.begin_run("db_only", "m")
        assert_unchanged(tracker, before)

    def test_run_id_of_another_tracker_on_same_store_is_rejected(
        self, tracker: Tracker, run_dir: Path, db_path: Path
    ) -> None:
        seed_run(tracker, "shared")
        other = Tracker(run_dir, db_path=db_path)
        before = state(other)
        with pytest.raises(ValueError, match="run_id"):
            other.begin_run("shared", "m")
        assert_unchanged(other, before)

    def test_second_begin_while_active_raises(self, tracker: Tracker, run_dir: Path) -> None:
        tracker.begin_run("first", "m", config={"a": 1})
        before = state(tracker)
        with pytest.raises(RuntimeError, match="end_run"):
            tracker.begin_run("second", "m")
        assert_unchanged(tracker, before)
        assert tracker.current_run.id == "first"
        assert not (run_dir / "consist_runs" / "second.json").exists()
        # Even an invalid second call reports the active run first.
        with pytest.raises(RuntimeError):
            tracker.begin_run("", "")
        assert_unchanged(tracker, before)
        tracker.end_run()
        assert tracker.get_run("first").status == "completed"
        assert tracker.get_run("second") is None

    def test_nested_start_run_raises_and_outer_run_survives(self, tracker: Tracker) -> None:
        with tracker.start_run("outer", "m"):
            with pytest.raises(RuntimeError), tracker.start_run("inner", "m"):
                pass
            assert tracker.current_run.id == "outer"
        assert tracker.get_run("outer").status == "completed"
        assert tracker.get_run("inner") is None

    def test_bad_input_on_fresh_tracker_creates_no_journal(self, tracker: Tracker) -> None:
        before = state(tracker)
        assert before[0] == {}
        with pytest.raises(ValueError):
            tracker.begin_run("r", "")
        assert_unchanged(tracker, before)
        assert not (tracker.run_dir / "consist_runs").exists()
        assert not (tracker.run_dir / "consist.json").exists()


# --------------------------------------------------------------------------- #
# end_run
# --------------------------------------------------------------------------- #
class TestEndRun:
    def test_completed(self, tracker: Tracker, run_dir: Path) -> None:
        tracker.begin_run("ok", "m")
        run = tracker.end_run("completed")
        assert run.status == "completed"
        assert run.ended_at is not None
        assert run.ended_at >= run.created_at
        assert run.duration_seconds is not None and run.duration_seconds >= 0
        assert "error" not in run.meta
        assert tracker.get_run("ok").status == "completed"
        assert tracker.get_run("ok").ended_at is not None
        assert journal(run_dir, "ok")["run"]["status"] == "completed"
        assert json.loads((run_dir / "consist.json").read_text())["run"]["status"] == "completed"

    def test_default_status_is_completed(self, tracker: Tracker) -> None:
        tracker.begin_run("dflt", "m")
        assert tracker.end_run().status == "completed"

    def test_failed_with_error_text(self, tracker: Tracker, run_dir: Path) -> None:
        tracker.begin_run("bad", "m")
        try:
            raise ValueError("disk exploded")
        except ValueError as exc:
            run = tracker.end_run("failed", error=exc)
        assert run.status == "failed"
        assert "disk exploded" in run.meta["error"]
        stored = tracker.get_run("bad")
        assert stored.status == "failed"
        assert "disk exploded" in stored.meta["error"]
        snap = journal(run_dir, "bad")
        assert snap["run"]["status"] == "failed"
        assert "disk exploded" in snap["run"]["meta"]["error"]

    def test_failed_without_error(self, tracker: Tracker) -> None:
        tracker.begin_run("bad2", "m")
        assert tracker.end_run("failed").status == "failed"
        assert tracker.get_run("bad2").status == "failed"

    def test_second_end_run_warns_and_returns_same_run(self, tracker: Tracker) -> None:
        tracker.begin_run("twice", "m")
        first = tracker.end_run("completed")
        stored = tracker.get_run("twice")
        before = state(tracker)
        with pytest.warns(UserWarning):
            second = tracker.end_run("completed")
        assert second.id == first.id
        assert second.status == "completed"
        assert second.ended_at == first.ended_at
        assert_unchanged(tracker, before)
        again = tracker.get_run("twice")
        assert again.ended_at == stored.ended_at

    def test_second_end_run_does_not_flip_status(self, tracker: Tracker, run_dir: Path) -> None:
        tracker.begin_run("flip", "m")
        tracker.end_run("failed", error=RuntimeError("nope"))
        before = state(tracker)
        with pytest.warns(UserWarning):
            again = tracker.end_run("completed")
        assert again.status == "failed"
        assert_unchanged(tracker, before)
        assert tracker.get_run("flip").status == "failed"
        assert journal(run_dir, "flip")["run"]["status"] == "failed"

    def test_end_run_without_any_run_raises(self, tracker: Tracker) -> None:
        before = state(tracker)
        with pytest.raises(RuntimeError, match="begin_run"):
            tracker.end_run()
        with pytest.raises(RuntimeError):
            tracker.end_run("failed", error=ValueError("x"))
        assert_unchanged(tracker, before)

    def test_fresh_tracker_on_existing_store_has_no_run_to_end(
        self, tracker: Tracker, run_dir: Path, db_path: Path
    ) -> None:
        seed_run(tracker)
        other = Tracker(run_dir, db_path=db_path)
        with pytest.raises(RuntimeError):
            other.end_run()

    @pytest.mark.parametrize("status", ["running", "done", "COMPLETED", "", None])
    def test_invalid_status_raises_and_keeps_run_active(
        self, tracker: Tracker, run_dir: Path, status: Any
    ) -> None:
        tracker.begin_run("st", "m")
        before = state(tracker)
        with pytest.raises(ValueError, match="status"):
            tracker.end_run(status)
        assert_unchanged(tracker, before)
        assert tracker.current_run is not None
        assert tracker.current_run.id == "st"
        assert journal(run_dir, "st")["run"]["status"] == "running"
        assert tracker.end_run("completed").status == "completed"

    def test_non_exception_error_is_rejected(self, tracker: Tracker) -> None:
        tracker.begin_run("err", "m")
        with pytest.raises(TypeError, match="error"):
            tracker.end_run("failed", error="not an exception")  # type: ignore[arg-type]
        assert tracker.current_run is not None
        tracker.end_run("failed", error=RuntimeError("real"))
        assert "real" in tracker.get_run("err").meta["error"]


# --------------------------------------------------------------------------- #
# start_run
# --------------------------------------------------------------------------- #
class TestStartRun:
    def test_yields_the_tracker_and_completes(self, tracker: Tracker, run_dir: Path) -> None:
        with tracker.start_run("ctx", "m", config={"p": 1}, tags=["a"], year=2025) as t:
            assert t is tracker
            assert tracker.current_run.id == "ctx"
            assert tracker.current_run.status == "running"
            assert tracker.get_run("ctx").status == "running"
        assert tracker.current_run is None
        stored = tracker.get_run("ctx")
        assert stored.status == "completed"
        assert stored.tags == ["a"]
        assert stored.year == 2025
        assert tracker.get_run_config("ctx") == {"p": 1}
        assert journal(run_dir, "ctx")["run"]["status"] == "completed"

    def test_exception_marks_failed_and_reraises(self, tracker: Tracker, run_dir: Path) -> None:
        boom = ValueError("model diverged")
        with pytest.raises(ValueError) as info, tracker.start_run("ctx_fail", "m"):
            raise boom
        assert info.value is boom
        assert tracker.current_run is None
        stored = tracker.get_run("ctx_fail")
        assert stored.status == "failed"
        assert stored.ended_at is not None
        assert "model diverged" in stored.meta["error"]
        snap = journal(run_dir, "ctx_fail")
        assert snap["run"]["status"] == "failed"
        assert "model diverged" in snap["run"]["meta"]["error"]
        assert tracker.last_run.run.status == "failed"
        # The tracker can run again.
        with tracker.start_run("ctx_next", "m"):
            pass
        assert tracker.get_run("ctx_next").status == "completed"

    def test_keyboard_interrupt_marks_failed(self, tracker: Tracker) -> None:
        with pytest.raises(KeyboardInterrupt), tracker.start_run("ctx_kbd", "m"):
            raise KeyboardInterrupt
        assert tracker.get_run("ctx_kbd").status == "failed"
        assert tracker.current_run is None

    def test_explicit_end_inside_block_is_respected(self, tracker: Tracker) -> None:
        with tracker.start_run("ctx_explicit", "m"):
            tracker.end_run("failed", error=RuntimeError("early"))
        stored = tracker.get_run("ctx_explicit")
        assert stored.status == "failed"
        assert "early" in stored.meta["error"]

    def test_outputs_logged_in_block_are_persisted(self, tracker: Tracker) -> None:
        with tracker.start_run("ctx_out", "m"):
            out = tracker.run_artifact_dir() / "result.csv"
            write(out, "a\n1\n")
            art = tracker.log_artifact(out, key="result")
            assert isinstance(art, Artifact)
        outputs = tracker.get_run_outputs("ctx_out")
        assert set(outputs) == {"result"}
        assert outputs["result"].path == out
        assert outputs["result"].id == art.id


# --------------------------------------------------------------------------- #
# last_run / is_cached
# --------------------------------------------------------------------------- #
class TestLastRunAndIsCached:
    def test_last_run_progression(self, tracker: Tracker) -> None:
        assert tracker.last_run is None
        with tracker.start_run("one", "m", config={"i": 1}):
            assert tracker.last_run is None
        first = tracker.last_run
        assert isinstance(first, ConsistRecord)
        assert first.run.id == "one"
        assert first.run.status == "completed"
        assert first.config == {"i": 1}
        with tracker.start_run("two", "m"):
            # Still the previous finished run while another is active.
            assert tracker.last_run.run.id == "one"
        assert tracker.last_run.run.id == "two"
        with pytest.raises(ZeroDivisionError), tracker.start_run("three", "m"):
            _ = 1 / 0
        assert tracker.last_run.run.id == "three"
        assert tracker.last_run.run.status == "failed"

    def test_last_run_includes_outputs(self, tracker: Tracker) -> None:
        with tracker.start_run("lr_out", "m"):
            out = write(tracker.run_artifact_dir() / "x.txt")
            tracker.log_artifact(out, key="x")
        assert [a.key for a in tracker.last_run.outputs] == ["x"]

    def test_last_run_is_per_tracker_instance(
        self, tracker: Tracker, run_dir: Path, db_path: Path
    ) -> None:
        seed_run(tracker)
        assert Tracker(run_dir, db_path=db_path).last_run is None

    def test_is_cached_false_outside_and_in_fresh_runs(self, tracker: Tracker) -> None:
        assert tracker.is_cached is False
        with tracker.start_run("c1", "m", config={"a": 1}):
            assert tracker.is_cached is False
        assert tracker.is_cached is False
        tracker.begin_run("c2", "m")
        assert tracker.is_cached is False
        tracker.end_run()
        assert tracker.is_cached is False


# --------------------------------------------------------------------------- #
# log_meta
# --------------------------------------------------------------------------- #
_READ_META = textwrap.dedent(
    """
    import json, sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    row = con.execute("SELECT meta, status, year FROM run WHERE id = ?", [sys.argv[2]]).fetchone()
    con.close()
    print(json.dumps({"meta": json.loads(row[0]), "status": row[1], "year": row[2]}))
    """
)


class TestLogMeta:
    def test_flushed_to_journal_and_db_while_active(
        self, tracker: Tracker, run_dir: Path, db_path: Path
    ) -> None:
        tracker.begin_run("lm", "m", owner="alice", note="old")
        tracker.log_meta(accuracy=0.93, note="new", details={"epochs": [1, 2]})

        # Merged in memory.
        meta = tracker.current_run.meta
        assert meta["accuracy"] == 0.93
        assert meta["note"] == "new"
        assert meta["owner"] == "alice"
        assert meta["details"] == {"epochs": [1, 2]}

        # Journal and latest pointer, read from disk while the run is active.
        snap = journal(run_dir, "lm")
        assert snap["run"]["status"] == "running"
        assert snap["run"]["meta"]["accuracy"] == 0.93
        assert snap["run"]["meta"]["note"] == "new"
        assert snap["run"]["meta"]["owner"] == "alice"
        latest = json.loads((run_dir / "consist.json").read_text())
        assert latest["run"]["meta"]["accuracy"] == 0.93

        # DB through the tracker.
        stored = tracker.get_run("lm")
        assert stored.status == "running"
        assert stored.meta["accuracy"] == 0.93
        assert stored.meta["note"] == "new"

        # DB as committed to the file: another process reads it.
        tracker.close()
        proc = subprocess.run(
            [sys.executable, "-c", _READ_META, str(db_path), "lm"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        row = json.loads(proc.stdout)
        assert row["status"] == "running"
        assert row["meta"]["accuracy"] == 0.93
        assert row["meta"]["details"] == {"epochs": [1, 2]}

        assert tracker.current_run.id == "lm"
        tracker.end_run()
        assert tracker.get_run("lm").meta["accuracy"] == 0.93

    def test_repeated_calls_merge(self, tracker: Tracker) -> None:
        with tracker.start_run("lm2", "m"):
            tracker.log_meta(a=1)
            tracker.log_meta(b=2)
            tracker.log_meta(a=3)
        meta = tracker.get_run("lm2").meta
        assert meta["a"] == 3
        assert meta["b"] == 2

    def test_reserved_keys_update_run_fields(self, tracker: Tracker) -> None:
        with tracker.start_run("lm3", "m", year=2020):
            tracker.log_meta(year=2035, iteration=4, stage="supply", phase="final")
        stored = tracker.get_run("lm3")
        assert stored.year == 2035
        assert stored.iteration == 4
        assert stored.stage == "supply"
        assert stored.phase == "final"

    def test_outside_a_run_raises(self, tracker: Tracker) -> None:
        before = state(tracker)
        with pytest.raises(RuntimeError, match="log_meta"):
            tracker.log_meta(a=1)
        seed_run(tracker)
        before = state(tracker)
        with pytest.raises(RuntimeError, match="log_meta"):
            tracker.log_meta(a=1)
        assert_unchanged(tracker, before)
        assert "a" not in tracker.get_run("seed").meta

    def test_too_large_value_is_rejected_and_not_written(
        self, tracker: Tracker, run_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tracker.begin_run("lm4", "m")
        tracker.log_meta(kept=1)
        monkeypatch.setenv("CONSIST_MAX_METADATA_VALUE_LENGTH", "10")
        before = state(tracker)
        with pytest.raises(ValueError, match="CONSIST_MAX_METADATA_VALUE_LENGTH"):
            tracker.log_meta(ok=1, big="x" * 100)
        assert_unchanged(tracker, before)
        assert "ok" not in tracker.current_run.meta
        assert "big" not in tracker.current_run.meta
        tracker.end_run()
        assert "big" not in tracker.get_run("lm4").meta
        assert "ok" not in tracker.get_run("lm4").meta

    def test_too_many_items_is_rejected(
        self, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tracker.begin_run("lm5", "m")
        monkeypatch.setenv("CONSIST_MAX_METADATA_ITEMS", "2")
        with pytest.raises(ValueError, match="CONSIST_MAX_METADATA_ITEMS"):
            tracker.log_meta(a=1, b=2, c=3)
        tracker.log_meta(a=1, b=2)
        tracker.end_run()
        assert tracker.get_run("lm5").meta["b"] == 2

    def test_invalid_reserved_value_leaves_run_untouched(self, tracker: Tracker) -> None:
        tracker.begin_run("lm6", "m", year=2020, stage="demand")
        before = state(tracker)
        with pytest.raises(TypeError, match="stage"):
            tracker.log_meta(year=2031, stage=5, note="n")
        assert_unchanged(tracker, before)
        run = tracker.current_run
        assert run.year == 2020
        assert run.stage == "demand"
        assert "note" not in run.meta
        tracker.end_run()
        stored = tracker.get_run("lm6")
        assert stored.year == 2020
        assert stored.stage == "demand"


# --------------------------------------------------------------------------- #
# Hooks
# --------------------------------------------------------------------------- #
class TestHooks:
    def test_plain_registration_returns_callback(self, tracker: Tracker) -> None:
        def on_start(run: Run) -> None:
            pass

        def on_complete(run: Run, outputs: list[Artifact]) -> None:
            pass

        def on_failed(run: Run, exc: BaseException) -> None:
            pass

        assert tracker.on_run_start(on_start) is on_start
        assert tracker.on_run_complete(on_complete) is on_complete
        assert tracker.on_run_failed(on_failed) is on_failed

    def test_decorators_fire_with_the_documented_arguments(self, tracker: Tracker) -> None:
        events: list[tuple[Any, ...]] = []

        @tracker.on_run_start
        def started(run: Run) -> None:
            events.append(("start", run.id, run.status))

        @tracker.on_run_complete
        def completed(run: Run, outputs: list[Artifact]) -> None:
            events.append(("complete", run.id, run.status, [a.key for a in outputs], outputs))

        @tracker.on_run_failed
        def failed(run: Run, exc: BaseException) -> None:
            events.append(("failed", run.id, run.status, exc))

        # Decorators hand back the function itself.
        assert callable(started) and started.__name__ == "started"
        assert callable(completed) and completed.__name__ == "completed"
        assert callable(failed) and failed.__name__ == "failed"

        with tracker.start_run("h_ok", "m"):
            events.append(("body",))
            out = write(tracker.run_artifact_dir() / "o.csv", "a\n1\n")
            tracker.log_artifact(out, key="o")

        assert events[0] == ("start", "h_ok", "running")
        assert events[1] == ("body",)
        kind, run_id, status, keys, outputs = events[2]
        assert (kind, run_id, status, keys) == ("complete", "h_ok", "completed", ["o"])
        assert all(isinstance(a, Artifact) for a in outputs)
        assert len(events) == 3

        events.clear()
        boom = RuntimeError("kaboom")
        with pytest.raises(RuntimeError), tracker.start_run("h_fail", "m"):
            raise boom
        assert events[0] == ("start", "h_fail", "running")
        assert events[1][:3] == ("failed", "h_fail", "failed")
        assert events[1][3] is boom
        assert len(events) == 2

    def test_plain_calls_fire_too(self, tracker: Tracker) -> None:
        seen: list[str] = []
        tracker.on_run_start(lambda run: seen.append(f"start:{run.id}"))
        tracker.on_run_complete(lambda run, outs: seen.append(f"complete:{run.id}:{len(outs)}"))
        tracker.on_run_failed(lambda run, exc: seen.append(f"failed:{run.id}:{exc}"))
        tracker.begin_run("p1", "m")
        tracker.end_run()
        tracker.begin_run("p2", "m")
        tracker.end_run("failed", error=ValueError("bad"))
        assert seen == ["start:p1", "complete:p1:0", "start:p2", "failed:p2:bad"]

    def test_failed_hook_gets_an_exception_without_error(self, tracker: Tracker) -> None:
        got: list[BaseException] = []
        tracker.on_run_failed(lambda run, exc: got.append(exc))
        tracker.begin_run("p3", "m")
        tracker.end_run("failed")
        assert len(got) == 1
        assert isinstance(got[0], BaseException)

    def test_hooks_fire_in_registration_order(self, tracker: Tracker) -> None:
        order: list[int] = []
        for i in range(3):
            tracker.on_run_start(lambda run, i=i: order.append(i))
        with tracker.start_run("ord", "m"):
            pass
        assert order == [0, 1, 2]

    def test_non_callable_is_rejected(self, tracker: Tracker) -> None:
        for register in (tracker.on_run_start, tracker.on_run_complete, tracker.on_run_failed):
            with pytest.raises(TypeError):
                register("not callable")  # type: ignore[arg-type]

    @pytest.mark.parametrize("event", ["start", "complete"])
    def test_raising_hook_is_logged_and_run_completes(
        self, tracker: Tracker, run_dir: Path, caplog: pytest.LogCaptureFixture, event: str
    ) -> None:
        later: list[str] = []
        register: Callable[..., Any] = getattr(tracker, f"on_run_{event}")

        def bad_hook(*args: Any) -> None:
            raise RuntimeError(f"hook {event} exploded")

        register(bad_hook)
        register(lambda *args: later.append(event))

        with (
            caplog.at_level(logging.ERROR, logger="consist.hooks"),
            tracker.start_run(f"hk_{event}", "m"),
        ):
            pass
        records = [r for r in caplog.records if r.name == "consist.hooks"]
        assert records, "the hook failure was not logged on consist.hooks"
        assert any(r.levelno >= logging.ERROR for r in records)
        assert any(
            "bad_hook" in r.getMessage() or (r.exc_info and "exploded" in str(r.exc_info[1]))
            for r in records
        )
        assert later == [event]
        stored = tracker.get_run(f"hk_{event}")
        assert stored.status == "completed"
        assert journal(run_dir, f"hk_{event}")["run"]["status"] == "completed"
        assert tracker.last_run.run.id == f"hk_{event}"
        assert tracker.current_run is None

    def test_raising_failed_hook_keeps_original_exception(
        self, tracker: Tracker, caplog: pytest.LogCaptureFixture
    ) -> None:
        @tracker.on_run_failed
        def bad_hook(run: Run, exc: BaseException) -> None:
            raise RuntimeError("hook exploded")

        with (
            caplog.at_level(logging.ERROR, logger="consist.hooks"),
            pytest.raises(ValueError, match="original"),
            tracker.start_run("hk_f", "m"),
        ):
            raise ValueError("original")
        assert any(r.name == "consist.hooks" for r in caplog.records)
        assert tracker.get_run("hk_f").status == "failed"
        assert "original" in tracker.get_run("hk_f").meta["error"]


# --------------------------------------------------------------------------- #
# set_run_subdir_fn / run_artifact_dir / artifact_dir
# --------------------------------------------------------------------------- #
class TestArtifactDirs:
    def test_default_layout(self, tracker: Tracker, run_dir: Path) -> None:
        tracker.begin_run("d1", "travel_model")
        path = tracker.run_artifact_dir()
        assert isinstance(path, Path)
        assert path == run_dir / "outputs" / "travel_model" / "d1"
        tracker.end_run()

    def test_custom_fn_is_respected(self, tracker: Tracker, run_dir: Path) -> None:
        seen: list[Run] = []

        def by_year(run: Run) -> str:
            seen.append(run)
            return f"{run.model_name}/{run.year}/{run.id}"

        assert tracker.set_run_subdir_fn(by_year) is None
        tracker.begin_run("c1", "asim", year=2030)
        assert tracker.run_artifact_dir() == run_dir / "outputs" / "asim" / "2030" / "c1"
        assert seen and seen[0].id == "c1"
        tracker.end_run()

    def test_clearing_fn_restores_default(self, tracker: Tracker, run_dir: Path) -> None:
        tracker.set_run_subdir_fn(lambda run: "flat")
        tracker.set_run_subdir_fn(None)
        tracker.begin_run("c2", "m")
        assert tracker.run_artifact_dir() == run_dir / "outputs" / "m" / "c2"
        tracker.end_run()

    def test_non_callable_fn_rejected(self, tracker: Tracker) -> None:
        with pytest.raises(TypeError, match="set_run_subdir_fn"):
            tracker.set_run_subdir_fn("outputs/x")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "returned", ["../escape", "a/../../escape", "ABSOLUTE", "", "."], ids=str
    )
    def test_unsafe_fn_result_rejected(self, tracker: Tracker, base: Path, returned: str) -> None:
        seed_run(tracker)
        value = str(base / "abs_target") if returned == "ABSOLUTE" else returned
        tracker.set_run_subdir_fn(lambda run: value)
        before = state(tracker)
        with pytest.raises(ValueError, match="run_subdir_fn"):
            tracker.begin_run("unsafe", "m")
        assert_unchanged(tracker, before)
        assert tracker.current_run is None
        assert not (base / "abs_target").exists()
        assert not (base / "escape").exists()
        assert tracker.get_run("unsafe") is None

    def test_fn_returning_non_string_rejected(self, tracker: Tracker) -> None:
        tracker.set_run_subdir_fn(lambda run: 42)
        before = state(tracker)
        with pytest.raises(TypeError, match="run_subdir_fn"):
            tracker.begin_run("nonstr", "m")
        assert_unchanged(tracker, before)
        assert tracker.current_run is None

    def test_relative_artifact_dir_goes_under_outputs(
        self, tracker: Tracker, run_dir: Path
    ) -> None:
        tracker.begin_run("a1", "m", artifact_dir="scenarios/base")
        assert tracker.run_artifact_dir() == run_dir / "outputs" / "scenarios" / "base"
        tracker.end_run()

    def test_artifact_dir_overrides_custom_fn(self, tracker: Tracker, run_dir: Path) -> None:
        tracker.set_run_subdir_fn(lambda run: f"fn/{run.id}")
        tracker.begin_run("a2", "m", artifact_dir="explicit")
        assert tracker.run_artifact_dir() == run_dir / "outputs" / "explicit"
        tracker.end_run()

    def test_absolute_artifact_dir_inside_run_dir(self, tracker: Tracker, run_dir: Path) -> None:
        inside = run_dir / "elsewhere" / "a3"
        tracker.begin_run("a3", "m", artifact_dir=inside)
        assert tracker.run_artifact_dir() == inside
        tracker.end_run()

    def test_absolute_outside_rejected(self, tracker: Tracker, base: Path) -> None:
        seed_run(tracker)
        outside = base / "external" / "a4"
        before = state(tracker)
        with pytest.raises(ValueError, match="artifact_dir"):
            tracker.begin_run("a4", "m", artifact_dir=outside)
        assert_unchanged(tracker, before)
        assert not (base / "external").exists()
        assert tracker.current_run is None

    def test_absolute_outside_allowed_per_call(self, tracker: Tracker, base: Path) -> None:
        outside = base / "external" / "a5"
        run = tracker.begin_run("a5", "m", artifact_dir=outside, allow_external_paths=True)
        assert tracker.run_artifact_dir() == outside
        tracker.end_run()
        assert tracker.run_artifact_dir(run) == outside
        assert tracker.run_artifact_dir(tracker.get_run("a5")) == outside
        # The per-call opt-in does not stick to the tracker.
        with pytest.raises(ValueError, match="artifact_dir"):
            tracker.begin_run("a5b", "m", artifact_dir=outside)

    def test_absolute_outside_allowed_on_tracker(self, base: Path) -> None:
        t = Tracker(base / "runs", db_path=base / "p.duckdb", allow_external_paths=True)
        try:
            outside = base / "external" / "a6"
            t.begin_run("a6", "m", artifact_dir=outside)
            assert t.run_artifact_dir() == outside
            t.end_run()
            # A per-call False overrides the tracker setting.
            with pytest.raises(ValueError, match="artifact_dir"):
                t.begin_run("a6b", "m", artifact_dir=outside, allow_external_paths=False)
            assert t.current_run is None
        finally:
            t.close()

    def test_run_artifact_dir_needs_an_active_run(self, tracker: Tracker) -> None:
        with pytest.raises(RuntimeError, match="run_artifact_dir"):
            tracker.run_artifact_dir()
        seed_run(tracker)
        with pytest.raises(RuntimeError, match="run_artifact_dir"):
            tracker.run_artifact_dir()

    def test_ended_run_returns_its_recorded_dir(
        self, tracker: Tracker, run_dir: Path, db_path: Path
    ) -> None:
        tracker.set_run_subdir_fn(lambda run: f"v1/{run.id}")
        run = tracker.begin_run("e1", "m")
        during = tracker.run_artifact_dir()
        tracker.end_run()
        assert during == run_dir / "outputs" / "v1" / "e1"
        # Changing the naming afterwards does not move an ended run.
        tracker.set_run_subdir_fn(lambda run: f"v2/{run.id}")
        assert tracker.run_artifact_dir(run) == during
        assert tracker.run_artifact_dir(tracker.get_run("e1")) == during
        assert tracker.run_artifact_dir(tracker.get_run_record("e1").run) == during
        # A fresh tracker (default naming) resolves it the same way.
        fresh = Tracker(run_dir, db_path=db_path)
        assert fresh.run_artifact_dir(fresh.get_run("e1")) == during

    def test_explicit_run_while_another_is_active(self, tracker: Tracker, run_dir: Path) -> None:
        first = tracker.begin_run("x1", "m", artifact_dir="first_dir")
        tracker.end_run()
        tracker.begin_run("x2", "m")
        assert tracker.run_artifact_dir(first) == run_dir / "outputs" / "first_dir"
        assert tracker.run_artifact_dir() == run_dir / "outputs" / "m" / "x2"
        assert tracker.run_artifact_dir(tracker.current_run) == run_dir / "outputs" / "m" / "x2"
        tracker.end_run()


# --------------------------------------------------------------------------- #
# Persistence across processes
# --------------------------------------------------------------------------- #
_PRODUCER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from consist import Tracker

    run_dir, db_path, data = (Path(a) for a in sys.argv[1:4])
    t = Tracker(run_dir, db_path=db_path)

    with t.start_run(
        "produce", "synth", config={"seed": 7, "zones": ["a", "b"]},
        inputs=[data / "households.csv"], tags=["p"], year=2030,
    ):
        out_dir = t.run_artifact_dir()
        out_dir.mkdir(parents=True)
        (out_dir / "persons.csv").write_text("id\\n1\\n2\\n")
        t.log_artifact(out_dir / "persons.csv", key="persons")
        t.log_meta(rows=2)

    try:
        with t.start_run("broken", "synth", config={"seed": 8}):
            raise RuntimeError("kaput")
    except RuntimeError:
        pass

    t.begin_run("consume", "downstream", config={"mode": "x"})
    t.log_artifact(out_dir / "persons.csv", key="people", direction="input")
    t.end_run("completed")
    t.close()
    print("done")
    """
)


class TestPersistenceAcrossProcesses:
    def test_new_tracker_sees_every_earlier_run(
        self, base: Path, run_dir: Path, db_path: Path
    ) -> None:
        households = write(base / "data" / "households.csv", "id,size\n1,2\n2,3\n")
        proc = subprocess.run(
            [sys.executable, "-c", _PRODUCER, str(run_dir), str(db_path), str(base / "data")],
            capture_output=True,
            text=True,
            cwd=base,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "done"

        t = Tracker(run_dir, db_path=db_path)
        try:
            produce = t.get_run("produce")
            assert produce is not None
            assert produce.status == "completed"
            assert produce.model_name == "synth"
            assert produce.tags == ["p"]
            assert produce.year == 2030
            assert produce.meta["rows"] == 2
            assert produce.ended_at is not None

            broken = t.get_run("broken")
            assert broken.status == "failed"
            assert "kaput" in broken.meta["error"]

            consume = t.get_run("consume")
            assert consume.status == "completed"

            arts = t.get_artifacts_for_run("produce")
            assert set(arts.inputs) == {"households"}
            assert set(arts.outputs) == {"persons"}
            persons_path = run_dir / "outputs" / "synth" / "produce" / "persons.csv"
            assert arts.outputs["persons"].path == persons_path
            assert arts.inputs["households"].path == households
            assert arts.outputs["persons"].hash

            # The downstream input is the upstream output (same artifact).
            consumed = t.get_artifacts_for_run("consume").inputs
            assert set(consumed) == {"people"}
            assert consumed["people"].id == arts.outputs["persons"].id

            record = t.get_run_record("produce")
            assert isinstance(record, ConsistRecord)
            assert record.run.status == "completed"
            assert record.config == {"seed": 7, "zones": ["a", "b"]}
            assert [a.key for a in record.outputs] == ["persons"]
            assert t.get_run_config("produce") == {"seed": 7, "zones": ["a", "b"]}
            assert t.get_run_config("broken") == {"seed": 8}
            assert t.get_run_record("broken").run.status == "failed"

            assert t.run_artifact_dir(produce) == run_dir / "outputs" / "synth" / "produce"
            assert t.store.table_counts()["run"] == 3

            # Recorded runs are never overwritten, even from another process.
            before = state(t)
            with pytest.raises(ValueError, match="run_id"):
                t.begin_run("produce", "synth")
            assert_unchanged(t, before)

            # And the new tracker can add runs next to them.
            with t.start_run("later", "synth"):
                pass
            assert t.store.table_counts()["run"] == 4
        finally:
            t.close()
