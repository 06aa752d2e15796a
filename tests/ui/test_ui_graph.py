"""The lineage graph of the page: one node per artifact and run, a left-to-right layered layout.

The trees are shaped as ``Tracker.get_artifact_lineage`` returns them (the
API tests check the same on a recorded store); here the shapes a small
store rarely has: diamonds, cycles, wide layers.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from consist.ui.graph import lineage_graph


def art(key: str, producer: dict[str, Any] | str | None = "raw", **flags: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": f"id-{key}", "key": key, "uri": f"./{key}.parquet", **flags}
    if producer == "raw":
        node["producing_run"] = None
    elif producer is not None:
        node["producing_run"] = producer
    return node


def run(name: str, *inputs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": name, "model_name": name, "status": "completed", "inputs": list(inputs), **fields}


def check_layout(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nodes = {n["id"]: n for n in graph["nodes"]}
    for e in graph["edges"]:
        source, target = nodes[e["source"]], nodes[e["target"]]
        if not e["back"]:
            assert source["layer"] < target["layer"]
            assert source["x"] + source["w"] < target["x"]
    for a, b in combinations(nodes.values(), 2):  # no two boxes overlap
        apart_x = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
        apart_y = a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
        assert apart_x or apart_y, (a["id"], b["id"])
        assert a["y"] >= 0 and a["y"] + a["h"] <= graph["height"]
    return nodes


def test_diamond_draws_the_shared_upstream_once() -> None:
    zones = art("zones")
    base = art("base", run("synth", zones))
    left = art("left", run("split_left", base))
    right = art("right", run("split_right", base))
    # The tree repeats "base" and its producer under both branches.
    root = art("merged", run("merge", left, right))
    graph = lineage_graph(root)
    nodes = check_layout(graph)
    assert sorted(nodes) == sorted(
        [
            "a:id-zones",
            "r:synth",
            "a:id-base",
            "r:split_left",
            "r:split_right",
            "a:id-left",
            "a:id-right",
            "r:merge",
            "a:id-merged",
        ]
    )
    assert len(graph["edges"]) == 9
    assert nodes["r:split_left"]["layer"] == nodes["r:split_right"]["layer"] == 3
    assert nodes["a:id-merged"]["layer"] == 6 and graph["root"] == "a:id-merged"
    assert nodes["a:id-zones"]["raw_input"] is True


def test_a_cycle_is_one_back_edge_and_layers_stay_finite() -> None:
    # "state" is its own input (transitively): the tree flags the repeat as a cycle.
    state = {"id": "id-state", "key": "state", "uri": "./state.parquet"}
    again = {**state, "input_key": "state", "cycle": True}
    root = {**state, "producing_run": run("update", again)}
    graph = lineage_graph(root)
    nodes = check_layout(graph)
    assert set(nodes) == {"a:id-state", "r:update"}
    back = [e for e in graph["edges"] if e["back"]]
    assert len(back) == 1 and len(graph["edges"]) == 2
    assert nodes["a:id-state"]["cycle"] is True


def test_truncated_branches_are_flagged_unless_expanded_elsewhere() -> None:
    deep = art("deep", None, truncated=True)
    also = art("deep", run("maker", art("seed")))  # the same artifact, expanded here
    cut = art("cut", None, truncated=True)
    root = art("top", run("combine", deep, also, cut))
    nodes = check_layout(lineage_graph(root))
    assert nodes["a:id-deep"]["truncated"] is False
    assert nodes["a:id-cut"]["truncated"] is True


def test_input_keys_label_edges_and_run_dimensions_label_runs() -> None:
    persons = art("persons")
    persons["input_key"] = "population"
    root = art("trips", run("demand", persons, year=2030, iteration=2))
    graph = lineage_graph(root)
    nodes = check_layout(graph)
    labels = {(e["source"], e["target"]): e["label"] for e in graph["edges"]}
    assert labels[("a:id-persons", "r:demand")] == "population"
    assert labels[("r:demand", "a:id-trips")] is None
    assert nodes["r:demand"]["detail"] == "year 2030, iteration 2"


def test_run_rooted_tree() -> None:
    tree = {
        "run": {"id": "failed_step", "model_name": "solve", "status": "failed"},
        "inputs": [art("skims", run("assign", art("network")), input_key="skims")],
    }
    graph = lineage_graph(tree)
    nodes = check_layout(graph)
    assert graph["root"] == "r:failed_step" and nodes["r:failed_step"]["status"] == "failed"
    assert nodes["r:failed_step"]["layer"] == 3


def test_a_wide_layer_is_ordered_to_avoid_crossings() -> None:
    # Two producers, each with its own inputs; the consumer reads both outputs.
    a_inputs = [art(f"a{i}") for i in range(3)]
    b_inputs = [art(f"b{i}") for i in range(3)]
    root = art("out", run("join", art("A", run("ra", *a_inputs)), art("B", run("rb", *b_inputs))))
    nodes = check_layout(lineage_graph(root))
    first_column = sorted((n for n in nodes.values() if n["layer"] == 0), key=lambda n: n["y"])
    keys = [n["label"] for n in first_column]
    # Inputs of one producer sit together (no edge of "ra" crosses one of "rb").
    assert keys.index("a2") < keys.index("b0") or keys.index("b2") < keys.index("a0")
    assert len(keys) == 6


def test_raw_inputs_sit_next_to_the_run_that_read_them() -> None:
    # A chain of iterations, each also reading a raw file of its own.
    state = art("seed")
    for i in range(20):
        state = art(f"state{i}", run(f"iterate{i}", state, art(f"extra{i}"), iteration=i))
    graph = lineage_graph(state)
    nodes = check_layout(graph)
    for i in range(20):
        assert nodes[f"a:id-extra{i}"]["layer"] == nodes[f"r:iterate{i}"]["layer"] - 1
    # Two nodes per layer at most: the drawing stays two boxes tall, however long the chain.
    assert graph["height"] < 3 * (nodes["a:id-seed"]["h"] + 30)
