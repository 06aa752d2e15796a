"""Per-run overhead of ``tracker.run`` on an empty store and on a filled one.

Usage::

    python benchmarks/run_overhead_growth.py --fill 20000 --runs 200

Fills one store with ``--fill`` trivial runs (10 models, as the shared
harness's query step does), then times ``--runs`` cache misses followed by
the same runs again as cache hits, on a fresh empty store and on the filled
one, and prints medians of ``--reps`` repetitions. Run it from inside a git
repository to include the git code identity (the default), or from a plain
directory for the callable-module fallback.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from consist import Tracker


def trivial_step() -> None:
    """The cheapest possible run body."""
    return None


def passes(tracker: Tracker, runs: int, tag: str) -> tuple[float, float]:
    """(ms per miss, ms per hit) for ``runs`` distinct configs."""
    t0 = time.perf_counter()
    for i in range(runs):
        r = tracker.run(fn=trivial_step, name="trivial", config={"tag": tag, "i": i})
        assert not r.cache_hit
    t1 = time.perf_counter()
    for i in range(runs):
        r = tracker.run(fn=trivial_step, name="trivial", config={"tag": tag, "i": i})
        assert r.cache_hit
    t2 = time.perf_counter()
    return 1000 * (t1 - t0) / runs, 1000 * (t2 - t1) / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fill", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        empty = {"miss": [], "hit": []}
        for rep in range(args.reps):
            t = Tracker(base / f"e{rep}" / "runs", db_path=base / f"e{rep}" / "db.duckdb")
            miss, hit = passes(t, args.runs, f"empty{rep}")
            empty["miss"].append(miss)
            empty["hit"].append(hit)
            t.close()
        big = Tracker(base / "big" / "runs", db_path=base / "big" / "db.duckdb")
        t0 = time.perf_counter()
        for i in range(args.fill):
            big.run(fn=trivial_step, name="seed", model=f"model_{i % 10}", config={"i": i})
        fill_s = time.perf_counter() - t0
        big.close()
        filled = {"miss": [], "hit": []}
        for rep in range(args.reps):
            miss, hit = passes(big, args.runs, f"filled{rep}")
            filled["miss"].append(miss)
            filled["hit"].append(hit)
        print(f"filled {args.fill} runs in {fill_s:.1f} s ({1000 * fill_s / args.fill:.2f} ms/run)")
        for label, data in (("empty store", empty), (f"{args.fill} runs", filled)):
            print(
                f"{label:>14}: miss {statistics.median(data['miss']):.2f} ms/run, "
                f"hit {statistics.median(data['hit']):.2f} ms/run (medians of {args.reps})"
            )
        for kind in ("miss", "hit"):
            ratio = statistics.median(filled[kind]) / statistics.median(empty[kind])
            print(f"growth {kind}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
