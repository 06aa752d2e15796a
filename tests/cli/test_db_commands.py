"""``consist db inspect|doctor|rebuild|compact`` on the project store (see conftest).

The main paths run through a real ``python -m consist`` subprocess: a rebuild
after the DuckDB file is deleted (every run, artifact and link compared with
the original), and a doctor on a store whose run was SIGKILLed mid-run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from _support import Child, git, write
from consist import Tracker

# Every table a rebuild must restore, with an order that makes rows comparable.
TABLES = {
    "run": "id",
    "artifact": "id",
    "run_artifact_link": "run_id, artifact_id, direction",
}

VICTIM = r"""
import sys, time
from consist import Tracker
run_dir, db_path, root = sys.argv[1:4]
t = Tracker(run_dir, db_path=db_path, project_root=root)
t.begin_run("victim", "households", config={"scale": 9})
print("ready", flush=True)
time.sleep(120)
"""

SLOW_VICTIM = r"""
import sys, time
from consist import Tracker
run_dir, db_path, root = sys.argv[1:4]
sys.path.insert(0, root)
from slow_step import slow
t = Tracker(run_dir, db_path=db_path, project_root=root)
t.run(fn=slow, name="slow", run_id="slow_victim", config={"x": 1})
"""


def table_rows(db: Path) -> dict[str, Any]:
    """The rows of ``TABLES``, and how the runs are split into lineage groups.

    A group's label is whichever root survived the joins, which depends on
    the order the runs were written in: the partition must be the same, the
    labels need not.
    """
    con = duckdb.connect(str(db), read_only=True)
    try:
        out: dict[str, Any] = {
            table: con.execute(
                f"SELECT * EXCLUDE (lineage_group) FROM {table} ORDER BY {order}"
                if table == "run_artifact_link"
                else f"SELECT * FROM {table} ORDER BY {order}"
            ).fetchall()
            for table, order in TABLES.items()
        }
        groups = con.execute(
            "SELECT list(DISTINCT run_id ORDER BY run_id) FROM run_artifact_link "
            "GROUP BY lineage_group"
        ).fetchall()
        out["lineage_groups"] = sorted(tuple(g[0]) for g in groups)
        return out
    finally:
        con.close()


def api_view(project: Any) -> dict[str, Any]:
    """Every run with its artifacts, through the public API (read-only tracker)."""
    tracker = Tracker(
        project.run_dir, db_path=project.db_path, project_root=project.root, read_only=True
    )
    try:
        runs = tracker.find_runs(limit=None)
        view = {}
        for run in runs:
            found = tracker.get_artifacts_for_run(run.id)
            view[run.id] = {
                "run": run.model_dump(mode="json"),
                "inputs": {k: a.model_dump(mode="json") for k, a in found.inputs.items()},
                "outputs": {k: a.model_dump(mode="json") for k, a in found.outputs.items()},
                "config": tracker.get_run_config(run.id, allow_missing=True),
            }
        return view
    finally:
        tracker.close()


def remove_store(db: Path) -> None:
    for path in (db, Path(f"{db}.wal"), Path(f"{db}.consist.lock")):
        path.unlink(missing_ok=True)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


# -- inspect ----------------------------------------------------------------------------


def test_inspect_lists_tables_and_writes_nothing(project: Any, cli: Callable[..., Any]) -> None:
    before = project.db_path.read_bytes()
    listing = sorted(p.name for p in project.db_path.parent.iterdir())
    out = cli("db", "inspect", *project.args())
    assert out.code == 0, out.stderr
    assert str(project.db_path) in out.stdout
    assert "schema version" in out.stdout and "run_artifact_link" in out.stdout
    assert "pending writes: none" in out.stdout
    data = cli("db", "inspect", "--json", *project.args()).json()
    # 3 households runs, broken, the scenario header and its 2 steps
    assert data["tables"]["run"] == 7
    assert set(data) == {
        "db_path",
        "size_bytes",
        "wal_bytes",
        "schema_version",
        "tables",
        "logged_writes",
        "journal_pending",
        "dead_starts",
        "run_dir",
        "table_bytes",
    }
    assert data["table_bytes"] is None  # PostgreSQL stores only
    assert data["size_bytes"] == os.path.getsize(project.db_path)
    assert data["journal_pending"] == [] and data["logged_writes"] == 0
    assert project.db_path.read_bytes() == before
    assert sorted(p.name for p in project.db_path.parent.iterdir()) == listing


def test_inspect_without_a_store_names_the_path(tmp_path: Path, cli: Callable[..., Any]) -> None:
    out = cli("db", "inspect", "--db-path", str(tmp_path / "nope.duckdb"))
    assert out.code == 3
    assert "nope.duckdb" in out.stderr and "Traceback" not in out.stderr


# -- doctor -----------------------------------------------------------------------------


def test_doctor_on_a_healthy_store(project: Any, cli: Callable[..., Any]) -> None:
    before = project.db_path.read_bytes()
    journal = sorted(p.name for p in (project.run_dir / "consist_runs").rglob("*"))
    out = cli("db", "doctor", *project.args())
    assert out.code == 0, out.stderr
    assert "the store is healthy" in out.stdout
    data = cli("db", "doctor", "--json", *project.args()).json()
    assert data == {
        "healthy": True,
        "fix": False,
        "findings": [],
        "notes": [],
        "replayed_on_open": [],
    }
    assert project.db_path.read_bytes() == before
    assert sorted(p.name for p in (project.run_dir / "consist_runs").rglob("*")) == journal


def test_doctor_finds_and_removes_dangling_links(project: Any, cli: Callable[..., Any]) -> None:
    con = duckdb.connect(str(project.db_path))
    con.execute("DELETE FROM run WHERE id = ?", [project.runs["d2040"]])
    con.close()
    # The run's row is gone but its snapshot is not: doctor sees both sides.
    out = cli("db", "doctor", "--json", *project.args())
    assert out.code == 1
    found = {(f["kind"], f["subject"]) for f in out.json()["findings"]}
    assert ("missing_in_db", project.runs["d2040"]) in found
    assert any(kind == "dangling_link" for kind, _ in found)
    fixed = cli("db", "doctor", "--fix", *project.args())
    assert fixed.code == 0, fixed.stdout + fixed.stderr
    assert "replayed the journal snapshot" in fixed.stdout
    assert "repaired" in fixed.stdout and "healthy" in fixed.stdout
    assert cli("db", "doctor", *project.args()).code == 0


def test_doctor_and_fix_after_a_sigkilled_run_in_a_real_subprocess(
    project: Any, run_consist: Callable[..., Any], children: list[Child]
) -> None:
    child = Child(VICTIM, project.run_dir, project.db_path, project.root, timeout=60)
    children.append(child)
    child.wait_for("ready")
    pid = child.proc.pid
    child.sigkill()

    found = run_consist("db", "doctor", *project.args())
    assert found.code == 1, found.stdout + found.stderr
    assert "victim" in found.stdout
    assert "--fix" in found.stdout
    data = run_consist("db", "doctor", "--json", *project.args()).json()
    assert not data["healthy"]
    assert "victim" in {f["subject"] for f in data["findings"]}

    fixed = run_consist("db", "doctor", "--fix", "--json", *project.args())
    assert fixed.code == 0, fixed.stdout + fixed.stderr
    report = fixed.json()
    dead = [f for f in report["findings"] if f["kind"] == "dead_running"]
    assert [f["subject"] for f in dead] == ["victim"]
    assert dead[0]["fixed"] and f"pid {pid}" in dead[0]["action"]

    show = run_consist("show", "victim", "--json", *project.args()).json()
    assert show["run"]["status"] == "failed"
    assert f"pid {pid}" in show["error"]
    again = run_consist("db", "doctor", *project.args())
    assert again.code == 0 and "healthy" in again.stdout


def test_a_run_killed_inside_tracker_run_is_pending_then_replayed_and_failed(
    project: Any, run_consist: Callable[..., Any], children: list[Child]
) -> None:
    write(
        project.root / "slow_step.py",
        "import time\n\n\ndef slow(x: int = 1) -> None:\n"
        "    print('ready', flush=True)\n    time.sleep(120)\n",
    )
    git(project.root, "add", "slow_step.py")
    git(project.root, "commit", "-q", "-m", "slow step")
    child = Child(SLOW_VICTIM, project.run_dir, project.db_path, project.root, timeout=60)
    children.append(child)
    child.wait_for("ready")
    child.sigkill()

    # Only the dead process's ledger knows the run: inspect shows it as pending.
    info = run_consist("db", "inspect", "--json", *project.args())
    assert info.code == 0, info.stderr
    assert info.json()["dead_starts"] == ["slow_victim"]
    shown = run_consist("db", "inspect", *project.args())
    assert "run start(s) of dead processes not replayed: slow_victim" in shown.stdout
    found = run_consist("db", "doctor", "--json", *project.args())
    assert found.code == 1
    assert ("unreplayed", "slow_victim") in {
        (f["kind"], f["subject"]) for f in found.json()["findings"]
    }

    fixed = run_consist("db", "doctor", "--fix", *project.args())
    assert fixed.code == 0, fixed.stdout + fixed.stderr
    assert "replayed 1 run(s) from the journal: slow_victim" in fixed.stdout
    assert "marked failed" in fixed.stdout
    after = run_consist("db", "inspect", "--json", *project.args()).json()
    assert after["dead_starts"] == [] and after["journal_pending"] == []
    assert after["tables"]["run"] == 8
    show = run_consist("show", "slow_victim", "--json", *project.args()).json()
    assert show["run"]["status"] == "failed"


# -- rebuild ----------------------------------------------------------------------------


def test_rebuild_after_the_store_is_deleted_equals_the_original(
    project: Any, run_consist: Callable[..., Any]
) -> None:
    original_rows = table_rows(project.db_path)
    original_api = api_view(project)
    assert len(original_api) == 7 and original_rows["run_artifact_link"]
    remove_store(project.db_path)

    out = run_consist("db", "rebuild", *project.args())
    assert out.code == 0, out.stderr
    assert "rebuilt" in out.stdout and "7 run(s)" in out.stdout
    assert "rebuilding" in out.stderr  # the progress bar, on stderr

    assert table_rows(project.db_path) == original_rows
    assert api_view(project) == original_api
    assert run_consist("db", "doctor", *project.args()).code == 0


def test_rebuild_refuses_to_overwrite_and_force_moves_the_old_store_aside(
    project: Any, run_consist: Callable[..., Any], tmp_path: Path
) -> None:
    before = project.db_path.read_bytes()
    refused = run_consist("db", "rebuild", *project.args())
    assert refused.code == 2
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert project.db_path.read_bytes() == before

    out_db = tmp_path / "elsewhere" / "rebuilt.duckdb"
    copy = run_consist("db", "rebuild", "--out", str(out_db), "--json", *project.args())
    assert copy.code == 0, copy.stderr
    data = copy.json()
    assert set(data) == {"db_path", "run_dir", "runs", "replayed", "errors", "moved_aside"}
    assert data["db_path"] == str(out_db) and data["runs"] == 7 and data["moved_aside"] is None
    assert "rebuilding" not in copy.stderr  # no progress bar under --json
    assert table_rows(out_db) == table_rows(project.db_path)

    forced = run_consist("db", "rebuild", "--force", "--json", *project.args())
    assert forced.code == 0, forced.stderr
    aside = Path(forced.json()["moved_aside"])
    assert aside.name.startswith("provenance.duckdb.replaced-")
    assert aside.read_bytes() == before  # the old store is kept, byte for byte
    assert table_rows(project.db_path) == table_rows(aside)


def test_rebuild_reports_unreadable_snapshots_and_a_missing_journal(
    project: Any, cli: Callable[..., Any], tmp_path: Path
) -> None:
    missing = cli(
        "db", "rebuild", "--db-path", str(tmp_path / "x.duckdb"), "--run-dir", str(tmp_path)
    )
    assert missing.code == 2
    assert "no journal" in missing.stderr and "--run-dir" in missing.stderr
    assert not (tmp_path / "x.duckdb").exists()

    bad = project.run_dir / "consist_runs" / "damaged.json"
    bad.write_text("{not json")
    out = cli("db", "rebuild", "--out", str(tmp_path / "r.duckdb"), "--json", *project.args())
    assert out.code == 1
    data = out.json()
    assert data["runs"] == 7 and list(data["errors"]) == [str(bad)]


# -- compact ----------------------------------------------------------------------------


def test_compact_reports_sizes_and_keeps_the_store(project: Any, cli: Callable[..., Any]) -> None:
    rows = table_rows(project.db_path)
    out = cli("db", "compact", *project.args())
    assert out.code == 0, out.stderr
    assert "compacted" in out.stdout and "->" in out.stdout
    data = cli("db", "compact", "--json", *project.args()).json()
    assert set(data) == {"db_path", "size_before", "size_after", "saved", "tables"}
    assert data["saved"] == data["size_before"] - data["size_after"]
    assert data["tables"]["run"] == 7
    assert data["size_after"] == os.path.getsize(project.db_path)
    assert table_rows(project.db_path) == rows
    listed = cli("runs", "--json", *project.args())
    assert listed.code == 0 and len(listed.json()) == 7


HOLDER = r"""
import fcntl, sys, time
fd = open(sys.argv[1] + ".consist.lock", "a")
fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(120)
"""


def test_compact_waits_for_a_writer_and_gives_up_cleanly(
    project: Any, run_consist: Callable[..., Any], children: list[Child]
) -> None:
    before = project.db_path.read_bytes()
    holder = Child(HOLDER, project.db_path, timeout=60)
    children.append(holder)
    holder.wait_for("holding")  # a writing Consist process holds its turn
    out = run_consist("db", "compact", "--lock-timeout", "1", *project.args())
    assert out.code == 4, out.stdout + out.stderr
    assert "locked" in out.stderr and "--lock-timeout" in out.stderr
    assert project.db_path.read_bytes() == before
    assert not list(project.db_path.parent.glob("*.compact-*"))


def test_db_commands_have_help_with_an_example(cli: Callable[..., Any]) -> None:
    for command in ("inspect", "doctor", "rebuild", "compact"):
        out = cli("db", command, "--help")
        assert out.code == 0
        assert "Example: consist db " + command in out.stdout
