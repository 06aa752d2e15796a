"""RunSet: building from queries, filtering, grouping, latest, alignment, frames, diffs.

Runs are recorded through a real Tracker on a DuckDB file under
``tmp_path``; nothing is mocked.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import consist
from consist.core.query.runset import RunSet
from consist.core.tracker import Tracker


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracker]:
    monkeypatch.chdir(tmp_path)
    t = Tracker(tmp_path / "runs", db_path=tmp_path / "prov.duckdb")
    yield t
    t.close()


def record(tracker: Tracker, run_id: str, model: str = "asim", **kwargs: Any) -> None:
    with tracker.start_run(run_id, model, **kwargs):
        pass


@pytest.fixture
def study(tracker: Tracker) -> Tracker:
    """Two scenarios x two years, with iterations, plus another model.

    Recorded in this order (so created_at increases): base 2030 it0, base 2030
    it1, base 2040 it0, policy 2030 it0, policy 2040 it0, policy 2040 it1,
    base 2030 it0 rerun (newest, but a lower iteration than ``b30_1``).
    """
    runs = [
        ("b30_0", "base", 2030, 0, 1.0),
        ("b30_1", "base", 2030, 1, 1.0),
        ("b40_0", "base", 2040, 0, 1.0),
        ("p30_0", "policy", 2030, 0, 1.5),
        ("p40_0", "policy", 2040, 0, 1.5),
        ("p40_1", "policy", 2040, 1, 2.0),
        ("b30_rerun", "base", 2030, 0, 1.0),
    ]
    for run_id, scenario, year, iteration, scale in runs:
        record(
            tracker,
            run_id,
            tags=[scenario],
            year=year,
            iteration=iteration,
            stage="assign",
            facet={"scenario": scenario, "demand": {"scale": scale}, "seed": 1},
        )
    record(tracker, "beam_2030", model="beam", year=2030, facet={"scenario": "base"})
    return tracker


def ids(rs: RunSet) -> list[str]:
    return [r.id for r in rs]


class TestBuilding:
    def test_run_set_from_filters(self, study: Tracker) -> None:
        rs = study.run_set("asim", model="asim")
        assert isinstance(rs, RunSet) and isinstance(rs, consist.RunSet)
        assert rs.label == "asim"
        assert len(rs) == 7
        assert ids(rs)[0] == "b30_rerun"  # newest first, like find_runs
        assert rs.runs == list(rs) and rs.run_ids == ids(rs)
        assert rs[0].id == "b30_rerun"
        assert "7 runs" in repr(rs)

    def test_from_query_takes_every_match_by_default(self, study: Tracker) -> None:
        assert len(RunSet.from_query(study)) == 8
        assert len(RunSet.from_query(study, limit=2)) == 2
        assert ids(RunSet.from_query(study, label="p", tags=["policy"], year=2040)) == [
            "p40_1",
            "p40_0",
        ]
        with pytest.raises(ValueError, match="index_by"):
            RunSet.from_query(study, index_by="year")

    def test_empty_results(self, study: Tracker) -> None:
        rs = study.run_set(model="nothing")
        assert len(rs) == 0 and not rs
        assert len(rs.latest()) == 0
        assert rs.split_by("year") == {}
        assert rs.align(study.run_set().latest(by="year"), on="year") == []
        assert len(rs.to_frame(facets=True)) == 0

    def test_runs_are_deduplicated_and_typed(self, study: Tracker) -> None:
        run = study.get_run("b30_0")
        assert run is not None
        assert len(RunSet([run, run])) == 1
        with pytest.raises(TypeError, match="Run objects"):
            RunSet(["b30_0"])  # type: ignore[list-item]


class TestFilterSplitLatest:
    def test_filter_fields_predicates_and_facets(self, study: Tracker) -> None:
        rs = study.run_set("all", model="asim")
        assert set(ids(rs.filter(year=2040))) == {"b40_0", "p40_0", "p40_1"}
        assert ids(rs.filter(year=2040, iteration=1)) == ["p40_1"]
        assert ids(rs.filter(lambda r: r.id.startswith("p"), year=2030)) == ["p30_0"]
        assert set(ids(rs.filter(**{"facet.demand.scale": 1.5}))) == {"p30_0", "p40_0"}
        assert set(ids(rs.filter(**{"facet:scenario": "policy"}))) == {
            "p30_0",
            "p40_0",
            "p40_1",
        }
        assert ids(rs.filter(iteration=lambda it: it == 1, year=2030)) == ["b30_1"]
        assert ids(rs.filter(iteration=True)) == []  # a bool never equals a number
        assert rs.filter(year=2040).label == "all"
        with pytest.raises(ValueError, match="neither a Run attribute"):
            rs.filter(yeer=2040)

    def test_split_by_field(self, study: Tracker) -> None:
        groups = study.run_set("asim", model="asim").split_by("year")
        assert list(groups) == [2030, 2040]  # order of first appearance (newest first)
        assert set(ids(groups[2040])) == {"b40_0", "p40_0", "p40_1"}
        assert groups[2030].label == "asim/year=2030"
        tags = study.run_set(model="asim").split_by("tags")
        assert set(tags) == {("base",), ("policy",)}

    def test_split_by_facet(self, study: Tracker) -> None:
        groups = study.run_set().split_by("facet.scenario")
        assert set(groups) == {"base", "policy"}
        assert "beam_2030" in ids(groups["base"])
        scales = study.run_set(model="asim").split_by("facet:demand.scale")
        assert {k: len(v) for k, v in scales.items()} == {1.0: 4, 1.5: 2, 2.0: 1}
        record(study, "no_facet", model="asim")
        missing = study.run_set(model="asim").split_by("facet.scenario")
        assert ids(missing[None]) == ["no_facet"]

    def test_latest_overall_and_per_group(self, study: Tracker) -> None:
        rs = study.run_set(model="asim")
        # The highest iteration wins over the newest run with a lower iteration.
        assert ids(rs.latest()) == ["p40_1"]  # iteration 1, and newer than b30_1
        per_year = rs.filter(**{"facet.scenario": "base"}).latest(by="year")
        assert sorted(ids(per_year)) == ["b30_1", "b40_0"]
        per_cell = rs.latest(by=["facet.scenario", "year"])
        assert sorted(ids(per_cell)) == ["b30_1", "b40_0", "p30_0", "p40_1"]
        no_iter = study.run_set(model="beam")
        assert ids(no_iter.latest()) == ["beam_2030"]

    def test_latest_falls_back_to_newest(self, tracker: Tracker) -> None:
        for run_id in ("old", "new"):
            record(tracker, run_id, year=2030)
        assert ids(tracker.run_set().latest(by="year")) == ["new"]


class TestAlignAndDiffs:
    def test_align_inner_left_outer(self, study: Tracker) -> None:
        base = study.run_set("base", tags=["base"]).latest(by="year")
        policy = study.run_set("policy", tags=["policy"], year=2040).latest(by="year")
        pairs = base.align(policy, on="year")
        assert [(a.id, b.id) for a, b in pairs] == [("b40_0", "p40_1")]
        left = base.align(policy, on=["year"], how="left")
        assert {(a.id, b.id if b else None) for a, b in left} == {
            ("b30_1", None),
            ("b40_0", "p40_1"),
        }
        outer = policy.align(base, on="year", how="outer")
        assert [(a.id if a else None, b.id) for a, b in outer] == [
            ("p40_1", "b40_0"),
            (None, "b30_1"),
        ]
        with pytest.raises(ValueError, match="how"):
            base.align(policy, on="year", how="cross")

    def test_align_on_facet_and_several_fields(self, study: Tracker) -> None:
        base = study.run_set(tags=["base"]).latest(by=["year", "stage"])
        policy = study.run_set(tags=["policy"]).latest(by=["year", "stage"])
        pairs = base.align(policy, on=["year", "stage"])
        assert sorted((a.id, b.id) for a, b in pairs) == [
            ("b30_1", "p30_0"),
            ("b40_0", "p40_1"),
        ]
        asim = study.run_set(model="asim", year=2030, iteration=0).latest(by="facet.scenario")
        beam = study.run_set(model="beam")
        by_scenario = asim.align(beam, on="facet.scenario")
        assert [(a.id, b.id) for a, b in by_scenario] == [("b30_rerun", "beam_2030")]

    def test_align_rejects_ambiguous_keys(self, study: Tracker) -> None:
        base = study.run_set(tags=["base"])
        policy = study.run_set(tags=["policy"])
        with pytest.raises(ValueError, match="latest"):
            base.align(policy, on="year")

    def test_config_diffs_per_pair(self, study: Tracker) -> None:
        base = study.run_set(tags=["base"]).latest(by="year")
        policy = study.run_set(tags=["policy"]).latest(by="year")
        diffs = base.config_diffs(policy, on="year")
        by_year = {d["on"]["year"]: d for d in diffs}
        assert set(by_year) == {2030, 2040}
        d40 = by_year[2040]
        assert (d40["run_id_a"], d40["run_id_b"]) == ("b40_0", "p40_1")
        assert d40["namespace"] == {"a": "asim", "b": "asim"}
        assert d40["changes"] == {
            "demand.scale": {"a": 1.0, "b": 2.0, "status": "changed"},
            "scenario": {"a": "base", "b": "policy", "status": "changed"},
        }
        only_scale = base.config_diffs(policy, on="year", keys=["demand.scale"])
        assert all(list(d["changes"]) == ["demand.scale"] for d in only_scale)
        with_equal = base.config_diffs(policy, on="year", prefix="seed", include_equal=True)
        assert all(d["changes"]["seed"]["status"] == "equal" for d in with_equal)


class TestToFrame:
    def test_columns_and_types(self, study: Tracker) -> None:
        frame = study.run_set(model="asim", year=2040).to_frame()
        assert list(frame.columns) == [
            "id",
            "model_name",
            "status",
            "year",
            "iteration",
            "stage",
            "phase",
            "tags",
            "created_at",
        ]
        assert list(frame["id"]) == ["p40_1", "p40_0", "b40_0"]
        assert str(frame["year"].dtype) == "Int64"
        assert frame["tags"].iloc[0] == ["policy"]
        assert frame["phase"].isna().all()

    def test_facet_columns(self, study: Tracker) -> None:
        rs = study.run_set(year=2030)
        everything = rs.to_frame(facets=True)
        facet_cols = [c for c in everything.columns if c.startswith("facet.")]
        assert facet_cols == ["facet.demand.scale", "facet.scenario", "facet.seed"]
        beam = everything.set_index("id").loc["beam_2030"]
        assert beam["facet.scenario"] == "base"
        assert pd.isna(beam["facet.demand.scale"])  # beam's facet has no such key
        chosen = rs.to_frame(facets=["scenario"])
        assert [c for c in chosen.columns if c.startswith("facet.")] == ["facet.scenario"]
        assert (
            rs.to_frame(facets=["scenario"], namespace="beam")["facet.scenario"].notna().sum() == 1
        )

    def test_needs_a_tracker_for_facets(self, study: Tracker) -> None:
        detached = RunSet(study.run_set().runs, label="detached")
        assert len(detached.to_frame()) == 8
        with pytest.raises(ValueError, match="tracker"):
            detached.to_frame(facets=True)
        with pytest.raises(ValueError, match="tracker"):
            detached.split_by("facet.scenario")
        with pytest.raises(ValueError, match="tracker"):
            detached.config_diffs(detached, on="id")


def test_import_consist_stays_light() -> None:
    code = (
        "import sys, consist; consist.RunSet; "
        "print('pandas' in sys.modules, 'duckdb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
