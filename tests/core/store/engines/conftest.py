"""Store-level fixtures over both engines: ``store_engine`` and recorded runs.

``store_engine`` is parametrized over ``["duckdb", "postgresql"]``: a
function that opens a migrated :class:`MetadataStore` on a fresh DuckDB file
or a fresh database of the session's PostgreSQL server (requested only for
the ``postgresql`` case). ``record_runs`` produces real run snapshots (real
functions writing real files) with a journal-only tracker, to be written into
the store under test with ``sync_record``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import record_runs

from consist.core.store.metadata_store import MetadataStore

OpenStore = Callable[..., MetadataStore]


@pytest.fixture(params=["duckdb", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_store(**kwargs)``: a migrated store of this engine on one fresh database.

    Every call opens another store (its own connection manager) on the same
    database, as a second tracker or process would; all are closed at teardown.
    """
    opened: list[MetadataStore] = []
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        from consist.core.store.engines.pg_store import PostgresMetadataStore
        from consist.core.store.engines.postgres import PostgresConnectionManager

        def open_store(**kwargs: Any) -> MetadataStore:
            manager = PostgresConnectionManager(url, read_only=kwargs.get("read_only", False))
            store = PostgresMetadataStore(url, connections=manager, **kwargs)
            opened.append(store)
            store.ensure_schema()
            return store

    else:
        db_path = str(tmp_path / "store.duckdb")

        def open_store(**kwargs: Any) -> MetadataStore:
            store = MetadataStore(db_path, idle_release_s=0.05, **kwargs)
            opened.append(store)
            store.ensure_schema()
            return store

    open_store.engine = request.param  # type: ignore[attr-defined]
    yield open_store
    for store in reversed(opened):
        store.close()


@pytest.fixture
def recorded(tmp_path: Path) -> Callable[..., list]:
    """``recorded(count, **kw)``: see :func:`record_runs` (in this test's tmp_path)."""
    counter = iter(range(1000))

    def make(count: int, **kwargs: Any) -> list:
        return record_runs(tmp_path / f"producer{next(counter)}", count, **kwargs)

    return make
