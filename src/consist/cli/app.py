"""The typer application: global options, command registration, error handling.

Command modules register with :func:`store_command`::

    @store_command(app, "runs", example="consist runs --model beam --limit 5")
    def runs(session: Session, model: Annotated[str | None, typer.Option()] = None) -> None:
        ...

The decorator adds the store options (``--db-url``, ``--db-path``,
``--run-dir``, ``--mount``, ``--lock-timeout``, ``--json``) to the command, so they work
before or after the command name, builds the :class:`Session`, and turns
:class:`~consist.cli.errors.CliError` (and the store's lock/permission
errors) into one line on stderr with the command's exit code. A command
built on a feature a PostgreSQL store does not support yet (the tracker's
``NotImplementedError``) ends with one line naming the command and
``--db-url`` (exit 2). Any other exception is reported in one line too;
``CONSIST_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import typing
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer

from consist.cli.errors import PROBLEMS, CliError
from consist.cli.session import Session
from consist.cli.store_access import StoreOptions, not_on_postgres

_CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="consist",
    help=(
        "Runs, lineage, cache misses and the store of a Consist project, from a terminal.\n\n"
        "The store is --db-url (a PostgreSQL database, team mode), else --db-path (a DuckDB "
        "file), else $CONSIST_DB_URL, else $CONSIST_DB, else ./provenance.duckdb: an option "
        "beats the environment, and a team URL beats a file. Every command prints a readable "
        "table by default and JSON with --json."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings=_CONTEXT,
    add_completion=False,
)

db_app = typer.Typer(
    help="The store itself: inspect, doctor, rebuild, compact, export/merge runs, purge.",
    no_args_is_help=True,
    context_settings=_CONTEXT,
)
schema_app = typer.Typer(
    help="Schemas of table artifacts: export SQLModel classes.",
    no_args_is_help=True,
    context_settings=_CONTEXT,
)
views_app = typer.Typer(
    help="Views over ingested and file data: create grouped views.",
    no_args_is_help=True,
    context_settings=_CONTEXT,
)
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")
app.add_typer(views_app, name="views")

DbPathOption = Annotated[
    str | None,
    typer.Option(
        "--db-path",
        help="The store's DuckDB file; beats $CONSIST_DB_URL \\[default: $CONSIST_DB when "
        "$CONSIST_DB_URL is unset, else ./provenance.duckdb]. Not with --db-url.",
        show_default=False,
    ),
]
DbUrlOption = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        help="A PostgreSQL store (team mode), e.g. postgresql+psycopg://user@host:5432/consist "
        "\\[default: $CONSIST_DB_URL unless --db-path is given]. Not with --db-path.",
        show_default=False,
    ),
]
RunDirOption = Annotated[
    str | None,
    typer.Option(
        "--run-dir",
        help="The tracker's run directory: journal and relative artifact paths \\[default: "
        "$CONSIST_RUN_DIR, else the folder next to the store that holds consist_runs/; for a "
        "PostgreSQL store the current folder or its subfolder that holds consist_runs/].",
        show_default=False,
    ),
]
MountOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mount", help="A mount as NAME=PATH (repeatable), e.g. inputs=/data.", show_default=False
    ),
]
LockTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        help="Seconds to wait for a DuckDB store another process is writing \\[default: "
        "$CONSIST_LOCK_TIMEOUT, else 10]. Not with --db-url.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]

_STORE_PARAMS = [
    inspect.Parameter(
        "db_url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DbUrlOption
    ),
    inspect.Parameter(
        "db_path", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DbPathOption
    ),
    inspect.Parameter(
        "run_dir", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=RunDirOption
    ),
    inspect.Parameter(
        "mount", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=MountOption
    ),
    inspect.Parameter(
        "lock_timeout", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=LockTimeoutOption
    ),
    inspect.Parameter(
        "json_output", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption
    ),
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("consist")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            number = "unknown"
        typer.echo(f"consist {number}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    db_url: DbUrlOption = None,
    db_path: DbPathOption = None,
    run_dir: RunDirOption = None,
    mount: MountOption = None,
    lock_timeout: LockTimeoutOption = None,
    json_output: JsonOption = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Options given before the command apply to it (the command's own win)."""
    ctx.obj = StoreOptions(
        db_url=db_url,
        db_path=db_path,
        run_dir=run_dir,
        mounts=tuple(mount or ()),
        lock_timeout=lock_timeout,
        json=json_output,
    )


def fail(error: CliError) -> typer.Exit:
    """Print ``error`` on stderr as one line; return the Exit to raise."""
    sys.stderr.write(f"consist: {error.message}\n")
    return typer.Exit(error.code)


def run_in_session(
    options: StoreOptions, body: Callable[[Session], Any], command: str = "command"
) -> Any:
    """Run a command body with its session; errors become one line and an exit code.

    Warnings raised meanwhile (e.g. recovery notices when a store is opened
    for writing) are printed as ``consist: warning: ...`` lines on stderr.
    ``command`` (as typed after ``consist``) names the command in the error
    for a feature a PostgreSQL store does not support yet.
    """
    session = Session(options)
    try:
        with session.guard(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return body(session)
            finally:
                for item in caught:
                    text = " ".join(str(item.message).split())
                    sys.stderr.write(f"consist: warning: {text}\n")
    except CliError as error:
        raise fail(error) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except NotImplementedError as exc:
        target = session.target
        if target is None or target.db_url is None or os.environ.get("CONSIST_DEBUG"):
            raise
        raise fail(not_on_postgres(command, target, exc)) from None
    except Exception as exc:
        if os.environ.get("CONSIST_DEBUG"):
            raise
        raise fail(
            CliError(
                f"{type(exc).__name__}: {exc} (set CONSIST_DEBUG=1 to see the traceback)",
                PROBLEMS,
            )
        ) from None
    finally:
        session.close()


def _group_name(group: typer.Typer) -> str:
    """The name ``group`` is registered under in :data:`app` (``"db"``)."""
    for info in app.registered_groups:
        if info.typer_instance is group:
            return str(info.name)
    return "?"  # pragma: no cover - every group is registered above


def store_command(
    group: typer.Typer, name: str, *, example: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(session, **options)`` as command ``name`` of ``group``.

    Parameters
    ----------
    group:
        The typer app or sub-app.
    name:
        The command's name on the command line.
    example:
        One example invocation, shown at the end of ``--help``.
    """

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(fn).parameters.values()
            if p.name != "session"
        ]
        ctx_param = inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
        )

        @functools.wraps(fn)
        def command(ctx: typer.Context, **kwargs: Any) -> Any:
            base = ctx.find_root().obj if ctx.find_root().obj is not None else StoreOptions()
            options = base.overridden_by(
                db_url=kwargs.pop("db_url"),
                db_path=kwargs.pop("db_path"),
                run_dir=kwargs.pop("run_dir"),
                mounts=kwargs.pop("mount"),
                lock_timeout=kwargs.pop("lock_timeout"),
                json=kwargs.pop("json_output"),
            )
            return run_in_session(options, lambda session: fn(session, **kwargs), command_name)

        params = [ctx_param, *own, *_STORE_PARAMS]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        doc = inspect.getdoc(fn) or ""
        command_name = name if group is app else f"{_group_name(group)} {name}"
        group.command(name, help=doc, epilog=f"Example: {example}")(command)
        return fn

    return register
