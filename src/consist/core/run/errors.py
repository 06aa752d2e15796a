"""Exceptions of step execution (re-exported by :mod:`consist.core.run.runner`)."""

from __future__ import annotations

__all__ = ["ConsistRunError"]


class ConsistRunError(RuntimeError):
    """The step function raised; the run was recorded as failed.

    Attributes
    ----------
    run_id:
        The failed run. The original exception is ``__cause__``.
    """

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id
