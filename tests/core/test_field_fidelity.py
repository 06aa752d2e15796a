"""Field fidelity (issue 9, sections 5 and 6): what a new user hits on day one.

Every test uses the layout most modelers have: the run directory and the
database inside the project's git repository, with untracked data files and
logs sitting beside the committed code. Real git, real files, a real DuckDB
file; nothing is mocked.

- explicit destinations (``log_dataframe(path=)``, ``output_paths``,
  ``materialize``) are honoured wherever they point; derived ones stay in
  ``run_dir``;
- ``tracker.last_run.cached_run`` names the run a hit was served from;
- ``validate_cached_outputs``: ``lazy`` (file or ingested rows), ``eager`` /
  ``strict`` (digests), ``none`` (no check);
- ``define_step(name_template=...)``;
- cache options given to ``start_run`` / ``begin_run`` are validated options,
  never metadata;
- an ingested output serves a hit after its file is deleted;
- an output may be logged before its file exists;
- a hit whose block logs different outputs is demoted to a new result;
- ``begin_run(hash_inputs=...)`` folds into ``config_hash``, skipping dotfiles.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import Field, SQLModel

import consist
from _support import make_model_project, project_tracker, write
from consist import CacheOptions, Tracker
from consist.core.identity.hashing import hash_bytes

# --------------------------------------------------------------------------- #
# The modelers' layout
# --------------------------------------------------------------------------- #


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project repository with committed code and untracked data and logs beside it."""
    root = make_model_project(tmp_path.resolve() / "project")
    monkeypatch.chdir(root)
    return root


make_tracker = project_tracker


@pytest.fixture
def tracker(repo: Path) -> Iterator[Tracker]:
    t = project_tracker(repo)
    yield t
    t.close()


def nothing_written(tracker: Tracker, run_id: str) -> bool:
    journal = tracker.run_dir / "consist_runs" / f"{run_id}.json"
    return not journal.exists() and tracker.get_run(run_id) is None


def grow(households: Path) -> pd.DataFrame:
    df = pd.read_csv(households)
    df["size"] = df["size"] * 2
    return df


class Trip(SQLModel):
    trip_id: int = Field(primary_key=True)
    mode: str


def trips_frame() -> pd.DataFrame:
    return pd.DataFrame({"trip_id": [1, 2, 3], "mode": ["walk", "car", "bike"]})


# --------------------------------------------------------------------------- #
# (a) explicit destinations are honoured; derived ones stay in run_dir
# --------------------------------------------------------------------------- #


class TestExplicitDestinations:
    def test_log_dataframe_path_outside_run_dir(self, tracker: Tracker, repo: Path) -> None:
        beside_code = repo / "results" / "trips.parquet"  # in the repo, outside run_dir
        elsewhere = repo.parent / "shared" / "trips.csv"  # outside the repo too
        with tracker.start_run("write_results", "writer"):
            a = tracker.log_dataframe(trips_frame(), "trips", path=beside_code)
            b = tracker.log_dataframe(trips_frame(), "trips_csv", path=elsewhere)
        assert a.path == beside_code and pd.read_parquet(beside_code).shape == (3, 2)
        assert b.path == elsewhere and b.driver == "csv"
        assert pd.read_csv(elsewhere)["mode"].tolist() == ["walk", "car", "bike"]
        outputs = tracker.get_run_outputs("write_results")
        assert outputs["trips"].uri == str(beside_code)
        assert outputs["trips_csv"].uri == str(elsewhere)
        assert tracker.config.allow_external_paths is False

    def test_output_paths_outside_run_dir_are_logged_and_hydrated(
        self, tracker: Tracker, repo: Path
    ) -> None:
        calls: list[int] = []
        report = repo / "reports" / "summary.csv"

        def summarise(households: Path) -> None:
            calls.append(1)
            write(report, f"rows\n{len(pd.read_csv(households))}\n")

        inputs = {"households": repo / "data" / "households.csv"}
        first = tracker.run(summarise, inputs=inputs, output_paths={"summary": report})
        assert first.outputs["summary"].path == report
        assert first.outputs["summary"].uri == str(report)

        # A hit copies the cached output to another destination the user names,
        # outside run_dir, without allow_external_paths.
        copy = repo.parent / "delivery" / "summary.csv"
        second = tracker.run(
            summarise,
            inputs=inputs,
            output_paths={"summary": copy},
            cache_options=CacheOptions(cache_hydration="outputs-requested"),
        )
        assert second.cache_hit and calls == [1]
        assert copy.read_text() == report.read_text()
        assert second.outputs["summary"].path == copy

    def test_materialize_to_a_named_destination(self, tracker: Tracker, repo: Path) -> None:
        result = tracker.run(
            grow, inputs={"households": repo / "data" / "households.csv"}, outputs=["hh"]
        )
        art = result.outputs["hh"]
        dest = repo.parent / "exports" / "nested" / "hh.parquet"
        assert tracker.materialize(art, dest) == str(dest)
        assert dest.read_bytes() == art.path.read_bytes()

    def test_derived_destinations_stay_confined(self, tracker: Tracker, repo: Path) -> None:
        with pytest.raises(ValueError, match="artifact_dir"):
            tracker.begin_run("escape", "writer", artifact_dir=repo.parent / "outside")
        assert nothing_written(tracker, "escape")
        with tracker.start_run("derived", "writer"):
            with pytest.raises(ValueError, match="key"):
                tracker.output_path("../escape")
            with pytest.raises(ValueError, match="key"):
                tracker.log_dataframe(trips_frame(), "../escape")
            default = tracker.log_dataframe(trips_frame(), "trips")
        assert tracker.run_dir in default.path.parents


