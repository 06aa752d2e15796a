"""Run and artifact queries: find_runs filters and index_by, find_run, latest, history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from consist import Tracker
from consist.core.query.run_index import IndexBySpec, index_by_facet, index_by_field


def noop() -> None:
    return None


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    t = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    yield t
    t.close()


@pytest.fixture
def populated(tracker: Tracker) -> dict[str, str]:
    """Twelve runs over 3 models, 2 years, iterations, tags, stages and metadata."""
    ids = {}
    for i in range(12):
        with tracker.start_run(
            f"r{i:02d}",
            f"model_{i % 3}",
            config={"i": i},
            tags=["all", f"group_{i % 2}"] + (["special"] if i in (4, 7) else []),
            year=2020 + 10 * (i % 2),
            iteration=i // 3,
            stage="assign" if i % 4 == 0 else "demand",
            phase="warmup" if i < 6 else "main",
            parent_run_id="scenario_a" if i < 8 else "scenario_b",
            flavour="sweet" if i % 5 == 0 else "plain",
        ):
            pass
        ids[f"r{i:02d}"] = f"r{i:02d}"
    with tracker.start_run("newest", "model_0", config={"x": 1}):
        pass
    return ids


class TestFindRuns:
    def test_newest_first_and_limit(self, tracker: Tracker, populated: dict) -> None:
        runs = tracker.find_runs(limit=5)
        assert [r.id for r in runs] == ["newest", "r11", "r10", "r09", "r08"]
        assert len(tracker.find_runs(limit=100)) == 13
        assert tracker.find_runs(limit=0) == []

    @pytest.mark.parametrize(
        ("filters", "expected"),
        [
            ({"model": "model_1"}, {"r01", "r04", "r07", "r10"}),
            ({"name": "model_1"}, {"r01", "r04", "r07", "r10"}),
            ({"year": 2030}, {"r01", "r03", "r05", "r07", "r09", "r11"}),
            ({"iteration": 3}, {"r09", "r10", "r11"}),
            ({"stage": "assign"}, {"r00", "r04", "r08"}),
            ({"phase": "warmup"}, {f"r{i:02d}" for i in range(6)}),
            ({"parent_id": "scenario_b"}, {"r08", "r09", "r10", "r11"}),
            ({"tags": ["special"]}, {"r04", "r07"}),
            ({"tags": ["group_1", "special"]}, {"r07"}),
            ({"metadata": {"flavour": "sweet"}}, {"r00", "r05", "r10"}),
            ({"model": "model_0", "year": 2020, "stage": "assign"}, {"r00"}),
            ({"model": "model_2", "iteration": 0}, {"r02"}),
        ],
    )
    def test_filters(self, tracker: Tracker, populated: dict, filters, expected) -> None:
        assert {r.id for r in tracker.find_runs(**filters)} == expected

    def test_status_filter(self, tracker: Tracker, populated: dict) -> None:
        with pytest.raises(RuntimeError), tracker.start_run("boom", "model_0", config={"b": 1}):
            raise RuntimeError("boom")
        assert [r.id for r in tracker.find_runs(status="failed")] == ["boom"]
        assert "boom" not in {r.id for r in tracker.find_runs(status="completed")}

    def test_metadata_filter_is_applied_before_limit(
        self, tracker: Tracker, populated: dict
    ) -> None:
        runs = tracker.find_runs(metadata={"flavour": "sweet"}, limit=2)
        assert [r.id for r in runs] == ["r10", "r05"]

    def test_index_by_field_newest_wins(self, tracker: Tracker, populated: dict) -> None:
        by_year = tracker.find_runs(model="model_1", index_by="year")
        assert set(by_year) == {2020, 2030}
        assert by_year[2020].id == "r10" and by_year[2030].id == "r07"
        assert tracker.find_runs(model="model_1", index_by=index_by_field("year")) == by_year
        by_id = tracker.find_runs(index_by="id")
        assert set(by_id) == {*populated, "newest"}

    def test_index_by_rejects_bad_specs(self, tracker: Tracker, populated: dict) -> None:
        with pytest.raises(TypeError, match="index_by"):
            tracker.find_runs(index_by=42)
        with pytest.raises(ValueError, match="no such attribute"):
            tracker.find_runs(index_by="not_a_field")
        assert isinstance(index_by_facet("a.b"), IndexBySpec)

    def test_bad_arguments(self, tracker: Tracker) -> None:
        with pytest.raises(TypeError, match="tags"):
            tracker.find_runs(tags="special")
        with pytest.raises(ValueError, match="limit"):
            tracker.find_runs(limit=-1)

    def test_empty_store_and_journal_only(self, tracker: Tracker, tmp_path: Path) -> None:
        assert tracker.find_runs() == []
        assert tracker.find_runs(index_by="year") == {}
        journal_only = Tracker(tmp_path / "j", project_root=tmp_path)
        with journal_only.start_run("j1", "m"):
            pass
        assert journal_only.find_runs() == []
        assert journal_only.find_latest_run(model="m") is None
        assert journal_only.find_artifacts() == []
        assert list(journal_only.history().columns)[:3] == ["id", "model_name", "status"]
        assert journal_only.history().empty

    def test_sees_runs_queued_by_tracker_run(self, tracker: Tracker) -> None:
        result = tracker.run(noop, name="queued", config={"q": 1})
        assert [r.id for r in tracker.find_runs(model="queued")] == [result.run_id]


class TestFindRun:
    def test_by_primary_key(self, tracker: Tracker, populated: dict) -> None:
        assert tracker.find_run(id="r03").id == "r03"
        assert tracker.find_run(run_id="r03").model_name == "model_0"
        with pytest.raises(ValueError, match="no run with id"):
            tracker.find_run(id="nope")

    def test_uniqueness(self, tracker: Tracker, populated: dict) -> None:
        assert tracker.find_run(model="model_2", iteration=0).id == "r02"
        with pytest.raises(ValueError, match="more than one run"):
            tracker.find_run(model="model_2")
        with pytest.raises(ValueError, match="no run matches"):
            tracker.find_run(model="model_9")


class TestLatest:
    def test_highest_iteration_then_newest(self, tracker: Tracker, populated: dict) -> None:
        assert tracker.find_latest_run(model="model_0").id in {"r09"}
        assert tracker.find_latest_run(parent_id="scenario_a").iteration == 2
        assert tracker.find_latest_run(parent_id="scenario_a").id == "r07"
        assert tracker.find_latest_run(model="model_9") is None

    def test_without_iteration_newest_wins(self, tracker: Tracker) -> None:
        for i in range(3):
            with tracker.start_run(f"n{i}", "plain", config={"i": i}):
                pass
        assert tracker.find_latest_run(model="plain").id == "n2"
        assert tracker.get_latest_run_id(model="plain") == "n2"
        with pytest.raises(ValueError, match="no run matches"):
            tracker.get_latest_run_id(model="absent")

    def test_filters_and_metadata(self, tracker: Tracker, populated: dict) -> None:
        latest = tracker.find_latest_run(tags=["special"], metadata={"flavour": "plain"})
        assert latest.id == "r07"
        assert tracker.find_latest_run(stage="assign", year=2020).id == "r08"


class TestHistory:
    def test_recent_runs_as_dataframe(self, tracker: Tracker, populated: dict) -> None:
        frame = tracker.history(limit=3)
        assert isinstance(frame, pd.DataFrame)
        assert list(frame["id"]) == ["newest", "r11", "r10"]
        assert {"model_name", "status", "year", "tags", "duration_s", "cache_hit"} <= set(
            frame.columns
        )
        assert (frame["duration_s"] >= 0).all()

    def test_tags_match_any(self, tracker: Tracker, populated: dict) -> None:
        frame = tracker.history(limit=50, tags=["special", "group_1"])
        assert set(frame["id"]) == {"r01", "r03", "r04", "r05", "r07", "r09", "r11"}

    def test_cache_hit_column(self, tracker: Tracker) -> None:
        tracker.run(noop, name="h", config={"x": 1})
        tracker.run(noop, name="h", config={"x": 1})
        frame = tracker.history(limit=2)
        assert list(frame["cache_hit"]) == [True, False]


class TestArtifacts:
    def _chain(self, tracker: Tracker, tmp_path: Path) -> None:
        raw = tmp_path / "raw.csv"
        raw.write_text("a\n1\n")
        with tracker.start_run("producer", "p", config={"p": 1}):
            tracker.log_input(raw, key="raw")
            out = tracker.run_artifact_dir()
            out.mkdir(parents=True, exist_ok=True)
            (out / "table.csv").write_text("t\n1\n")
            (out / "other.csv").write_text("o\n1\n")
            tracker.log_output(out / "table.csv", key="table", config_role="bundle")
            tracker.log_output(out / "other.csv", key="other")
        with tracker.start_run("consumer", "c", config={"c": 1}):
            tracker.log_input(out / "table.csv", key="upstream_table")

    def test_find_artifacts(self, tracker: Tracker, tmp_path: Path) -> None:
        self._chain(tracker, tmp_path)
        assert {a.key for a in tracker.find_artifacts(creator="producer")} == {"table", "other"}
        consumed = tracker.find_artifacts(consumer="consumer")
        assert [a.key for a in consumed] == ["upstream_table"]
        both = tracker.find_artifacts(creator="producer", consumer="consumer")
        assert [a.id for a in both] == [consumed[0].id]
        assert [a.key for a in tracker.find_artifacts(key="raw")] == ["raw"]
        assert tracker.find_artifacts(creator="producer", key="other")[0].key == "other"
        assert len(tracker.find_artifacts(limit=1)) == 1
        assert tracker.find_artifacts(creator="nobody") == []
        run = tracker.get_run("producer")
        assert {a.key for a in tracker.find_artifacts(creator=run)} == {"table", "other"}
        assert all(a.path is not None for a in tracker.find_artifacts(creator="producer"))

    def test_load_input_bundle(self, tracker: Tracker, tmp_path: Path) -> None:
        self._chain(tracker, tmp_path)
        bundle = tracker.load_input_bundle("producer")
        assert set(bundle) == {"table", "other"}
        with pytest.raises(ValueError, match="no run"):
            tracker.load_input_bundle("missing")
        with tracker.start_run("empty", "e", config={"e": 1}):
            pass
        with pytest.raises(ValueError, match="no output"):
            tracker.load_input_bundle("empty")

    def test_get_config_bundle(self, tracker: Tracker, tmp_path: Path) -> None:
        self._chain(tracker, tmp_path)
        path = tracker.get_config_bundle("producer")
        assert path.name == "table.csv" and path.exists()
        with pytest.raises(ValueError, match="config_role='other_role'"):
            tracker.get_config_bundle("producer", role="other_role")
        assert tracker.get_config_bundle("producer", role="other_role", allow_missing=True) is None
        with pytest.raises(ValueError, match="adapter"):
            tracker.get_config_bundle("producer", adapter="activitysim")

    def test_get_config_bundle_adapter_and_tie_break(
        self, tracker: Tracker, tmp_path: Path
    ) -> None:
        with tracker.start_run("cfg", "cfg", config={"k": 1}):
            d = tracker.run_artifact_dir()
            d.mkdir(parents=True, exist_ok=True)
            for name in ("b", "a"):
                (d / f"{name}.yaml").write_text(name)
                tracker.log_output(
                    d / f"{name}.yaml", key=name, config_role="bundle", config_adapter="beam"
                )

        class BeamAdapter:
            name = "beam"

        assert tracker.get_config_bundle("cfg", adapter="beam").name == "a.yaml"
        assert tracker.get_config_bundle("cfg", adapter=BeamAdapter()).name == "a.yaml"


class TestIndexByFacet:
    def test_facet_keys_and_unhashable_values(self, tracker: Tracker) -> None:
        from pydantic import BaseModel

        class Scenario(BaseModel):
            scenario: str
            zones: list[int]

        for i, name in enumerate(["base", "policy", "base"]):
            with tracker.start_run(
                f"f{i}", "asim", config={"i": i}, facet=Scenario(scenario=name, zones=[i, 1])
            ):
                pass
        by_scenario = tracker.find_runs(model="asim", index_by="facet.scenario")
        assert set(by_scenario) == {"base", "policy"}
        assert by_scenario["base"].id == "f2"  # the newest run with the key wins
        assert tracker.find_runs(model="asim", index_by="facet:scenario") == by_scenario
        by_zones = tracker.find_runs(model="asim", index_by=index_by_facet("zones"))
        assert set(by_zones) == {(0, 1), (1, 1), (2, 1)}
        assert tracker.get_run("f0").meta["facet_schema_name"] == "Scenario"
