"""``consist lineage``, ``consist diff`` and ``consist why`` on the shared project store.

In-process through typer's CliRunner (``cli``) and, for ``lineage`` and
``why``, through a real ``python -m consist`` subprocess (``run_consist``):
output content, the ``--json`` shapes, exit codes and error paths, and that
these read commands leave the store untouched.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from consist import Tracker

if TYPE_CHECKING:  # the fixture's type; tests/core has a conftest module too
    from conftest import Project


def prepare_again(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled (the project's ``prepare``, from this module)."""
    return households.assign(persons=households["size"] * scale)


def lineage_spine(node: dict) -> list[dict]:
    """Artifact nodes along the first input of each producing run, ``node`` first."""
    nodes = [node]
    while nodes[-1].get("producing_run") and nodes[-1]["producing_run"]["inputs"]:
        nodes.append(nodes[-1]["producing_run"]["inputs"][0])
    return nodes


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_state(project: Project) -> dict[str, str]:
    """Digests of the DuckDB file and of every file under the run directory."""
    state = {"db": digest(project.db_path)}
    for path in sorted(project.run_dir.rglob("*")):
        if path.is_file():
            state[str(path)] = digest(path)
    return state


# --------------------------------------------------------------------------- #
# lineage
# --------------------------------------------------------------------------- #


def test_lineage_tree_of_an_artifact_key(cli, project: Project) -> None:
    out = cli("lineage", "trips", *project.args())
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    runs = project.runs
    # The newest `trips` is the 2040 step's; up through 2030, households, the csv.
    assert lines[0].startswith("trips  ") and f"[run {runs['d2040']}]" in lines[0]
    assert "demand_2040 (year=2040)" in lines[0]
    assert "persons (trips)" in lines[1] and f"[run {runs['d2030']}]" in lines[1]
    assert "persons  " in lines[2] and f"[run {runs['first']}]" in lines[2]
    assert "households" in lines[3] and "data/households.csv" in lines[3]
    assert "(raw input)" in lines[3]
    assert len(lines) == 4
    # A pipe (CliRunner is not a terminal) never wraps a URI across lines.
    assert all(line.strip() for line in lines)


