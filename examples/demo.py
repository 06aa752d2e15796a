"""Consist demo: record a small workflow step with its artifacts and read it back.

Run it twice: every invocation records a new run in ``demo_workspace/`` and
the second one also shows the earlier runs it finds in the same store.
"""

from __future__ import annotations

import csv
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from consist import Tracker

WORKSPACE = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_workspace").resolve()


def write_households(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["household_id", "persons", "income"])
        for i in range(n):
            writer.writerow([i, rng.randint(1, 6), rng.randint(15_000, 250_000)])


def summarise(src: Path, dst: Path) -> dict[str, float]:
    with src.open() as fh:
        rows = list(csv.DictReader(fh))
    persons = sum(int(r["persons"]) for r in rows)
    income = sum(int(r["income"]) for r in rows) / len(rows)
    dst.write_text(f"households,{len(rows)}\npersons,{persons}\nmean_income,{income:.0f}\n")
    return {"households": len(rows), "persons": persons, "mean_income": round(income)}


def main() -> None:
    tracker = Tracker(
        run_dir=WORKSPACE / "runs",
        db_path=WORKSPACE / "provenance.duckdb",
        mounts={"inputs": WORKSPACE / "inputs"},
    )
    inputs_dir = WORKSPACE / "inputs"
    inputs_dir.mkdir(parents=True, exist_ok=True)
    households = inputs_dir / "households.csv"
    if not households.exists():
        write_households(households, n=1_000, seed=42)

    run_id = "summarise-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    with tracker.start_run(
        run_id, "household_summary", config={"statistic": "mean_income"}, year=2030
    ):
        tracker.log_input(households, key="households")
        out_dir = tracker.run_artifact_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = summarise(households, out_dir / "summary.csv")
        tracker.log_output(out_dir / "summary.csv", key="summary")
        tracker.log_meta(**summary)

    run = tracker.get_run(run_id)
    print(f"Recorded run {run.id} ({run.model_name}, year {run.year}): {run.status}")
    print(f"  results: {summary}")
    artifacts = tracker.get_artifacts_for_run(run_id)
    for direction, bucket in (("input", artifacts.inputs), ("output", artifacts.outputs)):
        for key, art in bucket.items():
            print(f"  {direction:6} {key:10} {art.uri:40} {art.hash[:20]}...")
    earlier = [r for r in tracker.store.find_runs(model="household_summary", limit=10)]
    print(f"The store now holds {len(earlier)} household_summary run(s):")
    for r in earlier:
        print(f"  {r.id}  {r.status}  mean_income={r.meta.get('mean_income')}")
    print(f"Journal snapshot: {tracker.journal.path_for(run_id)}")


if __name__ == "__main__":
    main()
