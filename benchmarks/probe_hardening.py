"""Adversarial concurrency probes of one shared store (issue 10, closing figures).

Usage::

    python benchmarks/probe_hardening.py race     [--procs 8 --configs 400]
    python benchmarks/probe_hardening.py writers  [--procs 8 --runs 200]
    python benchmarks/probe_hardening.py sigkill  [--kills 40 --writers 4]
    python benchmarks/probe_hardening.py forkpool [--workers 4 --runs 25]
    python benchmarks/probe_hardening.py all

Every probe works in a fresh temporary directory with real processes on one
DuckDB file and prints a JSON summary:

* ``race``: ``--procs`` processes run the same ``--configs`` configs of a step
  that appends ``pid config`` to a file (``O_APPEND``) each time it executes.
  Reports executions against the number of configs, and the executions no
  rule allows: by a process whose ``run()`` for that config began after
  another process's ``run()`` for it had returned (``unjustified``).
* ``writers``: ``--procs`` processes x ``--runs`` cache misses on one store
  against one process doing all of them: wall time ratio and runs lost.
* ``sigkill``: ``--writers`` processes record runs back to back, printing each
  run id once ``run()`` returned; one of them is SIGKILLed at a random moment,
  and replaced, until ``--kills`` kills. A fresh tracker then checks that every
  printed run is stored and completed (``returned_lost`` must be 0).
* ``forkpool``: a parent holding a tracker records runs, forks a
  ``multiprocessing`` pool (fork start method) whose workers each open their
  own tracker on the same store, then records more: wall time, runs lost or
  recorded twice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

# The steps live in a module file written into the scratch directory, so every
# process imports the same file (same code identity) from a plain directory.
STEPS = textwrap.dedent(
    """
    import os
    import time


    def record(i: int) -> None:
        work_ms = float(os.environ.get("PROBE_WORK_MS", "0"))
        if work_ms:
            time.sleep(work_ms / 1000)
        fd = os.open(os.environ["PROBE_EXEC_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {i} {time.monotonic_ns()}\\n".encode())
        finally:
            os.close(fd)


    def trivial(w: int = 0, i: int = 0) -> None:
        return None
    """
)

RACE_WORKER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from pathlib import Path
    args = json.loads(sys.argv[1])
    sys.path.insert(0, args["scratch"])
    import steps
    from consist import Tracker

    tracker = Tracker(args["run_dir"], db_path=args["db_path"], project_root=args["scratch"])
    order = list(range(args["configs"]))
    if args["shuffle"]:
        random.Random(args["seed"]).shuffle(order)
    print("ready", flush=True)
    go = Path(args["go"])
    while not go.exists():
        time.sleep(0.002)
    rows = []
    for i in order:
        reached = time.monotonic_ns()
        result = tracker.run(fn=steps.record, name="race", config={"i": i})
        rows.append([i, reached, time.monotonic_ns(), bool(result.cache_hit)])
    tracker.close()
    Path(args["out"]).write_text(json.dumps({"pid": os.getpid(), "rows": rows}))
    print("done", flush=True)
    """
)

