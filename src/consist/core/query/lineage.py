"""Lineage: where an artifact came from, as a tree, a rich printout, Mermaid or DOT.

The store fetches the whole upstream graph of an artifact in one query
(:class:`~consist.core.store.lineage_store.LineageStore`); this module turns
that graph into

* a JSON-friendly nested dict (:func:`build_tree`), the shape returned by
  ``Tracker.get_artifact_lineage``;
* a ``rich`` tree for the terminal (:func:`rich_tree`);
* Mermaid flowchart text and Graphviz DOT text (:func:`to_mermaid`,
  :func:`to_dot`), deterministic so they can be diffed and pasted into a
  notebook or a paper.

Depth. The requested artifact is at depth 0. An artifact at depth ``d`` is
*expanded* when ``max_depth`` is None or ``d < max_depth``: its producing run
is attached and that run's inputs appear at depth ``d + 1``. So
``max_depth=0`` gives the artifact alone, ``max_depth=1`` adds its producing
run and the run's direct inputs (not expanded), and so on.

Everything here is iterative (no recursion), so chains thousands of runs deep
are fine.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from consist.core.store.lineage_store import LineageArtifact, LineageRun, UpstreamGraph

if TYPE_CHECKING:  # pragma: no cover
    from rich.tree import Tree

# Once a tree holds this many nodes, an artifact that was already expanded
# elsewhere in it is not expanded again (it is marked ``"shared": True``):
# repeated diamonds would otherwise grow the tree exponentially.
MAX_TREE_NODES = 10_000

_DIRECTIONS = {"LR": "LR", "RL": "RL", "TB": "TB", "TD": "TB", "BT": "BT"}


def validate_max_depth(max_depth: Any) -> int | None:
    """``max_depth`` as an int >= 0 or None.

    Raises
    ------
    TypeError
        If it is not an integer (or None); ``True``/``False`` are rejected.
    ValueError
        If it is negative.
    """
    if max_depth is None:
        return None
    try:
        if isinstance(max_depth, bool):
            raise TypeError
        value = operator.index(max_depth)  # int, numpy integers, ...
    except TypeError:
        raise TypeError(
            f"max_depth must be an int >= 0 or None, got {type(max_depth).__name__}: {max_depth!r}"
        ) from None
    if value < 0:
        raise ValueError(f"max_depth must be >= 0 (0 returns only the artifact), got {value}")
    return value


def validate_direction(direction: Any) -> str:
    """A layout direction (``LR``, ``RL``, ``TB``/``TD``, ``BT``), upper-cased.

    Raises
    ------
    ValueError
        For any other value.
    """
    value = str(direction).upper() if isinstance(direction, str) else None
    if value not in _DIRECTIONS:
        raise ValueError(f"direction must be one of LR, RL, TB, TD, BT; got {direction!r}")
    return value


# -- the nested dict ------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def artifact_fields(art: LineageArtifact) -> dict[str, Any]:
    """JSON-friendly fields of an artifact node."""
    out: dict[str, Any] = {
        "id": str(art.id),
        "key": art.key,
        "uri": art.uri,
        "driver": art.driver,
        "hash": art.hash,
        "run_id": art.run_id,
        "created_at": _iso(art.created_at),
    }
    if art.table_path is not None:
        out["table_path"] = art.table_path
    if art.array_path is not None:
        out["array_path"] = art.array_path
    if art.missing:
        out["missing"] = True
    return out


def run_fields(run: LineageRun, cache_hits: int = 0) -> dict[str, Any]:
    """JSON-friendly fields of a producing run."""
    return {
        "id": run.id,
        "model_name": run.model_name,
        "description": run.description,
        "status": run.status,
        "year": run.year,
        "iteration": run.iteration,
        "stage": run.stage,
        "phase": run.phase,
        "tags": list(run.tags),
        "created_at": _iso(run.created_at),
        "ended_at": _iso(run.ended_at),
        "cache_hit": run.cache_hit,
        "cache_hits": cache_hits,
    }


_EXIT = object()


def build_tree(
    graph: UpstreamGraph, *, max_depth: int | None = None, max_nodes: int = MAX_TREE_NODES
) -> dict[str, Any]:
    """The lineage of ``graph.root`` as a nested, JSON-friendly dict.

    Every node holds the artifact's fields (``id`` as a string, ``key``,
    ``uri``, ``driver``, ``hash``, ``run_id`` = the run that first logged it,
    ``created_at`` in ISO 8601; ``table_path``/``array_path`` when set). An
    input node also holds ``input_key``: the key under which the consuming
    run used it. Then, for an expanded node:

    * ``"producing_run"``: None for a raw input (no run output it), else the
      run's fields (``id``, ``model_name``, ``description``, ``status``,
      ``year``, ``iteration``, ``stage``, ``phase``, ``tags``,
      ``created_at``, ``ended_at``, ``cache_hit``; ``cache_hits`` = later
      cache-hit runs that were handed this artifact) and ``"inputs"``: the
      nodes of that run's inputs, sorted by ``input_key``.

    A node that is not expanded has no ``"producing_run"`` key and says why:

    * ``"truncated": True``: it is at ``max_depth`` and has a producing run;
    * ``"cycle": True``: it already appears on the path from the root to
      here (an artifact that is, transitively, its own input);
    * ``"shared": True``: the tree already holds ``max_nodes`` nodes and
      this artifact is expanded elsewhere in it.

    A raw artifact at ``max_depth`` carries none of these flags.

    Parameters
    ----------
    graph:
        The upstream graph fetched by the store.
    max_depth:
        See the module docstring; None expands everything.
    max_nodes:
        Node budget after which repeated artifacts are no longer re-expanded
        (0: never re-expand an artifact, as ``print_lineage`` does).
    """
    root = artifact_fields(graph.root)
    expanded: set[uuid.UUID] = set()
    on_path: set[uuid.UUID] = set()
    count = 1
    stack: list[Any] = [(root, graph.root_id, 0)]
    while stack:
        item = stack.pop()
        if item[0] is _EXIT:
            on_path.discard(item[1])
            continue
        node, artifact_id, depth = item
        if artifact_id in on_path:
            node["cycle"] = True
            continue
        if max_depth is not None and depth >= max_depth:
            if artifact_id in graph.produced:
                node["truncated"] = True
            continue
        run_id = graph.producer.get(artifact_id)
        if run_id is None:
            node["producing_run"] = None
            continue
        if artifact_id in expanded and count >= max_nodes:
            node["shared"] = True
            continue
        expanded.add(artifact_id)
        run = run_fields(graph.runs[run_id], graph.cache_hits.get(artifact_id, 0))
        children: list[dict[str, Any]] = []
        run["inputs"] = children
        node["producing_run"] = run
        on_path.add(artifact_id)
        stack.append((_EXIT, artifact_id))
        pending = []
        for input_id, input_key in graph.inputs.get(run_id, ()):
            child = artifact_fields(graph.artifacts[input_id])
            child["input_key"] = input_key
            children.append(child)
            pending.append((child, input_id, depth + 1))
        count += len(pending)
        stack.extend(reversed(pending))
    return root


def iter_tree(tree: dict[str, Any]) -> Iterator[tuple[dict[str, Any], int]]:
    """Pre-order ``(node, depth)`` pairs of a lineage tree, iteratively."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        run = node.get("producing_run")
        if run:
            stack.extend((child, depth + 1) for child in reversed(run["inputs"]))


