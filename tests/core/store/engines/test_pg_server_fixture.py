"""The throwaway PostgreSQL server of the tests: a real server, a fresh database per test."""

from __future__ import annotations

import psycopg
import pytest

from pg_server import PostgresServer, find_bin_dir


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_each_test_gets_a_fresh_empty_database(pg_server: PostgresServer, pg_url: str) -> None:
    with psycopg.connect(_dsn(pg_url), autocommit=True) as con:
        assert con.info.host == "127.0.0.1"
        assert con.info.port == pg_server.port
        tables = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        con.execute("CREATE TABLE left_behind (x int)")
    assert pg_server.create_database() != pg_url  # another test's database is another one


def test_a_server_starts_and_stops_with_its_directory() -> None:
    if find_bin_dir() is None:
        pytest.fail("PostgreSQL binaries missing: .ci/run installs the 'postgresql' package")
    server = PostgresServer().start()
    root = server.root
    assert root is not None and (root / "data" / "PG_VERSION").exists()
    url = server.create_database("probe")
    with psycopg.connect(_dsn(url)) as con:
        assert con.execute("SELECT current_database()").fetchone() == ("probe",)
    server.stop()
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(_dsn(url), connect_timeout=2)
