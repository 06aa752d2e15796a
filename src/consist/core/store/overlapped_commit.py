"""Commit write-log rows once the journal has the run, overlapping the two.

Invariant 3 orders a run's two durable writes: the journal snapshot is
fsynced before the database commits. Only the commit has to wait, though:
:func:`commit_beside` starts the transaction and inserts the rows on the
store's worker thread (:mod:`consist.core.store.worker_thread`) while the
calling thread writes and fsyncs the journal file, then commits once both
are done. The insert (and the transaction's start) thereby hides behind the
journal's fsync; the two fsyncs themselves stay in their required order.

:class:`Guard` is the journal write with its outcome, which decides what the
store keeps queued when something fails (see ``MetadataStore.flush``) and
tells the run lifecycle a journal failure from a database one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

from consist.core.store import worker_thread
from consist.core.store.write_log import insert_rows

__all__ = ["Guard", "commit_beside"]


class Guard:
    """A callable that must succeed before a commit, run at most once.

    Parameters
    ----------
    work:
        The guard (the journal file write), or None for none.

    Attributes
    ----------
    failed:
        Whether it ran and raised.
    """

    __slots__ = ("_work", "failed")

    def __init__(self, work: Callable[[], None] | None) -> None:
        self._work = work
        self.failed = False

    @property
    def pending(self) -> bool:
        """Whether it has yet to run."""
        return self._work is not None

    def run(self) -> None:
        """Run it unless it already ran; re-raise its error (then ``failed`` is set)."""
        work, self._work = self._work, None
        if work is None:
            return
        try:
            work()
        except BaseException:
            self.failed = True
            raise


def _begin_and_insert(con: Any, rows: Sequence[list[Any]]) -> None:
    con.begin()
    insert_rows(con, rows)


def _rollback_quietly(con: Any) -> None:
    with contextlib.suppress(Exception):  # no transaction if BEGIN itself failed
        con.rollback()


def commit_beside(connections: Any, rows: Sequence[list[Any]], guard: Guard) -> int:
    """Insert ``rows`` into the write log and commit, running ``guard`` meanwhile.

    The statements run on the worker thread while ``guard`` runs in this
    one; this thread holds the connection (no other use can start) until
    the transaction is committed or rolled back.

    Parameters
    ----------
    connections:
        The DuckDB connection manager.
    rows:
        ``[seq, payload]`` write-log rows (see ``write_log.encode_rows``).
    guard:
        Must succeed before the commit.

    Returns
    -------
    int
        The connection epoch the rows were committed in.

    Raises
    ------
    BaseException
        The guard's error, else an interrupt (``KeyboardInterrupt``) that
        arrived while waiting, else the database's; the transaction is
        rolled back.
    """
    with connections.write_session(hot=True) as con:
        statements = None
        guard_error: BaseException | None = None
        try:  # one block, so that an interrupt right after the submit is caught too
            statements = worker_thread.submit(functools.partial(_begin_and_insert, con, rows))
            guard.run()
        except BaseException as exc:
            guard_error = exc
        if statements is None:  # nothing was started
            assert guard_error is not None
            raise guard_error
        # The connection is the worker's until its statements are done, even
        # if this thread is interrupted meanwhile.
        db_error, interrupt = statements.settle()
        error = guard_error or interrupt or db_error
        if error is not None:
            _rollback_quietly(con)
            raise error
        con.commit()
        return int(connections.epoch)
