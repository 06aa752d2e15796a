"""Lineage groups: a label on every link so that a walk reads only its own part of the graph.

DuckDB joins a recursive walk to ``run_artifact_link`` through one hash table
of every row it scans, so an unfiltered walk costs in proportion to the whole
link table (about 5 ms beside 200,000 links) however short the chain. Every
link therefore carries ``lineage_group`` (schema migration 10), and a walk
only joins the links whose group is the root's: a few hundred rows instead of
every run of the store.

What a group must hold. A walk from an artifact follows its output links (to
each run that output it), then those runs' input links (to their inputs),
then the inputs' output links, and so on. So two links must share a group
whenever one can follow the other in a walk, which is the case when they
link the same artifact and at least one of them is an output link (the
producer and its consumers, or the producer and later cache hits of it),
and when they belong to the same run (a run's outputs lead to its inputs).
Two consumers of a raw input nobody produced need not share one: a sweep of
10,000 runs reading one network file stays 10,000 small groups.

How it is kept. A link stores the *root* label of its run's group, so a walk
filters on one value. A run's own label is fixed (:func:`run_label`); when
its group is another's, ``lineage_group_alias`` holds ``(grp, root)``: label
``grp`` belongs to the group whose links carry ``root``. Joining two groups
re-points the smaller one (fewer aliases) at the larger: its links and its
aliases are updated to the larger root in one statement each, and its root
becomes an alias, so a run's links are relabelled O(log n) times at most.
A new run that joins an existing group (the common case: one more step of a
chain) just has its links written with that group's root. Joining never
splits a group again: deleting runs (``purge``) leaves groups larger than
needed, which costs a walk time, never a node.

Labels are 64-bit slices of an MD5 digest; two runs whose labels collide
share a group, which again only widens a walk.

Every writer of links labels them: :func:`join_groups` for the batched
writes (before the rows go in, in the same transaction) and
:func:`label_unlabelled` for bulk writers (migration 10, shard merges, the
doctor). A link without a label (one inserted by hand through the
``RunArtifactLink`` model, say) makes lineage walk the whole table again,
correct and slower, until ``doctor(fix=True)`` labels it.

Groups are DuckDB's: a PostgreSQL store walks its links through the ``src``
index (a nested loop per hop costs what the graph costs), so its links are
left unlabelled and none of this runs there (no write-path lookups, no lock
serializing concurrent writers' bookkeeping).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from consist.core.store.engines.postgres import PgConnection

# Up to this many values, a lookup lists them as constants (read through the
# index, about 40 us each); beyond, one scan of the table.
_INDEXED_LOOKUP_MAX = 16
_CHUNK = 2000


def run_label(run_id: str) -> int:
    """The lineage-group label of a run's links: the first 8 bytes of MD5(run id), signed.

    Parameters
    ----------
    run_id:
        Whose label (any string; the label is stable across processes and stores).

    Returns
    -------
    int
        A value that fits DuckDB's and PostgreSQL's BIGINT.
    """
    digest = hashlib.md5(run_id.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def join_groups(
    con: Any, links: Sequence[Sequence[Any]], *, new_runs: bool = False
) -> dict[str, int]:
    """Join the groups that the links about to be inserted connect; the label of each run.

    Call inside the transaction that inserts ``links`` and before it does;
    each link row is then written with the label returned for its run.

    Parameters
    ----------
    con:
        A connection to the store (DuckDB, or the PostgreSQL wrapper), in a
        transaction.
    links:
        ``(run_id, artifact_id, direction, ...)`` rows.
    new_runs:
        True when no run of ``links`` has links in the store yet (a batch of
        new runs): their own labels then need no relabelling when they join
        another group.

    Returns
    -------
    dict[str, int]
        Run id -> the root label to write on its links (empty on PostgreSQL:
        its links stay unlabelled).
    """
    if not links or isinstance(con, PgConnection):
        return {}
    uf = _UnionFind()
    labels = {str(link[0]): run_label(str(link[0])) for link in links}
    current = _roots_of(con, labels.values())
    inputs: dict[str, set[str]] = {}  # artifact -> runs that read it here
    outputs: dict[str, set[str]] = {}  # artifact -> runs that output it here
    for link in links:
        run_id = str(link[0])
        uf.union(("run", run_id), current.get(labels[run_id], labels[run_id]))
        (outputs if link[2] == "output" else inputs).setdefault(str(link[1]), set()).add(run_id)
    # Within the batch: every run linking an artifact that a run of the batch outputs.
    for artifact, producers in outputs.items():
        first = ("run", next(iter(producers)))
        for run_id in producers | inputs.get(artifact, set()):
            uf.union(first, ("run", run_id))
    # Against the store: the roots the links already there carry.
    for artifact, is_output, root in _existing_roots(con, inputs.keys() | outputs.keys(), outputs):
        for run_id in outputs.get(artifact, ()):
            uf.union(("run", run_id), root)
        if is_output:
            for run_id in inputs.get(artifact, ()):
                uf.union(("run", run_id), root)
    # A new run's own label carries no links yet: joining it relabels nothing.
    linkless = {labels[r] for r in labels if labels[r] not in current} if new_runs else set()
    survivors = _merge(con, uf, linkless)
    return {run_id: survivors[uf.find(("run", run_id))] for run_id in labels}


class _UnionFind:
    """Union-find over hashable items: ``("run", id)`` of the batch and root labels."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, item: Any) -> Any:
        parent = self.parent.setdefault(item, item)
        if parent == item:
            return item
        root = self.find(parent)
        self.parent[item] = root
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def components(self) -> dict[Any, list[Any]]:
        out: dict[Any, list[Any]] = {}
        for item in list(self.parent):
            out.setdefault(self.find(item), []).append(item)
        return out