# --------------------------------------------------------------------------- #
# (b) last_run.cached_run
# --------------------------------------------------------------------------- #


class TestLastRunCachedRun:
    def test_function_run_hit(self, tracker: Tracker, repo: Path) -> None:
        inputs = {"households": repo / "data" / "households.csv"}
        first = tracker.run(grow, inputs=inputs, outputs=["hh"])
        assert tracker.last_run is not None and tracker.last_run.cached_run is None
        second = tracker.run(grow, inputs=inputs, outputs=["hh"])
        assert second.cache_hit
        last = tracker.last_run
        assert last.run.id == second.run_id
        assert last.cached_run is not None and last.cached_run.id == first.run_id
        assert last.cached_run.status == "completed"
        assert last.run.meta["cache_source"] == first.run_id

    def test_start_run_hit_and_a_fresh_tracker(self, tracker: Tracker, repo: Path) -> None:
        with tracker.start_run("base_1", "assign", config={"k": 1}):
            tracker.log_artifact(write(repo / "out" / "flows.csv", "a\n1\n"), key="flows")
        other = make_tracker(repo)
        try:
            with other.start_run("base_2", "assign", config={"k": 1}):
                assert other.is_cached
            assert other.last_run.cached_run.id == "base_1"
            with other.start_run("changed", "assign", config={"k": 2}):
                assert not other.is_cached
            assert other.last_run.run.id == "changed" and other.last_run.cached_run is None
        finally:
            other.close()
        # Runtime only: the journal keeps the source as run.meta["cache_source"].
        record = tracker.get_run_record("base_2")
        assert record.cached_run is None and record.run.meta["cache_source"] == "base_1"


# --------------------------------------------------------------------------- #
# (d) validate_cached_outputs
# --------------------------------------------------------------------------- #


