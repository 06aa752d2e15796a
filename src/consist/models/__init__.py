"""Records (``Run``, ``Artifact``, ...) and the table models of the metadata store.

Names are imported lazily (PEP 562): the records cost a few milliseconds, the
table models import SQLModel/SQLAlchemy (~200 ms) and load only when named.

In SQLModel/SQLAlchemy statements ``Run`` and ``Artifact`` stand for their
tables (``select(Run).where(Run.model_name == "x")``); the other tables are
queried through their table models, e.g. ``RunArtifactLink`` for the
run-artifact links. See :mod:`consist.models.tables`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_TABLES = "consist.models.tables"

_EXPORTS: dict[str, str] = {
    "Run": "consist.models.run",
    "Artifact": "consist.models.artifact",
    "ConsistRecord": "consist.models.records",
    "RunArtifacts": "consist.models.records",
    "RunResult": "consist.models.results",
    "RunTable": _TABLES,
    "ArtifactTable": _TABLES,
    "RunArtifactLink": _TABLES,
    "LineageGroupAlias": _TABLES,
    "ContentIdentity": _TABLES,
    "StatCacheRow": _TABLES,
    "ConfigFacet": _TABLES,
    "RunFacet": _TABLES,
    "RunConfigKV": _TABLES,
    "ArtifactFacet": _TABLES,
    "ArtifactKV": _TABLES,
    "IngestedArtifact": _TABLES,
    "SchemaProfile": _TABLES,
    "ArtifactSchemaLink": _TABLES,
    "SchemaVersion": _TABLES,
    "METADATA": _TABLES,
}

__all__ = [
    "METADATA",
    "Artifact",
    "ArtifactFacet",
    "ArtifactKV",
    "ArtifactSchemaLink",
    "ArtifactTable",
    "ConfigFacet",
    "ConsistRecord",
    "ContentIdentity",
    "IngestedArtifact",
    "LineageGroupAlias",
    "Run",
    "RunArtifactLink",
    "RunArtifacts",
    "RunConfigKV",
    "RunFacet",
    "RunResult",
    "RunTable",
    "SchemaProfile",
    "SchemaVersion",
    "StatCacheRow",
]

if TYPE_CHECKING:  # pragma: no cover
    from consist.models.artifact import Artifact
    from consist.models.records import ConsistRecord, RunArtifacts
    from consist.models.results import RunResult
    from consist.models.run import Run
    from consist.models.tables import (
        METADATA,
        ArtifactFacet,
        ArtifactKV,
        ArtifactSchemaLink,
        ArtifactTable,
        ConfigFacet,
        ContentIdentity,
        IngestedArtifact,
        LineageGroupAlias,
        RunArtifactLink,
        RunConfigKV,
        RunFacet,
        RunTable,
        SchemaProfile,
        SchemaVersion,
        StatCacheRow,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'consist.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
