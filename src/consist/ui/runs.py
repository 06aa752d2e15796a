"""What the run pages show: listings, one run, why it ran, scenarios and diffs.

Each function takes the tracker and the request's query (``{name: [values]}``)
and returns the JSON body of one endpoint, or raises :class:`ApiError`.
The paged listings ask the store (``MetadataStore.run_page``); everything
else goes through the Tracker's public methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from consist.core.query.cache_decision import explain_run
from consist.core.query.run_compare import compare_runs
from consist.ui.params import (
    ApiError,
    bad,
    boolean,
    check_known,
    integer,
    moment,
    one,
    paging,
    status,
)
from consist.ui.summaries import artifact_summary, run_summary

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.store.run_pages import RunPage
    from consist.core.tracker import Tracker
    from consist.models.run import Run

Query = Mapping[str, list[str]]

RUN_LIST_PARAMS = (
    "model",
    "status",
    "tag",
    "year",
    "scenario",
    "since",
    "until",
    "order",
    "page",
    "page_size",
)
SCENARIO_TAG = "scenario_header"


def _page_body(found: RunPage, page: int, size: int) -> dict[str, Any]:
    return {
        "total": found.total,
        "page": page,
        "page_size": size,
        "pages": max(1, -(-found.total // size)),
        "runs": [run_summary(r) for r in found.runs],
    }


def list_runs(tracker: Tracker, query: Query) -> dict[str, Any]:
    """``/api/runs``: one page of runs matching the filters, newest first, and the total.

    Filters: ``model``, ``status``, ``tag`` (repeatable: all of them),
    ``year``, ``scenario`` (the header run id: its steps), ``since`` and
    ``until`` (ISO dates or date-times; a date ``until`` includes that day);
    ``order`` ``newest`` (default) or ``oldest``; ``page`` (from 1) and
    ``page_size`` (1 to 500, default 50).
    """
    check_known(query, RUN_LIST_PARAMS)
    since = moment(query, "since")
    until = moment(query, "until", end_of_day=True)
    if since is not None and until is not None and since > until:
        raise bad("until", f"is before since ({until.isoformat()} < {since.isoformat()})")
    order = one(query, "order") or "newest"
    if order not in ("newest", "oldest"):
        raise bad("order", f"must be newest or oldest, got {order!r}")
    filters = {
        "model": one(query, "model"),
        "status": status(query),
        "year": integer(query, "year", low=-(2**31), high=2**31 - 1),  # an INTEGER column
        "parent_id": one(query, "scenario"),
        "since": since,
    }
    tags = [t for t in query.get("tag", []) if t]
    page, size = paging(query)
    found = store_of(tracker).run_page(
        filters, tags=tags or None, until=until, offset=(page - 1) * size, limit=size, order=order
    )
    return _page_body(found, page, size)


def filter_values(tracker: Tracker, query: Query) -> dict[str, Any]:
    """``/api/filters``: the models, statuses, years and tags the runs have, with counts."""
    check_known(query, ())
    found = store_of(tracker).run_filter_values()
    return {name: [{"value": v, "runs": n} for v, n in rows] for name, rows in found.items()}


def store_of(tracker: Tracker) -> Any:
    """The tracker's metadata store (``create_app`` checked that there is one)."""
    return tracker.store


def get_run_or_404(tracker: Tracker, run_id: str, parameter: str = "run_id") -> Run:
    """The run, or a 404 naming it (``parameter``: where the id came from)."""
    run = tracker.get_run(run_id)
    if run is None:
        raise ApiError(404, f"no run {run_id!r} in this store", parameter)
    return run


def run_detail(tracker: Tracker, run_id: str, query: Query) -> dict[str, Any]:
    """``/api/runs/{id}``: the run, its config, files (reachable or not), cache and scenario."""
    check_known(query, ())
    run = get_run_or_404(tracker, run_id)
    config = tracker.get_run_config(run_id, allow_missing=True)
    found = tracker.get_artifacts_for_run(run_id)
    parent = tracker.get_run(run.parent_run_id) if run.parent_run_id else None
    children = store_of(tracker).run_page({"parent_id": run_id}, limit=0)
    return {
        "run": run_summary(run),
        "signature": run.signature,
        "identity": {
            "config_hash": run.config_hash,
            "input_hash": run.input_hash,
            "git_hash": run.git_hash,
        },
        "error": run.meta.get("error"),
        "meta": run.meta,
        "config": config,
        "config_note": None
        if config is not None
        else f"no snapshot consist_runs/{run_id}.json under the run directory {tracker.run_dir}",
        "inputs": [artifact_summary(a, "input") for _, a in sorted(found.inputs.items())],
        "outputs": [artifact_summary(a, "output") for _, a in sorted(found.outputs.items())],
        "parent": run_summary(parent) if parent is not None else None,
        "steps": children.total,
        "explanation": explain(tracker, run),
    }


