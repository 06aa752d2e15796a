"""Bring the database back in line with the journal, and say what was wrong.

* :func:`catch_up` replays snapshots still marked pending (a process died
  between its journal write and its DB commit). A tracker runs it when it
  opens its store, so nothing recorded in the journal is lost. All replayed
  snapshots are committed in one transaction.
* :func:`rebuild_from_journal` re-creates a deleted or damaged database from
  every snapshot under one or more run directories.

A replay never regresses a run: the store only accepts a snapshot at least
as new as the row it already has.

Every problem a catch-up meets is reported as a :class:`RecoveryWarning`
(``warnings.warn``) and on the ``consist`` logger, naming the file and what
was done about it, and listed in :attr:`RecoveryReport.warnings`:

* a ledger line that is not a ledger entry (garbage, a run id that is not a
  valid one): the dead process's ledger is moved to
  ``consist_runs/.pending/quarantine/`` once its readable entries are
  replayed, so it is never replayed again; since what the damaged lines said
  is lost, every run that has a journal snapshot but no (or an older,
  unfinished) row is then restored from its snapshot;
* an unreadable snapshot (or one naming another run) listed as pending: the
  dead ledgers listing it are quarantined; the snapshot stays where it is
  and the database keeps what it had;
* an entry named ``*.log`` in ``.pending`` that is not a regular file (a
  directory, a FIFO, a symlink): moved to the quarantine, never opened;
* temporary files a crash left between write and rename: removed.

A live process's ledger is never moved: its problems are reported and left
for the catch-up that follows the process's exit.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from consist.core.store.journal import Journal
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.pending_log import LedgerScan
from consist.models.records import ConsistRecord

logger = logging.getLogger("consist")

_REBUILD_BATCH = 2000
_LISTED = 10  # run ids named in one warning


class RecoveryWarning(RuntimeWarning):
    """A problem met (and dealt with) while bringing the store in line with the journal."""


@dataclass
class RecoveryReport:
    """What a catch-up or rebuild did.

    Attributes
    ----------
    replayed:
        Runs whose pending snapshot (or start record) was written to the database.
    skipped:
        Runs listed as pending whose snapshot was never written (nothing to replay).
    errors:
        ``{run id or file: reason}`` for snapshots and records that could not be read.
    restored:
        Runs missing from the database (or older there) restored from their
        snapshots after a damaged ledger.
    quarantined:
        Files and directories moved to ``.pending/quarantine/`` (their new paths).
    removed:
        Temporary files of crashed writes that were removed.
    warnings:
        Every warning issued, in order.
    """

    replayed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        """Report one problem (``warnings``, the ``consist`` logger, this report)."""
        self.warnings.append(text)
        logger.warning("consist recovery: %s", text)
        warnings.warn(text, RecoveryWarning, stacklevel=4)


def catch_up(store: MetadataStore, journal: Journal) -> RecoveryReport:
    """Replay every snapshot of ``journal`` the database may not have yet.

    Ledgers of processes that have died are removed once everything they
    listed has been replayed, or moved to the quarantine when they held
    entries that cannot be replayed (see the module docstring).

    Raises
    ------
    Exception
        Whatever the database raises when the replayed batch cannot be
        committed (a lock held too long, a full disk); ledgers are then left
        untouched, so the next open replays them again.
    """
    report = RecoveryReport()
    scan = journal.pending_scan()
    for path in scan.not_ledgers:
        moved = _quarantine(journal, path, report)
        if moved is not None:
            report.warn(f"{path} is not a pending ledger (not a regular file); moved it to {moved}")
    # Ledgers to quarantine (if dead), with what is wrong in each.
    bad_ledgers: dict[Path, list[str]] = {p: list(scan.problems[p]) for p in scan.damaged}
    keep: set[Path] = set()  # dead ledgers to read again next time (a transient error)
    records = _dead_starts(journal, scan, report, bad_ledgers)
    synced: dict[str, int] = {}
    for run_id in sorted(scan.outstanding):
        version = scan.outstanding[run_id]
        listing = {p for p, ids in scan.dead_pending.items() if run_id in ids}
        try:
            record = journal.read(run_id)
        except ValueError as exc:
            report.errors[run_id] = f"unreadable snapshot: {exc}"
            for path in listing:
                bad_ledgers.setdefault(path, []).append(
                    f"an entry for run {run_id!r}, whose snapshot cannot be read"
                )
            report.warn(
                f"the pending snapshot {journal.path_for(run_id)} cannot be read "
                f"({_short(exc)}); it was left in place and the database keeps what it had "
                f"for run {run_id!r} ({_fate(listing, scan)})"
            )
            continue
        except OSError as exc:
            report.errors[run_id] = f"unreadable snapshot: {exc}"
            keep |= listing
            report.warn(
                f"the pending snapshot {journal.path_for(run_id)} cannot be read "
                f"({_short(exc)}); it will be replayed when the store is next opened"
            )
            continue
        if record is None:  # the process died before writing it: nothing to replay
            synced[run_id] = version
            report.skipped.append(run_id)
            continue
        records.append(record)
        synced[run_id] = max(record.updated_ns, version)
        report.replayed.append(run_id)
    if records:
        store.sync_records(records, on_synced=lambda: journal.mark_synced_many(synced))
    elif synced:
        journal.mark_synced_many(synced)
    if scan.damaged:
        _restore_missing(store, journal, report)
    _settle_ledgers(journal, scan, bad_ledgers, keep, report)
    if scan.dead_files or scan.problems or scan.not_ledgers:
        _remove_stale_temp_files(journal, scan, report)
    return report


def _dead_starts(
    journal: Journal,
    scan: LedgerScan,
    report: RecoveryReport,
    bad_ledgers: dict[Path, list[str]],
) -> list[ConsistRecord]:
    """Turn start records of runs whose process died into snapshots (and records to sync).

    A run that already has a snapshot (it ended, or wrote one meanwhile) is
    left alone: its own snapshot is newer than the start record.
    """
    records = []
    for run_id, (_version, payload, ledger) in sorted(scan.dead_starts.items()):
        try:
            record = ConsistRecord.model_validate_json(payload)
            if record.run.id != run_id:
                raise ValueError(f"it holds run {record.run.id!r}")
        except ValueError as exc:
            report.errors[run_id] = f"unreadable start record: {exc}"
            bad_ledgers.setdefault(ledger, []).append(
                f"an unreadable start record of run {run_id!r}"
            )
            report.warn(
                f"the start record of run {run_id!r} in {ledger} cannot be read "
                f"({_short(exc)}); the run leaves no trace in the database"
            )
            continue
        if journal.path_for(run_id).exists() or not journal.write_if_absent(record):
            continue
        records.append(record)
        report.replayed.append(run_id)
    return records


def _short(exc: BaseException) -> str:
    """One line of an error (pydantic's are several, with a link)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("For further information")]
    text = " ".join(lines) or type(exc).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def _fate(ledgers: set[Path], scan: LedgerScan) -> str:
    dead = sorted(str(p) for p in ledgers if p in scan.dead_files)
    if dead:
        return "its ledger entry is set aside with " + ", ".join(dead)
    return "its process is still running; its ledger is left alone"


def _restore_missing(store: MetadataStore, journal: Journal, report: RecoveryReport) -> None:
    """Restore runs whose snapshot exists but whose row is missing or unfinished.

    Run after a damaged ledger: the lines lost may have listed snapshots the
    database never received. Only missing rows and rows still ``running``
    are candidates (a finished row is only ever replaced by a newer
    snapshot of a run that was re-opened, which its ledger line covers).
    """
    ids = journal.snapshot_ids()
    known = store.run_versions(ids)
    records = []
    for run_id in ids:
        row = known.get(run_id)
        if row is not None and row[0] != "running":
            continue
        try:
            record = journal.read(run_id)
        except (OSError, ValueError) as exc:
            report.errors[run_id] = f"unreadable snapshot: {exc}"
            report.warn(
                f"{journal.path_for(run_id)} cannot be read ({_short(exc)}); run {run_id!r} "
                "cannot be restored from it and was left as the database has it"
            )
            continue
        if record is None or (row is not None and record.updated_ns <= row[1]):
            continue
        records.append(record)
    if not records:
        return
    store.sync_records(records)
    restored = [r.run.id for r in records]
    report.restored.extend(restored)
    shown = ", ".join(repr(r) for r in restored[:_LISTED])
    more = f" and {len(restored) - _LISTED} more" if len(restored) > _LISTED else ""
    report.warn(
        f"restored {len(restored)} run(s) missing or out of date in {store.db_path} from "
        f"their journal snapshots in {journal.runs_dir} after a damaged ledger: {shown}{more}"
    )


def _settle_ledgers(
    journal: Journal,
    scan: LedgerScan,
    bad_ledgers: dict[Path, list[str]],
    keep: set[Path],
    report: RecoveryReport,
) -> None:
    """Remove clean dead ledgers, quarantine damaged ones, report live damaged ones."""
    for path in scan.dead_files:
        if path in keep:
            if path in scan.problems:
                report.warn(
                    f"the pending ledger {path} holds {'; '.join(scan.problems[path])}; kept "
                    "until its other entries can be replayed"
                )
            continue
        if path in bad_ledgers:
            moved = _quarantine(journal, path, report)
            if moved is not None:
                report.warn(
                    f"the pending ledger {path} holds {'; '.join(bad_ledgers[path])}; its "
                    f"readable entries were replayed and it was moved to {moved}"
                )
            continue
        if path in scan.problems:  # harmless (a start record cut off by the kill)
            report.warn(f"the pending ledger {path}: {'; '.join(scan.problems[path])}; removed it")
        path.unlink(missing_ok=True)
    for path in scan.live_files:
        if path in scan.problems:
            report.warn(
                f"the pending ledger {path} holds {'; '.join(scan.problems[path])}; its "
                "process is still running, so it is left in place until that process exits"
            )
    for path, problems in scan.problems.items():
        if path not in scan.dead_files and path not in scan.live_files:  # could not be opened
            report.warn(f"the pending ledger {path} {'; '.join(problems)}; it was skipped")


def _quarantine(journal: Journal, path: Path, report: RecoveryReport) -> Path | None:
    try:
        moved = journal.quarantine(path)
    except FileNotFoundError:
        return None  # another process's catch-up set it aside first
    except OSError as exc:
        report.warn(f"could not move {path} aside ({_short(exc)}); it was left in place")
        return None
    report.quarantined.append(str(moved))
    return moved


def _remove_stale_temp_files(journal: Journal, scan: LedgerScan, report: RecoveryReport) -> None:
    removed = journal.remove_stale_temp_files(_pids(scan.dead_files), _pids(scan.live_files))
    for path in removed:
        report.removed.append(str(path))
        report.warn(f"removed {path}, the temporary file of a write interrupted by a crash")


def _pids(ledgers: Iterable[Path]) -> set[int]:
    """Owner pids from ledger names ``<pid>-<ns>.log``."""
    pids = set()
    for path in ledgers:
        head = path.name.split("-", 1)[0]
        if head.isdigit():
            pids.add(int(head))
    return pids


def rebuild_from_journal(
    db_path: str | os.PathLike[str],
    run_dirs: Iterable[str | os.PathLike[str]],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> RecoveryReport:
    """Re-create (or refill) the database at ``db_path`` from journal snapshots.

    Parameters
    ----------
    db_path:
        Database file to (re)build. It may be missing; existing rows are kept
        and only updated by newer snapshots.
    run_dirs:
        Run directories whose ``consist_runs/*.json`` snapshots are replayed.
    progress:
        Called with ``(done, total)``: snapshot files read (the first half
        of ``total``) and runs written (the second half).

    Returns
    -------
    RecoveryReport
        Replayed run ids, and unreadable snapshot files with their errors.

    Raises
    ------
    ValueError
        If ``db_path`` exists and is not a Consist store (see
        :mod:`consist.core.store.store_identity`).
    """
    store = MetadataStore(str(db_path))
    report = RecoveryReport()
    records = []
    journals = [Journal(Path(run_dir)) for run_dir in run_dirs]
    files = sum(len(j.snapshot_ids()) for j in journals) if progress is not None else 0
    read = 0
    for journal in journals:
        for path, record, error in journal.scan():
            if error is not None:
                report.errors[str(path)] = error
            else:
                records.append(record)
            read += 1
            if progress is not None:
                progress(min(read, files), 2 * files)
    # Oldest first, so producers are written before the runs that consumed
    # their outputs. Pending markers are left alone: they belong to the
    # run_dir's own store, which may not be the one rebuilt here.
    records.sort(key=lambda r: (r.run.created_at, r.run.id))
    try:
        store.ensure_schema()
        for start in range(0, len(records), _REBUILD_BATCH):
            store.sync_records(records[start : start + _REBUILD_BATCH])
            if progress is not None:
                written = min(start + _REBUILD_BATCH, len(records))
                progress(files + written * files // max(len(records), 1), 2 * files)
        report.replayed.extend(r.run.id for r in records)
    finally:
        store.close()
    return report
