"""``consist validate`` and ``consist preview``: are the recorded files intact, what is in them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import app, store_command
from consist.cli.errors import PROBLEMS, CliError, not_found
from consist.cli.session import Session
from consist.core.hot.preview import first_rows

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.core.run.artifact_check import ValidationReport
    from consist.core.tracker import Tracker
    from consist.models.artifact import Artifact

_STATUS_STYLE = {
    "ok": "green",
    "missing": "red",
    "changed": "red",
    "unresolved": "yellow",
    "unhashed": "dim",
}


@contextmanager
def progress_bar(session: Session, description: str) -> Iterator[Callable[[int, int], None]]:
    """An ``on_progress(done, total)`` callback drawing a rich bar on stderr.

    Drawn only when stderr is a terminal, and never under ``--json``;
    removed when done.
    """
    if session.json:
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update


def _check_runs(tracker: Tracker, run_ids: list[str]) -> None:
    for run_id in run_ids:
        if tracker.get_run(run_id) is None:
            raise not_found("run", run_id, "list runs with `consist runs`")


def _render_validation(console: Console, report: ValidationReport) -> None:
    counts = report.counts
    total = len(report.checks)
    scope = "in the store" if report.run_ids is None else "of " + ", ".join(report.run_ids)
    if total == 0:
        console.print(f"no artifacts recorded ({scope})")
        return
    parts = [f"[{_STATUS_STYLE[s]}]{n} {s}[/]" for s, n in counts.items() if n or s == "ok"]
    console.print(f"checked {total} artifact(s) {scope}: " + ", ".join(parts))
    for check in report.problems:  # one line each: paths stay whole (grep, copy)
        style = _STATUS_STYLE[check.status]
        since = f"  (missing since {check.missing_since})" if check.missing_since else ""
        console.print(
            f"  [{style}]{check.status:<10}[/] {check.key}  [dim]{check.run_id or '-'}[/]  "
            f"{check.path or check.uri}{since}",
            soft_wrap=True,
        )
    if counts["unresolved"]:
        console.print(
            "unresolved URIs name a mount this command was not given: pass --mount NAME=PATH"
        )
    if report.fixed:
        console.print(
            f"--fix: marked {len(report.marked_missing)} artifact(s) missing "
            f"(meta missing_since), cleared the flag of {len(report.cleared)} found again"
        )
    elif counts["missing"]:
        console.print("record the missing ones with `consist validate --fix`")
    if report.ok:
        console.print("[green]all recorded files are intact[/]")


@store_command(app, "validate", example="consist validate --fix")
def validate(
    session: Session,
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Check only these runs' inputs and outputs.", show_default=False),
    ] = None,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Record missing files in the store (artifact meta missing_since) and clear "
            "the flag of files that are back. Opens the store for writing.",
        ),
    ] = False,
) -> None:
    """Check that recorded files still exist and hold their recorded digests.

    Unchanged files are judged by the stat cache without being read. Exit 0
    when every file is intact, 1 when a file is missing or changed (or its
    mount was not given), 5 for an unknown run.

    JSON: {"ok", "run_ids", "counts": {status: n}, "fixed", "marked_missing",
    "cleared", "checks": [{"artifact_id", "key", "uri", "driver", "run_id",
    "path", "expected_hash", "status", "missing_since"}]} with status one of
    ok, missing, changed, unresolved, unhashed.
    """
    ids = list(dict.fromkeys(run_ids or []))
    _check_runs(session.tracker(), ids)  # bad input fails before the store is opened to write
    tracker = session.tracker(write=fix)
    with progress_bar(session, "validating files") as on_progress:
        report = tracker.validate_artifacts(ids or None, fix=fix, on_progress=on_progress)
    session.emit(report.to_dict(), lambda console: _render_validation(console, report))
    if not report.ok:
        raise typer.Exit(PROBLEMS)


def _artifact_facts(artifact: Artifact) -> dict[str, Any]:
    return {
        "key": artifact.key,
        "id": str(artifact.id),
        "driver": artifact.driver,
        "uri": artifact.uri,
        "path": artifact.abs_path,
        "run_id": artifact.run_id,
    }


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _render_preview(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    art = data["artifact"]
    where = art["path"] if data["source"] == "file" else "rows ingested into the store"
    console.print(f"[bold]{art['key']}[/] ({art['driver']}) from {where}", soft_wrap=True)
    table = Table(caption=f"first {len(data['rows'])} row(s)", caption_justify="left")
    for name, kind in zip(data["columns"], data["types"], strict=True):
        table.add_column(f"{name}\n[dim]{kind}[/]", overflow="fold")
    for row in data["rows"]:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


@store_command(app, "preview", example="consist preview persons --rows 20")
def preview(
    session: Session,
    key_or_id: Annotated[
        str, typer.Argument(help="Artifact key (newest) or id.", show_default=False)
    ],
    rows: Annotated[int, typer.Option("--rows", "-n", min=1, help="Rows to show.")] = 10,
    run: Annotated[
        str | None,
        typer.Option("--run", help="The artifact this run logged under KEY_OR_ID."),
    ] = None,
) -> None:
    """First rows of a table artifact (parquet, csv, json; or its ingested rows).

    When the file is gone but its rows were ingested, they come from the
    store. Exit 1 for an artifact that is not a table or whose data is gone,
    5 for an unknown artifact or run.

    JSON: {"artifact": {"key", "id", "driver", "uri", "path", "run_id"},
    "source": "file" | "store", "columns": [names], "types": [DuckDB types],
    "rows": [[values, ...], ...]}.
    """
    tracker = session.tracker()
    if run is not None and tracker.get_run(run) is None:
        raise not_found("run", run, "list runs with `consist runs`")
    artifact = tracker.get_artifact(key_or_id, run_id=run)
    if artifact is None:
        raise not_found(
            "artifact",
            key_or_id,
            "list a run's artifacts with `consist show RUN_ID`" + (f" (run {run})" if run else ""),
        )
    path = artifact.abs_path
    on_disk = bool(path) and os.path.exists(path)  # type: ignore[arg-type]
    try:
        relation = tracker.load(artifact)
    except FileNotFoundError:
        raise CliError(
            f"artifact {artifact.key!r}: its file is gone ({path or artifact.uri}) and its rows "
            "were not ingested; restore the file (`consist validate` lists missing files)",
            PROBLEMS,
        ) from None
    except ValueError:
        raise CliError(
            f"artifact {artifact.key!r} is a {artifact.driver!r} file, not a table: preview "
            "reads parquet, csv and json artifacts, or rows ingested into the store",
            PROBLEMS,
        ) from None
    try:
        columns, types, values = first_rows(relation, rows)
    except TypeError:
        raise CliError(
            f"artifact {artifact.key!r} ({artifact.driver}) has no row form to preview; preview "
            "one of its tables (e.g. a child artifact of an HDF5 container)",
            PROBLEMS,
        ) from None
    data = {
        "artifact": _artifact_facts(artifact),
        "source": "file" if on_disk else "store",
        "columns": columns,
        "types": types,
        "rows": values,
    }
    session.emit(data, lambda console: _render_preview(console, data))
