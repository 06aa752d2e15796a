"""The browsing API behind ``consist artifacts/search/summary``: find_artifacts by driver and
direction, search_runs, store_summary."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consist import Tracker


def double() -> None:
    """A step whose body does not matter here."""


@pytest.fixture
def store(tracker: Tracker, base: Path) -> Tracker:
    """raw (csv, input only) -> producer (parquet ``land_use``, csv ``notes``) -> consumer; a
    failed run; a hit; a scenario with one step."""
    raw = base / "zones.csv"
    raw.write_text("zone,pop\n1,10\n")
    with tracker.start_run(
        "producer_A", "landuse", config={"k": 1}, tags=["Baseline", "v1"], description="Zonal prep"
    ):
        tracker.log_input(raw, key="zones_raw")
        out = tracker.run_artifact_dir()
        out.mkdir(parents=True, exist_ok=True)
        (out / "lu.parquet").write_bytes(b"PAR1 not really parquet")
        (out / "notes.csv").write_text("n\n1\n")
        tracker.log_output(out / "lu.parquet", key="land_use", driver="parquet")
        tracker.log_output(out / "notes.csv", key="notes")
    with tracker.start_run("consumer_B", "assign", config={"k": 2}):
        tracker.log_input(out / "lu.parquet", key="land_use_in")
    with pytest.raises(RuntimeError), tracker.start_run("crash_C", "assign", config={"k": 3}):
        raise RuntimeError("boom")
    with tracker.scenario("scen_X", config={"policy": "none"}) as sc:
        sc.run(fn=double, name="step_one", config={"s": 1})
    return tracker


class TestFindArtifactsFilters:
    def test_driver(self, store: Tracker) -> None:
        assert [a.key for a in store.find_artifacts(driver="parquet")] == ["land_use"]
        assert {a.key for a in store.find_artifacts(driver="csv")} == {"zones_raw", "notes"}
        assert store.find_artifacts(driver="zarr") == []

    def test_direction_across_the_store(self, store: Tracker) -> None:
        produced = {a.key for a in store.find_artifacts(direction="output")}
        consumed = {a.key for a in store.find_artifacts(direction="input")}
        assert produced == {"land_use", "notes"}
        # land_use is consumed by consumer_B (the artifact's own key is the producer's)
        assert consumed == {"zones_raw", "land_use"}

    def test_combined_with_run_and_key(self, store: Tracker) -> None:
        outputs = store.find_artifacts(creator="producer_A", driver="csv")
        assert [a.key for a in outputs] == ["notes"]
        consumed_outputs = store.find_artifacts(creator="producer_A", direction="input")
        assert [a.key for a in consumed_outputs] == ["land_use"]
        assert store.find_artifacts(key="notes", driver="parquet") == []

    def test_newest_first(self, store: Tracker) -> None:
        found = store.find_artifacts()
        stamps = [a.created_at for a in found]
        assert stamps == sorted(stamps, reverse=True)

    def test_bad_direction_and_limit(self, store: Tracker) -> None:
        with pytest.raises(ValueError, match="direction must be 'input' or 'output'"):
            store.find_artifacts(direction="out")
        with pytest.raises(ValueError, match="limit"):
            store.find_artifacts(limit=-1)


class TestSearchRuns:
    def ids(self, tracker: Tracker, text: str, **kw: int) -> list[str]:
        return [r.id for r in tracker.search_runs(text, **kw)]

    def test_each_field(self, store: Tracker) -> None:
        assert self.ids(store, "producer_a") == ["producer_A"]  # id, case-insensitive
        assert self.ids(store, "ASSIGN") == ["crash_C", "consumer_B"]  # model, newest first
        assert self.ids(store, "baseline") == ["producer_A"]  # tag
        assert self.ids(store, "zonal") == ["producer_A"]  # description
        # artifact keys: a run-local key (land_use_in) and the artifact's own key (land_use)
        assert self.ids(store, "land_use_in") == ["consumer_B"]
        assert self.ids(store, "land_use") == ["consumer_B", "producer_A"]
        assert self.ids(store, "scenario_header") == ["scen_X"]

    def test_substring_is_literal(self, store: Tracker) -> None:
        # SQL wildcards are ordinary characters
        assert self.ids(store, "%") == []
        assert self.ids(store, "_") != []  # ids contain underscores
        assert self.ids(store, "land%use") == []

    def test_limit_and_no_match(self, store: Tracker) -> None:
        assert len(store.search_runs("_", limit=2)) == 2
        assert store.search_runs("nothing-like-this") == []
        assert self.ids(store, "  notes ") == ["producer_A"]

    def test_bad_text(self, store: Tracker) -> None:
        with pytest.raises(ValueError, match="text"):
            store.search_runs("  ")
        with pytest.raises(TypeError):
            store.search_runs(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="limit"):
            store.search_runs("a", limit=-2)

    def test_without_database(self, base: Path) -> None:
        journal_only = Tracker(base / "other_runs", project_root=base)
        assert journal_only.search_runs("anything") == []
        summary = journal_only.store_summary()
        assert summary["db_path"] is None and summary["runs"] == 0 and summary["by_model"] == []


class TestStoreSummary:
    def test_counts(self, store: Tracker) -> None:
        before = datetime.now(UTC)
        summary = store.store_summary()
        assert summary["runs"] == 5
        assert summary["by_status"] == {"completed": 4, "failed": 1}
        models = {m["model"]: m for m in summary["by_model"]}
        assert set(models) == {"landuse", "assign", "scenario", "step_one"}
        assert models["assign"]["statuses"] == {"completed": 1, "failed": 1}
        assert models["assign"]["runs"] == 2
        assert summary["scenarios"] == 1
        assert summary["artifacts"] == 3
        assert summary["links"] == 4  # zones_raw in, land_use + notes out, land_use in
        assert summary["first_run_at"] <= summary["last_run_at"] <= before
        assert summary["first_run_at"].tzinfo is not None
        assert summary["db_path"] == str(store.db_path)

    def test_cache_hits(self, store: Tracker) -> None:
        first = store.run(fn=double, name="again", config={"x": 1})
        hit = store.run(fn=double, name="again", config={"x": 1})
        assert not first.cache_hit and hit.cache_hit
        models = {m["model"]: m for m in store.store_summary()["by_model"]}
        assert models["again"]["cache_hits"] == 1 and models["again"]["runs"] == 2
        assert store.store_summary()["cache_hits"] == 1

    def test_file_size(self, store: Tracker) -> None:
        summary = store.store_summary()
        on_disk = os.path.getsize(store.db_path)
        wal = store.db_path + ".wal"
        on_disk += os.path.getsize(wal) if os.path.isfile(wal) else 0
        assert summary["db_size_bytes"] == on_disk > 0

    def test_empty_store(self, tracker: Tracker) -> None:
        summary = tracker.store_summary()
        assert summary["runs"] == 0 and summary["first_run_at"] is None
        assert summary["by_status"] == {} and summary["artifacts"] == 0
