"""One object per database file and process, shared by every store opened on it.

Trackers of one process on one file share a connection manager; in-memory
knowledge about that file (which signatures are completed, which input paths
no run produced) must be shared the same way, and forgotten in a forked
child, which opens the file afresh and must not inherit locks held by
threads that do not exist there.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class ForgetsInChild(Protocol):
    """What a shared object does after ``fork`` in the child."""

    def reset_in_child(self) -> None: ...


T = TypeVar("T", bound=ForgetsInChild)


class PerConnections(Generic[T]):
    """``get(connections)``: the object made by ``factory`` for that connection manager."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._objects: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()
        _REGISTRIES.append(self)

    def get(self, connections: Any) -> T:
        with self._guard:
            found = self._objects.get(connections)
            if found is None:
                found = self._objects[connections] = self._factory()
            return found

    def _reset_in_child(self) -> None:
        self._guard = threading.Lock()
        for shared in list(self._objects.values()):
            shared.reset_in_child()


_REGISTRIES: list[PerConnections[Any]] = []


def _forget_in_child() -> None:
    for registry in _REGISTRIES:
        registry._reset_in_child()


os.register_at_fork(after_in_child=_forget_in_child)
