"""``consist db inspect|doctor|rebuild|compact``: the health of the store itself."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import db_app, store_command
from consist.cli.errors import PROBLEMS, usage
from consist.cli.session import Session
from consist.cli.store_access import DEFAULT_DB, lock_timeout, not_on_postgres, resolve_url

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.core.store.doctor import DoctorReport


def human_size(n: int) -> str:
    """Bytes as B/KiB/MiB/GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


# -- inspect ----------------------------------------------------------------------------


def _render_inspect(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"[bold]{data['db_path']}[/]")
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    wal = f" (+ {human_size(data['wal_bytes'])} write-ahead log)" if data["wal_bytes"] else ""
    facts.add_row("size", human_size(data["size_bytes"]) + wal)
    facts.add_row("schema version", str(data["schema_version"]))
    facts.add_row("run dir", data["run_dir"])
    console.print(facts)
    table = Table(title="tables", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in data["tables"].items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    pending = []
    if data["logged_writes"]:
        pending.append(f"{data['logged_writes']} logged run write(s) not applied to the tables")
    if data["journal_pending"]:
        pending.append(
            f"{len(data['journal_pending'])} journal snapshot(s) the database may lack: "
            + ", ".join(data["journal_pending"][:10])
        )
    if data["dead_starts"]:
        pending.append(
            f"{len(data['dead_starts'])} run start(s) of dead processes not replayed: "
            + ", ".join(data["dead_starts"][:10])
        )
    if pending:
        console.print("[yellow]pending writes:[/]")
        for line in pending:
            console.print(f"  {line}")
        console.print("  (`consist db doctor --fix` or any writing tracker replays them)")
    else:
        console.print("pending writes: none")


@store_command(db_app, "inspect", example="consist db inspect --db-path provenance.duckdb")
def inspect(session: Session) -> None:
    """Tables with row counts, schema version, file size and pending journal writes.

    Reads only. --json prints {db_path, size_bytes, wal_bytes, schema_version,
    tables: {table: rows}, logged_writes, journal_pending: [run ids],
    dead_starts: [run ids], run_dir}.
    """
    report = session.tracker().store_report()
    data = dataclasses.asdict(report)
    session.emit(data, lambda console: _render_inspect(console, data))


# -- doctor -----------------------------------------------------------------------------

_KIND_LABEL = {
    "dead_running": "stuck running",
    "dangling_link": "dangling link",
    "link_without_edge": "link without lineage edge",
    "missing_in_db": "not in database",
    "db_older": "database older",
    "db_newer": "database newer",
    "unreplayed": "not replayed",
    "unapplied_writes": "unapplied writes",
    "unreadable_snapshot": "unreadable snapshot",
}


def _render_doctor(console: Console, report: DoctorReport) -> None:
    from rich.table import Table

    if report.replayed_on_open:
        console.print(
            f"opening the store replayed {len(report.replayed_on_open)} run(s) from the "
            "journal: " + ", ".join(report.replayed_on_open)
        )
    if report.findings:
        table = Table(title="findings", title_justify="left")
        for column in ("problem", "subject", "detail", "state"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            if f.fixed:
                state = f"[green]fixed[/]: {f.action}"
            elif report.fix or not f.fixable:
                state = "[red]not fixed[/]" + (f": {f.action}" if f.action else "")
            else:
                state = "fixable with --fix"
            table.add_row(_KIND_LABEL.get(f.kind, f.kind), f.subject, f.detail, state)
        console.print(table)
    for note in report.notes:
        console.print(f"[dim]note:[/] {note}")
    if report.healthy:
        changed = sum(f.fixed for f in report.findings)
        console.print(
            f"[green]repaired {changed} problem(s); the store is healthy[/]"
            if changed
            else "[green]the store is healthy[/]"
        )
    elif report.fix:
        console.print(f"[red]{len(report.problems)} problem(s) could not be repaired[/]")
    else:
        fixable = sum(f.fixable for f in report.problems)
        console.print(
            f"[red]{len(report.problems)} problem(s) found[/]; {fixable} can be repaired with "
            "`consist db doctor --fix`"
        )


@store_command(db_app, "doctor", example="consist db doctor --fix")
def doctor(
    session: Session,
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Repair what can be repaired (opens the store for writing) and print what "
            "changed.",
        ),
    ] = False,
) -> None:
    """Find runs stuck in 'running' whose process is gone, dangling links, journal/DB mismatch.

    A run's process is gone when the run's recorded host is this host and its
    recorded pid no longer exists (or belongs to a process started later);
    runs of other hosts are only noted. Without --fix nothing is written and
    the exit code is 1 when problems are found, 0 when the store is clean.
    --fix replays missing snapshots, marks dead runs failed (with the reason)
    and deletes dangling links; exit 1 if something could not be repaired.
    --json prints {healthy, fix, findings: [{kind, subject, detail, fixable,
    fixed, action}], notes: [...], replayed_on_open: [run ids]}.
    """
    report = session.tracker(write=fix).doctor(fix=fix)
    session.emit(report.as_dict(), lambda console: _render_doctor(console, report))
    if not report.healthy:
        raise typer.Exit(PROBLEMS)


