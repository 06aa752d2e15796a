"""``consist.ui.serve_ui``, the Python entry: a free loopback port, the URL printed first."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from _ui_store import UiStore

from consist.ui.server import check_host, is_loopback

pytestmark = pytest.mark.slow


@contextmanager
def python_serve(store: UiStore, **options: object) -> Iterator[str]:
    """``serve_ui(tracker, **options)`` in a child Python; yield its first stdout line."""
    source = (
        "import sys\n"
        "from consist import Tracker\n"
        "from consist.ui import serve_ui\n"
        f"tracker = Tracker({str(store.run_dir)!r}, db_path={str(store.db_path)!r}, "
        "read_only=True)\n"
        f"serve_ui(tracker, **{options!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", source],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    try:
        yield lines[0] if lines else ""
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 15)
            proc.wait(timeout=15)


def test_serve_ui_prints_the_url_then_serves(ui_store: UiStore) -> None:
    with python_serve(ui_store) as line:
        assert line.startswith("Consist web page: http://127.0.0.1:"), line
        url = line.split()[3]
        assert httpx.get(url + "api/runs", timeout=10).json()["total"] == 9


def test_serve_ui_on_a_chosen_port(ui_store: UiStore) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with python_serve(ui_store, port=port) as line:
        assert f"http://127.0.0.1:{port}/" in line
        assert httpx.get(f"http://127.0.0.1:{port}/api/filters", timeout=10).status_code == 200


@pytest.mark.skipif(not socket.has_ipv6, reason="this Python has no IPv6 support")
def test_serve_ui_on_ipv6_loopback(ui_store: UiStore) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("the machine has no IPv6 loopback address")
    with python_serve(ui_store, host="::1") as line:
        assert "http://[::1]:" in line, line
        url = line.split()[3]
        assert httpx.get(url + "api/runs?page_size=1", timeout=10).status_code == 200


def test_loopback_checks() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
        check_host(host, allow_remote=False)
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.org"):
        assert not is_loopback(host), host
        with pytest.raises(ValueError, match="allow_remote=True"):
            check_host(host, allow_remote=False)
        check_host(host, allow_remote=True)
