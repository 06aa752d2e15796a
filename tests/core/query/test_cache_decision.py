"""``consist.core.query.cache_decision``: the verdict and rows of a run's recorded cache
explanation, read back from real runs recorded by ``tracker.run`` in a git repository
(code identity) with a real DuckDB store under ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from _support import make_model_project, project_tracker
from consist.core.query.cache_decision import (
    CacheDecision,
    decide,
    explain_run,
    explanation_rows,
)
from consist.core.query.run_rows import run_row
from consist.core.tracker import Tracker
from consist.ui.summaries import run_summary as page_run_summary


def households_step(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled."""
    return households.assign(persons=households["size"] * scale)


def _run(tracker: Tracker, repo: Path, scale: int, **kwargs):
    return tracker.run(
        fn=households_step,
        name="households",
        config={"scale": scale},
        inputs={"households": repo / "data" / "households.csv"},
        outputs=["persons"],
        **kwargs,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_model_project(tmp_path / "model")


@pytest.fixture
def tracker(repo: Path):
    t = project_tracker(repo)
    yield t
    t.close()


def _decision(tracker: Tracker, run_id: str) -> CacheDecision:
    run = tracker.get_run(run_id)
    assert run is not None
    return explain_run(tracker, run)


def test_a_first_run_a_hit_and_a_config_miss(tracker: Tracker, repo: Path) -> None:
    first = _run(tracker, repo, 1)
    hit = _run(tracker, repo, 1)
    scaled = _run(tracker, repo, 2)
    assert hit.cache_hit and not scaled.cache_hit

    found = _decision(tracker, first.run.id)
    assert found.verdict == "first_run" and found.nearest_run_id is None
    assert found.summary == "no earlier completed run of model 'households'"
    assert found.differences == [] and found.nearest_run is None

    found = _decision(tracker, hit.run.id)
    assert found.verdict == "hit"
    assert found.cache_source_id == first.run.id
    assert found.cache_source is not None and found.cache_source.id == first.run.id
    assert found.summary == f"served from run {first.run.id}"
    assert found.explanation == {"cache_hit": True, "cache_source": first.run.id}
    assert found.differences == [] and found.nearest_run_id is None

    found = _decision(tracker, scaled.run.id)
    assert found.verdict == "miss"
    # The newest completed run of the model is the hit.
    assert found.nearest_run_id == hit.run.id
    assert found.nearest_run is not None and found.nearest_run.id == hit.run.id
    assert found.summary == "config: scale"
    assert found.differences == [
        {"section": "config", "key": "scale", "old": 1, "new": 2, "change": "changed"}
    ]
    assert found.cache_mode is None and found.cached_outputs is None
    assert found.explanation == tracker.explain_cache_miss(scaled.run.id)


def test_a_hit_whose_source_is_gone(tracker: Tracker, repo: Path) -> None:
    _run(tracker, repo, 1)
    hit = _run(tracker, repo, 1)
    run = tracker.get_run(hit.run.id)
    assert run is not None
    found = decide(run, tracker.explain_cache_miss(run.id), lambda run_id: None)
    assert found.verdict == "hit" and found.cache_source is None
    assert found.summary.endswith("(no longer in this store)")


def test_an_input_miss_names_the_input_and_its_digests(tracker: Tracker, repo: Path) -> None:
    first = _run(tracker, repo, 1)
    (repo / "data" / "households.csv").write_text("hh_id,size\n1,2\n2,5\n")
    again = _run(tracker, repo, 1)
    assert not again.cache_hit
    found = _decision(tracker, again.run.id)
    assert found.verdict == "miss" and found.nearest_run_id == first.run.id
    assert [(d["section"], d["key"], d["change"]) for d in found.differences] == [
        ("inputs", "households", "changed")
    ]
    change = found.differences[0]
    assert change["old"] != change["new"] and change["new"].startswith("blake3:")
    assert found.summary == "inputs: households"


def test_a_code_miss_names_the_edited_file(tracker: Tracker, repo: Path) -> None:
    first = _run(tracker, repo, 1)
    (repo / "model.py").write_text("def simulate():\n    return 2\n")
    again = _run(tracker, repo, 1)
    assert not again.cache_hit
    found = _decision(tracker, again.run.id)
    assert found.verdict == "miss" and found.nearest_run_id == first.run.id
    rows = {(d["section"], d["key"]): d for d in found.differences}
    assert rows[("code file", "model.py")]["change"] == "changed"
    assert not any(section in ("config", "inputs") for section, _ in rows)
    assert found.summary.startswith("code: ") and "model.py" in found.summary


def test_a_forced_run_is_an_overwrite(tracker: Tracker, repo: Path) -> None:
    first = _run(tracker, repo, 1)
    forced = _run(tracker, repo, 1, cache_mode="overwrite")
    assert not forced.cache_hit
    found = _decision(tracker, forced.run.id)
    assert found.verdict == "overwrite" and found.cache_mode == "overwrite"
    assert found.nearest_run_id == first.run.id


def test_an_uncached_run_says_why(tmp_path: Path) -> None:
    """A run started by hand outside a git repository has no code identity: no cache."""
    where = tmp_path / "plain"
    where.mkdir()
    tracker = Tracker(where / "runs", db_path=where / "p.duckdb", project_root=where)
    try:
        with tracker.start_run("manual_1", model="manual", config={"a": 1}):
            tracker.log_dataframe(pd.DataFrame({"x": [1]}), key="table")
        found = _decision(tracker, "manual_1")
        run = tracker.get_run("manual_1")
    finally:
        tracker.close()
    assert found.verdict == "uncached" and found.explanation is None
    assert found.summary is not None
    assert found.summary.startswith("caching was off for this run: no code identity")
    assert found.differences == [] and found.nearest_run_id is None
    # Without the reason recorded (a run from an older version): the general wording.
    assert run is not None
    run.meta.pop("cache_disabled")
    found = decide(run, None, lambda run_id: None)
    assert found.verdict == "uncached"
    assert found.summary == (
        "no cache explanation was recorded for this run (it was not looked up in the cache "
        "when it started, e.g. recorded without a database or by an older version)"
    )


def test_explanation_rows_fill_in_the_change_and_unnest_code() -> None:
    recorded = {
        "nearest_run_id": "r1",
        "config": {"a": {"old": 1, "new": None}, "b": {"old": None, "new": 2}},
        "other": {"year": {"old": None, "new": None}, "callable": "f"},
        "code": {
            "head": {"old": "abc", "new": "def"},
            "files": {"m.py": {"change": "changed"}, "n.py": {"old": None, "new": "x"}},
            "truncated": {"dirty_truncated": {"old": None, "new": True}},
        },
    }
    assert explanation_rows(recorded) == [
        {"section": "config", "key": "a", "old": 1, "new": None, "change": "removed"},
        {"section": "config", "key": "b", "old": None, "new": 2, "change": "added"},
        {"section": "other", "key": "year", "old": None, "new": None, "change": "changed"},
        {"section": "other", "key": "callable", "old": None, "new": "f", "change": "added"},
        {"section": "code", "key": "head", "old": "abc", "new": "def", "change": "changed"},
        {"section": "code file", "key": "m.py", "old": None, "new": None, "change": "changed"},
        {"section": "code file", "key": "n.py", "old": None, "new": "x", "change": "added"},
        {
            "section": "code",
            "key": "dirty_truncated",
            "old": None,
            "new": True,
            "change": "added",
        },
    ]


def test_run_row_and_the_page_summary(tracker: Tracker, repo: Path) -> None:
    first = _run(tracker, repo, 1)
    hit = _run(tracker, repo, 1)
    run = tracker.get_run(hit.run.id)
    assert run is not None
    row = run_row(run)
    assert row["id"] == hit.run.id and row["model"] == "households"
    assert row["status"] == "completed" and row["cache_hit"] is True
    assert row["cache_source"] == first.run.id
    assert row["duration_s"] is not None and row["duration_s"] >= 0
    assert "description" not in row and "ended_at" not in row
    page = page_run_summary(run)
    assert page == {**row, "description": run.description, "ended_at": run.ended_at}
