"""``consist schema export`` and ``consist views create``: schemas and grouped views."""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import schema_app, store_command, views_app
from consist.cli.errors import NOT_FOUND, PROBLEMS, CliError, usage
from consist.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

_PREFER = ("file", "duckdb", "user_provided")
_MODES = ("hybrid", "hot_only", "cold_only")
_IF_EXISTS = ("replace", "error")
_MISSING = ("warn", "error", "skip_silent")


# The library's messages name keyword arguments; on the command line they are options.
_OPTION_NAMES = (
    ("if_exists='replace'", "--if-exists replace"),
    ("missing_files='warn' or 'skip_silent'", "--missing-files warn or skip_silent"),
    ("attach_facets", "--attach-facet"),
    ("params entries", "--param values"),
    ("drivers", "--driver"),
)


def _as_options(message: str) -> str:
    for keyword, option in _OPTION_NAMES:
        message = message.replace(keyword, option)
    return message


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise usage(f"{option} {value!r}: use one of {', '.join(allowed)}")


@store_command(
    schema_app, "export", example="consist schema export persons --out models/persons.py"
)
def schema_export(
    session: Session,
    key_or_schema_id: Annotated[
        str,
        typer.Argument(
            help="An artifact key (newest) or id, or a schema id (meta schema_id).",
            show_default=False,
        ),
    ],
    out: Annotated[
        str | None,
        typer.Option("--out", help="Write the stub to this file (parents are created)."),
    ] = None,
    prefer_source: Annotated[
        str | None,
        typer.Option(
            help="For an artifact with several profiles: file, duckdb or user_provided "
            "[default: the user-provided schema, else file].",
            show_default=False,
        ),
    ] = None,
    class_name: Annotated[str | None, typer.Option(help="The class name.")] = None,
    table_name: Annotated[str | None, typer.Option(help="The SQL table name.")] = None,
    table: Annotated[
        bool,
        typer.Option(
            "--table/--abstract", help="A mapped table=True class, or an abstract SQLModel."
        ),
    ] = False,
    system_columns: Annotated[
        bool, typer.Option("--system-columns", help="Include Consist's system columns.")
    ] = False,
) -> None:
    """Print (or write) the SQLModel stub of a table artifact's recorded schema.

    The argument is tried as an artifact key or id first, then as a schema
    id. Exit 5 when neither has a recorded schema.

    JSON: {"artifact_id" (null for a schema id), "schema_id" (null for an
    artifact), "out" (the file written, or null), "source" (the Python code)}.
    """
    if prefer_source is not None:
        _choice("--prefer-source", prefer_source, _PREFER)
    tracker = session.tracker()
    if out is not None:
        target = Path(out).expanduser().resolve()
        if tracker.config.db_path and target == Path(tracker.db_path).resolve():
            raise usage(f"--out {out!r} is the store itself; name a .py file")
        if target.is_dir():
            raise usage(f"--out {out!r} is a directory; name a file, e.g. {target / 'model.py'}")
    artifact = tracker.get_artifact(key_or_schema_id)
    selector: dict[str, Any] = (
        {"artifact_id": artifact.id} if artifact is not None else {"schema_id": key_or_schema_id}
    )
    try:
        code = tracker.export_schema_sqlmodel(
            **selector,
            out_path=out,
            table_name=table_name,
            class_name=class_name,
            abstract=not table,
            include_system_cols=system_columns,
            prefer_source=prefer_source if artifact is not None else None,
        )
    except KeyError:
        if artifact is not None:
            message = (
                f"artifact {artifact.key!r} has no recorded schema; log it with "
                "profile_file_schema=True or ingest it, then export again"
            )
        else:
            message = (
                f"no artifact or schema id {key_or_schema_id!r} in this store; pass an "
                "artifact key (`consist show RUN_ID`) or the schema_id in its metadata"
            )
        raise CliError(message, NOT_FOUND) from None
    except ValueError as exc:
        raise usage(f"schema export: {exc}") from None
    data = {
        "artifact_id": str(artifact.id) if artifact is not None else None,
        "schema_id": None if artifact is not None else key_or_schema_id,
        "out": str(Path(out).expanduser().resolve()) if out is not None else None,
        "source": code,
    }

    def render(console: Console) -> None:
        if out is None:
            sys.stdout.write(code if code.endswith("\n") else code + "\n")
        else:
            console.print(f"wrote the SQLModel stub to {data['out']}")

    session.emit(data, render)


