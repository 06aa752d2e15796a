"""The ``consist`` command line (typer + rich): one module per command group.

Entry points: the ``consist`` console script and ``python -m consist``.
The commands are a thin layer over public :class:`~consist.core.tracker.Tracker`
methods; see :mod:`consist.cli.app` for the conventions (global options,
``--json``, exit codes in :mod:`consist.cli.errors`).
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run the ``consist`` command (``argv`` defaults to ``sys.argv[1:]``)."""
    from consist.cli.commands import build_app

    build_app()(args=argv, prog_name="consist")
