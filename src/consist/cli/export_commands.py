"""``consist export prov|rocrate|openlineage``: standard provenance documents.

Each command selects runs with ``--run`` (repeatable) or ``--scenario`` and
writes one document to ``--out`` through the Tracker's ``export_*``
methods; the store is opened read-only. Bad options exit with 2, an unknown
run or scenario with 5, a missing ``exports`` extra or an unreachable
``--url`` with 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import app, store_command
from consist.cli.errors import PROBLEMS, CliError, not_found, usage
from consist.cli.session import Session

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

export_app = typer.Typer(
    help="Standard provenance documents of runs or a scenario: W3C PROV, RO-Crate, OpenLineage.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(export_app, name="export")

RunOption = Annotated[
    list[str] | None,
    typer.Option(
        "--run", help="A run id to export (repeatable).", show_default=False, metavar="RUN_ID"
    ),
]
ScenarioOption = Annotated[
    str | None,
    typer.Option(
        "--scenario", help="A scenario: its header run and every step.", show_default=False
    ),
]

_NO_RUN_HINT = "list run ids with `consist runs` (scenarios: `consist scenarios`)"


def _selection(run: list[str] | None, scenario: str | None) -> dict[str, Any]:
    if run and scenario is not None:
        raise usage("give --run (repeatable) or --scenario, not both")
    if not run and scenario is None:
        raise usage("give the runs to export with --run RUN_ID (repeatable) or --scenario NAME")
    return {"scenario": scenario} if scenario is not None else {"run_ids": list(run or ())}


def _export(
    session: Session, what: str, write: Callable[..., Path], selection: dict[str, Any]
) -> None:
    tracker = session.tracker()
    try:
        path = write(tracker, **selection)
    except KeyError as exc:
        message = str(exc.args[0]) if exc.args else str(exc)
        if "scenario" in selection:
            raise not_found("scenario", selection["scenario"], _NO_RUN_HINT) from None
        missing = next((r for r in selection["run_ids"] if f"{r!r}" in message), message)
        raise not_found("run", missing, _NO_RUN_HINT) from None
    except (ValueError, TypeError) as exc:
        raise usage(str(exc)) from None
    except (ImportError, ConnectionError) as exc:
        raise CliError(str(exc), PROBLEMS) from None
    data = {"path": str(path), "format": what, **selection}

    def render(console: Console) -> None:
        from rich.markup import escape

        chosen = (
            f"scenario {selection['scenario']}"
            if "scenario" in selection
            else f"{len(selection['run_ids'])} run(s)"
        )
        console.print(f"wrote {what} of {escape(chosen)} to [bold]{escape(str(path))}[/]")

    session.emit(data, render)


@store_command(
    export_app,
    "prov",
    example="consist export prov --scenario baseline --format ttl --out prov.ttl",
)
def prov(
    session: Session,
    out: Annotated[
        str, typer.Option("--out", help="The file to write (replaced).", show_default=False)
    ],
    run: RunOption = None,
    scenario: ScenarioOption = None,
    format: Annotated[
        str, typer.Option("--format", help="json (PROV-JSON), provn (PROV-N) or ttl (Turtle).")
    ] = "json",
) -> None:
    """Write the W3C PROV document of runs or a scenario.

    Runs are activities, artifacts entities, models software agents; used,
    wasGeneratedBy, wasAssociatedWith, wasInformedBy and wasStartedBy relate
    them. --json prints {"path", "format", "run_ids" or "scenario"}.
    """
    selection = _selection(run, scenario)

    def write(tracker: Any, **sel: Any) -> Path:
        return tracker.export_prov(path=out, format=format, **sel)

    _export(session, f"PROV ({format})", write, selection)


@store_command(
    export_app, "rocrate", example="consist export rocrate --scenario baseline --out crate.zip"
)
def rocrate(
    session: Session,
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="A new or empty directory, or a file ending in .zip.",
            show_default=False,
        ),
    ],
    run: RunOption = None,
    scenario: ScenarioOption = None,
    files: Annotated[
        bool,
        typer.Option(
            "--files/--no-files", help="Copy the artifact files into the crate (or refer to them)."
        ),
    ] = True,
) -> None:
    """Write an RO-Crate (Workflow Run Crate profile) of runs or a scenario.

    One CreateAction per run with its input (object) and output (result)
    files; the files are copied in unless --no-files. --json prints
    {"path", "format", "run_ids" or "scenario"}.
    """
    selection = _selection(run, scenario)

    def write(tracker: Any, **sel: Any) -> Path:
        return tracker.export_rocrate(path=out, include_files=files, **sel)

    _export(session, "RO-Crate", write, selection)


@store_command(
    export_app,
    "openlineage",
    example="consist export openlineage --scenario baseline --out events.jsonl "
    "--url http://localhost:5000",
)
def openlineage(
    session: Session,
    out: Annotated[
        str,
        typer.Option("--out", help="The file to write, one event per line.", show_default=False),
    ],
    run: RunOption = None,
    scenario: ScenarioOption = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Also POST the events to this OpenLineage endpoint (/api/v1/lineage).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", help="The OpenLineage job namespace.")
    ] = "consist",
) -> None:
    """Write OpenLineage RunEvents (START, COMPLETE or FAIL) of runs or a scenario.

    Events carry the runs' input and output datasets; with --url they are
    also sent to that endpoint. --json prints {"path", "format", "run_ids" or "scenario"}.
    """
    selection = _selection(run, scenario)

    def write(tracker: Any, **sel: Any) -> Path:
        return tracker.export_openlineage(path=out, url=url, namespace=namespace, **sel)

    _export(session, "OpenLineage", write, selection)
