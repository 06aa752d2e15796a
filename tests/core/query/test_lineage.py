"""Lineage: ``get_artifact_lineage``, ``print_lineage``, Mermaid and DOT text.

Chains built through ``tracker.run`` and through ``start_run`` /
``log_artifact``, diamonds, ``max_depth``, cycles, deep chains, lookups by key
/ UUID / UUID string / Artifact, unknown artifacts, cache hits and a
journal-only tracker. Real files and a real DuckDB file under ``tmp_path``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import consist
from consist.core.query.lineage import build_tree, iter_tree
from consist.core.store.lineage_store import BOUNDED_WALK_LIMIT, LineageStore, link_nodes
from consist.core.tracker import Tracker
from consist.models.artifact import Artifact

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _isolated_cwd(in_base_dir: None) -> None:
    """Every test of this module runs in its own temporary directory."""


def _chain_step(config: dict, upstream: Path | None = None) -> Path:
    """One link of a chain: writes its step number plus its upstream's text."""
    out = consist.output_path("out", ext="txt")
    previous = upstream.read_text() if upstream is not None else ""
    out.write_text(f"step {config['step']}\n{previous}")
    return out


def build_chain(tracker: Tracker, steps: int, first_input: Path | None = None) -> list[Any]:
    """``steps`` runs, each consuming the previous output; returns the RunResults."""
    results = []
    prev: Any = first_input
    for k in range(steps):
        result = tracker.run(
            _chain_step,
            name="chain",
            config={"step": k},
            inputs={"upstream": prev} if prev is not None else None,
            outputs=["out"],
            year=2020 + k,
        )
        results.append(result)
        prev = result.outputs["out"]
    return results


