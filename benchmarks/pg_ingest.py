"""Ingest of a one-million-row parquet file: PostgreSQL store (COPY) vs DuckDB store.

Usage::

    python benchmarks/pg_ingest.py [--rows N] [--reps R] [--durable] [--csv]

Writes the harness's file (``bench_tracker.py``'s ``w_make_parquet``: five
columns, int64/int64/float64/float64/float64), starts a throwaway PostgreSQL
server (``tests/pg_server.py``; ``--durable`` keeps fsync and synchronous
commit on), then ``reps`` times each: a fresh DuckDB store and a fresh
PostgreSQL database, one run logging the file, and the time of
``tracker.ingest(artifact)`` alone (binary COPY, or CSV COPY with
``--csv``). Also times reading the rows back
(``load_df`` after the file is gone, PostgreSQL only). Prints every time and
the medians; check the machine's load (``uptime``) beside them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import PostgresServer


def make_parquet(path: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(12345)
    table = pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "count": rng.integers(0, 1_000_000, rows, dtype=np.int64),
            "x": rng.random(rows),
            "y": rng.random(rows),
            "value": rng.normal(size=rows),
        }
    )
    pq.write_table(table, path)


def one_ingest(
    base: Path, source: Path, url: str | None, rows: int, csv: bool = False
) -> tuple[float, float]:
    """Seconds of ``ingest`` (and of ``load_df`` from the store; 0 on DuckDB)."""
    from consist import Tracker

    run_dir = base / "runs"
    if url is None:
        tracker = Tracker(run_dir, db_path=base / "store.duckdb", project_root=base)
    else:
        tracker = Tracker(run_dir, db_url=url, project_root=base)
    try:
        with tracker.start_run("ingest", "bench"):
            target = tracker.output_path("rows", ext="parquet")
            shutil.copyfile(source, target)
            art = tracker.log_artifact(target, key="rows")
            if url is not None and csv:
                tracker.hot_data_store.binary_copy = False
            start = time.perf_counter()
            result = tracker.ingest(art, profile_schema=False)
            ingest_s = time.perf_counter() - start
        assert result.rows == rows, result
        load_s = 0.0
        if url is not None:
            Path(art.path).unlink()
            start = time.perf_counter()
            frame = tracker.load_df(art)
            load_s = time.perf_counter() - start
            assert len(frame) == rows
        return ingest_s, load_s
    finally:
        tracker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--durable", action="store_true")
    parser.add_argument("--csv", action="store_true", help="CSV COPY instead of binary")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="consist-bench-pg-ingest-") as tmp:
        root = Path(tmp)
        source = root / "rows.parquet"
        make_parquet(source, args.rows)
        server = PostgresServer(durable=args.durable).start()
        try:
            times: dict[str, list[float]] = {"duckdb": [], "postgresql": [], "pg_load": []}
            for rep in range(args.reps):
                duck, _ = one_ingest(root / f"duck{rep}", source, None, args.rows)
                pg, load = one_ingest(
                    root / f"pg{rep}", source, server.create_database(), args.rows, args.csv
                )
                times["duckdb"].append(duck)
                times["postgresql"].append(pg)
                times["pg_load"].append(load)
                print(f"rep {rep}: duckdb {duck:.3f} s, postgresql {pg:.3f} s, load {load:.3f} s")
        finally:
            server.stop()
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{args.rows} rows, median of {args.reps} (durable={args.durable}, "
        f"{'csv' if args.csv else 'binary'} COPY): "
        f"duckdb {medians['duckdb']:.3f} s, postgresql {medians['postgresql']:.3f} s "
        f"({medians['postgresql'] / medians['duckdb']:.1f}x), "
        f"{args.rows / medians['postgresql']:,.0f} rows/s; "
        f"load_df back from postgresql {medians['pg_load']:.3f} s"
    )


if __name__ == "__main__":
    main()