class TestValidateCachedOutputs:
    def _first(self, tracker: Tracker, repo: Path, calls: list[int]) -> consist.RunResult:
        def step(households: Path) -> pd.DataFrame:
            calls.append(1)
            return grow(households)

        self.step = step
        self.inputs = {"households": repo / "data" / "households.csv"}
        return tracker.run(step, inputs=self.inputs, outputs=["hh"])

    def _again(self, tracker: Tracker, mode: str) -> consist.RunResult:
        return tracker.run(
            self.step,
            inputs=self.inputs,
            outputs=["hh"],
            cache_options=CacheOptions(validate_cached_outputs=mode),
        )

    def test_none_is_its_own_policy(self) -> None:
        assert CacheOptions(validate_cached_outputs="none").validate_cached_outputs == "none"
        assert CacheOptions(validate_cached_outputs="strict").validate_cached_outputs == "eager"
        with pytest.raises(ValueError, match="validate_cached_outputs"):
            CacheOptions(validate_cached_outputs="sometimes")

    def test_none_skips_the_existence_check(self, tracker: Tracker, repo: Path) -> None:
        calls: list[int] = []
        first = self._first(tracker, repo, calls)
        first.outputs["hh"].path.unlink()
        hit = self._again(tracker, "none")
        assert hit.cache_hit and calls == [1]
        assert hit.run.meta["cache_source"] == first.run_id
        # lazy checks existence: the file is gone and was never ingested.
        miss = self._again(tracker, "lazy")
        assert not miss.cache_hit and calls == [1, 1]
        assert "missing" in miss.run.meta["cache_miss_explanation"]["cached_outputs"]

    def test_strict_verifies_digests(self, tracker: Tracker, repo: Path) -> None:
        calls: list[int] = []
        first = self._first(tracker, repo, calls)
        trips_frame().to_parquet(first.outputs["hh"].path)  # other bytes, same path
        again = self._again(tracker, "strict")
        assert not again.cache_hit and calls == [1, 1]
        # lazy proves the digest too (issue 10): other bytes are never a hit.
        trips_frame().to_parquet(again.outputs["hh"].path)
        assert not self._again(tracker, "lazy").cache_hit
        assert calls == [1, 1, 1]


# --------------------------------------------------------------------------- #
# (e) define_step(name_template=...)
# --------------------------------------------------------------------------- #


@consist.define_step(outputs=["hh"], name_template="{name}_y{year}")
def grow_templated(households: Path) -> pd.DataFrame:
    return grow(households)


class TestDefineStepNameTemplate:
    def test_outside_a_scenario(self, tracker: Tracker, repo: Path) -> None:
        inputs = {"households": repo / "data" / "households.csv"}
        result = tracker.run(grow_templated, inputs=inputs, year=2030)
        assert result.run.model_name == "grow_templated_y2030"
        assert tracker.run(grow_templated, inputs=inputs, year=2030).cache_hit
        # An explicit name wins over the template.
        named = tracker.run(grow_templated, name="custom", inputs=inputs, year=2030)
        assert named.run.model_name == "custom"

    def test_in_a_scenario_it_beats_the_scenario_template(
        self, tracker: Tracker, repo: Path
    ) -> None:
        with tracker.scenario("base", name_template="{scenario}_{name}") as sc:
            sc.add_input(repo / "data" / "households.csv", key="households")
            stepped = sc.run(grow_templated, inputs={"households": "households"}, year=2040)
            call = sc.run(
                grow_templated,
                inputs={"households": "households"},
                year=2050,
                name_template="{scenario}-{name}-{year}",
            )
            plain = sc.run(grow, inputs={"households": "households"}, outputs=["hh"])
        assert stepped.run.model_name == "grow_templated_y2040"
        assert call.run.model_name == "base-grow_templated-2050"
        assert plain.run.model_name == "base_grow"

    def test_bad_template_is_rejected_at_decoration(self) -> None:
        with pytest.raises(ValueError, match=r"name_template.*\{model\}"):
            consist.define_step(name_template="{model}_{year}")
        with pytest.raises(TypeError, match="name_template"):
            consist.define_step(name_template="")


# --------------------------------------------------------------------------- #
# (f) cache options on start_run / begin_run
# --------------------------------------------------------------------------- #


class TestBeginRunCacheOptions:
    @pytest.mark.parametrize(
        ("param", "value"),
        [
            ("validate_cached_outputs", "not-a-policy"),
            ("cache_hydration", "everything"),
            ("cache_version", "two"),
            ("cache_epoch", True),
            ("output_missing", "explode"),
        ],
    )
    def test_invalid_option_raises_before_writing(
        self, tracker: Tracker, param: str, value: Any
    ) -> None:
        with (
            pytest.raises(ValueError, match=param),
            tracker.start_run("bad", "assign", **{param: value}),
        ):
            pass  # pragma: no cover - never entered
        assert nothing_written(tracker, "bad")
        with pytest.raises(ValueError, match=param):
            tracker.begin_run("bad", "assign", **{param: value})
        assert tracker.current_run is None and nothing_written(tracker, "bad")

    def test_valid_options_are_options_not_metadata(self, tracker: Tracker, repo: Path) -> None:
        out = write(repo / "out" / "flows.csv", "a\n1\n")
        with tracker.start_run("v1", "assign", cache_version=1):
            tracker.log_output(out, key="flows")
        with tracker.start_run("v1_again", "assign", cache_version=1):
            assert tracker.is_cached
        with tracker.start_run("v2", "assign", cache_version=2):
            assert not tracker.is_cached  # the version is part of identity
        out.unlink()
        with tracker.start_run("gone", "assign", cache_version=1, validate_cached_outputs="none"):
            assert tracker.is_cached
        run = tracker.get_run("gone")
        assert "validate_cached_outputs" not in run.meta
        assert run.meta["cache_source"] == "v1"


