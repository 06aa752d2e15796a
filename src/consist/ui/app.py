"""The web application: the JSON API under ``/api/`` and the page that reads it.

Read-only: every route is a GET that reads through the Tracker (the paged
listings through its store). Requests are answered one at a time (the
tracker and its DuckDB connections are not shared between threads).
Errors are JSON ``{"error": {"status", "message", "parameter"}}``: 400 for
a bad parameter (named), 404 for an unknown id or route, 503 when another
process holds the store locked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from consist.ui.artifacts import artifact_detail, artifact_lineage, preview, run_lineage
from consist.ui.params import ApiError
from consist.ui.runs import (
    diff,
    filter_values,
    list_runs,
    list_scenarios,
    run_detail,
    run_explanation,
    scenario_tree,
)
from consist.ui.summaries import jsonable

if TYPE_CHECKING:  # pragma: no cover
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from consist.core.tracker import Tracker

# Page paths (all served by the one page, which routes on location.pathname).
PAGES = (
    "/",
    "/runs/{run_id}",
    "/scenarios",
    "/scenarios/{scenario_id}",
    "/artifacts/{artifact_id}",
    "/diff",
)
STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "graph.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _ui_import_error(exc: ImportError) -> ImportError:
    return ImportError(
        f"the Consist web page needs the 'ui' extra ({exc.name} is missing): "
        "pip install 'consist[ui]'"
    )


def create_app(tracker: Tracker, *, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The read-only web page and JSON API over ``tracker``'s store, as an ASGI app.

    Serve it with :func:`consist.ui.serve_ui` (or any ASGI server); test it
    with ``starlette.testclient.TestClient``. The API:

    ``/api/runs`` (filters ``model``, ``status``, ``tag``, ``year``,
    ``scenario``, ``since``, ``until``; ``order``, ``page``, ``page_size``),
    ``/api/filters``, ``/api/runs/{id}``, ``/api/runs/{id}/explanation``,
    ``/api/runs/{id}/lineage?depth=``, ``/api/scenarios``,
    ``/api/scenarios/{id}``, ``/api/artifacts/{id}``,
    ``/api/artifacts/{id}/lineage?depth=``, ``/api/artifacts/{id}/preview?rows=``,
    ``/api/diff?a=&b=&all=``.

    Parameters
    ----------
    tracker:
        A tracker with a database (open it with ``read_only=True``; the app
        never writes).
    allowed_hosts:
        Host header values to accept (e.g. ``["127.0.0.1", "localhost"]``:
        a page on another site cannot then reach this one through DNS
        rebinding). None accepts any (``serve_ui`` sets the loopback names).

    Returns
    -------
    starlette.applications.Starlette
        The ASGI application (FastAPI is not needed: Starlette, which it is
        built on, is enough).

    Raises
    ------
    ValueError
        If ``tracker`` has no database.
    ImportError
        Without the ``ui`` extra (starlette), naming it.
    """
    if getattr(tracker, "store", None) is None:
        raise ValueError(
            "create_app: the tracker has no database; the web page reads the store, so "
            "construct the Tracker with db_path=... (read_only=True)"
        )
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.responses import Response
        from starlette.routing import Route
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise _ui_import_error(exc) from exc

    lock = threading.Lock()

    def answer(read: Callable[..., Any], *path_params: str) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            query: dict[str, list[str]] = {}
            for name, value in request.query_params.multi_items():
                query.setdefault(name, []).append(value)
            args = [request.path_params[p] for p in path_params]
            try:
                with lock:
                    body = read(tracker, *args, query)
            except ApiError as exc:
                return _json(exc.payload(), exc.status)
            except Exception as exc:
                return _json(*_unexpected(exc))
            return _json(body, 200)

        return endpoint

    def page(request: Request) -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8")

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(_asset(name), media_type=STATIC_FILES[name])

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/api/") or exc.status_code != 404:
            what = "no such API endpoint; see /api/" if exc.status_code == 404 else exc.detail
            return _json(
                ApiError(exc.status_code, f"{request.url.path}: {what}").payload(), exc.status_code
            )
        return Response(
            "not found: this page has no such address", status_code=404, media_type="text/plain"
        )

    def index(request: Request) -> Response:
        return _json({"endpoints": [r.path for r in api_routes]}, 200)

    api_routes = [
        Route("/api/runs", answer(list_runs)),
        Route("/api/filters", answer(filter_values)),
        Route("/api/runs/{run_id}", answer(run_detail, "run_id")),
        Route("/api/runs/{run_id}/explanation", answer(run_explanation, "run_id")),
        Route("/api/runs/{run_id}/lineage", answer(run_lineage, "run_id")),
        Route("/api/scenarios", answer(list_scenarios)),
        Route("/api/scenarios/{scenario_id}", answer(scenario_tree, "scenario_id")),
        Route("/api/artifacts/{artifact_id}", answer(artifact_detail, "artifact_id")),
        Route(
            "/api/artifacts/{artifact_id}/lineage",
            answer(artifact_lineage, "artifact_id"),
        ),
        Route("/api/artifacts/{artifact_id}/preview", answer(preview, "artifact_id")),
        Route("/api/diff", answer(diff)),
    ]
    routes = [
        Route("/api/", index),
        *api_routes,
        *(Route(path, page) for path in PAGES),
        Route("/static/{name}", static),
    ]
    hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
    return Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, allowed_hosts=hosts)],
        exception_handlers={HTTPException: http_error},
    )


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:8000`` -> ``[::1]``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.split(":", 1)[0]


class _Guard:
    """ASGI middleware: refuse unexpected Host headers (DNS rebinding); add headers that
    keep third-party content, MIME sniffing and referrers out."""

    def __init__(self, app: Any, allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_hosts is not None:
            headers = dict(scope.get("headers") or [])
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed_hosts:
                error = ApiError(400, f"Host {host!r} is not served here; open the printed URL")
                response = _json(error.payload(), 400)
                await response(scope, receive, send)
                return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (name.lower().encode(), value.encode())
                    for name, value in _SECURITY_HEADERS.items()
                    if name.lower().encode() not in present
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _json(body: Any, status: int) -> Response:
    from starlette.responses import Response

    text = json.dumps(jsonable(body), ensure_ascii=False, allow_nan=False)
    return Response(text, status_code=status, media_type="application/json")


def _unexpected(exc: Exception) -> tuple[dict[str, Any], int]:
    """503 for a store locked by another process; else 500 with the error's own words."""
    from consist.core.store.connection import StoreLockTimeout

    if isinstance(exc, StoreLockTimeout):
        message = f"the store is locked by another process; retry in a moment ({exc})"
        return ApiError(503, message).payload(), 503
    message = f"unexpected error: {type(exc).__name__}: {exc}"
    return ApiError(500, message).payload(), 500


def _asset(name: str) -> bytes:
    return resources.files("consist.ui").joinpath("static", name).read_bytes()
