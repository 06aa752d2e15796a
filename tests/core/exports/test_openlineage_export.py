"""OpenLineage export: events parse with the client's models; a real HTTP endpoint receives them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.serde import Serde

from consist.core.exports.openlineage_export import openlineage_run_id


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def parse(line: str) -> tuple[RunEvent, dict[str, Any]]:
    """One line as the client's RunEvent model (validated by its attrs validators) and as JSON."""
    data = json.loads(line)
    event = RunEvent(
        eventType=RunState(data["eventType"]),
        eventTime=data["eventTime"],
        run=Run(runId=data["run"]["runId"]),
        job=Job(namespace=data["job"]["namespace"], name=data["job"]["name"]),
        producer=data["producer"],
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in data["inputs"]],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"]) for d in data["outputs"]],
    )
    # The model serializes back to the same core fields.
    again = Serde.to_dict(event)
    for key in ("eventType", "eventTime", "producer", "schemaURL"):
        assert again[key] == data[key]
    assert {k: again["job"][k] for k in ("namespace", "name")} == {
        k: data["job"][k] for k in ("namespace", "name")
    }
    assert again["run"]["runId"] == data["run"]["runId"]
    return event, data


def read_events(path: Path) -> list[tuple[RunEvent, dict[str, Any]]]:
    lines = path.read_text().splitlines()
    assert lines and all(line.strip() for line in lines)
    return [parse(line) for line in lines]


def names(datasets: list[Any]) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in datasets}


def local(recorded: Any, artifact: Any) -> tuple[str, str]:
    return ("file", str(recorded.tracker.paths.resolve_uri(artifact.uri)))


def test_chain_emits_start_and_complete_per_run_with_datasets(recorded, tmp_path) -> None:
    out = recorded.tracker.export_openlineage(recorded.chain, tmp_path / "events.jsonl")
    assert out == tmp_path / "events.jsonl"
    events = read_events(out)
    by_run: dict[str, list[tuple[RunEvent, dict[str, Any]]]] = {}
    for event, data in events:
        by_run.setdefault(data["run"]["facets"]["consist"]["runId"], []).append((event, data))
    assert list(by_run) == recorded.chain  # oldest run first
    expected = {
        "clean": ({"raw": recorded.inputs("clean")["raw"]}, recorded.outputs("clean")),
        "features": (recorded.inputs("features"), recorded.outputs("features")),
        "predict": (recorded.inputs("predict"), recorded.outputs("predict")),
    }
    for label, (inputs, outputs) in expected.items():
        run_id = recorded.runs[label]
        (start, start_data), (end, end_data) = by_run[run_id]
        assert [start.eventType, end.eventType] == [RunState.START, RunState.COMPLETE]
        assert start.run.runId == end.run.runId == openlineage_run_id(run_id)
        assert start.job.namespace == "consist" and start.job.name == label
        assert names(start.inputs) == {local(recorded, a) for a in inputs.values()}
        assert start.outputs == []
        assert names(end.inputs) == names(start.inputs)
        assert names(end.outputs) == {local(recorded, a) for a in outputs.values()}
        run = recorded.tracker.get_run(run_id)
        assert start_data["eventTime"] == run.created_at.isoformat()
        assert end_data["eventTime"] == run.ended_at.isoformat()
        facet = end_data["run"]["facets"]["consist"]
        assert facet["configHash"] == run.config_hash and facet["status"] == "completed"
        out_art = next(iter(outputs.values()))
        (ds,) = end_data["outputs"]
        assert ds["facets"]["version"]["datasetVersion"] == out_art.hash
        assert ds["facets"]["consist"]["artifactId"] == str(out_art.id)
        assert ds["facets"]["consist"]["sizeBytes"] == out_art.size_bytes


def test_failed_run_emits_fail_with_error_message(recorded, tmp_path) -> None:
    failed = recorded.runs["failed"]
    events = read_events(recorded.tracker.export_openlineage(failed, tmp_path / "f.jsonl"))
    assert [e.eventType for e, _ in events] == [RunState.START, RunState.FAIL]
    _, data = events[1]
    error = data["run"]["facets"]["errorMessage"]
    assert "solver diverged" in error["message"] and error["programmingLanguage"] == "python"
    raw = recorded.inputs("failed")["raw"]
    assert names(events[1][0].inputs) == {local(recorded, raw)}
    assert events[1][0].outputs == []


def test_scenario_steps_carry_the_parent_facet(recorded, tmp_path) -> None:
    out = recorded.tracker.export_openlineage(
        path=tmp_path / "s.jsonl", scenario="baseline", namespace="team"
    )
    events = read_events(out)
    header_uuid = openlineage_run_id("baseline")
    seen = {}
    for event, data in events:
        assert event.job.namespace == "team"
        seen.setdefault(event.job.name, []).append(event.eventType)
        consist_id = data["run"]["facets"]["consist"]["runId"]
        if consist_id != "baseline":
            parent = data["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == header_uuid
            assert (parent["job"]["namespace"], parent["job"]["name"]) == ("team", "baseline")
        else:
            assert "parent" not in data["run"]["facets"]
    assert seen == {
        "baseline": [RunState.START, RunState.COMPLETE],
        "prepare": [RunState.START, RunState.COMPLETE],
        "demand": [RunState.START, RunState.COMPLETE],
    }


def test_run_uuid_is_stable_and_distinct() -> None:
    assert openlineage_run_id("a") == openlineage_run_id("a") != openlineage_run_id("b")


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        type(self).received.append((self.path, body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@pytest.fixture
def endpoint() -> Iterator[type[_Collector]]:
    handler = type("Collector", (_Collector,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_events_are_sent_to_an_http_endpoint(recorded, tmp_path, endpoint) -> None:
    out = recorded.tracker.export_openlineage(
        [recorded.runs["clean"], recorded.runs["failed"]], tmp_path / "e.jsonl", url=endpoint.url
    )
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [path for path, _ in endpoint.received] == ["/api/v1/lineage"] * 4
    assert [body for _, body in endpoint.received] == written
    assert [b["eventType"] for _, b in endpoint.received] == ["START", "COMPLETE", "START", "FAIL"]


def test_endpoint_refusing_events_raises_after_writing_the_file(
    recorded, tmp_path, endpoint
) -> None:
    endpoint.status = 400
    with pytest.raises(ConnectionError, match=r"url=.*sending OpenLineage event START"):
        recorded.tracker.export_openlineage(
            recorded.runs["clean"], tmp_path / "e.jsonl", url=endpoint.url
        )
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"url": "ftp://example.org"}, ValueError, "url must be an http"),
        ({"url": "localhost:5000"}, ValueError, "url must be an http"),
        ({"url": 5}, TypeError, "url must be"),
        ({"namespace": ""}, ValueError, "namespace must be a non-empty"),
        ({"run_ids": None}, ValueError, "not neither"),
        ({"scenario": "baseline"}, ValueError, "not both"),
        ({"run_ids": "nope"}, KeyError, "run_ids: no run 'nope'"),
    ],
)
def test_bad_arguments_raise_before_writing(recorded, tmp_path, kwargs, error, match) -> None:
    args = {"run_ids": recorded.runs["clean"], **kwargs}
    with pytest.raises(error, match=match):
        recorded.tracker.export_openlineage(path=tmp_path / "e.jsonl", **args)
    assert listing(tmp_path) == []


def test_directory_path_is_refused(recorded, tmp_path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        recorded.tracker.export_openlineage(recorded.runs["clean"], tmp_path / "d")
    assert listing(tmp_path) == ["d"]
