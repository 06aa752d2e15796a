"""A step defined in a notebook cell, with the tracker inside the project's repository.

Jupyter compiles each cell under a file name that does not exist on disk
(``/tmp/ipykernel_<pid>/<hash>.py``) and keeps its source in ``linecache``;
these tests define steps exactly that way. Re-running an unchanged cell is a
cache hit; editing the cell is a miss; code with no source at all still fails
closed.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _support import make_git_repo, write
from consist import Tracker
from consist.core.identity.code_identity import CodeIdentityError

_CELLS = 0


def run_cell(source: str, *, register: bool = True) -> dict[str, Any]:
    """Execute ``source`` as a notebook cell; return the cell's namespace."""
    global _CELLS
    _CELLS += 1
    filename = f"/tmp/ipykernel_4242/cell_{_CELLS}_{abs(hash(source))}.py"
    if register:
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


CELL = """
def scale_households(scale: int = 1) -> None:
    CALLS.append(scale * FACTOR)
"""


def cell_step(source: str, calls: list[int], factor: int = 1) -> Callable[..., Any]:
    namespace = run_cell(source)
    namespace["CALLS"] = calls
    namespace["FACTOR"] = factor
    return namespace["scale_households"]


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    repo = make_git_repo(tmp_path / "model", {"model.py": "A = 1\n"})
    write(repo / "data" / "households.csv", "id\n1\n")  # untracked data beside the code
    write(repo / "notebooks" / "explore.log", "cell output\n")
    t = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    yield t
    t.close()


def test_rerunning_an_unchanged_cell_hits(tracker: Tracker) -> None:
    calls: list[int] = []
    first = tracker.run(cell_step(CELL, calls), config={"scale": 3})
    assert not first.cache_hit and calls == [3]
    # The cell is executed again: a new function object with the same source.
    again = tracker.run(cell_step(CELL, calls), config={"scale": 3})
    assert again.cache_hit and calls == [3]
    outside = first.run.meta.get("code_identity_mode")
    assert outside == "repo_git"
    manifest = tracker.store.get_identity_manifest(first.run_id)
    assert manifest["code"]["details"]["outside_repo_callable"]["mode"] == "callable_source"


def test_editing_the_cell_is_a_miss_and_editing_it_back_hits(tracker: Tracker) -> None:
    calls: list[int] = []
    tracker.run(cell_step(CELL, calls), config={"scale": 2})
    edited = CELL.replace("scale * FACTOR", "scale * FACTOR + 1")
    changed = tracker.run(cell_step(edited, calls), config={"scale": 2})
    assert not changed.cache_hit
    assert calls == [2, 3]
    back = tracker.run(cell_step(CELL, calls), config={"scale": 2})
    assert back.cache_hit and back.run.meta["cache_source"] != changed.run_id
    assert calls == [2, 3]


def test_code_with_no_source_anywhere_fails_closed(tracker: Tracker) -> None:
    namespace = run_cell(CELL, register=False)
    namespace["CALLS"], namespace["FACTOR"] = [], 1
    with pytest.raises(CodeIdentityError, match="outside the repository"):
        tracker.run(namespace["scale_households"], config={"scale": 1})
    assert tracker.find_runs(model="scale_households") == []
