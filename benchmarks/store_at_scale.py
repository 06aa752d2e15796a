"""Queries, lineage and opening a store that holds 100,000 runs.

Usage::

    python benchmarks/store_at_scale.py --store /tmp/scale --runs 100000
    python benchmarks/store_at_scale.py --store /tmp/scale --runs 100000 --reuse

Builds (or, with ``--reuse``, reopens) one store filled the way the shared
harness's query step fills it (``tracker.run`` over 10 models and 20 tag
groups; by default each filler run also reads one of 100 shared input files
and writes an output, so the link table grows as in a lab's store; with
``--no-links`` they are the harness's trivial runs), then adds a 50-run chain (each run consumes the
previous run's output file) and prints medians of ``--reps`` calls:
``get_run``, ``find_runs(model, limit=100)``, ``find_latest_run(model)``,
``history(10)``, ``get_artifact_lineage`` of the chain's last output (the
lineage-at-scale variant of the harness's ``lineage`` step; also of outputs
1 and 10 steps deep, and ``get_run_lineage`` of the chain's last run, beside
the number of link rows in the store), ``Tracker()``
on the filled store (a fresh process each time), and bytes per run on disk
(DuckDB file + journal). JSON with ``--json``; ``--only lineage`` measures
the lineage figures alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consist import Tracker


def trivial_step() -> None:
    """The cheapest possible run body."""
    return None


def chain_step(prev: Path, i: int) -> Path:
    """One link of the chain: reads the previous file, writes the next."""
    out = Path(os.environ["CONSIST_SCALE_DIR"]) / f"chain_{i}.txt"
    out.write_text(prev.read_text() + f"{i}\n")
    return out


def filler_step(src: Path, i: int) -> Path:
    """A filler run with one input and one output, so the link table grows too."""
    out = Path(os.environ["CONSIST_SCALE_DIR"]) / "filler" / f"out_{i}.txt"
    out.write_text(f"{src.name} {i}\n")
    return out


def build(store: Path, runs: int, links: bool) -> dict[str, Any]:
    """Fill the store; per-tenth timings show whether the per-run cost stays flat.

    With ``links`` every filler run reads one of 100 shared input files and
    writes one output (two link rows and one new artifact per run), as model
    runs do; without, filler runs are the harness's trivial ones.
    """
    tracker = Tracker(run_dir=store / "runs", db_path=store / "provenance.duckdb")
    os.environ["CONSIST_SCALE_DIR"] = str(store)
    (store / "filler").mkdir()
    sources = []
    for k in range(100):
        sources.append(store / "filler" / f"src_{k}.txt")
        sources[-1].write_text(f"source {k}\n")
    started = time.perf_counter()
    tenths = []
    last = started
    for i in range(runs):
        common: dict[str, Any] = {
            "name": "seed",
            "model": f"model_{i % 10}",
            "tags": ["bench", f"group_{i % 20}"],
            "config": {"i": i},
        }
        if links:
            tracker.run(fn=filler_step, inputs={"src": sources[i % 100]}, outputs=["out"], **common)
        else:
            tracker.run(fn=trivial_step, **common)
        if (i + 1) % max(1, runs // 10) == 0:
            now = time.perf_counter()
            tenths.append(round(1000 * (now - last) / max(1, runs // 10), 3))
            last = now
    seed = store / "chain_seed.txt"
    seed.write_text("seed\n")
    prev: Any = seed
    for i in range(50):
        result = tracker.run(
            fn=chain_step, name="chain", config={"i": i}, inputs={"prev": prev}, outputs=["next"]
        )
        prev = result.outputs["next"]
    (store / "chain_last.json").write_text(json.dumps({"artifact_id": str(prev.id)}))
    tracker.close()
    return {"build_s": round(time.perf_counter() - started, 1), "ms_per_run_by_tenth": tenths}


def median_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 3)


def open_ms(store: Path, reps: int) -> dict[str, float]:
    """``Tracker(...)`` on the filled store, in a fresh process each time."""
    # As the harness's construct step: the first construction in a process
    # pays lazy imports, so an empty store is opened first (and timed too).
    code = (
        "import tempfile, time, consist\n"
        "d = tempfile.mkdtemp()\n"
        "t = time.perf_counter(); consist.Tracker(run_dir=d + '/r', db_path=d + '/p.duckdb')\n"
        "t = time.perf_counter(); consist.Tracker(run_dir=d + '/r2', db_path=d + '/p2.duckdb')\n"
        "empty = time.perf_counter() - t\n"
        "t = time.perf_counter()\n"
        f"consist.Tracker(run_dir={str(store / 'runs')!r}, "
        f"db_path={str(store / 'provenance.duckdb')!r})\n"
        "print(empty, time.perf_counter() - t)"
    )
    empty, full = [], []
    for _ in range(reps):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        first, second = out.stdout.strip().splitlines()[-1].split()
        empty.append(float(first))
        full.append(float(second))
    return {
        "tracker_open_empty_ms": round(1000 * statistics.median(empty), 3),
        "tracker_open_filled_ms": round(1000 * statistics.median(full), 3),
    }


def lineage_figures(tracker: Tracker, store: Path, reps: int) -> dict[str, Any]:
    """Lineage of the chain's outputs 50, 10 and 1 steps deep, and of its last run."""
    last = json.loads((store / "chain_last.json").read_text())["artifact_id"]
    lineage = tracker.get_artifact_lineage(last)
    depth, node, by_depth = 0, lineage, {}
    while node and node.get("producing_run"):
        by_depth[depth] = node
        depth += 1
        inputs = node["producing_run"].get("inputs") or []
        node = inputs[0] if inputs else None
    with tracker.store.connections.connection() as con:
        links = con.execute("SELECT count(*) FROM run_artifact_link").fetchone()[0]
    figures: dict[str, Any] = {"links": links, "lineage_chain_depth": depth}
    for steps in (1, 10):
        if depth - steps in by_depth:
            root = by_depth[depth - steps]["id"]
            figures[f"lineage_{steps}_deep_ms"] = median_ms(
                lambda root=root: tracker.get_artifact_lineage(root), reps
            )
    run_id = lineage["producing_run"]["id"]
    figures["run_lineage_50_chain_ms"] = median_ms(lambda: tracker.get_run_lineage(run_id), reps)
    figures["lineage_50_chain_ms"] = median_ms(lambda: tracker.get_artifact_lineage(last), reps)
    return figures


