"""``consist db export``, ``db merge``, ``db purge``: move runs between stores, remove them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import db_app, store_command
from consist.cli.errors import PROBLEMS, CliError, not_found, usage
from consist.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.core.store.purge import PurgePlan
    from consist.core.store.shards import MergeResult, ShardManifest

_NO_RUN_HINT = "list runs with `consist runs`"


def _manifest_json(manifest: ShardManifest) -> dict[str, Any]:
    return {"path": str(manifest.path), **manifest.to_json()}


@store_command(db_app, "export", example="consist db export demand_2040_3f2a9c --out shard_2040")
def export(
    session: Session,
    run_id: Annotated[str, typer.Argument(help="The run to export.", show_default=False)],
    out: Annotated[
        str,
        typer.Option(
            "--out", help="The shard directory to create (must not exist).", show_default=False
        ),
    ],
) -> None:
    """Write a run and everything upstream of it into a shard directory.

    The shard holds the runs (the run, the producers of its inputs and their
    producers, cache hits handed those outputs, and scenario headers), their
    artifacts, links, facets and identity manifests in SHARD/store.duckdb (a
    Consist store), their journal snapshots in SHARD/journal/, and
    SHARD/shard.json describing it. Data files are not copied. The store is
    opened read-only.

    --json prints the manifest: {"path", "format", "version", "root_run_id",
    "run_ids", "counts": {table: rows}, "journal": ["run id", ...], "schema_version",
    "exported_at", "source"}.
    """
    tracker = session.tracker()
    if tracker.get_run(run_id) is None:
        raise not_found("run", run_id, _NO_RUN_HINT)
    try:
        manifest = tracker.export_runs(run_id, out)
    except ValueError as exc:
        raise usage(str(exc)) from None
    data = _manifest_json(manifest)

    def render(console: Console) -> None:
        from rich.markup import escape

        counts = manifest.counts
        console.print(
            f"exported {len(manifest.run_ids)} run(s), {counts.get('artifact', 0)} artifact(s), "
            f"{counts.get('run_artifact_link', 0)} link(s) and {len(manifest.journal)} journal "
            f"snapshot(s) to [bold]{escape(str(manifest.path))}[/]"
        )
        for rid in manifest.run_ids:
            console.print(f"  {rid}")
        console.print(
            f"bring it into another store with: consist db merge {escape(str(manifest.path))}",
            soft_wrap=True,
        )

    session.emit(data, render)


def _merge_json(result: MergeResult) -> dict[str, Any]:
    return {
        "shard": str(result.shard.path),
        "root_run_id": result.shard.root_run_id,
        "changed": result.changed,
        "added_runs": list(result.added_runs),
        "skipped_runs": list(result.skipped_runs),
        "inserted": dict(result.inserted),
        "journal_written": list(result.journal_written),
    }


@store_command(db_app, "merge", example="consist db merge shard_2040 --db-path team.duckdb")
def merge(
    session: Session,
    shard: Annotated[
        str, typer.Argument(help="A shard written by `consist db export`.", show_default=False)
    ],
) -> None:
    """Bring a shard into this store (idempotent: merging it again changes nothing).

    Runs absent here are added with their artifacts, links and facets, and
    their journal snapshots are written under --run-dir when absent; runs
    already here with the same content are skipped. A run or artifact here
    with different content is a conflict: nothing is merged and the command
    exits 1 naming them.

    --json prints {"shard", "root_run_id", "changed", "added_runs",
    "skipped_runs", "inserted": {table: rows}, "journal_written"}; on a
    conflict (exit 1): {"shard", "conflicts": [{"kind", "id", "fields"}]}.
    """
    from consist.core.store.shards import ShardConflictError, ShardError, read_manifest

    try:
        read_manifest(shard)  # a bad path is a usage error, before the store is opened
    except ShardError as exc:
        raise usage(str(exc)) from None
    tracker = session.tracker(write=True)
    try:
        result = tracker.merge_store(shard)
    except ShardConflictError as exc:
        if session.json:
            session.emit(
                {
                    "shard": shard,
                    "conflicts": [
                        {"kind": c.kind, "id": c.id, "fields": list(c.fields)}
                        for c in exc.conflicts
                    ],
                },
                lambda console: None,
            )
        raise CliError(str(exc), PROBLEMS) from None
    except ShardError as exc:
        raise usage(str(exc)) from None
    data = _merge_json(result)

    def render(console: Console) -> None:
        from rich.markup import escape

        if not result.changed:
            console.print(
                f"nothing to merge: all {len(result.skipped_runs)} run(s) of {escape(shard)} are "
                "already in this store"
            )
            return
        inserted = result.inserted
        console.print(
            f"merged {escape(shard)}: added {len(result.added_runs)} run(s), "
            f"{inserted.get('artifact', 0)} artifact(s), {inserted.get('run_artifact_link', 0)} "
            f"link(s); wrote {len(result.journal_written)} journal snapshot(s); "
            f"{len(result.skipped_runs)} run(s) were already here"
        )
        for rid in result.added_runs:
            console.print(f"  [green]+[/] {rid}")

    session.emit(data, render)


def _path_line(console: Console, path: str, note: str | None = None) -> None:
    """One path per line, never wrapped or read as markup (so it can be copied)."""
    from rich.markup import escape

    tail = f"  [dim]({escape(note)})[/]" if note else ""
    console.print(f"  {escape(path)}{tail}", soft_wrap=True)


def _render_plan(console: Console, plan: PurgePlan, run_dir: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    if plan.executed:
        head = f"purged {len(plan.runs)} run(s)"
    elif plan.blocked:
        head = f"[red]refused:[/] run {plan.run_id} has dependents (pass --cascade to purge them)"
    else:
        head = f"dry run: purging {plan.run_id} would remove {len(plan.runs)} run(s)"
    console.print(head)
    table = Table(box=None, padding=(0, 2), show_header=True)
    for column in ("run id", "model", "status", "why"):
        table.add_column(column, overflow="fold")
    for run in plan.runs:
        table.add_row(run.id, run.model, run.status, run.reason)
    for run in plan.blocked_by:
        table.add_row(run.id, run.model, run.status, f"[red]depends on it:[/] {run.reason}")
    console.print(table)
    console.print(f"links: {len(plan.links)}   artifact rows: {len(plan.artifacts)}")
    verb = "deleted" if plan.executed else "to delete"
    console.print(f"[bold]files {verb}[/] ({len(plan.files)})")
    for f in plan.files:
        _path_line(console, f.path)
    if plan.kept_files:
        console.print(f"[bold]files kept[/] ({len(plan.kept_files)})")
        for f in plan.kept_files:
            _path_line(console, f.path, f.reason)
    console.print(f"[bold]journal snapshots {verb}[/] ({len(plan.journal_files)})")
    for path in plan.journal_files:
        _path_line(console, path)
    if plan.missing_journal:
        console.print(
            f"[yellow]no journal snapshot under {escape(run_dir)} for "
            f"{len(plan.missing_journal)} run(s)[/] (pass the run directory with --run-dir)"
        )
    for error in plan.errors:
        console.print(f"[red]could not delete[/] {error}")
    if not plan.executed and not plan.blocked:
        console.print("nothing was changed; run again with --yes to purge")


@store_command(db_app, "purge", example="consist db purge households_20261204_0b72 --cascade --yes")
def purge(
    session: Session,
    run_id: Annotated[str, typer.Argument(help="The run to purge.", show_default=False)],
    yes: Annotated[
        bool, typer.Option("--yes", help="Purge (without it: a dry run that changes nothing).")
    ] = False,
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade",
            help="Also purge the runs that consumed its outputs (or were handed them as cache "
            "hits, or are its scenario steps), recursively.",
        ),
    ] = False,
) -> None:
    """Remove a run: its rows, links, owned artifacts, output files and journal snapshot.

    A dry run by default (the store is opened read-only); --yes acts. Only
    recorded output files inside --run-dir or a --mount are deleted; inputs
    and files elsewhere are listed as kept. A run that other runs depend on
    is refused (exit 1) unless --cascade, which lists and purges them too.

    --json prints the plan: {"run_id", "cascade", "executed", "blocked",
    "runs": [{"id", "model", "status", "reason"}], "blocked_by": [...],
    "links": [{"run_id", "artifact_id", "direction", "key"}], "artifacts":
    [{"id", "key", "uri", "run_id"}], "files": ["path", ...], "kept_files":
    [{"path", "reason"}], "journal_files": ["path", ...], "missing_journal":
    ["run id", ...], "deleted_rows": {table: rows}, "errors": ["message", ...]}.
    """
    from consist.core.store.purge import PurgeRefusedError

    tracker = session.tracker(write=yes)
    if tracker.get_run(run_id) is None:
        raise not_found("run", run_id, _NO_RUN_HINT)
    try:
        plan = tracker.purge_run(run_id, cascade=cascade, dry_run=True)
        if yes and not plan.blocked:
            plan = tracker.purge_run(run_id, cascade=cascade, dry_run=False)
    except PurgeRefusedError as exc:
        raise CliError(str(exc), PROBLEMS) from None
    run_dir = str(tracker.run_dir)
    session.emit(plan.to_json(), lambda console: _render_plan(console, plan, run_dir))
    if plan.blocked:
        raise CliError(
            f"run {run_id!r} has {len(plan.blocked_by)} dependent run(s); nothing was "
            "purged: pass --cascade to purge them too",
            PROBLEMS,
        )
    if plan.errors:
        raise CliError(
            f"purged the records, but {len(plan.errors)} file(s) could not be deleted: "
            f"{plan.errors[0]}",
            PROBLEMS,
        )
