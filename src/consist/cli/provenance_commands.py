"""``consist lineage``, ``diff`` and ``why``: where data came from, and why runs differ."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from consist.cli.app import app, store_command
from consist.cli.errors import CliError, not_found, usage
from consist.cli.runs_commands import local_time, run_summary
from consist.cli.session import Session, to_json
from consist.core.query.cache_decision import explain_run
from consist.core.query.run_compare import compare_runs

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.core.tracker import Tracker
    from consist.models.run import Run

_FORMATS = ("tree", "mermaid", "dot", "json")
_RUNS_HINT = "list runs with `consist runs`"


def _run_or_fail(tracker: Tracker, run_id: str) -> Run:
    run = tracker.get_run(run_id)
    if run is None:
        raise not_found("run", run_id, _RUNS_HINT)
    return run


_DIGEST = re.compile(r"^([A-Za-z0-9_-]+):([0-9a-f]{32,})$")


def _short(value: Any) -> str:
    """A value in a cell: digests (``blake3:<64 hex>``) cut to 12 hex digits, mappings as
    ``k=v`` pairs."""
    if isinstance(value, str):
        match = _DIGEST.match(value)
        return f"{match.group(1)}:{match.group(2)[:12]}" if match else value
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    return repr(value)


def _show(value: Any) -> str:
    """A recorded value as one short cell (None as an em dash)."""
    if value is None:
        return "—"
    text = _short(value)
    return text if len(text) <= 80 else text[:77] + "..."


_CHANGE_STYLE = {"changed": "yellow", "added": "green", "removed": "red", "equal": "dim"}


def _change(status: str) -> str:
    style = _CHANGE_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


# -- lineage --------------------------------------------------------------------------


@store_command(app, "lineage", example="consist lineage persons --depth 2 --format mermaid")
def lineage(
    session: Session,
    key_or_id: Annotated[
        str,
        typer.Argument(
            help="An artifact key (the newest with that key) or id, or a run id.",
            show_default=False,
        ),
    ],
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="tree (a rich tree), mermaid, dot (Graphviz) or json.",
        ),
    ] = "tree",
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth",
            min=0,
            help="Producing-run steps to walk up; 0: the artifact or run alone (default: all).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Where an artifact (or a run's inputs) came from: the upstream graph.

    An artifact key or id is looked up first, then a run id. The tree shows
    each artifact with the run that produced it (its id, to pass to `consist
    show` or `consist why`); raw inputs say so. `--format mermaid` / `dot`
    print text to paste into Markdown or render with Graphviz.

    JSON (--json or --format json): {"root": "artifact" | "run", "ref":
    KEY_OR_ID, "depth": N or null, "lineage": TREE}, TREE being
    Tracker.get_artifact_lineage's nested dict for an artifact and
    Tracker.get_run_lineage's {"run": ..., "inputs": [...]} for a run. With
    --json and --format mermaid/dot: {"root", "ref", "depth", "format",
    "text"}.
    """
    if output_format not in _FORMATS:
        raise usage(f"--format {output_format!r}: use tree, mermaid, dot or json")
    tracker = session.tracker()
    artifact = tracker.get_artifact(key_or_id)
    if artifact is not None:
        root, ref = "artifact", artifact.id
    elif tracker.get_run(key_or_id) is not None:
        root, ref = "run", key_or_id
    else:
        raise not_found(
            "artifact or run",
            key_or_id,
            "list artifacts with `consist artifacts` and runs with `consist runs`",
        )
    head = {"root": root, "ref": key_or_id, "depth": depth}
    if output_format in ("mermaid", "dot"):
        if root == "artifact":
            render = tracker.lineage_mermaid if output_format == "mermaid" else tracker.lineage_dot
            text = render(ref, max_depth=depth, show_run_ids=True)
        else:
            render = (
                tracker.run_lineage_mermaid
                if output_format == "mermaid"
                else tracker.run_lineage_dot
            )
            text = render(str(ref), max_depth=depth, show_run_ids=True)
        if text is None:  # removed between the lookups
            raise not_found("artifact or run", key_or_id, _RUNS_HINT)
        if session.json:
            typer.echo(to_json({**head, "format": output_format, "text": text}))
        else:
            typer.echo(text, nl=False)
        return
    if output_format == "json" or session.json:
        if root == "artifact":
            tree = tracker.get_artifact_lineage(ref, max_depth=depth)
        else:
            tree = tracker.get_run_lineage(str(ref), max_depth=depth)
        if tree is None:
            raise not_found("artifact or run", key_or_id, _RUNS_HINT)
        typer.echo(to_json({**head, "lineage": tree}))
        return
    # A terminal gets the session's console; a pipe gets one wide enough that no
    # line (URIs) wraps, which the Tracker builds when given no console.
    console = session.console if session.console.is_terminal else None
    if root == "artifact":
        tracker.print_lineage(ref, max_depth=depth, show_run_ids=True, console=console)
    else:
        tracker.print_run_lineage(str(ref), max_depth=depth, show_run_ids=True, console=console)