def _render_view(console: Console, data: dict[str, Any]) -> None:
    console.print(
        f"created view [bold]{data['name']}[/]: {data['hot_artifacts']} ingested and "
        f"{data['cold_artifacts']} file artifact(s)"
    )
    console.print("columns: " + ", ".join(data["columns"]), soft_wrap=True)
    if data["missing_files"]:
        console.print(
            f"[yellow]left out {len(data['missing_files'])} missing file(s):[/] "
            + ", ".join(data["missing_files"]),
            soft_wrap=True,
        )
    if data["skipped"]:
        console.print(
            f"[yellow]skipped {len(data['skipped'])} file(s) that cannot be read in place "
            "(ingest them):[/] " + ", ".join(data["skipped"]),
            soft_wrap=True,
        )
    console.print(f"query it in the store: SELECT * FROM {data['name']}")


@store_command(
    views_app,
    "create",
    example="consist views create v_persons --schema-id blake3:3f2a... --param year=2030",
)
def views_create(
    session: Session,
    name: Annotated[str, typer.Argument(help="The view's name.", show_default=False)],
    schema_id: Annotated[
        str,
        typer.Option(
            "--schema-id",
            help="Select the artifacts with this schema (meta schema_id).",
            show_default=False,
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Facet predicate key=value, key>=n or key<=n (repeatable: all of them).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Default facet namespace (a model name).")
    ] = None,
    driver: Annotated[
        list[str] | None,
        typer.Option("--driver", help="Only artifacts of this driver (repeatable)."),
    ] = None,
    attach_facet: Annotated[
        list[str] | None,
        typer.Option("--attach-facet", help="Add facet KEY as column facet_KEY (repeatable)."),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="hybrid (ingested and files), hot_only or cold_only.")
    ] = "hybrid",
    if_exists: Annotated[str, typer.Option(help="replace or error.")] = "replace",
    missing_files: Annotated[
        str,
        typer.Option(help="A selected file is missing: warn (leave it out), error or skip_silent."),
    ] = "warn",
    run_id: Annotated[str | None, typer.Option(help="Only artifacts of this run.")] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Only artifacts of this scenario's steps (header run id).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only artifacts of this model's runs.")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    year: Annotated[int | None, typer.Option(help="Only artifacts of runs of this year.")] = None,
    iteration: Annotated[int | None, typer.Option(help="Only runs of this iteration.")] = None,
    schema_compatible: Annotated[
        bool,
        typer.Option(
            "--schema-compatible", help="Also select schemas with a subset/superset of the fields."
        ),
    ] = False,
    system_columns: Annotated[
        bool,
        typer.Option("--system-columns/--no-system-columns", help="Include Consist's columns."),
    ] = True,
) -> None:
    """Create (or replace) a view over every artifact with a schema, filtered by facets and runs.

    Writes the view into the store (opens it for writing). Exit 2 for a bad
    option, 5 for a schema id that matches no recorded schema, 1 when
    --missing-files error finds a missing file (nothing is created).

    JSON: {"name", "sql", "hot_artifacts", "cold_artifacts", "missing_files":
    [uri], "skipped": [uri], "columns": [name]}.
    """
    _choice("--mode", mode, _MODES)
    _choice("--if-exists", if_exists, _IF_EXISTS)
    _choice("--missing-files", missing_files, _MISSING)
    if not schema_id.strip():
        raise usage("--schema-id is empty; pass the schema_id from an artifact's metadata")
    tracker = session.tracker(write=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing files are reported below
            result = tracker.create_grouped_view(
                name,
                schema_id=schema_id,
                namespace=namespace,
                params=param or None,
                drivers=driver or None,
                attach_facets=attach_facet or None,
                include_system_columns=system_columns,
                mode=mode,
                if_exists=if_exists,
                missing_files=missing_files,
                run_id=run_id,
                parent_run_id=scenario,
                model=model,
                status=status,
                year=year,
                iteration=iteration,
                schema_compatible=schema_compatible,
            )
    except FileNotFoundError as exc:
        raise CliError(f"views create: {_as_options(str(exc))}", PROBLEMS) from None
    except ValueError as exc:
        message = _as_options(str(exc))
        if "already exists" in message:
            raise CliError(f"views create: {message}", PROBLEMS) from None
        if "matches no stored schema" in message:
            raise CliError(
                f"views create: --schema-id {schema_id!r} matches no recorded schema; take the "
                "schema_id from an artifact's metadata (`consist show RUN_ID --json`)",
                NOT_FOUND,
            ) from None
        raise usage(f"views create: {message}") from None
    data = asdict(result)
    session.emit(data, lambda console: _render_view(console, data))
