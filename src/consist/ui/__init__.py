"""The local, read-only web page for runs and lineage, and its JSON API (``ui`` extra).

``serve_ui(tracker)`` serves it on a free loopback port and prints the URL
(``consist ui`` from a terminal); ``create_app(tracker)`` returns the ASGI
application itself (for tests or another server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from consist.ui.app import create_app
    from consist.ui.server import serve_ui

__all__ = ["create_app", "serve_ui"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: importing consist.ui needs no web server packages.
    if name == "create_app":
        from consist.ui.app import create_app

        return create_app
    if name == "serve_ui":
        from consist.ui.server import serve_ui

        return serve_ui
    raise AttributeError(f"module 'consist.ui' has no attribute {name!r}")
