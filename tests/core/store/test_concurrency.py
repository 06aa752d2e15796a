"""Several processes sharing one store, and processes that die mid-run.

Real DuckDB files under ``tmp_path`` and real child processes
(``sys.executable -c``); nothing of consist is mocked. DESIGN.md, "Storage"
and invariant 3 ("Nothing lost").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from _support import Child
from consist.core.store.connection import is_lock_error
from consist.core.store.journal import Journal
from consist.core.tracker import Tracker

pytestmark = pytest.mark.slow

# Imports consist, says "ready", waits for the go file, then records N runs, each
# logging one small output file with distinct content.
RUNS_WORKER = """
import json, sys, time
from pathlib import Path
from consist.core.tracker import Tracker

args = json.loads(sys.argv[1])
tracker = Tracker(args["run_dir"], args["db_path"], **args["options"])
print("ready", flush=True)
go = Path(args["go_file"])
while not go.exists():
    time.sleep(0.005)
for i in range(args["n"]):
    run_id = f"{args['prefix']}-{i:03d}"
    tracker.begin_run(run_id, "sim", config={"prefix": args["prefix"], "i": i})
    out = tracker.run_artifact_dir() / "result.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"result of {run_id}\\n")
    tracker.log_output(out, key="result")
    tracker.end_run()
print("done", tracker.store.connections.open_count, flush=True)
"""

# Begins a run, logs an output, says "ready" and sleeps until killed.
VICTIM = """
import json, sys, time
from consist.core.tracker import Tracker

args = json.loads(sys.argv[1])
tracker = Tracker(args["run_dir"], args["db_path"], **args["options"])
tracker.begin_run("victim", "sim", config={"x": 1})
out = tracker.run_artifact_dir() / "result.txt"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("partial result\\n")
art = tracker.log_output(out, key="result")
print("ready", art.uri, flush=True)
time.sleep(120)
"""

# Records runs back to back (begin, output, metadata, end) until killed; says
# "ready" once the first run has completed.
LOOPER = """
import json, sys
from consist.core.tracker import Tracker

args = json.loads(sys.argv[1])
tracker = Tracker(args["run_dir"], args["db_path"], **args["options"])
i = 0
while True:
    if i == 1:
        print("ready", flush=True)
    run_id = f"loop-{i:05d}"
    tracker.begin_run(run_id, "sim", config={"i": i})
    out = tracker.run_artifact_dir() / "result.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"result {i}\\n")
    tracker.log_output(out, key="result")
    tracker.log_meta(step=i)
    tracker.end_run()
    i += 1
"""

# Records N completed runs, then holds the DB connection (idle release far in
# the future), optionally inside an uncommitted transaction that deletes
# everything, says "ready" and sleeps until killed.
HOLDER = """
import json, sys, time
from consist.core.tracker import Tracker

args = json.loads(sys.argv[1])
tracker = Tracker(args["run_dir"], args["db_path"], idle_release_s=600, max_hold_s=600)
for i in range(args["n"]):
    with tracker.start_run(f"held-{i}", "sim", config={"i": i}):
        out = tracker.run_artifact_dir() / "result.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"result {i}\\n")
        tracker.log_output(out, key="result")
connections = tracker.store.connections
if args["uncommitted"]:
    with connections.transaction() as con:
        con.execute("DELETE FROM run_artifact_link")
        con.execute("DELETE FROM artifact")
        con.execute("DELETE FROM run")
        print("ready", connections.is_open, flush=True)
        time.sleep(120)
else:
    with connections.connection() as con:
        con.execute("SELECT count(*) FROM run").fetchone()
    print("ready", connections.is_open, flush=True)
    time.sleep(120)
"""

# Process A of the reader test: on "write N" records N runs, waits until its
# store has released the file, then says "idle"; exits on "quit".
INTERACTIVE_WRITER = """
import json, sys, time
from consist.core.tracker import Tracker

args = json.loads(sys.argv[1])
tracker = Tracker(args["run_dir"], args["db_path"], idle_release_s=0.2, lock_timeout_s=30)
connections = tracker.store.connections
done = 0
print("ready", flush=True)
for line in sys.stdin:
    command = line.split()
    if command[0] == "quit":
        break
    for _ in range(int(command[1])):
        with tracker.start_run(f"a-{done:03d}", "sim", config={"i": done}):
            out = tracker.run_artifact_dir() / "result.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"result {done}\\n")
            tracker.log_output(out, key="result")
        done += 1
    deadline = time.monotonic() + 10
    while connections.is_open and time.monotonic() < deadline:
        time.sleep(0.01)
    print("idle", connections.is_open, done, flush=True)
