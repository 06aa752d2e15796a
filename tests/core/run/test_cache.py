"""Caching through ``Tracker.run``: hits, misses, modes, hydration, explanations.

Invariant 1 of DESIGN.md (no wrong cache hit) is proved here from the outside:
every identity component (config, input bytes, function source, extra code
dependencies, cache epoch/version, year, iteration) turns a hit into a miss,
while labels (stage, phase, facet, tags, description, runtime kwargs) do not.
Real files, a real DuckDB file and real subprocesses under ``tmp_path``; the
step functions count their executions in lists or files.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from _support import persisted
from consist import CacheOptions, ExecutionOptions, RunResult, Tracker

# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(autouse=True)
def _isolated_cwd(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from tmp_path (never a git repository): code identity falls back to the callable."""
    monkeypatch.chdir(base)


def make_tracker(base: Path, **kwargs: Any) -> Tracker:
    return Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base, **kwargs)


@pytest.fixture
def tracker(base: Path) -> Iterator[Tracker]:
    t = make_tracker(base)
    yield t
    t.close()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Steps:
    """A table-producing step that counts its executions."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def table(self, data: Path, config: dict[str, Any], threads: int = 1) -> pd.DataFrame:
        self.calls.append({"data": data, "config": config, "threads": threads})
        df = pd.read_csv(data)
        return df * int(config.get("k", 1))


@pytest.fixture
def steps() -> Steps:
    return Steps()


@pytest.fixture
def data_csv(base: Path) -> Path:
    return write(base / "data" / "input.csv", "a,b\n1,2\n3,4\n")


def run_table(tracker: Tracker, steps: Steps, data: Path, **kwargs: Any) -> RunResult:
    kwargs.setdefault("config", {"k": 2})
    return tracker.run(steps.table, inputs={"data": data}, outputs=["out"], **kwargs)


def load_module(path: Path, name: str) -> ModuleType:
    """Import (or re-import) the module file ``path`` as ``name``."""
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def module_name() -> Iterator[str]:
    name = f"consist_test_steps_{uuid.uuid4().hex}"
    yield name
    sys.modules.pop(name, None)


def counter_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# --------------------------------------------------------------------------- #
# A hit: same fn + config + inputs
# --------------------------------------------------------------------------- #
class TestCacheHit:
    def test_second_identical_call_is_a_hit_without_calling_fn(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        assert first.cache_hit is False
        assert len(steps.calls) == 1

        second = run_table(tracker, steps, data_csv)
        assert second.cache_hit is True
        assert len(steps.calls) == 1, "the function must not run on a hit"
        assert second.run_id != first.run_id

        # Outputs handed back: same artifact ids, readable at .path.
        assert set(second.outputs) == {"out"}
        assert second.outputs["out"].id == first.outputs["out"].id
        path = second.outputs["out"].path
        assert path is not None and path.exists()
        expected = pd.read_csv(data_csv) * 2
        pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
        pd.testing.assert_frame_equal(tracker.load_df(second.outputs["out"]), expected)

    def test_hit_is_recorded_as_a_new_run_linked_to_the_same_artifacts(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        second = run_table(tracker, steps, data_csv)
        assert second.cache_hit

        assert second.run.meta["cache_hit"] is True
        assert second.run.meta["cache_source"] == first.run_id
        stored = tracker.get_run(second.run_id)
        assert stored is not None
        assert stored.status == "completed"
        assert stored.meta["cache_hit"] is True
        assert stored.meta["cache_source"] == first.run_id
        assert (tracker.run_dir / "consist_runs" / f"{second.run_id}.json").exists()

        linked = tracker.get_run_outputs(second.run_id)
        assert {k: a.id for k, a in linked.items()} == {
            k: a.id for k, a in tracker.get_run_outputs(first.run_id).items()
        }
        assert set(linked) == {"out"}
        # The hit run also records its inputs.
        assert set(tracker.get_run_inputs(second.run_id)) == {"data"}

    def test_third_call_still_points_at_the_original_producer(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        run_table(tracker, steps, data_csv)
        third = run_table(tracker, steps, data_csv)
        assert third.cache_hit
        assert third.run.meta["cache_source"] == first.run_id
        assert len(steps.calls) == 1

    def test_hit_from_a_fresh_tracker_on_the_same_store(
        self, base: Path, steps: Steps, data_csv: Path
    ) -> None:
        t1 = make_tracker(base)
        first = run_table(t1, steps, data_csv)
        t1.close()
        t2 = make_tracker(base)
        try:
            second = run_table(t2, steps, data_csv)
            assert second.cache_hit
            assert second.outputs["out"].id == first.outputs["out"].id
            assert second.outputs["out"].path.exists()
            assert len(steps.calls) == 1
        finally:
            t2.close()


# --------------------------------------------------------------------------- #
# Identity: what misses and what does not
# --------------------------------------------------------------------------- #
MISS_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "config_value": ({"config": {"k": 2}}, {"config": {"k": 3}}),
    "config_added_key": ({"config": {"k": 2}}, {"config": {"k": 2, "extra": None}}),
    "cache_epoch": (
        {"cache_options": CacheOptions(cache_epoch=1)},
        {"cache_options": CacheOptions(cache_epoch=2)},
    ),
    "cache_version": (
        {"cache_options": CacheOptions(cache_version=1)},
        {"cache_options": CacheOptions(cache_version=2)},
    ),
    "cache_epoch_set": ({}, {"cache_options": CacheOptions(cache_epoch=1)}),
    "year": ({"year": 2020}, {"year": 2030}),
    "iteration": ({"iteration": 1}, {"iteration": 2}),
    "iteration_set": ({}, {"iteration": 0}),
}


@pytest.mark.parametrize("case", sorted(MISS_CASES))
def test_identity_component_change_misses(
    tracker: Tracker, steps: Steps, data_csv: Path, case: str
) -> None:
    before, after = MISS_CASES[case]
    first = run_table(tracker, steps, data_csv, **before)
    again = run_table(tracker, steps, data_csv, **before)
    assert not first.cache_hit
    assert again.cache_hit, "the unchanged call must hit (sanity)"
    assert len(steps.calls) == 1

    changed = run_table(tracker, steps, data_csv, **after)
    assert changed.cache_hit is False
    assert len(steps.calls) == 2
    assert changed.outputs["out"].id != first.outputs["out"].id
    assert changed.run.signature != first.run.signature


NO_MISS_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "stage": ({"stage": "demand"}, {"stage": "supply"}),
    "phase": ({"phase": "calibration"}, {"phase": "production"}),
    "facet": ({"facet": {"scenario": "a"}}, {"facet": {"scenario": "b"}}),
    "tags": ({"tags": ["baseline"]}, {"tags": ["other", "labels"]}),
    "description": ({"description": "first"}, {"description": "second"}),
    "runtime_kwargs": ({"runtime_kwargs": {"threads": 1}}, {"runtime_kwargs": {"threads": 8}}),
    "execution_options_runtime_kwargs": (
        {"execution_options": ExecutionOptions(runtime_kwargs={"threads": 1})},
        {"execution_options": ExecutionOptions(runtime_kwargs={"threads": 8})},
    ),
    "runtime_kwargs_vs_execution_options": (
        {},
        {"execution_options": ExecutionOptions(runtime_kwargs={"threads": 4})},
    ),
}


@pytest.mark.parametrize("case", sorted(NO_MISS_CASES))
def test_labels_and_runtime_kwargs_do_not_change_identity(
    tracker: Tracker, steps: Steps, data_csv: Path, case: str
) -> None:
    before, after = NO_MISS_CASES[case]
    first = run_table(tracker, steps, data_csv, **before)
    assert not first.cache_hit
    second = run_table(tracker, steps, data_csv, **after)
    assert second.cache_hit, f"changing {case} must not change identity"
    assert len(steps.calls) == 1
    assert second.run.signature == first.run.signature
    assert second.outputs["out"].id == first.outputs["out"].id


def test_labels_are_recorded_on_the_hit_run(tracker: Tracker, steps: Steps, data_csv: Path) -> None:
    run_table(tracker, steps, data_csv, stage="s1", tags=["a"])
    hit = run_table(tracker, steps, data_csv, stage="s2", phase="p2", tags=["b"])
    assert hit.cache_hit
    stored = tracker.get_run(hit.run_id)
    assert stored.stage == "s2"
    assert stored.phase == "p2"
    assert stored.tags == ["b"]


def test_runtime_kwargs_reach_the_function(tracker: Tracker, steps: Steps, data_csv: Path) -> None:
    run_table(tracker, steps, data_csv, runtime_kwargs={"threads": 3})
    run_table(
        tracker,
        steps,
        data_csv,
        config={"k": 5},
        execution_options=ExecutionOptions(runtime_kwargs={"threads": 7}),
    )
    assert [c["threads"] for c in steps.calls] == [3, 7]


class TestInputContent:
    """An input edited in place at the same path is a miss (invariant 1)."""

    def _edit_in_place(self, path: Path, new: bytes) -> None:
        old_size = path.stat().st_size
        assert len(new) == old_size
        with open(path, "r+b") as fh:  # same inode, same size
            fh.write(new)

    def test_same_size_edit_misses(self, tracker: Tracker, steps: Steps, data_csv: Path) -> None:
        first = run_table(tracker, steps, data_csv)
        assert run_table(tracker, steps, data_csv).cache_hit
        self._edit_in_place(data_csv, b"a,b\n5,6\n7,8\n")
        second = run_table(tracker, steps, data_csv)
        assert second.cache_hit is False
        assert len(steps.calls) == 2
        pd.testing.assert_frame_equal(
            tracker.load_df(second.outputs["out"]), pd.DataFrame({"a": [10, 14], "b": [12, 16]})
        )
        assert second.run.input_hash != first.run.input_hash

    def test_same_size_edit_with_mtime_restored_misses(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        st = data_csv.stat()
        self._edit_in_place(data_csv, b"a,b\n9,9\n9,9\n")
        os.utime(data_csv, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert data_csv.stat().st_mtime_ns == st.st_mtime_ns
        assert data_csv.stat().st_size == st.st_size
        second = run_table(tracker, steps, data_csv)
        assert second.cache_hit is False
        assert len(steps.calls) == 2
        assert second.run.input_hash != first.run.input_hash

    def test_mtime_restored_edit_misses_in_a_fresh_tracker(
        self, base: Path, steps: Steps, data_csv: Path
    ) -> None:
        t1 = make_tracker(base)
        run_table(t1, steps, data_csv)
        t1.close()
        st = data_csv.stat()
        self._edit_in_place(data_csv, b"a,b\n0,0\n0,0\n")
        os.utime(data_csv, ns=(st.st_atime_ns, st.st_mtime_ns))
        t2 = make_tracker(base)
        try:
            assert run_table(t2, steps, data_csv).cache_hit is False
            assert len(steps.calls) == 2
        finally:
            t2.close()

    def test_identical_copy_at_other_path_hits_by_content(
        self, tracker: Tracker, steps: Steps, data_csv: Path, base: Path
    ) -> None:
        run_table(tracker, steps, data_csv)
        copy = base / "elsewhere" / "input.csv"
        copy.parent.mkdir()
        shutil.copy2(data_csv, copy)
        assert run_table(tracker, steps, copy).cache_hit
        assert len(steps.calls) == 1


class TestCodeIdentity:
    """Function source and extra dependency files change identity.

    Step functions live in a module file under tmp_path (not a git repo), so
    code identity comes from the callable.
    """

    V1 = textwrap.dedent(
        """
        from pathlib import Path

        COUNTER = Path(__file__).with_name("calls.log")


        def helper_note():
            return "unchanged helper"


        def step(config):
            with open(COUNTER, "a") as fh:
                fh.write("call\\n")
            return {"value": config["k"]}
        """
    )
    V2 = V1.replace('return {"value": config["k"]}', 'return {"value": config["k"] * 100}')
    V1_HELPER_EDIT = V1.replace('"unchanged helper"', '"a helper edited elsewhere in the module"')

    def _run(self, tracker: Tracker, module: ModuleType, **kwargs: Any) -> RunResult:
        return tracker.run(module.step, config={"k": 1}, **kwargs)

    def test_function_source_change_misses(self, base: Path, module_name: str) -> None:
        tracker = make_tracker(base)
        opts = CacheOptions(code_identity="callable_source")
        mod_path = write(base / "stepmods" / "steps_src.py", self.V1)
        counter = mod_path.with_name("calls.log")
        try:
            module = load_module(mod_path, module_name)
            first = self._run(tracker, module, cache_options=opts)
            assert not first.cache_hit
            assert self._run(tracker, module, cache_options=opts).cache_hit
            assert counter_lines(counter) == 1

            write(mod_path, self.V2)
            module = load_module(mod_path, module_name)
            changed = self._run(tracker, module, cache_options=opts)
            assert changed.cache_hit is False, "edited function source must miss"
            assert counter_lines(counter) == 2
            assert changed.run.git_hash != first.run.git_hash
            assert "code" in changed.run.meta["cache_miss_explanation"]
        finally:
            tracker.close()

    def test_callable_source_ignores_edits_outside_the_function(
        self, base: Path, module_name: str
    ) -> None:
        tracker = make_tracker(base)
        opts = CacheOptions(code_identity="callable_source")
        mod_path = write(base / "stepmods" / "steps_src.py", self.V1)
        counter = mod_path.with_name("calls.log")
        try:
            module = load_module(mod_path, module_name)
            self._run(tracker, module, cache_options=opts)
            write(mod_path, self.V1_HELPER_EDIT)
            module = load_module(mod_path, module_name)
            assert self._run(tracker, module, cache_options=opts).cache_hit
            assert counter_lines(counter) == 1
        finally:
            tracker.close()

    def test_module_change_misses_under_default_fallback(
        self, base: Path, module_name: str
    ) -> None:
        """Outside a git repo the default code identity digests the module file."""
        tracker = make_tracker(base)
        mod_path = write(base / "stepmods" / "steps_mod.py", self.V1)
        counter = mod_path.with_name("calls.log")
        try:
            module = load_module(mod_path, module_name)
            first = self._run(tracker, module)
            assert first.run.meta["code_identity_mode"] == "callable_module"
            assert self._run(tracker, module).cache_hit
            write(mod_path, self.V1_HELPER_EDIT)
            module = load_module(mod_path, module_name)
            assert self._run(tracker, module).cache_hit is False
            assert counter_lines(counter) == 2
        finally:
            tracker.close()

    def test_extra_dependency_file_change_misses(self, base: Path, module_name: str) -> None:
        tracker = make_tracker(base)
        dep = write(base / "deps" / "coefficients.json", '{"beta": 0.5}\n')
        opts = CacheOptions(code_identity="callable_module", code_identity_extra_deps=[str(dep)])
        mod_path = write(base / "stepmods" / "steps_dep.py", self.V1)
        counter = mod_path.with_name("calls.log")
        try:
            module = load_module(mod_path, module_name)
            first = self._run(tracker, module, cache_options=opts)
            assert not first.cache_hit
            assert self._run(tracker, module, cache_options=opts).cache_hit
            assert counter_lines(counter) == 1

            write(dep, '{"beta": 0.7}\n')
            changed = self._run(tracker, module, cache_options=opts)
            assert changed.cache_hit is False, "an edited extra dependency must miss"
            assert counter_lines(counter) == 2
            assert changed.run.git_hash != first.run.git_hash
        finally:
            tracker.close()


# --------------------------------------------------------------------------- #
# identity_inputs
# --------------------------------------------------------------------------- #
class TestIdentityInputs:
    def _step(self, calls: list[int]) -> Callable[[], pd.DataFrame]:
        def settings_step() -> pd.DataFrame:
            calls.append(1)
            return pd.DataFrame({"x": [len(calls)]})

        return settings_step

    def test_file_changes_identity_without_being_logged(self, tracker: Tracker, base: Path) -> None:
        calls: list[int] = []
        step = self._step(calls)
        settings = write(base / "cfg" / "settings.yaml", "mode: fast\n")

        first = tracker.run(step, identity_inputs=[settings], outputs=["out"])
        assert tracker.run(step, identity_inputs=[settings], outputs=["out"]).cache_hit
        assert len(calls) == 1
        # Hash-only: not a logged input of the run.
        assert tracker.get_run_inputs(first.run_id) == {}

        write(settings, "mode: slow\n")
        changed = tracker.run(step, identity_inputs=[settings], outputs=["out"])
        assert changed.cache_hit is False
        assert len(calls) == 2
        assert tracker.get_run_inputs(changed.run_id) == {}
        assert changed.run.input_hash != first.run.input_hash

    def test_directory_changes_identity_without_being_logged(
        self, tracker: Tracker, base: Path, data_csv: Path
    ) -> None:
        calls: list[int] = []

        def dir_step(data: Path) -> pd.DataFrame:
            calls.append(1)
            return pd.read_csv(data)

        bundle = base / "bundle"
        write(bundle / "a.yaml", "a: 1\n")
        write(bundle / "sub" / "b.yaml", "b: 2\n")

        def go() -> RunResult:
            return tracker.run(
                dir_step,
                inputs={"data": data_csv},
                identity_inputs=[("bundle", bundle)],
                outputs=["out"],
            )

        first = go()
        assert go().cache_hit
        assert set(tracker.get_run_inputs(first.run_id)) == {"data"}

        write(bundle / "sub" / "b.yaml", "b: 3\n")
        second = go()
        assert second.cache_hit is False
        assert len(calls) == 2

        write(bundle / "c.yaml", "c: 1\n")  # a new file in the directory
        third = go()
        assert third.cache_hit is False
        assert len(calls) == 3
        for r in (second, third):
            inputs = tracker.get_run_inputs(r.run_id)
            assert set(inputs) == {"data"}
            assert all(bundle not in (a.path or Path("/")).parents for a in inputs.values())


# --------------------------------------------------------------------------- #
# Cache modes
# --------------------------------------------------------------------------- #
class TestCacheModes:
    def test_overwrite_always_executes_and_records(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        opts = CacheOptions(cache_mode="overwrite")
        second = run_table(tracker, steps, data_csv, cache_options=opts)
        third = run_table(tracker, steps, data_csv, cache_options=opts)
        assert len(steps.calls) == 3
        for r in (second, third):
            assert r.cache_hit is False
            stored = tracker.get_run(r.run_id)
            assert stored is not None and stored.status == "completed"
            assert not stored.meta.get("cache_hit")
            assert r.outputs["out"].id != first.outputs["out"].id
            assert set(tracker.get_run_outputs(r.run_id)) == {"out"}
        # Overwritten runs are themselves reusable afterwards.
        after = run_table(tracker, steps, data_csv)
        assert after.cache_hit
        assert len(steps.calls) == 3

    def test_skip_check_is_an_alias_of_overwrite(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        run_table(tracker, steps, data_csv)
        again = run_table(tracker, steps, data_csv, cache_mode="skip_check")
        assert again.cache_hit is False
        assert len(steps.calls) == 2

    def test_readonly_hit_returns_outputs_and_persists_nothing(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        before = persisted(tracker)
        hit = run_table(tracker, steps, data_csv, cache_options=CacheOptions(cache_mode="readonly"))
        assert hit.cache_hit is True
        assert len(steps.calls) == 1
        assert hit.outputs["out"].id == first.outputs["out"].id
        assert hit.outputs["out"].path.exists()
        assert persisted(tracker) == before, "readonly must write no journal file and no DB row"
        assert tracker.get_run(hit.run_id) is None
        assert not (tracker.run_dir / "consist_runs" / f"{hit.run_id}.json").exists()

    def test_readonly_miss_executes_and_persists_nothing(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        run_table(tracker, steps, data_csv)
        before = persisted(tracker)
        miss = run_table(
            tracker,
            steps,
            data_csv,
            config={"k": 9},
            cache_options=CacheOptions(cache_mode="readonly"),
        )
        assert miss.cache_hit is False
        assert len(steps.calls) == 2
        assert persisted(tracker) == before, "readonly must write no journal file and no DB row"
        assert tracker.get_run(miss.run_id) is None
        # Nothing was recorded, so the same call in reuse mode still misses.
        assert run_table(tracker, steps, data_csv, config={"k": 9}).cache_hit is False
        assert len(steps.calls) == 3

    def test_readonly_on_an_empty_store_writes_nothing(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        before = persisted(tracker)
        run_table(tracker, steps, data_csv, cache_options=CacheOptions(cache_mode="readonly"))
        assert persisted(tracker) == before


# --------------------------------------------------------------------------- #
# Failures are never a cache source
# --------------------------------------------------------------------------- #
def test_failed_run_is_never_a_cache_source(tracker: Tracker, data_csv: Path) -> None:
    import consist

    calls: list[int] = []

    def flaky(data: Path) -> pd.DataFrame:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first attempt fails")
        return pd.read_csv(data)

    with pytest.raises(consist.ConsistRunError) as info:
        tracker.run(flaky, inputs={"data": data_csv}, outputs=["out"])
    failed_id = info.value.run_id
    assert tracker.get_run(failed_id).status == "failed"

    ok = tracker.run(flaky, inputs={"data": data_csv}, outputs=["out"])
    assert ok.cache_hit is False
    assert len(calls) == 2
    assert ok.run.meta.get("cache_source") is None

    hit = tracker.run(flaky, inputs={"data": data_csv}, outputs=["out"])
    assert hit.cache_hit
    assert hit.run.meta["cache_source"] == ok.run_id
    assert len(calls) == 2


def test_failed_run_is_not_a_cache_source_for_a_fresh_tracker(base: Path, data_csv: Path) -> None:
    import consist

    calls: list[int] = []

    def always_fails(data: Path) -> None:
        calls.append(1)
        raise RuntimeError("nope")

    for _ in range(2):
        t = make_tracker(base)
        try:
            with pytest.raises(consist.ConsistRunError):
                t.run(always_fails, inputs={"data": data_csv})
        finally:
            t.close()
    assert len(calls) == 2


# --------------------------------------------------------------------------- #
# Hydration and validation of cached outputs
# --------------------------------------------------------------------------- #
class TestHydration:
    def test_outputs_all_copies_into_the_new_run_artifact_dir(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        hit = run_table(
            tracker, steps, data_csv, cache_options=CacheOptions(cache_hydration="outputs-all")
        )
        assert hit.cache_hit
        assert len(steps.calls) == 1
        new_dir = tracker.run_artifact_dir(hit.run)
        old_dir = tracker.run_artifact_dir(first.run)
        assert new_dir != old_dir
        copied = hit.outputs["out"].path
        assert copied is not None
        assert copied.parent == new_dir
        assert copied.exists()
        assert copied.read_bytes() == first.outputs["out"].path.read_bytes()
        # The original stays where it was.
        assert first.outputs["out"].path.exists()
        assert hit.outputs["out"].id == first.outputs["out"].id
        assert hit.run.meta["cache_hydration"] == "outputs-all"

    def test_outputs_requested_copies_to_output_paths(
        self, tracker: Tracker, base: Path, data_csv: Path
    ) -> None:
        calls: list[int] = []

        def writer(data: Path, report: Path) -> None:
            calls.append(1)
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text("report of " + data.read_text())

        first_path = tracker.run_dir / "reports" / "first.txt"
        first = tracker.run(
            writer,
            inputs={"data": data_csv},
            runtime_kwargs={"report": first_path},
            output_paths={"report": first_path},
        )
        assert not first.cache_hit
        assert set(first.outputs) == {"report"}

        wanted = tracker.run_dir / "reports" / "requested.txt"
        hit = tracker.run(
            writer,
            inputs={"data": data_csv},
            runtime_kwargs={"report": wanted},
            output_paths={"report": wanted},
            cache_options=CacheOptions(cache_hydration="outputs-requested"),
        )
        assert hit.cache_hit
        assert len(calls) == 1
        assert wanted.exists()
        assert wanted.read_bytes() == first_path.read_bytes()
        assert hit.outputs["report"].path == wanted
        assert hit.outputs["report"].id == first.outputs["report"].id

    def test_deleted_cached_output_falls_back_to_executing(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        first.outputs["out"].path.unlink()
        again = run_table(tracker, steps, data_csv)
        assert again.cache_hit is False
        assert len(steps.calls) == 2
        assert again.outputs["out"].path.exists()
        explanation = again.run.meta["cache_miss_explanation"]
        assert "missing" in str(explanation)
        # The re-executed run is now the cache source.
        hit = run_table(tracker, steps, data_csv)
        assert hit.cache_hit
        assert hit.run.meta["cache_source"] == again.run_id

    def test_deleted_cached_output_falls_back_in_a_fresh_tracker(
        self, base: Path, steps: Steps, data_csv: Path
    ) -> None:
        t1 = make_tracker(base)
        first = run_table(t1, steps, data_csv)
        t1.close()
        first.outputs["out"].path.unlink()
        t2 = make_tracker(base)
        try:
            assert run_table(t2, steps, data_csv).cache_hit is False
            assert len(steps.calls) == 2
        finally:
            t2.close()

    def test_outputs_requested_with_deleted_cached_file_executes(
        self, tracker: Tracker, data_csv: Path
    ) -> None:
        calls: list[int] = []

        def writer(data: Path, report: Path) -> None:
            calls.append(1)
            report.write_text("report\n")

        path = tracker.run_dir / "r.txt"
        opts = CacheOptions(cache_hydration="outputs-requested")
        kwargs: dict[str, Any] = {
            "inputs": {"data": data_csv},
            "runtime_kwargs": {"report": path},
            "output_paths": {"report": path},
            "cache_options": opts,
        }
        tracker.run(writer, **kwargs)
        path.unlink()
        again = tracker.run(writer, **kwargs)
        assert again.cache_hit is False
        assert len(calls) == 2
        assert path.exists()

    @pytest.mark.parametrize("mode", ["eager", "strict"])
    def test_eager_validation_detects_modified_cached_output(
        self, tracker: Tracker, steps: Steps, data_csv: Path, mode: str
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        out = first.outputs["out"].path
        pd.DataFrame({"a": [0], "b": [0]}).to_parquet(out)  # tampered with on disk
        again = run_table(
            tracker,
            steps,
            data_csv,
            cache_options=CacheOptions(validate_cached_outputs=mode),
        )
        assert again.cache_hit is False
        assert len(steps.calls) == 2
        pd.testing.assert_frame_equal(
            tracker.load_df(again.outputs["out"]), pd.read_csv(data_csv) * 2
        )

    def test_eager_validation_hits_when_outputs_are_intact(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        run_table(tracker, steps, data_csv)
        hit = run_table(
            tracker,
            steps,
            data_csv,
            cache_options=CacheOptions(validate_cached_outputs="eager"),
        )
        assert hit.cache_hit
        assert len(steps.calls) == 1

    def test_inputs_missing_restores_a_deleted_input_from_another_copy(
        self, tracker: Tracker, base: Path
    ) -> None:
        calls: list[str] = []

        def read_step(data: Path) -> pd.DataFrame:
            calls.append(data.read_text())
            return pd.read_csv(data)

        content = "zone,pop\n1,100\n2,250\n"
        original = write(base / "inputs" / "zones.csv", content)
        archived = write(base / "archive" / "zones_copy.csv", content)

        first = tracker.run(read_step, inputs={"data": original}, outputs=["out"])
        # Another recorded copy with the same content.
        tracker.run(read_step, inputs={"data": archived}, config={"other": 1}, outputs=["out"])
        assert len(calls) == 2

        original.unlink()
        third = tracker.run(
            read_step,
            inputs={"data": original},
            outputs=["out"],
            cache_options=CacheOptions(cache_hydration="inputs-missing"),
        )
        assert original.exists(), "the missing input must be restored before the step"
        assert original.read_text() == content
        # Same identity as the first run: a hit.
        assert third.cache_hit
        assert third.run.meta["cache_source"] == first.run_id
        assert len(calls) == 2

    def test_missing_input_without_inputs_missing_is_an_error(
        self, tracker: Tracker, base: Path
    ) -> None:
        original = write(base / "inputs" / "zones.csv", "zone\n1\n")
        tracker.run(lambda data: None, name="reader", inputs={"data": original})
        original.unlink()
        before = persisted(tracker)
        with pytest.raises(FileNotFoundError):
            tracker.run(lambda data: None, name="reader", inputs={"data": original})
        assert persisted(tracker) == before


# --------------------------------------------------------------------------- #
# Across processes
# --------------------------------------------------------------------------- #
_XPROC_MODULE = textwrap.dedent(
    """
    from pathlib import Path

    import pandas as pd

    COUNTER = Path(__file__).with_name("xproc_calls.log")


    def step(data, config):
        with open(COUNTER, "a") as fh:
            fh.write("call\\n")
        return pd.read_csv(data) * config["k"]
    """
)

_XPROC_SCRIPT = textwrap.dedent(
    """
    import importlib.util
    import sys
    from pathlib import Path

    from consist import Tracker

    base, name = Path(sys.argv[1]), sys.argv[2]
    spec = importlib.util.spec_from_file_location(name, base / "xproc_steps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)

    tracker = Tracker(base / "runs", db_path=base / "prov.duckdb", project_root=base)
    result = tracker.run(
        module.step, inputs={"data": base / "data.csv"}, config={"k": 3}, outputs=["out"]
    )
    assert not result.cache_hit
    tracker.close()
    print(result.run_id)
    print(result.outputs["out"].id)
    """
)


@pytest.mark.slow
def test_hit_across_processes(base: Path, module_name: str) -> None:
    write(base / "data.csv", "a\n1\n2\n")
    mod_path = write(base / "xproc_steps.py", _XPROC_MODULE)
    counter = base / "xproc_calls.log"
    proc = subprocess.run(
        [sys.executable, "-c", _XPROC_SCRIPT, str(base), module_name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=base,
    )
    assert proc.returncode == 0, proc.stderr
    producer_id, artifact_id = proc.stdout.split()
    assert counter_lines(counter) == 1

    module = load_module(mod_path, module_name)
    tracker = make_tracker(base)
    try:
        result = tracker.run(
            module.step, inputs={"data": base / "data.csv"}, config={"k": 3}, outputs=["out"]
        )
        assert result.cache_hit, result.run.meta.get("cache_miss_explanation")
        assert counter_lines(counter) == 1, "the step must not execute in the second process"
        assert result.run.meta["cache_source"] == producer_id
        assert str(result.outputs["out"].id) == artifact_id
        pd.testing.assert_frame_equal(
            tracker.load_df(result.outputs["out"]), pd.DataFrame({"a": [3, 6]})
        )
    finally:
        tracker.close()


# --------------------------------------------------------------------------- #
# Explained misses
# --------------------------------------------------------------------------- #
class TestExplainedMisses:
    def test_config_change_names_the_key_with_old_and_new(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        config = {"k": 2, "mode": "fast", "nested": {"alpha": 0.5, "beta": 1}}
        first = run_table(tracker, steps, data_csv, config=config)
        changed = dict(config, nested={"alpha": 0.75, "beta": 1})
        second = run_table(tracker, steps, data_csv, config=changed)
        assert not second.cache_hit

        explanation = second.run.meta["cache_miss_explanation"]
        assert explanation["nearest_run_id"] == first.run_id
        assert set(explanation["config"]) == {"nested.alpha"}
        entry = explanation["config"]["nested.alpha"]
        assert entry["old"] == 0.5
        assert entry["new"] == 0.75
        assert "inputs" not in explanation
        assert "code" not in explanation
        assert "nested.alpha" in explanation["summary"]

        # Persisted and available through the tracker.
        assert tracker.get_run(second.run_id).meta["cache_miss_explanation"] == explanation
        assert tracker.explain_cache_miss(second.run_id) == explanation

    def test_input_change_names_the_input_key(
        self, tracker: Tracker, steps: Steps, data_csv: Path, base: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        write(data_csv, "a,b\n1,2\n3,5\n")
        second = run_table(tracker, steps, data_csv)
        assert not second.cache_hit
        explanation = tracker.explain_cache_miss(second.run_id)
        assert explanation["nearest_run_id"] == first.run_id
        assert set(explanation["inputs"]) == {"data"}
        assert explanation["inputs"]["data"]["old"] != explanation["inputs"]["data"]["new"]
        assert "config" not in explanation

    def test_year_change_is_explained(self, tracker: Tracker, steps: Steps, data_csv: Path) -> None:
        run_table(tracker, steps, data_csv, year=2020)
        second = run_table(tracker, steps, data_csv, year=2030)
        explanation = tracker.explain_cache_miss(second.run_id)
        assert explanation["other"]["year"] == {"old": 2020, "new": 2030}

    def test_first_run_has_no_nearest(self, tracker: Tracker, steps: Steps, data_csv: Path) -> None:
        first = run_table(tracker, steps, data_csv)
        explanation = tracker.explain_cache_miss(first.run_id)
        assert explanation["nearest_run_id"] is None

    def test_hit_explains_itself_as_a_hit(
        self, tracker: Tracker, steps: Steps, data_csv: Path
    ) -> None:
        first = run_table(tracker, steps, data_csv)
        hit = run_table(tracker, steps, data_csv)
        explanation = tracker.explain_cache_miss(hit.run_id)
        assert explanation["cache_hit"] is True
        assert explanation["cache_source"] == first.run_id

    def test_unknown_run(self, tracker: Tracker) -> None:
        assert tracker.explain_cache_miss("no_such_run") is None


# --------------------------------------------------------------------------- #
# find_matching_run, suspend/restore
# --------------------------------------------------------------------------- #
def test_find_matching_run(tracker: Tracker, steps: Steps, data_csv: Path) -> None:
    first = run_table(tracker, steps, data_csv)
    stored = tracker.get_run(first.run_id)
    assert stored.config_hash and stored.input_hash and stored.git_hash
    found = tracker.find_matching_run(stored.config_hash, stored.input_hash, stored.git_hash)
    assert found is not None
    assert found.id == first.run_id
    other = run_table(tracker, steps, data_csv, config={"k": 7})
    assert other.run.config_hash != stored.config_hash
    assert tracker.find_matching_run("blake3:" + "f" * 64, stored.input_hash, stored.git_hash) is (
        None
    )


def test_find_matching_run_ignores_failed_runs(tracker: Tracker, data_csv: Path) -> None:
    import consist

    def broken(data: Path) -> None:
        raise ValueError("broken")

    with pytest.raises(consist.ConsistRunError) as info:
        tracker.run(broken, inputs={"data": data_csv}, run_id="broken_run")
    run = tracker.get_run(info.value.run_id)
    assert run.status == "failed"
    assert tracker.find_matching_run(run.config_hash, run.input_hash, run.git_hash) is None


def test_suspend_and_restore_cache_options(tracker: Tracker) -> None:
    from consist import ActiveRunCacheOptions

    with tracker.trace(
        "suspend", cache_mode="overwrite", cache_hydration="outputs-all", run_id="susp"
    ):
        previous = tracker.suspend_cache_options()
        assert isinstance(previous, ActiveRunCacheOptions)
        assert previous.cache_mode == "overwrite"
        assert previous.cache_hydration == "outputs-all"

        defaults = tracker.suspend_cache_options()
        assert defaults == ActiveRunCacheOptions()
        assert defaults.cache_mode == "reuse"

        tracker.restore_cache_options(previous)
        assert tracker.suspend_cache_options() == previous
        tracker.restore_cache_options(previous)
        with pytest.raises(TypeError):
            tracker.restore_cache_options({"cache_mode": "reuse"})  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        tracker.suspend_cache_options()
    with pytest.raises(RuntimeError):
        tracker.restore_cache_options(ActiveRunCacheOptions())
