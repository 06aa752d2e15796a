"""A real store for the web page's tests, recorded through the public Tracker API.

(A module of its own, not ``conftest``: test modules import it by a name no
other test folder uses.)

``build_store(root)`` makes a model repository (committed code, a CSV input)
whose run directory and DuckDB store live inside it, and records:

* ``households`` (``prepare``): reads ``data/households.csv`` and writes a
  ``persons`` parquet; executed with ``scale=1`` (tag ``base``), then a cache
  hit of it, then executed with ``scale=2`` (tag ``scaled``: a miss whose
  explanation names the config key ``scale``);
* ``broken``: a step that raises (a failed run);
* scenario ``baseline`` (year 2030 and 2040 steps ``demand``), each step
  consuming the previous table: lineage csv -> persons -> trips -> trips;
* ``tally``: writes a table whose file is then deleted (an output that
  is no longer reachable on disk);
* ``note``: writes a text file (an artifact that is not a table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

import consist
from _support import make_model_project
from consist import Tracker


def prepare(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled."""
    return households.assign(persons=households["size"] * scale)


def demand(persons: pd.DataFrame, year: int) -> pd.DataFrame:
    """Trips per household for a year."""
    return persons.assign(trips=persons["persons"] * (year - 2000) // 10)


def broken(scale: int = 1) -> None:
    """A step that fails."""
    raise RuntimeError("solver diverged")


def note(persons: pd.DataFrame) -> Path:
    """A text report (not a table)."""
    path = consist.output_path("note", ext="txt")
    path.write_text(f"{len(persons)} households\n")
    return path


def tally(persons: pd.DataFrame) -> pd.DataFrame:
    """Households per size."""
    return persons.groupby("size", as_index=False).agg(households=("hh_id", "count"))


@dataclass
class UiStore:
    """What ``build_store`` recorded: paths and run/artifact ids by label."""

    root: Path
    db_path: Path
    run_dir: Path
    runs: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def tracker(self) -> Tracker:
        """A read-only tracker over the store (as ``consist ui`` opens it)."""
        return Tracker(
            self.run_dir,
            db_path=self.db_path,
            project_root=self.root,
            read_only=True,
            idle_release_s=0,
        )

    def cli_args(self) -> list[str]:
        """Store options pointing a ``consist`` command at this store."""
        return ["--db-path", str(self.db_path), "--run-dir", str(self.run_dir)]


def build_store(root: Path) -> UiStore:
    """Record the history described in the module docstring under ``root``."""
    repo = make_model_project(root)
    store = UiStore(root=repo, db_path=repo / "provenance.duckdb", run_dir=repo / "runs")
    tracker = Tracker(store.run_dir, db_path=store.db_path, project_root=repo)
    households = repo / "data" / "households.csv"
    common = dict(fn=prepare, name="households", inputs={"households": households})
    first = tracker.run(**common, config={"scale": 1}, outputs=["persons"], tags=["base"])
    hit = tracker.run(**common, config={"scale": 1}, outputs=["persons"], tags=["base"])
    assert hit.cache_hit
    scaled = tracker.run(**common, config={"scale": 2}, outputs=["persons"], tags=["scaled"])
    assert not scaled.cache_hit
    with pytest.raises(Exception, match="solver diverged"):
        tracker.run(fn=broken, name="broken", config={"scale": 3})
    failed = tracker.find_latest_run(model="broken")
    persons = first.outputs["persons"]
    with tracker.scenario("baseline", config={"policy": "none"}) as sc:
        d2030 = sc.run(
            fn=demand,
            name="demand",
            year=2030,
            config={"year": 2030},
            inputs={"persons": persons},
            outputs=["trips"],
        )
        d2040 = sc.run(
            fn=demand,
            name="demand",
            year=2040,
            config={"year": 2040},
            inputs={"persons": d2030.outputs["trips"]},
            outputs=["trips"],
        )
    counted = tracker.run(fn=tally, name="tally", inputs={"persons": persons}, outputs=["sizes"])
    sizes = counted.outputs["sizes"]
    noted = tracker.run(fn=note, name="note", inputs={"persons": persons}, outputs=["note"])
    tracker_inputs = tracker.get_run_inputs(first.run.id)
    tracker.close()
    Path(sizes.abs_path).unlink()
    store.runs.update(
        first=first.run.id,
        hit=hit.run.id,
        scaled=scaled.run.id,
        failed=failed.id,
        scenario="baseline",
        d2030=d2030.run.id,
        d2040=d2040.run.id,
        tally=counted.run.id,
        note=noted.run.id,
    )
    store.artifacts.update(
        csv=str(tracker_inputs["households"].id),
        persons=str(persons.id),
        trips2030=str(d2030.outputs["trips"].id),
        trips2040=str(d2040.outputs["trips"].id),
        sizes=str(sizes.id),
        note=str(noted.outputs["note"].id),
    )
    return store