"""

# Reads run ids and statuses with a plain read-only DuckDB connection: it does
# not retry, so it only succeeds while no other process holds the file.
RAW_READER = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
rows = con.execute("SELECT id, status FROM run ORDER BY id").fetchall()
outputs = con.execute(
    "SELECT count(*) FROM run_artifact_link WHERE direction = 'output'"
).fetchone()[0]
con.close()
print(json.dumps({"runs": rows, "outputs": outputs}), flush=True)
"""

# Reads the same through a Tracker of its own (its own run_dir).
TRACKER_READER = """
import json, sys
from consist.core.tracker import Tracker
tracker = Tracker(sys.argv[2], sys.argv[1], lock_timeout_s=5)
runs = tracker.store.find_runs(limit=None)
outputs = sum(len(tracker.get_run_outputs(r.id)) for r in runs)
tracker.close()
print(json.dumps({"runs": sorted([r.id, r.status] for r in runs), "outputs": outputs}))
"""

# Opens the file once with plain DuckDB (no retry) and dumps what it finds.
RAW_DUMP = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1])
counts = {
    t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    for t in ("run", "artifact", "run_artifact_link", "content_identity")
}
runs = con.execute("SELECT id, status FROM run ORDER BY id").fetchall()
con.execute("CHECKPOINT")
con.close()
print(json.dumps({"counts": counts, "runs": runs}), flush=True)
"""


def spawn(children: list[Child], source: str, *args: object, stdin: bool = False) -> Child:
    child = Child(source, *args, stdin=stdin, timeout=60.0)
    children.append(child)
    return child


def run_child(source: str, *args: object) -> dict[str, Any]:
    """Run a short-lived child to completion and parse the JSON it prints."""
    result = subprocess.run(
        [sys.executable, "-c", source, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def pending_markers(run_dir: Path) -> list[str]:
    """Run ids whose journaled snapshot the database may still lack."""
    return Journal(run_dir).pending_run_ids()


# -- 1. many processes, one store ------------------------------------------------------

N_PROCS = 4
N_RUNS = 25


@pytest.mark.parametrize(
    ("layout", "options"),
    [
        # Own run_dir per process, eager turn-taking: lots of hand-overs.
        ("own_run_dir", {"idle_release_s": 0.05, "max_hold_s": 0.3, "lock_timeout_s": 60}),
        # One shared run_dir (and journal) with distinct run ids, default timings.
        ("shared_run_dir", {"lock_timeout_s": 60}),
    ],
)
def test_processes_sharing_one_store_lose_nothing(
    tmp_path: Path, children: list[Child], layout: str, options: dict[str, Any]
) -> None:
    db_path = tmp_path / "shared.duckdb"
    go_file = tmp_path / "go"
    prefixes = [f"p{k}" for k in range(N_PROCS)]
    run_dirs = {
        prefix: tmp_path / (prefix if layout == "own_run_dir" else "shared") for prefix in prefixes
    }
    workers = [
        spawn(
            children,
            RUNS_WORKER,
            json.dumps(
                {
                    "run_dir": str(run_dirs[prefix]),
                    "db_path": str(db_path),
                    "prefix": prefix,
                    "n": N_RUNS,
                    "go_file": str(go_file),
                    "options": options,
                }
            ),
        )
        for prefix in prefixes
    ]
    for worker in workers:
        worker.wait_for("ready")
    go_file.touch()  # all four start recording at the same moment
    for worker in workers:
        worker.wait_for("done", timeout=120)
        assert worker.finish() == 0
        stderr = worker.stderr()
        # A failed DB write is only a warning (the journal keeps the run): none allowed here.
        assert "not written to the database" not in stderr, stderr
        assert "Traceback" not in stderr, stderr

    expected = {f"{prefix}-{i:03d}": prefix for prefix in prefixes for i in range(N_RUNS)}
    total = N_PROCS * N_RUNS

    tracker = Tracker(tmp_path / "inspector", db_path)
    store = tracker.store
    assert store is not None
    counts = store.table_counts()
    assert counts["run"] == total
    assert counts["artifact"] == total
    assert counts["run_artifact_link"] == total
    assert counts["content_identity"] == total  # every output has distinct bytes
    assert {r.id for r in store.find_runs(status="completed", limit=None)} == set(expected)

    for run_id, prefix in expected.items():
        run = store.get_run(run_id)
        assert run is not None, run_id
        assert run.status == "completed", (run_id, run.status)
        assert run.ended_at is not None
        linked = store.get_run_artifacts(run_id)
        assert len(linked) == 1, (run_id, linked)
        artifact, direction = linked[0]
        assert (direction, artifact.key, artifact.run_id) == ("output", "result", run_id)
        assert artifact.hash and artifact.hash.startswith("blake3:")
        # The file is where the artifact says, with this run's content.
        producer = Tracker(run_dirs[prefix])
        assert Path(producer.resolve_uri(artifact.uri)).read_text() == f"result of {run_id}\n"
        # The journal agrees and holds nothing unsynced.
        snapshot = json.loads(producer.journal.path_for(run_id).read_bytes())
        assert snapshot["run"]["status"] == "completed"
        assert [o["id"] for o in snapshot["outputs"]] == [str(artifact.id)]

    for run_dir in set(run_dirs.values()):
        assert pending_markers(run_dir) == []
    tracker.close()


# -- 2. a run killed mid-run ---------------------------------------------------------------


def test_sigkilled_run_is_never_reported_completed(tmp_path: Path, children: list[Child]) -> None:
    run_dir, db_path = tmp_path / "work", tmp_path / "store.duckdb"
    victim = spawn(
        children,
        VICTIM,
        json.dumps({"run_dir": str(run_dir), "db_path": str(db_path), "options": {}}),
    )
    output_uri = victim.wait_for("ready").split(maxsplit=1)[1]
    victim.sigkill()  # most likely while it still holds the DB connection

    # The journal snapshots are whole JSON documents (atomic writes).
    snapshot_path = run_dir / "consist_runs" / "victim.json"
    snapshot = json.loads(snapshot_path.read_bytes())
    assert snapshot["run"]["id"] == "victim"
    assert snapshot["run"]["status"] == "running"
    assert [o["key"] for o in snapshot["outputs"]] == ["result"]
    assert json.loads((run_dir / "consist.json").read_bytes())["run"]["id"] == "victim"

    # A new tracker on the same paths opens without trouble.
    started = time.monotonic()
    tracker = Tracker(run_dir, db_path, lock_timeout_s=10)
    assert time.monotonic() - started < 5
    store = tracker.store
    assert store is not None

    killed = store.get_run("victim")
    assert killed is not None
    assert killed.status in ("running", "failed")
    assert killed.status != "completed"
    assert "result" in tracker.get_run_outputs("victim")  # its committed output is kept

    # No completed-run lookup ever hands the killed run back.
    assert "victim" not in {r.id for r in store.find_runs(status="completed", limit=None)}
    assert killed.signature is not None, "the identity signature is recorded at begin_run"
    assert store.find_completed_run(killed.signature) is None
    if killed.config_hash and killed.input_hash and killed.git_hash:
        hit = store.find_completed_run_by_hashes(
            killed.config_hash, killed.input_hash, killed.git_hash
        )
        assert hit is None or hit.id != "victim"
    assert store.latest_outputs_at([output_uri]) == {}

    # Its id stays taken, and the store records new runs normally.
    with pytest.raises(ValueError, match="victim"):
        tracker.begin_run("victim", "sim", config={"x": 1})
    with tracker.start_run("after", "sim", config={"x": 1}):
        assert not tracker.is_cached, "the killed run must not serve as a cache hit"
        out = tracker.run_artifact_dir() / "result.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("full result\n")
        tracker.log_output(out, key="result")
    after = store.get_run("after")
    assert after is not None and after.status == "completed"
    assert [r.id for r in store.find_runs(status="completed", limit=None)] == ["after"]
    hit = store.find_completed_run(after.signature)
    assert hit is not None and hit.id == "after"
    assert store.get_run("victim").status == killed.status  # untouched by the new run
    assert pending_markers(run_dir) == []
    tracker.close()


@pytest.mark.parametrize("delay_s", [0.2, 0.6, 1.0])
def test_sigkill_at_an_arbitrary_moment_loses_nothing(
    tmp_path: Path, children: list[Child], delay_s: float
) -> None:
    run_dir, db_path = tmp_path / "work", tmp_path / "store.duckdb"
    looper = spawn(
        children,
        LOOPER,
        json.dumps({"run_dir": str(run_dir), "db_path": str(db_path), "options": {}}),
    )
    looper.wait_for("ready")
    time.sleep(delay_s)
    looper.sigkill()

    # Every snapshot on disk is valid JSON, whatever moment the kill hit.
    snapshots: dict[str, dict[str, Any]] = {}
    for path in sorted((run_dir / "consist_runs").glob("*.json")):
        data = json.loads(path.read_bytes())
        snapshots[data["run"]["id"]] = data
    assert snapshots, "the looper recorded nothing before it was killed"
    assert json.loads((run_dir / "consist.json").read_bytes())["run"]["id"] in snapshots

    # Opening the store catches up with the journal: DB and journal agree.
    tracker = Tracker(run_dir, db_path, lock_timeout_s=10)
    store = tracker.store
    assert store is not None
    assert pending_markers(run_dir) == []
    db_runs = {r.id: r for r in store.find_runs(limit=None)}
    assert set(db_runs) == set(snapshots)
    for run_id, data in snapshots.items():
        assert db_runs[run_id].status == data["run"]["status"], run_id
        db_outputs = {str(a.id) for a, d in store.get_run_artifacts(run_id) if d == "output"}
        assert db_outputs == {o["id"] for o in data["outputs"]}, run_id
    statuses = [r.status for r in db_runs.values()]
    assert statuses.count("running") <= 1  # at most the run that was cut short
    assert "completed" in statuses

    # A fresh run records and reads back normally afterwards.
    with tracker.start_run("after", "sim", config={"i": -1}):
        pass
    assert store.get_run("after").status == "completed"
    tracker.close()


# -- 3. killed while holding the DB file -------------------------------------------------


@pytest.mark.parametrize("uncommitted", [False, True], ids=["idle_hold", "open_transaction"])
def test_sigkill_while_holding_the_file_does_not_lock_it_forever(
    tmp_path: Path, children: list[Child], uncommitted: bool
) -> None:
    run_dir, db_path = tmp_path / "work", tmp_path / "store.duckdb"
    n = 5
    holder = spawn(
        children,
        HOLDER,
        json.dumps(
            {"run_dir": str(run_dir), "db_path": str(db_path), "n": n, "uncommitted": uncommitted}
        ),
    )
    assert holder.wait_for("ready") == "ready True"
    # It really holds the file at the moment of the kill.
    with pytest.raises(duckdb.Error) as info:
        duckdb.connect(str(db_path))
    assert is_lock_error(info.value), str(info.value)
    holder.sigkill()

    # A brand-new process opens the file at once (no retry) and finds every
    # committed row; the uncommitted deletes died with the holder.
    dump = run_child(RAW_DUMP, db_path)
    assert dump["counts"] == {
        "run": n,
        "artifact": n,
        "run_artifact_link": n,
        "content_identity": n,
    }
    assert dump["runs"] == [[f"held-{i}", "completed"] for i in range(n)]

    # And the store is fully usable by a tracker on the same paths.
    tracker = Tracker(run_dir, db_path, lock_timeout_s=10)
    store = tracker.store
    assert store is not None
    assert pending_markers(run_dir) == []
    with tracker.start_run("after", "sim", config={"i": -1}):
        out = tracker.run_artifact_dir() / "result.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("after\n")
        tracker.log_output(out, key="result")
    assert store.table_counts()["run"] == n + 1
    assert {r.id for r in store.find_runs(status="completed", limit=None)} == {
        *(f"held-{i}" for i in range(n)),
        "after",
    }
    tracker.close()


# -- 4. readers in another process ------------------------------------------------------


@pytest.mark.parametrize("reader", ["duckdb_read_only", "tracker"])
def test_another_process_reads_while_the_writer_is_idle(
    tmp_path: Path, children: list[Child], reader: str
) -> None:
    db_path = tmp_path / "store.duckdb"
    writer = spawn(
        children,
        INTERACTIVE_WRITER,
        json.dumps({"run_dir": str(tmp_path / "a"), "db_path": str(db_path)}),
        stdin=True,
    )
    writer.wait_for("ready")

    def read() -> dict[str, Any]:
        if reader == "duckdb_read_only":
            return run_child(RAW_READER, db_path)
        return run_child(TRACKER_READER, db_path, tmp_path / "b")

    for batch, total in ((3, 3), (2, 5)):
        writer.send(f"write {batch}")
        assert writer.wait_for("idle") == f"idle False {total}"
        seen = read()
        assert writer.proc.poll() is None, "the writer must still be alive while B reads"
        assert seen["runs"] == [[f"a-{i:03d}", "completed"] for i in range(total)]
        assert seen["outputs"] == total

    writer.send("quit")
    assert writer.finish() == 0, writer.stderr()
