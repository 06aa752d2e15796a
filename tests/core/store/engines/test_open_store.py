"""open_store: the engine a tracker's options name (DuckDB file or PostgreSQL URL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consist.core.store.engines.opening import open_store
from consist.core.store.engines.pg_store import PostgresMetadataStore
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.schema import LATEST_VERSION


def test_a_url_opens_a_migrated_postgresql_store(pg_url: str, tmp_path: Path) -> None:
    store = open_store(db_path=None, db_url=pg_url)
    try:
        assert isinstance(store, PostgresMetadataStore)
        assert store.schema_version() == LATEST_VERSION
        assert store.db_path == pg_url  # no password in it to hide
    finally:
        store.close()
    assert list(tmp_path.iterdir()) == []  # nothing written beside


def test_a_path_opens_a_duckdb_store(tmp_path: Path) -> None:
    store = open_store(db_path=tmp_path / "sub" / "s.duckdb")
    try:
        assert type(store) is MetadataStore
        assert store.schema_version() == LATEST_VERSION
    finally:
        store.close()
    assert open_store(db_path=None) is None
    with pytest.raises(FileNotFoundError, match="read_only"):
        open_store(db_path=tmp_path / "absent.duckdb", read_only=True)


def test_both_or_a_bad_url_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="db_path and db_url"):
        open_store(db_path=tmp_path / "s.duckdb", db_url="postgresql://u@h/db")
    with pytest.raises(ValueError, match="db_url"):
        open_store(db_path=None, db_url="mysql://u@h/db")
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_server_fails_clearly() -> None:
    with pytest.raises(ConnectionError, match=r"db_url='postgresql://postgres@127\.0\.0\.1:1/"):
        open_store(db_path=None, db_url="postgresql://postgres@127.0.0.1:1/nothing")


def test_require_duckdb_names_db_url_and_the_feature(pg_url: str, tmp_path: Path) -> None:
    from consist.core.store.engines import require_duckdb

    duck = open_store(db_path=tmp_path / "s.duckdb")
    pg = open_store(db_path=None, db_url=pg_url)
    try:
        require_duckdb(None, "ingest()")
        require_duckdb(duck, "ingest()")
        with pytest.raises(NotImplementedError, match=r"^ingest\(\) is not supported yet.*db_url="):
            require_duckdb(pg, "ingest()")
    finally:
        duck.close()
        pg.close()
