"""Hostile keys, names and ids (issue 10, section 1).

A key, name or id that the library joins into a file path is checked when the
call is made, before the step runs and before anything is written, with a
ValueError naming the parameter and the rule: a single file name (no ``/``,
``\\``, NUL or control characters, not ``.``/``..`` nor starting with ``.``, at
most 200 UTF-8 bytes). Keys and names that are only recorded stay permissive
(``"sub/table"``), but text that cannot be stored faithfully (NUL, control
characters, lone surrogates) is refused up front too.

Every test uses the modelers' layout: run_dir and the DuckDB file inside the
project's git repository, untracked data and logs beside the committed code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import consist
from _support import make_git_repo, persisted, write
from consist import Tracker


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_git_repo(
        tmp_path.resolve() / "project",
        {"model.py": "def simulate():\n    return 1\n", "settings.yaml": "mode: base\n"},
    )
    write(root / "data" / "households.csv", "hh_id,size\n1,2\n2,4\n")
    write(root / "logs" / "model.log", "started\n")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def tracker(repo: Path) -> Iterator[Tracker]:
    t = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    yield t
    t.close()


def files_under(root: Path) -> set[str]:
    """Every file and directory below ``root`` (the pending ledger aside)."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".pending" not in p.parts}


HOSTILE_FILE_NAMES = [
    pytest.param("../escape/o", id="climbs"),
    pytest.param("/elsewhere/outside", id="absolute"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("tab\tkey", id="control"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dotdot"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("x" * 201, id="too-long"),
    pytest.param("é" * 101, id="too-many-bytes"),
    pytest.param("\udcff", id="lone-surrogate"),
]


class Calls:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def step(self, k: int) -> pd.DataFrame:
        self.seen.append(k)
        return pd.DataFrame({"k": [k] * 3})


class TestCachePoisoning:
    def test_key_naming_another_runs_output_is_refused_before_running(
        self, tracker: Tracker
    ) -> None:
        calls = Calls()
        first = tracker.run(calls.step, config={"k": 1}, outputs=["o"])
        target = first.outputs["o"].path
        original = target.read_bytes()
        before = persisted(tracker)
        tree = files_under(tracker.run_dir)

        with pytest.raises(ValueError, match=r"outputs=.*path separator") as info:
            tracker.run(calls.step, config={"k": 2}, outputs=[f"../{first.run_id}/o"])
        assert "single file name" in str(info.value)
        assert calls.seen == [1]  # the step never ran
        assert persisted(tracker) == before  # no journal, no rows, no failed run
        assert files_under(tracker.run_dir) == tree
        assert target.read_bytes() == original

        hit = tracker.run(calls.step, config={"k": 1}, outputs=["o"])
        assert hit.cache_hit and calls.seen == [1]
        assert pd.read_parquet(hit.outputs["o"].path)["k"].tolist() == [1, 1, 1]
        # The tracker is not left with an active run: the next run works.
        assert not tracker.run(calls.step, config={"k": 3}, outputs=["o"]).cache_hit


class TestOutputKeys:
    @pytest.mark.parametrize("key", HOSTILE_FILE_NAMES)
    def test_outputs(self, tracker: Tracker, key: str) -> None:
        calls = Calls()
        before, tree = persisted(tracker), files_under(tracker.run_dir)
        with pytest.raises(ValueError, match="outputs="):
            tracker.run(calls.step, config={"k": 1}, outputs=[key])
        assert calls.seen == []
        assert persisted(tracker) == before and files_under(tracker.run_dir) == tree
        assert not Path("/elsewhere").exists()

    @pytest.mark.parametrize("key", HOSTILE_FILE_NAMES)
    def test_output_paths_keys(self, tracker: Tracker, repo: Path, key: str) -> None:
        calls = Calls()
        before = persisted(tracker)
        with pytest.raises(ValueError, match="output_paths="):
            tracker.run(calls.step, config={"k": 1}, output_paths={key: repo / "r.csv"})
        assert calls.seen == [] and persisted(tracker) == before

    def test_define_step_and_trace_are_checked_before_running(self, tracker: Tracker) -> None:
        calls = Calls()

        @consist.define_step(outputs=["../up"])
        def step(k: int) -> pd.DataFrame:
            return calls.step(k)

        with pytest.raises(ValueError, match="outputs="):
            tracker.run(step, config={"k": 1})
        entered = []
        with pytest.raises(ValueError, match="outputs="), tracker.trace("t", outputs=["a/b"]):
            entered.append(True)
        assert calls.seen == [] and entered == []
        assert tracker.store.table_counts()["run"] == 0

    def test_a_scenario_step_is_checked_before_running(self, tracker: Tracker) -> None:
        calls = Calls()
        with tracker.scenario("base") as sc:
            with pytest.raises(ValueError, match="outputs="):
                sc.run(calls.step, config={"k": 1}, outputs=[".."])
            sc.run(calls.step, config={"k": 1}, outputs=["zones_2030"])
        assert calls.seen == [1]

    def test_legitimate_keys_keep_working(self, tracker: Tracker) -> None:
        keys = ["households", "table", "linkstats", "zones_2030", "trips.v2", "Zonen-ä"]

        def many() -> dict[str, pd.DataFrame]:
            return {k: pd.DataFrame({"v": [i]}) for i, k in enumerate(keys)}

        result = tracker.run(many, outputs=keys)
        artifact_dir = tracker.run_artifact_dir(result.run)
        for i, key in enumerate(keys):
            path = result.outputs[key].path
            assert path == artifact_dir / f"{key}.parquet"
            assert pd.read_parquet(path)["v"].tolist() == [i]
        assert tracker.run(many, outputs=keys).cache_hit


class TestNamesAndIds:
    @pytest.mark.parametrize("run_id", ["../evil", "a/b", ".hidden", "a\x00b", "\udcff"])
    def test_run_id(self, tracker: Tracker, run_id: str) -> None:
        calls = Calls()
        before = persisted(tracker)
        with pytest.raises(ValueError, match="run_id="):
            tracker.run(calls.step, config={"k": 1}, run_id=run_id, outputs=["o"])
        assert calls.seen == [] and persisted(tracker) == before

    @pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "\udcff"])
    def test_step_name_text_that_cannot_be_recorded(self, tracker: Tracker, name: str) -> None:
        calls = Calls()
        with pytest.raises(ValueError, match="name="):
            tracker.run(calls.step, name=name, config={"k": 1})
        with pytest.raises(ValueError, match="model="):
            tracker.run(calls.step, name="ok", model=name, config={"k": 1})
        assert calls.seen == [] and tracker.store.table_counts()["run"] == 0

    def test_a_step_name_with_a_slash_is_recorded_and_stays_in_run_dir(
        self, tracker: Tracker
    ) -> None:
        calls = Calls()
        result = tracker.run(calls.step, name="asim/../trips", config={"k": 1}, outputs=["o"])
        assert result.run.model_name == "asim/../trips"
        out = result.outputs["o"].path.resolve()
        assert tracker.run_dir.resolve() / "outputs" in out.parents
        assert result.run_id in out.parent.name  # its own directory

    @pytest.mark.parametrize("name", ["a/b", "../up", ".hidden", "x\x00"])
    def test_scenario_name(self, tracker: Tracker, name: str) -> None:
        with pytest.raises(ValueError, match="name="):
            tracker.scenario(name)
        assert tracker.store.table_counts()["run"] == 0

    def test_view_name(self, tracker: Tracker) -> None:
        for bad in ("v\x00", "v\nx", "\udcff"):
            with pytest.raises(ValueError, match="view_name"):
                tracker.create_view(bad, "households")


