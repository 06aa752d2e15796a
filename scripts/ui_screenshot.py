"""Make docs/ui-runs.png: the runs list of the web page over the demo's store.

Runs ``examples/demo.py`` twice in a scratch folder (the second time its
steps are cache hits), starts ``python -m consist ui`` on a free port,
loads the page in headless Chromium (Playwright driving the system
browser, default ``/usr/lib/chromium/chromium``; another with
``--chromium PATH``) and saves the screenshot. Run it from the repository
root::

    python scripts/ui_screenshot.py [--out docs/ui-runs.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui-runs.png")
    parser.add_argument("--chromium", default="/usr/lib/chromium/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch) / "demo_workspace"
        for _ in range(2):
            subprocess.run(
                [sys.executable, str(ROOT / "examples" / "demo.py"), str(workspace)],
                check=True,
                capture_output=True,
                env=env,
            )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consist",
                "ui",
                "--db-path",
                str(workspace / "provenance.duckdb"),
                "--run-dir",
                str(workspace / "runs"),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.append(server.stdout.readline()))
            reader.start()
            reader.join(60)
            url = lines[0].split("Consist web page: ", 1)[1].split()[0]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
                page = browser.new_page(viewport={"width": 1360, "height": 720})
                page.goto(url)
                page.wait_for_selector("#runs-table tbody tr")
                page.wait_for_selector("#apply")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            os.kill(server.pid, 15)
            server.wait(timeout=15)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
