"""A throwaway PostgreSQL cluster on loopback for the tests (team mode).

``PostgresServer`` runs ``initdb`` (trust authentication) in a temporary
directory and ``pg_ctl start -w`` on a free 127.0.0.1 port; ``stop()`` shuts
it down and removes the directory. Run as root, the server tools run as the
``postgres`` user (``runuser``), which owns the directory.

Fixtures (registered in ``tests/conftest.py``):

* ``pg_server`` (session): the running server; its ``url`` is the base URL.
* ``pg_url`` (function): a fresh, empty database on it per test
  (``postgresql+psycopg://postgres@127.0.0.1:PORT/<name>``).

Nothing assumes a running server, and nothing skips: without the PostgreSQL
binaries the fixture fails saying how to get them (``.ci/run`` installs
the Debian ``postgresql`` package).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_MISSING = (
    "the PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under "
    "/usr/lib/postgresql/<major>/bin; the PostgreSQL engine tests need a real server: "
    "run .ci/run (it installs the Debian package 'postgresql'), or "
    "'apt-get install -y postgresql' yourself"
)


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest major version), or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throwaway cluster; ``start()`` then ``stop()``.

    Parameters
    ----------
    bin_dir:
        Directory of ``initdb`` / ``pg_ctl``; found with :func:`find_bin_dir`
        when None.
    durable:
        Keep PostgreSQL's durable defaults (``fsync``, synchronous commit),
        for benchmarks; tests run without them (faster, nothing to keep).
    """

    def __init__(self, bin_dir: Path | None = None, *, durable: bool = False) -> None:
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(_MISSING)
        self.bin_dir = bin_dir
        self.root: Path | None = None
        self.port = 0
        self.durable = durable
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "data"

    @property
    def url(self) -> str:
        """The base URL (database ``postgres``)."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """The SQLAlchemy/psycopg URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> PostgresServer:
        """Create the cluster and start it on a free port (waits until it accepts)."""
        self.root = Path(tempfile.mkdtemp(prefix="consist-pg-"))
        if self._as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        init = self._run(
            "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            self._cleanup()
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        last = ""
        for _ in range(5):  # a free port can be taken between the probe and the start
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200"
            )
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            started = self._run(
                "pg_ctl", "-D", str(self.data_dir), "-o", options,
                "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
            )  # fmt: skip
            if started.returncode == 0:
                return self
            last = started.stderr or started.stdout
            log = self.root / "server.log"
            if log.exists():
                last += "\n" + log.read_text(errors="replace")[-2000:]
        self._cleanup()
        raise RuntimeError(f"pg_ctl start failed: {last}")

    def halt(self) -> None:
        """Stop the server abruptly (``-m immediate``), keeping its data for :meth:`resume`."""
        stopped = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        if stopped.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {stopped.stderr or stopped.stdout}")

    def resume(self) -> None:
        """Start a halted server again on the same port."""
        assert self.root is not None, "server not started"
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        if started.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {started.stderr or started.stdout}")

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a fresh name when None); return its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        self._cleanup()

    def _cleanup(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (fails, never skips, without binaries)."""
    if find_bin_dir() is None:
        pytest.fail(_MISSING, pytrace=False)
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return pg_server.create_database()