# -- diff -------------------------------------------------------------------------------


def _render_diff(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    a, b = data["run_a"], data["run_b"]
    runs = Table.grid(padding=(0, 2))
    for _ in range(4):
        runs.add_column()
    for label, run in (("A", a), ("B", b)):
        status = run["status"] + (f" (hit of {run['cache_source']})" if run["cache_hit"] else "")
        runs.add_row(
            f"[bold]{label}[/]",
            f"[bold]{run['id']}[/]",
            run["model"],
            status + "  " + local_time(run["created_at"]),
        )
    console.print(runs)
    if data["note"]:
        console.print(f"[yellow]note:[/] {data['note']}")
    config = data["config"]
    source = "config" if data["config_source"] == "snapshot" else "config facets"
    if not config:
        console.print(f"[bold]{source}[/]: no differences")
    else:
        table = Table(title=f"{source} ({len(config)} keys)", title_justify="left")
        for column in ("key", "A", "B", "change"):
            table.add_column(column, overflow="fold")
        for key, change in config.items():
            table.add_row(key, _show(change["a"]), _show(change["b"]), _change(change["status"]))
        console.print(table)
    inputs = data["inputs"]
    if not inputs:
        console.print("[bold]inputs[/]: no differences")
        return
    table = Table(title=f"inputs ({len(inputs)} keys)", title_justify="left")
    for column in ("key", "A", "B", "change"):
        table.add_column(column, overflow="fold")
    for key, change in inputs.items():
        cells = []
        for side in ("a", "b"):
            art = change[side]
            cells.append("—" if art is None else f"{_show(art['hash'])}\n{art['uri']}")
        table.add_row(key, *cells, _change(change["status"]))
    console.print(table)


@store_command(
    app, "diff", example="consist diff households_20261204T0101_a1b2 households_20261204T0907_c3d4"
)
def diff(
    session: Session,
    run_a: Annotated[str, typer.Argument(help="The baseline run's id.", show_default=False)],
    run_b: Annotated[str, typer.Argument(help="The run to compare with it.", show_default=False)],
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list config keys and inputs that are equal.")
    ] = False,
) -> None:
    """Two runs side by side: config keys changed, added or removed; inputs whose digest differs.

    Config comes from each run's snapshot under --run-dir (all keys, flattened
    to a.b.c); when a snapshot is missing the indexed config facets are
    compared instead and a note says so. Inputs are compared by the key each
    run used: equal when they are the same artifact or have the same digest.

    JSON: {"run_a": RUN, "run_b": RUN, "config_source": "snapshot" | "facets",
    "note": str or null, "config": {key: {"a", "b", "status"}}, "inputs":
    {key: {"a": {"id", "uri", "hash"} or null, "b": ..., "status"}}},
    RUN as in `consist runs --json`, status changed/added/removed (or equal
    with --all).
    """
    tracker = session.tracker()
    first, second = _run_or_fail(tracker, run_a), _run_or_fail(tracker, run_b)
    try:
        compared = compare_runs(tracker, run_a, run_b, include_equal=show_all)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    data = {"run_a": run_summary(first), "run_b": run_summary(second), **compared}
    session.emit(data, lambda console: _render_diff(console, data))


# -- why ----------------------------------------------------------------------------------


