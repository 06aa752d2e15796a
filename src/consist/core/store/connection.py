"""Process-local access to a DuckDB file that several processes share.

DuckDB lets one process at a time open a database file for writing, and
opening a file costs ~15 ms. This module keeps one connection open while the
process is actively using the store, and gives the file back to other
processes:

* after ``idle_release_s`` without use (a background timer closes it), and
* after holding it for ``max_hold_s`` continuously (released before a read
  or right after a write commits, never between a cache miss and the write
  of its run, with a short pause so a waiting process can take its turn), and
* before the process forks (a forked child opens the file afresh; see
  ``_before_fork``).

Every release commits this process's queued writes and applies its write log
first, so the next process finds every run that has returned. Opening
retries with exponential backoff while another process holds the lock, for
up to ``lock_timeout_s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

logger = logging.getLogger("consist")

_LOCK_MARKERS = ("could not set lock", "conflicting lock", "lock on file")


def _file_stamp(path: str) -> tuple[Any, ...]:
    """Device, inode, size, mtime and ctime of a database file and of its write-ahead log.

    Stat calls only: the file is never opened here. DuckDB locks it with POSIX
    record locks, which the kernel drops for the whole process as soon as any
    descriptor of the file is closed, so reading the file's bytes (its
    checkpoint headers, say) would hand the lock to other processes. The
    assumption: a write by another process changes the size or the times of
    the file or its WAL, which holds wherever timestamps are finer than the
    few milliseconds a DuckDB open and write take; a file whose mtime is a
    whole number of milliseconds (FAT keeps 2 s) never keeps the epoch.
    """
    stamp: list[Any] = []
    for name in (path, path + ".wal"):
        try:
            st = os.stat(name)
        except OSError:
            stamp.append(None)
        else:
            stamp.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stamp)


def _coarse_times(stamp: tuple[Any, ...]) -> bool:
    """Whether the database file's times look coarse (whole milliseconds; FAT: 2 s)."""
    database = stamp[0]
    return database is None or database[3] % 1_000_000 == 0


def is_lock_error(exc: BaseException) -> bool:
    """True when ``exc`` says another process holds the database file."""
    text = str(exc).lower()
    return any(marker in text for marker in _LOCK_MARKERS)


_STORAGE_MARKERS = ("no space left", "disk quota", "read-only", "could not write")


def is_storage_error(exc: BaseException) -> bool:
    """True when ``exc`` says the database file cannot be written (disk full, read-only)."""
    text = str(exc).lower()
    return any(marker in text for marker in _STORAGE_MARKERS)


def _finish_results(con: Any) -> None:
    """Run the last ``execute()`` result of ``con`` to its end.

    DuckDB 2 refuses ``register()`` and ``sql()`` on a connection whose last
    result was not read to its end (e.g. after ``fetchone()``), so a use that
    stopped early would break the next, unrelated use of the shared
    connection. Completing it is what the next ``execute()`` would do anyway.
    """
    complete = getattr(con, "complete", None)  # DuckDB < 2 has no pending results
    if complete is None:
        return
    try:
        complete()
    except Exception:  # the rest of an abandoned read failed; nobody reads it
        with contextlib.suppress(Exception):
            con.abort()


def all_cores(connections: Any) -> contextlib.AbstractContextManager[Any]:
    """``connections.all_cores()`` for a DuckDB store, else a no-op (PostgreSQL)."""
    wide = getattr(connections, "all_cores", None)
    return wide() if wide is not None else contextlib.nullcontext()


class StoreLockTimeout(RuntimeError):
    """The database file stayed locked by another process for too long."""


class ReadOnlyStoreError(RuntimeError):
    """A write was attempted through a tracker or store opened with ``read_only=True``."""

    @classmethod
    def refusing(cls, what: str) -> ReadOnlyStoreError:
        """The error for attempting ``what`` (e.g. "begin a run") read-only."""
        return cls(
            f"{what}: this tracker was opened with read_only=True, so it records nothing; "
            "open Tracker(..., read_only=False) on a writable store to record runs"
        )