# --------------------------------------------------------------------------- #
# (g) an ingested output serves a hit after its file is deleted
# --------------------------------------------------------------------------- #


class TestIngestedOutputsServeHits:
    def test_start_run_with_log_dataframe_schema(self, tracker: Tracker, repo: Path) -> None:
        with tracker.start_run("trips_1", "demand", config={"sample": 0.1}):
            art = tracker.log_dataframe(trips_frame(), "trips", schema=Trip)
        art.path.unlink()
        other = make_tracker(repo)  # a fresh tracker asks the store
        try:
            with other.start_run("trips_2", "demand", config={"sample": 0.1}):
                assert other.is_cached
                cached = other.cached_output("trips")
                assert cached.id == art.id and not cached.path.exists()
                rows = other.load_df(cached)
                assert rows.sort_values("trip_id")["mode"].tolist() == ["walk", "car", "bike"]
            with other.start_run(
                "trips_3", "demand", config={"sample": 0.1}, validate_cached_outputs="strict"
            ):
                assert not other.is_cached  # strict needs the file to verify its digest
        finally:
            other.close()

    def test_function_run_ingested_after_the_run(self, tracker: Tracker, repo: Path) -> None:
        calls: list[int] = []

        def make_trips(households: Path) -> pd.DataFrame:
            calls.append(1)
            return trips_frame()

        inputs = {"households": repo / "data" / "households.csv"}
        first = tracker.run(make_trips, inputs=inputs, outputs=["trips"])
        tracker.ingest(first.outputs["trips"], run=first.run)  # offline, after the run
        first.outputs["trips"].path.unlink()

        again = tracker.run(make_trips, inputs=inputs, outputs=["trips"])
        assert again.cache_hit and calls == [1]
        assert consist.load_df(again.outputs["trips"], tracker=tracker)["trip_id"].tolist() == [
            1,
            2,
            3,
        ]

    def test_not_ingested_and_deleted_is_a_miss(self, tracker: Tracker, repo: Path) -> None:
        with tracker.start_run("plain_1", "demand"):
            art = tracker.log_dataframe(trips_frame(), "trips")
        art.path.unlink()
        with tracker.start_run("plain_2", "demand"):
            assert not tracker.is_cached


# --------------------------------------------------------------------------- #
# (h) an output may be logged before its file exists
# --------------------------------------------------------------------------- #