# -- rich ---------------------------------------------------------------------------


def _run_details(run: dict[str, Any] | LineageRun) -> list[str]:
    get = run.get if isinstance(run, dict) else lambda name: getattr(run, name)
    details = []
    for name in ("year", "iteration", "stage", "phase"):
        value = get(name)
        if value is not None:
            details.append(f"{name}={value}")
    if get("status") != "completed":
        details.append(str(get("status")))
    if get("cache_hit"):
        details.append("cache hit")
    return details


def rich_tree(tree: dict[str, Any], *, show_run_ids: bool = False) -> Tree:
    """A ``rich.tree.Tree`` of a lineage tree (one line per artifact).

    Each line shows the key (the consuming run's key first, when it differs
    from the artifact's own), the URI, and the producing run's model name
    and workflow dimensions; with ``show_run_ids`` also the id of that run
    (or, for a raw input, of the run that logged it).
    """
    from rich.text import Text
    from rich.tree import Tree

    def label(node: dict[str, Any]) -> Text:
        text = Text()
        input_key = node.get("input_key")
        if input_key is not None and input_key != node["key"]:
            text.append(input_key, style="bold")
            text.append(f" ({node['key']})", style="bold dim")
        else:
            text.append(node["key"], style="bold")
        text.append("  ")
        text.append(node["uri"] or "<missing artifact>", style="cyan")
        run = node.get("producing_run")
        if run:
            text.append("  <- ")
            text.append(run["model_name"], style="green")
            details = _run_details(run)
            if details:
                text.append(" (" + ", ".join(details) + ")", style="dim")
            if show_run_ids:
                text.append(f"  [run {run['id']}]", style="magenta")
        elif "producing_run" in node:
            text.append("  (raw input)", style="dim")
            if show_run_ids and node.get("run_id"):
                text.append(f"  [logged by run {node['run_id']}]", style="magenta")
        if node.get("cycle"):
            text.append("  (cycle: already on this path)", style="yellow")
        if node.get("truncated"):
            text.append("  (more upstream beyond max_depth)", style="yellow")
        if node.get("shared"):
            text.append("  (upstream shown above)", style="yellow")
        return text

    root = Tree(label(tree), guide_style="dim")
    stack = [(tree, root)]
    while stack:
        node, branch = stack.pop()
        run = node.get("producing_run")
        if not run:
            continue
        for child in run["inputs"]:
            stack.append((child, branch.add(label(child))))
    return root


