"""Config binding through scenario steps, the coupler and sweeps.

``ScenarioContext.run`` and ``Tracker.sweep`` / ``ScenarioContext.sweep`` go
through the same binding as ``Tracker.run`` (``consist.core.run.binding``): config
keys reach same-named parameters, coupler inputs bind by key, a pydantic
config reaches sweep workers as the model, and a parameter no source supplies
is refused before anything is written (for a sweep: before any worker
starts). Each test compares what the step received with the config its run
recorded. Sweep steps are module-level so that spawn-started workers import
them.
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

import consist
from _support import persisted, write
from consist import Tracker


@pytest.fixture(autouse=True)
def _isolated_cwd(in_base_dir: None) -> None:
    """Every test of this module runs in its own temporary directory."""
    CALLS.clear()


@pytest.fixture
def seed_csv(base: Path) -> Path:
    return write(base / "data" / "seed.csv", "zone,persons\n1,100\n2,200\n")


CALLS: list[tuple[str, dict[str, Any]]] = []


def recorded_config(tracker: Tracker, run_id: str) -> dict[str, Any]:
    snapshot = json.loads((tracker.run_dir / "consist_runs" / f"{run_id}.json").read_text())
    assert tracker.get_run_config(run_id) == snapshot["config"]
    return snapshot["config"]


def grow(population: pd.DataFrame, rate: float, years: int = 1) -> pd.DataFrame:
    CALLS.append(("grow", {"rate": rate, "years": years}))
    return population.assign(persons=population["persons"] * (1 + rate) ** years)


def total(population: pd.DataFrame, label: str) -> pd.DataFrame:
    CALLS.append(("total", {"label": label}))
    return pd.DataFrame({"label": [label], "persons": [float(population["persons"].sum())]})


def inherits_nothing(rate: float = 0.0) -> None:
    CALLS.append(("inherits_nothing", {"rate": rate}))


class Plan(BaseModel):
    rate: float = 0.1
    years: int = 2


def planned(config: Plan, rate: float) -> None:
    CALLS.append(("planned", {"config": config, "rate": rate}))


# --------------------------------------------------------------------------- #
# Scenario steps and the coupler
# --------------------------------------------------------------------------- #


class TestScenarioSteps:
    def workflow(self, tracker: Tracker, seed_csv: Path) -> dict[str, Any]:
        with tracker.scenario("baseline", config={"rate": 99.0}) as sc:
            sc.add_input(seed_csv, key="population")
            grown = sc.run(
                grow,
                inputs={"population": "population"},  # a coupler key
                config={"rate": 0.5, "years": 2},
                outputs=["population"],
            )
            summed = sc.run(
                total,
                inputs={"population": "population"},  # now step 1's output
                config={"label": "after growth"},
                outputs=["summary"],
            )
            bare = sc.run(inherits_nothing)
        return {"grown": grown, "summed": summed, "bare": bare}

    def test_config_and_coupler_inputs_reach_the_steps(
        self, tracker: Tracker, seed_csv: Path
    ) -> None:
        first = self.workflow(tracker, seed_csv)
        assert CALLS == [
            ("grow", {"rate": 0.5, "years": 2}),
            ("total", {"label": "after growth"}),
            # The header's config is the header's: steps never inherit it.
            ("inherits_nothing", {"rate": 0.0}),
        ]
        assert recorded_config(tracker, first["grown"].run_id) == {"rate": 0.5, "years": 2}
        assert recorded_config(tracker, first["summed"].run_id) == {"label": "after growth"}
        assert recorded_config(tracker, first["bare"].run_id) == {}
        summary = pd.read_parquet(first["summed"].outputs["summary"].path)
        assert summary.to_dict("records") == [{"label": "after growth", "persons": 675.0}]

        # The same scenario again: every step is served from the cache.
        CALLS.clear()
        second = self.workflow(tracker, seed_csv)
        assert CALLS == []
        assert all(result.cache_hit for result in second.values())

    def test_missing_parameter_in_a_step_writes_nothing_for_it(
        self, tracker: Tracker, seed_csv: Path
    ) -> None:
        with tracker.scenario("baseline") as sc:
            sc.add_input(seed_csv, key="population")
            before = persisted(tracker)
            with pytest.raises(TypeError, match=r"grow\(\) needs \['rate'\]"):
                sc.run(grow, inputs={"population": "population"}, config={"years": 3})
            assert persisted(tracker) == before
            assert tracker.find_runs(parent_id="baseline", limit=10) == []
            # The scenario goes on: the corrected step runs.
            sc.run(grow, inputs={"population": "population"}, config={"rate": 0.1, "years": 3})
        assert CALLS == [("grow", {"rate": 0.1, "years": 3})]
        assert tracker.get_run("baseline").status == "completed"

    def test_pydantic_config_in_a_scenario_step(self, tracker: Tracker) -> None:
        with tracker.scenario("planned") as sc:
            result = sc.run(planned, config=Plan(rate=0.3))
        ((name, seen),) = CALLS
        assert name == "planned"
        assert isinstance(seen["config"], Plan) and seen["rate"] == 0.3
        assert seen["config"].model_dump(mode="json") == recorded_config(tracker, result.run_id)


# --------------------------------------------------------------------------- #
# Sweeps (real spawn-started worker processes)
# --------------------------------------------------------------------------- #


def sweep_step(i: int, scale: int, log: str, config: dict, offset: int = 0) -> Path:
    """Writes what it received, so the parent can compare it with the record."""
    with open(log, "a") as fh:
        fh.write(f"{i}\n")
    out = consist.output_path("received", ext="json")
    out.write_text(json.dumps({"i": i, "scale": scale, "offset": offset, "config": config}))
    return out


class SweepPlan(BaseModel):
    i: int
    scale: int = 3


def model_step(config: SweepPlan, i: int, scale: int) -> Path:
    out = consist.output_path("received", ext="json")
    out.write_text(
        json.dumps(
            {
                "is_model": isinstance(config, SweepPlan),
                "dump": config.model_dump(mode="json"),
                "i": i,
                "scale": scale,
            }
        )
    )
    return out


def journal_files(tracker: Tracker) -> list[str]:
    runs = tracker.run_dir / "consist_runs"
    return sorted(p.name for p in runs.glob("*.json")) if runs.exists() else []


class TestSweepValidation:
    def test_a_config_missing_a_required_parameter_starts_no_worker(
        self, tracker: Tracker, base: Path
    ) -> None:
        log = base / "log.txt"
        configs = [{"i": 0, "scale": 2}, {"i": 1}]  # the second lacks `scale`
        with pytest.raises(TypeError, match=r"needs \['scale'\].*checked with configs\[1\]"):
            tracker.sweep(sweep_step, configs, runtime_kwargs={"log": str(log)})
        assert journal_files(tracker) == []
        assert not log.exists()

    def test_a_pydantic_config_must_be_picklable(self, tracker: Tracker) -> None:
        class Local(BaseModel):
            i: int = 0
            scale: int = 1

        with pytest.raises(TypeError, match=r"configs\[0\].*cannot be sent to worker"):
            tracker.sweep(model_step, [Local()])
        assert journal_files(tracker) == []


@pytest.mark.slow
def test_sweep_configs_reach_the_workers_as_recorded(tracker: Tracker, base: Path) -> None:
    log = base / "executions.log"
    configs = [{"i": i, "scale": 10 + i} for i in range(3)]
    with tracker.scenario("grid") as sc:
        dict_rows = sc.sweep(
            sweep_step,
            configs,
            max_workers=2,
            outputs=["received"],
            runtime_kwargs={"log": str(log), "offset": 7},
        )
        model_rows = sc.sweep(
            model_step,
            [SweepPlan(i=5), SweepPlan(i=6, scale=4)],
            max_workers=2,
            outputs=["received"],
        )
    dict_rows.raise_for_failures()
    model_rows.raise_for_failures()
    assert sorted(int(x) for x in log.read_text().split()) == [0, 1, 2]
    for row, config in zip(dict_rows, configs, strict=True):
        received = json.loads(row.output("received").path.read_text())
        recorded = recorded_config(tracker, row.run_id)
        assert recorded == config == row.config
        assert received == {
            "i": config["i"],
            "scale": config["scale"],
            "offset": 7,
            "config": config,
        }
        assert row.run.parent_run_id == "grid"
    for row, plan in zip(model_rows, [SweepPlan(i=5), SweepPlan(i=6, scale=4)], strict=True):
        received = json.loads(row.output("received").path.read_text())
        recorded = recorded_config(tracker, row.run_id)
        assert recorded == plan.model_dump(mode="json") == row.config
        assert received == {"is_model": True, "dump": recorded, "i": plan.i, "scale": plan.scale}

    # The same sweeps again: served from the cache, nothing executes.
    with tracker.scenario("grid") as sc:
        again = sc.sweep(
            sweep_step,
            configs,
            max_workers=2,
            outputs=["received"],
            runtime_kwargs={"log": str(log), "offset": 7},
        )
    assert [row.cache_hit for row in again] == [True, True, True]
    assert sorted(int(x) for x in log.read_text().split()) == [0, 1, 2]


@pytest.mark.slow
def test_sweep_facet_from_names_config_keys(tracker: Tracker, base: Path) -> None:
    # Validation in the parent checks facet_from against each config, as run() does.
    log = base / "log.txt"
    rows = tracker.sweep(
        sweep_step,
        [{"i": 0, "scale": 2}, {"i": 1, "scale": 3}],
        max_workers=2,
        facet_from=["scale"],
        runtime_kwargs={"log": str(log)},
    )
    rows.raise_for_failures()
    for row in rows:
        assert tracker.get_config_values(row.run_id) == {"scale": row.config["scale"]}
    with pytest.raises(ValueError, match="facet_from names 'missing'"):
        tracker.sweep(
            sweep_step,
            [{"i": 2, "scale": 4}],
            facet_from=["missing"],
            runtime_kwargs={"log": str(log)},
        )
    assert sorted(int(x) for x in log.read_text().split()) == [0, 1]
