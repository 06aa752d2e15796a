"""Browsing the store: ``artifacts``, ``history``, ``search``, ``summary``, ``scenarios``,
``scenario``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import app, store_command
from consist.cli.errors import not_found, usage
from consist.cli.runs_commands import artifact_summary, local_time, run_summary
from consist.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.core.tracker import Tracker
    from consist.models.artifact import Artifact
    from consist.models.run import Run

SCENARIO_TAG = "scenario_header"  # the tag Tracker.scenario() puts on header runs
_ALL_STEPS = 100_000  # every step of a scenario (find_runs needs a limit)
_STATUS_STYLE = {"completed": "green", "failed": "red", "running": "yellow"}


def human_size(size: int | None) -> str:
    """``size`` bytes as B/KiB/MiB/GiB."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - unreachable


def _e(value: Any) -> str:
    """Recorded text (keys, ids, paths) for a rich cell: brackets print as themselves."""
    from rich.markup import escape

    return escape("" if value is None else str(value))


def _styled_status(run: dict[str, Any]) -> str:
    status = run["status"] + (" (hit)" if run["cache_hit"] else "")
    style = _STATUS_STYLE.get(run["status"], "")
    return f"[{style}]{status}[/]" if style else status


def _took(run: dict[str, Any]) -> str:
    return "" if run["duration_s"] is None else f"{run['duration_s']:.1f}s"


# -- artifacts -----------------------------------------------------------------------------


def _artifact_row(artifact: Artifact, direction: str | None) -> dict[str, Any]:
    row = artifact_summary(artifact, direction or "")
    row.update(direction=direction, created_at=artifact.created_at)
    return row


