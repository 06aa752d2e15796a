"""A real store for the export tests, recorded once per module through the public API.

* a three-step chain: ``clean`` reads ``raw.csv`` and writes ``clean``;
  ``features`` reads ``clean`` and writes ``feat``; ``predict`` reads
  ``feat`` and writes ``pred`` (real parquet files);
* ``clean`` again with the same config and input: a cache hit of the first;
* ``broken``: reads ``raw.csv`` and raises (a failed run);
* scenario ``baseline``: its header, then steps ``prepare`` (reads
  ``raw.csv``, writes ``persons``) and ``demand`` (reads ``persons``, writes
  ``trips``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from consist import Tracker


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """Drop rows without a size."""
    return raw.dropna().assign(size=lambda d: d["size"].astype(int))


def features(clean: pd.DataFrame) -> pd.DataFrame:
    """Persons per household."""
    return clean.assign(persons=clean["size"] * 2)


def predict(feat: pd.DataFrame) -> pd.DataFrame:
    """Trips per household."""
    return feat.assign(trips=feat["persons"] * 3)


def broken(raw: pd.DataFrame) -> None:
    """A step that fails."""
    raise RuntimeError("solver diverged")


def prepare(raw: pd.DataFrame) -> pd.DataFrame:
    """Scenario step 1."""
    return raw.assign(persons=raw["size"])


def demand(persons: pd.DataFrame) -> pd.DataFrame:
    """Scenario step 2."""
    return persons.assign(trips=persons["persons"] * 4)


@dataclass
class Recorded:
    """The tracker and what it recorded."""

    tracker: Tracker
    base: Path
    raw: Path
    runs: dict[str, str] = field(default_factory=dict)  # label -> run id

    @property
    def chain(self) -> list[str]:
        """The ids of the three-step chain, in order."""
        return [self.runs["clean"], self.runs["features"], self.runs["predict"]]

    def outputs(self, label: str) -> dict[str, object]:
        """Output artifacts of a recorded run, by key."""
        return self.tracker.get_run_outputs(self.runs[label])

    def inputs(self, label: str) -> dict[str, object]:
        """Input artifacts of a recorded run, by key."""
        return self.tracker.get_run_inputs(self.runs[label])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    base = tmp_path_factory.mktemp("exports").resolve()
    raw = base / "data" / "raw.csv"
    raw.parent.mkdir()
    pd.DataFrame({"household": [1, 2, 3], "size": [2, 4, 1]}).to_csv(raw, index=False)
    tracker = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    rec = Recorded(tracker=tracker, base=base, raw=raw)
    r1 = tracker.run(
        fn=clean, name="clean", config={"threshold": 1}, inputs={"raw": raw}, outputs=["clean"]
    )
    r2 = tracker.run(
        fn=features, name="features", inputs={"clean": r1.outputs["clean"]}, outputs=["feat"]
    )
    r3 = tracker.run(
        fn=predict, name="predict", inputs={"feat": r2.outputs["feat"]}, outputs=["pred"]
    )
    hit = tracker.run(
        fn=clean, name="clean", config={"threshold": 1}, inputs={"raw": raw}, outputs=["clean"]
    )
    assert hit.cache_hit and not r1.cache_hit
    with pytest.raises(RuntimeError, match="solver diverged"):
        tracker.run(fn=broken, name="broken", inputs={"raw": raw})
    failed = tracker.find_latest_run(model="broken")
    assert failed.status == "failed"
    with tracker.scenario("baseline", config={"policy": "none"}) as sc:
        prep = sc.run(fn=prepare, name="prepare", inputs={"raw": raw}, outputs=["persons"])
        dem = sc.run(
            fn=demand, name="demand", inputs={"persons": prep.outputs["persons"]}, outputs=["trips"]
        )
    rec.runs.update(
        clean=r1.run.id,
        features=r2.run.id,
        predict=r3.run.id,
        hit=hit.run.id,
        failed=failed.id,
        scenario="baseline",
        prepare=prep.run.id,
        demand=dem.run.id,
    )
    yield rec
    tracker.close()
