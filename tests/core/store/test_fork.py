"""A process that forks after using a tracker: the child neither crashes nor
touches the parent's connection, and may open a tracker of its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from consist import Tracker

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _step(x: int = 0) -> None:
    return None


def _fork(child) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = child()
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert not os.WIFSIGNALED(status), f"child killed by signal {os.WTERMSIG(status)}"
    return os.WEXITSTATUS(status)


def test_forked_child_exits_cleanly_and_can_use_its_own_tracker(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)
    first = tracker.run(_step, name="forked", config={"x": 1})
    assert tracker.store.connections.is_open  # the parent holds the file when forking

    assert _fork(lambda: 0) == 0

    def child_runs() -> int:
        mine = Tracker(
            tmp_path / "runs_child", db_path=tmp_path / "db.duckdb", project_root=tmp_path
        )
        hit = mine.run(_step, name="forked", config={"x": 1})
        miss = mine.run(_step, name="forked", config={"x": 2})
        mine.close()
        return 0 if hit.cache_hit and not miss.cache_hit else 3

    tracker.close()
    assert _fork(child_runs) == 0
    # The parent carries on with the runs of both.
    assert tracker.get_run(first.run_id).status == "completed"
    assert len(tracker.find_runs(model="forked")) == 3
    tracker.close()
