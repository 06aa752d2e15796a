"""``consist artifacts``, ``history``, ``search``, ``summary``, ``scenarios``, ``scenario``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from consist import Tracker

if TYPE_CHECKING:  # pragma: no cover - the fixture's type, from tests/cli/conftest.py
    from conftest import Project

COMMANDS = ("artifacts", "history", "search", "summary", "scenarios", "scenario")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_an_example(cli, name: str) -> None:
    out = cli(name, "--help")
    assert out.code == 0
    assert f"Example: consist {name}" in out.stdout and "--json" in out.stdout
    assert "JSON: " in out.stdout  # the --json shape is documented


def test_recorded_text_with_brackets_prints_as_is(cli, tmp_path: Path) -> None:
    """Keys, ids and tags are data, not rich markup."""
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "odd.duckdb", project_root=tmp_path)
    data = tmp_path / "z.csv"
    data.write_text("a\n1\n")
    with tracker.start_run("odd[1]", "m[red]", config={}, tags=["[/bold]"]):
        tracker.log_input(data, key="zone[bold]")
    tracker.close()
    args = ["--db-path", str(tmp_path / "odd.duckdb"), "--run-dir", str(tmp_path / "runs")]
    out = cli("artifacts", "odd[1]", *args)
    assert out.code == 0, out.stderr
    assert "zone[bold]" in out.stdout and "artifacts of odd[1]" in out.stdout
    out = cli("search", "[", *args)
    assert out.code == 0, out.stderr
    assert "odd[1]" in out.stdout and "m[red]" in out.stdout
    assert "tag:[/bold]" in out.stdout and "artifact:zone[bold]" in out.stdout
    out = cli("history", "m[red]", *args)
    assert out.code == 0 and "odd[1]" in out.stdout
    out = cli("summary", *args)
    assert out.code == 0 and "m[red]" in out.stdout


# -- artifacts -----------------------------------------------------------------------------


def test_artifacts_across_the_store(cli, project: Project) -> None:
    out = cli("artifacts", *project.args(), "--json")
    assert out.code == 0, out.stderr
    rows = out.json()
    # households.csv logged by each of the 3 households runs, 2 persons, 2 trips
    assert sorted(r["key"] for r in rows) == ["households"] * 3 + ["persons"] * 2 + ["trips"] * 2
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)
    assert rows[0]["run_id"] == project.runs["d2040"] and rows[0]["key"] == "trips"
    assert all(r["direction"] is None and r["reachable"] for r in rows)
    assert set(rows[0]) >= {"key", "id", "driver", "uri", "path", "hash", "size_bytes", "run_id"}

    csv = cli("artifacts", *project.args(), "--json", "--driver", "csv").json()
    assert [r["key"] for r in csv] == ["households"] * 3
    persons = cli("artifacts", *project.args(), "--json", "--key", "persons").json()
    assert {r["run_id"] for r in persons} == {project.runs["first"], project.runs["scaled"]}
    produced = cli("artifacts", *project.args(), "--json", "--direction", "output").json()
    assert sorted(r["key"] for r in produced) == ["persons", "persons", "trips", "trips"]
    assert all(r["direction"] == "output" for r in produced)
    consumed = cli("artifacts", *project.args(), "--json", "--direction", "input").json()
    # the raw csv (3 times), the first persons table (demand_2030), demand_2030's trips
    assert sorted((r["key"], r["run_id"]) for r in consumed if r["key"] != "households") == [
        ("persons", project.runs["first"]),
        ("trips", project.runs["d2030"]),
    ]
    assert len(cli("artifacts", *project.args(), "--json", "--limit", "2").json()) == 2


def test_artifacts_of_one_run(cli, project: Project) -> None:
    run = project.runs["d2040"]
    rows = cli("artifacts", run, *project.args(), "--json").json()
    by_direction = {r["direction"]: r for r in rows}
    assert set(by_direction) == {"input", "output"} and len(rows) == 2
    # the run's own key for its input (d2030's trips table, consumed as "persons")
    assert by_direction["input"]["key"] == "persons"
    assert by_direction["input"]["run_id"] == project.runs["d2030"]
    assert by_direction["output"]["key"] == "trips"
    assert by_direction["output"]["run_id"] == run
    inputs = cli("artifacts", run, *project.args(), "--json", "--direction", "input").json()
    assert [r["key"] for r in inputs] == ["persons"]
    assert cli("artifacts", run, *project.args(), "--json", "--key", "trips").json() == [
        by_direction["output"]
    ]
    assert cli("artifacts", run, *project.args(), "--json", "--driver", "csv").json() == []

    table = cli("artifacts", run, *project.args())
    assert table.code == 0
    assert f"artifacts of {run}" in table.stdout
    assert "trips" in table.stdout and "input" in table.stdout and "output" in table.stdout
    assert "yes" in table.stdout  # both files are on disk


def test_artifacts_shows_missing_files(cli, project: Project) -> None:
    trips = cli("artifacts", project.runs["d2040"], *project.args(), "--json", "--key", "trips")
    path = Path(trips.json()[0]["path"])
    path.unlink()
    again = cli("artifacts", project.runs["d2040"], *project.args(), "--json", "--key", "trips")
    assert again.json()[0]["reachable"] is False
    out = cli("artifacts", project.runs["d2040"], *project.args(), "--key", "trips")
    row = next(line for line in out.stdout.splitlines() if line.startswith("│ trips"))
    cells = [c.strip() for c in row.split("│")]
    assert cells[cells.index("trips") + 6] == "no"  # the "on disk" column


def test_artifacts_errors(cli, project: Project) -> None:
    out = cli("artifacts", "no-such-run", *project.args())
    assert out.code == 5 and "no run 'no-such-run'" in out.stderr
    out = cli("artifacts", *project.args(), "--direction", "sideways")
    assert out.code == 2 and "--direction 'sideways'" in out.stderr
    assert "input or output" in out.stderr
    out = cli("artifacts", *project.args(), "--limit", "0")
    assert out.code == 2
    out = cli("artifacts", *project.args(), "--driver", "zarr")
    assert out.code == 0 and "no artifacts match" in out.stdout


# -- history -------------------------------------------------------------------------------


def test_history_of_a_model(cli, project: Project) -> None:
    out = cli("history", "households", *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["model"] == "households"
    runs = data["runs"]
    assert [r["id"] for r in runs] == [project.runs[k] for k in ("scaled", "hit", "first")]
    scaled, hit, first = runs
    assert scaled["cache_hit"] is False
    # the nearest earlier completed run of the model: the hit (same config as the first run)
    assert scaled["compared_to"] == project.runs["hit"]
    assert scaled["config_changes"] == {"scale": {"old": 1, "new": 2}}
    assert hit["cache_hit"] is True and hit["compared_to"] == project.runs["first"]
    assert hit["config_changes"] == {}
    assert first["compared_to"] is None and "no earlier" in first["changes"]
    assert all(r["duration_s"] is not None and r["status"] == "completed" for r in runs)

    table = cli("history", "households", *project.args())
    assert table.code == 0
    assert "scale: 1 → 2" in table.stdout
    assert f"reused {project.runs['first']}" in table.stdout
    assert "hit" in table.stdout and "miss" in table.stdout

    one = cli("history", "households", *project.args(), "--json", "--limit", "1").json()
    assert [r["id"] for r in one["runs"]] == [project.runs["scaled"]]
    broken = cli("history", "broken", *project.args(), "--json").json()
    assert [r["status"] for r in broken["runs"]] == ["failed"]


def test_history_errors(cli, project: Project) -> None:
    out = cli("history", "nomodel", *project.args())
    assert out.code == 5 and "no model 'nomodel'" in out.stderr
    assert "consist summary" in out.stderr
    out = cli("history", *project.args())  # MODEL missing
    assert out.code == 2
    out = cli("history", "households", *project.args(), "--limit", "-3")
    assert out.code == 2


# -- search --------------------------------------------------------------------------------


def test_search_every_field(cli, project: Project) -> None:
    out = cli("search", "persons", *project.args(), "--json")
    assert out.code == 0, out.stderr
    rows = out.json()
    expected = {project.runs[k] for k in ("first", "hit", "scaled", "d2030", "d2040")}
    assert {r["id"] for r in rows} == expected
    assert all(r["matched"] == ["artifact:persons"] for r in rows)
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)

    base = {r["id"]: r["matched"] for r in cli("search", "BASE", *project.args(), "--json").json()}
    assert base == {
        "baseline": ["id"],
        project.runs["first"]: ["tag:base"],
        project.runs["hit"]: ["tag:base"],
    }
    demand = cli("search", "demand_20", *project.args(), "--json").json()
    assert {r["id"] for r in demand} == {project.runs["d2030"], project.runs["d2040"]}
    assert all(r["matched"] == ["id", "model"] for r in demand)
    run_id = project.runs["failed"]
    assert [r["id"] for r in cli("search", run_id, *project.args(), "--json").json()] == [run_id]
    assert len(cli("search", "persons", *project.args(), "--json", "--limit", "2").json()) == 2

    table = cli("search", "scaled", *project.args())
    assert table.code == 0
    assert project.runs["scaled"] in table.stdout and "tag:scaled" in table.stdout


def test_search_no_match_and_errors(cli, project: Project) -> None:
    out = cli("search", "zzz-nothing", *project.args(), "--json")
    assert out.code == 0 and out.json() == []
    out = cli("search", "zzz-nothing", *project.args())
    assert out.code == 0 and "no runs mention 'zzz-nothing'" in out.stdout
    out = cli("search", "   ", *project.args())
    assert out.code == 2 and "TEXT is empty" in out.stderr
    out = cli("search", "x", *project.args(), "--limit", "0")
    assert out.code == 2
    out = cli("search", "x", *project.args(), "--colour")
    assert out.code == 2


# -- summary -------------------------------------------------------------------------------


def test_summary(cli, project: Project) -> None:
    out = cli("summary", *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["runs"] == 7
    assert data["by_status"] == {"completed": 6, "failed": 1}
    models = {m["model"]: m for m in data["by_model"]}
    assert set(models) == {"households", "broken", "scenario", "demand_2030", "demand_2040"}
    assert models["households"] == {
        "model": "households",
        "runs": 3,
        "cache_hits": 1,
        "statuses": {"completed": 3},
    }
    assert models["broken"]["statuses"] == {"failed": 1}
    assert data["cache_hits"] == 1 and data["scenarios"] == 1
    assert data["artifacts"] == 7
    assert data["first_run_at"] <= data["last_run_at"]
    assert data["db_path"] == str(project.db_path)
    size = os.path.getsize(project.db_path)
    wal = Path(str(project.db_path) + ".wal")
    assert data["db_size_bytes"] == size + (wal.stat().st_size if wal.exists() else 0)

    table = cli("summary", *project.args())
    assert table.code == 0
    assert str(project.db_path) in table.stdout and "MiB" in table.stdout
    assert "7 (6 completed, 1 failed)" in table.stdout
    assert "households" in table.stdout and "runs by model" in table.stdout


def test_summary_and_scenarios_of_an_empty_store(cli, tmp_path: Path) -> None:
    Tracker(tmp_path / "runs", db_path=tmp_path / "empty.duckdb").close()
    args = ["--db-path", str(tmp_path / "empty.duckdb")]
    data = cli("summary", *args, "--json").json()
    assert data["runs"] == 0 and data["by_model"] == [] and data["first_run_at"] is None
    out = cli("summary", *args)
    assert out.code == 0 and "no runs yet" in out.stdout
    out = cli("scenarios", *args)
    assert out.code == 0 and "no scenarios" in out.stdout
    assert cli("scenarios", *args, "--json").json() == []


def test_summary_bad_option_and_missing_store(cli, tmp_path: Path) -> None:
    assert cli("summary", "--limit", "3").code == 2
    out = cli("summary", "--db-path", str(tmp_path / "none.duckdb"))
    assert out.code == 3 and "Traceback" not in out.stderr


# -- scenarios -----------------------------------------------------------------------------


def test_scenarios(cli, project: Project) -> None:
    out = cli("scenarios", *project.args(), "--json")
    assert out.code == 0, out.stderr
    rows = out.json()
    assert [r["id"] for r in rows] == ["baseline"]
    assert rows[0]["model"] == "scenario" and rows[0]["status"] == "completed"
    assert rows[0]["steps"] == 2
    assert rows[0]["step_statuses"] == {"completed": 2}
    assert rows[0]["step_cache_hits"] == 0
    table = cli("scenarios", *project.args())
    assert table.code == 0 and "baseline" in table.stdout
    assert cli("scenarios", *project.args(), "--limit", "0").code == 2


def test_scenario_tree_and_json(cli, project: Project) -> None:
    out = cli("scenario", "baseline", *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["header"]["id"] == "baseline" and "scenario_header" in data["header"]["tags"]
    steps = data["steps"]
    assert [s["id"] for s in steps] == [project.runs["d2030"], project.runs["d2040"]]
    assert [s["year"] for s in steps] == [2030, 2040]
    assert all(s["inputs"] == ["persons"] and s["outputs"] == ["trips"] for s in steps)
    assert all(s["parent_run_id"] == "baseline" for s in steps)

    tree = cli("scenario", "baseline", *project.args())
    assert tree.code == 0
    lines = tree.stdout.splitlines()
    assert lines[0].startswith("baseline") and "2 step(s)" in lines[0]
    assert "demand_2030" in lines[1] and "year 2030" in lines[1]
    assert "in: persons" in tree.stdout and "out: trips" in tree.stdout
    assert tree.stdout.index("demand_2030") < tree.stdout.index("demand_2040")
    assert "└──" in tree.stdout


def test_scenario_errors(cli, project: Project) -> None:
    out = cli("scenario", "nope", *project.args())
    assert out.code == 5 and "no scenario 'nope'" in out.stderr
    assert "consist scenarios" in out.stderr
    # a run that exists but is not a scenario header
    out = cli("scenario", project.runs["first"], *project.args(), "--json")
    assert out.code == 5 and out.stdout == ""
    out = cli("scenario", "baseline", *project.args(), "--depth", "2")
    assert out.code == 2
    out = cli("scenario", *project.args())
    assert out.code == 2


# -- read-only and the real command --------------------------------------------------------


def test_browsing_writes_nothing(cli, project: Project) -> None:
    before = sorted(p for p in project.root.rglob("*") if ".git" not in p.parts)
    stamps = {p: p.stat().st_mtime_ns for p in before if p.is_file()}
    for args in (
        ("artifacts",),
        ("artifacts", project.runs["first"]),
        ("history", "households"),
        ("search", "persons"),
        ("summary",),
        ("scenarios",),
        ("scenario", "baseline"),
    ):
        assert cli(*args, *project.args()).code == 0, args
    after = sorted(p for p in project.root.rglob("*") if ".git" not in p.parts)
    assert after == before
    assert {p: p.stat().st_mtime_ns for p in after if p.is_file()} == stamps


def test_real_subprocess_search_and_summary(run_consist, project: Project) -> None:
    out = run_consist("search", "scaled", *project.args(), "--json")
    assert out.code == 0, out.stderr
    assert [(r["id"], r["matched"]) for r in out.json()] == [
        (project.runs["scaled"], ["tag:scaled"])
    ]
    out = run_consist("search", "persons", *project.args())
    assert out.code == 0 and "artifact:persons" in out.stdout
    out = run_consist("search", " ", *project.args())
    assert out.code == 2 and out.stderr.startswith("consist: TEXT is empty")

    out = run_consist("summary", *project.args(), "--json")
    assert out.code == 0, out.stderr
    assert out.json()["runs"] == 7 and out.json()["scenarios"] == 1
    out = run_consist("summary", env={"CONSIST_DB": str(project.db_path)})
    assert out.code == 0 and "runs by model" in out.stdout
    out = run_consist("summary")  # no store in the working directory
    assert out.code == 3 and "Traceback" not in out.stderr


def step(**config: object) -> None:
    """A step whose config is all that matters."""


def test_history_lists_long_config_changes_briefly(cli, tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "h.duckdb", project_root=tmp_path)
    keys = "abcdefg"
    tracker.run(fn=step, name="wide", config={k: 1 for k in keys})
    tracker.run(fn=step, name="wide", config={**{k: 2 for k in keys}, "a": "x" * 100})
    tracker.close()
    args = ["--db-path", str(tmp_path / "h.duckdb"), "--run-dir", str(tmp_path / "runs")]
    data = cli("history", "wide", *args, "--json").json()
    assert set(data["runs"][0]["config_changes"]) == set(keys)
    assert data["runs"][0]["config_changes"]["a"] == {"old": 1, "new": "x" * 100}
    out = cli("history", "wide", *args)
    assert out.code == 0
    assert "+2 more config keys" in out.stdout and "b: 1 → 2" in out.stdout
    assert "x" * 100 not in out.stdout.replace("\n", "").replace("│", "").replace(" ", "")
