"""``consist runs`` / ``consist show`` and the conventions every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fixture's type; tests/core has a conftest module too
    from conftest import Project


def test_version_and_help(cli) -> None:
    out = cli("--version")
    assert out.code == 0 and out.stdout.startswith("consist ")
    out = cli("runs", "--help")
    assert out.code == 0
    assert "Example: consist runs" in out.stdout
    assert "--db-path" in out.stdout and "--json" in out.stdout


def test_runs_lists_newest_first_with_filters(cli, project: Project) -> None:
    out = cli("runs", *project.args(), "--json")
    assert out.code == 0, out.stderr
    rows = out.json()
    ids = [r["id"] for r in rows]
    assert ids[0] == project.runs["d2040"]
    assert {project.runs[k] for k in ("first", "hit", "scaled", "failed")} <= set(ids)
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)

    households = cli("runs", *project.args(), "--json", "--model", "households").json()
    assert [r["id"] for r in households] == [
        project.runs["scaled"],
        project.runs["hit"],
        project.runs["first"],
    ]
    assert households[1]["cache_hit"] and households[1]["cache_source"] == project.runs["first"]

    failed = cli("runs", *project.args(), "--json", "--status", "failed").json()
    assert [r["id"] for r in failed] == [project.runs["failed"]]
    tagged = cli("runs", *project.args(), "--json", "--tag", "scaled").json()
    assert [r["id"] for r in tagged] == [project.runs["scaled"]]
    steps = cli("runs", *project.args(), "--json", "--scenario", "baseline").json()
    assert {r["id"] for r in steps} == {project.runs["d2030"], project.runs["d2040"]}
    assert [r["id"] for r in cli("runs", *project.args(), "--json", "--year", "2030").json()] == [
        project.runs["d2030"]
    ]
    assert len(cli("runs", *project.args(), "--json", "--limit", "2").json()) == 2
    assert cli("runs", *project.args(), "--json", "--since", "1h").json() == rows
    assert cli("runs", *project.args(), "--json", "--since", "2999-01-01").json() == []


def test_runs_table_and_global_options_before_the_command(cli, project: Project) -> None:
    out = cli("--db-path", str(project.db_path), "runs", "--model", "broken")
    assert out.code == 0, out.stderr
    assert project.runs["failed"] in out.stdout and "failed" in out.stdout


def test_bad_filters_exit_2_with_one_line(cli, project: Project) -> None:
    out = cli("runs", *project.args(), "--status", "done")
    assert out.code == 2 and "--status 'done'" in out.stderr
    out = cli("runs", *project.args(), "--since", "yesterday")
    assert out.code == 2 and "--since 'yesterday'" in out.stderr
    out = cli("runs", *project.args(), "--mount", "nopath")
    assert out.code == 2 and "NAME=PATH" in out.stderr
    assert "Traceback" not in out.stderr


def test_store_discovery_and_missing_store(cli, project: Project, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.duckdb"
    out = cli("runs", "--db-path", str(missing))
    assert out.code == 3
    assert str(missing) in out.stderr and "--db-path" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    out = cli("runs", "--json", env={"CONSIST_DB": str(project.db_path)})
    assert out.code == 0 and len(out.json()) >= 6
    not_consist = tmp_path / "notes.txt"
    not_consist.write_text("a,b\n")
    out = cli("runs", "--db-path", str(not_consist))
    assert out.code == 3 and "not a DuckDB database" in out.stderr


def test_show_reports_config_artifacts_and_reachability(cli, project: Project) -> None:
    out = cli("show", project.runs["first"], *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["run"]["model"] == "households" and data["config"] == {"scale": 1}
    (inp,) = data["inputs"]
    (outp,) = data["outputs"]
    assert inp["key"] == "households" and inp["reachable"]
    assert outp["key"] == "persons" and outp["driver"] == "parquet" and outp["reachable"]
    Path(outp["path"]).unlink()
    again = cli("show", project.runs["first"], *project.args(), "--json").json()
    assert again["outputs"][0]["reachable"] is False
    hit = cli("show", project.runs["hit"], *project.args(), "--json").json()
    assert hit["run"]["cache_hit"] and hit["run"]["cache_source"] == project.runs["first"]
    table = cli("show", project.runs["failed"], *project.args())
    assert "solver diverged" in table.stdout


def test_show_unknown_run_exits_5(cli, project: Project) -> None:
    out = cli("show", "no-such-run", *project.args())
    assert out.code == 5 and "no run 'no-such-run'" in out.stderr


def test_read_commands_write_nothing(cli, project: Project) -> None:
    before = sorted(p for p in project.root.rglob("*") if ".git" not in p.parts)
    stamps = {p: p.stat().st_mtime_ns for p in before if p.is_file()}
    assert cli("runs", *project.args()).code == 0
    assert cli("show", project.runs["d2030"], *project.args()).code == 0
    after = sorted(p for p in project.root.rglob("*") if ".git" not in p.parts)
    assert after == before
    assert {p: p.stat().st_mtime_ns for p in after if p.is_file()} == stamps


def test_real_subprocess_runs_and_show(run_consist, project: Project) -> None:
    out = run_consist("runs", *project.args(), "--json")
    assert out.code == 0, out.stderr
    assert project.runs["first"] in {r["id"] for r in out.json()}
    out = run_consist("show", project.runs["scaled"], *project.args())
    assert out.code == 0 and "scale" in out.stdout
    out = run_consist("show", "nope", *project.args())
    assert out.code == 5 and out.stderr.startswith("consist: no run 'nope'")
    out = run_consist("runs")  # no store in the working directory
    assert out.code == 3 and "Traceback" not in out.stderr


def test_run_dir_defaults_to_the_journal_next_to_the_store(cli, project: Project) -> None:
    # The project keeps provenance.duckdb at its root and the journal in runs/:
    # without --run-dir, show still finds the run's config in runs/consist_runs.
    out = cli("show", project.runs["scaled"], "--db-path", str(project.db_path), "--json")
    assert out.code == 0, out.stderr
    assert out.json()["config"] == {"scale": 2}
    assert out.json()["outputs"][0]["reachable"]


def _all_commands(app) -> list[list[str]]:
    """Every command path of the app, e.g. ['runs'], ['db', 'doctor']."""
    import typer.main

    group = typer.main.get_command(app)
    paths = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            paths.extend([name, sub] for sub in subcommands)
        else:
            paths.append([name])
    return paths


def test_every_command_has_help_with_an_example_and_the_store_options(cli) -> None:
    from consist.cli.commands import build_app

    paths = _all_commands(build_app())
    assert len(paths) >= 22  # 15 commands and 7 under `db`
    for path in paths:
        out = cli(*path, "--help")
        assert out.code == 0, path
        assert f"Example: consist {path[0]}" in out.stdout, path
        assert "--db-path" in out.stdout and "--json" in out.stdout, path


def test_a_store_locked_by_another_process_exits_4_in_one_line(
    run_consist, project: Project, children
) -> None:
    from _support import Child

    holder = Child(
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute('CREATE TABLE IF NOT EXISTS held (x INT)')\n"
        "print('holding', flush=True)\n"
        "time.sleep(60)\n",
        str(project.db_path),
    )
    children.append(holder)
    holder.wait_for("holding")
    out = run_consist("runs", *project.args(), "--lock-timeout", "1")
    assert out.code == 4, out.stderr
    assert "locked by another process" in out.stderr and "--lock-timeout" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
