"""Scenarios: the header run, steps linked to it, defaults, re-execution, required outputs.

Real files and a real DuckDB file under ``tmp_path``; nothing is mocked.
Step functions live at module level: outside a git repository their code
identity is this module's file, so identical calls are cache hits.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import consist
from _support import make_git_repo
from consist import (
    CacheOptions,
    ConsistRunError,
    MissingOutputsError,
    ScenarioContext,
    Tracker,
)

CALLS: Counter[str] = Counter()


# --------------------------------------------------------------------------- #
# Fixtures and step functions
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _isolated(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(base)
    CALLS.clear()


@pytest.fixture
def seed_csv(base: Path) -> Path:
    path = base / "data" / "seed.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("zone,persons\n1,100\n2,200\n3,300\n")
    return path


def grow(population: pd.DataFrame, config: dict) -> pd.DataFrame:
    CALLS["grow"] += 1
    return population.assign(persons=(population["persons"] * (1 + config["rate"])).round(3))


def summarise(population: pd.DataFrame) -> pd.DataFrame:
    CALLS["summarise"] += 1
    return pd.DataFrame({"persons": [float(population["persons"].sum())]})


def explode(population: pd.DataFrame) -> pd.DataFrame:
    CALLS["explode"] += 1
    raise ValueError("model diverged in year 2030")


def plain() -> None:
    CALLS["plain"] += 1


@consist.define_step(cache_epoch=10, cache_hydration="metadata")
def pinned() -> None:
    CALLS["pinned"] += 1


def header_files(tracker: Tracker) -> list[str]:
    runs = tracker.run_dir / "consist_runs"
    return sorted(p.name for p in runs.glob("*.json")) if runs.exists() else []


# --------------------------------------------------------------------------- #
# The header run
# --------------------------------------------------------------------------- #


class TestHeader:
    def test_lifecycle_tags_and_config(self, tracker: Tracker) -> None:
        with tracker.scenario(
            "baseline",
            config={"growth": "low", "seed": 7},
            tags=["study"],
            description="the reference scenario",
            facet_from=["growth"],
            owner="modeling-team",
        ) as sc:
            assert isinstance(sc, ScenarioContext)
            live = tracker.get_run("baseline")
            assert live is not None and live.status == "running"
            assert tracker.current_run is None  # suspended while steps run
            step = sc.run(plain)
        header = tracker.get_run("baseline")
        assert header is not None
        assert header.status == "completed"
        assert header.model_name == "scenario"
        assert header.tags == ["study", "scenario_header"]
        assert header.description == "the reference scenario"
        assert header.meta["owner"] == "modeling-team"
        assert header.meta["scenario_executions"] == 1
        assert header.meta["scenario_steps"] == 1
        record = tracker.get_run_record("baseline")
        assert record.config == {"growth": "low", "seed": 7}
        assert record.facet == {"growth": "low"}
        # The header's config is not inherited by its steps.
        assert tracker.get_run_config(step.run_id) == {}
        assert step.run.parent_run_id == "baseline"
        assert sc.header is not None and sc.header.status == "completed"
        assert tracker.last_run.run.id == "baseline"

    def test_custom_model_and_tag_not_duplicated(self, tracker: Tracker) -> None:
        with tracker.scenario("s", model="landuse", tags=["scenario_header", "a"]):
            pass
        header = tracker.get_run("s")
        assert header.model_name == "landuse"
        assert header.tags == ["scenario_header", "a"]

    def test_invalid_arguments_write_nothing(self, tracker: Tracker) -> None:
        with pytest.raises(TypeError, match="tags"):
            tracker.scenario("s", tags="oops")
        with pytest.raises(ValueError, match="step_cache_hydration"):
            tracker.scenario("s", step_cache_hydration="everything")
        with pytest.raises(ValueError, match="cache_mode"):
            tracker.scenario("s", cache_mode="reuse")
        with pytest.raises(ValueError, match="name"):
            tracker.scenario("a/b")
        with pytest.raises(ValueError, match="placeholder"):
            tracker.scenario("s", name_template="{scenario}_{region}")
        with pytest.raises(TypeError, match="coupler"):
            tracker.scenario("s", coupler={"a": 1})
        with pytest.raises(TypeError, match="output keys"):
            tracker.scenario("s", require_outputs=[1])
        with pytest.raises(TypeError, match="config"):
            tracker.scenario("s", config=["not", "a", "dict"])
        assert header_files(tracker) == []
        assert tracker.find_runs() == []

    def test_methods_need_an_open_scenario(self, tracker: Tracker) -> None:
        sc = tracker.scenario("s")
        with pytest.raises(RuntimeError, match="needs an open scenario"):
            sc.run(plain)
        with pytest.raises(RuntimeError, match="needs an open scenario"):
            sc.add_input("x.csv", key="x")
        with pytest.raises(RuntimeError, match="needs an open scenario"), sc.trace("t"):
            pass
        assert header_files(tracker) == []

    def test_exception_in_block_marks_header_failed(self, tracker: Tracker) -> None:
        with pytest.raises(KeyError, match="boom"), tracker.scenario("s") as sc:
            sc.run(plain)
            raise KeyError("boom")
        header = tracker.get_run("s")
        assert header.status == "failed"
        assert "boom" in header.meta["error"]
        assert tracker.current_run is None

    def test_stray_active_run_fails_scenario(self, tracker: Tracker) -> None:
        with pytest.raises(RuntimeError, match="still active"), tracker.scenario("s"):
            tracker.begin_run("stray", "manual")
        assert tracker.get_run("stray").status == "failed"
        assert tracker.get_run("s").status == "failed"
        assert tracker.current_run is None

    def test_log_meta_on_header(self, tracker: Tracker) -> None:
        with tracker.scenario("s") as sc:
            sc.log_meta(calibrated=True)
            with sc.trace("inline"), pytest.raises(RuntimeError, match="between steps"):
                sc.log_meta(x=1)
        assert tracker.get_run("s").meta["calibrated"] is True

    def test_api_helper_uses_current_tracker(self, tracker: Tracker) -> None:
        with consist.use_tracker(tracker), consist.scenario("api_s", config={"k": 1}) as sc:
            result = sc.run(plain)
        assert tracker.get_run("api_s").status == "completed"
        assert result.run.parent_run_id == "api_s"


class TestReentry:
    def test_second_execution_reopens_header(self, tracker: Tracker) -> None:
        with tracker.scenario("s", config={"v": 1}) as sc:
            sc.log_meta(note="first")
            sc.run(plain)
        first = tracker.get_run("s")
        with tracker.scenario("s", config={"v": 2}) as sc:
            second_step = sc.run(plain)
        header = tracker.get_run("s")
        assert header.status == "completed"
        assert header.meta["scenario_executions"] == 2
        assert header.meta["note"] == "first"  # earlier metadata kept
        assert header.created_at == first.created_at
        assert header.ended_at > first.ended_at
        assert tracker.get_run_config("s") == {"v": 2}  # the latest execution's config
        assert second_step.cache_hit
        assert CALLS["plain"] == 1
        headers = tracker.find_runs(tags=["scenario_header"])
        assert [r.id for r in headers] == ["s"]
        assert len(tracker.find_runs(parent_id="s")) == 2

    def test_refuses_a_run_that_is_not_a_header(self, tracker: Tracker) -> None:
        tracker.run(plain, run_id="taken")
        with pytest.raises(ValueError, match="not a scenario header"), tracker.scenario("taken"):
            pass
        assert tracker.get_run("taken").status == "completed"

    def test_refuses_another_model(self, tracker: Tracker) -> None:
        with tracker.scenario("s", model="landuse"):
            pass
        with pytest.raises(ValueError, match="model='landuse'"), tracker.scenario("s"):
            pass

    def test_refuses_a_header_running_in_this_process(self, tracker: Tracker) -> None:
        other = Tracker(tracker.run_dir, db_path=tracker.db_path, project_root=tracker.project_root)
        try:
            with (
                tracker.scenario("s"),
                pytest.raises(RuntimeError, match="already running"),
                other.scenario("s"),
            ):
                pass
        finally:
            other.close()
        assert tracker.get_run("s").status == "completed"

    def test_stale_running_header_is_reopened(self, tracker: Tracker, base: Path) -> None:
        # A process that dies with the scenario open leaves its header running.
        script = (
            "import os, sys\n"
            "from consist import Tracker\n"
            "t = Tracker(sys.argv[1], db_path=sys.argv[2], project_root=sys.argv[3])\n"
            "t.scenario('s').__enter__()\n"
            "t.close()\n"
            "os._exit(0)\n"
        )
        tracker.close()
        subprocess.run(
            [sys.executable, "-c", script, str(tracker.run_dir), tracker.db_path, str(base)],
            check=True,
        )
        assert tracker.get_run("s").status == "running"
        with tracker.scenario("s"):
            pass
        run = tracker.get_run("s")
        assert run.status == "completed"
        assert run.meta["scenario_recovered_stale"] is True
        assert run.meta["scenario_previous_status"] == "running"

    def test_failed_then_fixed(self, tracker: Tracker, seed_csv: Path) -> None:
        with (
            pytest.raises(ConsistRunError, match="diverged") as info,
            tracker.scenario("s") as sc,
        ):
            sc.add_input(seed_csv, key="population")
            sc.run(grow, inputs={"population": "population"}, config={"rate": 0.1})
            sc.run(explode, inputs={"population": "population"}, year=2030)  # the seed
        header = tracker.get_run("s")
        assert header.status == "failed"
        assert "model diverged in year 2030" in header.meta["error"]
        assert header.meta["scenario_failed_steps"] == 1
        failed = tracker.get_run(info.value.run_id)
        assert failed.status == "failed" and failed.parent_run_id == "s"
        assert [s.status for s in sc.steps] == ["completed", "failed"]

        with tracker.scenario("s") as sc:
            sc.add_input(seed_csv, key="population")
            sc.run(grow, inputs={"population": "population"}, config={"rate": 0.1})
        header = tracker.get_run("s")
        assert header.status == "completed"
        assert header.meta["scenario_executions"] == 2
        assert header.meta["scenario_previous_status"] == "failed"
        assert "error" not in header.meta
        assert CALLS["grow"] == 1  # the completed step was reused

    def test_add_input_again_keeps_one_record(self, tracker: Tracker, seed_csv: Path) -> None:
        with tracker.scenario("s") as sc:
            first = sc.add_input(seed_csv, key="population")
        with tracker.scenario("s") as sc:
            again = sc.add_input(seed_csv, key="population")
        assert again.id == first.id  # same bytes, same record
        record = tracker.get_run_record("s")
        assert [a.key for a in record.inputs] == ["population"]
        assert tracker.get_run_inputs("s")["population"].id == first.id
        seed_csv.write_text("zone,persons\n1,1\n")
        with tracker.scenario("s") as sc:
            edited = sc.add_input(seed_csv, key="population")
        assert edited.id != first.id
        assert [a.id for a in tracker.get_run_record("s").inputs] == [edited.id]


# --------------------------------------------------------------------------- #
# Steps
# --------------------------------------------------------------------------- #


class TestSteps:
    def test_run_trace_and_step_are_linked(self, tracker: Tracker) -> None:
        with tracker.scenario("s") as sc:
            r = sc.run(plain)
            with sc.trace("inline", year=2020) as t:
                assert t is tracker
                traced = tracker.current_run.id
            with sc.step("init"):
                init = tracker.current_run.id
        children = {run.id: run for run in tracker.find_runs(parent_id="s")}
        assert set(children) == {r.run_id, traced, init}
        assert {run.model_name for run in children.values()} == {"plain", "inline", "init"}
        assert [s.kind for s in sc.steps] == ["run", "trace", "trace"]

    def test_foreign_parent_is_rejected(self, tracker: Tracker) -> None:
        with tracker.scenario("s") as sc:
            assert sc.run(plain, parent_run_id="s").run.parent_run_id == "s"
            with pytest.raises(ValueError, match="children of its header"):
                sc.run(plain, parent_run_id="elsewhere")

    def test_cache_epoch_default_and_overrides(self, tracker: Tracker) -> None:
        with tracker.scenario("s", cache_epoch=7) as sc:
            default = sc.run(plain)
            keyword = sc.run(plain, cache_epoch=8)
            grouped = sc.run(plain, cache_options=CacheOptions(cache_epoch=9))
            decorated = sc.run(pinned)
            grouped_other = sc.run(plain, cache_options=CacheOptions(cache_mode="overwrite"))
            with sc.trace("inline"):
                traced = tracker.current_run
        assert default.run.meta["cache_epoch"] == 7
        assert keyword.run.meta["cache_epoch"] == 8
        assert grouped.run.meta["cache_epoch"] == 9
        assert decorated.run.meta["cache_epoch"] == 10
        assert grouped_other.run.meta["cache_epoch"] == 7
        assert traced.meta["cache_epoch"] == 7
        # The epoch is identity: 7, 8 and 9 are three different cache keys.
        assert CALLS["plain"] == 4

    def test_step_cache_hydration_default_and_override(
        self, tracker: Tracker, seed_csv: Path
    ) -> None:
        def workflow() -> tuple:
            with tracker.scenario("s", step_cache_hydration="outputs-all") as sc:
                sc.add_input(seed_csv, key="population")
                a = sc.run(
                    grow,
                    inputs={"population": "population"},
                    config={"rate": 0.5},
                    outputs=["population"],
                )
                b = sc.run(
                    summarise,
                    inputs={"population": seed_csv},
                    outputs=["summary"],
                    cache_options=CacheOptions(cache_hydration="metadata"),
                )
            return a, b

        first = workflow()
        second = workflow()
        assert all(not r.cache_hit for r in first)
        assert all(r.cache_hit for r in second)
        copied, kept = second
        assert copied.run.meta["cache_hydration"] == "outputs-all"
        new_dir = tracker.run_artifact_dir(copied.run)
        assert copied.outputs["population"].path.parent == new_dir
        assert copied.outputs["population"].path.exists()
        assert kept.run.meta["cache_hydration"] == "metadata"
        assert kept.outputs["summary"].path == first[1].outputs["summary"].path

    def test_name_template(self, tracker: Tracker) -> None:
        with tracker.scenario("base", name_template="{scenario}_{name}_{year}") as sc:
            templated = sc.run(plain, year=2020)
            no_year = sc.run(plain)
            explicit = sc.run(plain, "custom", year=2020)
            per_call = sc.run(plain, name_template="{name}-{stage}", stage="calib")
            decorated = sc.run(pinned, year=2030)
            with pytest.raises(ValueError, match="available placeholders"):
                sc.run(plain, name_template="{model}")
        assert templated.run.model_name == "base_plain_2020"
        assert templated.run_id.startswith("base_plain_2020_")
        assert no_year.run.model_name == "base_plain"
        assert explicit.run.model_name == "custom"
        assert per_call.run.model_name == "plain-calib"
        assert decorated.run.model_name == "base_pinned_2030"

    def test_spec_multi_year_loop(self, tracker: Tracker, base: Path) -> None:
        def run_model(year: int) -> Path:
            out = base / "work" / f"results_{year}.csv"
            out.parent.mkdir(exist_ok=True)
            out.write_text(f"year,value\n{year},{year * 2}\n")
            return out

        with tracker.scenario("baseline") as sc:
            for year in [2020, 2030, 2040]:
                with sc.trace(name="simulate", year=year):
                    results = run_model(year)
                    tracker.log_artifact(results, key="output")
        ids = set()
        for year in [2020, 2030, 2040]:
            runs = tracker.find_runs(parent_id="baseline", year=year)
            assert len(runs) == 1
            (run,) = runs
            assert run.model_name == "simulate" and run.status == "completed"
            assert tracker.get_run_outputs(run.id)["output"].uri.endswith(f"results_{year}.csv")
            ids.add(run.id)
        assert len(ids) == 3
        # The coupler holds the newest year's output under the output key.
        assert sc.coupler.path("output").name == "results_2040.csv"


def workflow(tracker: Tracker, seed_csv: Path) -> dict[tuple[str, int, str], bool]:
    """Two scenarios x three years x two steps; returns cache_hit per step."""
    hits = {}
    for scenario, rate in (("baseline", 0.01), ("high_growth", 0.05)):
        with tracker.scenario(
            scenario,
            config={"rate": rate},
            require_outputs=["population", "summary"],
        ) as sc:
            sc.add_input(seed_csv, key="population")
            for year in (2020, 2030, 2040):
                grown = sc.run(
                    grow,
                    inputs={"population": "population"},  # last year's output (coupler)
                    config={"rate": rate},
                    outputs=["population"],
                    year=year,
                )
                summary = sc.run(
                    summarise,
                    inputs={"population": "population"},  # this year's output
                    outputs=["summary"],
                    year=year,
                )
                hits[(scenario, year, "grow")] = grown.cache_hit
                hits[(scenario, year, "summarise")] = summary.cache_hit
    return hits


class TestWorkflow:
    def test_second_execution_is_all_cache_hits(self, tracker: Tracker, seed_csv: Path) -> None:
        first = workflow(tracker, seed_csv)
        assert len(first) == 12 and not any(first.values())
        assert CALLS == {"grow": 6, "summarise": 6}

        second = workflow(tracker, seed_csv)
        assert len(second) == 12 and all(second.values())
        assert CALLS == {"grow": 6, "summarise": 6}  # nothing executed again

        for scenario in ("baseline", "high_growth"):
            header = tracker.get_run(scenario)
            assert header.status == "completed"
            assert header.meta["scenario_executions"] == 2
            assert header.meta["scenario_steps"] == 6
            assert header.meta["scenario_cache_hits"] == 6
            for year in (2020, 2030, 2040):
                runs = tracker.find_runs(parent_id=scenario, year=year)
                assert len(runs) == 4  # two steps x two executions
                assert sum(r.cache_hit for r in runs) == 2

        # The chain really compounds year over year, per scenario.
        def total(scenario: str, year: int) -> float:
            (run,) = tracker.find_runs(
                parent_id=scenario, year=year, model="summarise", metadata={"cache_hit": True}
            )
            return float(tracker.load_df(tracker.get_run_outputs(run.id)["summary"]).iloc[0, 0])

        assert total("baseline", 2020) == pytest.approx(600 * 1.01, rel=1e-3)
        assert total("baseline", 2040) == pytest.approx(600 * 1.01**3, rel=1e-3)
        assert total("high_growth", 2040) == pytest.approx(600 * 1.05**3, rel=1e-3)

    def test_edited_seed_reruns_the_chain(self, tracker: Tracker, seed_csv: Path) -> None:
        workflow(tracker, seed_csv)
        seed_csv.write_text("zone,persons\n1,1\n")
        third = workflow(tracker, seed_csv)
        assert not any(third.values())


class TestRequiredOutputs:
    def test_missing_outputs_fail_the_header(self, tracker: Tracker) -> None:
        with (
            pytest.raises(MissingOutputsError) as info,
            tracker.scenario("s", require_outputs=["summary", "report"]) as sc,
        ):
            sc.declare_outputs("extra", ["summary"])
            with sc.trace("make_summary"):
                out = tracker.run_dir / "summary.csv"
                out.write_text("a\n1\n")
                tracker.log_artifact(out, key="summary")
        err = info.value
        assert err.missing == ["report", "extra"]
        assert err.available == ["summary"]
        assert "'report'" in str(err) and "'extra'" in str(err)
        header = tracker.get_run("s")
        assert header.status == "failed"
        assert "report" in header.meta["error"]
        assert header.meta["scenario_required_outputs"] == ["summary", "report", "extra"]

    def test_all_present_completes(self, tracker: Tracker, seed_csv: Path) -> None:
        with tracker.scenario("s", require_outputs=["population"]) as sc:
            assert sc.missing_outputs() == ["population"]
            sc.run(
                grow, inputs={"population": seed_csv}, config={"rate": 0.1}, outputs=["population"]
            )
            assert sc.missing_outputs() == []
        assert tracker.get_run("s").status == "completed"

    def test_block_error_wins_over_missing_outputs(self, tracker: Tracker) -> None:
        with pytest.raises(ZeroDivisionError), tracker.scenario("s", require_outputs=["x"]):
            _ = 1 / 0
        assert "ZeroDivisionError" in tracker.get_run("s").meta["error"]


# --------------------------------------------------------------------------- #
# Inline (trace) steps in a git repository: cached by the repository's code identity
# --------------------------------------------------------------------------- #


@pytest.fixture
def git_tracker(base: Path) -> Iterator[Tracker]:
    repo = make_git_repo(base / "project", {"model.py": "RATE = 0.5\n"})
    t = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=repo)
    yield t
    t.close()


def test_traced_multi_year_loop_is_cached_on_second_execution(git_tracker: Tracker) -> None:
    tracker = git_tracker
    executed = []

    def execute() -> list[bool]:
        hits = []
        with tracker.scenario("baseline", step_cache_hydration="outputs-all") as sc:
            for year in [2020, 2030, 2040]:
                with sc.trace(name="simulate", year=year, config={"rate": 0.5}):
                    hits.append(tracker.is_cached)
                    if not tracker.is_cached:
                        executed.append(year)
                        out = consist.output_path("output", ext="csv")
                        out.write_text(f"year\n{year}\n")
        return hits

    assert execute() == [False, False, False]
    assert execute() == [True, True, True]
    assert executed == [2020, 2030, 2040]
    runs = tracker.find_runs(parent_id="baseline", year=2030)
    assert sorted(r.cache_hit for r in runs) == [False, True]
    hit = next(r for r in runs if r.cache_hit)
    assert hit.meta["cache_hydration"] == "outputs-all"
    assert tracker.get_run("baseline").meta["scenario_cache_hits"] == 3