def _render_artifacts(console: Console, rows: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    if not rows:
        console.print(f"{_e(title)}: no artifacts match")
        return
    table = Table(title=_e(title), title_justify="left")
    show_direction = any(row["direction"] for row in rows)
    columns = ["key", "driver", "created by", "created", "size", "on disk", "path"]
    if show_direction:
        columns.insert(1, "direction")
    for column in columns:
        table.add_column(column, overflow="fold", min_width=4)
    for row in rows:
        cells = [
            _e(row["key"]),
            _e(row["driver"]),
            _e(row["run_id"]),
            local_time(row["created_at"]),
            human_size(row["size_bytes"]),
            "[green]yes[/]" if row["reachable"] else "[red]no[/]",
            _e(row["path"] or row["uri"]),
        ]
        if show_direction:
            cells.insert(1, row["direction"])
        table.add_row(*cells)
    console.print(table)


@store_command(
    app, "artifacts", example="consist artifacts households_20261204_3f2a --direction output"
)
def artifacts(
    session: Session,
    run_id: Annotated[
        str | None,
        typer.Argument(help="Only this run's inputs and outputs.", show_default=False),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="Only artifacts with this key (the run's key with RUN_ID).")
    ] = None,
    driver: Annotated[str | None, typer.Option(help="Only this driver: parquet, csv, ...")] = None,
    direction: Annotated[
        str | None,
        typer.Option(
            help="input or output: the run's inputs/outputs with RUN_ID; else artifacts some run "
            "consumed/produced."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many artifacts.")] = 50,
) -> None:
    """List artifacts, newest first: one run's inputs and outputs, or the whole store's.

    JSON: a list of {key, direction, id, driver, uri, path, reachable, hash, size_bytes,
    run_id (the run that created it), created_at}; direction is null in a store-wide listing
    without --direction.
    """
    if direction is not None and direction not in ("input", "output"):
        raise usage(f"--direction {direction!r}: use input or output")
    tracker = session.tracker()
    rows: list[dict[str, Any]] = []
    if run_id is None:
        found = tracker.find_artifacts(key=key, driver=driver, direction=direction, limit=limit)
        rows = [_artifact_row(a, direction) for a in found]
        title = "artifacts"
    else:
        if tracker.get_run(run_id) is None:
            raise not_found("run", run_id, "list runs with `consist runs`")
        for side in ("input", "output"):
            if direction not in (None, side):
                continue
            role = {"creator": run_id} if side == "output" else {"consumer": run_id}
            found = tracker.find_artifacts(key=key, driver=driver, limit=limit, **role)
            rows += [_artifact_row(a, side) for a in found]
        rows.sort(key=lambda r: (r["created_at"], r["key"]), reverse=True)
        rows = rows[:limit]
        title = f"artifacts of {run_id}"
    session.emit(rows, lambda console: _render_artifacts(console, rows, title))


# -- history -------------------------------------------------------------------------------


def _history_entry(run: Run) -> dict[str, Any]:
    """A run of ``history``: its summary plus what differed from the run before it."""
    entry = run_summary(run)
    explanation = run.meta.get("cache_miss_explanation") or {}
    if entry["cache_hit"]:
        entry.update(compared_to=entry["cache_source"], changes=None, config_changes={})
        return entry
    config = explanation.get("config") or {}
    entry.update(
        compared_to=explanation.get("nearest_run_id"),
        changes=explanation.get("summary"),
        config_changes={
            name: {"old": change.get("old"), "new": change.get("new")}
            for name, change in sorted(config.items())
            if isinstance(change, dict)
        },
    )
    return entry


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _describe_change(entry: dict[str, Any]) -> str:
    if entry["cache_hit"]:
        return f"reused {entry['cache_source'] or 'an earlier run'}"
    if entry["config_changes"]:
        changes = list(entry["config_changes"].items())
        parts = [f"{k}: {_short(v['old'])} → {_short(v['new'])}" for k, v in changes[:5]]
        if len(changes) > 5:
            parts.append(f"+{len(changes) - 5} more config keys")
        rest = entry["changes"] or ""
        others = [
            p.strip() for p in rest.split(";") if p.strip() and not p.strip().startswith("config:")
        ]
        return "; ".join(parts + others)
    return entry["changes"] or ""


def _render_history(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"history of {_e(data['model'])}", title_justify="left")
    for column in ("run id", "status", "created", "took", "cache", "what changed"):
        table.add_column(column, overflow="fold", no_wrap=column == "run id", min_width=4)
    for entry in data["runs"]:
        table.add_row(
            _e(entry["id"]),
            _styled_status(entry),
            local_time(entry["created_at"]),
            _took(entry),
            "hit" if entry["cache_hit"] else "miss",
            _e(_describe_change(entry)),
        )
    console.print(table)


@store_command(app, "history", example="consist history households --limit 10")
def history(
    session: Session,
    model: Annotated[str, typer.Argument(help="The model name.", show_default=False)],
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 20,
) -> None:
    """A model's runs over time, newest first: status, cache hit or miss, duration, and what
    changed since the run it was compared with (config keys with old and new values).

    JSON: {model, runs}; runs is a list of run fields as in `consist runs --json`, plus
    compared_to (the run reused, or the nearest earlier run), changes (one-line summary)
    and config_changes {key: {old, new}}.
    """
    found = session.tracker().find_runs(model=model, limit=limit)
    if not found:
        raise not_found("model", model, "see the models with `consist summary`")
    data = {"model": model, "runs": [_history_entry(r) for r in found]}  # type: ignore[union-attr]
    session.emit(data, lambda console: _render_history(console, data))


# -- search --------------------------------------------------------------------------------


def _matches(tracker: Tracker, run: Run, needle: str) -> list[str]:
    """Where ``needle`` occurs in ``run``: id, model, tag:<t>, description, artifact:<key>."""
    found = []
    if needle in run.id.lower():
        found.append("id")
    if needle in run.model_name.lower():
        found.append("model")
    found += [f"tag:{t}" for t in run.tags if needle in t.lower()]
    if run.description and needle in run.description.lower():
        found.append("description")
    logged = tracker.get_artifacts_for_run(run.id)
    keys = {a.key for a in [*logged.inputs.values(), *logged.outputs.values()]}
    found += [f"artifact:{k}" for k in sorted(keys) if needle in k.lower()]
    return found


def _render_search(console: Console, text: str, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not rows:
        console.print(f"no runs mention {_e(repr(text))}")
        return
    table = Table(title=f"runs mentioning {_e(repr(text))}", title_justify="left")
    for column in ("run id", "model", "status", "created", "matched in"):
        table.add_column(column, overflow="fold", no_wrap=column == "run id", min_width=4)
    for row in rows:
        table.add_row(
            _e(row["id"]),
            _e(row["model"]),
            _styled_status(row),
            local_time(row["created_at"]),
            _e(", ".join(row["matched"])),
        )
    console.print(table)


@store_command(app, "search", example="consist search persons --limit 10")
def search(
    session: Session,
    text: Annotated[str, typer.Argument(help="Text to look for.", show_default=False)],
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
) -> None:
    """Runs whose id, model, tags, description or artifact keys contain TEXT (any case),
    newest first.

    JSON: a list of run fields as in `consist runs --json`, plus matched: where TEXT occurs
    ("id", "model", "tag:<tag>", "description", "artifact:<key>").
    """
    if not text.strip():
        raise usage("TEXT is empty: give something to search for, e.g. `consist search persons`")
    tracker = session.tracker()
    needle = text.strip().lower()
    rows = [
        {**run_summary(r), "matched": _matches(tracker, r, needle)}
        for r in tracker.search_runs(text, limit=limit)
    ]
    session.emit(rows, lambda console: _render_search(console, text.strip(), rows))


# -- summary -------------------------------------------------------------------------------


def _render_summary(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(data["by_status"].items()))
    span = "no runs yet"
    if data["first_run_at"] is not None:
        span = f"{local_time(data['first_run_at'])} → {local_time(data['last_run_at'])}"
    for label, value in (
        ("store", f"{_e(data['db_path'])} ({human_size(data['db_size_bytes'])})"),
        ("runs", f"{data['runs']}" + (f" ({statuses})" if statuses else "")),
        ("cache hits", str(data["cache_hits"])),
        ("runs from", span),
        ("artifacts", f"{data['artifacts']} ({data['links']} run links)"),
        ("scenarios", str(data["scenarios"])),
    ):
        facts.add_row(label, value)
    console.print(facts)
    if not data["by_model"]:
        return
    table = Table(title="runs by model", title_justify="left")
    names = sorted({s for m in data["by_model"] for s in m["statuses"]})
    for column in ("model", "runs", *names, "cache hits"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in data["by_model"]:
        table.add_row(
            _e(model["model"]),
            str(model["runs"]),
            *(str(model["statuses"].get(s, 0)) for s in names),
            str(model["cache_hits"]),
        )
    console.print(table)


@store_command(app, "summary", example="consist summary --json")
def summary(session: Session) -> None:
    """The store at a glance: runs by model and status, cache hits, the date range of runs,
    artifacts, scenarios and the file's size.

    JSON: {db_path, db_size_bytes, runs, cache_hits, by_status, by_model, first_run_at,
    last_run_at, artifacts, links, scenarios}; by_status is {status: n}, by_model a list of
    {model, runs, cache_hits, statuses {status: n}}.
    """
    data = session.tracker().store_summary()
    session.emit(data, lambda console: _render_summary(console, data))


# -- scenarios -----------------------------------------------------------------------------


def _steps(tracker: Tracker, header_id: str) -> list[Run]:
    """A scenario's steps, in the order they ran."""
    steps = tracker.find_runs(parent_id=header_id, limit=_ALL_STEPS)
    return sorted(steps, key=lambda r: (r.created_at, r.id))  # type: ignore[union-attr]


def _render_scenarios(console: Console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not rows:
        console.print("no scenarios in this store (record one with `tracker.scenario(...)`)")
        return
    table = Table(title="scenarios", title_justify="left")
    for column in ("scenario", "status", "created", "took", "steps", "failed", "hits"):
        table.add_column(column, overflow="fold", no_wrap=column == "scenario", min_width=4)
    for row in rows:
        table.add_row(
            _e(row["id"]),
            _styled_status(row),
            local_time(row["created_at"]),
            _took(row),
            str(row["steps"]),
            str(row["step_statuses"].get("failed", 0)),
            str(row["step_cache_hits"]),
        )
    console.print(table)


@store_command(app, "scenarios", example="consist scenarios --limit 10")
def scenarios(
    session: Session,
    limit: Annotated[int, typer.Option(min=1, help="At most this many scenarios.")] = 50,
) -> None:
    """Scenario header runs, newest first, with how many steps each ran.

    JSON: a list of run fields as in `consist runs --json`, plus steps (count),
    step_statuses {status: n} and step_cache_hits.
    """
    tracker = session.tracker()
    rows = []
    for header in tracker.find_runs(tags=[SCENARIO_TAG], limit=limit):
        steps = _steps(tracker, header.id)  # type: ignore[union-attr]
        statuses: dict[str, int] = {}
        for step in steps:
            statuses[step.status] = statuses.get(step.status, 0) + 1
        rows.append(
            {
                **run_summary(header),  # type: ignore[arg-type]
                "steps": len(steps),
                "step_statuses": statuses,
                "step_cache_hits": sum(bool(s.meta.get("cache_hit")) for s in steps),
            }
        )
    session.emit(rows, lambda console: _render_scenarios(console, rows))


def _render_scenario(console: Console, data: dict[str, Any]) -> None:
    from rich.tree import Tree

    header = data["header"]
    tree = Tree(
        f"[bold]{_e(header['id'])}[/]  {_e(header['model'])}  {_styled_status(header)}  "
        f"{local_time(header['created_at'])}  {_took(header)}  "
        f"[dim]{len(data['steps'])} step(s)[/]"
    )
    for step in data["steps"]:
        label = f"[bold]{_e(step['model'])}[/]  {_styled_status(step)}  {_took(step)}"
        label += f"  [dim]{_e(step['id'])}[/]"
        if step["year"] is not None:
            label += f"  [dim]year {step['year']}[/]"
        branch = tree.add(label)
        if step["inputs"]:
            branch.add("in: " + _e(", ".join(step["inputs"])))
        if step["outputs"]:
            branch.add("out: " + _e(", ".join(step["outputs"])))
    console.print(tree)
    if not data["steps"]:
        console.print("[dim](no steps recorded)[/]")


@store_command(app, "scenario", example="consist scenario baseline")
def scenario(
    session: Session,
    name: Annotated[str, typer.Argument(help="The scenario's name (its header run id).")],
) -> None:
    """One scenario: its header run and its steps, in the order they ran, as a tree.

    JSON: {header, steps}; header has the run fields of `consist runs --json` plus
    description; steps is a list of run fields plus inputs and outputs (artifact keys).
    """
    tracker = session.tracker()
    header = tracker.get_run(name)
    if header is None or SCENARIO_TAG not in header.tags:
        raise not_found("scenario", name, "list scenarios with `consist scenarios`")
    steps = []
    for step in _steps(tracker, name):
        logged = tracker.get_artifacts_for_run(step.id)
        steps.append(
            {**run_summary(step), "inputs": list(logged.inputs), "outputs": list(logged.outputs)}
        )
    data = {"header": {**run_summary(header), "description": header.description}, "steps": steps}
    session.emit(data, lambda console: _render_scenario(console, data))
