"""Which cache signatures the store holds completed runs for, known in memory.

Every cache miss asks the database whether a completed run with its
signature exists; the answer is almost always no, and the point query costs
about a quarter of the durable write that records the run. While this process
holds the database file, no other process can write to it (DuckDB admits one
writing process per file), so a set of the completed signatures, loaded once
after the file was opened and kept up to date with this process's own
commits, answers "no" exactly. The connection manager's ``epoch`` changes each
time the file is (re)opened; an index from an earlier epoch is never trusted,
because other processes may have written in between.

A positive answer is only a hint: the caller still reads the candidate runs
from the database. Writes that bypass the store (raw SQL inserting runs
through ``run_query`` in this process) are not seen; they are not a supported
way to record runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from consist.core.store.process_shared import PerConnections

# Loading costs one scan of the run table: worth it from the second lookup
# that finds no answer in the same epoch (a loop of runs), not for one run.
_LOAD_AFTER_LOOKUPS = 2


class CompletedSignatures:
    """Signatures of completed runs in one database file, for one epoch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = -1
        self._signatures: set[str] = set()
        self._lookups_epoch = -1
        self._lookups = 0
        self._last: str | None = None

    def may_exist(self, epoch: int, signature: str, load: Callable[[], Iterable[str]]) -> bool:
        """False only when no completed run with ``signature`` is stored.

        Parameters
        ----------
        epoch:
            The connection manager's current epoch (the file is held).
        signature:
            The signature looked up.
        load:
            Reads every completed signature from the database (called at
            most once per epoch, and only once lookups repeat).
        """
        with self._lock:
            if self._epoch == epoch:
                return signature in self._signatures
            if self._lookups_epoch != epoch:
                self._lookups_epoch, self._lookups, self._last = epoch, 0, None
            if signature != self._last:  # asking again (single-flight) is not a loop of runs
                self._lookups += 1
                self._last = signature
            if self._lookups < _LOAD_AFTER_LOOKUPS:
                return True
            self._signatures = set(load())
            self._epoch = epoch
            return signature in self._signatures

    def known_absent(self, epoch: int, signature: str) -> bool:
        """True when the index is loaded for ``epoch`` and lacks ``signature``."""
        with self._lock:
            return self._epoch == epoch and signature not in self._signatures

    def add(self, epoch: int, signatures: Iterable[str]) -> None:
        """Record signatures of completed runs committed during ``epoch``."""
        with self._lock:
            if self._epoch == epoch:
                self._signatures.update(signatures)

    def reset_in_child(self) -> None:
        """Forget everything in a forked child (see :mod:`.process_shared`)."""
        self._lock = threading.Lock()
        self._epoch = -1
        self._signatures = set()
        self._lookups_epoch = -1


_INDEXES: PerConnections[CompletedSignatures] = PerConnections(CompletedSignatures)


def signatures_for(connections: Any) -> CompletedSignatures:
    """The index shared by every store of this process on ``connections``' file."""
    return _INDEXES.get(connections)
