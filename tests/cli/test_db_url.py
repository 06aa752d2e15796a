"""The command line on a PostgreSQL store: ``--db-url`` and ``CONSIST_DB_URL`` (team mode).

Each test records a small history (as the DuckDB project of conftest: a
``households`` step executed, hit and re-executed with another scale, a
failing step, and scenario ``baseline`` with two demand steps) into a fresh
database of the session's throwaway server, then points the command at it.
Read commands must give the same answers as on DuckDB; commands built on
features the PostgreSQL engine does not support yet must end with one line
naming ``--db-url`` (exit 2), never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from _support import make_model_project
from consist import Tracker


def prepare(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled."""
    return households.assign(persons=households["size"] * scale)


def demand(persons: pd.DataFrame, year: int) -> pd.DataFrame:
    """Trips per household for a year."""
    return persons.assign(trips=persons["persons"] * (year - 2000) // 10)


def broken(scale: int = 1) -> None:
    """A step that fails."""
    raise RuntimeError("solver diverged")


@dataclass
class TeamProject:
    root: Path
    url: str
    run_dir: Path
    runs: dict[str, str] = field(default_factory=dict)

    def args(self) -> list[str]:
        return ["--db-url", self.url, "--run-dir", str(self.run_dir)]


def record(root: Path, tracker: Tracker) -> dict[str, str]:
    """The history of the module docstring, recorded through ``tracker``."""
    households = root / "data" / "households.csv"
    kwargs: dict[str, Any] = {
        "fn": prepare,
        "name": "households",
        "inputs": {"households": households},
        "outputs": ["persons"],
    }
    first = tracker.run(config={"scale": 1}, tags=["base"], **kwargs)
    hit = tracker.run(config={"scale": 1}, tags=["base"], **kwargs)
    assert hit.cache_hit
    scaled = tracker.run(config={"scale": 2}, tags=["scaled"], **kwargs)
    with pytest.raises(Exception, match="solver diverged"):
        tracker.run(fn=broken, name="broken", config={"scale": 3})
    failed = tracker.find_latest_run(model="broken")
    with tracker.scenario("baseline", config={"policy": "none"}) as sc:
        d2030 = sc.run(
            fn=demand,
            name="demand_2030",
            year=2030,
            config={"year": 2030},
            inputs={"persons": first.outputs["persons"]},
            outputs=["trips"],
        )
        d2040 = sc.run(
            fn=demand,
            name="demand_2040",
            year=2040,
            config={"year": 2040},
            inputs={"persons": d2030.outputs["trips"]},
            outputs=["trips"],
        )
    return {
        "first": first.run_id,
        "hit": hit.run_id,
        "scaled": scaled.run_id,
        "failed": failed.id,
        "d2030": d2030.run_id,
        "d2040": d2040.run_id,
    }


@pytest.fixture
def team(tmp_path: Path, pg_url: str) -> TeamProject:
    root = make_model_project(tmp_path / "model")
    tracker = Tracker(root / "runs", db_url=pg_url, project_root=root)
    try:
        runs = record(root, tracker)
    finally:
        tracker.close()
    return TeamProject(root=root, url=pg_url, run_dir=root / "runs", runs=runs)


NO_ENV = {"CONSIST_DB": "", "CONSIST_DB_URL": "", "CONSIST_RUN_DIR": ""}


def no_traceback(out: Any) -> None:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert len(out.stderr.strip().splitlines()) <= 1, out.stderr


# --------------------------------------------------------------------------- #
# Read commands on PostgreSQL
# --------------------------------------------------------------------------- #


def test_read_commands_answer_from_postgresql(cli: Callable[..., Any], team: TeamProject) -> None:
    runs, args = team.runs, team.args()

    def ok(*command: str) -> Any:
        out = cli(*command, *args, "--json", env=NO_ENV)
        assert out.code == 0, (command, out.stderr)
        return out.json()

    listed = ok("runs")
    assert {r["id"] for r in listed} == set(runs.values()) | {"baseline"}
    assert [r["id"] for r in ok("runs", "--model", "households")] == [
        runs["scaled"],
        runs["hit"],
        runs["first"],
    ]
    assert [r["id"] for r in ok("runs", "--status", "failed")] == [runs["failed"]]
    assert [r["id"] for r in ok("runs", "--tag", "scaled")] == [runs["scaled"]]
    assert {r["id"] for r in ok("runs", "--scenario", "baseline")} == {
        runs["d2030"],
        runs["d2040"],
    }
    shown = ok("show", runs["first"])
    assert shown["run"]["id"] == runs["first"]
    assert [a["key"] for a in shown["outputs"]] == ["persons"]
    history = ok("history", "households")
    assert runs["first"] in str(history) and runs["scaled"] in str(history)
    lineage = ok("lineage", "trips")
    assert runs["d2040"] in str(lineage) and runs["d2030"] in str(lineage)
    assert "persons" in str(ok("search", "persons"))
    diff = ok("diff", runs["first"], runs["scaled"])
    assert "scale" in str(diff["config"])
    why = ok("why", runs["scaled"])
    assert "scale" in str(why)
    summary = ok("summary")
    assert "households" in str(summary)
    assert [s["id"] for s in ok("scenarios")] == ["baseline"]
    scenario = ok("scenario", "baseline")
    assert runs["d2030"] in str(scenario) and runs["d2040"] in str(scenario)
    artifacts = ok("artifacts")
    assert {"persons", "trips"} <= {a["key"] for a in artifacts}
    preview = ok("preview", "persons")
    assert preview["columns"][:2] == ["hh_id", "size"] and len(preview["rows"]) == 3
    # The table form and the global option before the command.
    out = cli("--db-url", team.url, "runs", "--model", "broken", "--run-dir", str(team.run_dir))
    assert out.code == 0, out.stderr
    assert runs["failed"] in out.stdout and "failed" in out.stdout


def test_consist_db_url_in_a_subprocess_from_the_project_folder(
    run_consist: Callable[..., Any], team: TeamProject
) -> None:
    # No option: CONSIST_DB_URL names the store; the run dir is found under the cwd.
    out = run_consist(
        "show", team.runs["first"], "--json", env={"CONSIST_DB_URL": team.url}, cwd_=team.root
    )
    assert out.code == 0, out.stderr
    data = out.json()
    (persons,) = data["outputs"]
    assert Path(persons["path"]).is_file()  # resolved under the found run dir
    assert Path(persons["path"]).is_relative_to(team.run_dir)
    out = run_consist("db", "inspect", env={"CONSIST_DB_URL": team.url}, cwd_=team.root)
    no_traceback(out)
    if out.code != 0:
        assert out.code == 2 and "--db-url" in out.stderr and "db inspect" in out.stderr


@pytest.mark.slow
def test_ui_serves_a_postgresql_store(team: TeamProject) -> None:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
    env["CONSIST_DB_URL"] = team.url
    proc = subprocess.Popen(
        [sys.executable, "-m", "consist", "ui", "--json", "--run-dir", str(team.run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # {"url": ...} once it listens
        assert line, proc.stderr.read() if proc.poll() is not None else "no output"
        url = json.loads(line)["url"]
        listed = httpx.get(url + "api/runs", timeout=30).json()
        assert listed["total"] == 7
        assert {r["id"] for r in listed["runs"]} == set(team.runs.values()) | {"baseline"}
        scaled = team.runs["scaled"]
        why = httpx.get(url + f"api/runs/{scaled}/explanation", timeout=30).json()
        assert why["differences"][0]["key"] == "scale"
        lineage = httpx.get(url + f"api/runs/{team.runs['d2040']}/lineage", timeout=30)
        assert lineage.status_code == 200 and team.runs["d2030"] in lineage.text
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr


# --------------------------------------------------------------------------- #
# Which store: precedence and conflicts
# --------------------------------------------------------------------------- #


def test_precedence_of_the_store_options_and_variables(
    cli: Callable[..., Any], team: TeamProject, tmp_path: Path
) -> None:
    duck_root = make_model_project(tmp_path / "duck")
    duck_db = duck_root / "provenance.duckdb"
    duck = Tracker(duck_root / "runs", db_path=duck_db, project_root=duck_root)
    households = duck_root / "data" / "households.csv"
    duck_run = duck.run(
        fn=prepare, name="households", config={"scale": 7}, inputs={"households": households}
    ).run_id
    duck.close()

    def ids(*options: str, env: dict[str, str]) -> set[str]:
        out = cli("runs", *options, "--json", env={**NO_ENV, **env})
        assert out.code == 0, (options, env, out.stderr)
        return {r["id"] for r in out.json()}

    team_ids = set(team.runs.values()) | {"baseline"}
    url_env = {"CONSIST_DB_URL": team.url}
    # 1. --db-url beats CONSIST_DB (and CONSIST_DB_URL pointing elsewhere is not read).
    assert ids("--db-url", team.url, env={"CONSIST_DB": str(duck_db)}) == team_ids
    # 2. --db-path beats CONSIST_DB_URL.
    assert ids("--db-path", str(duck_db), env=url_env) == {duck_run}
    # 3. CONSIST_DB_URL beats CONSIST_DB.
    assert ids(env={**url_env, "CONSIST_DB": str(duck_db)}) == team_ids
    # 4. CONSIST_DB alone.
    assert ids(env={"CONSIST_DB": str(duck_db)}) == {duck_run}

    # Both options: refused, naming both, whichever comes first or where they are given.
    for options in (
        ["--db-url", team.url, "--db-path", str(duck_db)],
        ["--db-path", str(duck_db), "--db-url", team.url],
    ):
        out = cli("runs", *options, env=NO_ENV)
        assert out.code == 2, out.stdout
        assert "--db-url and --db-path are both given" in out.stderr
        no_traceback(out)
    out = cli("--db-path", str(duck_db), "runs", "--db-url", team.url, env=NO_ENV)
    assert out.code == 2 and "--db-url and --db-path" in out.stderr

    help_text = cli("runs", "--help").stdout
    assert "--db-url" in help_text and "CONSIST_DB_URL" in help_text
    assert "CONSIST_DB_URL" in cli("--help").stdout


def test_bad_urls_and_duckdb_only_options_are_one_line_errors(
    cli: Callable[..., Any], team: TeamProject, tmp_path: Path
) -> None:
    cases = [
        (["--db-url", "mysql://u@h/db"], 2, "--db-url: mysql:// is not supported"),
        (["--db-url", "postgresql://u@h"], 2, "--db-url names no database"),
        ([], 2, "CONSIST_DB_URL"),  # with a bad CONSIST_DB_URL, below
        (["--db-url", team.url, "--lock-timeout", "5"], 2, "drop --lock-timeout"),
    ]
    for options, code, message in cases:
        env = {**NO_ENV, "CONSIST_DB_URL": "sqlite:///x.db"} if not options else NO_ENV
        out = cli("runs", *options, env=env)
        assert out.code == code, (options, out.stderr)
        assert message in out.stderr, out.stderr
        no_traceback(out)
    # An unreachable server (a closed port): exit 3, the URL without its password.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = cli("runs", "--db-url", f"postgresql://me:hunter2@127.0.0.1:{port}/db", env=NO_ENV)
    assert out.code == 3, out.stderr
    assert "cannot reach the PostgreSQL store" in out.stderr and "--db-url" in out.stderr
    assert "hunter2" not in out.stderr and "me:***@" in out.stderr
    no_traceback(out)
    assert not list(tmp_path.rglob("*.duckdb"))  # no DuckDB file was made anywhere


# --------------------------------------------------------------------------- #
# Commands not supported on PostgreSQL yet
# --------------------------------------------------------------------------- #


def _supported(team: TeamProject, call: Callable[[Tracker], Any], write: bool) -> bool:
    """Whether the tracker supports ``call`` on this PostgreSQL store (probe, read-only)."""
    tracker = Tracker(team.run_dir, db_url=team.url, project_root=team.root, read_only=not write)
    try:
        call(tracker)
    except NotImplementedError:
        return False
    except Exception:
        return True  # supported, refused for another reason
    finally:
        tracker.close()
    return True


def test_commands_not_ported_yet_end_with_one_line_naming_db_url(
    cli: Callable[..., Any], team: TeamProject, tmp_path: Path
) -> None:
    shard = tmp_path / "shard"
    # db rebuild builds a DuckDB file from the journal: refused with a URL, nothing written.
    out = cli("db", "rebuild", "--out", str(tmp_path / "new.duckdb"), *team.args(), env=NO_ENV)
    assert out.code == 2, out.stdout
    assert "`consist db rebuild` is not supported yet with a PostgreSQL store" in out.stderr
    assert "--db-url" in out.stderr and "--db-path" in out.stderr
    no_traceback(out)
    assert not (tmp_path / "new.duckdb").exists()
    # The tracker-backed ones: the CLI says so exactly when the tracker refuses the
    # feature on PostgreSQL (other helpers port them); never a traceback.
    commands = [
        (["db", "inspect"], lambda t: t.store_report(), False),
        (["db", "doctor"], lambda t: t.doctor(), False),
        (["db", "compact"], lambda t: t.compact_store(), True),
        (
            ["db", "export", team.runs["d2040"], "--out", str(shard)],
            lambda t: t.export_runs(team.runs["d2040"], tmp_path / "probe_shard"),
            False,
        ),
        (["validate"], lambda t: t.validate_artifacts(), False),
        (
            ["views", "create", "v_persons", "--schema-id", "blake3:none"],
            lambda t: t.create_grouped_view("v_probe", schema_id="blake3:none"),
            True,
        ),
    ]
    refused: list[str] = []
    for command, probe, write in commands:
        expected_refusal = not _supported(team, probe, write)
        out = cli(*command, *team.args(), env=NO_ENV)
        no_traceback(out)
        name = " ".join(command[:2] if command[0] in ("db", "views") else command[:1])
        if expected_refusal:
            refused.append(name)
            assert out.code == 2, (command, out.stdout, out.stderr)
            assert f"`consist {name}` is not supported yet with a PostgreSQL store" in out.stderr
            assert "--db-url" in out.stderr and "--db-path FILE" in out.stderr
            assert team.url.split("@")[-1] in out.stderr  # which store
        else:
            assert "not supported yet" not in out.stderr, (command, out.stderr)
    if "db export" in refused:
        assert not shard.exists()  # refused before anything was written
    # The store is unchanged by the refusals.
    reader = Tracker(team.run_dir, db_url=team.url, project_root=team.root, read_only=True)
    try:
        assert len(reader.find_runs(limit=100)) == 7
    finally:
        reader.close()


def test_a_lock_timeout_on_postgresql_names_the_store_not_lock_timeout(team: TeamProject) -> None:
    from consist.cli.errors import LOCKED, CliError
    from consist.cli.session import Session
    from consist.cli.store_access import StoreOptions
    from consist.core.store.connection import StoreLockTimeout

    session = Session(StoreOptions(db_url=team.url, run_dir=str(team.run_dir)))
    try:
        session.tracker()  # opens the store: the session knows it is PostgreSQL
        with pytest.raises(CliError) as caught, session.guard():
            raise StoreLockTimeout("another session kept a table locked\nfor 120 s")
    finally:
        session.close()
    assert caught.value.code == LOCKED
    message = caught.value.message
    assert "another session kept a table locked for 120 s" in message
    assert "--db-url" in message and "--lock-timeout" not in message