def spine(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The artifact nodes along a chain (first input each time), root first."""
    nodes = [tree]
    while nodes[-1].get("producing_run") and nodes[-1]["producing_run"]["inputs"]:
        nodes.append(nodes[-1]["producing_run"]["inputs"][0])
    return nodes


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class QueryCounter:
    """Counts statements executed on the store's connection."""

    def __init__(self, tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        manager = tracker.store.connections
        original = manager.connection
        counter = self

        class Proxy:
            def __init__(self, con: Any) -> None:
                self._con = con

            def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
                counter.statements.append(sql)
                return self._con.execute(sql, *args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._con, name)

        from contextlib import contextmanager

        @contextmanager
        def connection() -> Iterator[Any]:
            with original() as con:
                yield Proxy(con)

        monkeypatch.setattr(manager, "connection", connection)


# --------------------------------------------------------------------------- #
# Chains
# --------------------------------------------------------------------------- #


class TestChains:
    def test_chain_through_tracker_run(self, tracker: Tracker, base: Path) -> None:
        raw = write(base / "data" / "seed.txt", "seed\n")
        results = build_chain(tracker, 4, first_input=raw)
        last = results[-1].outputs["out"]

        tree = tracker.get_artifact_lineage(last.id)

        assert json.loads(json.dumps(tree)) == tree  # JSON-friendly as is
        nodes = spine(tree)
        assert len(nodes) == 5  # 4 produced artifacts + the raw seed
        assert nodes[0]["id"] == str(last.id)
        assert nodes[0]["key"] == "out"
        assert "input_key" not in nodes[0]
        for k, node in enumerate(nodes[:4]):
            run = node["producing_run"]
            expected = results[3 - k].run
            assert run["id"] == expected.id
            assert run["model_name"] == "chain"
            assert run["status"] == "completed"
            assert run["year"] == 2020 + 3 - k
            assert run["cache_hit"] is False
            assert run["cache_hits"] == 0
            assert run["created_at"] == expected.created_at.isoformat()
            assert node["uri"] == results[3 - k].outputs["out"].uri
            assert node["hash"].startswith("blake3:")
            assert node["run_id"] == expected.id
            assert len(run["inputs"]) == 1
        for node in nodes[1:]:
            assert node["input_key"] == "upstream"
        seed = nodes[-1]
        assert seed["producing_run"] is None
        assert seed["uri"].endswith("data/seed.txt")

    def test_chain_through_start_run_and_log_artifact(self, tracker: Tracker, base: Path) -> None:
        raw = write(base / "data" / "raw.csv", "x\n1\n")
        with tracker.start_run("prep_1", "prep", year=2030):
            tracker.log_artifact(raw, key="raw", direction="input")
            a_path = write(base / "work" / "a.csv", "x\n2\n")
            a = tracker.log_artifact(a_path, key="prepared")
        with tracker.start_run("model_1", "model", iteration=2):
            # By path: automatic discovery links it to prep_1's output.
            tracker.log_artifact(a_path, key="households", direction="input")
            b = tracker.log_output(write(base / "work" / "b.csv", "x\n3\n"), key="result")
        with tracker.start_run("report_1", "report", stage="post"):
            tracker.log_input(b)  # as an Artifact
            c = tracker.log_output(write(base / "work" / "c.md", "# report\n"), key="report")

        tree = tracker.get_artifact_lineage("report")

        assert tree["id"] == str(c.id)
        report_run = tree["producing_run"]
        assert (report_run["id"], report_run["model_name"], report_run["stage"]) == (
            "report_1",
            "report",
            "post",
        )
        (b_node,) = report_run["inputs"]
        assert (b_node["id"], b_node["input_key"]) == (str(b.id), "result")
        model_run = b_node["producing_run"]
        assert (model_run["id"], model_run["iteration"]) == ("model_1", 2)
        (a_node,) = model_run["inputs"]
        assert a_node["id"] == str(a.id)
        assert a_node["key"] == "prepared"
        assert a_node["input_key"] == "households"
        prep_run = a_node["producing_run"]
        assert (prep_run["id"], prep_run["year"]) == ("prep_1", 2030)
        (raw_node,) = prep_run["inputs"]
        assert raw_node["key"] == "raw"
        assert raw_node["producing_run"] is None
        assert raw_node["run_id"] == "prep_1"  # the run that first logged it

    def test_recent_deferred_runs_are_visible(self, tracker: Tracker) -> None:
        results = build_chain(tracker, 3)
        # tracker.run may queue its writes; lineage must still see them.
        tree = tracker.get_artifact_lineage(results[-1].outputs["out"].id)
        assert [n["producing_run"]["id"] for n in spine(tree)] == [
            r.run.id for r in reversed(results)
        ]

    def test_deep_chain_without_recursion_limits(self, tracker: Tracker) -> None:
        results = build_chain(tracker, 200)
        last = results[-1].outputs["out"]

        tree = tracker.get_artifact_lineage(last)

        nodes = [n for n, _ in iter_tree(tree)]
        assert len(nodes) == 200
        assert nodes[-1]["producing_run"]["id"] == results[0].run.id
        assert nodes[-1]["producing_run"]["inputs"] == []
        assert max(d for _, d in iter_tree(tree)) == 199
        # The renderers are iterative too.
        console = Console(record=True, width=4000)
        tracker.print_lineage(last, console=console)
        assert console.export_text().count("<- chain") == 200
        assert tracker.lineage_mermaid(last).count("-->") == 200 + 199
        truncated = tracker.get_artifact_lineage(last, max_depth=150)
        assert len(list(iter_tree(truncated))) == 151


# --------------------------------------------------------------------------- #
# Shapes: diamonds, depth, cycles
# --------------------------------------------------------------------------- #


def build_diamond(tracker: Tracker, base: Path) -> dict[str, Artifact]:
    """raw -> up -> {left, right} -> merged (left and right share `up`)."""
    raw = write(base / "data" / "raw.csv", "v\n1\n")
    out: dict[str, Artifact] = {}
    with tracker.start_run("up_run", "up"):
        tracker.log_input(raw, key="raw")
        out["up"] = tracker.log_output(write(base / "w" / "up.csv", "up"), key="up")
    for side in ("left", "right"):
        with tracker.start_run(f"{side}_run", side):
            tracker.log_input(out["up"], key="source")
            out[side] = tracker.log_output(write(base / "w" / f"{side}.csv", side), key=side)
    with tracker.start_run("merge_run", "merge"):
        tracker.log_input(out["right"], key="b_right")
        tracker.log_input(out["left"], key="a_left")
        out["merged"] = tracker.log_output(write(base / "w" / "m.csv", "m"), key="merged")
    return out


def tracker_output(
    tracker: Tracker, base: Path, name: str, inputs: list[Artifact], text: str
) -> Artifact:
    """One start_run that reads ``inputs`` and writes one output named ``name``."""
    with tracker.start_run(f"run_{name}", "step"):
        for i, art in enumerate(inputs):
            tracker.log_input(art, key=f"in{i}")
        return tracker.log_output(write(base / "w" / f"{name}.txt", text), key=name)


class TestShapes:
    def test_diamond_expands_shared_node_and_queries_once(
        self, tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        arts = build_diamond(tracker, base)
        tracker.store.flush()
        calls = []
        original = LineageStore.upstream

        def spy(self: LineageStore, *args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(LineageStore, "upstream", spy)
        counter = QueryCounter(tracker, monkeypatch)

        tree = tracker.get_artifact_lineage(arts["merged"].id)

        assert len(calls) == 1
        # By UUID: whether every link has its lineage group (else the walk
        # joins the whole link table), the walk over the root's group, then the
        # links leaving the nodes it reached (with their runs) and the
        # artifacts among them, by index (three statements whatever the size
        # of the graph).
        assert len(counter.statements) == 3
        assert "lineage_group IS NULL" in counter.statements[0]
        assert "lineage_group IN" in counter.statements[1]
        merge_inputs = tree["producing_run"]["inputs"]
        assert [n["input_key"] for n in merge_inputs] == ["a_left", "b_right"]  # sorted
        for node, side in zip(merge_inputs, ("left", "right"), strict=True):
            assert node["id"] == str(arts[side].id)
            (up,) = node["producing_run"]["inputs"]
            assert up["id"] == str(arts["up"].id)
            assert up["producing_run"]["id"] == "up_run"  # expanded on both sides
            assert up["producing_run"]["inputs"][0]["producing_run"] is None
            assert "shared" not in up and "cycle" not in up

        counter.statements.clear()
        tracker.get_artifact_lineage("merged")
        assert len(counter.statements) == 4  # key lookup + the walk's three

    def test_split_fetch_returns_the_rows_of_the_single_statement(
        self, tracker: Tracker, base: Path
    ) -> None:
        """The unbounded fetch (walk + lookups by id) equals the one-statement join."""
        from consist.core.store.lineage_store import (
            _SQL_UNBOUNDED,
            LINK_DST_SQL,
            LINK_SRC_SQL,
            _unbounded_rows,
        )

        arts = build_diamond(tracker, base)
        chain = build_chain(tracker, 4)
        with tracker.start_run("edit_1", "edit"):  # a self-cycle
            state = tracker.log_output(write(base / "w" / "state.csv", "s"), key="state")
            tracker.log_input(state, key="previous_state")
        tracker.store.flush()
        columns = "run_artifact_link (run_id, artifact_id, direction, key, meta)"
        with tracker.store.connections.transaction() as con:  # a dangling input link
            con.execute(
                f"INSERT INTO {columns} VALUES ('merge_run', uuid(), 'input', 'ghost', NULL)"
            )
            # ...and a link from a run row that does not exist
            con.execute(
                f"INSERT INTO {columns} VALUES ('no_such_run', ?, 'output', 'up', NULL)",
                [str(arts["up"].id)],
            )
            # their lineage nodes computed in SQL, as migration 7 does
            con.execute(
                f"UPDATE run_artifact_link SET src = {LINK_SRC_SQL}, dst = {LINK_DST_SQL} "
                "WHERE src IS NULL"
            )
        roots = [a.id for a in arts.values()] + [chain[-1].outputs["out"].id, state.id]
        with tracker.store.connections.connection() as con:
            for root in [*roots, uuid.uuid4()]:
                expected = con.execute(_SQL_UNBOUNDED, {"root": str(root)}).fetchall()
                got = _unbounded_rows(con, str(root))
                assert sorted(map(repr, got)) == sorted(map(repr, expected)), root

    def test_print_collapses_repeated_subtrees(self, tracker: Tracker, base: Path) -> None:
        arts = build_diamond(tracker, base)
        console = Console(record=True, width=300)
        tracker.print_lineage(arts["merged"].id, console=console)
        text = console.export_text()
        assert text.count("up.csv") == 2
        assert text.count("raw.csv") == 1  # the second `up` is not expanded again
        assert "(upstream shown above)" in text

    def test_node_budget_stops_reexpanding(self, tracker: Tracker, base: Path) -> None:
        arts = build_diamond(tracker, base)
        graph = tracker.store.lineage_store().upstream(arts["merged"].id)
        tree = build_tree(graph, max_nodes=0)
        left, right = tree["producing_run"]["inputs"]
        assert left["producing_run"]["inputs"][0]["producing_run"]["id"] == "up_run"
        shared = right["producing_run"]["inputs"][0]
        assert shared["shared"] is True
        assert "producing_run" not in shared

    def test_max_depth(self, tracker: Tracker, base: Path) -> None:
        raw = write(base / "data" / "seed.txt", "seed\n")
        results = build_chain(tracker, 3, first_input=raw)
        last = results[-1].outputs["out"].id

        zero = tracker.get_artifact_lineage(last, max_depth=0)
        assert "producing_run" not in zero
        assert zero["truncated"] is True
        assert zero["id"] == str(last)

        one = tracker.get_artifact_lineage(last, max_depth=1)
        assert one["producing_run"]["id"] == results[2].run.id
        (child,) = one["producing_run"]["inputs"]
        assert child["id"] == str(results[1].outputs["out"].id)
        assert "producing_run" not in child and child["truncated"] is True

        two = tracker.get_artifact_lineage(last, max_depth=2)
        assert [len(spine(t)) for t in (zero, one, two)] == [1, 2, 3]
        assert spine(two)[-1]["truncated"] is True

        three = tracker.get_artifact_lineage(last, max_depth=3)
        seed = spine(three)[-1]
        assert seed["uri"].endswith("seed.txt")
        assert "producing_run" not in seed and "truncated" not in seed  # raw: nothing cut

        full = tracker.get_artifact_lineage(last)
        assert tracker.get_artifact_lineage(last, max_depth=4) == full
        assert tracker.get_artifact_lineage(last, max_depth=BOUNDED_WALK_LIMIT + 10) == full

        console = Console(record=True, width=300)
        tracker.print_lineage(last, max_depth=0, console=console)
        text = console.export_text()
        assert text.count("\n") == 1 and "(more upstream beyond max_depth)" in text

    def test_diamond_ladder_does_not_explode(self, tracker: Tracker, base: Path) -> None:
        """14 levels of two runs that both read both outputs of the level below."""
        level = [tracker_output(tracker, base, f"l0_{side}", [], f"seed {side}") for side in "ab"]
        for n in range(1, 15):
            level = [
                tracker_output(tracker, base, f"l{n}_{side}", level, f"{n}{side}") for side in "ab"
            ]
        tree = tracker.get_artifact_lineage(level[0].id)  # 2**15 - 1 nodes if fully expanded
        nodes = [node for node, _ in iter_tree(tree)]
        assert 10_000 <= len(nodes) < 10_200
        assert any(node.get("shared") for node in nodes)
        assert tracker.lineage_mermaid(level[0].id).count("-->") == 29 + 2 + 13 * 2 * 2
        console = Console(record=True, width=400)
        tracker.print_lineage(level[0].id, console=console)
        # Each of the 27 artifacts with inputs is expanded once: 2 lines each, plus the root.
        assert console.export_text().count("\n") == 1 + 27 * 2

    def test_failed_producer_is_the_fallback(self, tracker: Tracker, base: Path) -> None:
        out = None
        with pytest.raises(RuntimeError), tracker.start_run("crash_1", "crashy"):
            out = tracker.log_output(write(base / "w" / "partial.csv", "p"), key="partial")
            raise RuntimeError("boom")
        assert out is not None
        tree = tracker.get_artifact_lineage(out.id)
        assert tree["producing_run"]["id"] == "crash_1"
        assert tree["producing_run"]["status"] == "failed"
        console = Console(record=True, width=300)
        tracker.print_lineage(out.id, console=console)
        assert "<- crashy (failed)" in console.export_text()

    def test_numpy_integer_depth(self, tracker: Tracker) -> None:
        np = pytest.importorskip("numpy")
        results = build_chain(tracker, 2)
        art = results[-1].outputs["out"]
        assert tracker.get_artifact_lineage(art, max_depth=np.int64(1)) == (
            tracker.get_artifact_lineage(art, max_depth=1)
        )

    @pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
    def test_bad_max_depth_is_rejected(self, tracker: Tracker, bad: Any) -> None:
        with pytest.raises((TypeError, ValueError), match="max_depth"):
            tracker.get_artifact_lineage("anything", max_depth=bad)
        with pytest.raises((TypeError, ValueError), match="max_depth"):
            tracker.print_lineage("anything", max_depth=bad)

    def test_self_cycle_from_relogged_output(self, tracker: Tracker, base: Path) -> None:
        with tracker.start_run("edit_1", "edit"):
            out = tracker.log_output(write(base / "w" / "state.csv", "s"), key="state")
            tracker.log_input(out, key="previous_state")  # re-logged output as input

        tree = tracker.get_artifact_lineage(out.id)

        run = tree["producing_run"]
        assert run["id"] == "edit_1"
        (again,) = run["inputs"]
        assert again["id"] == str(out.id)
        assert again["cycle"] is True
        assert "producing_run" not in again
        node = "a_" + out.id.hex[:12]
        edges = [line for line in tracker.lineage_mermaid(out.id).splitlines() if "-->" in line]
        assert len(edges) == 2
        assert edges[0].startswith(f"    {node} -->") and edges[0].endswith(" r_edit_1")
        assert edges[1] == f"    r_edit_1 --> {node}"

    def test_two_run_cycle_terminates_everywhere(self, tracker: Tracker, base: Path) -> None:
        with tracker.start_run("run_a", "a"):
            a = tracker.log_output(write(base / "w" / "a.csv", "a"), key="a")
        with tracker.start_run("run_b", "b"):
            tracker.log_input(a, key="a_in")
            b = tracker.log_output(write(base / "w" / "b.csv", "b"), key="b")
        # Close the loop as a manual, after-the-fact link would: run_a read b.
        tracker.store.flush()
        with tracker.store.connections.transaction() as con:
            con.execute(
                "INSERT INTO run_artifact_link (run_id, artifact_id, direction, key, meta, "
                "src, dst) VALUES (?, ?, 'input', 'b_in', NULL, ?, ?)",
                ["run_a", str(b.id), *link_nodes("run_a", b.id, "input")],
            )

        tree = tracker.get_artifact_lineage(b.id)
        b_run = tree["producing_run"]
        (a_node,) = b_run["inputs"]
        (b_again,) = a_node["producing_run"]["inputs"]
        assert (b_again["id"], b_again["input_key"], b_again["cycle"]) == (str(b.id), "b_in", True)

        for depth in (1, 2, 3, 5, BOUNDED_WALK_LIMIT, BOUNDED_WALK_LIMIT + 1, 10_000):
            bounded = tracker.get_artifact_lineage(b.id, max_depth=depth)
            assert len(list(iter_tree(bounded))) == min(depth, 2) + 1

        dot = tracker.lineage_dot(b.id)
        assert f'"a:{b.id}" -> "r:run_a" [label="b_in"];' in dot
        assert f'"a:{a.id}" -> "r:run_b" [label="a_in"];' in dot
        console = Console(record=True, width=300)
        tracker.print_lineage(b.id, console=console)
        assert "(cycle: already on this path)" in console.export_text()


# --------------------------------------------------------------------------- #
# Lookup
# --------------------------------------------------------------------------- #


class TestLookup:
    def test_key_uuid_string_and_artifact_agree(self, tracker: Tracker) -> None:
        results = build_chain(tracker, 2)
        art = results[-1].outputs["out"]
        by_uuid = tracker.get_artifact_lineage(art.id)
        assert tracker.get_artifact_lineage(str(art.id)) == by_uuid
        assert tracker.get_artifact_lineage(art.id.hex) == by_uuid
        assert tracker.get_artifact_lineage(art) == by_uuid
        assert tracker.get_artifact_lineage("out") == by_uuid  # newest with that key

    def test_key_resolves_to_newest(self, tracker: Tracker) -> None:
        results = build_chain(tracker, 3)
        assert tracker.get_artifact_lineage("out")["id"] == str(results[-1].outputs["out"].id)
        assert tracker.get_artifact("out").id == results[-1].outputs["out"].id

    def test_uuid_shaped_key_falls_back_to_key(self, tracker: Tracker, base: Path) -> None:
        key = str(uuid.uuid4())
        with tracker.start_run("odd_1", "odd"):
            art = tracker.log_output(write(base / "w" / "odd.csv", "o"), key=key)
        assert tracker.get_artifact_lineage(key)["id"] == str(art.id)

    def test_unknown_artifact(self, tracker: Tracker, capsys: pytest.CaptureFixture) -> None:
        build_chain(tracker, 1)
        missing = uuid.uuid4()
        for ref in ("no_such_key", missing, str(missing)):
            assert tracker.get_artifact_lineage(ref) is None
            assert tracker.get_artifact(ref) is None  # same convention
            assert tracker.lineage_mermaid(ref) is None
            assert tracker.lineage_dot(ref) is None
        tracker.print_lineage("no_such_key")
        out = capsys.readouterr().out
        assert "No lineage for 'no_such_key'" in out and "no such artifact" in out

    def test_bad_reference_type(self, tracker: Tracker) -> None:
        with pytest.raises(TypeError, match="artifact_key_or_id"):
            tracker.get_artifact_lineage(42)  # type: ignore[arg-type]

    def test_journal_only_tracker(self, base: Path, capsys: pytest.CaptureFixture) -> None:
        t = Tracker(base / "journal_only", project_root=base)
        with t.start_run("j_1", "j"):
            art = t.log_output(write(base / "w" / "j.csv", "j"), key="j")
        assert t.get_artifact_lineage(art.id) is None
        assert t.get_artifact_lineage("j") is None
        assert t.lineage_mermaid("j") is None
        assert t.lineage_dot(art) is None
        t.print_lineage("j")
        assert "no database" in capsys.readouterr().out
        with pytest.raises(ValueError, match="max_depth"):
            t.get_artifact_lineage("j", max_depth=-1)
        t.close()


# --------------------------------------------------------------------------- #
# Cache hits
# --------------------------------------------------------------------------- #


def test_cache_hits_point_to_the_original_producer(tracker: Tracker) -> None:
    first = build_chain(tracker, 2)
    again = build_chain(tracker, 2)
    assert [r.cache_hit for r in again] == [True, True]
    art = again[-1].outputs["out"]
    assert art.id == first[-1].outputs["out"].id

    tree = tracker.get_artifact_lineage(art.id)

    nodes = spine(tree)
    assert [n["producing_run"]["id"] for n in nodes] == [r.run.id for r in reversed(first)]
    assert all(n["producing_run"]["cache_hit"] is False for n in nodes)
    assert [n["producing_run"]["cache_hits"] for n in nodes] == [1, 1]


# --------------------------------------------------------------------------- #
# Printing
# --------------------------------------------------------------------------- #


class TestPrint:
    def test_print_lineage_to_stdout(self, tracker: Tracker, base: Path, capsys) -> None:
        raw = write(base / "data" / "seed.txt", "seed\n")
        results = build_chain(tracker, 2, first_input=raw)
        last = results[-1].outputs["out"]

        tracker.print_lineage(last.id)

        out = capsys.readouterr().out
        lines = out.splitlines()
        assert len(lines) == 3
        assert lines[0].startswith("out  " + last.uri)  # no line is wrapped
        assert "<- chain (year=2021)" in lines[0]
        assert "upstream (out)" in lines[1] and results[0].outputs["out"].uri in lines[1]
        assert "seed.txt" in lines[2] and "(raw input)" in lines[2]
        assert "[run " not in out and "logged by run" not in out  # run ids only on request

    def test_show_run_ids(self, tracker: Tracker, base: Path) -> None:
        raw = write(base / "data" / "seed.txt", "seed\n")
        results = build_chain(tracker, 2, first_input=raw)
        console = Console(record=True, width=400)
        tracker.print_lineage(results[-1].outputs["out"], show_run_ids=True, console=console)
        text = console.export_text()
        for r in results:
            assert f"[run {r.run.id}]" in text
        assert f"[logged by run {results[0].run.id}]" in text  # the raw seed

    def test_markup_in_names_is_printed_verbatim(self, tracker: Tracker, base: Path) -> None:
        with tracker.start_run("m_1", "[bold]model[/bold]"):
            art = tracker.log_output(write(base / "w" / "[red]x.csv", "x"), key="odd")
        console = Console(record=True, width=300)
        tracker.print_lineage(art, console=console)
        text = console.export_text()
        assert "[red]x.csv" in text and "[bold]model[/bold]" in text


# --------------------------------------------------------------------------- #
# Mermaid and DOT
# --------------------------------------------------------------------------- #


class TestDiagrams:
    def test_mermaid(self, tracker: Tracker, base: Path) -> None:
        arts = build_diamond(tracker, base)
        text = tracker.lineage_mermaid("merged")
        lines = text.splitlines()
        assert lines[0] == f"%% lineage of merged ({arts['merged'].id})"
        assert lines[1] == "flowchart LR"
        node_ids = {}
        for line in lines[2:]:
            m = re.match(r"    (\w+)(\(\[|\[)\"", line)
            if m:
                node_ids[m.group(1)] = line
        # 5 artifacts (raw, up, left, right, merged) and 4 runs, each once.
        assert len([n for n in node_ids if n.startswith("a_")]) == 5
        assert sorted(n for n in node_ids if n.startswith("r_")) == [
            "r_left_run",
            "r_merge_run",
            "r_right_run",
            "r_up_run",
        ]
        assert all(re.fullmatch(r"[A-Za-z0-9_]+", n) for n in node_ids)
        up = "a_" + arts["up"].id.hex[:12]
        assert f'    {up} -->|"source"| r_left_run' in lines
        assert f'    {up} -->|"source"| r_right_run' in lines
        assert f"    r_up_run --> {up}" in lines
        edges = [line for line in lines if "-->" in line]
        assert len(edges) == 4 + 5  # one per output, one per input link
        assert edges == sorted(edges)
        assert text == tracker.lineage_mermaid(arts["merged"].id)  # deterministic
        assert "class a_" + arts["merged"].id.hex[:12] + " root" in text

        td = tracker.lineage_mermaid("merged", direction="td", max_depth=1, show_run_ids=True)
        assert td.splitlines()[1] == "flowchart TD"
        assert "merge_run" in td and "up_run" not in td
        assert "class " in td and " truncated" in td
        with pytest.raises(ValueError, match="direction"):
            tracker.lineage_mermaid("merged", direction="sideways")

    def test_mermaid_escapes_and_sanitizes(self, tracker: Tracker, base: Path) -> None:
        with tracker.start_run("weird run-id #1", "m<odel>"):
            art = tracker.log_output(write(base / "w" / 'q"uo#te.csv', "x"), key="k")
        text = tracker.lineage_mermaid(art)
        assert "r_weird_run_id__1" in text
        assert "q#quot;uo#35;te.csv" in text
        assert "m#lt;odel#gt;" in text
        assert '"uo' not in text

    def test_dot(self, tracker: Tracker, base: Path) -> None:
        arts = build_diamond(tracker, base)
        text = tracker.lineage_dot(arts["merged"].id)
        assert text.startswith("digraph lineage {\n")
        assert text.rstrip().endswith("}")
        assert "rankdir=LR;" in text
        assert f'"a:{arts["up"].id}" -> "r:left_run" [label="source"];' in text
        assert f'"r:up_run" -> "a:{arts["up"].id}";' in text
        assert '"r:merge_run" [label="merge", shape=box' in text
        assert text.count(" -> ") == 9
        assert text.count("shape=ellipse") == 5
        assert text == tracker.lineage_dot("merged")
        assert "rankdir=TB;" in tracker.lineage_dot("merged", direction="TD")

    def test_dot_escapes(self, tracker: Tracker, base: Path) -> None:
        with tracker.start_run('r"1', "m\\odel"):
            art = tracker.log_output(write(base / "w" / 'q"uote.csv', "x"), key="k")
        text = tracker.lineage_dot(art, show_run_ids=True)
        assert '"r:r\\"1"' in text
        assert 'label="m\\\\odel\\nr\\"1"' in text
        assert 'q\\"uote.csv"' in text
