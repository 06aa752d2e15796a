"""Configs the journal cannot hold faithfully fail closed; NaN and infinities round-trip.

The rule (``consist.core.identity.canonical.check_recordable``, applied by
``validate_config`` before anything is written): NaN, ``inf`` and ``-inf`` are
recorded as they are (journal, database replay, ``get_run_config``); a reference
cycle, nesting deeper than ``MAX_CONFIG_DEPTH`` or a value the snapshot cannot
write is a clear error naming the key path, and leaves no trace.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from _support import persisted
from consist import Tracker
from consist.core.identity.canonical import MAX_CONFIG_DEPTH

CALLS: list[dict[str, Any]] = []


def step(threshold: float, bounds: list[float], nested: dict[str, Any]) -> None:
    CALLS.append({"threshold": threshold, "bounds": bounds, "nested": nested})


def record_step(**config: Any) -> None:
    CALLS.append(config)


def nested(levels: int, leaf: Any = 1) -> dict[str, Any]:
    """A config of exactly ``levels`` nested dicts (the top one included)."""
    config: dict[str, Any] = {"v": leaf}
    for _ in range(levels - 1):
        config = {"a": config}
    return config


def open_tracker(tmp_path: Path) -> Tracker:
    return Tracker(tmp_path / "runs", db_path=tmp_path / "db.duckdb", project_root=tmp_path)


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def _pending_entries(tracker: Tracker) -> str:
    pending = tracker.run_dir / "consist_runs" / ".pending"
    if not pending.exists():
        return ""
    return "".join(p.read_text(errors="replace") for p in pending.iterdir() if p.is_file())


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN (and keeps types strict)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# -- NaN and infinities are recorded faithfully ----------------------------------------------

NON_FINITE = {
    "threshold": math.nan,
    "bounds": [-math.inf, 0.5, math.inf],
    "nested": {"cap": math.inf, "missing": float(np.float64("nan"))},
}


def test_nan_and_infinities_round_trip_through_journal_db_and_get_run_config(
    tmp_path: Path,
) -> None:
    tracker = open_tracker(tmp_path)
    result = tracker.run(fn=step, config=NON_FINITE, name="nonfinite")
    run_id = result.run.id
    assert _same(CALLS[0], NON_FINITE)  # what the step received
    assert _same(tracker.get_run_config(run_id), NON_FINITE)

    # The snapshot on disk holds the JSON constants, not null.
    snapshot = (tracker.run_dir / "consist_runs" / f"{run_id}.json").read_text()
    assert "null" not in json.dumps(json.loads(snapshot)["config"])
    assert "NaN" in snapshot and "-Infinity" in snapshot
    tracker.close()

    # Another tracker (a new process would do the same) reads it back from
    # the journal and finds the run in the database; the same config hits.
    reopened = open_tracker(tmp_path)
    assert reopened.get_run(run_id).status == "completed"
    assert _same(reopened.get_run_record(run_id).config, NON_FINITE)
    again = reopened.run(fn=step, config=NON_FINITE, name="nonfinite")
    assert again.cache_hit and len(CALLS) == 1
    reopened.close()


@pytest.mark.parametrize(
    "other",
    [
        {**NON_FINITE, "threshold": None},
        {**NON_FINITE, "bounds": [None, 0.5, None]},
        {**NON_FINITE, "bounds": [math.inf, 0.5, -math.inf]},
        {**NON_FINITE, "nested": {"cap": 1e308, "missing": None}},
    ],
)
def test_non_finite_values_are_distinct_from_null_and_each_other(
    tmp_path: Path, other: dict[str, Any]
) -> None:
    tracker = open_tracker(tmp_path)
    first = tracker.run(fn=step, config=NON_FINITE, name="nonfinite")
    second = tracker.run(fn=step, config=other, name="nonfinite")
    assert not second.cache_hit
    assert first.run.config_hash != second.run.config_hash
    assert _same(tracker.get_run_config(second.run.id), other)
    tracker.close()


class Settings(BaseModel):
    growth: float = math.inf
    floor: float = -math.inf
    seed: int = 7


def test_pydantic_config_with_infinities_round_trips(tmp_path: Path) -> None:
    tracker = open_tracker(tmp_path)
    with tracker.start_run("settings", "model", config=Settings()):
        pass
    tracker.close()
    reopened = open_tracker(tmp_path)
    assert reopened.get_run_config("settings") == {
        "growth": math.inf,
        "floor": -math.inf,
        "seed": 7,
    }
    reopened.close()


# -- Deep nesting: up to the limit round-trips, beyond it fails closed --------------------


def test_config_at_the_depth_limit_round_trips(tmp_path: Path) -> None:
    config = nested(MAX_CONFIG_DEPTH, leaf=math.nan)
    tracker = open_tracker(tmp_path)
    result = tracker.run(fn=record_step, config=config, name="deep")
    tracker.close()
    reopened = open_tracker(tmp_path)
    assert _same(reopened.get_run_config(result.run.id), config)
    assert reopened.get_run(result.run.id).status == "completed"
    assert reopened.run(fn=record_step, config=config, name="deep").cache_hit
    reopened.close()


def _assert_nothing_written(tracker: Tracker, before: Any, run_id: str | None = None) -> None:
    assert persisted(tracker) == before
    if run_id is not None:
        assert run_id not in _pending_entries(tracker)
        assert tracker.get_run(run_id) is None
    assert tracker.current_run is None


@pytest.mark.parametrize("levels", [MAX_CONFIG_DEPTH + 1, 200, 254, 255, 5000])
def test_deeper_configs_are_refused_before_anything_is_written(tmp_path: Path, levels: int) -> None:
    tracker = open_tracker(tmp_path)
    tracker.run(fn=record_step, config={"k": 1}, name="shallow")
    before = persisted(tracker)
    with pytest.raises(ValueError, match=rf"config\['a'\].*more than {MAX_CONFIG_DEPTH} levels"):
        tracker.run(fn=record_step, config=nested(levels), name="deep", run_id="deep-run")
    assert len(CALLS) == 1  # the step never ran
    _assert_nothing_written(tracker, before, "deep-run")
    with pytest.raises(ValueError, match="more than"):
        tracker.begin_run("deep-begin", "deep", config=nested(levels))
    _assert_nothing_written(tracker, before, "deep-begin")
    # The tracker is not stuck: the next run works and reaches the store.
    ok = tracker.run(fn=record_step, config={"k": 2}, name="shallow")
    assert tracker.get_run(ok.run.id).status == "completed"
    tracker.close()


def test_deep_lists_are_refused_too(tmp_path: Path) -> None:
    deep: list[Any] = [1]
    for _ in range(300):
        deep = [deep]
    tracker = open_tracker(tmp_path)
    with pytest.raises(ValueError, match=r"config\['grid'\]\[0\]\[0\].*levels deep"):
        tracker.run(fn=record_step, config={"grid": deep}, name="grid")
    assert CALLS == [] and tracker.current_run is None
    tracker.close()


def test_self_referencing_configs_raise_value_error_not_recursion_error(tmp_path: Path) -> None:
    tracker = open_tracker(tmp_path)
    before = persisted(tracker)
    loop: dict[str, Any] = {"a": 1}
    loop["inner"] = {"back": loop}
    with pytest.raises(ValueError, match=r"config\['inner'\]\['back'\] contains itself"):
        tracker.run(fn=record_step, config=loop, name="loop", run_id="loop-run")
    items: list[Any] = [1]
    items.append(items)
    with pytest.raises(ValueError, match=r"config\['items'\]\[1\] contains itself"):
        tracker.begin_run("loop-start", "loop", config={"items": items})
    _assert_nothing_written(tracker, before, "loop-run")
    assert tracker.get_run("loop-start") is None
    tracker.close()


def test_shared_subtrees_are_not_cycles(tmp_path: Path) -> None:
    shared = {"rate": 0.5}
    config = {"north": shared, "south": shared}
    tracker = open_tracker(tmp_path)
    result = tracker.run(fn=record_step, config=config, name="shared")
    assert tracker.get_run_config(result.run.id) == {"north": {"rate": 0.5}, "south": {"rate": 0.5}}
    tracker.close()


# -- Values the snapshot cannot write -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (np.int64(3), r"\.item\(\)"),
        (np.arange(3), r"\.tolist\(\)"),
        (np.bool_(True), r"\.item\(\)"),
        (object(), "convert it to str/int/float"),
    ],
)
def test_values_the_snapshot_cannot_write_are_refused(
    tmp_path: Path, value: Any, hint: str
) -> None:
    tracker = open_tracker(tmp_path)
    before = persisted(tracker)
    with pytest.raises(TypeError, match=rf"config\['model'\]\['seed'\].*{hint}"):
        tracker.run(
            fn=record_step, config={"model": {"seed": value}}, name="typed", run_id="typed-run"
        )
    _assert_nothing_written(tracker, before, "typed-run")
    # Converted as the message says, the same config records and reads back.
    plain = value.tolist() if hasattr(value, "tolist") else "object"
    result = tracker.run(fn=record_step, config={"model": {"seed": plain}}, name="typed")
    assert tracker.get_run_config(result.run.id) == {"model": {"seed": plain}}
    tracker.close()


def test_facets_follow_the_same_rule(tmp_path: Path) -> None:
    tracker = open_tracker(tmp_path)
    before = persisted(tracker)
    with pytest.raises(ValueError, match=r"facet\['a'\].*more than"):
        tracker.begin_run("deep-facet", "model", facet=nested(5000))
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match=r"facet\['self'\] contains itself"):
        tracker.run(fn=record_step, config={"k": 1}, facet=loop, name="facet", run_id="f-run")
    _assert_nothing_written(tracker, before, "f-run")
    assert CALLS == []
    with tracker.start_run("ok-facet", "model", facet={"cap": math.inf, "deep": nested(5)}):
        pass
    tracker.close()
    reopened = open_tracker(tmp_path)
    assert reopened.get_run_record("ok-facet").facet["cap"] == math.inf
    reopened.close()
