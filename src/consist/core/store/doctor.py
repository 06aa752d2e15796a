"""Inspecting the store and finding (and repairing) what is out of line.

:func:`store_report` describes a store file: its tables with row counts,
schema version, size, and what is not applied yet (write-log rows, journal
snapshots the database may lack). :func:`diagnose` lists problems:

* ``dead_running``: a run still ``running`` whose process is gone;
* ``dangling_link``: a ``run_artifact_link`` row whose run or artifact row
  is missing;
* ``link_without_edge``: link rows without their lineage edge (``src`` /
  ``dst``, schema 7), written by hand or by a Consist older than schema 7
  still writing to the store; lineage does not walk them;
* ``missing_in_db`` / ``db_older`` / ``db_newer``: a journal snapshot under
  ``run_dir/consist_runs`` that the database lacks, or whose row is older
  or newer than the snapshot;
* ``unreplayed``: a start record or pending snapshot of a dead process that
  has not been replayed into the database yet;
* ``unapplied_writes``: write-log rows a process that died left unapplied;
* ``unreadable_snapshot``: a snapshot file that cannot be parsed.

On a PostgreSQL store (``db_url``) every check runs but ``unapplied_writes``:
the write log belongs to a DuckDB file (a PostgreSQL store writes to its
tables directly), and the report's notes say so. :func:`store_report` reads
the tables' sizes from the server there (``table_bytes``).

How a run's process is known to be gone
---------------------------------------
Every run records ``meta["host"]`` and ``meta["pid"]`` at its start. A
``running`` run is *dead* when its host is this host and either no process
has that pid (``kill(pid, 0)`` fails with ``ESRCH``), or that pid is a
zombie, or the process with that pid started after the run was created (the
pid was reused); the last two are read from ``/proc`` where available. A
run recorded on another host, or without a pid, cannot be checked from
here: it is listed as a note, never changed.
A live pid always counts as alive, so a repair never touches a run that is
still executing. (The pending ledgers' locks tell a dead process's ledger
from a live one's too, but a ledger is truncated once everything in it is
committed, so it cannot say which process owns a run; the recorded pid can.)

:func:`repair` acts on a diagnosis: replays snapshots the database lacks or
holds older (an older snapshot never overwrites a newer row), marks dead
``running`` runs ``failed`` (journal first, then the database, like any run
end; a run without a snapshot under this ``run_dir`` is left alone, since
its journal is elsewhere), deletes dangling link rows and fills missing
lineage edges. What cannot be repaired (a database row
newer than its snapshot, an unreadable snapshot) is left alone and stays in
the report.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from consist.core.store.engines.pg_maintenance import (
    is_postgres,
    row_counts,
    table_bytes,
    user_tables,
)
from consist.core.store.hot_layout import ROWS_SCHEMA
from consist.core.store.hot_tables import GLOBAL_SCHEMA
from consist.core.store.journal import Journal
from consist.core.store.lineage_groups import label_unlabelled
from consist.core.store.lineage_store import LINK_DST_SQL, LINK_SRC_SQL
from consist.core.store.metadata_store import MetadataStore
from consist.models.records import ConsistRecord
from consist.models.run import Run, utc_now

# Runs whose status the doctor reads from the run table.
_RUNNING_SQL = "SELECT id FROM run WHERE status = 'running' ORDER BY created_at, id"

_DANGLING_SQL = """
SELECT l.run_id, CAST(l.artifact_id AS VARCHAR), l.direction, l.key,
       r.id IS NULL AS no_run, a.id IS NULL AS no_artifact
FROM run_artifact_link l
LEFT JOIN run r ON r.id = l.run_id
LEFT JOIN artifact a ON a.id = l.artifact_id
WHERE r.id IS NULL OR a.id IS NULL
ORDER BY l.run_id, l.key, l.direction
"""

_NO_EDGE_SQL = "SELECT count(*) FROM run_artifact_link WHERE src IS NULL OR dst IS NULL"
_NO_GROUP_SQL = "SELECT count(*) FROM run_artifact_link WHERE lineage_group IS NULL"
_FILL_EDGES_SQL = (
    f"UPDATE run_artifact_link SET src = {LINK_SRC_SQL}, dst = {LINK_DST_SQL}, "
    "lineage_group = NULL WHERE src IS NULL OR dst IS NULL"  # labelled again right after
)

_TABLES_SQL = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_catalog = current_database()
ORDER BY table_schema = 'main' DESC, table_schema, table_name
"""


