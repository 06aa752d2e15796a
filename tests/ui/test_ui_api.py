"""The web page's JSON API through the ASGI test client, on a store recorded by the Tracker.

Every endpoint: what it answers for the store of ``conftest.build_store``,
bad parameters (400 naming the parameter, never a 500), unknown ids (404).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from _ui_store import UiStore
from starlette.testclient import TestClient

from consist import Tracker
from consist.ui import create_app, serve_ui
from consist.ui.summaries import jsonable


@pytest.fixture(scope="module")
def client(ui_store: UiStore) -> Iterator[TestClient]:
    tracker = ui_store.tracker()
    with TestClient(create_app(tracker)) as test_client:
        yield test_client
    tracker.close()


def ok(client: TestClient, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def error(client: TestClient, url: str, status: int, parameter: str | None = None) -> str:
    response = client.get(url)
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["status"] == status
    assert body["parameter"] == parameter
    if status == 400:
        assert body["message"].startswith(f"{parameter}: ")
    return body["message"]


# -- /api/runs -------------------------------------------------------------------------


def test_runs_lists_every_run_newest_first_with_the_total(
    client: TestClient, ui_store: UiStore
) -> None:
    body = ok(client, "/api/runs")
    assert body["total"] == 9  # 8 step runs and the scenario header
    assert body["page"] == 1 and body["pages"] == 1 and body["page_size"] == 50
    ids = [r["id"] for r in body["runs"]]
    assert set(ui_store.runs.values()) <= set(ids)
    stamps = [r["created_at"] for r in body["runs"]]
    assert stamps == sorted(stamps, reverse=True)
    hit = next(r for r in body["runs"] if r["id"] == ui_store.runs["hit"])
    assert hit["cache_hit"] is True and hit["cache_source"] == ui_store.runs["first"]
    assert ok(client, "/api/runs?order=oldest")["runs"] == body["runs"][::-1]


def test_runs_pages_cover_every_run_once(client: TestClient) -> None:
    everything = [r["id"] for r in ok(client, "/api/runs")["runs"]]
    pages = [ok(client, f"/api/runs?page_size=4&page={n}") for n in (1, 2, 3)]
    assert [p["pages"] for p in pages] == [3, 3, 3]
    assert [p["total"] for p in pages] == [9] * 3
    assert [len(p["runs"]) for p in pages] == [4, 4, 1]
    assert [r["id"] for p in pages for r in p["runs"]] == everything
    beyond = ok(client, "/api/runs?page_size=4&page=9")
    assert beyond["runs"] == [] and beyond["total"] == 9


@pytest.mark.parametrize(
    ("query", "labels"),
    [
        ("model=households", {"first", "hit", "scaled"}),
        ("status=failed", {"failed"}),
        ("tag=base", {"first", "hit"}),
        ("tag=base&tag=scaled", set()),
        ("year=2030", {"d2030"}),
        ("scenario=baseline", {"d2030", "d2040"}),
        ("model=demand&year=2040", {"d2040"}),
        ("model=nobody", set()),
    ],
)
def test_runs_filters(client: TestClient, ui_store: UiStore, query: str, labels: set[str]) -> None:
    body = ok(client, f"/api/runs?{query}")
    assert {r["id"] for r in body["runs"]} == {ui_store.runs[label] for label in labels}
    assert body["total"] == len(labels)


def test_runs_date_range(client: TestClient) -> None:
    today = datetime.now().astimezone().date()
    everything = ok(client, "/api/runs")["total"]
    assert ok(client, f"/api/runs?since={today}&until={today}")["total"] == everything
    assert ok(client, f"/api/runs?until={today - timedelta(days=1)}")["total"] == 0
    assert ok(client, f"/api/runs?since={today + timedelta(days=1)}")["total"] == 0
    runs = ok(client, "/api/runs?order=oldest")["runs"]
    middle = datetime.fromisoformat(runs[4]["created_at"])
    after = ok(client, f"/api/runs?since={middle.isoformat().replace('+', '%2B')}")
    assert after["total"] == len(runs) - 4
    before = ok(client, f"/api/runs?until={middle.isoformat().replace('+', '%2B')}")
    assert before["total"] == 5


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("year=abc", "year"),
        ("year=2030&year=2040", "year"),
        ("status=bogus", "status"),
        ("page=0", "page"),
        ("page=two", "page"),
        ("page=99999999999999999999", "page"),
        ("year=99999999999999999999", "year"),
        ("page_size=0", "page_size"),
        ("page_size=501", "page_size"),
        ("since=yesterday", "since"),
        ("until=2026-02-30", "until"),
        ("since=2026-12-05&until=2026-12-01", "until"),
        ("order=sideways", "order"),
        ("modle=households", "modle"),
    ],
)
def test_runs_bad_parameters_are_400_naming_the_parameter(
    client: TestClient, query: str, parameter: str
) -> None:
    error(client, f"/api/runs?{query}", 400, parameter)


def test_filters_count_the_values_runs_have(client: TestClient) -> None:
    body = ok(client, "/api/filters")
    models = {v["value"]: v["runs"] for v in body["model"]}
    assert models["households"] == 3 and models["demand"] == 2 and models["scenario"] == 1
    assert {v["value"]: v["runs"] for v in body["status"]} == {"completed": 8, "failed": 1}
    assert {v["value"] for v in body["year"]} == {2030, 2040}
    assert {v["value"]: v["runs"] for v in body["tag"]}["base"] == 2
    error(client, "/api/filters?x=1", 400, "x")


# -- one run ---------------------------------------------------------------------------


def test_run_detail_has_config_files_and_reachability(
    client: TestClient, ui_store: UiStore
) -> None:
    body = ok(client, f"/api/runs/{ui_store.runs['scaled']}")
    assert body["run"]["model"] == "households" and body["run"]["tags"] == ["scaled"]
    assert body["config"] == {"scale": 2}
    assert [(a["key"], a["driver"], a["reachable"]) for a in body["inputs"]] == [
        ("households", "csv", True)
    ]
    assert [(a["key"], a["reachable"]) for a in body["outputs"]] == [("persons", True)]
    assert body["signature"].startswith("blake3:")
    assert body["explanation"]["verdict"] == "miss"
    gone = ok(client, f"/api/runs/{ui_store.runs['tally']}")["outputs"]
    assert [(a["key"], a["reachable"]) for a in gone] == [("sizes", False)]
    assert gone[0]["path"].endswith(".parquet")


def test_run_detail_of_a_failed_run_and_of_a_scenario_step(
    client: TestClient, ui_store: UiStore
) -> None:
    failed = ok(client, f"/api/runs/{ui_store.runs['failed']}")
    assert failed["run"]["status"] == "failed"
    assert "solver diverged" in failed["error"]
    step = ok(client, f"/api/runs/{ui_store.runs['d2030']}")
    assert step["parent"]["id"] == "baseline"
    header = ok(client, "/api/runs/baseline")
    assert header["steps"] == 2 and header["parent"] is None


def test_explanation_of_a_hit_names_the_run_it_reused(
    client: TestClient, ui_store: UiStore
) -> None:
    body = ok(client, f"/api/runs/{ui_store.runs['hit']}/explanation")
    assert body["verdict"] == "hit"
    assert body["cache_source"] == ui_store.runs["first"]
    assert body["source_run"]["id"] == ui_store.runs["first"]
    assert body["differences"] == []


def test_explanation_of_a_miss_field_by_field(client: TestClient, ui_store: UiStore) -> None:
    body = ok(client, f"/api/runs/{ui_store.runs['scaled']}/explanation")
    assert body["verdict"] == "miss"
    assert body["nearest_run_id"] in (ui_store.runs["first"], ui_store.runs["hit"])
    assert body["nearest_run"]["model"] == "households"
    assert body["differences"] == [
        {"section": "config", "key": "scale", "old": 1, "new": 2, "change": "changed"}
    ]
    step = ok(client, f"/api/runs/{ui_store.runs['d2040']}/explanation")
    rows = {(d["section"], d["key"]): d for d in step["differences"]}
    assert rows[("config", "year")]["old"] == 2030 and rows[("config", "year")]["new"] == 2040
    assert rows[("inputs", "persons")]["change"] == "changed"
    assert step["explanation"]["nearest_run_id"] == ui_store.runs["d2030"]


def test_unknown_runs_are_404(client: TestClient) -> None:
    for suffix in ("", "/explanation", "/lineage"):
        message = error(client, f"/api/runs/no_such_run{suffix}", 404, "run_id")
        assert "no_such_run" in message


# -- lineage -------------------------------------------------------------------------


def test_artifact_lineage_graph_nodes_edges_and_layout(
    client: TestClient, ui_store: UiStore
) -> None:
    a, r = ui_store.artifacts, ui_store.runs
    body = ok(client, f"/api/artifacts/{a['trips2040']}/lineage")
    assert body["root"] == f"a:{a['trips2040']}"
    nodes = {n["id"]: n for n in body["nodes"]}
    assert set(nodes) == {
        f"a:{a['csv']}",
        f"r:{r['first']}",
        f"a:{a['persons']}",
        f"r:{r['d2030']}",
        f"a:{a['trips2030']}",
        f"r:{r['d2040']}",
        f"a:{a['trips2040']}",
    }
    assert nodes[f"a:{a['csv']}"]["raw_input"] is True
    assert nodes[f"r:{r['d2040']}"]["detail"] == "year 2040"
    edges = {(e["source"], e["target"]): e for e in body["edges"]}
    assert set(edges) == {
        (f"a:{a['csv']}", f"r:{r['first']}"),
        (f"r:{r['first']}", f"a:{a['persons']}"),
        (f"a:{a['persons']}", f"r:{r['d2030']}"),
        (f"r:{r['d2030']}", f"a:{a['trips2030']}"),
        (f"a:{a['trips2030']}", f"r:{r['d2040']}"),
        (f"r:{r['d2040']}", f"a:{a['trips2040']}"),
    }
    # d2040 read the 2030 trips table under the key "persons".
    assert edges[(f"a:{a['trips2030']}", f"r:{r['d2040']}")]["label"] == "persons"
    for source, target in edges:  # inputs on the left
        assert nodes[source]["x"] + nodes[source]["w"] < nodes[target]["x"]
    assert [nodes[f"a:{a['csv']}"]["layer"], nodes[f"a:{a['trips2040']}"]["layer"]] == [0, 6]
    assert body["truncated"] is False
    assert body["width"] >= max(n["x"] + n["w"] for n in nodes.values())


def test_artifact_lineage_by_key_with_depth(client: TestClient, ui_store: UiStore) -> None:
    body = ok(client, "/api/artifacts/persons/lineage?depth=0")  # newest "persons": scaled run's
    assert [n["kind"] for n in body["nodes"]] == ["artifact"]
    assert body["truncated"] is True and body["depth"] == 0
    one = ok(client, f"/api/artifacts/{ui_store.artifacts['trips2040']}/lineage?depth=1")
    kinds = sorted(n["kind"] for n in one["nodes"])
    assert kinds == ["artifact", "artifact", "run"] and one["truncated"] is True
    cut = [n for n in one["nodes"] if n.get("truncated")]
    assert [n["ref"] for n in cut] == [ui_store.artifacts["trips2030"]]


def test_run_lineage_graph(client: TestClient, ui_store: UiStore) -> None:
    body = ok(client, f"/api/runs/{ui_store.runs['d2030']}/lineage")
    assert body["root"] == f"r:{ui_store.runs['d2030']}"
    assert {n["id"] for n in body["nodes"]} == {
        f"r:{ui_store.runs['d2030']}",
        f"a:{ui_store.artifacts['persons']}",
        f"r:{ui_store.runs['first']}",
        f"a:{ui_store.artifacts['csv']}",
    }


@pytest.mark.parametrize("query", ["depth=-1", "depth=deep", "depth=1&depth=2", "max_depth=1"])
def test_lineage_bad_depth_is_400(client: TestClient, ui_store: UiStore, query: str) -> None:
    parameter = query.split("=")[0]
    error(client, f"/api/artifacts/{ui_store.artifacts['persons']}/lineage?{query}", 400, parameter)
    error(client, f"/api/runs/{ui_store.runs['d2030']}/lineage?{query}", 400, parameter)


def test_unknown_artifacts_are_404(client: TestClient) -> None:
    for suffix in ("", "/lineage", "/preview"):
        error(
            client,
            f"/api/artifacts/00000000-0000-0000-0000-000000000000{suffix}",
            404,
            "artifact_id",
        )
        error(client, f"/api/artifacts/no_such_key{suffix}", 404, "artifact_id")


def test_artifact_detail(client: TestClient, ui_store: UiStore) -> None:
    body = ok(client, f"/api/artifacts/{ui_store.artifacts['sizes']}")["artifact"]
    assert body["key"] == "sizes" and body["reachable"] is False
    assert body["run_id"] == ui_store.runs["tally"]


# -- preview ---------------------------------------------------------------------------


def test_preview_first_rows_of_a_table(client: TestClient, ui_store: UiStore) -> None:
    body = ok(client, f"/api/artifacts/{ui_store.artifacts['persons']}/preview")
    assert body["columns"] == ["hh_id", "size", "persons"]
    assert body["rows"] == [[1, 2, 2], [2, 4, 4], [3, 1, 1]]
    assert body["source"] == "file" and len(body["types"]) == 3
    two = ok(client, f"/api/artifacts/{ui_store.artifacts['csv']}/preview?rows=2")
    assert two["columns"] == ["hh_id", "size"] and two["rows"] == [[1, 2], [2, 4]]


def test_preview_errors(client: TestClient, ui_store: UiStore) -> None:
    gone = error(client, f"/api/artifacts/{ui_store.artifacts['sizes']}/preview", 410)
    assert "gone" in gone
    not_table = error(client, f"/api/artifacts/{ui_store.artifacts['note']}/preview", 422)
    assert "note" in not_table
    for query in ("rows=0", "rows=1001", "rows=many"):
        error(
            client, f"/api/artifacts/{ui_store.artifacts['persons']}/preview?{query}", 400, "rows"
        )


# -- scenarios -------------------------------------------------------------------------


def test_scenarios_list_and_tree(client: TestClient, ui_store: UiStore) -> None:
    listing = ok(client, "/api/scenarios")
    assert [r["id"] for r in listing["runs"]] == ["baseline"]
    assert listing["runs"][0]["steps"] == 2
    tree = ok(client, "/api/scenarios/baseline")
    assert tree["scenario"]["id"] == "baseline" and tree["is_scenario"] is True
    assert tree["config"] == {"policy": "none"}
    assert [s["id"] for s in tree["steps"]] == [ui_store.runs["d2030"], ui_store.runs["d2040"]]
    assert tree["steps"][1]["inputs"] == [{"key": "persons", "id": ui_store.artifacts["trips2030"]}]
    assert tree["flows"] == [
        {"from": ui_store.runs["d2030"], "to": ui_store.runs["d2040"], "key": "persons"}
    ]
    paged = ok(client, "/api/scenarios/baseline?page_size=1&page=2")
    assert [s["id"] for s in paged["steps"]] == [ui_store.runs["d2040"]]
    assert paged["total"] == 2 and paged["pages"] == 2


def test_scenario_errors(client: TestClient) -> None:
    error(client, "/api/scenarios/no_such_scenario", 404, "scenario_id")
    error(client, "/api/scenarios?page=-1", 400, "page")
    error(client, "/api/scenarios/baseline?page_size=x", 400, "page_size")


# -- diff ------------------------------------------------------------------------------


def test_diff_of_two_runs(client: TestClient, ui_store: UiStore) -> None:
    a, b = ui_store.runs["first"], ui_store.runs["scaled"]
    body = ok(client, f"/api/diff?a={a}&b={b}")
    assert body["config_source"] == "snapshot" and body["note"] is None
    assert body["config"] == {"scale": {"a": 1, "b": 2, "status": "changed"}}
    assert body["inputs"] == {}
    assert body["run_a"]["id"] == a and body["run_b"]["id"] == b
    full = ok(client, f"/api/diff?a={a}&b={b}&all=true")
    assert full["inputs"]["households"]["status"] == "equal"
    steps = ok(client, f"/api/diff?a={ui_store.runs['d2030']}&b={ui_store.runs['d2040']}")
    assert steps["inputs"]["persons"]["status"] == "changed"


def test_diff_errors(client: TestClient, ui_store: UiStore) -> None:
    a = ui_store.runs["first"]
    error(client, f"/api/diff?a={a}", 400, "b")
    error(client, "/api/diff", 400, "a")
    error(client, f"/api/diff?a={a}&b={a}&all=maybe", 400, "all")
    assert "no_such_run" in error(client, f"/api/diff?a={a}&b=no_such_run", 404, "b")


# -- the application -----------------------------------------------------------------


def test_pages_static_files_and_unknown_routes(client: TestClient, ui_store: UiStore) -> None:
    for path in (
        "/",
        f"/runs/{ui_store.runs['first']}",
        "/scenarios",
        "/scenarios/baseline",
        f"/artifacts/{ui_store.artifacts['persons']}",
        "/diff",
    ):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert '<script src="/static/app.js">' in response.text
        assert "default-src 'self'" in response.headers["content-security-policy"]
    for name in ("app.js", "graph.js", "style.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and len(response.content) > 1000
    assert "http://" not in client.get("/static/app.js").text  # nothing loaded from elsewhere
    assert client.get("/static/secrets.txt").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    error(client, "/api/nothing", 404)
    assert "/api/runs" in ok(client, "/api/")["endpoints"]
    response = client.post("/api/runs")
    assert response.status_code == 405 and response.json()["error"]["status"] == 405


def test_host_guard_refuses_other_host_names(ui_store: UiStore) -> None:
    tracker = ui_store.tracker()
    try:
        app = create_app(tracker, allowed_hosts=["127.0.0.1", "localhost", "[::1]"])
        local = TestClient(app, base_url="http://127.0.0.1:8123")
        assert local.get("/api/runs?page_size=1").status_code == 200
        v6 = TestClient(app, base_url="http://[::1]:8123")
        assert v6.get("/api/runs?page_size=1").status_code == 200
        rebound = TestClient(app, base_url="http://attacker.example:8123")
        response = rebound.get("/api/runs")
        assert response.status_code == 400
        assert "attacker.example" in response.json()["error"]["message"]
    finally:
        tracker.close()


def test_create_app_needs_a_database(tmp_path: Path) -> None:
    journal_only = Tracker(tmp_path / "runs")
    with pytest.raises(ValueError, match="db_path"):
        create_app(journal_only)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.org", ""])
def test_serve_ui_refuses_non_loopback_hosts_before_listening(ui_store: UiStore, host: str) -> None:
    tracker = ui_store.tracker()
    try:
        with pytest.raises(ValueError, match="host"):
            serve_ui(tracker, host=host)
        with pytest.raises(ValueError, match="port"):
            serve_ui(tracker, port=70000)
    finally:
        tracker.close()


def test_jsonable_keeps_values_json_cannot_hold_as_text() -> None:
    out = jsonable({"a": math.nan, "b": [math.inf, -math.inf], "c": 1.5, 2: b"xy"})
    assert out == {"a": "NaN", "b": ["Infinity", "-Infinity"], "c": 1.5, "2": "<2 bytes>"}


def test_run_ids_with_spaces_percent_and_accents_round_trip(tmp_path: Path) -> None:
    writer = Tracker(tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    odd = "été 50% #1 ?x"
    with writer.start_run(odd, model="odd model/name"):
        pass
    writer.close()
    tracker = Tracker(tmp_path / "runs", db_path=tmp_path / "p.duckdb", read_only=True)
    try:
        client = TestClient(create_app(tracker))
        assert ok(client, f"/api/runs/{quote(odd, safe='')}")["run"]["id"] == odd
        listed = ok(client, f"/api/runs?model={quote('odd model/name', safe='')}")
        assert [r["id"] for r in listed["runs"]] == [odd]
    finally:
        tracker.close()


def test_a_store_locked_by_another_process_is_503_then_readable_again(
    ui_store: UiStore, tmp_path: Path
) -> None:
    # A copy: this process shares one connection manager per file (the first opener's
    # lock timeout would apply), and the module's other tests keep the original open.
    db_path = tmp_path / "copy.duckdb"
    shutil.copy(ui_store.db_path, db_path)
    tracker = Tracker(
        ui_store.run_dir, db_path=db_path, read_only=True, idle_release_s=0, lock_timeout_s=0.5
    )
    client = TestClient(create_app(tracker))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"con = duckdb.connect({str(db_path)!r})\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        message = error(client, "/api/runs", 503)
        assert "locked by another process" in message
    finally:
        os.kill(holder.pid, 9)
        holder.wait(timeout=15)
    try:
        assert ok(client, "/api/runs")["total"] == 9
    finally:
        tracker.close()