def _existing_roots(
    con: Any, artifacts: Iterable[str], outputs: dict[str, Any]
) -> list[tuple[str, bool, int]]:
    """``(artifact, is output link, root)`` of the labelled links of ``artifacts`` in the store.

    Input links count only for artifacts that the batch outputs (a raw input
    read by thousands of runs is not read back for each new reader).
    """
    ids = [uuid.UUID(a) for a in sorted(artifacts)]
    produced = [uuid.UUID(a) for a in sorted(outputs)]
    if not ids:
        return []

    def among(values: list[uuid.UUID]) -> tuple[str, list[Any]]:
        if len(ids) <= _INDEXED_LOOKUP_MAX:
            return f"artifact_id IN ({', '.join('?' * len(values))})", list(values)
        return "artifact_id IN (SELECT unnest(?))", [values]

    where, params = among(ids)
    if produced:
        also, more = among(produced)
        where += f" AND (direction = 'output' OR {also})"
        params += more
    else:
        where += " AND direction = 'output'"
    rows = con.execute(
        "SELECT DISTINCT CAST(artifact_id AS VARCHAR), direction = 'output', lineage_group "
        f"FROM run_artifact_link WHERE lineage_group IS NOT NULL AND {where}",
        params,
    ).fetchall()
    return [(str(r[0]), bool(r[1]), int(r[2])) for r in rows]


def _roots_of(con: Any, labels: Iterable[int]) -> dict[int, int]:
    """Label -> root for the labels among ``labels`` that belong to another group."""
    values = sorted(set(labels))
    if not values:
        return {}
    if len(values) <= _INDEXED_LOOKUP_MAX:
        marks = ", ".join("?" * len(values))
        sql = f"SELECT grp, root FROM lineage_group_alias WHERE grp IN ({marks})"
        rows = con.execute(sql, values).fetchall()
    else:
        sql = (
            "SELECT grp, root FROM lineage_group_alias "
            "WHERE grp IN (SELECT unnest(CAST(? AS BIGINT[])))"
        )
        rows = con.execute(sql, [values]).fetchall()
    return {int(g): int(r) for g, r in rows}


def _merge(con: Any, uf: _UnionFind, linkless: set[int]) -> dict[Any, int]:
    """Make each component of ``uf`` one group; return component -> its root label.

    The root with the most aliases survives; the others (and their links and
    aliases) are re-pointed at it in one statement per table. ``linkless``
    roots are known to carry no links (a new run's own label).
    """
    components = uf.components()
    roots_of: dict[Any, list[int]] = {
        top: sorted({m for m in members if not isinstance(m, tuple)})
        for top, members in components.items()
    }
    contested = {r for roots in roots_of.values() if len(roots) > 1 for r in roots}
    sizes = _alias_counts(con, contested) if contested else {}
    survivors: dict[Any, int] = {}
    moves: list[tuple[int, int]] = []  # (old root, survivor)
    for top, roots in roots_of.items():
        survivor = max(roots, key=lambda r: (sizes.get(r, 0), -r))
        survivors[top] = survivor
        moves.extend((old, survivor) for old in roots if old != survivor)
    if not moves:
        return survivors
    _repoint(con, "run_artifact_link", "lineage_group", [m for m in moves if m[0] not in linkless])
    _repoint(con, "lineage_group_alias", "root", [m for m in moves if sizes.get(m[0], 0)])
    for start in range(0, len(moves), _CHUNK):
        chunk = moves[start : start + _CHUNK]
        values = ", ".join(["(?, ?)"] * len(chunk))
        con.execute(
            f"INSERT INTO lineage_group_alias (grp, root) VALUES {values} "
            "ON CONFLICT (grp) DO UPDATE SET root = excluded.root",
            [v for pair in chunk for v in pair],
        )
    return survivors