@dataclass
class StoreReport:
    """What a store holds (see :meth:`Tracker.store_report`).

    Attributes
    ----------
    db_path:
        The DuckDB file; for a PostgreSQL store its URL without the password.
    size_bytes, wal_bytes:
        Size of the file and of its write-ahead log (0 when there is none).
        PostgreSQL: ``size_bytes`` is the sum of the tables'
        ``pg_total_relation_size`` (see ``table_bytes``) and ``wal_bytes`` is
        None (the server's write-ahead log is shared by all its databases).
    schema_version:
        The highest applied migration.
    tables:
        ``{table: row count}``; tables outside the ``main`` schema are
        named ``schema.table`` (e.g. ``global_tables.persons``).
    logged_writes:
        Run writes committed to the write log but not applied to the tables
        yet (after a crash; a writable open applies them). None for a
        PostgreSQL store, which writes to the tables directly.
    journal_pending:
        Run ids whose journal snapshot (under the tracker's ``run_dir``) the
        database may not have yet, according to the pending ledgers.
    dead_starts:
        Run ids begun by a process that died, whose start record is still
        only in a pending ledger.
    run_dir:
        The run directory whose journal was read.
    table_bytes:
        PostgreSQL: ``{table: bytes}`` from the server (``pg_total_relation_size``:
        rows, indexes and TOAST); None on DuckDB, whose file does not keep
        tables apart.
    """

    db_path: str
    size_bytes: int
    wal_bytes: int | None
    schema_version: int
    tables: dict[str, int]
    logged_writes: int | None
    journal_pending: list[str]
    dead_starts: list[str]
    run_dir: str
    table_bytes: dict[str, int] | None = None


def store_report(store: MetadataStore, journal: Journal) -> StoreReport:
    """Describe ``store`` and what ``journal`` has that it may lack (reads only)."""
    version = store.schema_version()
    scan = journal.pending_scan()
    if is_postgres(store):
        with store.connections.connection() as con:
            listed = user_tables(con)
            sizes = table_bytes(con, listed)
            counts = row_counts(con, listed)
        return StoreReport(
            db_path=store.db_path,
            size_bytes=sum(sizes.values()),
            wal_bytes=None,
            schema_version=version,
            tables=counts,
            logged_writes=None,
            journal_pending=sorted(scan.outstanding),
            dead_starts=sorted(scan.dead_starts),
            run_dir=str(journal.run_dir),
            table_bytes=sizes,
        )
    with store.connections.connection() as con:
        tables = {}
        for schema, name in con.execute(_TABLES_SQL).fetchall():
            quoted = f'"{schema}"."{name}"'.replace("\0", "")
            tables[_table_label(schema, name, tables)] = int(
                con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
            )
    return StoreReport(
        db_path=store.db_path,
        size_bytes=_size(store.db_path),
        wal_bytes=_size(store.db_path + ".wal"),
        schema_version=version,
        tables=tables,
        logged_writes=tables.get("write_log", 0),
        journal_pending=sorted(scan.outstanding),
        dead_starts=sorted(scan.dead_starts),
        run_dir=str(journal.run_dir),
    )


def _table_label(schema: str, name: str, seen: dict[str, int]) -> str:
    """The name a reader queries ``schema.name`` by.

    Ingested rows live in ``hot_rows.<t>`` but are read through the view
    ``global_tables.<t>`` (same rows, plus the provenance columns), so the
    report names the view; the physical name is kept only if a base table
    already holds the view's name.
    """
    if schema == "main":
        return name
    if schema == ROWS_SCHEMA and f"{GLOBAL_SCHEMA}.{name}" not in seen:
        return f"{GLOBAL_SCHEMA}.{name}"
    return f"{schema}.{name}"


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


# -- processes ------------------------------------------------------------------------


def process_state(run: Run, *, host: str | None = None) -> tuple[str, str]:
    """``("alive" | "dead" | "unknown", why)`` for the process that recorded ``run``.

    See the module docstring for the rule.
    """
    here = host or socket.gethostname()
    recorded_host, pid = run.meta.get("host"), run.meta.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return "unknown", "the run recorded no process id"
    if recorded_host != here:
        return "unknown", f"pid {pid} on host {recorded_host!r}, which is not this host ({here})"
    if pid == os.getpid():
        return "alive", f"pid {pid} is this process"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead", f"pid {pid} on {here} no longer exists"
    except PermissionError:
        pass  # a process of another user exists
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return "unknown", f"cannot check pid {pid} ({exc.strerror})"
    started, zombie = _process_start(pid)
    if zombie:
        return "dead", f"pid {pid} on {here} has exited (a zombie not yet reaped)"
    if started is not None and started > run.created_at.timestamp() + 2.0:
        return "dead", (
            f"pid {pid} on {here} now belongs to a process started after the run "
            "(the pid was reused)"
        )
    return "alive", f"pid {pid} on {here} is running"


