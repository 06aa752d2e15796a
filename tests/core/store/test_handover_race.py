"""Processes racing on the same configs of one store execute each config once.

Issue 10, point 6: a process hands the DuckDB file to another only with its
runs committed, so a process that reaches a config after another process
has completed it hits instead of executing it again. Real child processes,
a real DuckDB file and the layout modelers use (code, run_dir and store in
one git repository); each execution of the step appends a line to a file
with ``O_APPEND``, so executions are counted outside consist.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from _support import Child, make_git_repo
from consist import Tracker

pytestmark = pytest.mark.slow

PROCESSES = 4
CONFIGS = 60

STEPS = """
import os
import time


def record(i: int) -> None:
    time.sleep(0.01)  # long enough that a turn (max_hold_s) ends mid-sequence
    fd = os.open(os.environ["RACE_EXEC_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {i}\\n".encode())
    finally:
        os.close(fd)
"""

# Opens a tracker, says "ready", waits for the go file, runs every config in
# order and prints one JSON line: per config (config, reached ns, returned ns,
# cache hit, run id).
WORKER = """
import json, os, sys, time
from pathlib import Path

args = json.loads(sys.argv[1])
os.environ["RACE_EXEC_LOG"] = args["exec_log"]
sys.path.insert(0, args["repo"])
import steps
from consist import Tracker

tracker = Tracker(
    args["run_dir"],
    db_path=args["db_path"],
    project_root=args["repo"],
    max_hold_s=0.1,
    idle_release_s=5.0,
    lock_timeout_s=60.0,
)
print("ready", flush=True)
go = Path(args["go"])
while not go.exists():
    time.sleep(0.002)
rows = []
for i in range(args["configs"]):
    reached = time.monotonic_ns()
    result = tracker.run(fn=steps.record, name="race", config={"i": i})
    rows.append([i, reached, time.monotonic_ns(), bool(result.cache_hit), result.run.id])
opens = tracker.store.connections.open_count
tracker.close()
print("done " + json.dumps({"pid": os.getpid(), "rows": rows, "opens": opens}), flush=True)
"""


def test_racing_processes_execute_each_config_once(tmp_path: Path, children: list[Child]) -> None:
    repo = make_git_repo(tmp_path / "model", {"steps.py": STEPS})
    exec_log = repo / "executions.log"  # untracked, beside the code
    go = tmp_path / "go"
    params = {
        "repo": str(repo),
        "run_dir": str(repo / "runs"),
        "db_path": str(repo / "provenance.duckdb"),
        "exec_log": str(exec_log),
        "configs": CONFIGS,
        "go": str(go),
    }
    for _ in range(PROCESSES):
        children.append(Child(WORKER, json.dumps(params), timeout=180))
    for child in children:
        child.wait_for("ready")
    go.touch()
    outs = [json.loads(child.wait_for("done ")[len("done ") :]) for child in children]
    for child in children:
        assert child.finish() == 0, child.stderr()

    executions = [line.split() for line in exec_log.read_text().splitlines()]
    per_config = Counter(int(i) for _, i in executions)
    # The turn really changed hands mid-sequence: more than one process
    # executed configs, and every process re-opened the file several times.
    executors = {pid for pid, _ in executions}
    assert len(executors) > 1, "one process ran every config: no hand-over was exercised"
    assert all(out["opens"] > 1 for out in outs)

    # Any extra execution would be one of these: (config, pid, reached before
    # the first completion returned?). With idle_release_s=5 s no process lets
    # the file go while a 10 ms step runs, so no run is ever in flight while
    # another process looks its config up: there must be none at all.
    first_return = {
        i: min(t_ret for out in outs for j, _, t_ret, hit, _ in out["rows"] if j == i and not hit)
        for i in per_config
    }
    reached = {(str(out["pid"]), row[0]): row[1] for out in outs for row in out["rows"]}
    extra = [
        (int(i), pid, reached[(pid, int(i))] < first_return[int(i)])
        for pid, i in executions
        if per_config[int(i)] > 1
    ]
    assert sorted(per_config) == list(range(CONFIGS))
    assert len(executions) == CONFIGS, f"{len(executions)} executions for {CONFIGS}: {extra}"

    # Each process executed exactly its misses and hit everything else.
    for out in outs:
        misses = sorted(row[0] for row in out["rows"] if not row[3])
        mine = sorted(int(i) for pid, i in executions if pid == str(out["pid"]))
        assert misses == mine

    # Every run that run() returned is stored, completed, once.
    ids = [row[4] for out in outs for row in out["rows"]]
    assert len(set(ids)) == len(ids) == PROCESSES * CONFIGS
    check = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    try:
        stored = check.find_runs(model="race", limit=10 * len(ids))
        assert sorted(r.id for r in stored) == sorted(ids)
        assert {r.status for r in stored} == {"completed"}
    finally:
        check.close()
