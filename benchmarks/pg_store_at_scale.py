"""Queries on a PostgreSQL store of 100,000 runs (team mode).

Usage::

    python benchmarks/pg_store_at_scale.py [RUNS] [--durable]

Starts a throwaway PostgreSQL server (``tests/pg_server.py``), fills one
store with RUNS (default 100,000) runs shaped like the shared harness's
query step (10 models, 20 tag groups; rows written in batches with
``sync_records`` from one recorded run, then ``VACUUM ANALYZE``, as
autovacuum would after such a load), and prints
medians of 20 calls of ``get_run``, ``find_runs(model)``,
``find_runs(tags)``, ``find_latest_run(model)``, ``history(10)``, the
lineage of a 50-run chain recorded beside them, and the cost of a
``tracker.run`` cache miss on the filled store.
"""

import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import PostgresServer


def trivial_step() -> None:
    return None


def med(fn, reps=20):
    fn()
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return round(1000 * statistics.median(xs), 2)


def main(n):
    from consist import Tracker
    from consist.core.store.engines.pg_store import PostgresMetadataStore

    s = PostgresServer(durable="--durable" in sys.argv).start()
    try:
        url = s.create_database()
        base = Path(tempfile.mkdtemp())
        t = Tracker(base / "runs", db_url=url, project_root=base)
        r = t.run(
            trivial_step, name="seed", model="model_0", tags=["bench", "group_0"], config={"i": -1}
        )
        rec = t.journal.read(r.run_id)
        t.close()
        store = PostgresMetadataStore(url)
        start = time.perf_counter()
        batch = []
        for i in range(n):
            run = rec.run.model_copy(
                update={
                    "id": f"seed_{i:06d}_{uuid.uuid4().hex[:8]}",
                    "model_name": f"model_{i % 10}",
                    "tags": ["bench", f"group_{i % 20}"],
                    "signature": f"blake3:{uuid.uuid4().hex}",
                    "created_at": rec.run.created_at + timedelta(milliseconds=i),
                    "ended_at": rec.run.created_at + timedelta(milliseconds=i + 1),
                }
            )
            batch.append(rec.model_copy(update={"run": run, "updated_ns": rec.updated_ns + i}))
            if len(batch) == 2000:
                store.sync_records(batch)
                batch = []
        if batch:
            store.sync_records(batch)
        fill = time.perf_counter() - start
        with store.connections.connection() as con:
            con.execute("VACUUM ANALYZE")
        store.close()
        t = Tracker(base / "runs", db_url=url, project_root=base)

        mid_id = t.find_runs(model=f"model_{(n // 2) % 10}", limit=None)
        mid_id = mid_id[len(mid_id) // 2].id
        print(f"runs {t.store.count_runs()} fill {fill:.1f}s")
        for name, q in {
            "get_run": lambda: t.get_run(mid_id),
            "find_runs(model, limit=100)": lambda: t.find_runs(model="model_3"),
            "find_runs(tags)": lambda: t.find_runs(tags=["group_7"]),
            "find_latest_run(model)": lambda: t.find_latest_run(model="model_3"),
            "history(10)": lambda: t.history(limit=10),
        }.items():
            print(f"{name}: {med(q)} ms")
        # a 50-run chain beside the 100,000 runs
        import consist

        prev = None

        def chain(k: int = 0):
            p = consist.current_tracker().output_path("chain", ext="txt")
            p.write_text(str(k))
            return p

        for k in range(50):
            res = t.run(chain, name="chain", config={"k": k}, inputs={"up": prev} if prev else None)
            prev = res.outputs["chain"]
        print(
            f"get_artifact_lineage (50-run chain): {med(lambda: t.get_artifact_lineage(prev))} ms"
        )
        miss = []
        for k in range(50):
            st = time.perf_counter()
            t.run(trivial_step, name="miss", config={"k": k})
            miss.append(time.perf_counter() - st)
        print(f"tracker.run miss at {n} runs: {1000 * statistics.median(miss):.2f} ms")
        t.close()
    finally:
        s.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 100000)