def rich_tree_width(tree: Tree) -> int:
    """Columns needed to print ``tree`` without wrapping any line."""
    width = 0
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        label = node.label
        cells = label.cell_len if hasattr(label, "cell_len") else len(str(label))
        width = max(width, 4 * depth + cells)
        stack.extend((child, depth + 1) for child in node.children)
    return width


# -- graph views (Mermaid, DOT) -----------------------------------------------------------


@dataclass(frozen=True)
class _View:
    artifacts: list[LineageArtifact]  # sorted
    runs: list[LineageRun]  # sorted
    # (source kind, source id, target kind, target id, label); kinds "a"/"r"
    edges: list[tuple[str, str, str, str, str | None]]
    truncated: set[uuid.UUID]
    root_id: uuid.UUID


def _view(graph: UpstreamGraph, max_depth: int | None) -> _View:
    """The nodes and edges within ``max_depth``, each artifact and run once."""
    depth = {graph.root_id: 0}
    queue = deque([graph.root_id])
    run_ids: set[str] = set()
    edges: set[tuple[str, str, str, str, str | None]] = set()
    truncated: set[uuid.UUID] = set()
    while queue:
        artifact_id = queue.popleft()
        d = depth[artifact_id]
        if max_depth is not None and d >= max_depth:
            if artifact_id in graph.produced:
                truncated.add(artifact_id)
            continue
        run_id = graph.producer.get(artifact_id)
        if run_id is None:
            continue
        run_ids.add(run_id)
        edges.add(("r", run_id, "a", str(artifact_id), None))
        for input_id, input_key in graph.inputs.get(run_id, ()):
            own_key = graph.artifacts[input_id].key
            label = input_key if input_key != own_key else None
            edges.add(("a", str(input_id), "r", run_id, label))
            if input_id not in depth:
                depth[input_id] = d + 1
                queue.append(input_id)
    artifacts = sorted(
        (graph.artifacts[a] for a in depth), key=lambda a: (a.key, a.uri or "", str(a.id))
    )
    runs = sorted((graph.runs[r] for r in run_ids), key=lambda r: (r.model_name, r.id))
    return _View(
        artifacts=artifacts,
        runs=runs,
        edges=sorted(edges, key=lambda e: (e[0], e[1], e[2], e[3], e[4] or "")),
        truncated=truncated,
        root_id=graph.root_id,
    )


def _artifact_lines(art: LineageArtifact) -> list[str]:
    lines = [art.key, art.uri or "<missing artifact>"]
    inner = art.table_path or art.array_path
    if inner:
        lines[-1] += f" :: {inner}"
    return lines


def _run_lines(run: LineageRun, show_run_ids: bool) -> list[str]:
    lines = [run.model_name]
    details = _run_details(run)
    if details:
        lines.append(", ".join(details))
    if show_run_ids:
        lines.append(run.id)
    return lines


_MERMAID_ESCAPES = str.maketrans(
    {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "`": "#96;", "\n": " ", "\r": " "}
)


def _mermaid_text(lines: list[str]) -> str:
    return "<br/>".join(line.translate(_MERMAID_ESCAPES) for line in lines)


def _mermaid_ids(view: _View) -> dict[tuple[str, str], str]:
    ids: dict[tuple[str, str], str] = {}
    taken: set[str] = set()

    def assign(kind: str, raw: str, candidate: str) -> None:
        name, n = candidate, 2
        while name in taken:
            name, n = f"{candidate}_{n}", n + 1
        taken.add(name)
        ids[(kind, raw)] = name

    for art in view.artifacts:
        assign("a", str(art.id), "a_" + art.id.hex[:12])
    for run in view.runs:
        assign("r", run.id, "r_" + re.sub(r"[^A-Za-z0-9_]", "_", run.id))
    return ids


