"""A per-process writer thread for journal files.

A run's journal snapshot must be durable before its database commit, but
nothing requires the caller to sit idle while the snapshot is fsynced: the
store can prepare and execute its insert meanwhile and wait for the file
just before it commits. :func:`submit` hands a file write to this process's
writer thread and returns a :class:`FileWrite` to wait on.

The thread belongs to the process that started it; a forked child starts
its own on first use (a thread does not survive ``fork``).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

__all__ = ["FileWrite", "submit"]


class FileWrite:
    """A file write running on the writer thread.

    :meth:`wait` returns once it has finished and re-raises its error, if
    any, in the waiting thread.
    """

    __slots__ = ("_done", "_error", "_work")

    def __init__(self, work: Callable[[], None]) -> None:
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

    def wait(self) -> None:
        """Block until the write is done; raise its error if it failed.

        Raises
        ------
        BaseException
            Whatever the write raised (an ``OSError`` for a full or
            read-only disk).
        """
        self._done.wait()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


_lock = threading.Lock()
_queue: queue.SimpleQueue[FileWrite] | None = None
_owner_pid = -1


def _serve(jobs: queue.SimpleQueue[FileWrite]) -> None:
    while True:
        jobs.get()._run()


def submit(work: Callable[[], None]) -> FileWrite:
    """Run ``work`` (a file write) on this process's writer thread.

    Writes run one at a time in submission order. The caller must
    :meth:`~FileWrite.wait` for the result before relying on the file.
    """
    global _queue, _owner_pid
    job = FileWrite(work)
    jobs = _queue
    if jobs is None or _owner_pid != os.getpid():
        with _lock:
            if _queue is None or _owner_pid != os.getpid():
                _queue = queue.SimpleQueue()
                _owner_pid = os.getpid()
                threading.Thread(
                    target=_serve,
                    args=(_queue,),
                    name=f"consist-journal-writer-{_owner_pid}",
                    daemon=True,
                ).start()
            jobs = _queue
    jobs.put(job)
    return job
