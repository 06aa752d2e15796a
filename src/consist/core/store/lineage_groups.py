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

How it is kept. A link's label is its run's (:func:`run_label`: fixed, so a
run's later snapshots and its earlier links agree without a lookup). Groups
that must be one are joined union-find style in ``lineage_group_alias``: a
row ``(grp, root)`` says label ``grp`` belongs to the group of ``root``; a
label without a row is its own root. Roots are kept flat (every alias points
at a root), and the smaller group (fewer aliases) is re-pointed at the
larger, so a label is re-pointed O(log n) times at most. Joining groups never
splits one again: deleting runs (``purge``) leaves groups larger than needed,
which costs a walk time, never a node.

Labels are 64-bit slices of an MD5 digest; two runs whose labels collide
share a group, which again only widens a walk.

Every writer of links labels them: :func:`join_groups` for the batched
writes (before the rows go in, in the same transaction) and
:func:`label_unlabelled` for bulk writers (migration, shard merges, the
doctor). A link without a label (one inserted by hand through the
``RunArtifactLink`` model, say) makes lineage walk the whole table again,
correct and slower, until ``doctor(fix=True)`` labels it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

# Up to this many artifacts, a batch's lookup lists them as constants (read
# through the index, about 40 us each); beyond, one scan of the table.
_INDEXED_LOOKUP_MAX = 16
_CHUNK = 2000


def run_label(run_id: str) -> int:
    """The lineage-group label of a run's links: the first 8 bytes of MD5(run id), signed.

    Parameters
    ----------
    run_id:
        The run's id.

    Returns
    -------
    int
        A BIGINT value.
    """
    digest = hashlib.md5(run_id.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _UnionFind:
    """Union-find over hashable items (the batch's run labels and existing roots)."""

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

    def components(self) -> list[set[Any]]:
        out: dict[Any, set[Any]] = {}
        for item in list(self.parent):
            out.setdefault(self.find(item), set()).add(item)
        return list(out.values())


def join_groups(con: Any, links: Sequence[Sequence[Any]]) -> None:
    """Join the groups that the links about to be inserted connect.

    Call inside the transaction that inserts ``links`` and before it does;
    each link row is then written with ``lineage_group = run_label(run_id)``.

    Parameters
    ----------
    con:
        A connection to the store (DuckDB, or the PostgreSQL wrapper), in a
        transaction.
    links:
        ``(run_id, artifact_id, direction, ...)`` rows.
    """
    if not links:
        return
    uf = _UnionFind()
    run_labels = {run_label(str(link[0])) for link in links}
    inputs: dict[str, set[int]] = {}  # artifact -> labels of runs that read it here
    outputs: dict[str, set[int]] = {}  # artifact -> labels of runs that output it here
    for link in links:
        label = run_label(str(link[0]))
        uf.find(label)
        (outputs if link[2] == "output" else inputs).setdefault(str(link[1]), set()).add(label)
    # Within the batch: every run linking an artifact that a run of the batch outputs.
    for artifact, producers in outputs.items():
        first = next(iter(producers))
        for label in producers | inputs.get(artifact, set()):
            uf.union(first, label)
    # Against the store: the roots of the links already there.
    for artifact, is_output, root in _existing_roots(con, inputs.keys() | outputs.keys(), outputs):
        for label in outputs.get(artifact, ()):
            uf.union(label, ("root", root))
        if is_output:
            for label in inputs.get(artifact, ()):
                uf.union(label, ("root", root))
    current = _roots_of(con, run_labels)
    for label, root in current.items():
        uf.union(label, ("root", root))
    _merge(con, uf, current)


def _existing_roots(
    con: Any, artifacts: Iterable[str], outputs: dict[str, set[int]]
) -> list[tuple[str, bool, int]]:
    """``(artifact, is output link, root)`` of the labelled links of ``artifacts`` in the store.

    Input links count only for artifacts that the batch outputs (a raw input
    read by thousands of runs is not read back for each new reader).
    """
    ids = [uuid.UUID(a) for a in sorted(artifacts)]
    produced = [uuid.UUID(a) for a in sorted(outputs)]
    if not ids:
        return []
    if len(ids) <= _INDEXED_LOOKUP_MAX:
        where = f"l.artifact_id IN ({', '.join('?' * len(ids))})"
        params: list[Any] = list(ids)
        also = f"l.artifact_id IN ({', '.join('?' * len(produced))})"
    else:
        where = "l.artifact_id IN (SELECT unnest(?))"
        params = [ids]
        also = "l.artifact_id IN (SELECT unnest(?))"
        produced = [produced] if produced else []
    if produced:
        where += f" AND (l.direction = 'output' OR {also})"
        params += produced
    else:
        where += " AND l.direction = 'output'"
    rows = con.execute(
        "SELECT DISTINCT CAST(l.artifact_id AS VARCHAR), l.direction = 'output', "
        "coalesce(a.root, l.lineage_group) FROM run_artifact_link l "
        "LEFT JOIN lineage_group_alias a ON a.grp = l.lineage_group "
        f"WHERE l.lineage_group IS NOT NULL AND {where}",
        params,
    ).fetchall()
    return [(str(r[0]), bool(r[1]), int(r[2])) for r in rows]


def _roots_of(con: Any, labels: Iterable[int]) -> dict[int, int]:
    """Label -> root for the labels among ``labels`` that have been joined to another group."""
    values = sorted(labels)
    out: dict[int, int] = {}
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for grp, root in con.execute(
            f"SELECT grp, root FROM lineage_group_alias WHERE grp IN ({marks})", chunk
        ).fetchall():
            out[int(grp)] = int(root)
    return out


def _merge(con: Any, uf: _UnionFind, current: dict[int, int]) -> None:
    """Record each component of ``uf`` as one group (the largest keeps its root)."""
    plans: list[tuple[set[int], set[int]]] = []  # (roots to join, fresh labels to alias)
    for component in uf.components():
        roots: set[int] = set()
        fresh: set[int] = set()
        for item in component:
            if isinstance(item, tuple):
                roots.add(item[1])
            elif item not in current:
                fresh.add(item)  # a label that is its own root (maybe of older links)
        if len(roots | fresh) > 1:
            plans.append((roots, fresh))
    if not plans:
        return
    sizes = _alias_counts(con, {r for roots, fresh in plans for r in roots | fresh})
    aliases: list[tuple[int, int]] = []
    for roots, fresh in plans:
        candidates = roots | fresh
        survivor = max(candidates, key=lambda r: (sizes.get(r, 0), -r))
        for other in sorted(candidates - {survivor}):
            if sizes.get(other, 0):
                con.execute(
                    "UPDATE lineage_group_alias SET root = ? WHERE root = ?", [survivor, other]
                )
            aliases.append((other, survivor))
    for start in range(0, len(aliases), _CHUNK):
        chunk = aliases[start : start + _CHUNK]
        values = ", ".join(["(?, ?)"] * len(chunk))
        con.execute(
            f"INSERT INTO lineage_group_alias (grp, root) VALUES {values} "
            "ON CONFLICT (grp) DO UPDATE SET root = excluded.root",
            [v for pair in chunk for v in pair],
        )


def _alias_counts(con: Any, roots: set[int]) -> dict[int, int]:
    """Number of labels aliased to each of ``roots``."""
    values = sorted(roots)
    out: dict[int, int] = {}
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for root, count in con.execute(
            f"SELECT root, count(*) FROM lineage_group_alias WHERE root IN ({marks}) GROUP BY root",
            chunk,
        ).fetchall():
            out[int(root)] = int(count)
    return out


def label_unlabelled(con: Any) -> int:
    """Label every link without a lineage group and join the groups it connects.

    For writers that insert links in bulk without labels (migration 10,
    shard merges, links written by hand and fixed by the doctor). Runs in the
    caller's transaction.

    Parameters
    ----------
    con:
        A connection to the store, in a transaction.

    Returns
    -------
    int
        The number of links labelled.
    """
    rows = con.execute(
        "SELECT DISTINCT run_id, CAST(artifact_id AS VARCHAR) FROM run_artifact_link "
        "WHERE lineage_group IS NULL"
    ).fetchall()
    if not rows:
        return 0
    run_ids = sorted({r[0] for r in rows})
    artifacts = sorted({r[1] for r in rows})
    labels = [run_label(r) for r in run_ids]
    counted = con.execute("SELECT count(*) FROM run_artifact_link WHERE lineage_group IS NULL")
    unlabelled = int(counted.fetchone()[0])
    for start in range(0, len(run_ids), 50_000):
        con.execute(
            "UPDATE run_artifact_link SET lineage_group = v.label FROM "
            "(SELECT unnest(CAST(? AS VARCHAR[])) AS run_id, "
            "unnest(CAST(? AS BIGINT[])) AS label) v "
            "WHERE run_artifact_link.run_id = v.run_id AND run_artifact_link.lineage_group IS NULL",
            [run_ids[start : start + 50_000], labels[start : start + 50_000]],
        )
    # Every pair of labels that share an artifact with an output link among them.
    uf = _UnionFind()
    for start in range(0, len(artifacts), 50_000):
        pairs = con.execute(
            "SELECT DISTINCT o.lineage_group, l.lineage_group FROM run_artifact_link o "
            "JOIN run_artifact_link l ON l.artifact_id = o.artifact_id "
            "WHERE o.direction = 'output' AND o.lineage_group <> l.lineage_group "
            "AND o.artifact_id IN (SELECT unnest(?))",
            [[uuid.UUID(a) for a in artifacts[start : start + 50_000]]],
        ).fetchall()
        for a, b in pairs:
            uf.union(int(a), int(b))
    involved = {item for item in uf.parent}
    if involved:
        current = _roots_of(con, involved)
        for label, root in current.items():
            uf.union(label, ("root", root))
        _merge(con, uf, current)
    return unlabelled


# What lineage joins instead of the whole link table: the links of the
# root's group. ``roots`` are the groups of the links leaving the root node
# (an index lookup); ``labels`` every label joined to them.
GROUP_EDGES_CTE = """
roots AS (
    SELECT DISTINCT coalesce(a.root, l.lineage_group) AS g
    FROM run_artifact_link l LEFT JOIN lineage_group_alias a ON a.grp = l.lineage_group
    WHERE l.src = CAST($root AS UUID)
),
labels AS (
    SELECT g FROM roots
    UNION SELECT a.grp FROM lineage_group_alias a WHERE a.root IN (SELECT g FROM roots)
),
edges AS MATERIALIZED (
    SELECT src, dst FROM run_artifact_link WHERE lineage_group IN (SELECT g FROM labels)
)"""

ALL_LABELLED_SQL = "SELECT NOT EXISTS (SELECT 1 FROM run_artifact_link WHERE lineage_group IS NULL)"