def _process_start(pid: int) -> tuple[float | None, bool]:
    """``(start time in epoch seconds or None, is a zombie)`` of ``pid``, from ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError):
        return None, False
    fields = stat[stat.rfind(")") + 2 :].split()  # from field 3 (state) on
    zombie = bool(fields) and fields[0] in ("Z", "X")
    try:
        return boot + int(fields[19]) / ticks, zombie  # field 22 of stat: starttime
    except (IndexError, ValueError):
        return None, zombie


# -- diagnosis --------------------------------------------------------------------------


@dataclass
class Finding:
    """One problem the doctor found.

    Attributes
    ----------
    kind:
        ``dead_running``, ``dangling_link``, ``link_without_edge``,
        ``missing_in_db``, ``db_older``, ``db_newer``, ``unreplayed``,
        ``unapplied_writes`` or ``unreadable_snapshot`` (see
        :mod:`consist.core.store.doctor`).
    subject:
        What it is about: a run id, a link ``run_id/key (direction)``, a file.
    detail:
        What is wrong, in a sentence.
    fixable:
        Whether ``doctor(fix=True)`` can repair it.
    fixed:
        Whether it was repaired (``fix=True`` only).
    action:
        What the repair did, or why nothing was done.
    """

    kind: str
    subject: str
    detail: str
    fixable: bool
    fixed: bool = False
    action: str | None = None


@dataclass
class DoctorReport:
    """What :meth:`Tracker.doctor` found and, with ``fix=True``, changed.

    Attributes
    ----------
    findings:
        Every problem found, repaired or not.
    notes:
        Things worth knowing that are not problems (runs whose process
        cannot be checked from this host, runs recorded only in the database).
    replayed_on_open:
        Run ids a writable open replayed from the journal before the
        diagnosis (``fix=True``).
    fix:
        Whether repairs were attempted.
    """

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replayed_on_open: list[str] = field(default_factory=list)
    fix: bool = False

    @property
    def problems(self) -> list[Finding]:
        """Findings not repaired."""
        return [f for f in self.findings if not f.fixed]

    @property
    def healthy(self) -> bool:
        """True when nothing is (left) wrong."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON)."""
        return {
            "healthy": self.healthy,
            "fix": self.fix,
            "findings": [vars(f).copy() for f in self.findings],
            "notes": list(self.notes),
            "replayed_on_open": list(self.replayed_on_open),
        }


def diagnose(store: MetadataStore, journal: Journal) -> tuple[DoctorReport, dict[str, Any]]:
    """Find the problems of ``store`` against ``journal`` (reads only).

    Returns
    -------
    tuple
        The report, and what :func:`repair` needs (snapshots to replay, runs
        to fail, links to delete).
    """
    report = DoctorReport()
    plan: dict[str, Any] = {
        "replay": [],
        "fail": [],
        "links": [],
        "link_subjects": [],
        "edges": 0,
        "groups": 0,
    }
    postgres = is_postgres(store)
    with store.connections.connection() as con:
        logged = 0 if postgres else _count(con, "write_log")
        running_ids = [r[0] for r in con.execute(_RUNNING_SQL).fetchall()]
        dangling = con.execute(_DANGLING_SQL).fetchall()
        no_edge = con.execute(_NO_EDGE_SQL).fetchone()[0]
        # Lineage groups are DuckDB's (see lineage_groups): PostgreSQL has none.
        no_group = 0 if postgres else con.execute(_NO_GROUP_SQL).fetchone()[0]
    if postgres:
        report.notes.append(
            "unapplied_writes not checked: a PostgreSQL store commits run writes to its tables "
            "directly (the write log is a DuckDB file's)"
        )
    if logged:
        report.findings.append(
            Finding(
                "unapplied_writes",
                store.db_path,
                f"{logged} run write(s) in the write log are not applied to the tables (a "
                "process died before applying them)",
                fixable=True,
                action="applied when the store is opened for writing",
            )
        )
    _check_ledgers(journal, report)
    _check_journal(store, journal, report, plan)
    # The newest known state of each run: its row, or the snapshot a repair replays.
    latest: dict[str, Run | None] = {run_id: None for run_id in running_ids}
    for record in plan["replay"]:
        latest[record.run.id] = record.run
    for run_id, known in latest.items():
        run = known if known is not None else store.get_run(run_id)
        if run is None or run.status != "running":
            continue
        state, why = process_state(run)
        if state == "dead":
            report.findings.append(
                Finding(
                    "dead_running",
                    run_id,
                    f"recorded as running, but its process is gone: {why}",
                    fixable=True,
                )
            )
            plan["fail"].append((run_id, why))
        elif state == "unknown":
            report.notes.append(f"run {run_id!r} is running; cannot tell if it is alive: {why}")
    for run_id, artifact_id, direction, key, no_run, no_artifact in dangling:
        missing = " and ".join(
            w for w, gone in (("run", no_run), ("artifact " + artifact_id, no_artifact)) if gone
        )
        report.findings.append(
            Finding(
                "dangling_link",
                f"{run_id}/{key} ({direction})",
                f"link row of run {run_id!r} to artifact {artifact_id}: its {missing} "
                "row is missing",
                fixable=True,
            )
        )
        plan["links"].append((run_id, artifact_id, direction))
        plan["link_subjects"].append((run_id, artifact_id, direction, key))
    if no_edge:
        report.findings.append(
            Finding(
                "link_without_edge",
                store.db_path,
                f"{no_edge} link row(s) lack their lineage edge (src/dst): written by hand or "
                "by a Consist older than schema 7; lineage does not walk them",
                fixable=True,
            )
        )
        plan["edges"] = no_edge
    if no_group:
        report.findings.append(
            Finding(
                "link_without_group",
                store.db_path,
                f"{no_group} link row(s) have no lineage group (written by hand, not through "
                "a run): lineage stays correct but walks every link of the store until they "
                "are labelled",
                fixable=True,
            )
        )
        plan["groups"] = no_group
    return report, plan


