"""Batched writes: many run snapshots in one transaction, a few statements each.

DuckDB spends most of a small write on per-statement and per-commit
overhead, so the store queues run snapshots (already journaled, hence safe)
and writes them together: one multi-row upsert per table, deduplicated so
that a run or artifact appearing twice in a batch is written once, newest
version winning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consist.core.identity.hashing import StatCacheEntry
from consist.core.store.facet_store import (
    FacetRows,
    add_artifact_rows,
    rows_for_run,
    write_facet_rows,
)
from consist.core.store.lineage_groups import join_groups
from consist.core.store.lineage_store import link_nodes
from consist.core.store.rows import (
    ARTIFACT_COLUMNS,
    RUN_COLUMNS,
    artifact_params,
    json_dump,
    run_params,
    to_db_time,
)
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord

_ROWS_PER_COLUMN_STATEMENT = 5000


@dataclass
class PendingWrite:
    """One run snapshot, frozen into row values at the time it was queued.

    Attributes
    ----------
    run_id, updated_ns:
        Identify the snapshot version (for pending-marker bookkeeping).
    run_row:
        Run row values (``RUN_COLUMNS`` + ``updated_ns`` + identity JSON).
    artifacts:
        ``(artifact row, owned)``: owned rows set key/metadata, others only
        carry hash updates.
    links:
        ``(run_id, artifact_id, direction, key, meta JSON)`` rows (their
        lineage ``src``/``dst`` columns are added when they are written).
    contents:
        ``content_identity`` rows.
    stat_entries:
        Stat-cache entries learned with this snapshot.
    facets:
        Facet payload, link and key/value rows of the run (on its first
        write) and of the artifacts it created.
    on_synced:
        Called after the batch holding this write commits.
    new_run:
        The first write of a run this process created: its run row and links
        cannot exist yet, so they are inserted without ``ON CONFLICT`` (an
        upsert costs DuckDB 2-3x a plain insert). Should the row exist after
        all, the store retries the batch as an upsert.
    """

    run_id: str
    updated_ns: int
    run_row: list[Any]
    artifacts: list[tuple[list[Any], bool]] = field(default_factory=list)
    links: list[list[Any]] = field(default_factory=list)
    contents: list[list[Any]] = field(default_factory=list)
    stat_entries: list[StatCacheEntry] = field(default_factory=list)
    facets: FacetRows = field(default_factory=FacetRows)
    on_synced: Callable[[], None] | None = None
    new_run: bool = False


def freeze(
    record: ConsistRecord,
    artifacts: Sequence[tuple[Artifact, str]],
    stat_entries: Sequence[StatCacheEntry],
    *,
    with_identity: bool,
    on_synced: Callable[[], None] | None = None,
    new_run: bool = False,
) -> PendingWrite:
    """Turn a snapshot (and the artifacts to link) into row values now."""
    updated_ns = record.updated_ns or time.time_ns()
    identity = (
        json.dumps(record.identity, default=str, sort_keys=True)
        if with_identity and record.identity is not None
        else None
    )
    run_id = record.run.id
    write = PendingWrite(
        run_id=run_id,
        updated_ns=updated_ns,
        run_row=[*run_params(record.run, updated_ns), identity],
        stat_entries=list(stat_entries),
        on_synced=on_synced,
        new_run=new_run,
    )
    if with_identity:  # a run's facet is fixed at its start: write it once
        rows_for_run(record, write.facets)
    now = to_db_time(datetime.now(UTC))
    for art, direction in artifacts:
        # A run's view of an artifact (another key/metadata) never rewrites the row.
        owned = art.run_id == run_id and not art.is_run_view
        write.artifacts.append((artifact_params(art), owned))
        if owned:
            add_artifact_rows(art, write.facets, namespace=record.run.model_name)
        write.links.append([run_id, str(art.id), direction, art.key, json_dump(art.meta)])
        if art.content_id is not None and art.hash:
            write.contents.append([str(art.content_id), art.hash, art.size_bytes, now])
    return write


_RUN_CONFLICT = """
ON CONFLICT (id) DO UPDATE SET
    identity = coalesce(excluded.identity, run.identity),
    model_name = excluded.model_name, description = excluded.description,
    status = excluded.status, tags = excluded.tags, year = excluded.year,
    iteration = excluded.iteration, stage = excluded.stage, phase = excluded.phase,
    parent_run_id = excluded.parent_run_id, config_hash = excluded.config_hash,
    input_hash = excluded.input_hash, git_hash = excluded.git_hash,
    signature = excluded.signature, meta = excluded.meta,
    created_at = excluded.created_at, ended_at = excluded.ended_at,
    updated_ns = excluded.updated_ns
WHERE excluded.updated_ns >= run.updated_ns
"""
# The run that created an artifact owns its key and metadata; other runs that
# link it (with their own key/metadata on the link) only carry hash updates.
_OWN_ARTIFACT_CONFLICT = """
ON CONFLICT (id) DO UPDATE SET key = excluded.key, meta = excluded.meta,
    hash = excluded.hash, content_id = excluded.content_id