def to_mermaid(
    graph: UpstreamGraph,
    *,
    max_depth: int | None = None,
    direction: str = "LR",
    show_run_ids: bool = False,
) -> str:
    """Mermaid ``flowchart`` text of the lineage: artifacts and runs as nodes.

    Artifacts are stadium-shaped, runs rectangles; edges go from each input
    artifact to the run that consumed it (labelled with the run's key when
    it differs from the artifact's) and from the run to its output. Nodes
    beyond ``max_depth`` that have more upstream are dashed (class
    ``truncated``); the requested artifact has class ``root``. Node ids are
    ``a_<first 12 hex digits of the artifact id>`` and ``r_<run id with
    anything but letters, digits and _ replaced by _>``. Output is sorted.
    """
    direction = validate_direction(direction)
    view = _view(graph, max_depth)
    ids = _mermaid_ids(view)
    root = graph.root
    out = [
        f"%% lineage of {root.key} ({root.id})".translate(_MERMAID_ESCAPES),
        f"flowchart {direction}",
    ]
    for art in view.artifacts:
        out.append(f'    {ids[("a", str(art.id))]}(["{_mermaid_text(_artifact_lines(art))}"])')
    for run in view.runs:
        out.append(f'    {ids[("r", run.id)]}["{_mermaid_text(_run_lines(run, show_run_ids))}"]')
    for src_kind, src, dst_kind, dst, label in view.edges:
        arrow = f' -->|"{_mermaid_text([label])}"| ' if label else " --> "
        out.append(f"    {ids[(src_kind, src)]}{arrow}{ids[(dst_kind, dst)]}")
    out.append("    classDef run fill:#eef3fb,stroke:#4a6fa5")
    out.append("    classDef root stroke-width:3px")
    out.append("    classDef truncated stroke-dasharray:5 5")
    if view.runs:
        out.append("    class " + ",".join(ids[("r", r.id)] for r in view.runs) + " run")
    out.append(f"    class {ids[('a', str(view.root_id))]} root")
    if view.truncated:
        names = sorted(ids[("a", str(a))] for a in view.truncated)
        out.append("    class " + ",".join(names) + " truncated")
    return "\n".join(out) + "\n"


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def _dot_label(lines: list[str]) -> str:
    return _dot_quote("\n".join(lines))


def to_dot(
    graph: UpstreamGraph,
    *,
    max_depth: int | None = None,
    direction: str = "LR",
    show_run_ids: bool = False,
) -> str:
    """Graphviz DOT text of the lineage (``digraph lineage { ... }``).

    Artifacts are ellipses (id ``"a:<uuid>"``), runs boxes (id
    ``"r:<run id>"``); edges as in :func:`to_mermaid`. Nodes beyond
    ``max_depth`` with more upstream are dashed; the requested artifact is
    bold. Every id and label is quoted and escaped; output is sorted.
    """
    rankdir = _DIRECTIONS[validate_direction(direction)]
    view = _view(graph, max_depth)
    root = graph.root
    out = [
        "digraph lineage {",
        f"    // lineage of {root.key} ({root.id})".replace("\n", " "),
        f"    rankdir={rankdir};",
        '    node [fontname="Helvetica", fontsize=10];',
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    for art in view.artifacts:
        attrs = [f"label={_dot_label(_artifact_lines(art))}", "shape=ellipse"]
        styles = []
        if art.id in view.truncated:
            styles.append("dashed")
        if art.id == view.root_id:
            styles.append("bold")
        if styles:
            attrs.append(f'style="{",".join(styles)}"')
        out.append(f"    {_dot_quote('a:' + str(art.id))} [{', '.join(attrs)}];")
    for run in view.runs:
        label = _dot_label(_run_lines(run, show_run_ids))
        out.append(
            f"    {_dot_quote('r:' + run.id)} [label={label}, shape=box, "
            'style="rounded,filled", fillcolor="#eef3fb"];'
        )
    for src_kind, src, dst_kind, dst, label in view.edges:
        attr = f" [label={_dot_quote(label)}]" if label else ""
        out.append(
            f"    {_dot_quote(src_kind + ':' + src)} -> {_dot_quote(dst_kind + ':' + dst)}{attr};"
        )
    out.append("}")
    return "\n".join(out) + "\n"
