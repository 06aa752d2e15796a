"""One command's session: its store options, its tracker, and how it prints.

Every command gets a :class:`Session`: ``session.tracker()`` opens the store
(read-only unless asked) once, and ``session.emit(data, render)`` prints
either the ``--json`` form (``data``, for scripts) or the rich rendering.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consist.cli.errors import LOCKED, CliError
from consist.cli.store_access import (
    StoreOptions,
    StoreTarget,
    lock_timeout,
    open_tracker,
    resolve_store,
    store_errors,
)

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from consist.core.tracker import Tracker


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def to_json(data: Any) -> str:
    """``data`` as the JSON a command prints (datetimes in ISO 8601)."""
    return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False)


class Session:
    """The state of one command invocation.

    Parameters
    ----------
    options:
        Store options (global ones overridden by the command's own).

    Attributes
    ----------
    target:
        The store the command opened (a DuckDB file or a PostgreSQL URL;
        None until :meth:`tracker` is first called).
    """

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self._tracker: Tracker | None = None
        self._write = False
        self._console: Console | None = None
        self.target: StoreTarget | None = None

    @property
    def json(self) -> bool:
        """Whether the command prints JSON."""
        return self.options.json

    @property
    def console(self) -> Console:
        """The rich console on stdout."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=False)
        return self._console

    def tracker(self, *, write: bool = False) -> Tracker:
        """The store's tracker, opened on first use (read-only unless ``write``)."""
        if self._tracker is not None and write and not self._write:
            self._tracker.close()
            self._tracker = None
        if self._tracker is None:
            if self.target is None:
                self.target = resolve_store(self.options)
            self._tracker = open_tracker(self.options, write=write)
            self._write = write
        return self._tracker

    @contextmanager
    def guard(self) -> Iterator[None]:
        """A context that turns lock and permission errors into CLI errors.

        On a PostgreSQL store a table another session keeps locked (a
        maintenance command waiting behind a writer) ends with the store's
        own message and exit 4; ``--lock-timeout`` does not apply there.
        """
        from consist.core.store.connection import StoreLockTimeout

        with store_errors(self.options.db_path or "the store", lock_timeout(self.options)):
            try:
                yield
            except StoreLockTimeout as exc:
                target = self.target
                if target is None or target.db_url is None:
                    raise
                text = " ".join(str(exc).split())
                raise CliError(f"{text} ({target.source} {target.label})", LOCKED) from None

    def emit(self, data: Any, render: Callable[[Console], None]) -> None:
        """Print ``data`` as JSON under ``--json``, else call ``render`` with the console."""
        if self.json:
            sys.stdout.write(to_json(data) + "\n")
        else:
            render(self.console)

    def close(self) -> None:
        """Close the tracker, if one was opened."""
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
