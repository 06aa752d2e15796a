"""The write log: a run's write committed as one narrow row, applied in batches.

DuckDB's cost of a one-row commit grows with the width of the row: a run row
(19 columns) costs about twice the durable-record floor of a two-column row,
and a run with outputs adds artifact and link rows. So the store commits each
run snapshot as a single ``write_log`` row (a sequence number and the
snapshot's row values as JSON) - durable and in the database when ``run()``
returns - and applies logged writes to the real tables together, with one
multi-row statement per table:

* before any read of the store in this process (every connection use that is
  not marked ``hot``), so every tracker of the process reads its own writes;
* before the process gives the database file up (idle release, the
  ``max_hold_s`` turn, ``close()``, exit), so another process that opens the
  file finds every run in the tables;
* after a crash, by the next process that opens the file.

The few reads on every run's path (cache lookups answered "no" by the
signature index, input discovery, producer signatures) are ``hot``: they read
the tables plus :attr:`LogState.writes`, the writes this process logged since
the last apply, without applying them. That mirror is exact while the file has
been held since it was (re)opened; after a re-open the log is applied before
any read, hot or not, since it may hold rows of a process that died.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from consist.core.identity.hashing import StatCacheEntry, StatKey
from consist.core.store.batch import PendingWrite, write_batch
from consist.core.store.connection import is_storage_error
from consist.core.store.facet_store import FacetRows
from consist.core.store.rows import RUN_COLUMNS, artifact_from_row, run_from_row
from consist.models.artifact import Artifact
from consist.models.run import Run

_ROWS_PER_STATEMENT = 200

logger = logging.getLogger("consist")


def encode(write: PendingWrite) -> str:
    """One-line JSON of a write's row values (timestamps and UUIDs as text)."""
    return json.dumps(
        {
            "run_id": write.run_id,
            "updated_ns": write.updated_ns,
            "run": write.run_row,
            "artifacts": write.artifacts,
            "links": write.links,
            "contents": write.contents,
            "stats": [_stat_values(e) for e in write.stat_entries],
            "facets": [
                write.facets.facets,
                write.facets.run_links,
                write.facets.run_kv,
                write.facets.artifact_links,
                write.facets.artifact_kv,
            ],
            "new_run": write.new_run,
        },
        default=str,
        separators=(",", ":"),
    )


def _stat_values(e: StatCacheEntry) -> list[Any]:
    k = e.key
    return [e.path, k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns, e.digest, e.recorded_ns]


def decode(payload: str) -> PendingWrite:
    """The write :func:`encode` produced (DuckDB casts the text values back)."""
    data = json.loads(payload)
    facets = data["facets"]
    return PendingWrite(
        run_id=data["run_id"],
        updated_ns=data["updated_ns"],
        run_row=data["run"],
        artifacts=[(row, bool(owned)) for row, owned in data["artifacts"]],
        links=data["links"],
        contents=data["contents"],
        stat_entries=[
            StatCacheEntry(
                path=s[0],
                key=StatKey(dev=s[1], ino=s[2], size=s[3], mtime_ns=s[4], ctime_ns=s[5]),
                digest=s[6],
                recorded_ns=s[7],
            )
            for s in data["stats"]
        ],
        facets=FacetRows(
            facets=facets[0],
            run_links=facets[1],
            run_kv=facets[2],
            artifact_links=facets[3],
            artifact_kv=facets[4],
        ),
        new_run=bool(data["new_run"]),
    )


def append(con: Any, writes: Sequence[PendingWrite]) -> None:
    """Log ``writes`` (inside the caller's transaction)."""
    insert_rows(con, encode_rows(writes))


def encode_rows(writes: Sequence[PendingWrite]) -> list[list[Any]]:
    """The ``[seq, payload]`` write-log rows of ``writes``."""
    return [[time.time_ns(), encode(w)] for w in writes]


def insert_rows(con: Any, rows: Sequence[list[Any]]) -> None:
    """Insert rows from :func:`encode_rows` (inside the caller's transaction)."""
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        values = ", ".join(["(?, ?)"] * len(chunk))
        con.execute(
            f"INSERT INTO write_log (seq, payload) VALUES {values}",
            [value for row in chunk for value in row],
        )