def _why(tracker: Tracker, run: Run) -> dict[str, Any]:
    found = explain_run(tracker, run)
    summary = found.summary
    cache_source: Any = None
    if found.verdict == "hit":
        source = found.cache_source
        cache_source = run_summary(source) if source is not None else found.cache_source_id
    elif found.verdict != "uncached":
        summary = str(summary or "")
        if found.nearest_run_id is not None and "cached_outputs" in (found.explanation or {}):
            summary += f" (cache lookup: {found.cached_outputs})"
        if found.verdict == "overwrite":
            summary = "re-executed on request (cache_mode='overwrite'); " + summary
    nearest: Any = None
    if found.nearest_run_id is not None:
        nearest = (
            run_summary(found.nearest_run)
            if found.nearest_run is not None
            else {"id": found.nearest_run_id}
        )
    return {
        "run": run_summary(run),
        "verdict": found.verdict,
        "summary": summary,
        "cache_source": cache_source,
        "nearest_run": nearest,
        "differences": found.differences if found.nearest_run_id is not None else [],
        "explanation": found.explanation,
    }


_VERDICTS = {
    "hit": ("green", "cache hit"),
    "miss": ("yellow", "cache miss"),
    "overwrite": ("yellow", "forced re-run"),
    "first_run": ("cyan", "first run"),
    "uncached": ("cyan", "not cached"),
}


def _render_why(console: Console, data: dict[str, Any]) -> None:
    from rich.table import Table

    run = data["run"]
    console.print(
        f"[bold]{run['id']}[/]  {run['model']}  {run['status']}  {local_time(run['created_at'])}"
    )
    verdict = data["verdict"]
    style, label = _VERDICTS[verdict]
    source = data["cache_source"]
    if isinstance(source, dict):
        when = local_time(source["created_at"])
        console.print(
            f"[{style}]{label}[/]: served from [bold]{source['id']}[/] ({source['model']}, {when})"
        )
        console.print(f"[dim]next: consist show {source['id']}[/]")
        return
    console.print(f"[{style}]{label}[/]: {data['summary']}")
    nearest = data["nearest_run"]
    if nearest is None:
        return
    when = local_time(nearest.get("created_at"))
    console.print(
        f"compared with [bold]{nearest['id']}[/], the newest completed run of {run['model']}"
        + (f" ({when})" if when else "")
    )
    rows = data["differences"]
    if rows:
        table = Table(show_header=True, title_justify="left")
        for column in ("what", "key", "before", "now", "change"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                row["section"],
                row["key"],
                _show(row["old"]),
                _show(row["new"]),
                _change(row["change"]),
            )
        console.print(table)
    head = next((r for r in rows if r["section"] == "code" and r["key"] == "head"), None)
    if head is not None and head["old"] and head["new"]:
        # The commits differ: git names the files (run it in the model's repository).
        console.print(f"[dim]code: git diff --stat {head['old'][:12]} {head['new'][:12]}[/]")
    console.print(f"[dim]next: consist diff {nearest['id']} {run['id']}[/]")


@store_command(app, "why", example="consist why households_20261204T0907_c3d4")
def why(
    session: Session,
    run_id: Annotated[str, typer.Argument(help="The run's id.", show_default=False)],
) -> None:
    """Why a run executed instead of reusing an earlier one (or which run a cache hit came from).

    For a miss: the nearest earlier completed run of the same model and, field
    by field, the config keys, input digests, code files (and year,
    iteration, callable, ...) that differ. A first run of its model, a run
    re-executed with cache_mode='overwrite' and a run with caching off say so.

    JSON: {"run": RUN, "verdict": "hit" | "miss" | "first_run" | "overwrite" |
    "uncached", "summary": str, "cache_source": RUN or id or null (hits),
    "nearest_run": RUN or null, "differences": [{"section", "key", "old",
    "new", "change"}], "explanation": the recorded explanation
    (Tracker.explain_cache_miss) or null}; section is config, inputs,
    identity_inputs, outputs, other, code or "code file".
    """
    tracker = session.tracker()
    run = _run_or_fail(tracker, run_id)
    data = _why(tracker, run)
    session.emit(data, lambda console: _render_why(console, data))