def test_lineage_json_shape(cli, project: Project) -> None:
    out = cli("lineage", "trips", *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["root"] == "artifact" and data["ref"] == "trips" and data["depth"] is None
    nodes = lineage_spine(data["lineage"])
    runs = project.runs
    assert [n["producing_run"]["id"] for n in nodes[:3]] == [
        runs["d2040"],
        runs["d2030"],
        runs["first"],
    ]
    assert [n.get("input_key") for n in nodes] == [None, "persons", "persons", "households"]
    raw = nodes[-1]
    assert raw["producing_run"] is None and raw["uri"].endswith("data/households.csv")
    # households' persons output was reused by the hit: counted, not a producer.
    assert nodes[2]["producing_run"]["cache_hits"] == 1
    # --format json prints the same document.
    assert cli("lineage", "trips", *project.args(), "--format", "json").json() == data
    # By the artifact's id (a UUID string) the tree is the same.
    by_id = cli("lineage", data["lineage"]["id"], *project.args(), "--json").json()
    assert by_id["lineage"] == data["lineage"] and by_id["root"] == "artifact"


def test_lineage_of_a_run(cli, project: Project) -> None:
    runs = project.runs
    data = cli("lineage", runs["d2040"], *project.args(), "--json").json()
    assert data["root"] == "run"
    tree = data["lineage"]
    assert tree["run"]["id"] == runs["d2040"] and tree["run"]["year"] == 2040
    (persons,) = tree["inputs"]
    assert persons["input_key"] == "persons" and persons["key"] == "trips"
    assert persons["producing_run"]["id"] == runs["d2030"]
    assert [n["key"] for n in lineage_spine(persons)] == ["trips", "persons", "households"]

    out = cli("lineage", runs["d2040"], *project.args())
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(runs["d2040"]) and "demand_2040 (year=2040)" in lines[0]
    assert "persons (trips)" in lines[1] and "data/households.csv" in lines[3]

    # A cache hit names the run it was served from; a failed run has no inputs.
    hit = cli("lineage", runs["hit"], *project.args(), "--json").json()["lineage"]
    assert hit["run"]["cache_hit"] is True and hit["run"]["cache_source"] == runs["first"]
    assert hit["inputs"][0]["producing_run"] is None  # the csv
    failed = cli("lineage", runs["failed"], *project.args())
    assert failed.code == 0 and "broken (failed)" in failed.stdout
    assert "(no inputs)" in failed.stdout


def test_lineage_depth(cli, project: Project) -> None:
    data = cli("lineage", "trips", *project.args(), "--json", "--depth", "1").json()
    assert data["depth"] == 1
    root = data["lineage"]
    assert root["producing_run"]["id"] == project.runs["d2040"]
    (child,) = root["producing_run"]["inputs"]
    assert child["truncated"] is True and "producing_run" not in child
    zero = cli("lineage", "trips", *project.args(), "--json", "--depth", "0").json()
    assert "producing_run" not in zero["lineage"] and zero["lineage"]["truncated"] is True
    out = cli("lineage", "trips", *project.args(), "--depth", "1")
    assert out.code == 0 and len(out.stdout.splitlines()) == 2
    assert "(more upstream beyond max_depth)" in out.stdout
    run_depth = cli("lineage", project.runs["d2040"], *project.args(), "--depth", "2", "--json")
    persons = run_depth.json()["lineage"]["inputs"][0]["producing_run"]["inputs"][0]
    assert persons["truncated"] is True


def test_lineage_mermaid_and_dot(cli, project: Project) -> None:
    runs = project.runs
    out = cli("lineage", "trips", *project.args(), "--format", "mermaid")
    assert out.code == 0, out.stderr
    text = out.stdout
    assert text.startswith("%% lineage of trips (") and "\nflowchart LR\n" in text
    for run_id in (runs["d2040"], runs["d2030"], runs["first"]):
        assert f"r_{run_id}[" in text and run_id in text  # run ids shown in labels
    assert "households.csv" in text and '-->|"persons"|' in text
    dot = cli("lineage", runs["d2040"], *project.args(), "--format", "dot", "--depth", "1")
    assert dot.code == 0, dot.stderr
    assert dot.stdout.startswith("digraph lineage {\n    // lineage of run " + runs["d2040"])
    assert dot.stdout.rstrip().endswith("}") and f'"r:{runs["d2030"]}"' not in dot.stdout
    as_json = cli("lineage", "trips", *project.args(), "--format", "mermaid", "--json").json()
    assert as_json["format"] == "mermaid" and as_json["text"] == text
    assert as_json["root"] == "artifact"


def test_lineage_errors(cli, project: Project, tmp_path: Path) -> None:
    out = cli("lineage", "no_such_thing", *project.args())
    assert out.code == 5
    assert "no artifact or run 'no_such_thing'" in out.stderr and out.stderr.count("\n") == 1
    assert out.stdout == ""
    out = cli("lineage", "trips", *project.args(), "--format", "svg")
    assert out.code == 2 and "--format 'svg'" in out.stderr and "mermaid" in out.stderr
    out = cli("lineage", "trips", *project.args(), "--depth", "-1")
    assert out.code == 2
    out = cli("lineage", "trips", "--db-path", str(tmp_path / "none.duckdb"))
    assert out.code == 3 and "Traceback" not in out.stderr


def test_lineage_in_a_subprocess(run_consist, project: Project) -> None:
    out = run_consist("lineage", "trips", *project.args())
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 4 and project.runs["d2040"] in lines[0]
    assert "(raw input)" in lines[3]
    data = run_consist("lineage", project.runs["d2040"], *project.args(), "--json").json()
    assert data["root"] == "run"
    assert data["lineage"]["inputs"][0]["producing_run"]["id"] == project.runs["d2030"]
    mermaid = run_consist("lineage", "persons", *project.args(), "--format", "mermaid")
    assert mermaid.code == 0 and mermaid.stdout.startswith("%% lineage of persons (")
    missing = run_consist("lineage", "nothing", *project.args())
    assert missing.code == 5 and "no artifact or run 'nothing'" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run_consist("lineage", "trips", *project.args(), "--format", "png")
    assert bad.code == 2 and "--format 'png'" in bad.stderr


# --------------------------------------------------------------------------- #
# diff
# --------------------------------------------------------------------------- #


def test_diff_config_and_inputs(cli, project: Project) -> None:
    runs = project.runs
    out = cli("diff", runs["first"], runs["scaled"], *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["run_a"]["id"] == runs["first"] and data["run_b"]["id"] == runs["scaled"]
    assert data["config_source"] == "snapshot" and data["note"] is None
    assert data["config"] == {"scale": {"a": 1, "b": 2, "status": "changed"}}
    assert data["inputs"] == {}  # same csv
    full = cli("diff", runs["first"], runs["scaled"], *project.args(), "--json", "--all").json()
    assert full["inputs"]["households"]["status"] == "equal"

    steps = cli("diff", runs["d2030"], runs["d2040"], *project.args(), "--json").json()
    assert steps["config"] == {"year": {"a": 2030, "b": 2040, "status": "changed"}}
    persons = steps["inputs"]["persons"]
    assert persons["status"] == "changed"
    assert set(persons["a"]) == {"id", "uri", "hash"}
    assert persons["a"]["hash"] != persons["b"]["hash"]
    assert runs["first"] in persons["a"]["uri"] and runs["d2030"] in persons["b"]["uri"]

    # A run without inputs against one with: the input shows as added.
    other = cli("diff", runs["failed"], runs["first"], *project.args(), "--json").json()
    assert other["inputs"]["households"]["status"] == "added"
    assert other["inputs"]["households"]["a"] is None


def test_diff_table(cli, project: Project) -> None:
    runs = project.runs
    out = cli("diff", runs["first"], runs["scaled"], *project.args())
    assert out.code == 0, out.stderr
    assert runs["first"] in out.stdout and runs["scaled"] in out.stdout
    row = next(line for line in out.stdout.splitlines() if "scale" in line and "│" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == ["scale", "1", "2", "changed"]
    assert "inputs: no differences" in out.stdout
    steps = cli("diff", runs["d2030"], runs["d2040"], *project.args())
    assert "persons" in steps.stdout and "blake3:" in steps.stdout
    assert "changed" in steps.stdout


def test_diff_without_a_snapshot_falls_back_to_facets(cli, project: Project) -> None:
    runs = project.runs
    snapshot = project.run_dir / "consist_runs" / f"{runs['scaled']}.json"
    assert snapshot.exists()
    snapshot.unlink()
    out = cli("diff", runs["first"], runs["scaled"], *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["config_source"] == "facets" and runs["scaled"] in data["note"]
    assert data["config"] == {}  # no facets were recorded
    text = cli("diff", runs["first"], runs["scaled"], *project.args())
    assert "note:" in text.stdout and "config facets" in text.stdout


def test_diff_errors(cli, project: Project) -> None:
    out = cli("diff", project.runs["first"], "nope", *project.args())
    assert out.code == 5 and "no run 'nope'" in out.stderr and out.stdout == ""
    out = cli("diff", "nope", project.runs["first"], *project.args(), "--json")
    assert out.code == 5 and "no run 'nope'" in out.stderr
    out = cli("diff", project.runs["first"], *project.args())
    assert out.code == 2


# --------------------------------------------------------------------------- #
# why
# --------------------------------------------------------------------------- #


def test_why_a_config_miss(cli, project: Project) -> None:
    runs = project.runs
    out = cli("why", runs["scaled"], *project.args(), "--json")
    assert out.code == 0, out.stderr
    data = out.json()
    assert data["run"]["id"] == runs["scaled"] and data["verdict"] == "miss"
    # The newest completed households run before it was the hit.
    assert data["nearest_run"]["id"] == runs["hit"]
    assert data["differences"] == [
        {"section": "config", "key": "scale", "old": 1, "new": 2, "change": "changed"}
    ]
    assert data["summary"] == "config: scale"
    assert data["explanation"]["nearest_run_id"] == runs["hit"]

    text = cli("why", runs["scaled"], *project.args()).stdout
    assert "cache miss: config: scale" in text
    assert f"compared with {runs['hit']}" in text
    row = next(line for line in text.splitlines() if "scale" in line and "│" in line)
    assert [c.strip() for c in row.strip("│ ").split("│")] == [
        "config",
        "scale",
        "1",
        "2",
        "changed",
    ]
    assert f"next: consist diff {runs['hit']} {runs['scaled']}" in text


def test_why_hits_first_runs_and_forced_runs(cli, project: Project) -> None:
    runs = project.runs
    hit = cli("why", runs["hit"], *project.args(), "--json").json()
    assert hit["verdict"] == "hit" and hit["cache_source"]["id"] == runs["first"]
    assert hit["differences"] == [] and hit["nearest_run"] is None
    text = cli("why", runs["hit"], *project.args()).stdout
    assert f"cache hit: served from {runs['first']}" in text

    first = cli("why", runs["first"], *project.args(), "--json").json()
    assert first["verdict"] == "first_run"
    assert first["summary"] == "no earlier completed run of model 'households'"
    failed = cli("why", runs["failed"], *project.args())
    assert failed.code == 0
    assert (
        "failed" in failed.stdout
        and "first run: no earlier completed run of model 'broken'" in (failed.stdout)
    )
    scenario = cli("why", "baseline", *project.args(), "--json").json()
    assert scenario["verdict"] == "overwrite" and "cache_mode='overwrite'" in scenario["summary"]


def test_why_names_code_files_and_input_digests(cli, project: Project) -> None:
    """A re-run after editing the model's code and its input data: both are named."""
    (project.root / "model.py").write_text("def simulate():\n    return 2\n")
    households = project.root / "data" / "households.csv"
    households.write_text("hh_id,size\n1,2\n2,5\n")
    tracker = Tracker(project.run_dir, db_path=project.db_path, project_root=project.root)
    try:
        rerun = tracker.run(
            fn=prepare_again,
            name="households",
            config={"scale": 2},
            inputs={"households": households},
            outputs=["persons"],
        )
    finally:
        tracker.close()
    assert not rerun.cache_hit
    data = cli("why", rerun.run_id, *project.args(), "--json").json()
    assert data["verdict"] == "miss" and data["nearest_run"]["id"] == project.runs["scaled"]
    found = {(d["section"], d["key"]): d for d in data["differences"]}
    assert ("code file", "model.py") in found
    assert found[("code file", "model.py")]["change"] == "changed"
    assert ("inputs", "households") in found
    change = found[("inputs", "households")]
    assert change["old"] != change["new"] and change["change"] == "changed"
    assert not any(section == "config" for section, _ in found)
    text = cli("why", rerun.run_id, *project.args()).stdout
    assert "model.py" in text and "code file" in text and "households" in text
    # Digests are cut to 12 hex digits in the table (the JSON keeps them whole).
    algo, hexpart = change["new"].split(":")
    assert f"{algo}:{hexpart[:12]}" in text and hexpart not in text


def test_why_a_new_commit(cli, project: Project) -> None:
    """A re-run after committing a change: HEAD is named, with the git command for its files."""
    (project.root / "model.py").write_text("def simulate():\n    return 3\n")
    subprocess.run(["git", "commit", "-qam", "tune"], cwd=project.root, check=True)
    tracker = Tracker(project.run_dir, db_path=project.db_path, project_root=project.root)
    try:
        rerun = tracker.run(
            fn=prepare_again,
            name="households",
            config={"scale": 2},
            inputs={"households": project.root / "data" / "households.csv"},
            outputs=["persons"],
        )
    finally:
        tracker.close()
    data = cli("why", rerun.run_id, *project.args(), "--json").json()
    head = next(d for d in data["differences"] if d["key"] == "head")
    assert head["section"] == "code" and head["old"] != head["new"]
    assert "cache lookup" not in data["summary"]
    text = cli("why", rerun.run_id, *project.args()).stdout
    assert f"code: git diff --stat {head['old'][:12]} {head['new'][:12]}" in text


def test_why_a_run_with_caching_off(cli, tmp_path: Path) -> None:
    """A run started by hand outside a git repository has no code identity: no cache."""
    where = tmp_path / "plain"
    where.mkdir()
    tracker = Tracker(where / "runs", db_path=where / "p.duckdb", project_root=where)
    try:
        with tracker.start_run("manual_1", model="manual", config={"a": 1}):
            tracker.log_dataframe(pd.DataFrame({"x": [1]}), key="table")
    finally:
        tracker.close()
    args = ["--db-path", str(where / "p.duckdb"), "--run-dir", str(where / "runs")]
    data = cli("why", "manual_1", *args, "--json").json()
    assert data["verdict"] == "uncached" and data["explanation"] is None
    assert data["summary"].startswith("caching was off for this run: no code identity")
    text = cli("why", "manual_1", *args).stdout
    assert "not cached: caching was off for this run" in text


def test_why_errors(cli, project: Project, tmp_path: Path) -> None:
    out = cli("why", "nope", *project.args())
    assert out.code == 5 and "no run 'nope'" in out.stderr and "consist runs" in out.stderr
    assert out.stderr.count("\n") == 1 and out.stdout == ""
    out = cli("why", *project.args())
    assert out.code == 2
    out = cli("why", "x", "--db-path", str(tmp_path / "missing.duckdb"))
    assert out.code == 3


def test_why_in_a_subprocess(run_consist, project: Project) -> None:
    runs = project.runs
    out = run_consist("why", runs["scaled"], *project.args())
    assert out.code == 0, out.stderr
    assert "cache miss: config: scale" in out.stdout and runs["hit"] in out.stdout
    data = run_consist("why", runs["hit"], *project.args(), "--json").json()
    assert data["verdict"] == "hit" and data["cache_source"]["id"] == runs["first"]
    missing = run_consist("why", "nope", *project.args())
    assert missing.code == 5 and "no run 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


# --------------------------------------------------------------------------- #
# read-only
# --------------------------------------------------------------------------- #


def test_read_commands_change_nothing(cli, project: Project) -> None:
    before = store_state(project)
    runs = project.runs
    for args in (
        ("lineage", "trips"),
        ("lineage", runs["d2040"], "--format", "dot"),
        ("diff", runs["first"], runs["scaled"]),
        ("why", runs["scaled"]),
        ("why", runs["hit"], "--json"),
    ):
        assert cli(*args, *project.args()).code == 0
    assert store_state(project) == before


def test_help_has_an_example(cli) -> None:
    for name in ("lineage", "diff", "why"):
        out = cli(name, "--help")
        assert out.code == 0 and f"Example: consist {name}" in out.stdout
        assert "--json" in out.stdout
