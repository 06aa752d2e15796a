"""Run overhead against the durable-record floor, measured in small interleaved slices.

Usage::

    python benchmarks/floor_interleaved.py --slices 60 --per-slice 20

The shared harness times a whole pass of floor records, then a pass of
misses, then a pass of hits; on a disk whose fsync latency switches between
regimes every few hundred milliseconds, the floor and the pass it is compared
with can land in different regimes, and a single harness run then reports
ratios that say more about the disk than about the tracker. This script
alternates ``--per-slice`` floor records, hits, floor records and misses,
divides each slice by the mean of the two floor slices around it, and prints
the median and quartiles of those ratios, so both sides of each ratio see the
same disk.

The floor is what a provenance record cannot go below: a 1 KB JSON file
written, fsynced and renamed into place, plus one committed single-row
DuckDB insert. Run it from inside a git repository to include the git code
identity (the default), or from a plain directory for the callable-module
fallback.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from consist import Tracker


def trivial_step() -> None:
    """The cheapest possible run body."""
    return None


class FloorRecorder:
    """Writes minimal durable records into one directory and one DuckDB file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        self.directory = directory
        self.con = duckdb.connect(str(directory / "floor.duckdb"))
        self.con.execute("CREATE TABLE rec (id VARCHAR, payload VARCHAR)")
        self.body = json.dumps({"x": "y" * 1000}).encode()
        self.count = 0

    def records(self, n: int) -> float:
        """Seconds for ``n`` records."""
        t0 = time.perf_counter()
        for _ in range(n):
            i = self.count
            self.count += 1
            tmp = self.directory / f"rec_{i}.json.tmp"
            with open(tmp, "wb") as f:
                f.write(self.body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / f"rec_{i}.json")
            self.con.execute("BEGIN")
            self.con.execute("INSERT INTO rec VALUES (?, ?)", [str(i), "p" * 200])
            self.con.execute("COMMIT")
        return time.perf_counter() - t0


def timed_runs(tracker: Tracker, configs: list[dict], expect_hit: bool) -> float:
    """Seconds for one ``tracker.run`` per config, checking each run's cache status."""
    t0 = time.perf_counter()
    for config in configs:
        result = tracker.run(fn=trivial_step, name="trivial", config=config)
        if result.cache_hit != expect_hit:
            raise RuntimeError(f"expected cache_hit={expect_hit} for {config}")
    return time.perf_counter() - t0


def quartiles(values: list[float]) -> str:
    """``median (p25-p75)`` of ``values``."""
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.3f} ({q1:.3f}-{q3:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--per-slice", type=int, default=20)
    args = ap.parse_args()
    n = args.per_slice
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        floor = FloorRecorder(base / "floor")
        tracker = Tracker(base / "runs", db_path=base / "runs" / "provenance.duckdb")
        seeded = [{"seed": i} for i in range(args.slices * n)]
        timed_runs(tracker, seeded, expect_hit=False)
        hit_ratios, miss_ratios, floor_ms = [], [], []
        for s in range(args.slices):
            before = floor.records(n)
            hits = timed_runs(tracker, seeded[s * n : (s + 1) * n], expect_hit=True)
            after = floor.records(n)
            misses = timed_runs(tracker, [{"fresh": s, "i": i} for i in range(n)], False)
            mean_floor = (before + after) / 2
            hit_ratios.append(hits / mean_floor)
            miss_ratios.append(misses / mean_floor)
            floor_ms.append(1000 * mean_floor / n)
        tracker.close()
        floor.con.close()
    print(f"floor ms/record  {quartiles(floor_ms)}")
    print(f"hit / floor      {quartiles(hit_ratios)}")
    print(f"miss / floor     {quartiles(miss_ratios)}")


if __name__ == "__main__":
    main()
