"""The Coupler (scenario-local key -> artifact map) and string inputs of scenario steps.

Unit behaviour of the map and its namespaced views, then how a scenario
fills it (scenario inputs, step outputs, collisions) and how a step input
given as a string resolves: coupler key, else existing path, else an error
naming the key and the available keys. Real files and DuckDB under tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from consist import Artifact, Coupler, Tracker

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _isolated_cwd(in_base_dir: None) -> None:
    """Every test of this module runs in its own temporary directory."""


@pytest.fixture
def table(base: Path) -> Path:
    path = base / "data" / "table.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x\n1\n2\n")
    return path


def art(key: str, path: Path | None = None) -> Artifact:
    a = Artifact(key=key, uri=f"./{key}.csv", driver="csv")
    return a.with_local_path(str(path)) if path is not None else a


def double(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(x=table["x"] * 2)


def total(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"x": [int(table["x"].sum())]})


def count_rows(table: Path) -> pd.DataFrame:
    return pd.DataFrame({"n": [len(table.read_text().splitlines()) - 1]})


# --------------------------------------------------------------------------- #
# The map
# --------------------------------------------------------------------------- #


class TestCouplerMap:
    def test_set_get_require_and_mapping_protocol(self) -> None:
        c = Coupler()
        a, b = art("a"), art("b")
        assert c.set("a", a) is a
        c["b"] = b
        assert c.get("a") is a and c["b"] is b
        assert c.get("missing") is None
        assert c.get("missing", b) is b
        assert "a" in c and "missing" not in c and 3 not in c and "" not in c
        assert c.keys() == ["a", "b"] and list(c) == ["a", "b"] and len(c) == 2
        assert c.items() == [("a", a), ("b", b)]
        assert c.values() == [a, b]
        assert c.to_dict() == {"a": a, "b": b}
        assert c.pop("a") is a and "a" not in c
        assert c.pop("a", "gone") == "gone"

    def test_later_set_replaces(self) -> None:
        c = Coupler({"k": art("k")})
        newer = art("k2")
        c.set("k", newer)
        assert c.require("k") is newer and c.keys() == ["k"]

    def test_require_names_available_keys(self) -> None:
        c = Coupler({"households": art("households"), "zones": art("zones")})
        with pytest.raises(KeyError, match=r"'persons'.*\['households', 'zones'\]"):
            c.require("persons")
        with pytest.raises(KeyError, match="persons"):
            _ = c["persons"]

    def test_path(self, table: Path) -> None:
        c = Coupler({"t": art("t", table), "remote": art("remote")})
        assert c.path("t") == table
        with pytest.raises(FileNotFoundError, match="remote"):
            c.path("remote")
        with pytest.raises(KeyError, match="available keys"):
            c.path("nope")

    def test_invalid_keys_and_values(self, table: Path) -> None:
        c = Coupler()
        with pytest.raises(TypeError, match="needs an Artifact"):
            c.set("t", table)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be strings"):
            c.set(1, art("x"))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="non-empty"):
            c.set(" ", art("x"))
        with pytest.raises(TypeError, match="mapping"):
            c.update([("a", art("a"))])  # type: ignore[arg-type]
        assert len(c) == 0

    def test_namespaces_share_storage(self) -> None:
        c = Coupler({"top": art("top")})
        asim = c.namespace("asim")
        trips = asim.set("trips", art("trips"))
        asim["tours"] = art("tours")
        assert asim.prefix == "asim/"
        assert c.keys() == ["top", "asim/trips", "asim/tours"]
        assert asim.keys() == ["trips", "tours"] and len(asim) == 2
        assert "trips" in asim and "asim/trips" in c and "top" not in asim
        assert c.require("asim/trips") is trips
        nested = asim.namespace("2030")
        nested.set("skims", art("skims"))
        assert c.get("asim/2030/skims") is not None
        assert asim.keys() == ["trips", "tours", "2030/skims"]
        with pytest.raises(KeyError, match="namespace 'asim/2030'"):
            nested.require("trips")
        with pytest.raises(ValueError, match="namespace"):
            c.namespace("/bad")
        with pytest.raises(ValueError, match="namespace"):
            c.namespace("")
        assert "asim/" in repr(asim)


# --------------------------------------------------------------------------- #
# How a scenario fills the coupler and resolves string inputs
# --------------------------------------------------------------------------- #


class TestScenarioCoupling:
    def test_inputs_and_step_outputs_are_registered(self, tracker: Tracker, table: Path) -> None:
        with tracker.scenario("s") as sc:
            seed = sc.add_input(table, key="table")
            assert sc.coupler["table"] is seed
            assert sc.coupler.path("table") == table
            doubled = sc.run(double, inputs={"table": "table"}, outputs=["table"])
            # A later step producing the same key replaces the entry.
            assert sc.coupler["table"].id == doubled.outputs["table"].id
            summed = sc.run(total, inputs={"table": "table"}, outputs=["total"])
            with sc.trace("note"):
                note = tracker.run_dir / "note.txt"
                note.write_text("done\n")
                tracker.log_artifact(note, key="note")
        assert sc.coupler.keys() == ["table", "total", "note"]
        assert pd.read_parquet(sc.coupler.path("total"))["x"].tolist() == [6]
        # The consumer's input *is* the producer's output (lineage links).
        inputs = tracker.get_run_inputs(summed.run_id)
        assert inputs["table"].id == doubled.outputs["table"].id
        assert tracker.get_run_inputs("s")["table"].id == seed.id

    def test_cache_hit_outputs_are_registered(self, tracker: Tracker, table: Path) -> None:
        for _ in range(2):
            with tracker.scenario("s") as sc:
                result = sc.run(double, inputs={"table": table}, outputs=["table"])
            assert sc.coupler["table"].id == result.outputs["table"].id
        assert result.cache_hit

    def test_string_resolution_order(self, tracker: Tracker, base: Path, table: Path) -> None:
        # A file named like a coupler key: the coupler wins.
        (base / "table").write_text("x\n100\n")
        with tracker.scenario("s") as sc:
            sc.add_input(table, key="table")
            by_key = sc.run(count_rows, inputs={"table": "table"}, outputs=["n"])
            by_path = sc.run(count_rows, inputs={"table": "data/table.csv"}, outputs=["n"])
            with pytest.raises(ValueError) as info:
                sc.run(count_rows, inputs={"table": "households"})
        assert tracker.get_run_inputs(by_key.run_id)["table"].uri.endswith("data/table.csv")
        assert tracker.get_run_inputs(by_path.run_id)["table"].uri.endswith("data/table.csv")
        message = str(info.value)
        assert "inputs['table']='households'" in message
        assert "neither a coupler key nor an existing path" in message
        assert "['table']" in message  # the available keys

    def test_lists_and_depends_on_resolve(self, tracker: Tracker, table: Path) -> None:
        with tracker.scenario("s") as sc:
            sc.add_input(table, key="seed")
            listed = sc.run(total, inputs={"table": table}, depends_on="seed", outputs=["t"])
            unnamed = sc.run(total, inputs={"table": table}, depends_on=["seed"], outputs=["t"])
            with pytest.raises(ValueError, match=r"depends_on\[0\]='ghost'"):
                sc.run(total, inputs={"table": table}, depends_on=["ghost"])
        for result in (listed, unnamed):
            assert "seed" in tracker.get_run_inputs(result.run_id)

    def test_unknown_key_in_trace_writes_nothing(self, tracker: Tracker) -> None:
        with (
            tracker.scenario("s") as sc,
            pytest.raises(ValueError, match="'zones'"),
            sc.trace("t", inputs={"z": "zones"}),
        ):
            pass
        assert tracker.find_runs(parent_id="s") == []

    def test_shared_coupler_chains_scenarios(self, tracker: Tracker, table: Path) -> None:
        shared = Coupler()
        with tracker.scenario("prepare", coupler=shared) as sc:
            sc.run(double, inputs={"table": table}, outputs=["table"])
        with tracker.scenario("analyse", coupler=shared, require_outputs=["total"]) as sc:
            assert sc.coupler is shared
            result = sc.run(total, inputs={"table": "table"}, outputs=["total"])
        assert pd.read_parquet(result.outputs["total"].path)["x"].tolist() == [6]
        assert shared.keys() == ["table", "total"]
