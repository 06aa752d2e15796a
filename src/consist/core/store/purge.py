"""SQL for purging runs: what a purge removes, and removing it.

A purge of run ``R`` removes:

* the run rows of the purged runs, their links, their ``run_facet`` and
  ``run_config_kv`` rows;
* the artifacts they own (``artifact.run_id`` is a purged run) with their
  facet, key/value and schema rows; ``config_facet`` payloads nothing
  references any more;
* the files of owned artifacts that a purged run logged as *outputs*, when
  the file lies strictly inside ``run_dir`` or a mount and no artifact that
  stays records the same URI (inputs are never deleted, nor anything outside
  those roots, nor a file whose size differs from the recorded one: such
  files are listed as kept), with their stat-cache rows,
  and the directories that the deletions leave empty;
* the purged runs' journal snapshots (else a rebuild from the journal would
  bring them back), and ``consist.json`` when it is a copy of one of them.

A run's *dependents* are the runs that would lose something: runs that link
an artifact the purge removes (a consumer, or a cache hit that was handed
the output) and scenario steps whose header is purged. A purge with
dependents is refused unless it cascades, which purges the dependents too,
and theirs, and so on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consist.core.store.engines.pg_maintenance import (
    count_deleted,
    exclusive_transaction,
    is_postgres,
)
from consist.core.store.journal import Journal
from consist.core.store.metadata_store import MetadataStore


class PurgeRefusedError(ValueError):
    """The purge would break other runs (or remove hot data); nothing was deleted."""


@dataclass(frozen=True)
class PurgeRun:
    """A run a purge removes (or that blocks it).

    Attributes
    ----------
    id, model, status:
        The run.
    reason:
        ``"requested"``, or why it is downstream: ``"consumes <key> of <run>"``,
        ``"cache hit handed <key> of <run>"``, ``"step of <run>"``.
    """

    id: str
    model: str
    status: str
    reason: str


@dataclass(frozen=True)
class PurgeArtifact:
    """An artifact row a purge removes."""

    id: str
    key: str
    uri: str
    run_id: str


@dataclass(frozen=True)
class PurgeFile:
    """A file a purge deletes (``reason`` None) or keeps (``reason`` says why)."""

    path: str
    artifact_id: str
    reason: str | None = None


@dataclass
class PurgePlan:
    """What purging a run removes; after ``purge_run(..., dry_run=False)``, what it removed.

    Attributes
    ----------
    run_id:
        The run asked for.
    cascade:
        Whether dependents are purged too.
    runs:
        The runs removed (the requested one first, then its dependents with
        ``cascade``).
    blocked_by:
        Dependents that block the purge (empty with ``cascade``); a blocked
        purge deletes nothing.
    links:
        ``(run_id, artifact_id, direction, key)`` of every link removed.
    artifacts:
        Artifact rows removed.
    files:
        Files deleted: recorded outputs strictly inside run_dir or a mount.
    kept_files:
        Files of removed artifacts that stay on disk, with the reason
        (an input, outside run_dir and the mounts, shared with an artifact
        that stays, already missing).
    journal_files:
        Journal snapshots removed.
    missing_journal:
        Purged runs with no journal snapshot under this run_dir (another
        run_dir may still hold one, which a rebuild from it would restore).
    executed:
        True once the purge was carried out (False for a dry run).
    deleted_rows:
        Rows deleted per table (after execution).
    errors:
        Files that could not be deleted (after execution; the rows are gone).
    """

    run_id: str
    cascade: bool
    runs: list[PurgeRun] = field(default_factory=list)
    blocked_by: list[PurgeRun] = field(default_factory=list)
    links: list[tuple[str, str, str, str]] = field(default_factory=list)
    artifacts: list[PurgeArtifact] = field(default_factory=list)
    files: list[PurgeFile] = field(default_factory=list)
    kept_files: list[PurgeFile] = field(default_factory=list)
    journal_files: list[str] = field(default_factory=list)
    missing_journal: list[str] = field(default_factory=list)
    executed: bool = False
    deleted_rows: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        """Whether other runs depend on the purge (and ``cascade`` is off)."""
        return bool(self.blocked_by)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-friendly data."""
        return {
            "run_id": self.run_id,
            "cascade": self.cascade,
            "executed": self.executed,
            "blocked": self.blocked,
            "runs": [vars(r) for r in self.runs],
            "blocked_by": [vars(r) for r in self.blocked_by],
            "links": [
                {"run_id": r, "artifact_id": a, "direction": d, "key": k}
                for r, a, d, k in self.links
            ],
            "artifacts": [vars(a) for a in self.artifacts],
            "files": [f.path for f in self.files],
            "kept_files": [{"path": f.path, "reason": f.reason} for f in self.kept_files],
            "journal_files": list(self.journal_files),
            "missing_journal": list(self.missing_journal),
            "deleted_rows": dict(self.deleted_rows),
            "errors": list(self.errors),
        }


