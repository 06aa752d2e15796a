"""The lineage of a run (``get_run_lineage`` and its renderings) and ``diff_runs`` with
``include_inputs`` / ``config_source="snapshot"``.

Real runs through ``tracker.run`` on real files and a real DuckDB file under
``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

import consist
from consist.core.tracker import Tracker


@pytest.fixture(autouse=True)
def _isolated_cwd(in_base_dir: None) -> None:
    """Every test of this module runs in its own temporary directory."""


def _step(config: dict, upstream: Path | None = None) -> Path:
    out = consist.output_path("out", ext="txt")
    previous = upstream.read_text() if upstream is not None else ""
    out.write_text(f"step {config['step']}\n{previous}")
    return out


def _join(config: dict, left: Path, right: Path) -> Path:
    out = consist.output_path("out", ext="txt")
    out.write_text(left.read_text() + right.read_text() + str(config))
    return out


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def chain(tracker: Tracker, raw: Path, steps: int) -> list[Any]:
    """``steps`` runs of model ``chain``; the first reads ``raw``, each next the previous output."""
    results: list[Any] = []
    prev: Any = raw
    for k in range(steps):
        result = tracker.run(
            _step,
            name="chain",
            config={"step": k},
            inputs={"upstream": prev},
            outputs=["out"],
            year=2020 + k,
        )
        results.append(result)
        prev = result.outputs["out"]
    return results


def spine(node: dict[str, Any]) -> list[str]:
    """Keys along the first input of each producing run, starting at ``node``."""
    keys = [node["key"]]
    while node.get("producing_run") and node["producing_run"]["inputs"]:
        node = node["producing_run"]["inputs"][0]
        keys.append(node["key"])
    return keys


# --------------------------------------------------------------------------- #
# get_run_lineage
# --------------------------------------------------------------------------- #


class TestRunLineage:
    def test_whole_upstream_of_a_run(self, tracker: Tracker, base: Path) -> None:
        raw = write(base / "raw.txt", "raw\n")
        runs = chain(tracker, raw, 3)
        last = runs[-1]
        tree = tracker.get_run_lineage(last.run_id)
        assert tree is not None
        assert tree["run"]["id"] == last.run_id
        assert tree["run"]["model_name"] == "chain" and tree["run"]["year"] == 2022
        assert tree["run"]["cache_source"] is None and "cache_hits" not in tree["run"]
        (only,) = tree["inputs"]
        assert only["input_key"] == "upstream"
        assert only["id"] == str(runs[1].outputs["out"].id)
        assert only["producing_run"]["id"] == runs[1].run_id
        assert spine(only) == ["out", "out", "upstream"]  # the raw file is logged as its key
        deepest = only["producing_run"]["inputs"][0]["producing_run"]["inputs"][0]
        assert deepest["producing_run"] is None  # raw input
        assert deepest["uri"].endswith("raw.txt")

    def test_depth_bounds_the_walk(self, tracker: Tracker, base: Path) -> None:
        runs = chain(tracker, write(base / "raw.txt", "raw\n"), 3)
        run_id = runs[-1].run_id
        assert tracker.get_run_lineage(run_id, max_depth=0)["inputs"] == []
        one = tracker.get_run_lineage(run_id, max_depth=1)
        (node,) = one["inputs"]
        assert "producing_run" not in node and node["truncated"] is True
        two = tracker.get_run_lineage(run_id, max_depth=2)
        inner = two["inputs"][0]["producing_run"]["inputs"][0]
        assert inner["truncated"] is True and "producing_run" not in inner
        # The first run's input is raw: at the bound it carries no flag.
        first = tracker.get_run_lineage(runs[0].run_id, max_depth=1)
        assert first["inputs"][0]["uri"].endswith("raw.txt")
        assert "truncated" not in first["inputs"][0]
        assert tracker.get_run_lineage(run_id, max_depth=10) == tracker.get_run_lineage(run_id)

    def test_a_run_without_inputs_and_unknown_runs(self, tracker: Tracker) -> None:
        result = tracker.run(_step, name="source", config={"step": 0}, outputs=["out"])
        tree = tracker.get_run_lineage(result.run_id)
        assert tree == {"run": tree["run"], "inputs": []}
        assert tracker.get_run_lineage("no_such_run") is None
        assert tracker.run_lineage_mermaid("no_such_run") is None
        assert tracker.run_lineage_dot("no_such_run") is None
        with pytest.raises(TypeError, match="run_id"):
            tracker.get_run_lineage(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_depth"):
            tracker.get_run_lineage(result.run_id, max_depth=-1)

    def test_a_cache_hit_names_its_source(self, tracker: Tracker, base: Path) -> None:
        raw = write(base / "raw.txt", "raw\n")
        first = chain(tracker, raw, 1)[0]
        hit = chain(tracker, raw, 1)[0]
        assert hit.cache_hit
        tree = tracker.get_run_lineage(hit.run_id)
        assert tree["run"]["cache_hit"] is True
        assert tree["run"]["cache_source"] == first.run_id
        assert tree["inputs"][0]["uri"].endswith("raw.txt")

    def test_shared_upstream_is_drawn_once(self, tracker: Tracker, base: Path) -> None:
        raw = write(base / "raw.txt", "raw\n")
        (up,) = chain(tracker, raw, 1)
        sides = [
            tracker.run(
                _step,
                name=side,
                config={"step": side},
                inputs={"upstream": up.outputs["out"]},
                outputs=["out"],
            )
            for side in ("left", "right")
        ]
        join = tracker.run(
            _join,
            name="join",
            config={"how": "both"},
            inputs={"left": sides[0].outputs["out"], "right": sides[1].outputs["out"]},
            outputs=["out"],
        )
        tree = tracker.get_run_lineage(join.run_id)
        assert [n["input_key"] for n in tree["inputs"]] == ["left", "right"]
        assert [n["producing_run"]["id"] for n in tree["inputs"]] == [r.run_id for r in sides]
        for node in tree["inputs"]:  # the shared upstream is expanded under both
            assert node["producing_run"]["inputs"][0]["producing_run"]["id"] == up.run_id
        text = tracker.run_lineage_mermaid(join.run_id)
        assert text.startswith(f"%% lineage of run {join.run_id}\nflowchart LR\n")
        up_node = "r_" + up.run_id
        assert text.count(f'    {up_node}["chain<br/>year=2020"]') == 1
        join_node = "r_" + join.run_id
        assert f'-->|"left"| {join_node}' in text and f'-->|"right"| {join_node}' in text
        up_output = "a_" + up.outputs["out"].id.hex[:12]
        assert text.count(f"    {up_output}([") == 1
        # consumed by left and right, each under its key "upstream"
        assert text.count(f'    {up_output} -->|"upstream"| ') == 2
        assert f"    class {join_node} root" in text
        assert tracker.run_lineage_mermaid(join.run_id) == text  # deterministic

    def test_dot_and_depth_in_graph_text(self, tracker: Tracker, base: Path) -> None:
        runs = chain(tracker, write(base / "raw.txt", "raw\n"), 2)
        last = runs[-1]
        dot = tracker.run_lineage_dot(last.run_id, direction="TB")
        assert dot.startswith("digraph lineage {\n")
        assert "rankdir=TB;" in dot
        assert f'"r:{last.run_id}" [' in dot and "rounded,filled,bold" in dot
        assert f'"r:{runs[0].run_id}"' in dot and "raw.txt" in dot
        shallow = tracker.run_lineage_dot(last.run_id, max_depth=1)
        assert f'"r:{runs[0].run_id}"' not in shallow and "raw.txt" not in shallow
        assert 'style="dashed"' in shallow  # the input has more upstream
        mermaid = tracker.run_lineage_mermaid(last.run_id, max_depth=0, show_run_ids=True)
        assert last.run_id in mermaid and "-->" not in mermaid
        with pytest.raises(ValueError, match="direction"):
            tracker.run_lineage_dot(last.run_id, direction="sideways")

    def test_print_run_lineage(self, tracker: Tracker, base: Path) -> None:
        runs = chain(tracker, write(base / "raw.txt", "raw\n"), 2)
        console = Console(record=True, width=300)
        tracker.print_run_lineage(runs[-1].run_id, console=console, show_run_ids=True)
        lines = console.export_text().splitlines()
        assert lines[0].startswith(runs[-1].run_id) and "chain (year=2021)" in lines[0]
        assert "upstream (out)" in lines[1] and f"[run {runs[0].run_id}]" in lines[1]
        assert "raw.txt" in lines[2] and "(raw input)" in lines[2]
        console = Console(record=True, width=300)
        tracker.print_run_lineage(runs[-1].run_id, console=console)
        plain = console.export_text()
        assert plain.startswith(runs[-1].run_id) and "[run " not in plain
        console = Console(record=True, width=300)
        tracker.print_run_lineage("nope", console=console)
        assert "No lineage for run 'nope': no such run" in console.export_text()

    def test_artifact_lineage_is_unchanged(self, tracker: Tracker, base: Path) -> None:
        runs = chain(tracker, write(base / "raw.txt", "raw\n"), 2)
        tree = tracker.get_artifact_lineage(runs[-1].outputs["out"].id)
        run_tree = tracker.get_run_lineage(runs[-1].run_id)
        # The run's inputs are exactly the inputs of the output's producing run.
        assert tree["producing_run"]["inputs"] == run_tree["inputs"]
        assert "lineage of out (" in tracker.lineage_mermaid(runs[-1].outputs["out"].id)

    def test_without_a_database(self, base: Path) -> None:
        journal_only = Tracker(base / "runs2", project_root=base)
        try:
            result = journal_only.run(_step, name="x", config={"step": 0}, outputs=["out"])
            assert journal_only.get_run_lineage(result.run_id) is None
            console = Console(record=True, width=200)
            journal_only.print_run_lineage(result.run_id, console=console)
            assert "no database" in console.export_text()
        finally:
            journal_only.close()


# --------------------------------------------------------------------------- #
# diff_runs: inputs and full config
# --------------------------------------------------------------------------- #


def _scale(households: pd.DataFrame, scale: int = 1, extra: dict | None = None) -> pd.DataFrame:
    return households.assign(persons=households["size"] * scale)


class TestDiffRunsInputsAndSnapshot:
    def _two_runs(self, tracker: Tracker, base: Path) -> tuple[Any, Any]:
        a_csv = write(base / "a.csv", "size\n1\n2\n")
        b_csv = write(base / "b.csv", "size\n1\n3\n")
        same = write(base / "same.csv", "size\n5\n")
        first = tracker.run(
            _scale,
            name="hh",
            config={"scale": 1, "opts": {"mode": "fast", "seed": 3}},
            inputs={"households": a_csv, "lookup": same},
            outputs=["persons"],
        )
        second = tracker.run(
            _scale,
            name="hh",
            config={"scale": 2, "opts": {"mode": "fast"}, "label": "b"},
            inputs={"households": b_csv, "lookup": same, "zones": same},
            outputs=["persons"],
        )
        return first, second

    def test_inputs_by_digest(self, tracker: Tracker, base: Path) -> None:
        first, second = self._two_runs(tracker, base)
        diff = tracker.diff_runs(first.run_id, second.run_id, include_inputs=True)
        inputs = diff["inputs"]
        assert list(inputs) == ["households", "zones"]
        hh = inputs["households"]
        assert hh["status"] == "changed"
        assert hh["a"]["uri"].endswith("a.csv") and hh["b"]["uri"].endswith("b.csv")
        assert hh["a"]["hash"] != hh["b"]["hash"] and hh["a"]["hash"].startswith("blake3:")
        assert inputs["zones"]["status"] == "added" and inputs["zones"]["a"] is None
        everything = tracker.diff_runs(
            first.run_id, second.run_id, include_inputs=True, include_equal=True
        )["inputs"]
        assert everything["lookup"]["status"] == "equal"
        reverse = tracker.diff_runs(second.run_id, first.run_id, include_inputs=True)["inputs"]
        assert reverse["zones"]["status"] == "removed" and reverse["zones"]["b"] is None
        # Same bytes under another artifact row still count as equal.
        again = write(base / "copy.csv", "size\n1\n2\n")
        third = tracker.run(
            _scale,
            name="hh",
            config={"scale": 1, "opts": {"mode": "fast", "seed": 3}},
            inputs={"households": again, "lookup": base / "same.csv"},
            outputs=["persons"],
        )
        assert tracker.diff_runs(first.run_id, third.run_id, include_inputs=True)["inputs"] == {}
        both = tracker.diff_runs(
            first.run_id, third.run_id, include_inputs=True, include_equal=True
        )["inputs"]["households"]
        assert both["status"] == "equal" and both["a"]["id"] != both["b"]["id"]
        assert both["b"]["uri"].endswith("copy.csv")

    def test_default_shape_is_unchanged(self, tracker: Tracker, base: Path) -> None:
        first, second = self._two_runs(tracker, base)
        diff = tracker.diff_runs(first.run_id, second.run_id)
        assert set(diff) == {"run_id_a", "run_id_b", "namespace", "changes"}
        # No facets were given: the facet comparison sees nothing.
        assert diff["changes"] == {}

    def test_snapshot_compares_the_full_config(self, tracker: Tracker, base: Path) -> None:
        first, second = self._two_runs(tracker, base)
        diff = tracker.diff_runs(first.run_id, second.run_id, config_source="snapshot")
        assert diff["namespace"] == {"a": "hh", "b": "hh"}
        assert diff["changes"] == {
            "label": {"a": None, "b": "b", "status": "added"},
            "opts.seed": {"a": 3, "b": None, "status": "removed"},
            "scale": {"a": 1, "b": 2, "status": "changed"},
        }
        equal = tracker.diff_runs(
            first.run_id, second.run_id, config_source="snapshot", include_equal=True
        )["changes"]
        assert equal["opts.mode"] == {"a": "fast", "b": "fast", "status": "equal"}
        only = tracker.diff_runs(
            first.run_id, second.run_id, config_source="snapshot", prefix="opts."
        )["changes"]
        assert list(only) == ["opts.seed"]
        keys = tracker.diff_runs(
            first.run_id, second.run_id, config_source="snapshot", keys=["scale"]
        )["changes"]
        assert list(keys) == ["scale"]

    def test_errors(self, tracker: Tracker, base: Path) -> None:
        first, second = self._two_runs(tracker, base)
        with pytest.raises(ValueError, match="config_source"):
            tracker.diff_runs(first.run_id, second.run_id, config_source="journal")
        with pytest.raises(ValueError, match="no run 'missing'"):
            tracker.diff_runs(first.run_id, "missing", config_source="snapshot")
        with pytest.raises(ValueError, match="no run 'missing'"):
            tracker.diff_runs("missing", first.run_id, include_inputs=True)
        snapshot = base / "runs" / "consist_runs" / f"{second.run_id}.json"
        assert snapshot.exists()
        snapshot.unlink()
        with pytest.raises(ValueError, match="no config snapshot"):
            tracker.diff_runs(first.run_id, second.run_id, config_source="snapshot")
