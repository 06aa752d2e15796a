"""Parallel sweeps: many configs of one step on a local process pool.

Argument checks happen in this process before any worker starts (and write
nothing). The slow tests start real ``spawn`` workers that open their own
Tracker on the same run_dir and DuckDB file: an 8-config sweep on 2 workers
as children of a scenario, one config failing, then reruns served from the
cache. The step function is module-level so workers can import it; it
appends one line per execution to a log (passed as a runtime kwarg, so it
is not part of the config's identity) to count executions across processes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import consist
from consist import SweepError, SweepResult, SweepResults, Tracker


@pytest.fixture(autouse=True)
def _isolated_cwd(in_base_dir: None) -> None:
    """Every test of this module runs in its own temporary directory."""


def score(config: dict, log: str) -> Path:
    """One sweep member: fails on request, else writes a small JSON result."""
    with open(log, "a") as fh:
        fh.write(f"{config['i']}\n")
    if config.get("fail"):
        raise ValueError(f"config {config['i']} diverged")
    out = consist.output_path("score", ext="json")
    out.write_text(json.dumps({"i": config["i"], "score": config["i"] ** 2 * config["scale"]}))
    return out


def executions(log: Path) -> list[int]:
    return sorted(int(line) for line in log.read_text().split()) if log.exists() else []


def journal_files(tracker: Tracker) -> list[str]:
    runs = tracker.run_dir / "consist_runs"
    return sorted(p.name for p in runs.glob("*.json")) if runs.exists() else []


# --------------------------------------------------------------------------- #
# Rejected before any worker starts
# --------------------------------------------------------------------------- #


class TestValidation:
    def test_bad_arguments_are_rejected_up_front(self, tracker: Tracker, base: Path) -> None:
        log = str(base / "log.txt")
        good = [{"i": 1, "scale": 1}]

        def local(config: dict) -> None:
            return None

        with pytest.raises(TypeError, match="module level"):
            tracker.sweep(local, good)
        with pytest.raises(TypeError, match="module level"):
            tracker.sweep(lambda config: None, good)
        with pytest.raises(TypeError, match="list of config dicts"):
            tracker.sweep(score, {"i": 1}, runtime_kwargs={"log": log})
        with pytest.raises(TypeError, match=r"configs\[1\]"):
            tracker.sweep(score, [{"i": 1}, {2: "x"}], runtime_kwargs={"log": log})
        with pytest.raises(TypeError, match=r"configs\[0\] is None"):
            tracker.sweep(score, [None], runtime_kwargs={"log": log})
        with pytest.raises(ValueError, match="config="):
            tracker.sweep(score, good, config={"i": 1})
        with pytest.raises(ValueError, match="run_id="):
            tracker.sweep(score, good, run_id="fixed", runtime_kwargs={"log": log})
        with pytest.raises(TypeError, match="needs \\['log'\\]"):
            tracker.sweep(score, good)  # no runtime kwarg supplies `log`
        with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
            tracker.sweep(score, good, colour="red", runtime_kwargs={"log": log})
        with pytest.raises(TypeError, match="cannot be sent"):
            tracker.sweep(score, good, runtime_kwargs={"log": log}, tags=[lambda: 0])
        with pytest.raises(TypeError, match="tags must contain only strings"):
            tracker.sweep(score, good, runtime_kwargs={"log": log}, tags=["ok", 3])
        with pytest.raises(TypeError, match="year"):
            tracker.sweep(score, good, runtime_kwargs={"log": log}, year="2030")
        with pytest.raises(ValueError, match="max_workers"):
            tracker.sweep(score, good, max_workers=0, runtime_kwargs={"log": log})
        assert journal_files(tracker) == []
        assert not Path(log).exists()

    def test_a_function_from_a_reloaded_module_names_the_reload(
        self, tracker: Tracker, base: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Dask's Client.upload_file re-imports the uploaded module in the client
        # too, so a function imported before the upload no longer pickles.
        import importlib
        import sys

        (base / "reloaded_steps.py").write_text("def step(config):\n    return None\n")
        monkeypatch.syspath_prepend(str(base))
        import reloaded_steps  # type: ignore[import-not-found]

        stale = reloaded_steps.step
        try:
            importlib.reload(reloaded_steps)
            with pytest.raises(TypeError, match=r"imported again.*client\.upload_file"):
                tracker.sweep(stale, [{"i": 1}])
            assert journal_files(tracker) == []
        finally:
            sys.modules.pop("reloaded_steps", None)

    def test_empty_sweep_starts_nothing(self, tracker: Tracker, base: Path) -> None:
        results = tracker.sweep(score, [], runtime_kwargs={"log": str(base / "log")})
        assert isinstance(results, SweepResults) and results == []
        assert results.raise_for_failures() is results

    def test_results_helpers(self) -> None:
        ok = SweepResult(index=0, config={}, status="completed", run_id="a", cache_hit=True)
        bad = SweepResult(index=1, config={}, status="failed", run_id="b", error="ValueError: x")
        results = SweepResults([ok, bad])
        assert results.completed == [ok] and results.failed == [bad] and results.cache_hits == 1
        with pytest.raises(SweepError, match=r"#1 \(run b\): ValueError: x") as info:
            results.raise_for_failures()
        assert info.value.failures == [bad]
        with pytest.raises(RuntimeError, match="failed"):
            bad.output("score")
        with pytest.raises(KeyError, match="no output"):
            ok.output("score")


# --------------------------------------------------------------------------- #
# Real worker processes
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_eight_configs_on_two_workers_then_rerun_from_cache(
    tracker: Tracker, base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = base / "executions.log"
    configs = [{"i": i, "scale": 10, "fail": i == 5} for i in range(8)]
    timings = {}

    started = time.perf_counter()
    with tracker.scenario("calibration", config={"grid": "8x"}) as sc:
        first = sc.sweep(
            score,
            configs,
            max_workers=2,
            outputs=["score"],
            runtime_kwargs={"log": str(log)},
            year=2030,
        )
    timings["first"] = time.perf_counter() - started

    # Rows come back in input order; the failure is reported on its row.
    assert [r.index for r in first] == list(range(8))
    assert [r.config for r in first] == configs
    assert [r.status for r in first] == ["completed"] * 5 + ["failed"] + ["completed"] * 2
    failed = first[5]
    assert failed.error == "ValueError: config 5 diverged"
    assert "diverged" in failed.error_traceback
    assert tracker.get_run(failed.run_id).status == "failed"
    assert not any(r.cache_hit for r in first)
    for r in first.completed:
        assert json.loads(r.output("score").path.read_text()) == {
            "i": r.index,
            "score": r.index**2 * 10,
        }
        assert r.run.parent_run_id == "calibration" and r.run.year == 2030
    assert executions(log) == list(range(8))
    # Each config is its own child run of the scenario; the header completed.
    children = tracker.find_runs(parent_id="calibration", limit=100)
    assert len(children) == 8
    assert {r.id for r in children} == {r.run_id for r in first}
    pids = {c.meta["pid"] for c in children}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # ran in the worker processes
    header = tracker.get_run("calibration")
    assert header.status == "completed"
    assert header.meta["scenario_steps"] == 8 and header.meta["scenario_failed_steps"] == 1
    assert sc.coupler.keys() == [f"score/{i}/score" for i in range(8) if i != 5]
    with pytest.raises(SweepError, match="config 5 diverged"):
        first.raise_for_failures()

    # Rerun: the seven completed configs are served from the cache; the failed
    # one executes again (a failed run is never a cache source) and fails again.
    started = time.perf_counter()
    with tracker.scenario("calibration", config={"grid": "8x"}) as sc:
        second = sc.sweep(
            score,
            configs,
            max_workers=2,
            outputs=["score"],
            runtime_kwargs={"log": str(log)},
            year=2030,
        )
    timings["rerun"] = time.perf_counter() - started
    assert [r.cache_hit for r in second] == [True] * 5 + [False] + [True] * 2
    assert [r.status for r in second] == [r.status for r in first]
    assert executions(log) == sorted([*range(8), 5])
    for before, after in zip(first.completed, second.completed, strict=True):
        assert after.outputs["score"].id == before.outputs["score"].id
        assert after.run.meta["cache_source"] == before.run_id

    # Without the failing config the whole sweep is served from the cache.
    good = [c for c in configs if not c["fail"]]
    started = time.perf_counter()
    third = tracker.sweep(
        score,
        good,
        max_workers=2,
        outputs=["score"],
        runtime_kwargs={"log": str(log)},
        year=2030,
        parent_run_id="calibration",
    )
    timings["cached"] = time.perf_counter() - started
    assert all(r.ok and r.cache_hit for r in third) and third.cache_hits == 7
    assert executions(log) == sorted([*range(8), 5])
    with capsys.disabled():
        print(
            "\nsweep timings (8 configs, 2 workers): "
            + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
        )


@pytest.mark.slow
def test_changed_config_reruns_only_that_config(tracker: Tracker, base: Path) -> None:
    log = base / "executions.log"
    configs = [{"i": i, "scale": 1} for i in range(3)]
    kwargs = {"outputs": ["score"], "runtime_kwargs": {"log": str(log)}, "max_workers": 2}
    tracker.sweep(score, configs, **kwargs).raise_for_failures()
    configs[1] = {"i": 1, "scale": 2}
    rows = tracker.sweep(score, configs, **kwargs).raise_for_failures()
    assert [r.cache_hit for r in rows] == [True, False, True]
    assert executions(log) == [0, 1, 1, 2]
    assert json.loads(rows[1].output("score").path.read_text())["score"] == 2
    assert all(r.run.parent_run_id is None for r in rows)
