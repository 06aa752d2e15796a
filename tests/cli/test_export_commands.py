"""``consist export prov|rocrate|openlineage`` on the project store of ``conftest.py``."""

from __future__ import annotations

import json
from pathlib import Path

import prov
from prov.model import ProvActivity, ProvGeneration, ProvUsage
from rocrate.rocrate import ROCrate

from consist.core.exports.prov_export import RUN_NS


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_prov_of_a_scenario_reads_back(project, cli, tmp_path) -> None:
    out = tmp_path / "prov.json"
    result = cli("export", "prov", *project.args(), "--scenario", "baseline", "--out", str(out))
    assert result.code == 0, result.stderr
    assert str(out) in result.stdout and "scenario baseline" in result.stdout
    doc = prov.read(str(out), format="json")
    activities = {r.identifier.uri for r in doc.get_records(ProvActivity)}
    assert activities == {RUN_NS + project.runs[k] for k in ("scenario", "d2030", "d2040")}
    generated = {(g.args[1].uri) for g in doc.get_records(ProvGeneration)}
    assert generated == {RUN_NS + project.runs["d2030"], RUN_NS + project.runs["d2040"]}
    used_by = {u.args[0].uri for u in doc.get_records(ProvUsage)}
    assert {RUN_NS + project.runs["d2030"], RUN_NS + project.runs["d2040"]} <= used_by


def test_prov_turtle_with_repeated_runs_and_json_output(project, cli, tmp_path) -> None:
    out = tmp_path / "p.ttl"
    result = cli(
        "export",
        "prov",
        *project.args(),
        "--run",
        project.runs["first"],
        "--run",
        project.runs["failed"],
        "--format",
        "ttl",
        "--out",
        str(out),
        "--json",
    )
    assert result.code == 0, result.stderr
    assert result.json() == {
        "path": str(out),
        "format": "PROV (ttl)",
        "run_ids": [project.runs["first"], project.runs["failed"]],
    }
    from prov.model import ProvDocument

    doc = ProvDocument.deserialize(str(out), format="rdf", rdf_format="turtle")
    activities = {r.identifier.uri for r in doc.get_records(ProvActivity)}
    assert activities == {RUN_NS + project.runs["first"], RUN_NS + project.runs["failed"]}
    assert result.stderr == ""  # no library deprecation noise


def test_rocrate_zip_without_files(project, cli, tmp_path) -> None:
    out = tmp_path / "crate.zip"
    result = cli(
        "export",
        "rocrate",
        *project.args(),
        "--run",
        project.runs["first"],
        "--no-files",
        "--out",
        str(out),
    )
    assert result.code == 0, result.stderr
    crate = ROCrate(out)
    action = crate.dereference(f"#run-{project.runs['first']}")
    assert action is not None and action.type == "CreateAction"
    assert action["instrument"]["name"] == "households"
    result_files = action["result"] if isinstance(action["result"], list) else [action["result"]]
    assert [f["name"] for f in result_files] == ["persons"]
    assert all(f.id.startswith("file://") for f in result_files)


def test_rocrate_directory_with_files(project, cli, tmp_path) -> None:
    out = tmp_path / "crate"
    result = cli("export", "rocrate", *project.args(), "--scenario", "baseline", "--out", str(out))
    assert result.code == 0, result.stderr
    copied = [p for p in listing(out) if p.startswith("files/") and p.endswith(".parquet")]
    assert len(copied) == 3  # persons (consumed), trips 2030 and trips 2040
    assert ROCrate(out).mainEntity.id == "consist-workflow.json"


def test_openlineage_events_file(project, cli, tmp_path) -> None:
    out = tmp_path / "events.jsonl"
    result = cli(
        "export",
        "openlineage",
        *project.args(),
        "--run",
        project.runs["failed"],
        "--run",
        project.runs["first"],
        "--namespace",
        "team",
        "--out",
        str(out),
    )
    assert result.code == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    # Oldest run first: the first households run precedes the failed run.
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("households", "START"),
        ("households", "COMPLETE"),
        ("broken", "START"),
        ("broken", "FAIL"),
    ]
    assert {e["job"]["namespace"] for e in events} == {"team"}


def test_usage_errors_exit_2_and_write_nothing(project, cli, tmp_path) -> None:
    tmp_path = tmp_path / "out"  # the project lives in tmp_path / "model"
    (tmp_path / "adir").mkdir(parents=True)
    run = project.runs["first"]
    cases = [
        (["prov", "--out", str(tmp_path / "p.json")], "--run RUN_ID"),
        (
            ["prov", "--run", run, "--scenario", "baseline", "--out", str(tmp_path / "p")],
            "not both",
        ),
        (["prov", "--run", run, "--format", "xml", "--out", str(tmp_path / "p")], "format must"),
        (["prov", "--run", run, "--out", str(tmp_path / "adir")], "is a directory"),
        (["rocrate", "--run", run, "--out", str(tmp_path / "adir" / "x" / "c")], "does not exist"),
        (
            ["openlineage", "--run", run, "--url", "ftp://x", "--out", str(tmp_path / "e")],
            "url must be an http",
        ),
    ]
    for args, message in cases:
        result = cli("export", *args, *project.args())
        assert result.code == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert listing(tmp_path) == ["adir"]


def test_unknown_run_or_scenario_exits_5(project, cli, tmp_path) -> None:
    tmp_path = tmp_path / "out"  # the project lives in tmp_path / "model"
    tmp_path.mkdir()
    result = cli(
        "export",
        "prov",
        *project.args(),
        "--run",
        project.runs["first"],
        "--run",
        "nope",
        "--out",
        str(tmp_path / "p.json"),
    )
    assert result.code == 5 and "no run 'nope'" in result.stderr
    result = cli(
        "export",
        "openlineage",
        *project.args(),
        "--scenario",
        "nope",
        "--out",
        str(tmp_path / "e.jsonl"),
    )
    assert result.code == 5 and "no scenario 'nope'" in result.stderr
    assert listing(tmp_path) == []


def test_real_subprocess_export(project, run_consist, tmp_path) -> None:
    out = tmp_path / "p.provn"
    result = run_consist(
        "export",
        "prov",
        *project.args(),
        "--run",
        project.runs["d2040"],
        "--format",
        "provn",
        "--out",
        str(out),
    )
    assert result.code == 0, result.stderr
    assert f"activity(consist_run:{project.runs['d2040']}" in out.read_text()
