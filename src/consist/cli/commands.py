"""Assembles the ``consist`` application from its command modules."""

from __future__ import annotations

import typer

from consist.cli.app import app

_BUILT: list[typer.Typer] = []


def build_app() -> typer.Typer:
    """The application with every command group registered (once per process)."""
    if not _BUILT:
        # Each module registers its commands on import (one line per module).
        import consist.cli.browse_commands
        import consist.cli.data_commands
        import consist.cli.db_commands
        import consist.cli.export_commands
        import consist.cli.provenance_commands
        import consist.cli.runs_commands
        import consist.cli.schema_commands
        import consist.cli.shard_commands
        import consist.cli.ui_commands  # noqa: F401

        _BUILT.append(app)
    return app