class TestOutputLoggedBeforeItExists:
    def test_file_written_later_in_the_block(self, tracker: Tracker, repo: Path) -> None:
        target = repo / "results" / "skims.csv"
        with tracker.start_run("skims", "network"):
            art = tracker.log_artifact(target, key="skims")
            assert art.hash is None and tracker.get_run_outputs("skims") == {}
            write(target, "o,d,t\n1,2,5.0\n")
        expected = hash_bytes(target.read_bytes())
        assert art.hash == expected  # the returned artifact is completed in place
        stored = tracker.get_run_outputs("skims")["skims"]
        assert stored.id == art.id and stored.hash == expected and stored.size_bytes > 0
        record = tracker.get_run_record("skims")
        assert [a.hash for a in record.outputs] == [expected]
        # A complete result: the next identical run hits on it.
        with tracker.start_run("skims_2", "network"):
            assert tracker.is_cached and tracker.cached_output("skims").id == art.id

    def test_in_a_function_and_in_log_artifacts(self, tracker: Tracker, repo: Path) -> None:
        def step() -> None:
            later = repo / "results" / "later.csv"
            tracker.log_artifacts({"later": later, "also": repo / "results" / "also.csv"})
            write(later, "x\n1\n")
            write(repo / "results" / "also.csv", "y\n2\n")

        result = tracker.run(step, config={"v": 1})
        assert set(result.outputs) == {"later", "also"}
        assert all(a.hash and a.hash.startswith("blake3:") for a in result.outputs.values())

    def test_missing_at_the_end_follows_output_missing(self, tracker: Tracker, repo: Path) -> None:
        never = repo / "results" / "never.csv"
        with (
            pytest.warns(UserWarning, match="never"),
            tracker.start_run("warned", "network"),
        ):
            tracker.log_output(never, key="never")
        assert tracker.get_run("warned").status == "completed"
        assert tracker.get_run_outputs("warned") == {}

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with tracker.start_run("ignored", "network", output_missing="ignore"):
                tracker.log_output(never, key="never")
        assert tracker.get_run_outputs("ignored") == {}

        with (
            pytest.raises(RuntimeError, match="output_missing='error'"),
            tracker.start_run("strict_out", "network", output_missing="error"),
        ):
            tracker.log_output(never, key="never")
        run = tracker.get_run("strict_out")
        assert run.status == "failed" and "never" in run.meta["error"]

        with (
            pytest.raises(RuntimeError, match="never"),
            tracker.trace("traced", output_missing="error"),
        ):
            tracker.log_output(never, key="never")
        assert tracker.get_run(tracker.last_run.run.id).status == "failed"

    def test_inputs_must_exist(self, tracker: Tracker, repo: Path) -> None:
        with (
            tracker.start_run("inputs", "network"),
            pytest.raises(FileNotFoundError, match="absent"),
        ):
            tracker.log_input(repo / "data" / "absent.csv", key="absent")


# --------------------------------------------------------------------------- #
# (i) a hit whose block logs different outputs is demoted
# --------------------------------------------------------------------------- #


class TestHitDemotion:
    def _produce(self, tracker: Tracker, repo: Path, run_id: str, text: str) -> Any:
        path = write(repo / "results" / run_id / "flows.csv", text)
        with tracker.start_run(run_id, "assign", config={"scale": 2}):
            return (
                tracker.cached_output("flows"),
                tracker.is_cached,
                tracker.log_output(path, key="flows"),
            )

    def test_relogging_the_cached_content_returns_the_cached_artifact(
        self, tracker: Tracker, repo: Path
    ) -> None:
        _, hit, original = self._produce(tracker, repo, "a", "x\n1\n")
        assert not hit
        cached, hit, relogged = self._produce(tracker, repo, "b", "x\n1\n")
        assert hit and relogged.id == cached.id == original.id
        run = tracker.get_run("b")
        assert run.meta["cache_hit"] is True and run.meta["cache_source"] == "a"
        assert tracker.get_run_outputs("b")["flows"].id == original.id

    def test_different_content_demotes_to_a_new_result(self, tracker: Tracker, repo: Path) -> None:
        self._produce(tracker, repo, "a", "x\n1\n")
        with pytest.warns(UserWarning, match="new result"):
            _, hit, logged = self._produce(tracker, repo, "b", "x\n999\n")
        assert hit  # it was a hit when the block started
        run = tracker.get_run("b")
        assert not run.cache_hit
        assert "cache_source" not in run.meta and "cache_hit" not in run.meta
        assert "flows" in run.meta["cache_miss_explanation"]["summary"]
        outputs = tracker.get_run_outputs("b")
        assert list(outputs) == ["flows"] and outputs["flows"].id == logged.id
        assert outputs["flows"].hash == hash_bytes(b"x\n999\n")
        assert tracker.last_run.cached_run is None
        # The demoted run is a new result: the next identical run is served from it.
        with tracker.start_run("c", "assign", config={"scale": 2}):
            assert tracker.is_cached
        assert tracker.get_run("c").meta["cache_source"] == "b"

    def test_a_hit_block_that_raises_links_no_cached_outputs(
        self, tracker: Tracker, repo: Path
    ) -> None:
        self._produce(tracker, repo, "a", "x\n1\n")
        with (
            pytest.raises(RuntimeError, match="boom"),
            tracker.start_run("b", "assign", config={"scale": 2}),
        ):
            assert tracker.is_cached
            raise RuntimeError("boom")
        assert tracker.get_run("b").status == "failed"
        assert tracker.get_run_outputs("b") == {}
        assert tracker.last_run.cached_run is None

    def test_trace_block_demotion(self, tracker: Tracker, repo: Path) -> None:
        out = repo / "results" / "trace.csv"
        with tracker.trace("traced_step", config={"k": 1}):
            tracker.log_output(write(out, "v\n1\n"), key="table")
        first = tracker.last_run.run.id
        with (
            pytest.warns(UserWarning, match="new result"),
            tracker.trace("traced_step", config={"k": 1}),
        ):
            assert tracker.is_cached
            tracker.log_output(write(out, "v\n2\n"), key="table")
            assert not tracker.is_cached
        second = tracker.last_run.run
        assert second.id != first and not second.cache_hit
        assert tracker.get_run_outputs(second.id)["table"].hash == hash_bytes(b"v\n2\n")


