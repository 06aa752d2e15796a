"""BEAM configuration through the tracker: hits, misses naming the file, override runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_beam import build

from consist import Tracker
from consist.integrations.beam import BeamConfigAdapter


def simulate(iterations: int = 2) -> None:
    """Stands for launching BEAM on the configuration."""


KEY = "beam.agentsim.agentSampleSizeAsFractionOfPopulation"


def _value(tracker: Tracker, run_id: str, key: str) -> str:
    rows = tracker.run_query(
        "SELECT value FROM global_tables.beam_config "
        f"WHERE consist_run_id = '{run_id}' AND key = '{key}'"
    )
    assert len(rows) == 1, rows
    return rows[0][0]


def test_beam_runs_hit_miss_and_override_from_a_base_run(tmp_path: Path) -> None:
    scenario, common = build(tmp_path / "configs")
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "p.duckdb", project_root=tmp_path)
    # An absolute primary config: override runs still find it inside their tree.
    beam = BeamConfigAdapter(root_dirs=[scenario, common], primary_config=scenario / "beam.conf")
    first = tracker.run(fn=simulate, name="beam", adapter=beam)
    assert _value(tracker, first.run.id, KEY) == "0.5"
    assert tracker.get_config_value(first.run.id, KEY) == 0.5
    assert tracker.get_config_value(first.run.id, "beam.agentsim.lastIteration") == 2

    text = (common / "common.conf").read_text()
    (common / "common.conf").write_text("// tidied\n" + text.replace(" = ", "   =   "))
    assert tracker.run(fn=simulate, name="beam", adapter=beam).cache_hit

    (common / "common.conf").write_text(text.replace("lastIteration = 2", "lastIteration = 5"))
    changed = tracker.run(fn=simulate, name="beam", adapter=beam)
    assert not changed.cache_hit
    named = set(changed.run.meta["cache_miss_explanation"]["identity_inputs"])
    assert named == {"beam:common.conf", "beam:<resolved>"}

    out = tmp_path / "override"
    result = tracker.run_with_config_overrides(
        adapter=beam,
        base_run_id=changed.run.id,
        overrides={KEY: 0.05},
        output_dir=out,
        fn=simulate,
        name="beam",
        identity_label="beam_config",
    )
    assert _value(tracker, result.run.id, KEY) == "0.05"
    assert _value(tracker, result.run.id, "beam.agentsim.lastIteration") == "5"
    assert result.run.meta["resolved_config_identity"]["label"] == "beam_config"
    with pytest.raises(KeyError):
        tracker.run_with_config_overrides(
            adapter=beam,
            base_run_id=changed.run.id,
            overrides={"beam.agentsim.noSuchKey": 1},
            output_dir=tmp_path / "bad",
            fn=simulate,
            name="beam",
        )
    assert not (tmp_path / "bad").exists()
    tracker.close()