def _repoint(con: Any, table: str, column: str, moves: Sequence[tuple[int, int]]) -> None:
    """Set ``column`` of ``table`` to the survivor wherever it holds a moved root."""
    if not moves:
        return
    con.execute(
        f"UPDATE {table} SET {column} = m.to_root FROM (SELECT "
        "unnest(CAST(? AS BIGINT[])) AS from_root, unnest(CAST(? AS BIGINT[])) AS to_root) m "
        f"WHERE {table}.{column} = m.from_root",
        [[old for old, _ in moves], [new for _, new in moves]],
    )


def _alias_counts(con: Any, roots: set[int]) -> dict[int, int]:
    """Number of labels aliased to each of ``roots``."""
    rows = con.execute(
        "SELECT root, count(*) FROM lineage_group_alias "
        "WHERE root IN (SELECT unnest(CAST(? AS BIGINT[]))) GROUP BY root",
        [sorted(roots)],
    ).fetchall()
    return {int(root): int(count) for root, count in rows}


def label_unlabelled(con: Any) -> int:
    """Label every link without a lineage group and join the groups it connects.

    For writers that insert links in bulk without labels (migration 10 on a
    DuckDB store, shard merges, links written by hand and fixed by the
    doctor). Runs in the caller's transaction, with a constant number of
    statements however many groups it joins.

    Parameters
    ----------
    con:
        A connection to the store, in a transaction.

    Returns
    -------
    int
        The number of links labelled (0 on PostgreSQL, which has no groups).
    """
    if isinstance(con, PgConnection):
        return 0
    rows = con.execute(
        "SELECT run_id, CAST(artifact_id AS VARCHAR) FROM run_artifact_link "
        "WHERE lineage_group IS NULL"
    ).fetchall()
    if not rows:
        return 0
    run_ids = sorted({r[0] for r in rows})
    artifacts = sorted({r[1] for r in rows})
    own = [run_label(r) for r in run_ids]
    current = _roots_of(con, own)
    labels = [current.get(label, label) for label in own]
    con.execute(
        "UPDATE run_artifact_link SET lineage_group = v.label FROM (SELECT "
        "unnest(CAST(? AS VARCHAR[])) AS run_id, unnest(CAST(? AS BIGINT[])) AS label) v "
        "WHERE run_artifact_link.run_id = v.run_id AND run_artifact_link.lineage_group IS NULL",
        [run_ids, labels],
    )
    # Every pair of roots that share an artifact with an output link among them.
    pairs = con.execute(
        "SELECT DISTINCT o.lineage_group, l.lineage_group FROM run_artifact_link o "
        "JOIN run_artifact_link l ON l.artifact_id = o.artifact_id "
        "WHERE o.direction = 'output' AND o.lineage_group <> l.lineage_group "
        "AND o.artifact_id IN (SELECT unnest(?))",
        [[uuid.UUID(a) for a in artifacts]],
    ).fetchall()
    if pairs:
        uf = _UnionFind()
        for a, b in pairs:
            uf.union(int(a), int(b))
        _merge(con, uf, set())
    return len(rows)


# What lineage joins instead of the whole link table: the links of the
# root's group (``roots``: the label of the links leaving the root node, an
# index lookup; one value, as a group's links all carry its root).
GROUP_EDGES_CTE = """
roots AS (
    SELECT DISTINCT lineage_group AS g FROM run_artifact_link WHERE src = CAST($root AS UUID)
),
edges AS MATERIALIZED (
    SELECT src, dst FROM run_artifact_link WHERE lineage_group IN (SELECT g FROM roots)
)"""

ALL_LABELLED_SQL = "SELECT NOT EXISTS (SELECT 1 FROM run_artifact_link WHERE lineage_group IS NULL)"