def _dependents(con: Any, purged: Sequence[str]) -> list[PurgeRun]:
    """Runs outside ``purged`` that link an artifact owned by a purged run, or are its steps."""
    rows = con.execute(
        "SELECT DISTINCT r.id, r.model_name, r.status, l.direction, l.key, a.run_id "
        "FROM run_artifact_link l JOIN artifact a ON a.id = l.artifact_id "
        "JOIN run r ON r.id = l.run_id "
        "WHERE a.run_id IN (SELECT unnest($runs)) AND l.run_id NOT IN (SELECT unnest($runs)) "
        "UNION ALL "
        "SELECT id, model_name, status, 'step', NULL, parent_run_id FROM run "
        "WHERE parent_run_id IN (SELECT unnest($runs)) AND id NOT IN (SELECT unnest($runs)) "
        "ORDER BY 1, 4",
        {"runs": list(purged)},
    ).fetchall()
    found: dict[str, PurgeRun] = {}
    for run_id, model, status, direction, key, owner in rows:
        if run_id in found:
            continue
        if direction == "step":
            reason = f"step of {owner}"
        elif direction == "input":
            reason = f"consumes {key} of {owner}"
        else:
            reason = f"cache hit handed {key} of {owner}"
        found[run_id] = PurgeRun(run_id, model, status, reason)
    return list(found.values())


