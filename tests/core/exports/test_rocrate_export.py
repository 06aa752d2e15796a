"""RO-Crate export: crates read back with ``rocrate``; one CreateAction per run with its files."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rocrate.rocrate import ROCrate

from consist import Tracker

WFRUN = {"https://w3id.org/ro/wfrun/process/0.5", "https://w3id.org/ro/wfrun/workflow/0.5"}


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def actions(crate: ROCrate) -> dict[str, Any]:
    return {e.id: e for e in crate.get_entities() if "CreateAction" in as_list(e.type)}


def ref_id(value: Any) -> str:
    """The id of a reference: an entity of the crate, or a plain id outside it."""
    if isinstance(value, dict):
        return value["@id"]
    return value if isinstance(value, str) else value.id


def ids(value: Any) -> set[str]:
    return {ref_id(e) for e in as_list(value)}


def file_for(crate: ROCrate, artifact: Any) -> Any:
    found = [e for e in crate.get_entities() if e.get("identifier") == f"urn:uuid:{artifact.id}"]
    assert len(found) == 1, artifact.key
    return found[0]


def test_chain_crate_has_one_action_per_run_with_its_files(recorded, tmp_path) -> None:
    out = recorded.tracker.export_rocrate(recorded.chain, tmp_path / "crate")
    assert out == tmp_path / "crate" and (out / "ro-crate-metadata.json").is_file()
    crate = ROCrate(out)
    found = actions(crate)
    run_actions = {f"#run-{recorded.runs[k]}": k for k in ("clean", "features", "predict")}
    assert set(found) == set(run_actions) | {"#workflow-run"}
    tracker = recorded.tracker
    for action_id, label in run_actions.items():
        action = found[action_id]
        run = tracker.get_run(recorded.runs[label])
        inputs, outputs = recorded.inputs(label), recorded.outputs(label)
        assert ids(action["object"]) == {file_for(crate, a).id for a in inputs.values()}
        assert ids(action["result"]) == {file_for(crate, a).id for a in outputs.values()}
        assert action["instrument"].type == "SoftwareApplication"
        assert action["instrument"]["name"] == label
        assert ref_id(action["actionStatus"]) == "http://schema.org/CompletedActionStatus"
        assert action["startTime"] == run.created_at.isoformat()
        assert action["endTime"] == run.ended_at.isoformat()
        assert action["consistRunId"] == run.id
        for art in [*inputs.values(), *outputs.values()]:
            entity = file_for(crate, art)
            # Copied into the crate, byte for byte, under files/<artifact id>/.
            assert entity.id.startswith(f"files/{art.id}/")
            copied = out / entity.id
            assert copied.read_bytes() == Path(tracker.paths.resolve_uri(art.uri)).read_bytes()
            assert entity["consistDigest"] == art.hash
            assert entity["contentSize"] == str(art.size_bytes)
            assert entity["name"] == art.key
    # The workflow-level action: inputs nobody in the selection made, outputs it made.
    workflow_action = found["#workflow-run"]
    raw = recorded.inputs("clean")["raw"]
    made = [recorded.outputs(k) for k in ("clean", "features", "predict")]
    assert ids(workflow_action["object"]) == {file_for(crate, raw).id}
    assert ids(workflow_action["result"]) == {
        file_for(crate, a).id for outputs in made for a in outputs.values()
    }
    assert workflow_action["instrument"] is crate.mainEntity


def test_crate_declares_the_workflow_run_profiles(recorded, tmp_path) -> None:
    crate = ROCrate(recorded.tracker.export_rocrate(recorded.chain, tmp_path / "crate"))
    conforms = ids(crate.root_dataset["conformsTo"])
    assert conforms >= WFRUN
    assert any("workflow-ro-crate" in c for c in conforms)
    main = crate.mainEntity
    assert main.id == "consist-workflow.json"
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= set(as_list(main.type))
    assert (tmp_path / "crate" / "consist-workflow.json").is_file()


def test_scenario_header_action_uses_the_workflow(recorded, tmp_path) -> None:
    crate = ROCrate(recorded.tracker.export_rocrate(path=tmp_path / "s.zip", scenario="baseline"))
    found = actions(crate)
    header, prep, dem = (f"#run-{recorded.runs[k]}" for k in ("scenario", "prepare", "demand"))
    assert set(found) == {header, prep, dem}
    assert found[header]["instrument"] is crate.mainEntity
    persons = file_for(crate, recorded.outputs("prepare")["persons"])
    assert ids(found[prep]["result"]) == {persons.id}
    assert persons.id in ids(found[dem]["object"])
    with zipfile.ZipFile(tmp_path / "s.zip") as archive:
        assert persons.id in archive.namelist()
        assert "ro-crate-metadata.json" in archive.namelist()


def test_failed_run_action_has_failed_status_and_error(recorded, tmp_path) -> None:
    crate = ROCrate(recorded.tracker.export_rocrate(recorded.runs["failed"], tmp_path / "c"))
    action = actions(crate)[f"#run-{recorded.runs['failed']}"]
    assert ref_id(action["actionStatus"]) == "http://schema.org/FailedActionStatus"
    assert "solver diverged" in action["error"]
    assert action.get("result") is None
    raw = recorded.inputs("failed")["raw"]
    assert ids(action["object"]) == {file_for(crate, raw).id}


def test_without_files_the_crate_refers_to_them(recorded, tmp_path) -> None:
    out = recorded.tracker.export_rocrate(
        recorded.runs["clean"], tmp_path / "c", include_files=False
    )
    assert listing(out) == ["consist-workflow.json", "ro-crate-metadata.json"]
    crate = ROCrate(out)
    raw = recorded.inputs("clean")["raw"]
    assert file_for(crate, raw).id == recorded.raw.as_uri()


def test_empty_directory_is_accepted(recorded, tmp_path) -> None:
    (tmp_path / "c").mkdir()
    recorded.tracker.export_rocrate(recorded.runs["clean"], tmp_path / "c")
    assert (tmp_path / "c" / "ro-crate-metadata.json").is_file()


@pytest.mark.parametrize(
    ("setup", "target", "error", "match"),
    [
        ("nonempty", "c", ValueError, "is a directory that is not empty"),
        ("file", "c", ValueError, "exists and is not a directory"),
        ("zipdir", "c.zip", ValueError, "is a directory"),
        (None, "missing/c", ValueError, "does not exist"),
    ],
)
def test_bad_paths_raise_before_writing(recorded, tmp_path, setup, target, error, match) -> None:
    if setup == "nonempty":
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "keep.txt").write_text("mine")
    elif setup == "file":
        (tmp_path / "c").write_text("mine")
    elif setup == "zipdir":
        (tmp_path / "c.zip").mkdir()
    before = listing(tmp_path)
    with pytest.raises(error, match=match):
        recorded.tracker.export_rocrate(recorded.runs["clean"], tmp_path / target)
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"include_files": "yes"}, TypeError, "include_files must be"),
        ({"run_ids": None}, ValueError, "not neither"),
        ({"run_ids": "nope"}, KeyError, "run_ids: no run 'nope'"),
        ({"run_ids": None, "scenario": "nope"}, KeyError, "scenario: no scenario 'nope'"),
    ],
)
def test_bad_arguments_raise_before_writing(recorded, tmp_path, kwargs, error, match) -> None:
    args = {"run_ids": recorded.runs["clean"], **kwargs}
    with pytest.raises(error, match=match):
        recorded.tracker.export_rocrate(path=tmp_path / "c", **args)
    assert listing(tmp_path) == []


def _double(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.assign(double=raw["size"] * 2)


def test_a_file_gone_from_disk_is_referenced_not_copied(tmp_path) -> None:
    raw = tmp_path / "raw.csv"
    pd.DataFrame({"size": [1, 2]}).to_csv(raw, index=False)
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "p.duckdb", project_root=tmp_path)
    try:
        result = tracker.run(fn=_double, name="double", inputs={"raw": raw}, outputs=["double"])
        gone = result.outputs["double"].path
        gone.unlink()
        out = tracker.export_rocrate(result.run.id, tmp_path / "crate")
    finally:
        tracker.close()
    crate = ROCrate(out)
    action = actions(crate)[f"#run-{result.run.id}"]
    assert ids(action["result"]) == {gone.as_uri()}
    (raw_entity,) = as_list(action["object"])
    assert raw_entity.id.startswith("files/") and raw_entity.id.endswith("/raw.csv")
    copied = [p for p in listing(out) if p.startswith("files/")]
    assert [p for p in copied if p.endswith(".csv")] and not [p for p in copied if "double" in p]