class TestInsideARun:
    @pytest.mark.parametrize(
        ("key", "ext", "param"),
        [
            ("../escape", "txt", "key="),
            ("a/b", "txt", "key="),
            ("..", "", "key="),
            (".env", "txt", "key="),
            ("a\x00", "txt", "key="),
            ("ok", "../x", "ext="),
            ("ok", "a\\b", "ext="),
            ("ok", "c\x00sv", "ext="),
        ],
    )
    def test_output_path(self, tracker: Tracker, key: str, ext: str, param: str) -> None:
        with tracker.start_run("r", "writer"):
            with pytest.raises(ValueError, match=param):
                tracker.output_path(key, ext)
            assert not tracker.run_artifact_dir().exists()
        assert tracker.get_run_outputs("r") == {}

    def test_output_path_valid_names(self, tracker: Tracker) -> None:
        with tracker.start_run("r", "writer"):
            a = tracker.output_path("zones_2030", "tar.gz")
            b = tracker.output_path("linkstats", ".csv")
            c = tracker.output_path("README", "")
            for path in (a, b, c):
                path.write_text("x")
        assert [a.name, b.name, c.name] == ["zones_2030.tar.gz", "linkstats.csv", "README"]
        assert set(tracker.get_run_outputs("r")) == {"zones_2030", "linkstats", "README"}

    def test_log_dataframe_key_names_the_file_only_without_path(
        self, tracker: Tracker, repo: Path
    ) -> None:
        frame = pd.DataFrame({"v": [1, 2]})
        with tracker.start_run("r", "writer"):
            for bad in ("../x", "a/b", ".h", "a\x00b"):
                with pytest.raises(ValueError, match="key="):
                    tracker.log_dataframe(frame, bad)
            assert not tracker.run_artifact_dir().exists()
            # With an explicit path the key is only recorded: a slash is fine.
            art = tracker.log_dataframe(frame, "sub/table", path=repo / "results" / "t.parquet")
        assert art.key == "sub/table"
        assert set(tracker.get_run_outputs("r")) == {"sub/table"}

    def test_recorded_artifact_keys(self, tracker: Tracker, repo: Path) -> None:
        data = repo / "data" / "households.csv"
        with tracker.start_run("r", "writer"):
            tracker.log_artifact(data, key="sub/households", direction="input")
            for bad in ("a\x00b", "x\ny", "\udcff"):
                with pytest.raises(ValueError, match="key="):
                    tracker.log_artifact(data, key=bad, direction="input")
                with pytest.raises(ValueError, match="key="):
                    tracker.log_artifacts({bad: data}, direction="input")
        # The run ended normally: nothing half-logged, the tracker is free.
        assert set(tracker.get_run_inputs("r")) == {"sub/households"}
        assert tracker.get_run("r").status == "completed"

    def test_captured_files_in_subdirectories_keep_relative_keys(
        self, tracker: Tracker, repo: Path
    ) -> None:
        out = repo / "model_out"

        def writes_two() -> None:
            write(out / "a" / "trips.csv", "t\n1\n")
            write(out / "b" / "trips.csv", "t\n2\n")

        with tracker.trace("capture", capture_dir=out, capture_pattern="**/*.csv"):
            writes_two()
        keys = set(tracker.get_run_outputs(tracker.last_run.run.id))
        assert "trips" in keys and any("/" in k for k in keys)
