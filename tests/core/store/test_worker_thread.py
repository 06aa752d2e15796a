"""The store's per-process worker thread: jobs in order, errors handed back, fork-safe."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from consist.core.store import worker_thread


def test_jobs_run_in_order_on_one_other_thread() -> None:
    seen: list[tuple[int, str]] = []
    jobs = [
        worker_thread.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
        for i in range(5)
    ]
    assert [job.settle() for job in jobs] == [(None, None)] * 5
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    names = {name for _, name in seen}
    assert len(names) == 1 and names != {threading.current_thread().name}


def test_a_job_error_is_handed_back_by_settle() -> None:
    def fail() -> None:
        raise ValueError("boom")

    error, interrupt = worker_thread.submit(fail).settle()
    assert isinstance(error, ValueError) and interrupt is None
    assert worker_thread.submit(lambda: None).settle() == (None, None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_module_lock_is_held_still_gets_a_worker() -> None:
    worker_thread.submit(lambda: None).settle()  # the parent has its thread
    with worker_thread._lock:  # e.g. another thread starting the parent's worker
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                signal.alarm(20)  # a deadlock ends the child instead of the suite
                ran = []
                worker_thread.submit(lambda: ran.append(os.getpid())).settle()
                code = 0 if ran == [os.getpid()] else 3
            finally:
                sys.stdout.flush()
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert not os.WIFSIGNALED(status), f"child killed by signal {os.WTERMSIG(status)}"
    assert os.WEXITSTATUS(status) == 0
