"""Database schema for the metadata store, as numbered migrations.

Each migration is applied once, in order, inside one transaction, and
recorded in ``schema_version``. Never edit a released migration: add a new
one. Timestamps are stored as UTC ``TIMESTAMP`` values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step: a version number, a description and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, artifacts, links, content identities, stat cache",
        (
            """
            CREATE TABLE IF NOT EXISTS run (
                id VARCHAR PRIMARY KEY,
                model_name VARCHAR NOT NULL,
                description VARCHAR,
                status VARCHAR NOT NULL,
                tags VARCHAR[],
                year INTEGER,
                iteration INTEGER,
                stage VARCHAR,
                phase VARCHAR,
                parent_run_id VARCHAR,
                config_hash VARCHAR,
                input_hash VARCHAR,
                git_hash VARCHAR,
                signature VARCHAR,
                meta JSON,
                created_at TIMESTAMP NOT NULL,
                ended_at TIMESTAMP,
                updated_ns BIGINT NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX IF NOT EXISTS run_signature_idx ON run (signature)",
            "CREATE INDEX IF NOT EXISTS run_model_idx ON run (model_name)",
            "CREATE INDEX IF NOT EXISTS run_parent_idx ON run (parent_run_id)",
            """
            CREATE TABLE IF NOT EXISTS artifact (
                id UUID PRIMARY KEY,
                key VARCHAR NOT NULL,
                uri VARCHAR NOT NULL,
                driver VARCHAR,
                hash VARCHAR,
                content_id UUID,
                table_path VARCHAR,
                array_path VARCHAR,
                size_bytes BIGINT,
                run_id VARCHAR,
                meta JSON,
                created_at TIMESTAMP NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS artifact_key_idx ON artifact (key)",
            "CREATE INDEX IF NOT EXISTS artifact_uri_idx ON artifact (uri)",
            "CREATE INDEX IF NOT EXISTS artifact_content_idx ON artifact (content_id)",
            """
            CREATE TABLE IF NOT EXISTS run_artifact_link (
                run_id VARCHAR NOT NULL,
                artifact_id UUID NOT NULL,
                direction VARCHAR NOT NULL,
                key VARCHAR NOT NULL,
                meta JSON,
                PRIMARY KEY (run_id, artifact_id, direction)
            )
            """,
            "CREATE INDEX IF NOT EXISTS link_artifact_idx ON run_artifact_link (artifact_id)",
            "CREATE INDEX IF NOT EXISTS link_key_idx ON run_artifact_link (key)",
            """
            CREATE TABLE IF NOT EXISTS content_identity (
                id UUID PRIMARY KEY,
                hash VARCHAR NOT NULL,
                size_bytes BIGINT,
                first_seen_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS stat_cache (
                path VARCHAR PRIMARY KEY,
                dev UBIGINT NOT NULL,
                ino UBIGINT NOT NULL,
                size UBIGINT NOT NULL,
                mtime_ns BIGINT NOT NULL,
                ctime_ns BIGINT NOT NULL,
                digest VARCHAR NOT NULL,
                recorded_ns BIGINT NOT NULL
            )
            """,
        ),
    ),
)

MIGRATIONS += (
    Migration(
        2,
        "identity manifest (config, input digests, code identity) on each run",
        ("ALTER TABLE run ADD COLUMN IF NOT EXISTS identity JSON",),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL
)
"""