WRITER_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    args = json.loads(sys.argv[1])
    sys.path.insert(0, args["scratch"])
    import steps
    from consist import Tracker

    tracker = Tracker(args["run_dir"], db_path=args["db_path"], project_root=args["scratch"])
    print("ready", flush=True)
    go = Path(args["go"])
    while not go.exists():
        time.sleep(0.002)
    ids = []
    for i in range(args["runs"]):
        result = tracker.run(fn=steps.trivial, name="writer", config={"w": args["w"], "i": i})
        ids.append(result.run.id)
    tracker.close()
    Path(args["out"]).write_text(json.dumps(ids))
    """
)

LOOP_WORKER = textwrap.dedent(
    """
    import json, sys
    args = json.loads(sys.argv[1])
    sys.path.insert(0, args["scratch"])
    import steps
    from consist import Tracker

    tracker = Tracker(args["run_dir"], db_path=args["db_path"], project_root=args["scratch"])
    print("ready", flush=True)
    i = 0
    while True:
        result = tracker.run(fn=steps.trivial, name="looper", config={"w": args["w"], "i": i})
        print("returned", result.run.id, flush=True)
        i += 1
    """
)


_SCRATCH: list[Path] = []  # removed at the end unless --keep


def _scratch() -> Path:
    base = Path(tempfile.mkdtemp(prefix="consist-probe-"))
    _SCRATCH.append(base)
    (base / "steps.py").write_text(STEPS)
    return base


def _spawn(source: str, params: dict[str, Any], **kwargs: Any) -> subprocess.Popen[str]:
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    options.update(kwargs)
    return subprocess.Popen([sys.executable, "-c", source, json.dumps(params)], **options)


def _start_together(
    source: str, params: list[dict[str, Any]], go: Path, env: dict[str, str] | None = None
) -> tuple[list[subprocess.Popen[str]], float]:
    """Start one process per params, release them at once; (processes, t0)."""
    procs = [_spawn(source, p, env=env) for p in params]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(
                f"worker failed to start: {proc.stderr.read() if proc.stderr else ''}"
            )
    t0 = time.perf_counter()
    go.touch()
    return procs, t0


def _wait_all(procs: list[subprocess.Popen[str]], timeout: float) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"worker exited {proc.returncode}: {err[-3000:]}")


# -- race ---------------------------------------------------------------------


def analyse_race(exec_log: Path, outs: list[dict[str, Any]], configs: int) -> dict[str, Any]:
    """Executions per config against what the hand-over rule allows.

    An execution of config ``c`` by process ``p`` is justified when ``p``'s
    ``run()`` for ``c`` began before any ``run()`` for ``c`` (in any process)
    had returned a completed run; otherwise that process should have hit.
    """
    executions: dict[int, list[int]] = defaultdict(list)
    for line in exec_log.read_text().splitlines():
        pid, i, _ = line.split()
        executions[int(i)].append(int(pid))
    first_return: dict[int, int] = {}
    reached: dict[tuple[int, int], int] = {}
    for out in outs:
        for i, t_reach, t_ret, hit in out["rows"]:
            reached[(out["pid"], i)] = t_reach
            if not hit:
                first_return[i] = min(first_return.get(i, t_ret), t_ret)
    unjustified = []
    twice_by_one = 0
    for i, pids in executions.items():
        twice_by_one += len(pids) - len(set(pids))
        for pid in pids:
            if reached[(pid, i)] > first_return[i]:
                unjustified.append((i, pid))
    total = sum(len(p) for p in executions.values())
    return {
        "configs": configs,
        "executions": total,
        "extra": total - configs,
        "configs_never_executed": configs - len(executions),
        "configs_executed_more_than_once": sum(1 for p in executions.values() if len(p) > 1),
        "executed_twice_by_one_process": twice_by_one,
        "unjustified": len(unjustified),
        "unjustified_examples": unjustified[:10],
    }


def probe_race(
    procs: int, configs: int, shuffle: bool, work_ms: float = 0.0, timeout: float = 900
) -> dict[str, Any]:
    """``procs`` processes on the same ``configs`` configs; see the module docstring.

    ``work_ms`` is how long each execution of the step takes (a sleep before
    it appends its line): with work, a process's turn at the file ends
    mid-sequence and the processes interleave.
    """
    base = _scratch()
    exec_log = base / "executions.log"
    env = {**os.environ, "PROBE_EXEC_LOG": str(exec_log), "PROBE_WORK_MS": str(work_ms)}
    params = [
        {
            "scratch": str(base),
            "run_dir": str(base / "runs"),
            "db_path": str(base / "store.duckdb"),
            "configs": configs,
            "shuffle": shuffle,
            "seed": k,
            "go": str(base / "go"),
            "out": str(base / f"race-{k}.json"),
        }
        for k in range(procs)
    ]
    running, t0 = _start_together(RACE_WORKER, params, base / "go", env)
    _wait_all(running, timeout)
    wall = time.perf_counter() - t0
    outs = [json.loads(Path(p["out"]).read_text()) for p in params]
    summary = analyse_race(exec_log, outs, configs)
    summary.update(
        procs=procs,
        order="shuffled" if shuffle else "same",
        work_ms=work_ms,
        hits=sum(1 for out in outs for row in out["rows"] if row[3]),
        wall_s=round(wall, 2),
    )
    return summary


# -- writers ------------------------------------------------------------------


def _count_completed(base: Path, model: str, ids: list[str]) -> tuple[int, int]:
    """(returned runs missing or not completed, completed runs of ``model``) via a fresh tracker."""
    from consist import Tracker

    tracker = Tracker(base / "check_runs", db_path=base / "store.duckdb", project_root=base)
    try:
        lost = 0
        for run_id in ids:
            run = tracker.get_run(run_id)
            if run is None or run.status != "completed":
                lost += 1
        stored = len(tracker.find_runs(model=model, status="completed", limit=10**9))
    finally:
        tracker.close()
    return lost, stored


def probe_writers(procs: int, runs: int, timeout: float = 900) -> dict[str, Any]:
    """``procs`` x ``runs`` misses on one store against 1 x ``procs * runs``."""
    result: dict[str, Any] = {"procs": procs, "runs_per_proc": runs}
    for mode, workers, per in (("single", 1, procs * runs), ("shared", procs, runs)):
        base = _scratch()
        params = [
            {
                "scratch": str(base),
                "run_dir": str(base / "runs"),
                "db_path": str(base / "store.duckdb"),
                "runs": per,
                "w": w,
                "go": str(base / "go"),
                "out": str(base / f"writer-{w}.json"),
            }
            for w in range(workers)
        ]
        running, t0 = _start_together(WRITER_WORKER, params, base / "go")
        _wait_all(running, timeout)
        wall = time.perf_counter() - t0
        ids = [i for p in params for i in json.loads(Path(p["out"]).read_text())]
        lost, stored = _count_completed(base, "writer", ids)
        result[mode] = {
            "wall_s": round(wall, 2),
            "returned": len(ids),
            "stored": stored,
            "lost": lost,
        }
    result["wall_ratio"] = round(result["shared"]["wall_s"] / result["single"]["wall_s"], 2)
    result["lost_runs"] = procs * runs - result["shared"]["stored"] + result["shared"]["lost"]
    return result


# -- sigkill ------------------------------------------------------------------


def probe_sigkill(kills: int, writers: int, seed: int = 10) -> dict[str, Any]:
    """Kill writer processes at random moments; count returned runs lost."""
    rng = random.Random(seed)
    base = _scratch()
    returned: list[str] = []
    readers: list[threading.Thread] = []
    spawned = 0

    def collect(proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # a line is only complete once run() returned
            if line.startswith("returned ") and line.endswith("\n"):
                returned.append(line.split()[1])

    def spawn() -> subprocess.Popen[str]:
        nonlocal spawned
        spawned += 1
        params = {
            "scratch": str(base),
            "run_dir": str(base / "runs"),
            "db_path": str(base / "store.duckdb"),
            "w": spawned,
        }
        proc = _spawn(LOOP_WORKER, params, stderr=subprocess.DEVNULL)
        reader = threading.Thread(target=collect, args=(proc,), daemon=True)
        reader.start()
        readers.append(reader)
        return proc

    pool = [spawn() for _ in range(writers)]
    t0 = time.perf_counter()
    for _ in range(kills):
        time.sleep(rng.uniform(0.2, 1.2))
        victim = rng.randrange(len(pool))
        pool[victim].send_signal(signal.SIGKILL)
        pool[victim].wait(timeout=30)
        pool[victim] = spawn()
    for proc in pool:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    for reader in readers:
        reader.join(timeout=10)
    wall = time.perf_counter() - t0
    lost, stored = _count_completed(base, "looper", returned)
    return {
        "kills": kills + writers,
        "random_kills": kills,
        "writers_at_once": writers,
        "processes": spawned,
        "returned_runs": len(returned),
        "returned_lost": lost,
        "completed_in_store": stored,
        "wall_s": round(wall, 2),
    }


# -- forkpool -----------------------------------------------------------------


def probe_forkpool(workers: int, runs: int) -> dict[str, Any]:
    """A fork-based pool under a parent that holds a tracker."""
    import multiprocessing

    base = _scratch()
    sys.path.insert(0, str(base))
    import steps  # type: ignore[import-not-found]

    from consist import Tracker

    db = base / "store.duckdb"
    parent = Tracker(base / "runs", db_path=db, project_root=base)
    before = [parent.run(fn=steps.trivial, name="pool", config={"w": -1, "i": i}) for i in range(5)]
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        child_ids = pool.starmap(
            _pool_worker, [(str(base), str(db), w, runs) for w in range(workers)]
        )
    wall = time.perf_counter() - t0
    after = [parent.run(fn=steps.trivial, name="pool", config={"w": -2, "i": i}) for i in range(5)]
    ids = [r.run.id for r in before + after] + [i for ids in child_ids for i in ids]
    parent.close()
    lost, stored = _count_completed(base, "pool", ids)
    return {
        "workers": workers,
        "runs_per_worker": runs,
        "pool_wall_s": round(wall, 2),
        "returned": len(ids),
        "distinct_returned": len(set(ids)),
        "lost": lost,
        "stored": stored,
    }


def _pool_worker(base: str, db: str, w: int, runs: int) -> list[str]:
    import steps  # type: ignore[import-not-found]

    from consist import Tracker

    tracker = Tracker(Path(base) / "runs", db_path=db, project_root=base)
    try:
        return [
            tracker.run(fn=steps.trivial, name="pool", config={"w": w, "i": i}).run.id
            for i in range(runs)
        ]
    finally:
        tracker.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe", choices=["race", "writers", "sigkill", "forkpool", "all"])
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--configs", type=int, default=400)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--shuffle", action="store_true", help="race: each process its own order")
    ap.add_argument("--work-ms", type=float, default=0.0, help="race: time one execution takes")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    if args.probe in ("race", "all"):
        out["race"] = probe_race(args.procs, args.configs, args.shuffle, args.work_ms)
        if args.probe == "all":
            out["race_shuffled"] = probe_race(args.procs, args.configs, True)
            out["race_work_10ms"] = probe_race(args.procs, args.configs, False, 10.0)
            out["race_shuffled_work_10ms"] = probe_race(args.procs, args.configs, True, 10.0)
    if args.probe in ("writers", "all"):
        out["writers"] = probe_writers(args.procs, args.runs)
    if args.probe in ("sigkill", "all"):
        out["sigkill"] = probe_sigkill(args.kills, args.writers)
    if args.probe in ("forkpool", "all"):
        out["forkpool"] = probe_forkpool(args.workers, 25 if args.probe == "all" else args.runs)
    print(json.dumps(out, indent=1))
    for base in _SCRATCH:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
