"""The current tracker, for the module-level helpers (``consist.output_path`` ...)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.tracker import Tracker

_current: ContextVar[Any] = ContextVar("consist_current_tracker", default=None)
_default: list[Any] = [None]


def set_current(tracker: Tracker | None) -> Any:
    """Make ``tracker`` current in this context; returns a token for :func:`reset`."""
    return _current.set(tracker)


def reset(token: Any) -> None:
    """Undo a :func:`set_current`."""
    _current.reset(token)


def set_default(tracker: Tracker | None) -> None:
    """The tracker used when none is current in the context (``use_tracker``)."""
    _default[0] = tracker


def current() -> Tracker | None:
    """The current tracker: the one running a step, else the default, else None."""
    return _current.get() or _default[0]


def require_current(what: str) -> Tracker:
    """The current tracker, or RuntimeError naming the helper that needed it."""
    tracker = current()
    if tracker is None:
        raise RuntimeError(
            f"{what} needs a tracker: call it inside a tracker.run()/trace()/start_run() "
            "block, or set one with consist.use_tracker(tracker)"
        )
    return tracker
