"""``consist.core.query.run_compare.compare_runs`` on real runs recorded by ``tracker.run``
(config snapshots under the run directory, a real DuckDB store under ``tmp_path``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from _support import make_model_project, project_tracker
from consist.core.query.run_compare import compare_runs


def households_step(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled."""
    return households.assign(persons=households["size"] * scale)


@pytest.fixture
def recorded(tmp_path: Path):
    """A tracker and two runs of one model: ``scale`` 1 then 2, then an edited input."""
    repo = make_model_project(tmp_path / "model")
    tracker = project_tracker(repo)
    csv = repo / "data" / "households.csv"
    ids = []
    for scale, text in ((1, None), (2, "hh_id,size\n1,2\n2,5\n")):
        if text is not None:
            csv.write_text(text)
        result = tracker.run(
            fn=households_step,
            name="households",
            config={"scale": scale, "region": "north"},
            inputs={"households": csv},
            outputs=["persons"],
        )
        ids.append(result.run.id)
    yield tracker, ids
    tracker.close()


def test_snapshots_and_inputs(recorded) -> None:
    tracker, (a, b) = recorded
    found = compare_runs(tracker, a, b)
    assert found["config_source"] == "snapshot" and found["note"] is None
    assert found["config"] == {"scale": {"a": 1, "b": 2, "status": "changed"}}
    assert list(found["inputs"]) == ["households"]
    change = found["inputs"]["households"]
    assert change["status"] == "changed" and change["a"]["hash"] != change["b"]["hash"]
    every = compare_runs(tracker, a, b, include_equal=True)
    assert every["config"]["region"] == {"a": "north", "b": "north", "status": "equal"}


def test_a_missing_snapshot_falls_back_to_facets_with_a_note(recorded) -> None:
    tracker, (a, b) = recorded
    snapshot = tracker.run_dir / "consist_runs" / f"{b}.json"
    assert snapshot.exists()
    snapshot.unlink()
    found = compare_runs(tracker, a, b)
    assert found["config_source"] == "facets"
    assert b in found["note"] and found["note"].endswith(
        "; comparing the indexed config facets instead"
    )
    assert found["inputs"]["households"]["status"] == "changed"


def test_other_errors_are_raised(recorded) -> None:
    tracker, (a, _) = recorded
    with pytest.raises(ValueError) as raised:
        compare_runs(tracker, a, "no_such_run")
    assert "no config snapshot" not in str(raised.value)
