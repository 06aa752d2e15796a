"""A per-process worker thread, so that a run's two durable writes overlap.

A run's journal snapshot must be durable before its database commit, but the
database statements that precede the commit need not wait for it. The store
hands its ``BEGIN`` and insert to this thread (DuckDB releases the GIL while
it executes them) and writes and fsyncs the journal file in the calling
thread meanwhile; it commits once both are done. Measured on two cores, this
split costs less than the reverse one (the file on this thread, the
statements in the caller): the caller then spends its wait in system calls,
and fewer hand-overs of the GIL stall either thread.

:func:`submit` queues a job and returns a :class:`Job` to settle. Jobs run
one at a time in submission order. The thread belongs to the process that
started it; a forked child starts its own on first use (a thread does not
survive ``fork``).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

__all__ = ["Job", "submit"]


class Job:
    """A job running on the worker thread; :meth:`settle` waits for it and hands back its error."""

    __slots__ = ("_done", "_error", "_work")

    def __init__(self, work: Callable[[], object]) -> None:
        self._work = work
        self._done = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # handed to the waiter
            self._error = exc
        finally:
            self._done.set()

    def settle(self) -> tuple[BaseException | None, BaseException | None]:
        """Block until the job is done, even through interrupts.

        Returns
        -------
        tuple
            The job's error (or None), and the first exception that
            interrupted the wait (a ``KeyboardInterrupt``; or None), which
            the caller re-raises once it no longer needs the job's resources.
        """
        interrupt: BaseException | None = None
        while True:
            try:
                self._done.wait()
                break
            except BaseException as exc:  # e.g. KeyboardInterrupt: the job still runs
                interrupt = interrupt or exc
        error, self._error = self._error, None
        return error, interrupt


_lock = threading.Lock()
_queue: queue.SimpleQueue[Job] | None = None
_owner_pid = -1


def _forget_in_child() -> None:
    """A forked child owns no worker thread, and no lock a parent thread held."""
    global _lock, _queue, _owner_pid
    _lock = threading.Lock()
    _queue = None
    _owner_pid = -1


os.register_at_fork(after_in_child=_forget_in_child)


def _serve(jobs: queue.SimpleQueue[Job]) -> None:
    while True:
        jobs.get()._run()


def submit(work: Callable[[], object]) -> Job:
    """Run ``work`` on this process's worker thread.

    ``work`` must not wait for another job (they run one at a time). The
    caller must :meth:`~Job.settle` it before relying on its result.
    """
    global _queue, _owner_pid
    job = Job(work)
    jobs = _queue
    if jobs is None or _owner_pid != os.getpid():
        with _lock:
            if _queue is None or _owner_pid != os.getpid():
                _queue = queue.SimpleQueue()
                _owner_pid = os.getpid()
                threading.Thread(
                    target=_serve,
                    args=(_queue,),
                    name=f"consist-store-worker-{_owner_pid}",
                    daemon=True,
                ).start()
            jobs = _queue
    jobs.put(job)
    return job
