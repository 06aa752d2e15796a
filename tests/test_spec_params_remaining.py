"""Documented parameters that used to be accepted and ignored now act or refuse.

Each test fails on the code before the fix: the parameter was silently
dropped (or reused nothing) there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _support import make_git_repo, write
from consist import Tracker


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    repo = make_git_repo(tmp_path / "model", {"model.py": "A = 1\n"})
    write(repo / "data" / "zones.csv", "zone\n1\n")  # untracked data beside the code
    t = Tracker(repo / "work" / "runs", db_path=repo / "work" / "db.duckdb", project_root=repo)
    yield t
    t.close()


def _no_runs(tracker: Tracker, model: str) -> bool:
    return tracker.find_runs(model=model) == []


def test_callable_code_identity_without_a_function_is_refused(tracker: Tracker) -> None:
    for mode in ("callable_module", "callable_source"):
        with pytest.raises(ValueError, match="code_identity"):
            tracker.begin_run(f"r_{mode}", "hand", code_identity=mode)
        with (
            pytest.raises(ValueError, match="code_identity"),
            tracker.trace("t", code_identity=mode),
        ):
            pass
    assert _no_runs(tracker, "hand") and _no_runs(tracker, "t")


def test_facet_schema_version_without_a_facet_is_refused(tracker: Tracker) -> None:
    with pytest.raises(ValueError, match="facet_schema_version"):
        tracker.begin_run("r1", "hand", config={"a": 1}, facet_schema_version=2)
    assert _no_runs(tracker, "hand")
    zones = tracker.project_root / "data" / "zones.csv"
    with tracker.start_run("r2", "hand", config={"a": 1}):
        with pytest.raises(ValueError, match="facet_schema_version"):
            tracker.log_artifact(zones, key="zones", direction="input", facet_schema_version=1)
        with pytest.raises(ValueError, match="facet_schema_versions_by_key"):
            tracker.log_artifacts(
                {"zones": zones}, direction="input", facet_schema_versions_by_key={"zones": 1}
            )
        assert tracker.current_run.id == "r2"
    assert tracker.get_run_inputs("r2") == {}


def test_cached_artifacts_checks_direction_outside_a_hit(tracker: Tracker) -> None:
    with pytest.raises(ValueError, match="direction"):
        tracker.cached_artifacts(direction="sideways")
    assert tracker.cached_artifacts() == {}


def test_reuse_if_unchanged_links_the_recorded_input(tracker: Tracker) -> None:
    zones = tracker.project_root / "data" / "zones.csv"
    with tracker.start_run("first", "consumer", config={"i": 1}):
        first = tracker.log_artifact(zones, key="zones", direction="input")
    with tracker.start_run("second", "consumer", config={"i": 2}):
        again = tracker.log_artifact(zones, key="zones", direction="input", reuse_if_unchanged=True)
    with tracker.start_run("third", "consumer", config={"i": 3}):
        fresh = tracker.log_artifact(zones, key="zones", direction="input")
    assert again.id == first.id  # same bytes at the same place: the recorded artifact
    assert fresh.id != first.id  # the default records a new input artifact
    # Edited bytes are never passed off as the recorded artifact.
    write(zones, "zone\n1\n2\n")
    with tracker.start_run("fourth", "consumer", config={"i": 4}):
        changed = tracker.log_artifact(
            zones, key="zones", direction="input", reuse_if_unchanged=True
        )
    assert changed.id not in (first.id, fresh.id)
    assert changed.hash != first.hash
    assert tracker.get_run_inputs("second")["zones"].id == first.id


def test_reuse_scope_any_uri_links_identical_bytes_elsewhere(tracker: Tracker) -> None:
    root = tracker.project_root
    original = write(root / "data" / "a" / "skims.csv", "o,d,t\n1,2,3\n")
    copy = write(root / "data" / "b" / "skims_copy.csv", "o,d,t\n1,2,3\n")
    with tracker.start_run("a", "consumer", config={"i": 1}):
        first = tracker.log_artifact(original, key="skims", direction="input")
    with tracker.start_run("b", "consumer", config={"i": 2}):
        same_uri_only = tracker.log_input(copy, key="skims", reuse_if_unchanged=True)
    with tracker.start_run("c", "consumer", config={"i": 3}):
        any_uri = tracker.log_artifacts(
            {"skims": copy}, direction="input", reuse_if_unchanged=True, reuse_scope="any_uri"
        )["skims"]
    assert same_uri_only.id != first.id
    assert any_uri.id in (first.id, same_uri_only.id)
    assert any_uri.hash == first.hash
    with pytest.raises(ValueError, match="reuse_scope"), tracker.start_run("d", "consumer"):
        tracker.log_artifacts({"skims": copy}, direction="input", reuse_scope="everywhere")
