"""``consist ui``: open the local web page on a free port and print its URL."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from consist.cli.app import app, store_command
from consist.cli.errors import CliError, usage
from consist.cli.session import Session


@store_command(app, "ui", example="consist ui --db-path provenance.duckdb --browser")
def ui(
    session: Session,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (loopback only unless --allow-remote)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")] = 0,
    browser: Annotated[
        bool,
        typer.Option("--browser/--no-browser", help="Open the page in the default web browser."),
    ] = False,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a --host other machines can reach. The page has no login: anyone "
            "who reaches it reads the store.",
        ),
    ] = False,
) -> None:
    """Serve a read-only web page of the store: runs, why each ran, lineage graphs, diffs.

    Prints the URL (with --json: one line {"url": ...}) and serves until
    Ctrl-C. The store is opened read-only and held only while a request
    reads it, so runs can be recorded meanwhile. From Python:
    consist.ui.serve_ui(tracker).
    """
    from consist.ui.server import check_host, serve_ui

    try:
        check_host(host, allow_remote)
    except ValueError as exc:
        raise usage(f"--host: {exc}") from None
    tracker = session.tracker()

    def announce(url: str) -> None:
        if session.json:
            sys.stdout.write(json.dumps({"url": url}) + "\n")
        else:
            sys.stdout.write(f"Consist web page: {url}  (read-only; Ctrl-C to stop)\n")
        sys.stdout.flush()

    try:
        serve_ui(
            tracker,
            host=host,
            port=port,
            open_browser=browser,
            allow_remote=allow_remote,
            announce=announce,
        )
    except OSError as exc:
        raise CliError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port, "
            "or 0 for a free one"
        ) from None
