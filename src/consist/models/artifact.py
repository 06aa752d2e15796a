"""The artifact record: a file (or a table/array inside one) a run read or wrote."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from consist.models.queryable import QueryableModelMeta
from consist.models.run import utc_now

# Fixed namespace so that identical bytes always map to the same content_id,
# in every process and every store, without a lookup.
_CONTENT_NAMESPACE = uuid.UUID("6f1c2a64-5a0e-4f0b-9f57-3d1f6f3c9a10")


def content_id_for(digest: str | None) -> uuid.UUID | None:
    """Deterministic content identity for a labelled digest (``blake3:...``).

    Two artifacts with byte-identical content share a ``content_id`` even when
    they live at different URIs or were logged by different runs.
    """
    if not digest:
        return None
    return uuid.uuid5(_CONTENT_NAMESPACE, digest)


class Artifact(BaseModel, metaclass=QueryableModelMeta):
    """A logged file, directory, or a table/array inside a container file.

    Attributes
    ----------
    id:
        Unique artifact identifier (UUID).
    key:
        Semantic name, e.g. ``"households"``.
    uri:
        Portable location: ``mount://rel/path``, ``./rel/path`` (under
        ``run_dir``) or an absolute path.
    driver:
        Format family inferred from the extension (``parquet``, ``csv``, ...).
    hash:
        Labelled content digest (``blake3:<hex>``); ``None`` when not hashed.
    content_id:
        Identity shared by all artifacts with identical bytes.
    run_id:
        The run that first logged this artifact.
    meta:
        Free-form metadata (``**meta`` on ``log_artifact``).
    """

    __table_model__ = "ArtifactTable"

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    key: str
    uri: str
    driver: str = "other"
    hash: str | None = None
    content_id: uuid.UUID | None = None
    table_path: str | None = None
    array_path: str | None = None
    size_bytes: int | None = None
    run_id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utc_now)

    _abs_path: str | None = PrivateAttr(default=None)
    # True for a run's view of an artifact (its key/metadata as that run
    # logged it); the stored artifact row keeps the creator's key/metadata.
    _run_local: bool = PrivateAttr(default=False)

    @property
    def path(self) -> Path | None:
        """Absolute local path, when the tracker that returned it could resolve it."""
        return Path(self._abs_path) if self._abs_path else None

    @property
    def abs_path(self) -> str | None:
        """Absolute local path as a string (see :attr:`path`)."""
        return self._abs_path

    def with_local_path(self, abs_path: str | None) -> Artifact:
        """Attach the resolved local path (runtime only, never persisted)."""
        self._abs_path = abs_path
        return self

    @property
    def is_run_view(self) -> bool:
        """Whether this object carries a run's own key/metadata for a stored artifact."""
        return self._run_local

    def __fspath__(self) -> str:
        if not self._abs_path:
            raise TypeError(f"artifact {self.key!r} ({self.uri}) has no resolved local path")
        return self._abs_path
