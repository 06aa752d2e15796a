"""Query parameters of the JSON API: parsed and checked, or a 4xx naming the parameter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from consist.models.run import RUN_STATUSES

MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000_000  # beyond any store; keeps the offset a 64-bit integer


class ApiError(Exception):
    """An API request that cannot be answered: an HTTP status and a message for the user.

    Parameters
    ----------
    status:
        HTTP status (400 bad parameter, 404 unknown id, ...).
    message:
        What is wrong and how to fix it.
    parameter:
        The query or path parameter at fault, if one is.
    """

    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter

    def payload(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"status", "message", "parameter"}}``."""
        return {
            "error": {"status": self.status, "message": self.message, "parameter": self.parameter}
        }


def bad(parameter: str, message: str) -> ApiError:
    """A 400 for ``parameter``: ``"<parameter>: <message>"``."""
    return ApiError(400, f"{parameter}: {message}", parameter)


def check_known(query: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse a parameter the endpoint does not take (a typo would otherwise filter nothing)."""
    allowed = sorted(set(known))
    for name in query:
        if name not in allowed:
            raise bad(
                name, f"unknown parameter; this endpoint takes {', '.join(allowed) or 'none'}"
            )


def one(query: Mapping[str, list[str]], name: str) -> str | None:
    """The single value of ``name`` (None when absent or empty); repeated is an error."""
    values = [v for v in query.get(name, []) if v != ""]
    if len(values) > 1:
        raise bad(name, f"given {len(values)} times; give it once")
    return values[0] if values else None


def integer(
    query: Mapping[str, list[str]],
    name: str,
    *,
    default: int | None = None,
    low: int | None = None,
    high: int | None = None,
) -> int | None:
    """An integer parameter within ``[low, high]`` (``default`` when absent)."""
    text = one(query, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad(name, f"must be an integer, got {text!r}") from None
    if low is not None and value < low:
        raise bad(name, f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise bad(name, f"must be at most {high}, got {value}")
    return value


def status(query: Mapping[str, list[str]]) -> str | None:
    """``status``: one of the run statuses."""
    value = one(query, "status")
    if value is not None and value not in RUN_STATUSES:
        raise bad("status", f"must be one of {', '.join(RUN_STATUSES)}, got {value!r}")
    return value


def moment(
    query: Mapping[str, list[str]], name: str, *, end_of_day: bool = False
) -> datetime | None:
    """An ISO date or date-time; without a zone it is the server's local time.

    A bare date means its first moment, or with ``end_of_day`` its last one
    (so ``until=2026-12-04`` includes the whole day).
    """
    text = one(query, name)
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            value = datetime.combine(day, time.min)
            if end_of_day:
                value += timedelta(days=1) - timedelta(microseconds=1)
        else:
            value = datetime.fromisoformat(text)
    except ValueError:
        raise bad(
            name, f"use an ISO date or date-time (2026-12-04, 2026-12-04T18:00), got {text!r}"
        ) from None
    return value if value.tzinfo is not None else value.astimezone()


def boolean(query: Mapping[str, list[str]], name: str) -> bool:
    """A flag: ``1``/``true``/``yes`` or ``0``/``false``/``no`` (absent: false)."""
    text = one(query, name)
    if text is None:
        return False
    lowered = text.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise bad(name, f"must be true or false, got {text!r}")


def paging(query: Mapping[str, list[str]], *, default_size: int = 50) -> tuple[int, int]:
    """``page`` (1-based) and ``page_size`` (1..MAX_PAGE_SIZE)."""
    page = integer(query, "page", default=1, low=1, high=MAX_PAGE)
    size = integer(query, "page_size", default=default_size, low=1, high=MAX_PAGE_SIZE)
    assert page is not None and size is not None
    return page, size
