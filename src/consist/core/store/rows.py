"""Row layout of the metadata tables and conversion to and from records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from consist.models.artifact import Artifact
from consist.models.run import Run

RUN_COLUMNS = (
    "id, model_name, description, status, tags, year, iteration, stage, phase, "
    "parent_run_id, config_hash, input_hash, git_hash, signature, meta, created_at, ended_at"
)
ARTIFACT_COLUMNS = (
    "id, key, uri, driver, hash, content_id, table_path, array_path, size_bytes, "
    "run_id, meta, created_at"
)

# Artifact columns as a run saw them: the link's key and metadata.
LINKED_ARTIFACT_COLUMNS = (
    "a.id, l.key, a.uri, a.driver, a.hash, a.content_id, a.table_path, a.array_path, "
    "a.size_bytes, a.run_id, coalesce(l.meta, a.meta), a.created_at"
)


def to_db_time(value: datetime | None) -> datetime | None:
    """Naive UTC timestamp for a ``TIMESTAMP`` column."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def from_db_time(value: datetime | None) -> datetime | None:
    """Timezone-aware UTC timestamp from a ``TIMESTAMP`` column."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC)


def json_dump(value: Mapping[str, Any] | None) -> str:
    """Stable JSON text for a JSON column."""
    return json.dumps(value or {}, default=str, sort_keys=True)


def json_load(value: Any) -> dict[str, Any]:
    """A dict from a JSON column value."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return json.loads(value)


def run_from_row(row: Sequence[Any]) -> Run:
    """Build a :class:`Run` from a row in ``RUN_COLUMNS`` order."""
    return Run.model_construct(
        id=row[0],
        model_name=row[1],
        description=row[2],
        status=row[3],
        tags=list(row[4] or []),
        year=row[5],
        iteration=row[6],
        stage=row[7],
        phase=row[8],
        parent_run_id=row[9],
        config_hash=row[10],
        input_hash=row[11],
        git_hash=row[12],
        signature=row[13],
        meta=json_load(row[14]),
        created_at=from_db_time(row[15]),
        ended_at=from_db_time(row[16]),
    )


def _as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def artifact_from_row(row: Sequence[Any]) -> Artifact:
    """Build an :class:`Artifact` from a row in ``ARTIFACT_COLUMNS`` order."""
    return Artifact.model_construct(
        id=_as_uuid(row[0]),
        key=row[1],
        uri=row[2],
        driver=row[3] or "other",
        hash=row[4],
        content_id=_as_uuid(row[5]),
        table_path=row[6],
        array_path=row[7],
        size_bytes=row[8],
        run_id=row[9],
        meta=json_load(row[10]),
        created_at=from_db_time(row[11]),
    )


def run_params(run: Run, updated_ns: int) -> list[Any]:
    """Run row values in ``RUN_COLUMNS`` order plus ``updated_ns``."""
    return [
        run.id,
        run.model_name,
        run.description,
        run.status,
        list(run.tags),
        run.year,
        run.iteration,
        run.stage,
        run.phase,
        run.parent_run_id,
        run.config_hash,
        run.input_hash,
        run.git_hash,
        run.signature,
        json_dump(run.meta),
        to_db_time(run.created_at),
        to_db_time(run.ended_at),
        updated_ns,
    ]


def artifact_params(art: Artifact) -> list[Any]:
    """Artifact row values in ``ARTIFACT_COLUMNS`` order."""
    return [
        str(art.id),
        art.key,
        art.uri,
        art.driver,
        art.hash,
        str(art.content_id) if art.content_id else None,
        art.table_path,
        art.array_path,
        art.size_bytes,
        art.run_id,
        json_dump(art.meta),
        to_db_time(art.created_at),
    ]
