"""A run as a listing row: the plain fields ``consist runs --json`` and the web page show."""

from __future__ import annotations

from typing import Any

from consist.models.run import Run


def run_row(run: Run) -> dict[str, Any]:
    """A run's identity, status, cache, workflow dimensions and timing as a plain dict.

    Parameters
    ----------
    run:
        The run.

    Returns
    -------
    dict
        ``id``, ``model``, ``status``, ``created_at``, ``duration_s`` (None
        while running), ``cache_hit``, ``cache_source``, ``year``,
        ``iteration``, ``stage``, ``phase``, ``tags`` and ``parent_run_id``.
    """
    duration = None
    if run.ended_at is not None:
        duration = round((run.ended_at - run.created_at).total_seconds(), 3)
    return {
        "id": run.id,
        "model": run.model_name,
        "status": run.status,
        "created_at": run.created_at,
        "duration_s": duration,
        "cache_hit": bool(run.meta.get("cache_hit")),
        "cache_source": run.meta.get("cache_source"),
        "year": run.year,
        "iteration": run.iteration,
        "stage": run.stage,
        "phase": run.phase,
        "tags": list(run.tags),
        "parent_run_id": run.parent_run_id,
    }
