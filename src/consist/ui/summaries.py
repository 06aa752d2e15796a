"""The JSON shapes of runs and artifacts on the page, and a JSON encoder for stored values."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consist.core.query.run_rows import run_row

if TYPE_CHECKING:  # pragma: no cover
    from consist.models.artifact import Artifact
    from consist.models.run import Run


def run_summary(run: Run) -> dict[str, Any]:
    """A run as a listing row (:func:`~consist.core.query.run_rows.run_row`) with its
    description and end time."""
    return {**run_row(run), "description": run.description, "ended_at": run.ended_at}


def artifact_summary(artifact: Artifact, direction: str | None = None) -> dict[str, Any]:
    """An artifact with its local path and whether that file is still on disk."""
    path = artifact.abs_path
    found: dict[str, Any] = {
        "id": str(artifact.id),
        "key": artifact.key,
        "driver": artifact.driver,
        "uri": artifact.uri,
        "path": path,
        "reachable": bool(path) and os.path.exists(path),  # type: ignore[arg-type]
        "hash": artifact.hash,
        "size_bytes": artifact.size_bytes,
        "run_id": artifact.run_id,
        "created_at": artifact.created_at,
        "table_path": artifact.table_path,
        "array_path": artifact.array_path,
        "missing_since": (artifact.meta or {}).get("missing_since"),
    }
    if direction is not None:
        found["direction"] = direction
    return found


def jsonable(value: Any) -> Any:
    """``value`` with every part JSON can hold as is, the rest made text.

    Datetimes and dates become ISO 8601; UUIDs, paths and decimals text (a
    decimal that is a whole number stays a number); non-finite floats
    ``"NaN"``/``"Infinity"``/``"-Infinity"`` (strict JSON has no such
    numbers); numpy scalars their Python value; bytes ``"<N bytes>"``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Path):
        return str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)
