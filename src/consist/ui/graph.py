"""A lineage tree as a drawable graph: nodes, edges and a layered left-to-right layout.

The tree comes from ``Tracker.get_artifact_lineage`` / ``get_run_lineage``
(nested dicts in which a shared upstream node can appear several times);
here every artifact and run becomes one node (``"a:<uuid>"``, ``"r:<run
id>"``), an edge runs from an input artifact to the run that read it and
from a run to its output. The layout is a small layered ("Sugiyama") one:

1. edges that close a cycle are set aside (drawn, but not used for layers);
2. each node's layer comes from its longest path to the root (a sink), so
   every edge points right and an input sits next to the run that read it;
3. within a layer, nodes are ordered by the mean position of their
   neighbours (a few down-and-up sweeps reduce crossings);
4. layers become columns, positions rows, each column centred.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

NODE_WIDTH = 190
NODE_HEIGHT = 46
GAP_X = 56
GAP_Y = 22
MARGIN = 16
SWEEPS = 4


def lineage_graph(tree: dict[str, Any]) -> dict[str, Any]:
    """Nodes and edges of a lineage tree (artifact-rooted or run-rooted), laid out.

    Returns
    -------
    dict
        ``{"root": node_id, "nodes": [...], "edges": [...], "width", "height",
        "truncated": bool}``. A node: ``id``, ``kind`` (``"artifact"`` or
        ``"run"``), ``ref`` (artifact UUID or run id), ``label``, ``detail``,
        ``layer``, ``x``, ``y``, ``w``, ``h``, flags (``truncated``,
        ``cycle``, ``raw_input``) and, for a run, ``status`` and
        ``cache_hit``. An edge: ``source``, ``target``, ``label`` (the key
        the run used, when it differs from the artifact's), ``back`` (closes
        a cycle).
    """
    builder = _Builder()
    if "run" in tree and "inputs" in tree and "key" not in tree:
        root = builder.run(tree["run"])
        builder.inputs_of(root, tree["run"], tree["inputs"])
    else:
        root = builder.artifact(tree)
    builder.expand()
    return layout(root, builder.nodes, builder.edges)


class _Builder:
    """Walks the tree iteratively, merging repeated nodes into one."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str], dict[str, Any]] = {}
        self.pending: list[dict[str, Any]] = []
        self.expanded_runs: set[str] = set()
        self.cut: set[str] = set()  # artifacts left unexpanded at max_depth somewhere
        self.produced: set[str] = set()  # artifacts whose producing run is drawn

    def artifact(self, node: dict[str, Any]) -> str:
        node_id = "a:" + str(node["id"])
        found = self.nodes.get(node_id)
        if found is None:
            found = self.nodes[node_id] = {
                "id": node_id,
                "kind": "artifact",
                "ref": str(node["id"]),
                "label": node.get("key") or str(node["id"]),
                "detail": node.get("uri") or "",
                "driver": node.get("driver"),
                "truncated": False,
                "cycle": False,
                "raw_input": False,
            }
        if "producing_run" in node:
            if node["producing_run"] is None:
                found["raw_input"] = True
            else:
                self.pending.append(node)
        elif node.get("truncated"):
            self.cut.add(node_id)
        if node.get("cycle"):
            found["cycle"] = True
        return node_id

    def run(self, run: dict[str, Any]) -> str:
        node_id = "r:" + str(run["id"])
        if node_id not in self.nodes:
            dims = [
                f"{name} {run[name]}"
                for name in ("year", "iteration", "stage", "phase")
                if run.get(name) is not None
            ]
            self.nodes[node_id] = {
                "id": node_id,
                "kind": "run",
                "ref": str(run["id"]),
                "label": run.get("model_name") or str(run["id"]),
                "detail": ", ".join(dims) or str(run["id"]),
                "status": run.get("status"),
                "cache_hit": bool(run.get("cache_hit")),
            }
        return node_id

    def inputs_of(self, run_node: str, run: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
        if run_node in self.expanded_runs:
            return
        self.expanded_runs.add(run_node)
        for child in inputs:
            child_id = self.artifact(child)
            used = child.get("input_key")
            label = used if used and used != child.get("key") else None
            self.edges.setdefault((child_id, run_node), {"label": label})

    def expand(self) -> None:
        while self.pending:
            node = self.pending.pop()
            run = node["producing_run"]
            run_node = self.run(run)
            artifact_id = "a:" + str(node["id"])
            self.edges.setdefault((run_node, artifact_id), {"label": None})
            self.produced.add(artifact_id)
            self.inputs_of(run_node, run, run.get("inputs") or [])
        for node_id in self.cut - self.produced:
            self.nodes[node_id]["truncated"] = True


def layout(
    root: str, nodes: dict[str, dict[str, Any]], edge_map: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """Place ``nodes`` in columns by longest path from a source (see the module docstring)."""
    order = sorted(nodes)  # deterministic: same store, same picture
    succ: dict[str, list[str]] = defaultdict(list)
    for source, target in sorted(edge_map):
        succ[source].append(target)
    back = _back_edges(order, succ)
    forward = [(s, t) for (s, t) in sorted(edge_map) if (s, t) not in back]
    layer = _longest_path_layers(order, forward)
    columns: dict[int, list[str]] = defaultdict(list)
    for node_id in order:
        columns[layer[node_id]].append(node_id)
    _reduce_crossings(columns, forward)
    tallest = max((len(c) for c in columns.values()), default=1)
    height = 2 * MARGIN + tallest * NODE_HEIGHT + (tallest - 1) * GAP_Y
    for index, column in columns.items():
        used = len(column) * NODE_HEIGHT + (len(column) - 1) * GAP_Y
        top = MARGIN + (height - 2 * MARGIN - used) / 2
        for position, node_id in enumerate(column):
            node = nodes[node_id]
            node.update(
                layer=index,
                x=MARGIN + index * (NODE_WIDTH + GAP_X),
                y=round(top + position * (NODE_HEIGHT + GAP_Y), 1),
                w=NODE_WIDTH,
                h=NODE_HEIGHT,
            )
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * GAP_X
    edges = [
        {"source": s, "target": t, "label": data["label"], "back": (s, t) in back}
        for (s, t), data in sorted(edge_map.items())
    ]
    return {
        "root": root,
        "nodes": [nodes[n] for n in order],
        "edges": edges,
        "width": width,
        "height": height,
        "truncated": any(n.get("truncated") for n in nodes.values()),
    }


def _back_edges(order: list[str], succ: dict[str, list[str]]) -> set[tuple[str, str]]:
    """Edges to a node still on the depth-first path (they close a cycle); iterative."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    back: set[tuple[str, str]] = set()
    for start in order:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(succ.get(start, ())))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(succ.get(child, ()))))
    return back


def _longest_path_layers(order: list[str], forward: list[tuple[str, str]]) -> dict[str, int]:
    """Layer of each node, as far right as its edges allow.

    A node's distance to a sink is its longest path to a node without
    outgoing edges (the root of an upstream lineage); its layer is the
    largest distance minus its own. Every edge then points right, and a raw
    input sits just left of the run that read it (not in one tall first
    column with every other source).
    """
    outdegree = {n: 0 for n in order}
    preds: dict[str, list[str]] = defaultdict(list)
    for source, target in forward:
        preds[target].append(source)
        outdegree[source] += 1
    distance = {n: 0 for n in order}
    ready = [n for n in order if outdegree[n] == 0]
    while ready:
        node = ready.pop()
        for source in preds[node]:
            distance[source] = max(distance[source], distance[node] + 1)
            outdegree[source] -= 1
            if outdegree[source] == 0:
                ready.append(source)
    deepest = max(distance.values(), default=0)
    return {n: deepest - distance[n] for n in order}


def _reduce_crossings(columns: dict[int, list[str]], forward: list[tuple[str, str]]) -> None:
    """Reorder each column by the barycentre of its neighbours in the previous one."""
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for source, target in forward:
        preds[target].append(source)
        succs[source].append(target)
    indices = sorted(columns)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        walk = indices[1:] if downward else list(reversed(indices[:-1]))
        for index in walk:
            neighbour_col = columns.get(index - 1 if downward else index + 1, [])
            place = {n: i for i, n in enumerate(neighbour_col)}
            links = preds if downward else succs
            current = {n: i for i, n in enumerate(columns[index])}

            columns[index].sort(key=lambda n, p=place, ln=links, c=current: _centre(n, p, ln, c))


def _centre(
    node: str, place: dict[str, int], links: dict[str, list[str]], current: dict[str, int]
) -> tuple[float, int]:
    """Sort key: mean position of the node's neighbours (its own position when it has none)."""
    linked = [place[n] for n in links[node] if n in place]
    return (sum(linked) / len(linked) if linked else current[node], current[node])