"""
_LINKED_ARTIFACT_CONFLICT = """
ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, content_id = excluded.content_id
"""
_LINK_CONFLICT = (
    "ON CONFLICT DO UPDATE SET key = excluded.key, meta = excluded.meta, "
    "lineage_group = excluded.lineage_group"
)
_STAT_CONFLICT = """
ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino,
    size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,
    digest = excluded.digest, recorded_ns = excluded.recorded_ns
"""


def write_batch(con: Any, writes: Sequence[PendingWrite], *, plain_inserts: bool = False) -> None:
    """Write queued snapshots with one multi-row statement per table (in a transaction).

    ``plain_inserts`` writes run rows and links without ``ON CONFLICT``
    (only for batches of new runs; a duplicate key then raises
    ``duckdb.ConstraintException`` and the caller retries without it).
    """
    runs: dict[str, list[Any]] = {}
    for w in writes:
        current = runs.get(w.run_id)
        if current is None or w.updated_ns >= current[-2]:
            if current is not None and w.run_row[-1] is None:
                w.run_row[-1] = current[-1]  # keep an identity from an earlier version
            runs[w.run_id] = w.run_row
    owned: dict[str, list[Any]] = {}
    linked: dict[str, list[Any]] = {}
    links: dict[tuple[str, str, str], list[Any]] = {}
    contents: dict[str, list[Any]] = {}
    stats: dict[str, StatCacheEntry] = {}
    for w in writes:
        for row, own in w.artifacts:
            (owned if own else linked)[row[0]] = row
        for link in w.links:
            links[(link[0], link[1], link[2])] = link
        for content in w.contents:
            contents.setdefault(content[0], content)
        for entry in w.stat_entries:
            stats[entry.path] = entry
    for artifact_id in owned:
        linked.pop(artifact_id, None)

    run_conflict = "" if plain_inserts else _RUN_CONFLICT
    link_conflict = "" if plain_inserts else _LINK_CONFLICT
    _insert(con, "run", f"{RUN_COLUMNS}, updated_ns, identity", list(runs.values()), run_conflict)
    _insert(con, "artifact", ARTIFACT_COLUMNS, list(owned.values()), _OWN_ARTIFACT_CONFLICT)
    _insert(con, "artifact", ARTIFACT_COLUMNS, list(linked.values()), _LINKED_ARTIFACT_CONFLICT)
    groups = join_groups(con, list(links.values()), new_runs=plain_inserts)
    _insert(
        con,
        "run_artifact_link",
        "run_id, artifact_id, direction, key, meta, src, dst, lineage_group",
        [
            [*link, *link_nodes(link[0], link[1], link[2]), groups.get(link[0])]
            for link in links.values()
        ],
        link_conflict,
    )
    _insert(
        con,
        "content_identity",
        "id, hash, size_bytes, first_seen_at",
        list(contents.values()),
        "ON CONFLICT DO NOTHING",
    )
    write_stat_entries(con, list(stats.values()))
    write_facet_rows(con, [w.facets for w in writes if w.facets])


_STATUS = RUN_COLUMNS.split(", ").index("status")
_SIGNATURE = RUN_COLUMNS.split(", ").index("signature")


def completed_signatures(writes: Sequence[PendingWrite]) -> list[str]:
    """Signatures of the completed runs among ``writes``."""
    return [
        w.run_row[_SIGNATURE]
        for w in writes
        if w.run_row[_STATUS] == "completed" and w.run_row[_SIGNATURE]
    ]


def write_stat_entries(con: Any, entries: Sequence[StatCacheEntry]) -> None:
    """Upsert stat-cache entries (one multi-row statement per chunk)."""
    rows = [_stat_row(e) for e in entries]
    columns = "path, dev, ino, size, mtime_ns, ctime_ns, digest, recorded_ns"
    _insert(con, "stat_cache", columns, rows, _STAT_CONFLICT)


def _stat_row(e: StatCacheEntry) -> list[Any]:
    key = e.key
    return [e.path, key.dev, key.ino, key.size, key.mtime_ns, key.ctime_ns, e.digest, e.recorded_ns]


def _insert(con: Any, table: str, columns: str, rows: list[list[Any]], conflict: str) -> None:
    """Insert ``rows``: one row as a ``VALUES`` tuple, several as column lists.

    DuckDB converts Python parameters one by one (a few microseconds each),
    so a many-row ``VALUES`` list is slow; passing each column as one list
    and ``unnest``-ing them side by side is about ten times faster.
    """
    if not rows:
        return
    width = len(rows[0])
    if len(rows) == 1:
        placeholder = "(" + ", ".join("?" * width) + ")"
        con.execute(f"INSERT INTO {table} ({columns}) VALUES {placeholder} {conflict}", rows[0])
        return
    select = ", ".join(["unnest(?)"] * width)
    for start in range(0, len(rows), _ROWS_PER_COLUMN_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_COLUMN_STATEMENT]
        column_lists = [[row[i] for row in chunk] for i in range(width)]
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {select} {conflict}", column_lists)