class DuckDBConnectionManager:
    """Open-on-demand, release-when-idle access to one DuckDB file.

    Parameters
    ----------
    path:
        The database file.
    lock_timeout_s:
        How long to keep retrying while another process holds the file.
    idle_release_s:
        Close the connection after this long without use.
    max_hold_s:
        Release and re-open after holding the file this long, so that other
        processes sharing the store are not starved by a busy loop.
    read_only:
        Open the file read-only (DuckDB ``read_only=True``; nothing is
        created, and the ``<db>.consist.lock`` turn is not taken).
    """

    def __init__(
        self,
        path: str,
        *,
        lock_timeout_s: float = 120.0,
        idle_release_s: float = 0.25,
        max_hold_s: float = 2.0,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self.lock_timeout_s = lock_timeout_s
        self.idle_release_s = idle_release_s
        self.max_hold_s = max_hold_s
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._log_writer: duckdb.DuckDBPyConnection | None = None  # see write_session
        self._opened_at = 0.0
        self._reopen_after = 0.0
        self._last_used = 0.0
        self._depth = 0
        self._closed = False
        self._wake = threading.Event()
        self._timer_active = False
        self._turn: _ProcessTurn | None = None
        self.open_count = 0
        # Changes each time the file is (re)opened after something else may
        # have written it: state learned while the file was held (no other
        # process could write) is only trusted within one epoch. A re-open that
        # finds the file exactly as this manager left it keeps the epoch.
        self.epoch = 0
        self._left_as: tuple[Any, ...] | None = None
        # Called (holding the manager's lock) before the file is given back:
        # stores retry writes whose commit failed there.
        self.before_release: list[Callable[[], None]] = []
        # Called with (connection, epoch, hot) when a use begins (depth 0), and
        # with (connection, epoch) before the file is given back: the store
        # applies its write log there (see consist.core.store.write_log).
        self.before_use: list[Callable[[Any, int, bool], None]] = []
        self.before_close: list[Callable[[Any, int], None]] = []
        self._giving_back = False
        self._users = 0
        self._shared_key: str | None = None
        # Called with the path, holding the turn, when a writer is about to
        # open a file that does not exist: the store creates it there from its
        # empty template (see consist.core.store.schema.seed_new_store)
        # instead of letting DuckDB create an empty file. Returning False or
        # raising leaves the creation to DuckDB.
        self.create_file: Callable[[str], bool] | None = None
        # Set when this manager created the file that way (the store then
        # knows it holds an empty store of its own; it clears the flag).
        self.created_file = False
        # DuckDB's own thread count for this instance (read at the first
        # open) and how many all_cores() uses are active (see all_cores).
        self._cores = 0
        self._wide = 0
        # Threads inside all_cores(); None: DuckDB's default for the machine.
        self.bulk_threads: int | None = None
        _MANAGERS.add(self)

    @classmethod
    def shared(
        cls,
        path: str,
        *,
        lock_timeout_s: float = 120.0,
        idle_release_s: float = 0.25,
        max_hold_s: float = 2.0,
        read_only: bool = False,
    ) -> DuckDBConnectionManager:
        """The one manager of this process for the database file at ``path``.

        Every tracker of a process that opens the same file gets the same
        manager, so their reads and writes go through one connection one at
        a time: two trackers on one store never race each other's
        transactions. The first opener's timings apply; the longest lock
        timeout wins. Read-only openers share a read-only manager. Pair each
        call with :meth:`close`.
        """
        key = os.path.realpath(path) + ("\0read-only" if read_only else "")
        with _SHARED_GUARD:
            manager = _SHARED.get(key)
            if manager is None or manager._closed:
                manager = cls(
                    path,
                    lock_timeout_s=lock_timeout_s,
                    idle_release_s=idle_release_s,
                    max_hold_s=max_hold_s,
                    read_only=read_only,
                )
                manager._shared_key = key
                _SHARED[key] = manager
            else:
                manager.lock_timeout_s = max(manager.lock_timeout_s, lock_timeout_s)
            manager._users += 1
            return manager

    # -- public ---------------------------------------------------------------

    @contextmanager
    def connection(self, *, hot: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield the open connection (opening it if needed).

        Re-entrant: nested uses share one connection and one hold. An
        outermost use runs the ``before_use`` hooks first; ``hot`` tells them
        that the use is on the path of every run and reads only what the
        caller reconciles itself (the store then leaves its write log alone).
        """
        with self._use(hot=hot, write=False) as con:
            yield con

    @contextmanager
    def transaction(self, *, hot: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a connection inside ``BEGIN`` ... ``COMMIT`` (rollback on error).

        The connection's ``begin``/``commit`` methods skip parsing a SQL
        statement, which is a measurable share of a one-row write. ``hot``
        as for :meth:`connection`. An outermost transaction never hands the
        file to another process before it commits (see :meth:`_use`).
        """
        with self._use(hot=hot, write=True) as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    @contextmanager
    def write_session(self, *, hot: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield the write log's own connection, for a transaction the caller begins and ends.

        The connection is a cursor of the open database (a second DuckDB
        connection to the same instance) with the query optimizer off: it
        only ever runs the write log's ``INSERT ... VALUES``, which the
        optimizer cannot improve and which it makes a third slower. Settings
        are per connection, so every other statement keeps the optimizer.

        The caller may issue the statements from another thread while this
        one waits (see :mod:`.overlapped_commit`), and must commit or roll
        back before leaving. No other use of the store starts meanwhile, and
        the ``max_hold_s`` turn is handed over after, as for
        :meth:`transaction`.
        """
        with self._use(hot=hot, write=True) as con:
            writer = self._log_writer
            if writer is None:
                writer = con.cursor()
                try:
                    writer.execute("PRAGMA disable_optimizer")
                except BaseException:
                    writer.close()
                    raise
                self._log_writer = writer
            yield writer

    @contextmanager
    def all_cores(self) -> Iterator[None]:
        """Let DuckDB use all its threads meanwhile (re-entrant).

        The store's DuckDB instance runs on one thread: its own work is one
        small statement after another (a run is one insert and one commit),
        and with worker threads DuckDB hands each of them to a scheduler,
        which cost ~0.25 ms per cache hit on two cores (about a fifth of a
        hit). Work that scans or writes many rows (ingest, reading ingested
        rows, ``run_query``, profiling a table, compaction) runs inside this
        context, with DuckDB's default thread count. Other connections of
        this process to the same file share the instance and its setting.
        ``bulk_threads`` overrides the thread count used inside.
        """
        with self._lock:
            self._wide += 1
            if self._wide == 1 and self._con is not None:
                self._set_threads(self._con)
        try:
            yield
        finally:
            with self._lock:
                self._wide -= 1
                if self._wide == 0 and self._con is not None:
                    self._set_threads(self._con)

    def _set_threads(self, con: Any) -> None:
        """One thread for the store's own small statements; all of them inside all_cores()."""
        if self._cores == 0:
            self._cores = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
        wide = self.bulk_threads or self._cores
        if wide > 1 or self._cores > 1:
            con.execute(f"SET threads = {wide if self._wide else 1}")

    def release(self) -> None:
        """Commit queued work and close the connection now (the next use re-opens it)."""
        with self._lock:
            if self._depth == 0:
                self._give_back()

    def close(self) -> None:
        """Close for good and stop the idle timer.

        A shared manager (see :meth:`shared`) only closes when its last user
        closes it.
        """
        if self._shared_key is not None:
            with _SHARED_GUARD:
                self._users -= 1
                if self._users > 0:
                    return
                if _SHARED.get(self._shared_key) is self:
                    del _SHARED[self._shared_key]
        with self._lock:
            if self._closed:
                return
            self._run_before_release()
            self._run_before_close()
            self._closed = True
            self._close_connection()
        self._wake.set()

    def schedule_maintenance(self) -> None:
        """Make sure the idle timer runs (queued writes are committed when idle)."""
        with self._lock:
            if self._closed:
                return
            self._last_used = time.monotonic()
            self._schedule_release()

    def _run_before_release(self) -> None:
        if self._closed:
            return
        for hook in list(self.before_release):
            hook()

    @property
    def is_open(self) -> bool:
        """Whether this process currently holds the database file."""
        return self._con is not None

    # -- internals ------------------------------------------------------------

    @contextmanager
    def _use(self, *, hot: bool, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """One (possibly nested) use of the connection.

        The ``max_hold_s`` turn is handed over before an outermost read, and
        after (never before) an outermost write: a process that looked a run
        up, found nothing and executed it commits that run before any other
        process can look it up, so the other process hits instead of
        executing it again.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"store {self.path} has been closed")
            if self._depth == 0 and not write:
                self._maybe_yield_turn()
            # Counted as in use before opening: a dropped tracker's finalizer
            # (``release``) may run in this thread while the file is opened
            # (garbage collection, re-entering this RLock) and would otherwise
            # close the connection about to be handed out.
            self._depth += 1
            con = None
            try:
                con = self._con or self._open()
                if self._depth == 1:
                    for hook in self.before_use:
                        hook(con, self.epoch, hot)
                yield con
            finally:
                self._depth -= 1
                self._last_used = time.monotonic()
                if self._depth == 0 and con is not None:
                    _finish_results(con)
                    if write:
                        self._maybe_yield_turn()
                    if self._con is not None:
                        self._schedule_release()

    def _open(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        if _INHERITED_OPEN and os.path.realpath(self.path) in _INHERITED_OPEN:
            raise RuntimeError(
                f"this process was forked while its parent was using the store {self.path} "
                "in another thread, so DuckDB would hand it the parent's copy of the "
                "database and its writes would be lost; fork when no store operation is "
                "running (e.g. create the multiprocessing pool first), or use the "
                "'spawn' or 'forkserver' start method"
            )
        # After handing the turn over, pause before taking it again so that a
        # waiting process (polling every few ms) reliably gets in.
        pause = self._reopen_after - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        deadline = time.monotonic() + self.lock_timeout_s
        # A read-only opener writes nothing, not even the turn's lock file; it
        # waits for writers through DuckDB's own lock (the loop in _connect).
        if not self.read_only:
            self._turn = _ProcessTurn.acquire(self.path, deadline, self.lock_timeout_s)
        try:
            self._create_if_missing()
            con = self._connect(duckdb, deadline)
            try:
                self._set_threads(con)
            except BaseException:
                con.close()
                raise
        except BaseException:
            if self._turn is not None:
                self._turn.release()
            self._turn = None
            raise
        # Holding DuckDB's lock now: nobody can write. An unchanged file since
        # this manager closed it (same inode, size and times of the file and of
        # its write-ahead log; DuckDB's open and reads change none) means
        # no other process or client wrote meanwhile, so what this process
        # learned about the store still holds (signatures, raw inputs...).
        left_as, self._left_as = self._left_as, None
        if (
            left_as is None
            or self.read_only
            or _coarse_times(left_as)
            or _file_stamp(self.path) != left_as
        ):
            self.epoch += 1
        self._con = con
        self.open_count += 1
        self._opened_at = time.monotonic()
        return con

    def _create_if_missing(self) -> None:
        create = self.create_file
        if create is None or self.read_only or os.path.lexists(self.path):
            return
        if os.path.lexists(self.path + ".wal"):
            return  # DuckDB decides what a lone write-ahead log means
        try:
            self.created_file = create(self.path) is True
        except Exception as exc:  # an optimisation only: DuckDB creates the file instead
            logger.debug("consist: could not create %s from the template (%s)", self.path, exc)

    def _connect(self, duckdb: Any, deadline: float) -> duckdb.DuckDBPyConnection:
        # Other consist processes queue on the turn lock; this loop only waits
        # for holders that do not take it (plain DuckDB clients).
        delay = 0.005
        while True:
            try:
                con = duckdb.connect(self.path, read_only=self.read_only)
                break
            except duckdb.Error as exc:  # IOException on lock
                if not is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLockTimeout(
                        f"database {self.path} stayed locked by another process for "
                        f"{self.lock_timeout_s:g} s; raise TrackerConfig.lock_timeout_s or "
                        f"stop the other process ({exc})"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)
        return con

    def _close_connection(self) -> None:
        con, self._con = self._con, None
        writer, self._log_writer = self._log_writer, None
        self._left_as = None
        if writer is not None:  # its database closes with its last connection
            with contextlib.suppress(Exception):
                writer.close()
        if con is not None:
            try:
                con.close()
            except Exception:  # closing must never raise into user code
                pass
            else:
                if not self.read_only:
                    self._left_as = _file_stamp(self.path)
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.release()

    def _give_back(self) -> None:
        """Run the release hooks, then close (the next use re-opens)."""
        self._giving_back = True  # hooks use the connection: no nested hand-over
        try:
            self._run_before_release()
            self._run_before_close()
        finally:
            self._giving_back = False
        self._close_connection()

    def _run_before_close(self) -> None:
        con = self._con
        if con is None or self._closed:
            return
        for hook in list(self.before_close):
            try:
                hook(con, self.epoch)
            except Exception as exc:  # the data is safe; the next opener retries
                logger.error(
                    "consist: could not apply logged writes to %s before releasing it (%s); "
                    "they stay in its write log and are applied when it is next opened",
                    self.path,
                    exc,
                )

    def _maybe_yield_turn(self) -> None:
        if (
            self._con is not None
            and not self._giving_back
            and time.monotonic() - self._opened_at > self.max_hold_s
        ):
            self._give_back()
            self._reopen_after = time.monotonic() + 0.02 + 0.02 * random.random()

    def _schedule_release(self) -> None:
        if self.idle_release_s <= 0:
            self._give_back()
            return
        if self._timer_active:
            # The timer re-reads _last_used when its wait ends, and a use only
            # moves the deadline later, so waking it here would only cost a
            # thread switch (and the GIL) on every run.
            return
        self._timer_active = True
        threading.Thread(
            target=_idle_release_loop,
            args=(weakref.ref(self), self._wake),
            name=f"consist-store-release-{os.getpid()}-{id(self):x}",
            daemon=True,
        ).start()

    def _release_if_idle(self) -> float | None:
        """Close when idle long enough; return seconds to wait, or None to stop."""
        with self._lock:
            if not self._closed:
                if self._depth > 0:
                    return self.idle_release_s
                idle = time.monotonic() - self._last_used
                if idle < self.idle_release_s:
                    return self.idle_release_s - idle
                self._give_back()
            self._timer_active = False
            return None


_WAITING = threading.local()


@contextlib.contextmanager
def while_waiting_for_the_file(work: Callable[[], None]) -> Iterator[None]:
    """Run ``work`` (once) if this thread has to wait for another process's turn meanwhile.

    A tracker opening a store that another process holds would otherwise
    sit idle, then do its own preparation (such as its git code identity)
    while holding the file; this lets it prepare during the wait instead.
    ``work`` must not use the store; its errors are ignored (what it
    prepares is computed again, and raises, where it is needed).
    """
    previous = getattr(_WAITING, "work", None)
    _WAITING.work = work
    try:
        yield
    finally:
        _WAITING.work = previous


def _prepare_while_waiting() -> None:
    work = getattr(_WAITING, "work", None)
    if work is None:
        return
    _WAITING.work = None  # once
    try:
        work()
    except Exception as exc:  # an optimisation only
        logger.debug("consist: preparing while waiting for the store failed (%s)", exc)


class _ProcessTurn:
    """This process's turn at a database file, shared by its managers.

    An ``flock`` on ``<db>.consist.lock`` is held while any manager in this
    process has the database open. Waiting processes poll it every few
    milliseconds, so when a busy holder pauses for its turn (``max_hold_s``)
    a waiter reliably gets in. The kernel drops the lock when a process dies.
    Managers in the same process share one turn (DuckDB shares the database
    instance between them anyway).
    """

    _guard = threading.Lock()
    _held: dict[str, _ProcessTurn] = {}

    def __init__(self, key: str, fd: int) -> None:
        self.key = key
        self.fd = fd
        self.count = 0

    @classmethod
    def acquire(cls, db_path: str, deadline: float, timeout_s: float) -> _ProcessTurn:
        key = os.path.realpath(db_path)
        with cls._guard:
            turn = cls._held.get(key)
            if turn is not None:
                turn.count += 1
                return turn
        fd = os.open(key + ".consist.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    with cls._guard:
                        turn = cls._held.get(key)
                        if turn is not None:  # another thread of ours got it meanwhile
                            turn.count += 1
                            os.close(fd)
                            return turn
                    if time.monotonic() >= deadline:
                        raise StoreLockTimeout(
                            f"database {db_path} stayed locked by another process for "
                            f"{timeout_s:g} s; raise TrackerConfig.lock_timeout_s or stop "
                            "the other process"
                        ) from None
                    _prepare_while_waiting()
                    time.sleep(0.002 + 0.003 * random.random())
        except BaseException:
            os.close(fd)
            raise
        with cls._guard:
            turn = cls(key, fd)
            turn.count = 1
            cls._held[key] = turn
            return turn

    def release(self) -> None:
        with self._guard:
            self.count -= 1
            if self.count > 0:
                return
            self._held.pop(self.key, None)
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


_MANAGERS: weakref.WeakSet[DuckDBConnectionManager] = weakref.WeakSet()
_SHARED: dict[str, DuckDBConnectionManager] = {}
_SHARED_GUARD = threading.Lock()

# Fork handling. DuckDB keeps one database instance per file and process, and
# ``duckdb.connect(path)`` hands out the existing one: a child forked while a
# connection is open would be given its parent's copy of the database, and its
# writes would never reach the file. So the parent gives every idle file back
# before forking (its runs are committed and applied first), and a child opens
# files afresh. A file still in use by another thread of the parent when it
# forks (a store operation outlasting ``lock_timeout_s``) cannot be opened by
# the child: it raises instead of losing writes.
_FORK_LOCKED: list[DuckDBConnectionManager] = []  # locks taken for the fork
_INHERITED: list[Any] = []  # connections a forked child inherited (kept, never used)
_INHERITED_OPEN: set[str] = set()  # real paths a child must not open (see above)


def _before_fork() -> None:
    """Give back every file no operation is using, and hold the managers still."""
    for manager in list(_MANAGERS):
        if manager._closed:
            continue
        # Waits for a store operation of another thread to end, so the child
        # never inherits one half done.
        if not manager._lock.acquire(timeout=manager.lock_timeout_s):
            continue
        _FORK_LOCKED.append(manager)
        if manager._con is not None and manager._depth == 0:
            try:
                manager._give_back()
            except Exception as exc:  # the fork must go on; the child will refuse the file
                logger.error("consist: could not release %s before fork (%s)", manager.path, exc)


def _after_fork_in_parent() -> None:
    while _FORK_LOCKED:
        _FORK_LOCKED.pop()._lock.release()


def _after_fork_in_child() -> None:
    """A forked child inherits neither our database connections nor our turn."""
    _FORK_LOCKED.clear()
    for fd in [t.fd for t in _ProcessTurn._held.values()]:
        with contextlib.suppress(OSError):
            os.close(fd)  # the parent's flock stays the parent's
    _ProcessTurn._held.clear()
    _ProcessTurn._guard = threading.Lock()
    global _SHARED_GUARD
    _SHARED_GUARD = threading.Lock()
    for manager in list(_MANAGERS):
        if manager._con is not None:
            # Never closed or freed here: DuckDB's destructor would tear down
            # a database instance whose threads did not survive the fork
            # (the child would die with SIGSEGV). The parent still owns it.
            _INHERITED.append(manager._con)
            _INHERITED_OPEN.add(os.path.realpath(manager.path))
        if manager._log_writer is not None:
            _INHERITED.append(manager._log_writer)
        manager._con = None
        manager._log_writer = None
        manager._left_as = None  # the child learns the file afresh
        manager._turn = None
        manager._depth = 0
        manager._giving_back = False
        manager._timer_active = False
        manager._wake = threading.Event()
        manager._lock = threading.RLock()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def _idle_release_loop(ref: weakref.ReferenceType[Any], wake: threading.Event) -> None:
    while True:
        manager = ref()
        if manager is None:
            return
        wait = manager._release_if_idle()
        del manager
        if wait is None:
            return
        wake.wait(timeout=max(wait, 0.005))
        wake.clear()
