"""Config facets and their typed key/value index, through the Tracker facade.

Run facets (``facet=`` dicts and pydantic models, ``facet_from``), content
deduplication, flattening (nested keys, escaped dots), value typing, the
``facet_index`` switch, artifact facets, every query method (including empty
results and journal-only trackers), ``diff_runs`` options, the bulk
``facet_values`` used by ``find_runs(index_by="facet.<key>")``, and a rebuild
from the journal. Real DuckDB files under ``tmp_path``; nothing is mocked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import consist
from consist.core.query.facets import diff_values
from consist.core.store.facet_rows import (
    ConfigFacet,
    ConfigKV,
    decode_value,
    facet_id,
    flatten_facet,
    typed_value,
)
from consist.core.store.schema import LATEST_VERSION
from consist.core.tracker import Tracker


# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #
@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # project_root="." is never the repository
    return tmp_path.resolve()


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


def record(tracker: Tracker, run_id: str, model: str = "asim", **kwargs: Any) -> None:
    with tracker.start_run(run_id, model, **kwargs):
        pass


def counts(tracker: Tracker) -> dict[str, int]:
    assert tracker.store is not None
    return tracker.store.facets.counts()


NESTED = {
    "scenario": "base",
    "sample_rate": 0.25,
    "seed": 7,
    "flags": {"warm_start": True, "debug": False},
    "zones": {"taz.v2": {"count": 4500}},
    "modes": ["car", "bus"],
    "nothing": None,
    "empty": {},
}


class HouseholdFacet(BaseModel):
    region: str
    scale: float
    enabled: bool = True


# --------------------------------------------------------------------------- #
# Pure helpers
# --------------------------------------------------------------------------- #
class TestPureFacets:
    def test_typed_values(self) -> None:
        assert typed_value("x") == ("str", "x", None, None, None)
        assert typed_value(True) == ("bool", None, None, True, None)
        assert typed_value(3) == ("num", None, 3.0, None, "3")
        assert typed_value(3.0) == ("num", None, 3.0, None, "3.0")
        assert typed_value(None) == ("null", None, None, None, None)
        assert typed_value([1, "a"]) == ("json", None, None, None, '[1,"a"]')
        assert typed_value({}) == ("json", None, None, None, "{}")
        nan = typed_value(float("nan"))
        assert nan.value_type == "num" and nan.value_json is None

    def test_decode_round_trips_with_type(self) -> None:
        for value in ("x", "", True, False, 0, 1, 1.0, -2.5, 2**70, None, [1, [2]], {}):
            decoded = decode_value(*typed_value(value))
            assert decoded == value
            assert type(decoded) is type(value)

    def test_flatten_nested_and_escaped_dots(self) -> None:
        rows = dict(flatten_facet(NESTED))
        assert sorted(rows) == [
            "empty",
            "flags.debug",
            "flags.warm_start",
            "modes",
            "nothing",
            "sample_rate",
            "scenario",
            "seed",
            "zones.taz\\.v2.count",
        ]
        scalars = dict(flatten_facet(NESTED, scalars_only=True))
        assert "modes" not in scalars and "empty" not in scalars

    def test_facet_id_is_content_addressed(self) -> None:
        a = facet_id("asim", {"x": 1, "y": 2})
        assert a.startswith("blake3:")
        assert a == facet_id("asim", {"y": 2, "x": 1})
        assert a != facet_id("other", {"x": 1, "y": 2})
        assert a != facet_id("asim", {"x": 1.0, "y": 2})
        assert a != facet_id("asim", {"x": 1, "y": 2}, schema_version=2)
        assert a != facet_id("asim", {"x": 1, "y": 2}, schema_name="S")

    def test_diff_values_is_type_aware(self) -> None:
        changes = diff_values({"a": 1, "b": True, "c": "x"}, {"a": 1.0, "b": 1, "c": "x"})
        assert changes == {
            "a": {"a": 1, "b": 1.0, "status": "changed"},
            "b": {"a": True, "b": 1, "status": "changed"},
        }


# --------------------------------------------------------------------------- #
# Recording run facets
# --------------------------------------------------------------------------- #
class TestRunFacets:
    def test_schema_has_facet_tables(self, tracker: Tracker) -> None:
        assert LATEST_VERSION >= 3
        assert tracker.store is not None and tracker.store.schema_version() == LATEST_VERSION
        assert counts(tracker) == dict.fromkeys(
            ("config_facet", "run_facet", "run_config_kv", "artifact_facet", "artifact_kv"), 0
        )

    def test_dict_facet_is_flattened_with_types(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet=NESTED)
        values = tracker.get_config_values("r1")
        assert values == {
            "empty": {},
            "flags.debug": False,
            "flags.warm_start": True,
            "modes": ["car", "bus"],
            "nothing": None,
            "sample_rate": 0.25,
            "scenario": "base",
            "seed": 7,
            "zones.taz\\.v2.count": 4500,
        }
        assert type(values["seed"]) is int
        rows = {row.key: row for row in tracker.get_run_config_kv("r1")}
        assert rows["flags.warm_start"].value_type == "bool"
        assert rows["flags.warm_start"].value_num is None  # a bool is never a number
        assert rows["seed"].value_type == "num" and rows["seed"].value_num == 7.0
        assert rows["scenario"].value_type == "str" and rows["scenario"].value_str == "base"
        assert rows["nothing"].value_type == "null"
        assert rows["modes"].value_type == "json" and json.loads(rows["modes"].value_json) == [
            "car",
            "bus",
        ]
        assert all(isinstance(r, ConfigKV) and r.namespace == "asim" for r in rows.values())
        assert [r.key for r in tracker.get_run_config_kv("r1")] == sorted(rows)

    def test_non_finite_floats_round_trip(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"nan": math.nan, "inf": math.inf, "nested": [1.0, -math.inf]})
        values = tracker.get_config_values("r1")
        assert math.isnan(values["nan"]) and values["inf"] == math.inf
        assert values["nested"] == [1.0, -math.inf]
        (facet,) = tracker.get_config_facets()
        assert math.isnan(facet.facet["nan"]) and facet.facet["nested"][1] == -math.inf
        assert [
            r.id
            for r in tracker.find_runs_by_facet_kv(namespace="asim", key="inf", value_num=math.inf)
        ] == ["r1"]

    def test_pydantic_facet(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet=HouseholdFacet(region="north", scale=1.5))
        assert tracker.get_config_values("r1") == {
            "enabled": True,
            "region": "north",
            "scale": 1.5,
        }

    def test_facet_from_config_keys_merged_with_explicit_facet(self, tracker: Tracker) -> None:
        config = {"year_mode": "forecast", "demand": {"scale": 1.2}, "secret": "not in facet"}
        record(
            tracker,
            "r1",
            config=config,
            facet_from=["year_mode", "demand"],
            facet={"year_mode": "override", "extra": 1},
        )
        assert tracker.get_config_values("r1") == {
            "demand.scale": 1.2,
            "extra": 1,
            "year_mode": "override",  # explicit keys win
        }

    def test_identical_facets_are_stored_once(self, tracker: Tracker) -> None:
        for run_id in ("r1", "r2", "r3"):
            record(tracker, run_id, facet={"scale": 1.0, "region": "north"})
        record(tracker, "other_model", model="beam", facet={"scale": 1.0, "region": "north"})
        c = counts(tracker)
        assert c["config_facet"] == 2  # one per namespace
        assert c["run_facet"] == 4
        assert c["run_config_kv"] == 8
        ids = {row.facet_id for r in ("r1", "r2", "r3") for row in tracker.get_run_config_kv(r)}
        assert len(ids) == 1

    def test_facet_index_false_keeps_payload_but_no_kv(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"scale": 2}, facet_index=False)
        assert tracker.get_run_config_kv("r1") == []
        assert tracker.get_config_values("r1") == {}
        assert tracker.get_config_value("r1", "scale", default="missing") == "missing"
        assert tracker.find_runs_by_facet_kv(namespace="asim", key="scale") == []
        (facet,) = tracker.get_config_facets(namespace="asim")
        assert facet.facet == {"scale": 2}
        c = counts(tracker)
        assert (c["config_facet"], c["run_facet"], c["run_config_kv"]) == (1, 1, 0)

    def test_run_without_facet_writes_no_facet_rows(self, tracker: Tracker) -> None:
        record(tracker, "r1", config={"a": 1})
        assert counts(tracker)["config_facet"] == 0
        assert tracker.get_config_values("r1") == {}

    def test_function_shaped_run_with_facet(self, tracker: Tracker) -> None:
        def step(config: dict[str, Any]) -> None:
            return None

        tracker.run(fn=step, config={"k": 3, "other": "x"}, facet_from=["k"])
        run_id = tracker.last_run.run.id
        assert tracker.get_config_value(run_id, "k") == 3
        assert tracker.get_config_facets(namespace="step")[0].facet == {"k": 3}

    def test_schema_version_and_name_are_recorded(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"a": 1}, facet_schema_version=2)
        record(tracker, "r2", facet={"a": 1}, facet_schema_version="v3", facet_schema_name="S")
        by_version = {f.schema_version: f for f in tracker.get_config_facets()}
        assert set(by_version) == {"2", "v3"}
        assert [f.schema_version for f in tracker.get_config_facets(schema_name="S")] == ["v3"]
        assert tracker.get_config_facets(schema_name="nope") == []


# --------------------------------------------------------------------------- #
# Artifact facets
# --------------------------------------------------------------------------- #
class TestArtifactFacets:
    def test_log_artifact_facet_index(self, tracker: Tracker, base: Path) -> None:
        src = base / "skims.csv"
        src.write_text("a\n1\n")
        other = base / "other.csv"
        other.write_text("b\n2\n")
        with tracker.start_run("r1", "asim"):
            indexed = tracker.log_artifact(
                src,
                key="skims",
                direction="input",
                facet={"zones": {"system": "taz", "count": 4500}, "periods": ["am", "pm"]},
                facet_schema_version=1,
                facet_index=True,
            )
            plain = tracker.log_artifact(other, key="other", facet={"x": 1})
        assert tracker.store is not None
        facets = tracker.store.facets
        rows = facets.artifact_kv(indexed.id)
        assert {r.key: r.value for r in rows} == {"zones.count": 4500, "zones.system": "taz"}
        assert all(r.namespace == "asim" for r in rows)  # namespace: the producing run's model
        assert facets.artifact_facet(indexed.id).facet["periods"] == ["am", "pm"]
        assert facets.artifact_facet(indexed.id).schema_version == "1"
        assert facets.artifact_kv(plain.id) == []  # facet_index defaults to False
        assert facets.artifact_facet(plain.id).facet == {"x": 1}
        found = facets.find_artifacts_by_kv(key="zones.system", value_str="taz")
        assert [a.id for a in found] == [indexed.id]
        assert facets.find_artifacts_by_kv(key="zones.count", namespace="asim", value_num=4500)
        assert facets.find_artifacts_by_kv(key="zones.count", namespace="skims") == []

    def test_log_artifacts_facets_by_key(self, tracker: Tracker, base: Path) -> None:
        paths = {}
        for key in ("persons", "households"):
            paths[key] = base / f"{key}.csv"
            paths[key].write_text("id\n1\n")
        with tracker.start_run("r1", "asim"):
            arts = tracker.log_artifacts(
                paths,
                facets_by_key={"persons": {"rows": 10}, "households": {"rows": 4}},
                facet_index=True,
            )
        assert tracker.store is not None
        facets = tracker.store.facets
        assert [r.value for r in facets.artifact_kv(arts["persons"].id)] == [10]
        assert [r.value for r in facets.artifact_kv(arts["households"].id)] == [4]
        assert counts(tracker)["artifact_kv"] == 2


# --------------------------------------------------------------------------- #
# Query methods
# --------------------------------------------------------------------------- #
class TestQueries:
    def test_get_config_facet_by_id(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"a": {"b": 1}})
        (row,) = tracker.get_run_config_kv("r1")
        facet = tracker.get_config_facet(row.facet_id)
        assert isinstance(facet, ConfigFacet)
        assert facet.id == row.facet_id
        assert facet.namespace == "asim"
        assert facet.facet == {"a": {"b": 1}}
        assert facet.created_at is not None
        assert tracker.get_config_facet("blake3:" + "0" * 64) is None

    def test_get_config_facets_filters_and_limit(self, tracker: Tracker) -> None:
        for i in range(4):
            record(tracker, f"a{i}", model="asim", facet={"i": i})
        record(tracker, "b0", model="beam", facet={"i": 0})
        assert len(tracker.get_config_facets()) == 5
        listed = tracker.get_config_facets(namespace="asim")
        assert [f.facet["i"] for f in listed] == [3, 2, 1, 0]  # newest first
        assert len(tracker.get_config_facets(namespace="asim", limit=2)) == 2
        assert tracker.get_config_facets(namespace="none") == []
        with pytest.raises(ValueError, match="limit"):
            tracker.get_config_facets(limit=-1)

    def test_get_run_config_kv_prefix_namespace_limit(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"inputs": {"a": 1, "b": 2}, "other": 3})
        assert [r.key for r in tracker.get_run_config_kv("r1", prefix="inputs.")] == [
            "inputs.a",
            "inputs.b",
        ]
        assert len(tracker.get_run_config_kv("r1", limit=1)) == 1
        assert len(tracker.get_run_config_kv("r1", namespace="asim")) == 3
        assert tracker.get_run_config_kv("r1", namespace="beam") == []
        assert tracker.get_run_config_kv("missing") == []

    def test_get_config_values_filters(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"inputs": {"a": 1, "b": 2}, "other": 3})
        assert tracker.get_config_values("r1", prefix="inputs.") == {"inputs.a": 1, "inputs.b": 2}
        assert tracker.get_config_values("r1", keys=["other", "inputs.b", "nope"]) == {
            "inputs.b": 2,
            "other": 3,
        }
        assert tracker.get_config_values("r1", keys=[]) == {}
        assert tracker.get_config_values("r1", limit=1) == {"inputs.a": 1}
        assert tracker.get_config_values("r1", namespace="beam") == {}
        assert tracker.get_config_values("missing") == {}
        with pytest.raises(TypeError, match="keys"):
            tracker.get_config_values("r1", keys="other")
        with pytest.raises(TypeError, match="prefix"):
            tracker.get_config_values("r1", prefix=["inputs."])

    def test_get_config_value(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"a": {"b.c": 5}, "n": None, "flag": False})
        assert tracker.get_config_value("r1", "a.b\\.c") == 5
        assert tracker.get_config_value("r1", "flag") is False
        assert tracker.get_config_value("r1", "n", default="d") is None  # recorded null
        assert tracker.get_config_value("r1", "missing", default="d") == "d"
        assert tracker.get_config_value("r1", "a.b\\.c", namespace="beam", default=0) == 0
        assert tracker.get_config_value("nope", "a") is None

    def test_find_runs_by_each_value_type(self, tracker: Tracker) -> None:
        record(tracker, "s", facet={"v": "1"})
        record(tracker, "n_int", facet={"v": 1})
        record(tracker, "n_float", facet={"v": 1.0})
        record(tracker, "b", facet={"v": True})
        record(tracker, "z", facet={"v": None})
        record(tracker, "j", facet={"v": [1]})
        record(tracker, "other_model", model="beam", facet={"v": 1})

        def ids(**kw: Any) -> list[str]:
            return [r.id for r in tracker.find_runs_by_facet_kv(namespace="asim", key="v", **kw)]

        assert ids(value_str="1") == ["s"]
        assert ids(value_num=1) == ["n_float", "n_int"]  # newest first; True is not 1
        assert ids(value_num=1.0, value_type="num") == ["n_float", "n_int"]
        assert ids(value_bool=True) == ["b"]
        assert ids(value_bool=False) == []
        assert ids(value_type="null") == ["z"]
        assert ids(value_type="json") == ["j"]
        assert ids() == ["j", "z", "b", "n_float", "n_int", "s"]
        assert ids(limit=2) == ["j", "z"]
        assert tracker.find_runs_by_facet_kv(namespace="asim", key="nope") == []

    def test_find_runs_by_facet_kv_validation(self, tracker: Tracker) -> None:
        with pytest.raises(ValueError, match="value_type"):
            tracker.find_runs_by_facet_kv(namespace="a", key="k", value_type="float")
        with pytest.raises(ValueError, match="contradicts"):
            tracker.find_runs_by_facet_kv(namespace="a", key="k", value_type="str", value_num=1)
        with pytest.raises(ValueError, match="at most one"):
            tracker.find_runs_by_facet_kv(namespace="a", key="k", value_str="x", value_num=1)
        with pytest.raises(TypeError, match="value_num"):
            tracker.find_runs_by_facet_kv(namespace="a", key="k", value_num=True)
        with pytest.raises(TypeError, match="namespace"):
            tracker.find_runs_by_facet_kv(namespace="", key="k")

    def test_facet_values_bulk_for_index_by(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"scenario": "base", "x": 1})
        record(tracker, "r2", facet={"scenario": "policy"})
        record(tracker, "r3", facet={"x": 2})
        record(tracker, "r4", model="beam", facet={"scenario": "beam_base"})
        assert tracker.store is not None
        values = tracker.store.facet_values(["r1", "r2", "r3", "r4"], "scenario")
        assert values == {"r1": "base", "r2": "policy", "r4": "beam_base"}
        assert tracker.store.facets.facet_values(["r1", "r4"], "scenario", namespace="beam") == {
            "r4": "beam_base"
        }
        assert tracker.store.facet_values([], "scenario") == {}
        many = [f"missing{i}" for i in range(50)] + ["r2"]  # long lists take the unnest path
        assert tracker.store.facet_values(many, "scenario") == {"r2": "policy"}

    def test_find_runs_index_by_facet(self, tracker: Tracker) -> None:
        record(tracker, "r1", facet={"scenario": "base"})
        record(tracker, "r2", facet={"scenario": "policy"})
        keyed = tracker.find_runs(model="asim", index_by="facet.scenario")
        assert {k: r.id for k, r in keyed.items()} == {"base": "r1", "policy": "r2"}

    def test_reads_see_queued_writes(self, tracker: Tracker) -> None:
        def step(config: dict[str, Any]) -> None:
            return None

        for i in range(3):  # function-shaped runs queue their store writes
            tracker.run(fn=step, config={"i": i}, facet_from=["i"], run_id=f"q{i}")
        assert tracker.get_config_value("q2", "i") == 2
        assert [r.id for r in tracker.find_runs_by_facet_kv(namespace="step", key="i")] == [
            "q2",
            "q1",
            "q0",
        ]


# --------------------------------------------------------------------------- #
# diff_runs
# --------------------------------------------------------------------------- #
class TestDiffRuns:
    @pytest.fixture
    def pair(self, tracker: Tracker) -> Tracker:
        record(
            tracker,
            "a",
            facet={"inputs": {"hh": "v1", "jobs": "v1"}, "scale": 1, "flag": True, "gone": 0},
        )
        record(
            tracker,
            "b",
            facet={"inputs": {"hh": "v2", "jobs": "v1"}, "scale": 1.0, "flag": True, "new": None},
        )
        return tracker

    def test_default_shape(self, pair: Tracker) -> None:
        diff = pair.diff_runs("a", "b")
        assert diff == {
            "run_id_a": "a",
            "run_id_b": "b",
            "namespace": {"a": "asim", "b": "asim"},
            "changes": {
                "gone": {"a": 0, "b": None, "status": "removed"},
                "inputs.hh": {"a": "v1", "b": "v2", "status": "changed"},
                "new": {"a": None, "b": None, "status": "added"},
                "scale": {"a": 1, "b": 1.0, "status": "changed"},  # 1 and 1.0 differ
            },
        }
        assert list(diff["changes"]) == sorted(diff["changes"])

    def test_include_equal(self, pair: Tracker) -> None:
        changes = pair.diff_runs("a", "b", include_equal=True)["changes"]
        assert changes["flag"] == {"a": True, "b": True, "status": "equal"}
        assert changes["inputs.jobs"]["status"] == "equal"
        assert len(changes) == 6

    def test_prefix_and_keys(self, pair: Tracker) -> None:
        assert list(pair.diff_runs("a", "b", prefix="inputs.")["changes"]) == ["inputs.hh"]
        only = pair.diff_runs("a", "b", keys=["scale", "flag"], include_equal=True)
        assert list(only["changes"]) == ["flag", "scale"]
        assert pair.diff_runs("a", "b", keys=[])["changes"] == {}

    def test_namespace_and_limit(self, pair: Tracker) -> None:
        other = pair.diff_runs("a", "b", namespace="beam")
        assert other["namespace"] == {"a": "beam", "b": "beam"}
        assert other["changes"] == {}
        # limit inspects the first N keys (by key) of each run
        limited = pair.diff_runs("a", "b", limit=1, include_equal=True)["changes"]
        assert limited == {
            "flag": {"a": True, "b": True, "status": "equal"},
        }

    def test_runs_of_different_models(self, tracker: Tracker) -> None:
        record(tracker, "a", model="asim", facet={"k": 1})
        record(tracker, "b", model="beam", facet={"k": 2})
        diff = tracker.diff_runs("a", "b")
        assert diff["namespace"] == {"a": "asim", "b": "beam"}
        assert diff["changes"] == {"k": {"a": 1, "b": 2, "status": "changed"}}

    def test_identical_and_unknown_runs(self, pair: Tracker) -> None:
        assert pair.diff_runs("a", "a")["changes"] == {}
        with pytest.raises(ValueError, match="missing"):
            pair.diff_runs("a", "missing")


# --------------------------------------------------------------------------- #
# Journal-only trackers and rebuilds
# --------------------------------------------------------------------------- #
class TestWithoutDatabase:
    def test_every_method_is_empty(self, run_dir: Path) -> None:
        tracker = Tracker(run_dir)
        record(tracker, "r1", facet={"a": 1})
        assert tracker.get_run_record("r1").facet == {"a": 1}  # the journal has it
        assert tracker.get_config_facet("blake3:" + "0" * 64) is None
        assert tracker.get_config_facets() == []
        assert tracker.get_run_config_kv("r1") == []
        assert tracker.get_config_values("r1") == {}
        assert tracker.get_config_value("r1", "a", default="d") == "d"
        assert tracker.get_config_values_for_runs(["r1"]) == {}
        assert tracker.find_runs_by_facet_kv(namespace="asim", key="a") == []
        assert tracker.diff_runs("r1", "r1") == {
            "run_id_a": "r1",
            "run_id_b": "r1",
            "namespace": {"a": None, "b": None},
            "changes": {},
        }
        rs = tracker.run_set("all")
        assert len(rs) == 0 and rs.label == "all"
        tracker.close()


def test_rebuild_from_journal_restores_facets(tracker: Tracker, run_dir: Path, base: Path) -> None:
    src = base / "skims.csv"
    src.write_text("a\n1\n")
    record(tracker, "r1", facet={"a": {"b": 1}, "s": "x"})
    record(tracker, "r2", facet={"a": {"b": 1}, "s": "x"})
    record(tracker, "r3", facet={"hidden": 1}, facet_index=False)
    with tracker.start_run("r4", "asim", facet={"a": {"b": 2}}):
        art = tracker.log_artifact(src, key="skims", facet={"zones": 10}, facet_index=True)
    expected = counts(tracker)
    values = tracker.get_config_values("r1")
    tracker.close()

    rebuilt = base / "rebuilt.duckdb"
    report = consist.rebuild_from_journal(rebuilt, [run_dir])
    assert sorted(report.replayed) == ["r1", "r2", "r3", "r4"]
    again = Tracker(run_dir, db_path=rebuilt)
    try:
        assert counts(again) == expected
        assert again.get_config_values("r1") == values
        assert again.get_config_value("r4", "a.b") == 2
        assert [r.id for r in again.find_runs_by_facet_kv(namespace="asim", key="s")] == [
            "r2",
            "r1",
        ]
        assert again.store is not None
        assert [r.value for r in again.store.facets.artifact_kv(art.id)] == [10]
        # Replaying into a store that already has the rows changes nothing.
        again.close()
        consist.rebuild_from_journal(rebuilt, [run_dir])
        assert counts(again) == expected
    finally:
        again.close()
