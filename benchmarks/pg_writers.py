"""8 processes x 100 runs vs 1 process x 800 on one PostgreSQL store (team mode).

Usage::

    python benchmarks/pg_writers.py [--durable]

Starts a throwaway PostgreSQL server (``tests/pg_server.py``; ``--durable``
keeps fsync and synchronous commit on), then, three times each, records 800
trivial runs with ``Tracker(db_url=...)`` from one process and 100 from each
of 8 processes started together, checks that every run is in the store, and
prints the wall times, their medians and the ratio (the issue's goal: 8 x 100
under 2x the time of 1 x 800, none lost).
"""

import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import PostgresServer


def step(x: int = 0) -> None:
    return None


def worker(url, run_dir, w, n, barrier):
    from consist import Tracker

    t = Tracker(run_dir, db_url=url, project_root=Path(run_dir).parent)
    t.run(step, name="warm", config={"w": w, "warm": True})
    barrier.wait()
    start = time.perf_counter()
    for i in range(n):
        t.run(step, name="bench", config={"w": w, "i": i})
    el = time.perf_counter() - start
    t.close()
    return el


def trial(server, procs, per):
    url = server.create_database()
    base = Path(tempfile.mkdtemp())
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as m, ctx.Pool(procs) as pool:
        barrier = m.Barrier(procs + 1)
        jobs = [
            pool.apply_async(worker, (url, str(base / f"r{w}"), w, per, barrier))
            for w in range(procs)
        ]
        barrier.wait()
        start = time.perf_counter()
        [j.get(600) for j in jobs]
        wall = time.perf_counter() - start
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as con:
        count = con.execute("select count(*) from run where model_name='bench'").fetchone()[0]
    assert count == procs * per, count
    return wall


if __name__ == "__main__":
    durable = "--durable" in sys.argv
    s = PostgresServer(durable=durable).start()
    try:
        res = {"1x800": [], "8x100": []}
        for _rep in range(3):
            res["1x800"].append(trial(s, 1, 800))
            res["8x100"].append(trial(s, 8, 100))
        for k, v in res.items():
            print(k, "walls", [round(x, 2) for x in v], "median", round(statistics.median(v), 2))
        print(
            "ratio 8x100/1x800",
            round(statistics.median(res["8x100"]) / statistics.median(res["1x800"]), 2),
        )
    finally:
        s.stop()
