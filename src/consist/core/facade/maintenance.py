"""Store maintenance methods of the Tracker (checking and repairing the store).

Mixed into :class:`~consist.core.tracker.Tracker`; the work is done by
services in :mod:`consist.core.store` (:mod:`~consist.core.store.doctor`,
:mod:`~consist.core.store.compaction`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# The services load on first use: a Tracker that never maintains its store
# does not import them (nor, through them, the PostgreSQL engine).
if TYPE_CHECKING:  # pragma: no cover
    from consist.core.store.compaction import CompactionReport
    from consist.core.store.doctor import DoctorReport, StoreReport
    from consist.core.store.journal import Journal
    from consist.core.store.metadata_store import MetadataStore
    from consist.core.store.recovery import RecoveryReport
    from consist.core.tracker_config import TrackerConfig


class TrackerMaintenance:
    """Store maintenance methods of the Tracker."""

    store: MetadataStore | None
    journal: Journal
    recovery: RecoveryReport | None
    config: TrackerConfig

    def _maintained_store(self, what: str) -> MetadataStore:
        if self.store is None:
            raise RuntimeError(
                f"{what} needs a database; construct the Tracker with db_path=... or db_url=..."
            )
        return self.store

    def store_report(self) -> StoreReport:
        """Describe the store: tables and row counts, schema version, size, pending writes.

        Reads only (works on a ``read_only=True`` tracker).

        Returns
        -------
        StoreReport
            ``db_path``, ``size_bytes``, ``wal_bytes``, ``schema_version``,
            ``tables`` (``{table: rows}``; ingested tables under the
            ``global_tables.<t>`` name they are queried by, though on a DuckDB
            store their rows are kept in ``hot_rows.<t>``), ``logged_writes`` (write-log rows
            not applied yet), ``journal_pending`` (runs whose journal snapshot
            under this tracker's ``run_dir`` the database may lack),
            ``dead_starts`` (runs begun by a dead process, still only in a
            pending ledger), ``run_dir`` and ``table_bytes`` (None on DuckDB).
            With a PostgreSQL store (``db_url``): ``db_path`` is the URL
            without its password, ``size_bytes`` the sum of ``table_bytes``
            (``{table: pg_total_relation_size}``: rows, indexes, TOAST),
            ``wal_bytes`` and ``logged_writes`` None (the server's log is
            shared by its databases; the store writes its tables directly).

        Raises
        ------
        RuntimeError
            If the tracker has no database.
        """
        from consist.core.store.doctor import store_report

        return store_report(self._maintained_store("store_report()"), self.journal)

    def doctor(self, fix: bool = False) -> DoctorReport:
        """Check the store against its journal and its runs' processes; optionally repair.

        Finds runs stuck in ``running`` whose process is gone (same host, pid
        gone or reused; runs of other hosts are only noted), link rows whose
        run or artifact is missing, journal snapshots the database lacks or
        holds older or newer, start records and snapshots of dead processes
        not replayed yet, unapplied write-log rows and unreadable snapshots.
        See :mod:`consist.core.store.doctor`. With a PostgreSQL store
        (``db_url``) every check runs but the write-log one (a DuckDB file's;
        ``notes`` says it was skipped).

        Parameters
        ----------
        fix:
            Repair what can be repaired: replay missing or newer snapshots,
            mark dead ``running`` runs ``failed`` (with the reason in
            ``meta["error"]``, journal first), delete dangling link rows.
            Needs a writable tracker, whose opening already replayed dead
            processes' ledgers and applied the write log (listed in
            ``replayed_on_open``).

        Returns
        -------
        DoctorReport
            ``findings`` (each with ``kind``, ``subject``, ``detail``,
            ``fixable``, ``fixed``, ``action``), ``notes``,
            ``replayed_on_open``; ``healthy`` is True when no finding is
            left unrepaired.

        Raises
        ------
        RuntimeError
            If the tracker has no database.
        ValueError
            If ``fix`` is True on a ``read_only=True`` tracker (nothing is changed).
        """
        store = self._maintained_store("doctor()")
        if fix and self.config.read_only:
            raise ValueError(
                "doctor(fix=True) changes the store; open the Tracker without read_only=True"
            )
        from consist.core.store.doctor import diagnose, repair

        report, plan = diagnose(store, self.journal)
        report.fix = fix
        if fix:
            if self.recovery is not None:
                report.replayed_on_open = sorted(
                    set(self.recovery.replayed) | set(self.recovery.restored)
                )
            repair(store, self.journal, report, plan)
        return report

    def compact_store(self) -> CompactionReport:
        """Give the space of deleted rows back: copy the store into a compact file.

        DuckDB does not shrink its file on ``CHECKPOINT`` or ``VACUUM``; this
        copies every table into a new file, checks the row counts match, and
        renames it over the store, holding the store's write turn meanwhile
        (other Consist processes wait, up to their lock timeout).

        With a PostgreSQL store (``db_url``) this runs ``VACUUM (ANALYZE)``
        over the database's tables instead (other sessions keep reading and
        writing): dead rows' space becomes reusable, empty pages at the end
        of a table go back to the operating system, the planner's statistics
        are refreshed. ``VACUUM FULL``, which rewrites tables but locks out
        every session meanwhile, is left to the database's administrator.

        Returns
        -------
        CompactionReport
            ``db_path``, ``size_before`` and ``size_after`` (bytes, with the
            write-ahead log; PostgreSQL: the tables' ``pg_total_relation_size``),
            ``saved``, ``tables`` (``{table: rows}``).

        Raises
        ------
        RuntimeError
            If the tracker has no database, or the copy does not hold the
            same rows (the original is kept); PostgreSQL: if called inside a
            store transaction of this thread.
        ValueError
            On a ``read_only=True`` tracker.
        StoreLockTimeout
            If another process keeps the store past the lock timeout.
        """
        store = self._maintained_store("compact_store()")
        if self.config.read_only:
            raise ValueError(
                "compact_store() rewrites the store file; open the Tracker without read_only=True"
            )
        from consist.core.store.compaction import compact

        return compact(store, lock_timeout_s=self.config.lock_timeout_s)
