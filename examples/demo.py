"""Consist demo: a three-step workflow with caching, provenance and lineage.

    generate households  ->  summarise by size  ->  report

Run it twice. The first invocation executes every step; the second finds
identical runs (same code, config and input bytes) and hands their outputs
back without executing anything. Change ``SAMPLE_SIZE`` below (or edit a
step) and only the affected steps run again, with an explanation of why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

import consist
from consist import Tracker

WORKSPACE = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_workspace").resolve()
SAMPLE_SIZE = 5_000


def generate_households(config: dict) -> pd.DataFrame:
    """Step 1: a synthetic household table (stands in for a 4-hour model)."""
    n = config["n"]
    rng = pd.Series(range(n)).sample(frac=1.0, random_state=config["seed"]).to_numpy()
    return pd.DataFrame(
        {
            "household_id": range(n),
            "persons": (rng % 5) + 1,
            "income": 20_000 + (rng * 7_919) % 180_000,
        }
    )


def summarise(households: pd.DataFrame) -> pd.DataFrame:
    """Step 2: households, persons and mean income by household size."""
    return (
        households.groupby("persons")
        .agg(households=("household_id", "count"), mean_income=("income", "mean"))
        .reset_index()
    )


def grow(households: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Scenario step: incomes grow by config["growth"] per decade."""
    return households.assign(income=(households["income"] * (1 + config["growth"])).round())


def report(summary: pd.DataFrame, config: dict) -> Path:
    """Step 3: a small text report, written to a managed output path."""
    title = config["title"]
    path = consist.output_path("report", ext="txt")
    lines = [title, "=" * len(title)]
    for row in summary.itertuples():
        lines.append(
            f"{row.persons} person(s): {row.households:5d} households, "
            f"mean income {row.mean_income:9.0f}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    tracker = Tracker(run_dir=WORKSPACE / "runs", db_path=WORKSPACE / "provenance.duckdb")

    step1 = tracker.run(
        fn=generate_households,
        config={"n": SAMPLE_SIZE, "seed": 7},
        outputs=["households"],
        year=2030,
        tags=["demo"],
    )
    step2 = tracker.run(
        fn=summarise,
        inputs={"households": step1.outputs["households"]},
        outputs=["summary"],
        year=2030,
        tags=["demo"],
    )
    step3 = tracker.run(
        fn=report,
        inputs={"summary": step2.outputs["summary"]},
        config={"title": "Households by size, 2030"},
        outputs=["report"],
        tags=["demo"],
    )

    print("Steps:")
    for label, result in (("generate", step1), ("summarise", step2), ("report", step3)):
        status = "cache hit (not executed)" if result.cache_hit else "executed"
        print(f"  {label:10} {status:26} run {result.run_id}")
        if not result.cache_hit:
            why = result.run.meta.get("cache_miss_explanation", {}).get("summary")
            print(f"  {'':10} why it ran: {why}")
    print()
    print(step3.outputs["report"].path.read_text())

    growth = 0.10
    print(f"Scenario 'high_growth' (incomes +{growth:.0%} per decade):")
    with tracker.scenario("high_growth", config={"growth": growth}, tags=["demo"]) as sc:
        sc.add_input(step1.outputs["households"], key="households")
        for year in (2040, 2050):
            grown = sc.run(
                grow,
                inputs={"households": "households"},  # coupler: last decade's output
                config={"growth": growth},
                outputs=["households"],
                year=year,
            )
            summary = sc.run(
                summarise, inputs={"households": "households"}, outputs=["summary"], year=year
            )
            states = ["cache hit" if r.cache_hit else "executed" for r in (grown, summary)]
            print(f"  {year}: grow {states[0]}, summarise {states[1]}")
    header = tracker.get_run("high_growth")
    children = tracker.find_runs(parent_id="high_growth", limit=1000)
    print(
        f"  header run {header.id!r}: {header.status}, execution "
        f"#{header.meta['scenario_executions']}, {len(children)} step runs recorded"
    )
    print()

    final = step3.outputs["report"]
    print(f"Lineage of {final.key} ({final.uri}):")
    tracker.print_lineage(final.id, show_run_ids=True)
    tracker.close()
    print()
    print("Next, from a terminal:")
    for args in ("runs", f"lineage {final.key}"):
        print(f"  {_consist_command()} {args} --db-path {_shown(WORKSPACE / 'provenance.duckdb')}")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _consist_command() -> str:
    """How to call the ``consist`` command installed next to this Python."""
    script = Path(sys.executable).parent / "consist"
    return _shown(script) if script.exists() else "consist"


if __name__ == "__main__":
    main()
