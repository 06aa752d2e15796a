"""SQL for lineage: the whole upstream graph of an artifact in a few statements.

The graph is walked over ``run_artifact_link`` seen as edges between UUID
nodes (schema migration 7): an output link is an edge from the artifact to
its run's node, an input link an edge from the run's node to the artifact
(``src``/``dst``; a run's node is :func:`run_node`). The unbounded walk is one
recursive CTE over those two UUID columns, collecting the nodes reached from
the root; ``UNION`` (not ``UNION ALL``) discards nodes already reached, so the
walk terminates on cycles, and shared upstream artifacts (diamonds) are
walked once. A walk bounded by ``max_depth`` carries the hop count instead.
The links leaving the reached nodes, their runs and the reached artifacts
are then read through indexes, in one more statement.

Why this shape: DuckDB has no index nested-loop join, so a recursive CTE
builds one hash table over every row of the table it joins (once per
statement), whatever the depth of the chain; a statement per level instead
costs about 0.3 ms even when it is a single index lookup. The old walk joined
the link table twice per level on ``artifact_id`` and on the ``run_id``
string (two hash tables, one keyed by strings, of every link): about 11 ms
beside 200,000 links. One hash table of two UUID columns costs about 40% of
that; joining only the links of the root's *lineage group* (schema 10,
:mod:`consist.core.store.lineage_groups`: every link a walk from the root
can reach carries the same label) makes the hash table as small as the
graph, and everything read after the walk follows the size of the graph too
(measured in ``benchmarks/store_at_scale.py``). While some link has no label
(written by hand), the walk joins the whole table, as before. So a lineage
costs three statements: that check, the walk, and the read of what it
reached.

The walk follows *every* run that linked an artifact as output (the original
producer and any later cache hits); choosing the producer happens here in
Python, on the few candidate rows: the earliest completed run, falling back
to the earliest run of any status when no completed run logged it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consist.core.store.connection import DuckDBConnectionManager
from consist.core.store.lineage_groups import ALL_LABELLED_SQL, GROUP_EDGES_CTE
from consist.core.store.rows import from_db_time


def run_node(run_id: str) -> uuid.UUID:
    """The lineage node of a run: the UUID spelled by the MD5 digest of its id.

    SQL computes the same value as ``CAST(md5(run_id) AS UUID)`` (migration 7
    fills existing links with it). A run id can never be mistaken for an
    artifact id: artifact ids are random UUIDs.

    Parameters
    ----------
    run_id:
        The run's id.

    Returns
    -------
    uuid.UUID
        The node id of the run in ``run_artifact_link.src``/``dst``.
    """
    return uuid.UUID(hashlib.md5(run_id.encode("utf-8"), usedforsecurity=False).hexdigest())


def link_nodes(run_id: str, artifact_id: uuid.UUID | str, direction: str) -> tuple[str, str]:
    """``(src, dst)`` of a link row: output artifact -> its run; run -> its input artifact.

    Every writer of ``run_artifact_link`` stores these with the row; lineage
    walks them.

    Parameters
    ----------
    run_id, artifact_id, direction:
        The link's key columns (``direction`` is ``"input"`` or ``"output"``).

    Returns
    -------
    tuple[str, str]
        The ``src`` and ``dst`` node ids, as UUID strings.
    """
    node = str(run_node(run_id))
    if direction == "output":
        return str(artifact_id), node
    return node, str(artifact_id)


# The same pair in SQL, for statements that fill rows already written
# (migration 7; a merged shard written before it).
LINK_SRC_SQL = "CASE WHEN direction = 'output' THEN artifact_id ELSE CAST(md5(run_id) AS UUID) END"
LINK_DST_SQL = "CASE WHEN direction = 'output' THEN CAST(md5(run_id) AS UUID) ELSE artifact_id END"


@dataclass(frozen=True, slots=True)
class LineageArtifact:
    """The artifact columns lineage shows (no metadata blobs)."""

    id: uuid.UUID
    key: str
    uri: str | None
    driver: str | None
    hash: str | None
    table_path: str | None
    array_path: str | None
    run_id: str | None
    created_at: datetime | None
    missing: bool = False  # a link points at an artifact row that does not exist


@dataclass(frozen=True, slots=True)
class LineageRun:
    """The run columns lineage shows (``cache_hit``/``cache_source`` from its meta)."""

    id: str
    model_name: str
    description: str | None
    status: str
    tags: tuple[str, ...]
    year: int | None
    iteration: int | None
    stage: str | None
    phase: str | None
    created_at: datetime | None
    ended_at: datetime | None
    cache_hit: bool
    cache_source: str | None


@dataclass(frozen=True)
class UpstreamGraph:
    """Everything upstream of one artifact, as fetched from the store.

    Attributes
    ----------
    root_id:
        The artifact whose lineage was requested (None for a run's lineage).
    artifacts:
        Every artifact reached (the root and all inputs walked).
    runs:
        Every producing run reached, by id.
    producer:
        Artifact id -> id of its producing run (absent for raw inputs and
        for artifacts beyond ``max_depth``).
    inputs:
        Producing run id -> ``(input artifact id, key the run used)`` pairs,
        sorted by key, then artifact key, then id.
    cache_hits:
        Artifact id -> number of later cache-hit runs that were handed it
        as an output.
    produced:
        Artifacts known to have a producing run, including artifacts beyond
        ``max_depth`` whose producer was not fetched.
    max_depth:
        The depth bound the walk was fetched with (``None``: everything
        upstream was fetched).
    root_run_id:
        For the lineage of a run (not of an artifact): that run, whose inputs
        are ``inputs[root_run_id]``; ``root_id`` is then None.
    """

    root_id: uuid.UUID | None
    artifacts: Mapping[uuid.UUID, LineageArtifact]
    runs: Mapping[str, LineageRun]
    producer: Mapping[uuid.UUID, str]
    inputs: Mapping[str, tuple[tuple[uuid.UUID, str], ...]]
    cache_hits: Mapping[uuid.UUID, int] = field(default_factory=dict)
    produced: frozenset[uuid.UUID] = frozenset()
    max_depth: int | None = None
    root_run_id: str | None = None

    @property
    def root(self) -> LineageArtifact:
        """The artifact whose lineage was requested.

        Raises
        ------
        ValueError
            For the lineage of a run (``root_run_id`` set).
        """
        if self.root_id is None:
            raise ValueError(f"the lineage of run {self.root_run_id!r} has no root artifact")
        return self.artifacts[self.root_id]


# The unbounded walk: every node reached from the root artifact along
# ``src -> dst`` (artifact -> each run that output it -> that run's inputs ->
# ...). One hash table of two UUID columns; see the module docstring.
# ``artifact`` tells artifacts from runs' nodes (they alternate along a walk).
# ``{links}`` is ``edges``, the links of the root's lineage group
# (:data:`~consist.core.store.lineage_groups.GROUP_EDGES_CTE`), or the whole
# link table while some link has no group.
_WALK_NODES_TEMPLATE = """
WITH RECURSIVE {groups}walk(node, artifact) AS (
    SELECT CAST($root AS UUID), true
    UNION
    SELECT l.dst, NOT w.artifact FROM walk w JOIN {links} l ON l.src = w.node
)
SELECT node, artifact FROM walk
"""

# The bounded walk: the hop count rides in the rows (so around a cycle the
# walk goes on until the bound). Artifacts are at even hops (depth = hops / 2),
# runs' nodes at odd ones. Nodes before ``$last_hop`` are expanded; those at
# ``$last_hop`` are the inputs at the depth bound (read, not expanded).
_WALK_NODES_BOUNDED_TEMPLATE = """
WITH RECURSIVE {groups}walk(node, hops) AS (
    SELECT CAST($root AS UUID), 0
    UNION
    SELECT l.dst, w.hops + 1 FROM walk w JOIN {links} l ON l.src = w.node
    WHERE w.hops + 1 <= $last_hop
)
SELECT node, min(hops) FROM walk GROUP BY node
"""


def _walk_sql(template: str, *, grouped: bool) -> str:
    if grouped:
        return template.format(groups=GROUP_EDGES_CTE.strip() + ",\n", links="edges")
    return template.format(groups="", links="run_artifact_link")


_WALK_NODES = _walk_sql(_WALK_NODES_TEMPLATE, grouped=False)
_WALK_NODES_BOUNDED = _walk_sql(_WALK_NODES_BOUNDED_TEMPLATE, grouped=False)
_WALK_NODES_GROUPED = _walk_sql(_WALK_NODES_TEMPLATE, grouped=True)
_WALK_NODES_BOUNDED_GROUPED = _walk_sql(_WALK_NODES_BOUNDED_TEMPLATE, grouped=True)

# An IN list of constants is read through the index up to DuckDB's
# ``index_scan_max_count`` (2048) values; longer lists go in several statements.
_IN_CHUNK = 2000

# The reference walks (the form before migration 7, kept for the equivalence
# tests of :func:`_walk_rows`; they join every link twice per statement).
# One row per edge: (artifact, a run that output it, one input of
# that run or NULL, the key that run used for it). Bounded walks carry the
# depth of ``artifact`` (root = 0) and stop expanding at ``max_depth``; as
# ``depth`` is part of the row, a cycle is then cut by the bound instead.
_WALK_UNBOUNDED = """
WITH RECURSIVE walk(artifact_id, run_id, input_id, input_key) AS (
    SELECT o.artifact_id, o.run_id, i.artifact_id, i.key
    FROM run_artifact_link o
    LEFT JOIN run_artifact_link i ON i.run_id = o.run_id AND i.direction = 'input'
    WHERE o.artifact_id = CAST($root AS UUID) AND o.direction = 'output'
    UNION
    SELECT o.artifact_id, o.run_id, i.artifact_id, i.key
    FROM walk w
    JOIN run_artifact_link o ON o.artifact_id = w.input_id AND o.direction = 'output'
    LEFT JOIN run_artifact_link i ON i.run_id = o.run_id AND i.direction = 'input'
),
edges AS (SELECT artifact_id, run_id, input_id, input_key FROM walk)
"""

_WALK_BOUNDED = """
WITH RECURSIVE walk(artifact_id, run_id, input_id, input_key, depth) AS (
    SELECT o.artifact_id, o.run_id, i.artifact_id, i.key, 0
    FROM run_artifact_link o
    LEFT JOIN run_artifact_link i ON i.run_id = o.run_id AND i.direction = 'input'
    WHERE o.artifact_id = CAST($root AS UUID) AND o.direction = 'output' AND $max_depth > 0
    UNION
    SELECT o.artifact_id, o.run_id, i.artifact_id, i.key, w.depth + 1
    FROM walk w
    JOIN run_artifact_link o ON o.artifact_id = w.input_id AND o.direction = 'output'
    LEFT JOIN run_artifact_link i ON i.run_id = o.run_id AND i.direction = 'input'
    WHERE w.depth + 1 < $max_depth
),
edges AS (SELECT DISTINCT artifact_id, run_id, input_id, input_key FROM walk)
"""

# Up to this max_depth the walk is bounded in SQL. A bounded walk carries the
# hop count in its rows, so around a cycle it keeps going until the bound; a
# larger max_depth therefore uses the unbounded walk (which stops once no new
# edge appears, and never costs more than max_depth=None) and the tree is cut
# in Python.
BOUNDED_WALK_LIMIT = 64

# Columns of an artifact row (a = the input artifact of an edge, or the root).
_ARTIFACT_COLS = (
    "a.id, a.key, a.uri, a.driver, a.hash, a.table_path, a.array_path, a.run_id, a.created_at"
)
_RUN_COLS = (
    "r.id, r.model_name, r.description, r.status, r.tags, r.year, r.iteration, r.stage, "
    "r.phase, r.created_at, r.ended_at, "
    "coalesce(json_extract_string(r.meta, '$.cache_hit') = 'true', false), "
    "json_extract_string(r.meta, '$.cache_source')"
)
_NO_RUN = ", ".join(["NULL"] * 13)
# What is read about the nodes a walk reached, in one statement of up to
# three parts (same columns: kind, direction, key, id, run columns, artifact
# columns): the links leaving some nodes with their runs' columns; the
# artifacts among some nodes; and which of some artifacts have a producing
# link (bounded walks). All read by index: IN lists of constants, and the
# join to ``run``, whose few keys DuckDB pushes into the scan of ``run`` as a
# filter. A link whose run row is missing drops out (as the walk's join to
# ``run`` always did); a run's node matches no artifact, and an artifact is
# the src of its output links only.
_LINK_ROWS = (
    "SELECT 0, l.direction, l.key, l.artifact_id, "
    + _RUN_COLS
    + ", "
    + ", ".join(["NULL"] * 9)
    + " FROM run_artifact_link l JOIN run r ON r.id = l.run_id WHERE l.src IN ({marks})"
)
_ARTIFACT_ROWS = (
    "SELECT 1, NULL, NULL, a.id, "
    + _NO_RUN
    + ", "
    + _ARTIFACT_COLS
    + " FROM artifact a WHERE a.id IN ({marks})"
)
_PRODUCED_ROWS = (
    "SELECT 2, NULL, NULL, p.src, "
    + ", ".join(["NULL"] * 22)
    + " FROM run_artifact_link p WHERE p.src IN ({marks})"
)
_NODE_RUN, _NODE_ART = 4, 4 + 13  # first run column, first artifact column
# (Reference forms.) Whether artifact ``a`` was output by some run (only
# needed when bounded: unbounded walks fetch every producer anyway).
_PRODUCED = (
    "EXISTS (SELECT 1 FROM run_artifact_link p "
    "WHERE p.artifact_id = a.id AND p.direction = 'output')"
)

_SELECT = """
SELECT w.artifact_id, w.input_id, w.input_key, {artifact_cols}, {run_cols}, {produced}
FROM edges w
JOIN run r ON r.id = w.run_id
LEFT JOIN artifact a ON a.id = w.input_id
UNION ALL
SELECT NULL, a.id, NULL, {artifact_cols}, {no_run}, {produced_root}
FROM artifact a WHERE a.id = CAST($root AS UUID)
"""

# The single-statement forms over the link columns (the reference of the
# equivalence tests: :func:`_unbounded_rows` / :func:`_bounded_rows` return the
# same rows faster).
_SQL_UNBOUNDED = _WALK_UNBOUNDED + _SELECT.format(
    artifact_cols=_ARTIFACT_COLS,
    run_cols=_RUN_COLS,
    produced="NULL",
    no_run=_NO_RUN,
    produced_root="NULL",
)
_SQL_BOUNDED = _WALK_BOUNDED + _SELECT.format(
    artifact_cols=_ARTIFACT_COLS,
    run_cols=_RUN_COLS,
    produced=_PRODUCED,
    no_run=_NO_RUN,
    produced_root=_PRODUCED,
)

# A run and its input links (one row per input; one row with NULLs for none).
# Input links are the links leaving the run's node (an index lookup).
_RUN_INPUTS = f"""
SELECT {_RUN_COLS}, i.artifact_id, i.key
FROM run r
LEFT JOIN run_artifact_link i ON i.src = CAST($node AS UUID)
WHERE r.id = $run
"""


@dataclass(frozen=True)
class RunInputs:
    """A run (lineage columns) and its ``(input artifact id, key)`` pairs, sorted by key."""

    run: LineageRun
    inputs: tuple[tuple[uuid.UUID, str], ...]


# Offsets in a result row.
_A0 = 3  # first artifact column
_R0 = _A0 + 9  # first run column
_P = _R0 + 13  # produced flag


class LineageStore:
    """Lineage reads over one DuckDB store.

    Parameters
    ----------
    connections:
        The store's connection manager.
    before_read:
        Called before each read (the metadata store commits its queued
        writes there, so this process's recent runs are visible).
    """

    def __init__(
        self,
        connections: DuckDBConnectionManager,
        *,
        before_read: Callable[[], None] | None = None,
    ) -> None:
        self.connections = connections
        self.before_read = before_read
        # PostgreSQL walks the link table through its src index (a nested
        # loop per hop), so the group filter (a scan without an index there)
        # would only slow it down; DuckDB hashes whatever it joins.
        self.grouped = isinstance(connections, DuckDBConnectionManager)

    def upstream(
        self, artifact_id: uuid.UUID | str, *, max_depth: int | None = None
    ) -> UpstreamGraph | None:
        """The upstream graph of an artifact, fetched in three statements.

        Parameters
        ----------
        artifact_id:
            The artifact (UUID or UUID string).
        max_depth:
            Only walk artifacts up to this many producing-run steps from the
            root (0: the root only). ``None`` walks everything. Above
            :data:`BOUNDED_WALK_LIMIT` everything is walked (the caller cuts
            the tree), which bounds the cost of a cycle.

        Returns
        -------
        UpstreamGraph or None
            None when no artifact has this id.
        """
        if self.before_read is not None:
            self.before_read()
        root = str(artifact_id)
        bound = max_depth if max_depth is not None and max_depth <= BOUNDED_WALK_LIMIT else None
        with self.connections.connection() as con:
            rows = _walk_rows(con, root, bound, grouped=self.grouped)
        return _graph_from_rows(_as_uuid(root), rows, bound)

    def run_inputs(self, run_id: str) -> RunInputs | None:
        """A run and the artifacts it logged as inputs, in one query.

        Returns
        -------
        RunInputs or None
            None when no run has this id.
        """
        if self.before_read is not None:
            self.before_read()
        with self.connections.connection() as con:
            params = {"run": str(run_id), "node": str(run_node(str(run_id)))}
            rows = con.execute(_RUN_INPUTS, params).fetchall()
        if not rows:
            return None
        run = _run((None,) * _R0 + tuple(rows[0][:13]))
        pairs = {(_as_uuid(row[13]), row[14]) for row in rows if row[13] is not None}
        return RunInputs(run=run, inputs=tuple(sorted(pairs, key=lambda p: (p[1], str(p[0])))))


def _unbounded_rows(con: Any, root: str) -> list[tuple[Any, ...]]:
    """The rows of ``_SQL_UNBOUNDED``, in three statements (see :func:`_walk_rows`)."""
    return _walk_rows(con, root, None)


def _bounded_rows(con: Any, root: str, max_depth: int) -> list[tuple[Any, ...]]:
    """The rows of ``_SQL_BOUNDED``, in three statements (see :func:`_walk_rows`)."""
    return _walk_rows(con, root, max_depth)


def _walk_rows(
    con: Any, root: str, max_depth: int | None, *, grouped: bool = True
) -> list[tuple[Any, ...]]:
    """The lineage rows of ``root``: the walk, then one statement about what it reached.

    The walk collects the nodes reached from ``root`` (:data:`_WALK_NODES`, or
    :data:`_WALK_NODES_BOUNDED` up to ``max_depth``; their ``_GROUPED`` forms,
    which join only the links of the root's lineage group, when ``grouped``
    and every link has one). One statement then reads,
    by index, the links leaving the expanded nodes with their runs, the
    reached artifacts and, when bounded, which of them have a producing link.
    The edges ``(artifact, run, input, key)`` are rebuilt here from the
    links: each run that output a reached artifact, paired with each of its
    inputs (or with None when it has none). The rows are those of
    the one-statement forms ``_SQL_UNBOUNDED`` / ``_SQL_BOUNDED``.
    """
    grouped = grouped and bool(con.execute(ALL_LABELLED_SQL).fetchone()[0])
    if max_depth is None:
        sql = _WALK_NODES_GROUPED if grouped else _WALK_NODES
        walked = con.execute(sql, {"root": root}).fetchall()
        expand = [node for node, _ in walked]
        artifact_nodes = [node for node, artifact in walked if artifact]
        ask_produced: list[Any] = []
    else:
        last_hop = 2 * max_depth
        sql = _WALK_NODES_BOUNDED_GROUPED if grouped else _WALK_NODES_BOUNDED
        walked = con.execute(sql, {"root": root, "last_hop": last_hop}).fetchall()
        expand = [node for node, hops in walked if hops < last_hop]
        artifact_nodes = ask_produced = [node for node, hops in walked if hops % 2 == 0]
    produced_by: dict[Any, list[str]] = {}  # artifact -> runs that output it
    inputs_of: dict[str, list[tuple[Any, str]]] = {}  # run -> (input, key)
    runs: dict[str, tuple[Any, ...]] = {}
    artifacts: dict[uuid.UUID, tuple[Any, ...]] = {}
    produced: set[uuid.UUID] = set()
    for sql, params in _node_statements(expand, artifact_nodes, ask_produced):
        for row in con.execute(sql, params).fetchall():
            if row[0] == 1:
                artifacts[_as_uuid(row[3])] = row[_NODE_ART:]
            elif row[0] == 2:
                produced.add(_as_uuid(row[3]))
            else:
                run_id = row[_NODE_RUN]
                runs[run_id] = row[_NODE_RUN:_NODE_ART]
                if row[1] == "output":
                    produced_by.setdefault(row[3], []).append(run_id)
                else:
                    inputs_of.setdefault(run_id, []).append((row[3], row[2]))

    def flag(artifact_id: Any) -> bool | None:
        if max_depth is None:
            return None
        # as EXISTS over the joined artifact row: False when that row is missing
        return artifact_id is not None and artifact_id in artifacts and artifact_id in produced

    missing = (None,) * (_R0 - _A0)
    rows: list[tuple[Any, ...]] = []
    for artifact_id, run_ids in produced_by.items():
        for run_id in run_ids:
            run = runs[run_id]
            for input_id, input_key in inputs_of.get(run_id) or [(None, None)]:
                key = None if input_id is None else _as_uuid(input_id)
                art = missing if key is None else artifacts.get(key, missing)
                rows.append((artifact_id, input_id, input_key, *art, *run, flag(key)))
    root_id = _as_uuid(root)
    root_row = artifacts.get(root_id)
    if root_row is not None:
        rows.append((None, root_row[0], None, *root_row, *((None,) * 13), flag(root_id)))
    return rows


def _node_statements(
    expand: Sequence[Any], artifact_nodes: Sequence[Any], ask_produced: Sequence[Any]
) -> list[tuple[str, list[Any]]]:
    """The statements reading what a walk reached (one unless a list is very long)."""
    parts = ((_LINK_ROWS, expand), (_ARTIFACT_ROWS, artifact_nodes), (_PRODUCED_ROWS, ask_produced))
    statements = []
    longest = max(len(values) for _, values in parts)
    for start in range(0, max(longest, 1), _IN_CHUNK):
        sqls, params = [], []
        for template, values in parts:
            chunk = list(values[start : start + _IN_CHUNK])
            if chunk:
                sqls.append(template.format(marks=", ".join("?" * len(chunk))))
                params.extend(chunk)
        if sqls:
            statements.append((" UNION ALL ".join(sqls), params))
    return statements


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _artifact(row: tuple[Any, ...], fallback_id: uuid.UUID, fallback_key: str) -> LineageArtifact:
    if row[_A0] is None:  # dangling link
        return LineageArtifact(
            id=fallback_id,
            key=fallback_key,
            uri=None,
            driver=None,
            hash=None,
            table_path=None,
            array_path=None,
            run_id=None,
            created_at=None,
            missing=True,
        )
    return LineageArtifact(
        id=_as_uuid(row[_A0]),
        key=row[_A0 + 1],
        uri=row[_A0 + 2],
        driver=row[_A0 + 3] or "other",
        hash=row[_A0 + 4],
        table_path=row[_A0 + 5],
        array_path=row[_A0 + 6],
        run_id=row[_A0 + 7],
        created_at=from_db_time(row[_A0 + 8]),
    )


def _run(row: tuple[Any, ...]) -> LineageRun:
    r = row[_R0 : _R0 + 13]
    return LineageRun(
        id=r[0],
        model_name=r[1],
        description=r[2],
        status=r[3],
        tags=tuple(r[4] or ()),
        year=r[5],
        iteration=r[6],
        stage=r[7],
        phase=r[8],
        created_at=from_db_time(r[9]),
        ended_at=from_db_time(r[10]),
        cache_hit=bool(r[11]),
        cache_source=r[12],
    )


def _producer_rank(run: LineageRun) -> tuple[bool, float, str]:
    created = run.created_at.timestamp() if run.created_at is not None else float("inf")
    return (run.status != "completed", created, run.id)


def _graph_from_rows(
    root_id: uuid.UUID, rows: list[tuple[Any, ...]], max_depth: int | None
) -> UpstreamGraph | None:
    artifacts: dict[uuid.UUID, LineageArtifact] = {}
    runs: dict[str, LineageRun] = {}
    # artifact id -> run id -> [(input id, key)]; None input = a run without inputs
    candidates: dict[uuid.UUID, dict[str, list[tuple[uuid.UUID, str]]]] = {}
    produced: set[uuid.UUID] = set()
    found_root = False
    for row in rows:
        child = row[0]
        if child is None:  # the root artifact row
            found_root = True
            artifacts[root_id] = _artifact(row, root_id, "")
            if row[_P]:
                produced.add(root_id)
            continue
        child_id = _as_uuid(child)
        run_id = row[_R0]
        if run_id not in runs:
            runs[run_id] = _run(row)
        by_run = candidates.setdefault(child_id, {}).setdefault(run_id, [])
        if row[1] is None:
            continue
        input_id = _as_uuid(row[1])
        by_run.append((input_id, row[2]))
        if input_id not in artifacts:
            artifacts[input_id] = _artifact(row, input_id, row[2])
        if row[_P]:
            produced.add(input_id)
    if not found_root:
        return None

    producer: dict[uuid.UUID, str] = {}
    inputs: dict[str, tuple[tuple[uuid.UUID, str], ...]] = {}
    cache_hits: dict[uuid.UUID, int] = {}
    for artifact_id, by_run in candidates.items():
        chosen = min((runs[r] for r in by_run), key=_producer_rank)
        producer[artifact_id] = chosen.id
        produced.add(artifact_id)
        hits = sum(1 for r in by_run if r != chosen.id and runs[r].cache_hit)
        if hits:
            cache_hits[artifact_id] = hits
        if chosen.id not in inputs:
            pairs = set(by_run[chosen.id])
            inputs[chosen.id] = tuple(
                sorted(pairs, key=lambda p: (p[1], artifacts[p[0]].key, str(p[0])))
            )
    used_runs = set(producer.values())
    return UpstreamGraph(
        root_id=root_id,
        artifacts=artifacts,
        runs={rid: run for rid, run in runs.items() if rid in used_runs},
        producer=producer,
        inputs=inputs,
        cache_hits=cache_hits,
        produced=frozenset(produced),
        max_depth=max_depth,
    )