def _count(con: Any, table: str) -> int:
    import duckdb

    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except duckdb.CatalogException:
        return 0


def _check_ledgers(journal: Journal, report: DoctorReport) -> None:
    scan = journal.pending_scan()
    dead_listed = set().union(*scan.dead_pending.values()) if scan.dead_pending else set()
    for run_id in sorted(scan.dead_starts):
        report.findings.append(
            Finding(
                "unreplayed",
                run_id,
                "a process that died began this run; its start record is only in a pending "
                "ledger, not in the database",
                fixable=True,
                action="replayed when the store is opened for writing",
            )
        )
    for run_id in sorted(set(scan.outstanding) & dead_listed):
        report.findings.append(
            Finding(
                "unreplayed",
                run_id,
                "a process that died journaled this snapshot and never committed it",
                fixable=True,
                action="replayed when the store is opened for writing",
            )
        )


def _check_journal(
    store: MetadataStore, journal: Journal, report: DoctorReport, plan: dict[str, Any]
) -> None:
    """Compare every snapshot with its row (runs in flight in a live process are skipped)."""
    records: dict[str, ConsistRecord] = {}
    for path, record, error in journal.scan():
        if record is None:
            report.findings.append(
                Finding(
                    "unreadable_snapshot",
                    str(path),
                    f"cannot be read: {error}",
                    fixable=False,
                    action="left in place; fix or remove the file by hand",
                )
            )
            continue
        records[record.run.id] = record
    known = store.run_versions(list(records))
    for run_id, record in records.items():
        row = known.get(run_id)
        if record.run.status == "running" and process_state(record.run)[0] == "alive":
            continue  # in flight: its snapshot and row may differ for a moment
        if row is None:
            report.findings.append(
                Finding(
                    "missing_in_db",
                    run_id,
                    f"journal snapshot {journal.path_for(run_id)} has no row in the database",
                    fixable=True,
                )
            )
            plan["replay"].append(record)
        elif row[1] < record.updated_ns:
            report.findings.append(
                Finding(
                    "db_older",
                    run_id,
                    f"the database row ({row[0]}) is older than the journal snapshot "
                    f"({record.run.status})",
                    fixable=True,
                )
            )
            plan["replay"].append(record)
        elif row[1] > record.updated_ns:
            report.findings.append(
                Finding(
                    "db_newer",
                    run_id,
                    f"the database row ({row[0]}) is newer than the journal snapshot "
                    f"({record.run.status}); a rebuild from the journal would lose the newer "
                    "state",
                    fixable=False,
                    action="left alone: the snapshot cannot be re-created from the database",
                )
            )
    only_db = store.count_runs() - len(known)
    if only_db > 0:
        report.notes.append(
            f"{only_db} run(s) in the database have no snapshot under {journal.runs_dir} "
            "(recorded with another run_dir, or their snapshots were removed); a rebuild from "
            "this run_dir alone would not restore them"
        )


