"""``consist ui``: starts on a free port, prints the URL, serves the page and /api/, read-only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pandas as pd
import pytest

if TYPE_CHECKING:  # the fixtures' types (tests/cli/conftest.py)
    from conftest import Outcome, Project

pytestmark = pytest.mark.slow


@contextmanager
def consist_ui(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """Run ``python -m consist ui ARGS``; yield (the URL, the line it printed); stop it by PID."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "consist", "ui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    try:
        line = lines[0] if lines else ""
        assert "http://127.0.0.1:" in line, (line, proc.poll())
        url = line[line.index("http://") :].split()[0].rstrip('"}')
        yield url, line
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 15)
            proc.wait(timeout=15)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr


def test_ui_prints_the_url_and_serves_the_page_and_the_api(project: Project) -> None:
    with consist_ui(*project.args()) as (url, line):
        assert line.startswith("Consist web page: http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert port > 0
        runs = httpx.get(url + "api/runs", timeout=10).json()
        assert runs["total"] == 7
        assert {r["id"] for r in runs["runs"]} == set(project.runs.values())
        why = httpx.get(url + f"api/runs/{project.runs['scaled']}/explanation", timeout=10).json()
        assert why["differences"][0]["key"] == "scale"
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "/static/app.js" in page.text
        bad = httpx.get(url + "api/runs?status=done", timeout=10)
        assert bad.status_code == 400 and bad.json()["error"]["parameter"] == "status"
        # Only the loopback names are served (a rebound DNS name is refused).
        other = httpx.get(url + "api/runs", headers={"Host": "evil.example"}, timeout=10)
        assert other.status_code == 400


def test_ui_json_prints_the_url_as_json(project: Project) -> None:
    with consist_ui(*project.args(), "--json") as (url, line):
        assert json.loads(line) == {"url": url}
        assert httpx.get(url + "api/filters", timeout=10).status_code == 200


def _persons(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled (a step recorded while the page is open)."""
    return households.assign(persons=households["size"] * scale)


def test_a_run_recorded_while_the_page_is_open_shows_up(project: Project) -> None:
    with consist_ui(*project.args()) as (url, _):
        before = httpx.get(url + "api/runs?model=households", timeout=10).json()["total"]
        from consist import Tracker

        writer = Tracker(project.run_dir, db_path=project.db_path, project_root=project.root)
        result = writer.run(
            fn=_persons,
            name="households",
            config={"scale": 5},
            inputs={"households": project.root / "data" / "households.csv"},
            outputs=["persons"],
        )
        writer.close()
        after = httpx.get(url + "api/runs?model=households", timeout=10).json()
        assert after["total"] == before + 1
        assert after["runs"][0]["id"] == result.run.id


def test_ui_browser_flag_opens_the_printed_url(project: Project, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.py"
    recorder.write_text(
        f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    browser = f"{sys.executable} {recorder} %s"
    with consist_ui(*project.args(), "--browser", env={"BROWSER": browser}) as (url, _):
        deadline = time.monotonic() + 20
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert opened.read_text() == url
    default = tmp_path / "default.txt"
    quiet = {"BROWSER": f"{sys.executable} -c 'open({str(default)!r}, \"w\")' %s"}
    with consist_ui(*project.args(), env=quiet) as (url, _):
        assert httpx.get(url + "api/", timeout=10).status_code == 200
    assert not default.exists()  # no browser unless asked


def test_ui_refuses_a_non_loopback_host(project: Project, cli: Callable[..., Outcome]) -> None:
    out = cli("ui", *project.args(), "--host", "0.0.0.0")
    assert out.code == 2
    assert "--host" in out.stderr and "--allow-remote" in out.stderr


def test_ui_reports_a_port_in_use(project: Project, cli: Callable[..., Outcome]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = cli("ui", *project.args(), "--port", str(port))
    assert out.code == 1
    assert f"127.0.0.1:{port}" in out.stderr and "--port" in out.stderr


def test_ui_bad_port_and_missing_store(tmp_path: Path, cli: Callable[..., Outcome]) -> None:
    assert cli("ui", "--port", "70000", "--db-path", str(tmp_path / "x.duckdb")).code == 2
    missing = cli("ui", "--db-path", str(tmp_path / "nothing.duckdb"))
    assert missing.code == 3
