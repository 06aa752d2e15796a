"""``explain_cache_miss`` in a model repository: code commits, edited files,
changed inputs, and when ``cached_outputs`` is (and is not) reported.

Real git repositories, files and DuckDB stores under ``tmp_path``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from _support import make_model_project, project_tracker
from consist import Tracker


def prepare(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled."""
    return households.assign(persons=households["size"] * scale)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_model_project(tmp_path / "model")


def run(tracker: Tracker, repo: Path, scale: int = 1):
    return tracker.run(
        fn=prepare,
        name="households",
        config={"scale": scale},
        inputs={"households": repo / "data" / "households.csv"},
        outputs=["persons"],
    )


def test_a_commit_names_head_and_no_unusable_outputs(repo: Path) -> None:
    tracker = project_tracker(repo)
    try:
        first = run(tracker, repo)
        (repo / "model.py").write_text("def simulate():\n    return 2\n")
        subprocess.run(["git", "commit", "-qam", "edit"], cwd=repo, check=True)
        second = run(tracker, repo)
        assert not second.cache_hit
        why = tracker.explain_cache_miss(second.run_id)
    finally:
        tracker.close()
    assert why["nearest_run_id"] == first.run_id
    assert set(why["code"]) == {"head"}
    assert why["code"]["head"]["old"] != why["code"]["head"]["new"]
    # No run had the new signature: that is not an "unusable cached outputs" story.
    assert "cached_outputs" not in why
    assert why["summary"].startswith("code: HEAD ")
    assert "config" not in why and "inputs" not in why


def test_an_edited_file_and_changed_input_are_named(repo: Path) -> None:
    tracker = project_tracker(repo)
    try:
        first = run(tracker, repo, scale=2)
        (repo / "model.py").write_text("def simulate():\n    return 3\n")
        (repo / "data" / "households.csv").write_text("hh_id,size\n1,2\n")
        second = run(tracker, repo, scale=2)
        why = tracker.explain_cache_miss(second.run_id)
    finally:
        tracker.close()
    assert why["nearest_run_id"] == first.run_id
    assert why["code"]["files"]["model.py"]["change"] == "changed"
    change = why["inputs"]["households"]
    assert change["change"] == "changed" and change["old"] != change["new"]
    assert "cached_outputs" not in why
    assert "inputs: households" in why["summary"] and "model.py" in why["summary"]


def test_unusable_cached_outputs_are_still_reported(repo: Path) -> None:
    tracker = project_tracker(repo)
    try:
        first = run(tracker, repo)
        Path(first.outputs["persons"].abs_path).unlink()
        again = run(tracker, repo)
        assert not again.cache_hit
        why = tracker.explain_cache_miss(again.run_id)
    finally:
        tracker.close()
    assert first.run_id in why["cached_outputs"]
    assert why["summary"].startswith("cached outputs unusable: ")
