"""Facets as modelers use them: artifact facets under the producing model, large
facets kept but not indexed, pydantic configs that supply their facet, bare facet
keys in RunSet, and grouped views whose selection is empty.

Real DuckDB files, parquet files and git repositories under ``tmp_path``;
everything goes through the public API.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel
from sqlmodel import Field, SQLModel

import consist
from _support import make_git_repo, write
from consist import Tracker


class LinkStats(SQLModel):
    __tablename__ = "link_stats"
    link: int = Field(primary_key=True)
    volume: float


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    consist.use_tracker(None)
    return tmp_path.resolve()


def query(tracker: Tracker, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in tracker.run_query(sql)]


def beam_iterations(tracker: Tracker, n: int = 3, model: str = "beam") -> list[Any]:
    """``n`` runs of ``model`` each writing linkstats with an indexed artifact facet."""
    arts = []
    for i in range(n):
        with tracker.start_run(f"{model}_{i}", model, year=2018, iteration=i):
            path = tracker.run_artifact_dir() / "linkstats.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"link": [1, 2], "volume": [10.0 * i, 20.0 * i]}).to_parquet(
                path, index=False
            )
            arts.append(
                tracker.log_artifact(
                    path,
                    key="linkstats",
                    facet={"artifact_family": "linkstats", "phys_sim_iteration": i},
                    facet_index=True,
                    profile_file_schema=True,
                )
            )
    return arts


def view_runs(tracker: Tracker, name: str) -> list[str]:
    return [r[0] for r in query(tracker, f"SELECT DISTINCT consist_run_id FROM {name} ORDER BY 1")]


def columns(tracker: Tracker, name: str) -> list[str]:
    return [
        r[0]
        for r in query(
            tracker,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = '{name}' ORDER BY ordinal_position",
        )
    ]


# --------------------------------------------------------------------------- #
# (c) artifact facets under the producing run's model name
# --------------------------------------------------------------------------- #
def test_artifact_facets_are_indexed_under_the_producing_model(tracker: Tracker) -> None:
    arts = beam_iterations(tracker)
    sid = arts[0].meta["schema_id"]
    tracker.create_grouped_view(
        "v_ls", schema_id=sid, namespace="beam", params=["artifact_family=linkstats"]
    )
    assert view_runs(tracker, "v_ls") == ["beam_0", "beam_1", "beam_2"]
    tracker.create_grouped_view(
        "v_late", schema_id=sid, params=["beam.phys_sim_iteration>=1", "artifact_family=linkstats"]
    )
    assert view_runs(tracker, "v_late") == ["beam_1", "beam_2"]
    tracker.create_grouped_view(
        "v_ns", schema_id=sid, namespace="beam", params=["phys_sim_iteration<=0"]
    )
    assert view_runs(tracker, "v_ns") == ["beam_0"]
    facets = tracker.get_config_facets(namespace="beam")
    assert {f.facet["phys_sim_iteration"] for f in facets} == {0, 1, 2}


def test_namespace_separates_models_writing_the_same_key(tracker: Tracker) -> None:
    beam = beam_iterations(tracker, 2, model="beam")
    beam_iterations(tracker, 2, model="matsim")  # same key, same facet keys, other model
    sid = beam[0].meta["schema_id"]
    tracker.create_grouped_view(
        "v_b", schema_id=sid, namespace="beam", params=["artifact_family=linkstats"]
    )
    assert view_runs(tracker, "v_b") == ["beam_0", "beam_1"]
    tracker.create_grouped_view("v_m", schema_id=sid, params=["matsim.phys_sim_iteration>=1"])
    assert view_runs(tracker, "v_m") == ["matsim_1"]
    tracker.create_grouped_view("v_all", schema_id=sid, params=["phys_sim_iteration>=1"])
    assert view_runs(tracker, "v_all") == ["beam_1", "matsim_1"]


def test_empty_grouped_view_keeps_the_schema_columns(tracker: Tracker) -> None:
    arts = beam_iterations(tracker, 1)
    sid = arts[0].meta["schema_id"]
    result = tracker.create_grouped_view(
        "v_none", schema_id=sid, namespace="beam", params=["phys_sim_iteration>=99"]
    )
    assert result.hot_artifacts == 0 and result.cold_artifacts == 0
    assert columns(tracker, "v_none")[:2] == ["link", "volume"]
    assert "consist_run_id" in columns(tracker, "v_none")
    assert query(tracker, "SELECT count(*) FROM v_none") == [(0,)]
    # a schema class selector, nothing selected by the run filter, facets attached
    tracker.create_grouped_view(
        "v_model",
        schema=LinkStats,
        model="no-such-model",
        attach_facets=["phys_sim_iteration"],
        include_system_columns=False,
    )
    assert columns(tracker, "v_model") == ["link", "volume", "facet_phys_sim_iteration"]
    assert query(tracker, "SELECT link, volume FROM v_model") == []
    types = dict(
        query(
            tracker,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'v_model'",
        )
    )
    assert types["link"] == "BIGINT" and types["volume"] == "DOUBLE"


def test_grouped_view_by_model_namespace_inside_a_git_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consist.use_tracker(None)
    repo = make_git_repo(tmp_path / "project", {"run_beam.py": "print('beam')\n"})
    monkeypatch.chdir(repo)
    write(repo / "beam.log", "iteration 0\n")  # untracked log beside the code
    tracker = Tracker(repo / "outputs", db_path=repo / "outputs" / "prov.duckdb", project_root=repo)
    try:
        arts = beam_iterations(tracker, 3)
        write(repo / "beam.log", "iteration 0\niteration 1\niteration 2\n")
        tracker.create_grouped_view(
            "v_linkstats",
            schema_id=arts[0].meta["schema_id"],
            namespace="beam",
            params=["artifact_family=linkstats", "beam.phys_sim_iteration>=1"],
            attach_facets=["phys_sim_iteration"],
        )
        rows = query(
            tracker,
            "SELECT facet_phys_sim_iteration, sum(volume) FROM v_linkstats GROUP BY 1 ORDER BY 1",
        )
        assert rows == [(1, 30.0), (2, 60.0)]
    finally:
        tracker.close()


# --------------------------------------------------------------------------- #
# (d) a facet too large for the index is kept, not indexed, with a warning
# --------------------------------------------------------------------------- #
def test_facet_with_too_many_keys_is_stored_but_not_indexed(tracker: Tracker) -> None:
    big = {f"link_{i}": {"capacity": i, "lanes": 2} for i in range(400)}  # 800 flat keys
    with (
        pytest.warns(UserWarning, match="800 flattened keys") as caught,
        tracker.start_run("big", "beam", facet=big),
    ):
        pass
    assert caught[0].filename == __file__  # points at the caller, not at consist
    (facet,) = tracker.get_config_facets(namespace="beam")
    assert facet.facet == big  # kept whole, as JSON
    assert tracker.get_run_config_kv("big") == []  # left out of the index
    assert tracker.get_config_values("big") == {}
    assert tracker.get_run("big").meta["facet_index"] is False


def test_facet_too_large_in_bytes_is_kept_and_small_facets_still_indexed(
    tracker: Tracker,
) -> None:
    long_text = "x" * (70 * 1024)  # one value over the 64 KiB index limit
    with (
        pytest.warns(UserWarning, match="bytes as JSON"),
        tracker.start_run("wordy", "asim", facet={"notes": long_text, "scale": 2}),
    ):
        pass
    assert tracker.get_config_facets(namespace="asim")[0].facet["notes"] == long_text
    assert tracker.find_runs_by_facet_kv(namespace="asim", key="scale", value_num=2) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a small facet: no warning, indexed
        with tracker.start_run("small", "asim", facet={"scale": 2}):
            pass
    assert [
        r.id for r in tracker.find_runs_by_facet_kv(namespace="asim", key="scale", value_num=2)
    ] == ["small"]


def test_index_limit_is_configurable(tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSIST_FACET_INDEX_MAX_KEYS", "2")
    with (
        pytest.warns(UserWarning, match="the index takes 2"),
        tracker.start_run("three", "asim", facet={"a": 1, "b": 2, "c": 3}),
    ):
        pass
    assert tracker.get_run_config_kv("three") == []
    monkeypatch.setenv("CONSIST_FACET_INDEX_MAX_KEYS", "many")
    with pytest.raises(ValueError, match="CONSIST_FACET_INDEX_MAX_KEYS"):
        tracker.start_run("bad_env", "asim", facet={"a": 1}).__enter__()
    assert tracker.get_run("bad_env") is None  # rejected before anything was written


def test_large_facet_through_tracker_run(tracker: Tracker) -> None:
    big = {f"k{i}": i for i in range(600)}

    def step(scale: int = 1) -> None:
        return None

    with pytest.warns(UserWarning, match="600 flattened keys"):
        result = tracker.run(fn=step, name="big_step", model="asim", config={"scale": 2}, facet=big)
    assert tracker.get_config_facet(tracker.store.facets.run_facet(result.run.id).id).facet == big
    assert tracker.get_run_config_kv(result.run.id) == []


def test_non_json_facet_values_are_still_rejected(tracker: Tracker) -> None:
    with pytest.raises(TypeError, match=r"facet\['when'\]"):
        tracker.start_run("bad", "asim", facet={"when": object()}).__enter__()
    assert tracker.get_run("bad") is None


# --------------------------------------------------------------------------- #
# (e) a pydantic config supplies the facet
# --------------------------------------------------------------------------- #
class DemandConfig(BaseModel):
    scale: float = 1.0
    scenario: str = "base"
    seed: int = 7
    zones: list[int] = [1, 2, 3]

    def to_consist_facet(self) -> dict[str, Any]:
        return {"scale": self.scale, "scenario": self.scenario}


class DemandFacet(BaseModel):
    scale: float
    scenario: str


class ModelFacetConfig(BaseModel):
    scale: float = 1.5
    scenario: str = "policy"

    def to_consist_facet(self) -> DemandFacet:
        return DemandFacet(scale=self.scale, scenario=self.scenario)


def test_pydantic_config_supplies_the_run_facet(tracker: Tracker) -> None:
    with tracker.start_run("base", "asim", config=DemandConfig(scale=1.2)):
        pass
    assert tracker.get_config_values("base") == {"scale": 1.2, "scenario": "base"}
    (found,) = tracker.find_runs_by_facet_kv(namespace="asim", key="scenario", value_str="base")
    assert found.id == "base"


def test_explicit_facet_wins_over_to_consist_facet(tracker: Tracker) -> None:
    with tracker.start_run("explicit", "asim", config=DemandConfig(), facet={"tag": "mine"}):
        pass
    assert tracker.get_config_values("explicit") == {"tag": "mine"}


def test_to_consist_facet_returning_a_model_and_through_run(tracker: Tracker) -> None:
    def step(config: ModelFacetConfig) -> None:
        return None

    result = tracker.run(fn=step, name="demand", model="asim", config=ModelFacetConfig())
    assert tracker.get_config_values(result.run.id) == {"scale": 1.5, "scenario": "policy"}
    (facet,) = tracker.get_config_facets(namespace="asim")
    assert facet.schema_name == "DemandFacet"


def test_to_consist_facet_with_bad_return_is_rejected_before_writing(tracker: Tracker) -> None:
    class Broken(BaseModel):
        scale: float = 1.0

        def to_consist_facet(self) -> Any:
            return ["scale", 1.0]

    with pytest.raises(TypeError, match=r"Broken.to_consist_facet\(\) must be a dict"):
        tracker.start_run("broken", "asim", config=Broken()).__enter__()
    assert tracker.get_run("broken") is None


# --------------------------------------------------------------------------- #
# (f) RunSet accepts bare facet keys
# --------------------------------------------------------------------------- #
@pytest.fixture
def study(tracker: Tracker) -> Tracker:
    specs = [
        ("b1", 2030, {"scale": 1, "scenario": "base", "demand": {"growth": 0.1}, "year": 1999}),
        ("b2", 2040, {"scale": 1, "scenario": "base", "demand": {"growth": 0.2}, "year": 1999}),
        ("p1", 2030, {"scale": 2, "scenario": "policy", "demand": {"growth": 0.1}}),
    ]
    for run_id, year, facet in specs:
        with tracker.start_run(run_id, "asim", year=year, facet=facet):
            pass
    return tracker


def ids(rs: Any) -> list[str]:
    return sorted(r.id for r in rs)


def test_split_by_and_filter_accept_bare_facet_keys(study: Tracker) -> None:
    rs = study.run_set("all", model="asim")
    bare = rs.split_by("scale")
    prefixed = rs.split_by("facet.scale")
    assert {k: ids(v) for k, v in bare.items()} == {k: ids(v) for k, v in prefixed.items()}
    assert {k: ids(v) for k, v in bare.items()} == {1: ["b1", "b2"], 2: ["p1"]}
    assert bare[1].label == "all/scale=1"
    assert ids(rs.filter(scenario="policy")) == ["p1"]
    assert ids(rs.filter(**{"demand.growth": 0.1})) == ["b1", "p1"]  # dotted bare key
    assert ids(rs.filter(scenario="base", year=2040)) == ["b2"]  # facet key + Run attribute
    assert rs.values("scenario") == rs.values("facet:scenario")
    assert sorted(rs.values("scenario")) == ["base", "base", "policy"]
    latest = rs.latest(by="scenario")
    assert ids(latest) == ["b2", "p1"]


def test_run_attribute_wins_over_a_facet_key_of_the_same_name(study: Tracker) -> None:
    rs = study.run_set("all", model="asim")
    assert sorted(rs.split_by("year"), key=str) == [2030, 2040]  # Run.year
    assert set(rs.split_by("facet.year")) == {1999, None}  # the facet's "year"
    assert ids(rs.filter(year=1999)) == []
    assert ids(rs.filter(**{"facet.year": 1999})) == ["b1", "b2"]


def test_unknown_bare_key_raises(study: Tracker) -> None:
    rs = study.run_set("all", model="asim")
    with pytest.raises(ValueError, match="neither a Run attribute nor a facet key"):
        rs.split_by("scenery")
    with pytest.raises(ValueError, match="'yeer'"):
        rs.filter(yeer=2030)
    # the prefixed form still allows a key that no run has (all None)
    assert list(rs.split_by("facet.scenery")) == [None]


def test_bare_key_without_a_tracker_says_what_is_missing(study: Tracker) -> None:
    runs = study.run_set("all", model="asim").runs
    detached = consist.RunSet(runs)
    with pytest.raises(ValueError, match="needs a tracker"):
        detached.split_by("scale")
    assert set(detached.split_by("year")) == {2030, 2040}
