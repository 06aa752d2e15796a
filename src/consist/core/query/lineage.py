"""Lineage: where an artifact came from, as a tree, a rich printout, Mermaid or DOT.

The store fetches the whole upstream graph of an artifact in one query
(:class:`~consist.core.store.lineage_store.LineageStore`); this module turns
that graph into

* a JSON-friendly nested dict (:func:`build_tree`), the shape returned by
  ``Tracker.get_artifact_lineage``; for a run, :func:`run_graph` merges the
  upstream graphs of its inputs and :func:`build_run_tree` gives
  ``Tracker.get_run_lineage``'s shape;
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

from consist.core.store.lineage_store import (
    LineageArtifact,
    LineageRun,
    RunInputs,
    UpstreamGraph,
)

if TYPE_CHECKING:  # pragma: no cover
    from rich.text import Text
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
    _grow(graph, [(root, graph.root, 0)], max_depth=max_depth, max_nodes=max_nodes)
    return root


def _grow(
    graph: UpstreamGraph,
    roots: list[tuple[dict[str, Any], LineageArtifact, int]],
    *,
    max_depth: int | None,
    max_nodes: int,
) -> None:
    """Expand ``(node, artifact, depth)`` roots in place, as :func:`build_tree` describes."""
    expanded: set[uuid.UUID] = set()
    on_path: set[uuid.UUID] = set()
    count = len(roots)
    stack: list[Any] = [(node, art.id, depth) for node, art, depth in reversed(roots)]
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


# -- the lineage of a run ------------------------------------------------------------


def run_graph(
    found: RunInputs, graphs: list[UpstreamGraph], *, max_depth: int | None = None
) -> UpstreamGraph:
    """One graph for the lineage of a run: its inputs and everything upstream of them.

    ``graphs`` are the upstream graphs of the run's inputs, fetched with
    ``max_depth - 1`` (the run's inputs are at depth 1, as the inputs of an
    artifact's producing run are). The result has ``root_id=None`` and
    ``root_run_id`` = the run; its inputs are ``inputs[run.id]``.
    """
    artifacts: dict[uuid.UUID, LineageArtifact] = {}
    runs: dict[str, LineageRun] = {}
    producer: dict[uuid.UUID, str] = {}
    inputs: dict[str, tuple[tuple[uuid.UUID, str], ...]] = {}
    cache_hits: dict[uuid.UUID, int] = {}
    produced: set[uuid.UUID] = set()
    for graph in graphs:
        artifacts.update(graph.artifacts)
        runs.update(graph.runs)
        producer.update(graph.producer)
        inputs.update(graph.inputs)
        cache_hits.update(graph.cache_hits)
        produced |= graph.produced
    for input_id, input_key in found.inputs:
        if input_id not in artifacts:  # a link to a missing artifact row
            artifacts[input_id] = LineageArtifact(
                id=input_id,
                key=input_key,
                uri=None,
                driver=None,
                hash=None,
                table_path=None,
                array_path=None,
                run_id=None,
                created_at=None,
                missing=True,
            )
    run = found.run
    runs[run.id] = run
    inputs[run.id] = tuple(
        sorted(found.inputs, key=lambda p: (p[1], artifacts[p[0]].key, str(p[0])))
    )
    return UpstreamGraph(
        root_id=None,
        artifacts=artifacts,
        runs=runs,
        producer=producer,
        inputs=inputs,
        cache_hits=cache_hits,
        produced=frozenset(produced),
        max_depth=max_depth,
        root_run_id=run.id,
    )


def build_run_tree(
    graph: UpstreamGraph, *, max_depth: int | None = None, max_nodes: int = MAX_TREE_NODES
) -> dict[str, Any]:
    """The lineage of run ``graph.root_run_id`` as a nested, JSON-friendly dict.

    ``{"run": <run fields as in build_tree, plus "cache_source">, "inputs":
    [...]}``, one node per input of the run, carrying ``input_key`` and sorted
    by it, each node shaped and expanded as in :func:`build_tree` (the
    run's inputs are at depth 1: ``max_depth=0`` lists no inputs,
    ``max_depth=1`` lists them without expanding them).
    """
    assert graph.root_run_id is not None
    run = graph.runs[graph.root_run_id]
    fields = run_fields(run)
    del fields["cache_hits"]
    fields["cache_source"] = run.cache_source
    roots = []
    children: list[dict[str, Any]] = []
    if max_depth is None or max_depth > 0:
        for input_id, input_key in graph.inputs.get(run.id, ()):
            art = graph.artifacts[input_id]
            child = artifact_fields(art)
            child["input_key"] = input_key
            children.append(child)
            roots.append((child, art, 1))
    _grow(graph, roots, max_depth=max_depth, max_nodes=max_nodes)
    return {"run": fields, "inputs": children}


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


def _label(node: dict[str, Any], show_run_ids: bool) -> Text:
    from rich.text import Text

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


def _add_branches(pairs: list[tuple[dict[str, Any], Tree]], show_run_ids: bool) -> None:
    stack = list(pairs)
    while stack:
        node, branch = stack.pop()
        run = node.get("producing_run")
        if not run:
            continue
        for child in run["inputs"]:
            stack.append((child, branch.add(_label(child, show_run_ids))))


def rich_tree(tree: dict[str, Any], *, show_run_ids: bool = False) -> Tree:
    """A ``rich.tree.Tree`` of a lineage tree (one line per artifact).

    Each line shows the key (the consuming run's key first, when it differs
    from the artifact's own), the URI, and the producing run's model name
    and workflow dimensions; with ``show_run_ids`` also the id of that run
    (or, for a raw input, of the run that logged it).
    """
    from rich.tree import Tree

    root = Tree(_label(tree, show_run_ids), guide_style="dim")
    _add_branches([(tree, root)], show_run_ids)
    return root


def rich_run_tree(tree: dict[str, Any], *, show_run_ids: bool = False) -> Tree:
    """A ``rich.tree.Tree`` of a run's lineage (:func:`build_run_tree`).

    The root line names the run (id, model, workflow dimensions, a
    non-completed status or the run a cache hit was served from); below it
    one branch per input, drawn as :func:`rich_tree` draws artifacts.
    """
    from rich.text import Text
    from rich.tree import Tree

    run = tree["run"]
    head = Text()
    head.append(run["id"], style="bold magenta")
    head.append("  ")
    head.append(run["model_name"], style="green")
    details = _run_details(run)
    if details:
        head.append(" (" + ", ".join(details) + ")", style="dim")
    if run.get("cache_source"):
        head.append(f"  served from {run['cache_source']}", style="dim")
    if not tree["inputs"]:
        head.append("  (no inputs)", style="dim")
    root = Tree(head, guide_style="dim")
    pairs = [(child, root.add(_label(child, show_run_ids))) for child in tree["inputs"]]
    _add_branches(list(reversed(pairs)), show_run_ids)
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
    root_id: uuid.UUID | None
    root_run_id: str | None = None


def _view(graph: UpstreamGraph, max_depth: int | None) -> _View:
    """The nodes and edges within ``max_depth``, each artifact and run once."""
    depth: dict[uuid.UUID, int] = {}
    queue: deque[uuid.UUID] = deque()
    run_ids: set[str] = set()
    edges: set[tuple[str, str, str, str, str | None]] = set()
    truncated: set[uuid.UUID] = set()
    if graph.root_run_id is None:
        assert graph.root_id is not None
        depth[graph.root_id] = 0
        queue.append(graph.root_id)
    else:  # a run's lineage: its inputs are at depth 1
        run_id = graph.root_run_id
        run_ids.add(run_id)
        if max_depth is None or max_depth > 0:
            for input_id, input_key in graph.inputs.get(run_id, ()):
                own_key = graph.artifacts[input_id].key
                edges.add(
                    ("a", str(input_id), "r", run_id, input_key if input_key != own_key else None)
                )
                if input_id not in depth:
                    depth[input_id] = 1
                    queue.append(input_id)
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
        root_run_id=graph.root_run_id,
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
    ``truncated``); the requested artifact (or run) has class ``root``. Node ids are
    ``a_<first 12 hex digits of the artifact id>`` and ``r_<run id with
    anything but letters, digits and _ replaced by _>``. Output is sorted.
    """
    direction = validate_direction(direction)
    view = _view(graph, max_depth)
    ids = _mermaid_ids(view)
    out = [
        f"%% lineage of {_title(graph)}".translate(_MERMAID_ESCAPES),
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
    root_node = ("r", view.root_run_id) if view.root_run_id else ("a", str(view.root_id))
    out.append(f"    class {ids[root_node]} root")
    if view.truncated:
        names = sorted(ids[("a", str(a))] for a in view.truncated)
        out.append("    class " + ",".join(names) + " truncated")
    return "\n".join(out) + "\n"


def _title(graph: UpstreamGraph) -> str:
    if graph.root_run_id is not None:
        return f"run {graph.root_run_id}"
    return f"{graph.root.key} ({graph.root.id})"


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
    ``max_depth`` with more upstream are dashed; the requested artifact (or
    run) is bold. Every id and label is quoted and escaped; output is sorted.
    """
    rankdir = _DIRECTIONS[validate_direction(direction)]
    view = _view(graph, max_depth)
    out = [
        "digraph lineage {",
        f"    // lineage of {_title(graph)}".replace("\n", " "),
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
        style = "rounded,filled,bold" if run.id == view.root_run_id else "rounded,filled"
        out.append(
            f"    {_dot_quote('r:' + run.id)} [label={label}, shape=box, "
            f'style="{style}", fillcolor="#eef3fb"];'
        )
    for src_kind, src, dst_kind, dst, label in view.edges:
        attr = f" [label={_dot_quote(label)}]" if label else ""
        out.append(
            f"    {_dot_quote(src_kind + ':' + src)} -> {_dot_quote(dst_kind + ':' + dst)}{attr};"
        )
    out.append("}")
    return "\n".join(out) + "\n"


# -- inputs of two runs -----------------------------------------------------------------


def _input_fields(art: Any) -> dict[str, Any] | None:
    if art is None:
        return None
    return {"id": str(art.id), "uri": art.uri, "hash": art.hash}


def diff_inputs(
    a: dict[str, Any], b: dict[str, Any], *, include_equal: bool = False
) -> dict[str, dict[str, Any]]:
    """Compare the inputs of two runs key by key (by the key each run used).

    ``a`` and ``b`` map input keys to artifacts. Two inputs are equal when
    they are the same artifact or their content digests (``hash``) match.

    Returns
    -------
    dict
        ``{key: {"a": fields_or_None, "b": fields_or_None, "status": status}}``
        sorted by key; fields are the artifact's ``id``, ``uri`` and
        ``hash``; ``status`` is ``"changed"`` (other digest),
        ``"added"`` (only in ``b``), ``"removed"`` (only in ``a``) or, with
        ``include_equal``, ``"equal"``.
    """
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x is None:
            status = "added"
        elif y is None:
            status = "removed"
        elif x.id == y.id or (x.hash is not None and x.hash == y.hash):
            status = "equal"
        else:
            status = "changed"
        if status == "equal" and not include_equal:
            continue
        out[key] = {"a": _input_fields(x), "b": _input_fields(y), "status": status}
    return out
