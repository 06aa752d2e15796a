"""HTML renderings of records for notebooks (``_repr_html_``).

Jupyter and other notebook front ends call ``_repr_html_`` to show an object.
:class:`~consist.models.run.Run` and :class:`~consist.models.results.RunResult`
delegate to :func:`run_html` and :func:`run_result_html`; the lineage trees
(``Tracker.get_artifact_lineage`` / ``get_run_lineage``) and run diffs
(``Tracker.diff_runs``) come back as :class:`LineageTree` and
:class:`RunDiff`: plain ``dict`` subclasses (same keys, same JSON, equal to
the dicts they hold) that also render as HTML.

Every value shown passes through :func:`html.escape`: a config value, key,
URI, tag or error message is text, never markup. No scripts; one small
inline style.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from consist.models.results import RunResult
    from consist.models.run import Run

MAX_TREE_NODES = 2000  # nodes a lineage tree shows before it says how many it left out
MAX_ROWS = 500  # rows a diff table shows

_STYLE = (
    "<style>.consist-html table{border-collapse:collapse;margin:2px 0}"
    ".consist-html th,.consist-html td{border:1px solid #ccc;padding:2px 6px;text-align:left;"
    "vertical-align:top;font-family:monospace;font-size:12px}"
    ".consist-html th{background:#f3f3f3}.consist-html .completed{color:#11772d}"
    ".consist-html .failed{color:#b3261e}.consist-html .running{color:#9a6700}"
    ".consist-html ul{margin:0;padding-left:18px}.consist-html .muted{color:#777}</style>"
)


def esc(value: Any) -> str:
    """``value`` as escaped HTML text (None as an empty string)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = (
            json.dumps(value, default=str, sort_keys=True)
            if isinstance(value, dict | list | tuple)
            else str(value)
        )
    return html.escape(value, quote=True)


def _wrap(title: str, body: str) -> str:
    return f'<div class="consist-html">{_STYLE}<strong>{esc(title)}</strong>{body}</div>'


def _rows(pairs: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{esc(name)}</th><td>{value}</td></tr>" for name, value in pairs if value != ""
    )
    return f"<table>{cells}</table>"


def _status(status: Any) -> str:
    name = esc(status)
    return f'<span class="{name}">{name}</span>'


def run_html(run: Run) -> str:
    """An HTML table of a run's fields (every value escaped)."""
    meta = dict(run.meta or {})
    error = meta.pop("error", None)
    meta.pop("error_traceback", None)
    duration = run.duration_seconds
    pairs: list[tuple[str, Any]] = [
        ("id", esc(run.id)),
        ("model", esc(run.model_name)),
        ("status", _status(run.status)),
        ("description", esc(run.description)),
        ("tags", esc(", ".join(run.tags))),
        ("year", esc(run.year)),
        ("iteration", esc(run.iteration)),
        ("stage", esc(run.stage)),
        ("phase", esc(run.phase)),
        ("parent run", esc(run.parent_run_id)),
        ("started", esc(run.created_at.isoformat() if run.created_at else None)),
        ("ended", esc(run.ended_at.isoformat() if run.ended_at else None)),
        ("duration (s)", esc(None if duration is None else round(duration, 3))),
        ("cache hit", esc("yes" if run.cache_hit else "no")),
        ("cache source", esc(meta.get("cache_source"))),
        ("config hash", esc(run.config_hash)),
        ("signature", esc(run.signature)),
        ("error", esc(error)),
        ("meta", esc(meta) if meta else ""),
    ]
    return _wrap(f"Run {run.id}", _rows(pairs))


def _artifacts_table(artifacts: dict[str, Any]) -> str:
    if not artifacts:
        return '<div class="muted">no outputs</div>'
    head = "<tr><th>key</th><th>uri</th><th>driver</th><th>digest</th><th>bytes</th></tr>"
    rows = "".join(
        f"<tr><td>{esc(key)}</td><td>{esc(a.uri)}</td><td>{esc(a.driver)}</td>"
        f"<td>{esc(a.hash)}</td><td>{esc(a.size_bytes)}</td></tr>"
        for key, a in sorted(artifacts.items())
    )
    return f"<table>{head}{rows}</table>"


def run_result_html(result: RunResult) -> str:
    """HTML of a run result: cache hit or executed, the outputs, then the run."""
    outcome = "cache hit" if result.cache_hit else "executed"
    body = f"<div>{esc(outcome)}</div>" + _artifacts_table(result.outputs)
    if result.run is not None:
        body += run_html(result.run)
    return _wrap(f"RunResult {result.run_id or ''}", body)


