"""Lifecycle hooks: callbacks on run start, completion and failure.

A hook that raises is logged (logger ``consist.hooks``) and never breaks the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("consist.hooks")


class HookRegistry:
    """Registered callbacks, fired in registration order."""

    def __init__(self) -> None:
        self.on_start: list[Callable[..., Any]] = []
        self.on_complete: list[Callable[..., Any]] = []
        self.on_failed: list[Callable[..., Any]] = []

    @staticmethod
    def add(bucket: list[Callable[..., Any]], callback: Callable[..., Any], event: str) -> Any:
        """Register ``callback`` in ``bucket``; returns it (decorator use)."""
        if not callable(callback):
            raise TypeError(f"on_run_{event} expects a callable, got {type(callback).__name__}")
        bucket.append(callback)
        return callback

    @staticmethod
    def fire(bucket: list[Callable[..., Any]], event: str, *args: Any) -> None:
        """Call every callback; log (never raise) their exceptions."""
        for callback in list(bucket):
            try:
                callback(*args)
            except Exception:
                name = getattr(callback, "__qualname__", repr(callback))
                logger.exception("consist: on_run_%s hook %s raised; ignoring", event, name)