# -- rebuild ----------------------------------------------------------------------------


def _target_paths(session: Session, out: str | None) -> tuple[Path, Path]:
    """(store file to build, run directory to read) without requiring the store to exist."""
    options = session.options
    db = Path(options.db_path or os.environ.get("CONSIST_DB") or DEFAULT_DB).expanduser()
    run_dir = options.run_dir or os.environ.get("CONSIST_RUN_DIR") or str(db.parent)
    target = Path(out).expanduser() if out else db
    return target.absolute(), Path(run_dir).expanduser().absolute()


@store_command(
    db_app,
    "rebuild",
    example="consist db rebuild --run-dir runs --out rebuilt.duckdb",
)
def rebuild(
    session: Session,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Build this new store file instead of --db-path.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing store: it is moved aside to <file>.replaced-<time>, "
            "never deleted.",
        ),
    ] = False,
) -> None:
    """Re-create the store from the JSON journal snapshots under --run-dir.

    Builds --out (default: the --db-path store, e.g. after its file was lost)
    from every run_dir/consist_runs/*.json, with a progress bar on stderr.
    An existing file is refused unless --force. Exit 1 if some snapshots could
    not be read (they are listed; the rest is rebuilt). --json prints
    {db_path, run_dir, runs: N, replayed: [run ids], errors: {file: reason},
    moved_aside: path or null}.
    """
    from consist.core.store.compaction import rebuild_file

    postgres = resolve_url(session.options)
    if postgres is not None:  # rebuilds a DuckDB file; a server's store is not rebuilt yet
        raise not_on_postgres("db rebuild", postgres)
    target, run_dir = _target_paths(session, out)
    if target.is_dir():
        raise usage(f"{target} is a directory; --out names the new store's DuckDB file")
    if target.exists() and not force:
        raise usage(
            f"{target} already exists; pass --out NEW_DB to build a new file, or --force to "
            f"move the existing store aside (to {target.name}.replaced-<time>) and replace it"
        )
    if not (run_dir / "consist_runs").is_dir():
        raise usage(
            f"no journal at {run_dir / 'consist_runs'}; pass --run-dir DIR, the run "
            "directory whose consist_runs/ holds the snapshots"
        )
    bar = _progress(session)
    with bar as progress:
        task = progress.add_task("rebuilding", total=None) if progress else None

        def advance(done: int, total: int) -> None:
            if progress is not None:
                progress.update(task, completed=done, total=total)

        result = rebuild_file(
            target,
            [run_dir],
            replace=force,
            progress=advance,
            lock_timeout_s=lock_timeout(session.options),
        )
    report = result.report
    data = {
        "db_path": result.db_path,
        "run_dir": str(run_dir),
        "runs": len(report.replayed),
        "replayed": report.replayed,
        "errors": report.errors,
        "moved_aside": result.moved_aside,
    }

    def render(console: Console) -> None:
        if result.moved_aside:
            console.print(f"moved the previous store aside to {result.moved_aside}")
        console.print(f"rebuilt {result.db_path} with {len(report.replayed)} run(s) from {run_dir}")
        for path, error in report.errors.items():
            console.print(f"[red]skipped[/] {path}: {error}")

    session.emit(data, render)
    if report.errors:
        raise typer.Exit(PROBLEMS)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(session: Session) -> Any:
    """A rich progress bar on stderr (nothing under --json)."""
    if session.json:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=False,
    )


# -- compact ----------------------------------------------------------------------------


@store_command(db_app, "compact", example="consist db compact --db-path provenance.duckdb")
def compact(session: Session) -> None:
    """Give the space of deleted rows back (copy-compaction) and report the size before/after.

    DuckDB does not shrink its file by itself; this copies the store into a
    compact file, checks every table's row count, and renames it into place
    while other Consist processes wait. --json prints {db_path, size_before,
    size_after, saved, tables: {table: rows}}.
    """
    report = session.tracker(write=True).compact_store()
    data = {**dataclasses.asdict(report), "saved": report.saved}

    def render(console: Console) -> None:
        console.print(
            f"compacted {report.db_path}: {human_size(report.size_before)} -> "
            f"{human_size(report.size_after)} (saved {human_size(max(report.saved, 0))}); "
            f"{sum(report.tables.values()):,} rows in {len(report.tables)} tables, unchanged"
        )

    session.emit(data, render)