def _inside(path: str, roots: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real != base and real.startswith(base.rstrip(os.sep) + os.sep):
            return True
    return False


def _same_file(path: str, other: str) -> bool:
    real = os.path.realpath(path)
    return real == os.path.realpath(other) or real.startswith(os.path.realpath(other) + ".")


def plan_purge(
    store: MetadataStore,
    journal: Journal,
    run_id: str,
    *,
    cascade: bool,
    resolve: Callable[[str], str],
    roots: Sequence[str],
) -> PurgePlan:
    """What purging ``run_id`` removes (nothing is changed).

    Parameters
    ----------
    resolve:
        Turns an artifact URI into a local path.
    roots:
        Directories files may be deleted from (run_dir and the mount roots).

    Raises
    ------
    ValueError
        If no run has this id.
    """
    store.flush()  # queued snapshots join the write log, applied before the read
    store_file = None if is_postgres(store) else store.db_path  # a server has no file here
    plan = PurgePlan(run_id=run_id, cascade=cascade)
    with store.connections.connection() as con:
        row = con.execute(
            "SELECT id, model_name, status FROM run WHERE id = ?", [run_id]
        ).fetchone()
        if row is None:
            raise ValueError(f"no run with id {run_id!r}")
        plan.runs.append(PurgeRun(row[0], row[1], row[2], "requested"))
        purged = [run_id]
        while True:
            dependents = _dependents(con, purged)
            if not dependents:
                break
            if not cascade:
                plan.blocked_by = dependents
                break
            plan.runs.extend(dependents)
            purged.extend(d.id for d in dependents)
        params = {"runs": purged}
        plan.links = [
            (r[0], str(r[1]), r[2], r[3])
            for r in con.execute(
                "SELECT run_id, artifact_id, direction, key FROM run_artifact_link "
                "WHERE run_id IN (SELECT unnest($runs)) ORDER BY run_id, direction, key",
                params,
            ).fetchall()
        ]
        arts = con.execute(
            "SELECT a.id, a.key, a.uri, a.run_id, a.size_bytes, "
            "EXISTS (SELECT 1 FROM run_artifact_link o WHERE o.artifact_id = a.id "
            "  AND o.direction = 'output' AND o.run_id IN (SELECT unnest($runs))), "
            "EXISTS (SELECT 1 FROM artifact s WHERE s.uri = a.uri "
            "  AND (s.run_id IS NULL OR s.run_id NOT IN (SELECT unnest($runs)))) "
            "FROM artifact a WHERE a.run_id IN (SELECT unnest($runs)) ORDER BY a.run_id, a.key",
            params,
        ).fetchall()
        plan.artifacts = [PurgeArtifact(str(a[0]), a[1], a[2], a[3]) for a in arts]
        ingested = con.execute(
            "SELECT artifact_id, table_name FROM ingested_artifact "
            "WHERE artifact_id IN (SELECT id FROM artifact WHERE run_id IN (SELECT unnest($runs)))",
            params,
        ).fetchall()
    if ingested:
        tables = ", ".join(sorted({r[1] for r in ingested}))
        raise PurgeRefusedError(
            f"cannot purge run {run_id!r}: {len(ingested)} of its artifacts were ingested into "
            f"hot data ({tables}); purge does not remove hot data rows, so nothing was deleted"
        )
    seen_paths: set[str] = set()
    for art_id, _key, uri, _owner, size, is_output, shared in arts:
        art_id = str(art_id)
        try:
            path = resolve(uri)
        except ValueError as exc:
            plan.kept_files.append(PurgeFile(uri, art_id, f"not resolvable here ({exc})"))
            continue
        if path in seen_paths:
            continue
        seen_paths.add(path)
        if not is_output:
            reason = "an input, never deleted"
        elif not os.path.isabs(path):
            reason = "not a local path"
        elif not _inside(path, roots):
            reason = "outside run_dir and the mounts"
        elif _inside(path, [str(journal.runs_dir)]) or (
            store_file is not None and _same_file(path, store_file)
        ):
            reason = "a file of the store or its journal"
        elif shared:
            reason = "also recorded by an artifact that stays"
        elif not os.path.isfile(path):
            reason = "already missing" if not os.path.exists(path) else "not a regular file"
        elif size is not None and os.path.getsize(path) != size:
            # Another file at that path (a wrong --run-dir, or rewritten since): not ours.
            reason = f"its size differs from the recorded {size} bytes"
        else:
            plan.files.append(PurgeFile(path, art_id))
            continue
        plan.kept_files.append(PurgeFile(path, art_id, reason))
    for rid in purged:
        snapshot = journal.path_for(rid)
        if snapshot.is_file():
            plan.journal_files.append(str(snapshot))
        else:
            plan.missing_journal.append(rid)
    if _latest_run_id(journal.latest_path) in purged:
        plan.journal_files.append(str(journal.latest_path))  # a copy of a purged snapshot
    return plan


def _latest_run_id(path: Path) -> str | None:
    """The run ``consist.json`` holds, or None (missing or unreadable)."""
    try:
        run = json.loads(path.read_bytes()).get("run") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return run.get("id") if isinstance(run, dict) else None


# Deletions in dependency order; every statement takes $runs (the purged run ids).
_DELETES: tuple[tuple[str, str], ...] = (
    (
        "artifact_kv",
        "DELETE FROM artifact_kv WHERE artifact_id IN "
        "(SELECT id FROM artifact WHERE run_id IN (SELECT unnest($runs)))",
    ),
    (
        "artifact_facet",
        "DELETE FROM artifact_facet WHERE artifact_id IN "
        "(SELECT id FROM artifact WHERE run_id IN (SELECT unnest($runs)))",
    ),
    (
        "artifact_schema",
        "DELETE FROM artifact_schema WHERE artifact_id IN "
        "(SELECT id FROM artifact WHERE run_id IN (SELECT unnest($runs)))",
    ),
    ("run_artifact_link", "DELETE FROM run_artifact_link WHERE run_id IN (SELECT unnest($runs))"),
    ("artifact", "DELETE FROM artifact WHERE run_id IN (SELECT unnest($runs))"),
    ("run_config_kv", "DELETE FROM run_config_kv WHERE run_id IN (SELECT unnest($runs))"),
    ("run_facet", "DELETE FROM run_facet WHERE run_id IN (SELECT unnest($runs))"),
    ("run", "DELETE FROM run WHERE id IN (SELECT unnest($runs))"),
)
_ORPHAN_FACETS = (
    "DELETE FROM config_facet WHERE id NOT IN (SELECT facet_id FROM run_facet) "
    "AND id NOT IN (SELECT facet_id FROM artifact_facet) "
    "AND id NOT IN (SELECT facet_id FROM run_config_kv) "
    "AND id NOT IN (SELECT facet_id FROM artifact_kv)"
)


# The tables a purge deletes from (locked against other writers on PostgreSQL).
_LOCKED = (*(table for table, _ in _DELETES), "config_facet", "stat_cache")


def execute_purge(store: MetadataStore, journal: Journal, plan: PurgePlan) -> PurgePlan:
    """Carry out ``plan`` (from :func:`plan_purge`): rows in one transaction, then files.

    Raises
    ------
    PurgeRefusedError
        If the plan is blocked by dependents (nothing is deleted).
    """
    if plan.blocked:
        names = ", ".join(f"{r.id} ({r.reason})" for r in plan.blocked_by[:5])
        more = f" and {len(plan.blocked_by) - 5} more" if len(plan.blocked_by) > 5 else ""
        raise PurgeRefusedError(
            f"run {plan.run_id!r} has dependents: {names}{more}; nothing was deleted. Pass "
            "--cascade (cascade=True) to purge them too"
        )
    params = {"runs": [r.id for r in plan.runs]}
    paths = [f.path for f in plan.files]
    deleted = count_deleted if is_postgres(store) else _deleted

    def remove_rows(con: Any) -> dict[str, int]:
        counts: dict[str, int] = {}
        late = _dependents(con, params["runs"])
        if late:  # a run recorded since the plan was made
            raise PurgeRefusedError(
                f"run {late[0].id!r} started depending on the purged runs ({late[0].reason}) "
                "after the purge was planned; nothing was deleted: plan the purge again"
            )
        for table, sql in _DELETES:
            counts[table] = deleted(con, sql, params)
        counts["config_facet"] = deleted(con, _ORPHAN_FACETS, {})
        stat_paths = sorted({*paths, *(os.path.realpath(p) for p in paths)})
        counts["stat_cache"] = (
            deleted(
                con,
                "DELETE FROM stat_cache WHERE path IN (SELECT unnest($paths))",
                {"paths": stat_paths},
            )
            if stat_paths
            else 0
        )
        return counts

    # PostgreSQL: no run may start depending on the purged runs (or share a
    # facet deleted as an orphan) between the check above and the commit.
    plan.deleted_rows = exclusive_transaction(store, _LOCKED, remove_rows)
    plan.executed = True
    for f in plan.files:
        try:
            os.unlink(f.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            plan.errors.append(f"{f.path}: {exc.strerror or exc}")
            continue
        _prune_empty_dirs(Path(f.path).parent, journal.run_dir)
    for snapshot in plan.journal_files:
        try:
            os.unlink(snapshot)
        except FileNotFoundError:
            pass
        except OSError as exc:
            plan.errors.append(f"{snapshot}: {exc.strerror or exc}")
    outstanding = set(journal.pending_run_ids())
    for run in plan.runs:
        if run.id in outstanding:
            journal.mark_synced(run.id)  # nothing of theirs is left to replay
    return plan


def _deleted(con: Any, sql: str, params: dict[str, Any]) -> int:
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def _prune_empty_dirs(directory: Path, run_dir: Path) -> None:
    """Remove ``directory`` and its parents while empty, stopping at ``run_dir``."""
    stop = Path(os.path.realpath(run_dir))
    current = Path(os.path.realpath(directory))
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
