"""Why a run executed, or which run a cache hit reused: the recorded explanation read back.

The explanation is recorded when a run starts (``run.meta["cache_miss_explanation"]``,
read with ``Tracker.explain_cache_miss``). :func:`decide` turns it into a
:class:`CacheDecision` (a verdict, a one-line summary, the runs involved) and
:func:`explanation_rows` into one row per differing field. ``consist why`` and
the web page's explanation both present these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from consist.models.run import Run

Verdict = Literal["hit", "miss", "first_run", "overwrite", "uncached"]

# Sections of a miss explanation holding ``{key: {"old", "new", "change"}}``, in the
# order they are listed; ``code`` comes last (its ``files`` and ``truncated`` nest).
EXPLANATION_SECTIONS = ("config", "inputs", "identity_inputs", "outputs", "other")


class ExplainsRuns(Protocol):
    """What :func:`explain_run` needs of a tracker."""

    def get_run(self, run_id: str) -> Run | None: ...

    def explain_cache_miss(self, run_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class CacheDecision:
    """Why a run executed or where its cache hit came from.

    Attributes
    ----------
    verdict:
        ``"hit"`` (outputs reused from ``cache_source_id``), ``"miss"``
        (compared with ``nearest_run_id``), ``"first_run"`` (no earlier
        completed run of its model), ``"overwrite"`` (re-executed with
        ``cache_mode='overwrite'``; ``nearest_run_id`` may be set) or
        ``"uncached"`` (no explanation was recorded; ``summary`` says why).
    summary:
        One line: for a hit or an uncached run, the reason; otherwise the
        recorded summary (what differs), as recorded.
    explanation:
        The recorded explanation as is (None for an uncached run).
    cache_source_id, cache_source:
        A hit's source run id and that run (None when no longer in the store).
    nearest_run_id, nearest_run:
        The run a miss was compared with, and that run (None when gone).
    cache_mode:
        ``"overwrite"`` when the run was forced to execute, else None.
    cached_outputs:
        Why runs with the same signature were not reused (their outputs were
        gone or changed), else None.
    differences:
        :func:`explanation_rows` of the explanation (empty for a hit or an
        uncached run).
    """

    verdict: Verdict
    summary: str | None
    explanation: dict[str, Any] | None
    cache_source_id: str | None = None
    cache_source: Run | None = None
    nearest_run_id: str | None = None
    nearest_run: Run | None = None
    cache_mode: str | None = None
    cached_outputs: str | None = None
    differences: list[dict[str, Any]] = field(default_factory=list)


def uncached_reason(run: Run) -> str:
    """Why ``run`` has no recorded cache explanation."""
    disabled = run.meta.get("cache_disabled")
    if disabled:
        return f"caching was off for this run: {disabled}"
    return (
        "no cache explanation was recorded for this run (it was not looked up in the "
        "cache when it started, e.g. recorded without a database or by an older version)"
    )


def decide(
    run: Run,
    recorded: Mapping[str, Any] | None,
    get_run: Callable[[str], Run | None],
) -> CacheDecision:
    """The cache decision of ``run`` from its recorded explanation.

    Parameters
    ----------
    run:
        The run explained.
    recorded:
        Its recorded explanation (``Tracker.explain_cache_miss(run.id)``), or
        None when none was recorded.
    get_run:
        Looks a run up by id (``Tracker.get_run``): the hit's source and the
        nearest run are returned when they are still in the store.

    Returns
    -------
    CacheDecision
    """
    explanation = dict(recorded) if recorded is not None else None
    if explanation is not None and explanation.get("cache_hit"):
        source_id = explanation.get("cache_source")
        source = get_run(source_id) if source_id else None
        summary = f"served from run {source_id}" + (
            "" if source is not None else " (no longer in this store)"
        )
        return CacheDecision(
            verdict="hit",
            summary=summary,
            explanation=explanation,
            cache_source_id=source_id,
            cache_source=source,
        )
    if explanation is None:
        return CacheDecision(verdict="uncached", summary=uncached_reason(run), explanation=None)
    nearest_id = explanation.get("nearest_run_id")
    cache_mode = explanation.get("cache_mode")
    verdict: Verdict = "miss" if nearest_id is not None else "first_run"
    if cache_mode == "overwrite":
        verdict = "overwrite"
    return CacheDecision(
        verdict=verdict,
        summary=explanation.get("summary"),
        explanation=explanation,
        nearest_run_id=nearest_id,
        nearest_run=get_run(nearest_id) if nearest_id else None,
        cache_mode=cache_mode,
        cached_outputs=explanation.get("cached_outputs"),
        differences=explanation_rows(explanation),
    )


def explain_run(source: ExplainsRuns, run: Run) -> CacheDecision:
    """:func:`decide` with the explanation and runs ``source`` (a Tracker) records."""
    return decide(run, source.explain_cache_miss(run.id), source.get_run)


def explanation_rows(recorded: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The differences of a recorded miss explanation, one row per field.

    Each row is ``{"section", "key", "old", "new", "change"}``; section is one
    of :data:`EXPLANATION_SECTIONS`, ``"code"`` or ``"code file"`` (a file
    whose state made the code identity differ). ``change`` is the recorded one,
    else ``"added"`` (only a new value), ``"removed"`` (only an old one) or
    ``"changed"``.
    """
    rows: list[dict[str, Any]] = []

    def add(section: str, key: str, entry: Any) -> None:
        if not isinstance(entry, Mapping):
            entry = {"old": None, "new": entry}
        old, new = entry.get("old"), entry.get("new")
        change = entry.get("change") or (
            "added"
            if old is None and new is not None
            else "removed"
            if new is None and old is not None
            else "changed"
        )
        rows.append({"section": section, "key": key, "old": old, "new": new, "change": change})

    for section in EXPLANATION_SECTIONS:
        for key, entry in (recorded.get(section) or {}).items():
            add(section, str(key), entry)
    for key, entry in (recorded.get("code") or {}).items():
        if key in ("files", "truncated") and isinstance(entry, Mapping):
            for name, change in entry.items():
                add("code file" if key == "files" else "code", str(name), change)
        elif key == "container" and isinstance(entry, Mapping):
            # A container step's definition: one row per field that changed.
            for name, change in entry.items():
                add("code", f"container.{name}", change)
        else:
            add("code", str(key), entry)
    return rows
