"""The web page end to end: ``python -m consist ui`` in a subprocess, driven by headless Chromium.

Playwright (sync API) drives the system Chromium (Debian's ``chromium``
package: ``/usr/lib/chromium/chromium``; another binary can be named with
``CONSIST_CHROMIUM``). The server is started on port 0 (a free port it
picks and prints) and stopped by its PID. Screenshots go to ``tmp_path``
and, when ``CONSIST_TEST_ARTIFACTS`` names a directory, are copied there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _ui_store import UiStore
from playwright.sync_api import Browser, Page, expect, sync_playwright

CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def chromium_executable() -> str | None:
    named = os.environ.get("CONSIST_CHROMIUM")
    for path in (named, *CANDIDATES) if named else CANDIDATES:
        if path and os.access(path, os.X_OK):
            return path
    return None


CHROMIUM = chromium_executable()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium executable: install Debian's packages with "
        "`apt-get install -y chromium chromium-driver` (or set CONSIST_CHROMIUM)",
    ),
]


class Server:
    """``python -m consist ui`` on a free loopback port, stopped by its PID."""

    def __init__(self, store: UiStore) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consist", "ui", *store.cli_args(), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = self._read_url(timeout=60)

    def _read_url(self, timeout: float) -> str:
        found: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            found.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        line = found[0] if found else ""
        if "http://127.0.0.1:" not in line:
            self.stop()
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"consist ui printed {line!r}; stderr: {stderr}")
        return line.split("Consist web page: ", 1)[1].split()[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(ui_store: UiStore) -> Iterator[Server]:
    running = Server(ui_store)
    try:
        yield running
    finally:
        running.stop()
    # Stopped by SIGTERM after a graceful shutdown (uvicorn re-raises the signal): no traceback.
    stderr = running.proc.stderr.read() if running.proc.stderr else ""
    assert running.proc.returncode in (0, -15), stderr
    assert "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def console_errors() -> list[str]:
    """Script errors and console errors of the page (none expected unless a test says so)."""
    return []


@pytest.fixture
def page(browser: Browser, console_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.on("pageerror", lambda exc: console_errors.append(str(exc)))
    opened.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    yield opened
    context.close()
    assert console_errors == [], console_errors


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    target = os.environ.get("CONSIST_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / name)
    return shot


def test_runs_list_filter_run_explanation_lineage_graph(
    server: Server, page: Page, ui_store: UiStore, tmp_path: Path
) -> None:
    runs, arts = ui_store.runs, ui_store.artifacts
    page.goto(server.url)
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(9)
    expect(page.locator("#runs-summary")).to_contain_text("9 runs")
    save_screenshot(page, tmp_path, "ui-runs.png")

    # Filter: households runs that completed.
    page.select_option("#filter-model", "households")
    page.select_option("#filter-status", "completed")
    page.click("#apply")
    expect(rows).to_have_count(3)
    assert "model=households" in page.url and "status=completed" in page.url
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.runId)")) == {
        runs["first"],
        runs["hit"],
        runs["scaled"],
    }

    # The cache hit says which run it reused.
    page.click(f"#runs-table tr[data-run-id='{runs['hit']}'] a.run-link")
    expect(page.locator("#verdict")).to_contain_text("Cache hit")
    expect(page.locator("#cache-source")).to_have_text(runs["first"])
    page.go_back()
    expect(rows).to_have_count(3)

    # The miss explains itself field by field.
    page.click(f"#runs-table tr[data-run-id='{runs['scaled']}'] a.run-link")
    expect(page.locator("#verdict")).to_contain_text("Executed")
    scale = page.locator("#differences tr[data-key='scale']")
    expect(scale.locator("td.old")).to_have_text("1")
    expect(scale.locator("td.new")).to_have_text("2")
    expect(scale).to_contain_text("config")
    save_screenshot(page, tmp_path, "ui-run.png")

    # The lineage graph of the last scenario step's output, and its nodes.
    page.goto(f"{server.url}runs/{runs['d2040']}")
    page.click("#outputs a:text-is('trips')")
    nodes = page.locator("#lineage svg g.node")
    expect(nodes).to_have_count(7)
    drawn = set(nodes.evaluate_all("ns => ns.map(n => n.dataset.id)"))
    assert drawn == {
        f"a:{arts['csv']}",
        f"r:{runs['first']}",
        f"a:{arts['persons']}",
        f"r:{runs['d2030']}",
        f"a:{arts['trips2030']}",
        f"r:{runs['d2040']}",
        f"a:{arts['trips2040']}",
    }
    expect(page.locator("#lineage svg g.edge")).to_have_count(6)
    expect(page.locator(f"#lineage g.node.root[data-id='a:{arts['trips2040']}']")).to_have_count(1)
    boxes = {
        node_id: page.locator(f"#lineage g.node[data-id='{node_id}']").bounding_box()
        for node_id in (f"a:{arts['csv']}", f"a:{arts['trips2040']}")
    }
    assert boxes[f"a:{arts['csv']}"]["x"] < boxes[f"a:{arts['trips2040']}"]["x"]

    # First rows of the table.
    page.click("#load-preview")
    expect(page.locator("#preview-table tbody tr")).to_have_count(3)
    expect(page.locator("#preview-table thead")).to_contain_text("trips")
    save_screenshot(page, tmp_path, "ui-lineage.png")

    # Depth 1: fewer nodes, the cut branch dashed.
    page.select_option("#depth", "1")
    expect(nodes).to_have_count(3)
    expect(page.locator("#lineage g.node.truncated")).to_have_count(1)

    # Nodes are links: a run opens its page.
    page.locator(f"#lineage g.node[data-id='r:{runs['d2040']}']").click()
    expect(page.locator("h1")).to_have_text(runs["d2040"])
    assert page.url.endswith(f"/runs/{runs['d2040']}")


def test_paging_scenario_tree_and_diff(server: Server, page: Page, ui_store: UiStore) -> None:
    runs = ui_store.runs
    page.goto(f"{server.url}?page_size=4")
    expect(page.locator("#runs-summary")).to_have_text("9 runs · page 1 of 3")
    page.click("#next-page")
    expect(page.locator("#runs-summary")).to_have_text("9 runs · page 2 of 3")
    expect(page.locator("#runs-table tbody tr")).to_have_count(4)

    page.goto(f"{server.url}scenarios")
    page.click("#scenarios-table a:text-is('baseline')")
    steps = page.locator("#scenario-tree li[data-run-id]")
    expect(steps).to_have_count(2)
    assert steps.evaluate_all("ls => ls.map(l => l.dataset.runId)") == [
        runs["d2030"],
        runs["d2040"],
    ]
    expect(steps.nth(1)).to_contain_text("← #1 demand")

    page.goto(f"{server.url}?model=households")
    page.check(f"#runs-table tr[data-run-id='{runs['first']}'] input[type=checkbox]")
    expect(page.locator("#compare")).to_be_disabled()
    page.check(f"#runs-table tr[data-run-id='{runs['scaled']}'] input[type=checkbox]")
    page.click("#compare")
    change = page.locator("#diff-config tr[data-key='scale']")
    expect(change).to_contain_text("changed")
    expect(change.locator("td.old")).to_have_text("1")
    expect(change.locator("td.new")).to_have_text("2")


def test_a_bad_address_shows_the_api_error(
    server: Server, page: Page, console_errors: list[str]
) -> None:
    page.goto(f"{server.url}runs/no_such_run")
    expect(page.locator("p.error")).to_contain_text("no run 'no_such_run'")
    # The browser logs the API's 404 itself; nothing else went wrong.
    assert [e for e in console_errors if "404" not in e] == []
    console_errors.clear()