# -- lineage trees ---------------------------------------------------------------------


def _run_label(run: dict[str, Any], *, arrow: bool = True) -> str:
    dims = [
        f"{name}={run[name]}"
        for name in ("year", "iteration", "stage", "phase")
        if run.get(name) is not None
    ]
    label = ("&larr; " if arrow else "") + f"<strong>{esc(run.get('model_name'))}</strong>"
    if dims:
        label += " " + esc(" ".join(dims))
    label += " " + _status(run.get("status"))
    if run.get("cache_hit"):
        label += " " + esc("cache hit")
    return label + f' <span class="muted">{esc(run.get("id"))}</span>'


def _artifact_label(node: dict[str, Any]) -> str:
    key = node.get("key")
    used = node.get("input_key")
    name = f"{esc(used)} ({esc(key)})" if used and used != key else esc(key)
    label = f'<strong>{name}</strong> <span class="muted">{esc(node.get("uri"))}</span>'
    for flag, text in (
        ("truncated", "beyond max_depth"),
        ("cycle", "cycle"),
        ("shared", "shown elsewhere"),
        ("missing", "missing artifact row"),
    ):
        if node.get(flag):
            label += f' <em class="muted">({esc(text)})</em>'
    if "producing_run" in node and node["producing_run"] is None:
        label += ' <em class="muted">(raw input)</em>'
    return label


def lineage_html(tree: dict[str, Any]) -> str:
    """Nested lists of a lineage tree (artifact or run root), built without recursion."""
    parts: list[str] = []
    shown = 0
    left_out = 0
    if "run" in tree and "inputs" in tree and "key" not in tree:
        title = f"Lineage of run {tree['run'].get('id')}"
        parts.append(f"<ul><li>{_run_label(tree['run'], arrow=False)}")
        stack: list[Any] = [("close", "</li></ul>"), ("children", tree["inputs"])]
    else:
        title = f"Lineage of {tree.get('key')}"
        stack = [("close", "</ul>"), ("node", tree)]
        parts.append("<ul>")
    while stack:
        kind, item = stack.pop()
        if kind == "close":
            parts.append(item)
        elif kind == "children":
            if item:
                parts.append("<ul>")
                stack.append(("close", "</ul>"))
                stack.extend(("node", child) for child in reversed(item))
        else:
            if shown >= MAX_TREE_NODES:
                left_out += 1
                continue
            shown += 1
            parts.append(f"<li>{_artifact_label(item)}")
            stack.append(("close", "</li>"))
            run = item.get("producing_run")
            if run:
                parts.append(f"<ul><li>{_run_label(run)}")
                stack.append(("close", "</li></ul>"))
                stack.append(("children", run.get("inputs") or []))
    if left_out:
        parts.append(f'<div class="muted">{left_out} more node(s) not shown</div>')
    return _wrap(title, "".join(parts))


class LineageTree(dict):  # type: ignore[type-arg]
    """A lineage tree: the plain dict ``get_artifact_lineage``/``get_run_lineage`` describe,
    shown as nested lists in a notebook."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        return lineage_html(self)


# -- run diffs -----------------------------------------------------------------------


def _diff_table(changes: dict[str, Any], what: str) -> str:
    if not changes:
        return f'<div class="muted">no {esc(what)} differ</div>'
    head = f"<tr><th>{esc(what)}</th><th>a</th><th>b</th><th>status</th></tr>"
    items = list(changes.items())
    rows = "".join(
        f"<tr><td>{esc(key)}</td><td>{esc(change.get('a'))}</td>"
        f"<td>{esc(change.get('b'))}</td><td>{esc(change.get('status'))}</td></tr>"
        for key, change in items[:MAX_ROWS]
    )
    more = ""
    if len(items) > MAX_ROWS:
        more = f'<div class="muted">{len(items) - MAX_ROWS} more row(s) not shown</div>'
    return f"<table>{head}{rows}</table>{more}"


def diff_html(diff: dict[str, Any]) -> str:
    """A table of a ``diff_runs`` result (config changes, then inputs when present)."""
    body = _diff_table(diff.get("changes") or {}, "config key")
    if "inputs" in diff:
        body += _diff_table(diff.get("inputs") or {}, "input")
    on = diff.get("on")
    if on:
        body = f'<div class="muted">aligned on {esc(on)}</div>' + body
    return _wrap(f"Diff {diff.get('run_id_a')} \u2192 {diff.get('run_id_b')}", body)


class RunDiff(dict):  # type: ignore[type-arg]
    """The plain dict ``diff_runs`` describes, shown as a table in a notebook."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        return diff_html(self)