def measure(store: Path, reps: int, only: str | None = None) -> dict[str, Any]:
    tracker = Tracker(run_dir=store / "runs", db_path=store / "provenance.duckdb")
    if only == "lineage":
        figures = lineage_figures(tracker, store, reps)
        tracker.close()
        return figures
    some = tracker.find_runs(model="model_3", limit=1)[0].id
    figures = {
        "get_run_ms": median_ms(lambda: tracker.get_run(some), reps),
        "find_runs_model_limit100_ms": median_ms(
            lambda: tracker.find_runs(model="model_3", limit=100), reps
        ),
        "find_latest_run_ms": median_ms(lambda: tracker.find_latest_run(model="model_3"), reps),
        "history_10_ms": median_ms(lambda: tracker.history(10), reps),
        **lineage_figures(tracker, store, reps),
    }
    runs = len(tracker.find_runs(limit=None))
    tracker.close()
    db = (store / "provenance.duckdb").stat().st_size
    journal = sum(p.stat().st_size for p in (store / "runs").rglob("*.json"))
    figures.update(
        {
            "runs": runs,
            **open_ms(store, max(3, reps // 4)),
            "db_bytes_per_run": round(db / runs),
            "journal_bytes_per_run": round(journal / runs),
        }
    )
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--reuse", action="store_true", help="measure an existing store")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-links", action="store_true", help="trivial filler runs (as the harness)")
    ap.add_argument("--only", choices=["lineage"], help="measure only these figures")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    if not args.reuse:
        args.store.mkdir(parents=True, exist_ok=False)
        out["build"] = build(args.store, args.runs, links=not args.no_links)
    out["figures"] = measure(args.store, args.reps, args.only)
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