# -- repair -------------------------------------------------------------------------------


def repair(
    store: MetadataStore, journal: Journal, report: DoctorReport, plan: dict[str, Any]
) -> None:
    """Repair what ``diagnose`` planned; mark each finding fixed with what was done."""
    by_subject = {(f.kind, f.subject): f for f in report.findings}
    replay: list[ConsistRecord] = plan["replay"]
    if replay:
        replay.sort(key=lambda r: (r.run.created_at, r.run.id))
        store.sync_records(replay)
        for record in replay:
            for kind in ("missing_in_db", "db_older"):
                finding = by_subject.get((kind, record.run.id))
                if finding is not None:
                    finding.fixed = True
                    finding.action = "replayed the journal snapshot into the database"
    for run_id, why in plan["fail"]:
        finding = by_subject[("dead_running", run_id)]
        finding.action = _fail_dead_run(store, journal, run_id, why)
        finding.fixed = finding.action.startswith(("marked", "already"))
    links = plan["links"]
    if links:
        with store.connections.transaction() as con:
            # A replayed snapshot brings back the run (and artifact) rows of its
            # links: those are whole again and stay.
            still = {(r[0], r[1], r[2]) for r in con.execute(_DANGLING_SQL).fetchall()}
            for run_id, artifact_id, direction in links:
                if (run_id, artifact_id, direction) not in still:
                    continue
                con.execute(
                    "DELETE FROM run_artifact_link WHERE run_id = ? AND artifact_id = ? "
                    "AND direction = ?",
                    [run_id, artifact_id, direction],
                )
        by_link = {(f.subject, f.kind): f for f in report.findings}
        for run_id, artifact_id, direction, key in plan["link_subjects"]:
            finding = by_link[(f"{run_id}/{key} ({direction})", "dangling_link")]
            finding.fixed = True
            finding.action = (
                "deleted the link row"
                if (run_id, artifact_id, direction) in still
                else "kept: the replayed journal snapshot of its run restored what it links"
            )
    if plan.get("edges"):
        with store.connections.transaction() as con:
            con.execute(_FILL_EDGES_SQL)
        for finding in report.findings:
            if finding.kind == "link_without_edge":
                finding.fixed = True
                finding.action = "filled src/dst from the link's run, artifact and direction"
    if plan.get("groups") or plan.get("edges"):
        with store.connections.transaction() as con:
            labelled = label_unlabelled(con)
        for finding in report.findings:
            if finding.kind == "link_without_group":
                finding.fixed = True
                finding.action = (
                    f"labelled {labelled} link(s) with their run's group and joined the groups "
                    "they connect"
                )
    for finding in report.findings:
        if finding.kind in ("unapplied_writes", "unreplayed"):
            # The writable open replays and applies these before the diagnosis
            # (see Tracker.doctor): one still found could not be replayed.
            finding.action = (
                "still pending after opening the store for writing replayed the journal; "
                "see the recovery warnings for why"
            )


def _fail_dead_run(store: MetadataStore, journal: Journal, run_id: str, why: str) -> str:
    """Record a dead run as failed: its snapshot first, then the database."""
    try:
        record = journal.read(run_id)
    except (OSError, ValueError) as exc:
        record = None
        unreadable = str(exc)
    else:
        unreadable = ""
    run = store.get_run(run_id)
    if run is None or run.status != "running":
        status = "gone" if run is None else run.status
        return f"already ended meanwhile (now {status}); nothing to do"
    if record is None:
        if unreadable:
            return f"left alone: its journal snapshot cannot be read ({unreadable})"
        # The journal is written first; a run_dir without the run's snapshot is
        # not its run_dir, and a snapshot made up there would be a stray.
        return (
            f"left alone: no journal snapshot at {journal.path_for(run_id)}; pass the run "
            "directory the run was recorded in (--run-dir) to repair it"
        )
    ended = utc_now()
    record.run.status = "failed"
    record.run.ended_at = ended
    reason = f"process gone ({why}); marked failed by consist db doctor at {_stamp(ended)}"
    record.run.meta["error"] = reason
    record.updated_ns = max(record.updated_ns, run_version(store, run_id))
    journal.write(record, latest=False)
    version = record.updated_ns
    store.sync_record(record, on_synced=lambda: journal.mark_synced(run_id, up_to_ns=version))
    return f"marked failed: {reason}"


def run_version(store: MetadataStore, run_id: str) -> int:
    """The ``updated_ns`` of ``run_id``'s row (0 when missing)."""
    row = store.run_versions([run_id]).get(run_id)
    return 0 if row is None else row[1]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
