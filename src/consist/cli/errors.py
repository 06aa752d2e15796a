"""Exit codes of the ``consist`` command and the one-line error that ends a command.

==== =================================================================
code meaning
==== =================================================================
0    success
1    the command ran and found problems (``validate``, ``db doctor``
     without ``--fix``), or an unexpected error
2    bad usage: unknown option, bad filter value (typer's convention),
     ``--db-url`` with ``--db-path``, or a command a PostgreSQL store
     (``--db-url``) does not support yet
3    no usable store: missing, unreadable, or not a Consist store
4    the store stayed locked by another process past ``--lock-timeout``
5    not found: no such run, artifact or scenario
==== =================================================================
"""

from __future__ import annotations

OK = 0
PROBLEMS = 1
USAGE = 2
NO_STORE = 3
LOCKED = 4
NOT_FOUND = 5


class CliError(Exception):
    """Ends a command with one line on stderr and a meaningful exit code.

    Parameters
    ----------
    message:
        What went wrong and how to fix it (one line, no traceback).
    code:
        The exit code (see the module docstring).
    """

    def __init__(self, message: str, code: int = PROBLEMS) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def not_found(what: str, name: str, hint: str) -> CliError:
    """The error for an unknown run, artifact or scenario (exit code 5)."""
    return CliError(f"no {what} {name!r} in this store; {hint}", NOT_FOUND)


def usage(message: str) -> CliError:
    """The error for a bad option value that typer could not catch itself (exit 2)."""
    return CliError(message, USAGE)
