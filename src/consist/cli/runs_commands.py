"""``consist runs`` and ``consist show``: what ran, and everything about one run."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import app, store_command
from consist.cli.errors import not_found, usage
from consist.cli.session import Session
from consist.core.query.run_rows import run_row as run_summary  # other commands import it

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.models.artifact import Artifact

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str | None) -> datetime | None:
    """``--since``: an ISO date/time (local time unless it names a zone) or ``30m``/``12h``/``2d``.

    Raises
    ------
    CliError
        (exit 2) For anything else.
    """
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return datetime.now().astimezone() - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise usage(
            f"--since {value!r}: use an ISO date or time (2026-12-04, 2026-12-04T18:00) or an "
            "age such as 30m, 12h, 2d, 1w"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def local_time(moment: datetime | None) -> str:
    """A timestamp as local time, to the second."""
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


_STATUS_STYLE = {"completed": "green", "failed": "red", "running": "yellow"}


def render_runs(console: Console, runs: list[dict[str, Any]], title: str) -> None:
    """A table of run summaries; columns that are empty for every run are left out."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    if not runs:
        console.print(f"{title}: no runs match")
        return
    cells: dict[str, list[str]] = {
        "run id": [escape(r["id"]) for r in runs],
        "model": [escape(r["model"]) for r in runs],
        "status": [],
        "created": [local_time(r["created_at"])[:16] for r in runs],
        "took": ["" if r["duration_s"] is None else f"{r['duration_s']:.1f}s" for r in runs],
        "year": ["" if r["year"] is None else str(r["year"]) for r in runs],
        "iter": ["" if r["iteration"] is None else str(r["iteration"]) for r in runs],
        "stage": [escape(r["stage"] or "") for r in runs],
        "tags": [escape(", ".join(r["tags"])) for r in runs],
    }
    for r in runs:
        status = r["status"] + (" (hit)" if r["cache_hit"] else "")
        style = _STATUS_STYLE.get(r["status"], "")
        cells["status"].append(f"[{style}]{status}[/]" if style else status)
    shown = [name for name, values in cells.items() if any(values)]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in shown:
        # On a narrow terminal the long columns (ids, tags) fold; the short ones stay whole.
        table.add_column(name, overflow="fold", no_wrap=name not in ("run id", "tags"))
    for i in range(len(runs)):
        table.add_row(*(cells[name][i] for name in shown))
    console.print(table)


@store_command(app, "runs", example="consist runs --model beam --status failed --since 1d")
def runs(
    session: Session,
    model: Annotated[str | None, typer.Option(help="Only runs of this model.")] = None,
    status: Annotated[
        str | None, typer.Option(help="completed, failed or running.", show_default=False)
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Runs carrying this tag (repeatable: all of them).")
    ] = None,
    year: Annotated[int | None, typer.Option(help="Only runs of this year.")] = None,
    iteration: Annotated[int | None, typer.Option(help="Only runs of this iteration.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only runs of this stage.")] = None,
    phase: Annotated[str | None, typer.Option(help="Only runs of this phase.")] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Only the steps of this scenario (its header run id).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only runs created since: 2026-12-04, 2026-12-04T18:00, 12h, 2d."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
) -> None:
    """List runs, newest first."""
    if status is not None and status not in ("completed", "failed", "running"):
        raise usage(f"--status {status!r}: use completed, failed or running")
    found = session.tracker().find_runs(
        model=model,
        status=status,
        tags=tag or None,
        year=year,
        iteration=iteration,
        stage=stage,
        phase=phase,
        parent_id=scenario,
        since=parse_since(since),
        limit=limit,
    )
    rows = [run_summary(r) for r in found]  # type: ignore[union-attr]
    session.emit(rows, lambda console: render_runs(console, rows, "runs"))


def artifact_summary(artifact: Artifact, direction: str) -> dict[str, Any]:
    """An artifact as ``show`` and ``artifacts`` list it, with whether its file is reachable."""
    path = artifact.abs_path
    return {
        "key": artifact.key,
        "direction": direction,
        "id": str(artifact.id),
        "driver": artifact.driver,
        "uri": artifact.uri,
        "path": path,
        "reachable": bool(path) and os.path.exists(path),
        "hash": artifact.hash,
        "size_bytes": artifact.size_bytes,
        "run_id": artifact.run_id,
    }


def _render_show(console: Console, data: dict[str, Any]) -> None:
    from rich.pretty import Pretty
    from rich.table import Table

    run = data["run"]
    console.print(f"[bold]{run['id']}[/]  {run['model']}  {run['status']}")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    for label, value in (
        ("created", local_time(run["created_at"])),
        ("duration", "" if run["duration_s"] is None else f"{run['duration_s']:.3f} s"),
        ("cache", f"hit of {run['cache_source']}" if run["cache_hit"] else "executed"),
        ("parent", run["parent_run_id"] or ""),
        ("year / iteration", f"{run['year'] or ''} / {run['iteration'] or ''}"),
        ("stage / phase", f"{run['stage'] or ''} / {run['phase'] or ''}"),
        ("tags", ", ".join(run["tags"])),
        ("signature", data["signature"] or ""),
        ("description", data["description"] or ""),
    ):
        if value.strip(" /"):
            facts.add_row(label, value)
    console.print(facts)
    if data["error"]:
        console.print(f"[red]error:[/] {data['error']}")
    console.print("[bold]config[/]")
    if data["config"] is None:
        console.print("  (no journal snapshot under --run-dir; pass the run directory)")
    else:
        console.print(Pretty(data["config"]))
    for direction in ("inputs", "outputs"):
        arts = data[direction]
        console.print(f"[bold]{direction}[/] ({len(arts)})")
        if not arts:
            continue
        table = Table(show_header=True, box=None, padding=(0, 2))
        for column in ("key", "driver", "reachable", "path or uri"):
            table.add_column(column, overflow="fold")
        for art in arts:
            table.add_row(
                art["key"],
                art["driver"] or "",
                "[green]yes[/]" if art["reachable"] else "[red]no[/]",
                art["path"] or art["uri"],
            )
        console.print(table)


@store_command(app, "show", example="consist show baseline_2030_3f2a9c")
def show(
    session: Session,
    run_id: Annotated[str, typer.Argument(help="The run's id.", show_default=False)],
) -> None:
    """One run: metadata, config, inputs and outputs (and whether each file is still there)."""
    tracker = session.tracker()
    run = tracker.get_run(run_id)
    if run is None:
        raise not_found("run", run_id, "list runs with `consist runs`")
    config = tracker.get_run_config(run_id, allow_missing=True)
    found = tracker.get_artifacts_for_run(run_id)
    data = {
        "run": run_summary(run),
        "signature": run.signature,
        "description": run.description,
        "error": run.meta.get("error"),
        "meta": run.meta,
        "config": config,
        "inputs": [artifact_summary(a, "input") for a in found.inputs.values()],
        "outputs": [artifact_summary(a, "output") for a in found.outputs.values()],
    }
    session.emit(data, lambda console: _render_show(console, data))
