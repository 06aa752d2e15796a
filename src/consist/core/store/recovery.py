"""Bring the database back in line with the journal.

* :func:`catch_up` replays snapshots still marked pending (a process died
  between its journal write and its DB commit). A tracker runs it when it
  opens its store, so nothing recorded in the journal is lost.
* :func:`rebuild_from_journal` re-creates a deleted or damaged database from
  every snapshot under one or more run directories.

A replay never regresses a run: the store only accepts a snapshot at least
as new as the row it already has.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from consist.core.store.journal import Journal
from consist.core.store.metadata_store import MetadataStore
from consist.models.records import ConsistRecord


@dataclass
class RecoveryReport:
    """What a catch-up or rebuild did."""

    replayed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def catch_up(store: MetadataStore, journal: Journal) -> RecoveryReport:
    """Replay every snapshot of ``journal`` the database may not have yet.

    Ledgers of processes that have died are removed once everything they
    listed has been replayed.
    """
    report = RecoveryReport()
    scan = journal.pending_scan()
    _restore_dead_starts(store, journal, scan.dead_starts, report)
    for run_id in sorted(scan.outstanding):
        try:
            record = journal.read(run_id)
        except (OSError, ValueError) as exc:
            report.errors[run_id] = f"unreadable snapshot: {exc}"
            continue
        if record is None:
            journal.mark_synced(run_id, up_to_ns=scan.outstanding[run_id])
            report.skipped.append(run_id)
            continue
        store.sync_record(record)
        journal.mark_synced(run_id, up_to_ns=max(record.updated_ns, scan.outstanding[run_id]))
        report.replayed.append(run_id)
    if not report.errors:
        for path in scan.dead_files:
            path.unlink(missing_ok=True)
    return report


def _restore_dead_starts(
    store: MetadataStore,
    journal: Journal,
    starts: dict[str, tuple[int, bytes]],
    report: RecoveryReport,
) -> None:
    """Turn start records of runs whose process died into snapshots and rows.

    A run that already has a snapshot (it ended, or wrote one meanwhile) is
    left alone: its own snapshot is newer than the start record.
    """
    for run_id, (_version, payload) in sorted(starts.items()):
        try:
            record = ConsistRecord.model_validate_json(payload)
        except ValueError as exc:
            report.errors[run_id] = f"unreadable start record: {exc}"
            continue
        if journal.path_for(run_id).exists() or not journal.write_if_absent(record):
            continue
        store.sync_record(record)
        report.replayed.append(run_id)


def rebuild_from_journal(
    db_path: str | os.PathLike[str], run_dirs: Iterable[str | os.PathLike[str]]
) -> RecoveryReport:
    """Re-create (or refill) the database at ``db_path`` from journal snapshots.

    Parameters
    ----------
    db_path:
        Database file to (re)build. It may be missing; existing rows are kept
        and only updated by newer snapshots.
    run_dirs:
        Run directories whose ``consist_runs/*.json`` snapshots are replayed.

    Returns
    -------
    RecoveryReport
        Replayed run ids, and unreadable snapshot files with their errors.
    """
    store = MetadataStore(str(db_path))
    report = RecoveryReport()
    records = []
    for run_dir in run_dirs:
        for path, record, error in Journal(Path(run_dir)).scan():
            if error is not None:
                report.errors[str(path)] = error
            else:
                records.append(record)
    # Oldest first, so producers are written before the runs that consumed
    # their outputs. Pending markers are left alone: they belong to the
    # run_dir's own store, which may not be the one rebuilt here.
    records.sort(key=lambda r: (r.run.created_at, r.run.id))
    try:
        store.ensure_schema()
        for record in records:
            store.sync_record(record)
            report.replayed.append(record.run.id)
    finally:
        store.close()
    return report