# --------------------------------------------------------------------------- #
# (j) begin_run(hash_inputs=...)
# --------------------------------------------------------------------------- #


class TestHashInputs:
    @pytest.fixture
    def bundle(self, repo: Path) -> Path:
        root = repo / "configs"
        write(root / "settings.yaml", "sample: 0.1\n")
        write(root / "sub" / "zones.csv", "zone\n1\n")
        write(root / ".DS_Store", "finder noise\n")
        return root

    def _begin(self, tracker: Tracker, run_id: str, bundle: Path | None) -> Any:
        kwargs = {"hash_inputs": [("asim_configs", bundle)]} if bundle else {}
        with tracker.start_run(run_id, "asim", config={"year": 2030}, **kwargs):
            cached = tracker.is_cached
            tracker.log_output(write(Path("results") / f"{run_id}.csv", "a\n1\n"), key="out")
        return tracker.get_run(run_id), cached

    def test_folds_into_config_hash_and_is_recorded(
        self, tracker: Tracker, repo: Path, bundle: Path
    ) -> None:
        plain, _ = self._begin(tracker, "plain", None)
        hashed, _ = self._begin(tracker, "hashed", bundle)
        assert hashed.config_hash != plain.config_hash
        assert hashed.input_hash == plain.input_hash
        assert set(hashed.meta["hash_inputs"]) == {"asim_configs"}
        assert hashed.meta["hash_inputs"]["asim_configs"].startswith("blake3:")
        assert tracker.get_run_inputs("hashed") == {}  # hashed, never logged

    def test_content_changes_miss_and_dotfiles_do_not(
        self, tracker: Tracker, repo: Path, bundle: Path
    ) -> None:
        first, _ = self._begin(tracker, "first", bundle)
        write(bundle / ".DS_Store", "other noise\n")
        write(bundle / ".hidden" / "cache.bin", "scratch\n")
        write(bundle / "sub" / ".zones.csv.swp", "editor\n")
        same, cached = self._begin(tracker, "dotfiles", bundle)
        assert cached and same.config_hash == first.config_hash

        write(bundle / "sub" / "zones.csv", "zone\n1\n2\n")
        changed, cached = self._begin(tracker, "edited", bundle)
        assert not cached and changed.config_hash != first.config_hash
        explanation = changed.meta["cache_miss_explanation"]
        assert "asim_configs" in explanation.get("identity_inputs", {})

        write(bundle / "new.yaml", "x: 1\n")
        added, cached = self._begin(tracker, "added", bundle)
        assert not cached and added.config_hash != changed.config_hash

    def test_run_identity_inputs_stay_on_the_input_side(self, tracker: Tracker, repo: Path) -> None:
        settings = repo / "settings.yaml"
        a = tracker.run(
            grow, inputs={"households": repo / "data" / "households.csv"}, outputs=["hh"]
        )
        b = tracker.run(
            grow,
            inputs={"households": repo / "data" / "households.csv"},
            outputs=["hh"],
            identity_inputs=[settings],
        )
        assert b.run.config_hash == a.run.config_hash
        assert b.run.input_hash != a.run.input_hash


def test_layout_is_a_repository_with_untracked_data(repo: Path) -> None:
    """The fixture really is the modelers' layout (guards the tests above)."""
    assert (repo / ".git").is_dir()
    assert os.path.exists(repo / "data" / "households.csv")
    t = make_tracker(repo)
    try:
        assert repo in t.run_dir.parents and repo in Path(t.db_path).parents
    finally:
        t.close()