def apply_logged(con: Any) -> int:
    """Apply every logged write to the tables and empty the log (one transaction).

    Returns the number of writes applied. Rows of new runs are inserted
    plainly when that is safe; a duplicate key (a run that was logged twice,
    or re-opened) makes the batch an upsert instead.
    """
    import duckdb

    try:
        rows = con.execute("SELECT payload FROM write_log ORDER BY seq").fetchall()
    except duckdb.CatalogException:
        return 0  # a store not migrated yet has no log
    if not rows:
        return 0
    writes = [decode(r[0]) for r in rows]
    plain = all(w.new_run for w in writes) and len({w.run_id for w in writes}) == len(writes)
    con.begin()
    try:
        try:
            write_batch(con, writes, plain_inserts=plain)
        except duckdb.ConstraintException:
            if not plain:
                raise
            con.rollback()
            con.begin()
            write_batch(con, writes)
        con.execute("DELETE FROM write_log")
    except BaseException:
        con.rollback()
        raise
    con.commit()
    return len(writes)


_RUN_FIELDS = RUN_COLUMNS.split(", ")
_STATUS = _RUN_FIELDS.index("status")
_SIGNATURE = _RUN_FIELDS.index("signature")


def completed_runs_with(
    writes: Sequence[PendingWrite], signature: str
) -> dict[str, tuple[Run, list[Artifact]]]:
    """Completed runs with ``signature`` among ``writes``, with their outputs.

    The newest version of each run counts; outputs carry the key and
    metadata the run logged them with (as the tables' link rows do).
    """
    newest: dict[str, PendingWrite] = {}
    for w in writes:
        if w.run_row[_SIGNATURE] != signature:
            continue
        current = newest.get(w.run_id)
        if current is None or w.updated_ns >= current.updated_ns:
            newest[w.run_id] = w
    out: dict[str, tuple[Run, list[Artifact]]] = {}
    for run_id, w in newest.items():
        if w.run_row[_STATUS] != "completed":
            continue
        rows = {row[0]: row for row, _ in w.artifacts}
        outputs = []
        for link in w.links:
            if link[2] != "output" or link[1] not in rows:
                continue
            row = list(rows[link[1]])
            row[1] = link[3]  # the run's key
            if link[4] is not None:
                row[10] = link[4]  # the run's metadata
            outputs.append(artifact_from_row(row))
        run = run_from_row(w.run_row[: len(_RUN_FIELDS)])
        out[run_id] = (run, sorted(outputs, key=lambda a: a.created_at))
    return out


class LogState:
    """This process's view of one database file's write log.

    Attributes
    ----------
    writes:
        Writes this process logged since the last apply (what hot reads
        merge in).
    epoch:
        The connection epoch in which the log was last known to hold only
        ``writes`` (see ``DuckDBConnectionManager.epoch``).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes: list[PendingWrite] = []
        self.epoch = -1

    def logged(self, epoch: int, writes: Sequence[PendingWrite]) -> None:
        """Note writes committed to the log during ``epoch``."""
        with self.lock:
            self.writes.extend(writes)

    def before_use(self, con: Any, epoch: int, hot: bool) -> None:
        """Apply the log before a read (always after a re-open; never when hot)."""
        if hot and self.epoch == epoch:
            return
        if self.epoch == epoch and not self.writes:
            return
        try:
            self.apply(con, epoch)
        except Exception as exc:
            # A full disk must not make the store unreadable: read the tables
            # as they are; the logged writes stay durable and are applied at
            # the next use that can write.
            if not is_storage_error(exc):
                raise
            logger.warning(
                "consist: could not apply logged writes before reading (%s); reading the "
                "tables without them until the database file can be written again",
                exc,
            )

    def apply(self, con: Any, epoch: int) -> None:
        """Apply the log now (holding the file)."""
        apply_logged(con)
        with self.lock:
            self.writes.clear()
            self.epoch = epoch

    def snapshot(self) -> list[PendingWrite]:
        """The writes not applied yet (for hot reads)."""
        with self.lock:
            return list(self.writes)


_STATES: weakref.WeakKeyDictionary[Any, LogState] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def log_state(connections: Any) -> LogState:
    """The write-log state shared by every store of this process on one file.

    Registers its hooks on the connection manager the first time.
    """
    with _GUARD:
        state = _STATES.get(connections)
        if state is None:
            state = _STATES[connections] = LogState()
            if not getattr(connections, "read_only", False):  # read-only: tables as they are
                connections.before_use.append(state.before_use)
                connections.before_close.append(state.apply)
        return state


def _forget_in_child() -> None:
    # A forked child holds no connection; the parent applied its writes before
    # forking (see consist.core.store.connection), or applies them itself.
    global _GUARD
    _GUARD = threading.Lock()
    for state in list(_STATES.values()):
        state.writes = []
        state.epoch = -1
        state.lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