def explain(tracker: Tracker, run: Run) -> dict[str, Any]:
    """Why the run executed (field by field) or which run a cache hit reused.

    ``verdict`` is ``"hit"`` (``cache_source``: that run, ``source_run`` its
    summary when it is still in the store), ``"miss"`` (``nearest_run_id``
    and ``differences``: one row per field, ``{"section", "key", "old",
    "new", "change"}``; a first run or one forced with ``cache_mode``
    ``"overwrite"`` is a miss too) or ``"uncached"`` (no explanation was
    recorded; ``summary`` says why). ``explanation`` is the recorded dict as
    is. See :func:`consist.core.query.cache_decision.decide`.
    """
    found = explain_run(tracker, run)
    source, nearest = found.cache_source, found.nearest_run
    return {
        "run_id": run.id,
        "verdict": found.verdict if found.verdict in ("hit", "uncached") else "miss",
        "summary": found.summary,
        "cache_source": found.cache_source_id,
        "source_run": run_summary(source) if source is not None else None,
        "nearest_run_id": found.nearest_run_id,
        "nearest_run": run_summary(nearest) if nearest is not None else None,
        "cache_mode": found.cache_mode,
        "cached_outputs": found.cached_outputs,
        "differences": found.differences,
        "explanation": found.explanation,
    }


def run_explanation(tracker: Tracker, run_id: str, query: Query) -> dict[str, Any]:
    """``/api/runs/{id}/explanation``: see :func:`explain`."""
    check_known(query, ())
    return explain(tracker, get_run_or_404(tracker, run_id))


def list_scenarios(tracker: Tracker, query: Query) -> dict[str, Any]:
    """``/api/scenarios``: scenario header runs, newest first, paged."""
    check_known(query, ("page", "page_size"))
    page, size = paging(query)
    found = store_of(tracker).run_page(
        {}, tags=[SCENARIO_TAG], offset=(page - 1) * size, limit=size
    )
    body = _page_body(found, page, size)
    for row, run in zip(body["runs"], found.runs, strict=True):
        row["steps"] = run.meta.get("scenario_steps")
        row["executions"] = run.meta.get("scenario_executions")
        row["failed_steps"] = run.meta.get("scenario_failed_steps")
        row["cache_hits"] = run.meta.get("scenario_cache_hits")
    return body


def scenario_tree(tracker: Tracker, scenario_id: str, query: Query) -> dict[str, Any]:
    """``/api/scenarios/{id}``: the header run and its steps in execution order (paged).

    Each step lists its inputs and outputs; ``flows`` are the inputs a step
    read from another step of the page (``{"from", "to", "key"}``).
    """
    check_known(query, ("page", "page_size"))
    page, size = paging(query, default_size=100)
    header = tracker.get_run(scenario_id)
    if header is None:
        raise ApiError(404, f"no scenario {scenario_id!r} in this store", "scenario_id")
    found = store_of(tracker).run_page(
        {"parent_id": scenario_id}, offset=(page - 1) * size, limit=size, order="oldest"
    )
    body = _page_body(found, page, size)
    producer: dict[str, str] = {}
    steps = []
    for row, run in zip(body.pop("runs"), found.runs, strict=True):
        files = tracker.get_artifacts_for_run(run.id)
        row["inputs"] = [{"key": k, "id": str(a.id)} for k, a in sorted(files.inputs.items())]
        row["outputs"] = [{"key": k, "id": str(a.id)} for k, a in sorted(files.outputs.items())]
        for art in files.outputs.values():
            producer.setdefault(str(art.id), run.id)
        steps.append(row)
    flows = [
        {"from": producer[i["id"]], "to": step["id"], "key": i["key"]}
        for step in steps
        for i in step["inputs"]
        if i["id"] in producer and producer[i["id"]] != step["id"]
    ]
    body.update(
        scenario=run_summary(header),
        is_scenario=SCENARIO_TAG in header.tags,
        config=tracker.get_run_config(scenario_id, allow_missing=True),
        meta={k: v for k, v in header.meta.items() if k.startswith("scenario_")},
        steps=steps,
        flows=flows,
    )
    return body


def diff(tracker: Tracker, query: Query) -> dict[str, Any]:
    """``/api/diff?a=&b=``: config (snapshot, else facets) and inputs of two runs.

    ``all=true`` also lists equal keys. Unknown runs are a 404.
    """
    check_known(query, ("a", "b", "all"))
    ids = {}
    for side in ("a", "b"):
        value = one(query, side)
        if value is None:
            raise bad(side, "required: the id of the run to compare (diff?a=RUN_ID&b=RUN_ID)")
        ids[side] = value
    show_all = boolean(query, "all")
    first, second = (get_run_or_404(tracker, ids[s], s) for s in ("a", "b"))
    try:
        compared = compare_runs(tracker, ids["a"], ids["b"], include_equal=show_all)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    return {"run_a": run_summary(first), "run_b": run_summary(second), **compared}
