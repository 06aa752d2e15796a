"""Server-side paging over many runs: totals, filters and a stable order across pages.

The store is filled through the store's batch write for full run snapshots
(``MetadataStore.sync_records``, the path journal recovery uses), which
writes thousands of runs in a fraction of a second; runs share timestamps
in threes, so the order's tie-break (run id) is exercised on every page.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from consist import Tracker
from consist.models.records import ConsistRecord
from consist.models.run import Run
from consist.ui import create_app

N_RUNS = 4000
MODELS = ("households", "demand", "assign", "skims", "landuse")
START = datetime(2026, 3, 1, tzinfo=UTC)


def make_runs() -> list[Run]:
    runs = []
    for i in range(N_RUNS):
        created = START + timedelta(minutes=i // 3)
        runs.append(
            Run(
                id=f"{MODELS[i % 5]}_{(i * 7919) % N_RUNS:05d}",
                model_name=MODELS[i % 5],
                status="failed" if i % 13 == 0 else "completed",
                tags=["bulk", f"group{i % 3}"],
                year=2020 + 10 * (i % 4),
                parent_run_id=f"scenario_{i % 7}" if i % 2 else None,
                created_at=created,
                ended_at=created + timedelta(seconds=30),
                meta={"cache_hit": i % 5 == 0},
            )
        )
    return runs


@pytest.fixture(scope="module")
def many(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Tracker, list[Run]]]:
    root: Path = tmp_path_factory.mktemp("many")
    runs = make_runs()
    writer = Tracker(root / "runs", db_path=root / "provenance.duckdb")
    for start in range(0, N_RUNS, 1000):
        writer.store.sync_records([ConsistRecord(run=r) for r in runs[start : start + 1000]])
    writer.close()
    tracker = Tracker(root / "runs", db_path=root / "provenance.duckdb", read_only=True)
    with TestClient(create_app(tracker)) as client:
        yield client, tracker, runs
    tracker.close()


def newest_first(runs: list[Run]) -> list[str]:
    return [r.id for r in sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)]


def test_every_page_in_order_and_the_total(many: tuple[TestClient, Tracker, list[Run]]) -> None:
    client, _, runs = many
    expected = newest_first(runs)
    seen: list[str] = []
    for page in range(1, 10):
        body = client.get(f"/api/runs?page_size=500&page={page}").json()
        assert body["total"] == N_RUNS and body["pages"] == 8
        seen.extend(r["id"] for r in body["runs"])
    assert seen == expected
    oldest = client.get("/api/runs?order=oldest&page_size=7&page=3").json()
    assert [r["id"] for r in oldest["runs"]] == expected[::-1][14:21]


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        ("model=demand", lambda r: r.model_name == "demand"),
        ("status=failed", lambda r: r.status == "failed"),
        ("tag=group1", lambda r: "group1" in r.tags),
        ("tag=group1&tag=bulk", lambda r: "group1" in r.tags),
        ("year=2040&model=skims", lambda r: r.year == 2040 and r.model_name == "skims"),
        ("scenario=scenario_3", lambda r: r.parent_run_id == "scenario_3"),
        (
            "since=2026-03-01T10:00:00%2B00:00&until=2026-03-02T00:00:00%2B00:00",
            lambda r: (
                datetime(2026, 3, 1, 10, tzinfo=UTC)
                <= r.created_at
                <= datetime(2026, 3, 2, tzinfo=UTC)
            ),
        ),
        (
            "status=completed&tag=group2&scenario=scenario_5&year=2030",
            lambda r: (
                r.status == "completed"
                and "group2" in r.tags
                and r.parent_run_id == "scenario_5"
                and r.year == 2030
            ),
        ),
    ],
)
def test_filtered_pages_match_the_runs_recorded(
    many: tuple[TestClient, Tracker, list[Run]], query: str, keep
) -> None:
    client, _, runs = many
    expected = newest_first([r for r in runs if keep(r)])
    assert expected  # every case selects something
    first = client.get(f"/api/runs?{query}&page_size=40").json()
    assert first["total"] == len(expected)
    assert [r["id"] for r in first["runs"]] == expected[:40]
    last_page = first["pages"]
    last = client.get(f"/api/runs?{query}&page_size=40&page={last_page}").json()
    assert [r["id"] for r in last["runs"]] == expected[(last_page - 1) * 40 :]


def test_store_run_page_checks_its_arguments(many: tuple[TestClient, Tracker, list[Run]]) -> None:
    _, tracker, _ = many
    store = tracker.store
    with pytest.raises(ValueError, match="unknown run filter"):
        store.run_page({"colour": "red"})
    with pytest.raises(ValueError, match="order"):
        store.run_page({}, order="random")
    with pytest.raises(ValueError, match="offset"):
        store.run_page({}, offset=-1)
    counted = store.run_page({"model": "assign"}, limit=0)
    assert counted.total == N_RUNS // 5 and counted.runs == []
    values = store.run_filter_values()
    assert dict(values["model"]) == {m: N_RUNS // 5 for m in MODELS}
    assert dict(values["tag"])["bulk"] == N_RUNS
