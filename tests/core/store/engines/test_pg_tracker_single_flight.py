"""Single-flight through ``tracker.run`` on a PostgreSQL store (``db_url``), real processes.

Each worker is a separate Python process running ``worker.py``: it opens a
Tracker on the test's database (its own ``run_dir``, as on another machine)
and runs one slow step on one signature. The step logs its pid when it
starts, so the test knows the holder is inside it (holding the claim, a
server session advisory lock). Killing the holder with SIGKILL ends its
session, so the server drops the lock and the waiter computes the step
itself; a waiter with ``single_flight_timeout`` gives up with
``SingleFlightTimeout`` and records nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consist import Tracker

STEP = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    import consist

    def slow_step(seconds: float, log: str) -> Path:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(seconds)
        out = consist.output_path("out", ext="txt")
        out.write_text("computed once\\n")
        return out
    """
)

WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    root = Path(sys.argv[1])
    sys.path.insert(0, str(root))
    from consist import Tracker
    from steps import slow_step
    tracker = Tracker(
        run_dir=root / sys.argv[3], db_url=sys.argv[2], project_root=root, **eval(sys.argv[5])
    )
    result = tracker.run(
        slow_step, name="slow", outputs=["out"],
        config={"log": str(root / "executions.log")},
        runtime_kwargs={"seconds": float(sys.argv[4])},  # how long, not what: not hashed
    )
    print(result.cache_hit, result.run_id, result.outputs["out"].hash,
          result.outputs["out"].abs_path)
    tracker.close()
    """
)


class Workers:
    """Worker processes of one test; any still running at teardown are killed."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.started: list[subprocess.Popen[str]] = []

    def start(self, machine: str, seconds: float, options: str = "{}") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(self.root / "worker.py"),
                str(self.root),
                self.url,
                machine,
                str(seconds),
                options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(proc)
        return proc

    def executions(self) -> list[str]:
        log = self.root / "executions.log"
        return log.read_text().split() if log.exists() else []

    def wait_inside_step(self, holder: subprocess.Popen[str]) -> None:
        """Until ``holder`` is inside the step (so it holds the claim)."""
        deadline = time.monotonic() + 90
        while not self.executions():
            assert holder.poll() is None, holder.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the holder never started the step"
            time.sleep(0.05)


@pytest.fixture
def workers(tmp_path: Path, pg_url: str) -> Iterator[Workers]:
    (tmp_path / "steps.py").write_text(STEP)
    (tmp_path / "worker.py").write_text(WORKER)
    pool = Workers(tmp_path, pg_url)
    yield pool
    for proc in pool.started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _runs(workers: Workers, **filters: object) -> list:
    reader = Tracker(workers.root / "reader", db_url=workers.url, project_root=workers.root)
    try:
        return reader.find_runs(model="slow", limit=100, **filters)
    finally:
        reader.close()


@pytest.mark.slow
def test_a_sigkilled_holder_lets_a_worker_on_another_machine_compute(workers: Workers) -> None:
    holder = workers.start("machine_a", 120)
    workers.wait_inside_step(holder)
    waiter = workers.start("machine_b", 0.2)
    time.sleep(1.5)
    # The waiter is waiting on the claim, not computing (its run_dir is its own:
    # the claim lives in the database server, not on a shared file system).
    assert waiter.poll() is None, waiter.communicate()
    assert workers.executions() == [str(holder.pid)]

    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL

    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err[-3000:]
    cache_hit, run_id, digest, path = out.split()
    assert cache_hit == "False"  # nobody finished: the waiter computed it
    assert workers.executions() == [str(holder.pid), str(waiter.pid)]
    assert Path(path).read_text() == "computed once\n"
    assert Path(path).is_relative_to(workers.root / "machine_b")
    completed = _runs(workers, status="completed")
    assert [r.id for r in completed] == [run_id]

    # A later worker beside the waiter's files hits its run without computing
    # (on a machine without the files it would compute: no blob store here).
    third = workers.start("machine_b", 0.2)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err[-3000:]
    hit, _, hit_digest, _ = out.split()
    assert hit == "True" and hit_digest == digest
    assert len(workers.executions()) == 2


@pytest.mark.slow
def test_a_waiter_times_out_with_a_clear_error_and_records_nothing(workers: Workers) -> None:
    holder = workers.start("machine_a", 6)
    workers.wait_inside_step(holder)
    waiter = workers.start("machine_b", 0.2, "{'single_flight_timeout': 0.5}")
    _, err = waiter.communicate(timeout=120)
    assert waiter.returncode != 0
    assert "SingleFlightTimeout" in err and "single_flight_timeout=0.5" in err
    assert not (workers.root / "machine_b" / "consist_runs").exists() or not list(
        (workers.root / "machine_b" / "consist_runs").glob("*.json")
    )
    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err[-3000:]
    assert out.split()[0] == "False"
    assert [r.status for r in _runs(workers)] == ["completed"]
    assert workers.executions() == [str(holder.pid)]
