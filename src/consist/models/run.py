"""The run record: one execution of a model step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from consist.models.html import run_html
from consist.models.queryable import QueryableModelMeta

RUN_STATUSES = ("running", "completed", "failed")


def utc_now() -> datetime:
    """Timezone-aware current time in UTC (all persisted timestamps use it)."""
    return datetime.now(UTC)


class Run(BaseModel, metaclass=QueryableModelMeta):
    """One execution of a model step, as recorded in the journal and the store.

    Attributes
    ----------
    id:
        Unique run identifier.
    model_name:
        The model or process that ran (``model=`` on ``begin_run``).
    status:
        ``"running"``, ``"completed"`` or ``"failed"``.
    tags, year, iteration, stage, phase, parent_run_id:
        Workflow dimensions used by the query helpers.
    config_hash, input_hash, git_hash, signature:
        Identity digests. ``signature`` folds all of them (and the identity
        payload version) into the cache key.
    meta:
        Free-form metadata (``log_meta``, error text, cache provenance).
    created_at, ended_at:
        UTC timestamps of start and end.
    """

    __table_model__ = "RunTable"

    model_config = ConfigDict(validate_assignment=False, extra="forbid")

    id: str
    model_name: str
    description: str | None = None
    status: str = "running"
    tags: list[str] = Field(default_factory=list)
    year: int | None = None
    iteration: int | None = None
    stage: str | None = None
    phase: str | None = None
    parent_run_id: str | None = None
    config_hash: str | None = None
    input_hash: str | None = None
    git_hash: str | None = None
    signature: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utc_now)
    ended_at: datetime | None = None

    @property
    def name(self) -> str:
        """Alias of :attr:`model_name`."""
        return self.model_name

    @property
    def duration_seconds(self) -> float | None:
        """Wall time between start and end, or None while running."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.created_at).total_seconds()

    @property
    def cache_hit(self) -> bool:
        """True when this run reused the outputs of an earlier identical run."""
        return bool(self.meta.get("cache_hit", False))

    def _repr_html_(self) -> str:
        """The run as an HTML table in a notebook (see :mod:`consist.models.html`)."""
        return run_html(self)
