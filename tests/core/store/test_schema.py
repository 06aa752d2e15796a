"""Numbered migrations recorded in schema_version; upgrades keep existing rows."""

from __future__ import annotations

from pathlib import Path

import duckdb

from consist import Tracker
from consist.core.store.metadata_store import MetadataStore
from consist.core.store.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_DDL


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))
    assert all(m.description and m.statements for m in MIGRATIONS)


def test_fresh_store_applies_every_migration_once(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    store = MetadataStore(str(db))
    assert store.ensure_schema() == LATEST_VERSION
    assert store.ensure_schema() == LATEST_VERSION  # idempotent
    store.close()
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    versions = [r[0] for r in rows]
    con.close()
    assert versions == list(range(1, LATEST_VERSION + 1))


def test_upgrade_from_version_one_keeps_rows(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    con = duckdb.connect(str(db))
    con.execute(SCHEMA_VERSION_DDL)
    for statement in MIGRATIONS[0].statements:
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (1, 'v1', now())")
    con.execute(
        "INSERT INTO run (id, model_name, status, tags, meta, created_at) "
        "VALUES ('old', 'legacy', 'completed', [], '{}', now())"
    )
    con.close()
    tracker = Tracker(tmp_path / "runs", db_path=db, project_root=tmp_path)
    assert tracker.store.schema_version() == LATEST_VERSION
    old = tracker.get_run("old")
    assert old is not None and old.model_name == "legacy" and old.status == "completed"
    with tracker.start_run("new", "legacy", config={"x": 1}):
        pass
    assert {r.id for r in tracker.find_runs(model="legacy")} == {"old", "new"}
    tracker.close()
