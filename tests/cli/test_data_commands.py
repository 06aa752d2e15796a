"""``consist validate`` and ``consist preview`` on the shared project store.

``add_table_artifacts`` (also used by ``test_schema_commands``) adds a run
``zones_1`` with three profiled, facet-indexed parquet files (one schema), an
ingested table ``trips_hot`` and a free-text ``notes`` file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from sqlmodel import Field, SQLModel

from consist import Tracker

if TYPE_CHECKING:  # pragma: no cover - the fixture's type, from tests/cli/conftest.py
    from conftest import Project


class HotTrip(SQLModel, table=True):
    """Rows of the ingested ``trips_hot`` artifact."""

    __tablename__ = "trips_hot"
    trip_id: int = Field(primary_key=True)
    mode: str


def add_table_artifacts(project: Project) -> dict[str, Any]:
    """Record run ``zones_1`` (see the module docstring); return its artifacts by key."""
    tracker = Tracker(project.run_dir, db_path=project.db_path, project_root=project.root)
    found: dict[str, Any] = {}
    with tracker.start_run("zones_1", "zones"):
        out_dir = tracker.run_artifact_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
        for zone, year in (("north", 2030), ("south", 2030), ("north", 2040)):
            path = out_dir / f"links_{zone}_{year}.parquet"
            pd.DataFrame({"link": [1, 2], "flow": [float(year), 3.5]}).to_parquet(path)
            art = tracker.log_artifact(
                path,
                key=f"links_{zone}_{year}",
                profile_file_schema=True,
                facet={"zone": zone, "year": year},
                facet_index=True,
            )
            found[art.key] = art
        frame = pd.DataFrame({"trip_id": [1, 2, 3], "mode": ["car", "bus", "walk"]})
        found["trips_hot"] = tracker.log_dataframe(frame, key="trips_hot", schema=HotTrip)
        notes = out_dir / "notes.txt"
        notes.write_text("free text\n")
        found["notes"] = tracker.log_artifact(notes, key="notes")
    tracker.close()
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def output_path(cli, project: Project, run: str, key: str) -> Path:
    shown = cli("show", project.runs[run], *project.args(), "--json").json()
    (art,) = [a for a in shown["outputs"] if a["key"] == key]
    return Path(art["path"])


def read_tracker(project: Project) -> Tracker:
    return Tracker(project.run_dir, db_path=project.db_path, read_only=True)


# -- validate -------------------------------------------------------------------------------


def test_validate_intact_store_exits_0_and_writes_nothing(cli, project: Project) -> None:
    before = digest(project.db_path)
    out = cli("validate", *project.args(), "--json")
    assert out.code == 0, out.stderr
    report = out.json()
    assert report["ok"] is True and report["fixed"] is False and report["run_ids"] is None
    assert set(report) == {
        "ok",
        "run_ids",
        "counts",
        "fixed",
        "marked_missing",
        "cleared",
        "checks",
    }
    # households.csv as each of the three households runs logged it, and the four
    # outputs: persons (first, scaled) and trips (d2030, d2040); the hit added none
    assert len(report["checks"]) == report["counts"]["ok"] == 7
    assert {c["key"] for c in report["checks"]} == {"households", "persons", "trips"}
    assert all(c["expected_hash"].startswith("blake3:") for c in report["checks"])
    assert out.stderr == ""  # no progress bar under --json
    table = cli("validate", *project.args())
    assert table.code == 0 and "7 ok" in table.stdout and "intact" in table.stdout
    assert digest(project.db_path) == before  # a read command writes nothing


def test_validate_scoped_to_runs_and_unknown_run(
    cli, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = cli("validate", project.runs["d2040"], *project.args(), "--json")
    assert out.code == 0, out.stderr
    report = out.json()
    assert report["run_ids"] == [project.runs["d2040"]]
    # its input (d2030's trips, logged under the key "persons") and its own output
    assert [c["key"] for c in report["checks"]] == ["persons", "trips"]
    assert {c["run_id"] for c in report["checks"]} == {project.runs["d2030"], project.runs["d2040"]}
    out = cli("validate", "no_such_run", *project.args())
    assert out.code == 5 and "no_such_run" in out.stderr and "consist runs" in out.stderr

    import consist.cli.session as session_module

    opened: list[bool] = []
    real_open = session_module.open_tracker

    def recording_open(options, *, write=False):
        opened.append(write)
        return real_open(options, write=write)

    monkeypatch.setattr(session_module, "open_tracker", recording_open)
    out = cli("validate", project.runs["d2040"], "no_such_run", "--fix", *project.args())
    assert out.code == 5 and "no_such_run" in out.stderr
    assert opened == [False]  # refused before the store was opened for writing
    out = cli("validate", project.runs["d2040"], "--fix", *project.args())
    assert out.code == 0 and opened == [False, False, True]


def test_validate_finds_changed_and_missing_files_in_a_subprocess(
    cli, run_consist, project: Project
) -> None:
    edited = output_path(cli, project, "first", "persons")
    deleted = output_path(cli, project, "d2030", "trips")
    original = deleted.read_bytes()
    frame = pd.read_parquet(edited)
    frame.loc[0, "persons"] = 99
    frame.to_parquet(edited)  # edited in place: same path, other content
    deleted.unlink()
    before = digest(project.db_path)

    out = run_consist("validate", *project.args())
    assert out.code == 1, out.stderr
    assert "changed" in out.stdout and "missing" in out.stdout
    assert str(edited) in out.stdout and str(deleted) in out.stdout
    assert "consist validate --fix" in out.stdout
    assert "Traceback" not in out.stderr

    out = run_consist("validate", *project.args(), "--json")
    assert out.code == 1
    report = out.json()
    by_path = {c["path"]: c for c in report["checks"]}
    assert by_path[str(edited)]["status"] == "changed"
    assert by_path[str(deleted)]["status"] == "missing"
    assert report["counts"] == {
        "ok": 5,
        "missing": 1,
        "changed": 1,
        "unresolved": 0,
        "unhashed": 0,
    }
    assert digest(project.db_path) == before  # without --fix nothing is written

    # --fix records the missing file; the changed one is only reported
    out = run_consist("validate", *project.args(), "--fix", "--json")
    assert out.code == 1, out.stderr
    fixed = out.json()
    missing_id = by_path[str(deleted)]["artifact_id"]
    assert fixed["fixed"] is True and fixed["marked_missing"] == [missing_id]
    assert fixed["cleared"] == []
    tracker = read_tracker(project)
    flagged = tracker.get_artifact(missing_id)
    assert flagged is not None and flagged.meta["missing_since"].startswith("20")
    consumer = tracker.get_artifacts_for_run(project.runs["d2040"]).inputs["persons"]
    assert consumer.meta["missing_since"] == flagged.meta["missing_since"]  # links too
    assert "missing_since" not in tracker.get_artifact(by_path[str(edited)]["artifact_id"]).meta
    tracker.close()

    # a second --fix keeps the first date; restoring the file clears the flag
    again = run_consist("validate", *project.args(), "--fix", "--json").json()
    assert again["marked_missing"] == []
    (check,) = [c for c in again["checks"] if c["artifact_id"] == missing_id]
    assert check["missing_since"] == flagged.meta["missing_since"]
    deleted.write_bytes(original)
    out = run_consist("validate", *project.args(), "--fix")
    assert out.code == 1  # the edited file is still changed
    assert "cleared the flag of 1" in out.stdout
    tracker = read_tracker(project)
    assert "missing_since" not in tracker.get_artifact(missing_id).meta
    tracker.close()


def test_validate_unknown_mount_is_unresolved(cli, project: Project) -> None:
    tracker = Tracker(
        project.run_dir,
        db_path=project.db_path,
        project_root=project.root,
        mounts={"inputs": str(project.root / "data")},
    )
    with tracker.start_run("mounted", "mounted"):
        tracker.log_input(project.root / "data" / "households.csv", key="mounted_households")
    tracker.close()
    out = cli("validate", "mounted", *project.args(), "--json")
    assert out.code == 1
    (check,) = out.json()["checks"]
    assert check["status"] == "unresolved" and check["uri"] == "inputs://households.csv"
    assert "--mount" in cli("validate", "mounted", *project.args()).stdout
    mount = f"inputs={project.root / 'data'}"
    out = cli("validate", "mounted", *project.args(), "--mount", mount, "--json")
    assert out.code == 0 and out.json()["checks"][0]["status"] == "ok"


# -- preview --------------------------------------------------------------------------------


def test_preview_table_and_json(cli, project: Project) -> None:
    out = cli("preview", "persons", *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert set(data) == {"artifact", "source", "columns", "types", "rows"}
    assert data["source"] == "file" and data["artifact"]["driver"] == "parquet"
    assert data["artifact"]["run_id"] == project.runs["scaled"]  # the newest persons
    assert data["columns"] == ["hh_id", "size", "persons"]
    assert data["types"] == ["BIGINT", "BIGINT", "BIGINT"]
    assert data["rows"] == [[1, 2, 4], [2, 4, 8], [3, 1, 2]]  # scale=2
    two = cli("preview", "persons", "--rows", "2", *project.args(), "--json").json()
    assert two["rows"] == data["rows"][:2]
    scoped = cli("preview", "persons", "--run", project.runs["first"], *project.args(), "--json")
    assert scoped.json()["rows"][0] == [1, 2, 2]  # scale=1
    by_id = cli("preview", data["artifact"]["id"], *project.args(), "--json").json()
    assert by_id["rows"] == data["rows"]
    table = cli("preview", "persons", "-n", "1", *project.args())
    assert table.code == 0
    assert "hh_id" in table.stdout and "BIGINT" in table.stdout and "first 1 row" in table.stdout


def test_preview_ingested_rows_when_the_file_is_gone(cli, project: Project) -> None:
    arts = add_table_artifacts(project)
    Path(arts["trips_hot"].abs_path).unlink()
    out = cli("preview", "trips_hot", *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["source"] == "store"
    assert data["columns"] == ["trip_id", "mode"]
    assert sorted(data["rows"]) == [[1, "car"], [2, "bus"], [3, "walk"]]
    assert "ingested into the store" in cli("preview", "trips_hot", *project.args()).stdout


def test_preview_errors(cli, project: Project) -> None:
    add_table_artifacts(project)
    out = cli("preview", "notes", *project.args())
    assert out.code == 1 and "not a table" in out.stderr and "'other'" in out.stderr
    out = cli("preview", "no_such_key", *project.args())
    assert out.code == 5 and "no_such_key" in out.stderr
    out = cli("preview", "persons", "--run", "nope", *project.args())
    assert out.code == 5 and "'nope'" in out.stderr
    out = cli("preview", "persons", "--run", project.runs["failed"], *project.args())
    assert out.code == 5 and project.runs["failed"] in out.stderr
    output_path(cli, project, "d2040", "trips").unlink()
    out = cli("preview", "trips", *project.args())
    assert out.code == 1 and "not ingested" in out.stderr and "consist validate" in out.stderr
    out = cli("preview", "persons", "--rows", "0", *project.args())
    assert out.code == 2
    assert all("Traceback" not in o for o in (out.stderr, out.stdout))


def test_help_shows_an_example(cli) -> None:
    for command, example in (("validate", "consist validate --fix"), ("preview", "--rows")):
        out = cli(command, "--help")
        assert out.code == 0 and f"Example: consist {command}" in out.stdout
        assert example in out.stdout and "--json" in out.stdout


def test_validate_draws_a_progress_bar_on_a_terminal_stderr(project: Project) -> None:
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "consist", "validate", *project.args()],
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert proc.returncode == 0
    assert b"validating files" in drawn and b"7/7" in drawn  # on stderr, not stdout
    assert b"validating" not in proc.stdout and b"7 ok" in proc.stdout
