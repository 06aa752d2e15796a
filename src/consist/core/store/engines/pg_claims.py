"""Single-flight on a PostgreSQL store: claims are server advisory locks.

The same contract as :class:`~consist.core.store.single_flight.SignatureClaims`
(``claim(signature)`` returns a :class:`PgClaim` with ``waited`` and
``release()``), for workers on any machine that reach the store's server:

* A claim is a session-level ``pg_try_advisory_lock`` keyed by a 64-bit
  digest of the signature, taken on a session dedicated to claims (one per
  :class:`PgSignatureClaims` and process, never the store's session, whose
  transactions must not carry it). The server drops a session's locks when
  it ends, so a holder that dies (SIGKILL, OOM, a lost machine) releases its
  claims: with a dead process the kernel closes its socket and the server
  notices at once; a vanished machine is noticed by TCP keepalives (libpq's
  ``keepalives_idle`` below).
* Threads of one process claiming one signature queue on an in-process lock
  first (a session holds an advisory lock re-entrantly, so the server alone
  would let both in).
* Waiters poll with backoff (5 ms up to 250 ms) and raise
  :class:`~consist.core.store.single_flight.SingleFlightTimeout` after
  ``timeout_s``.

The digests live in the one-``bigint`` key space of advisory locks; the
schema migration lock uses a fixed key in the same space.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from consist.core.store.engines.postgres import _require_driver, check_url, redact
from consist.core.store.single_flight import SingleFlightTimeout

__all__ = ["PgClaim", "PgSignatureClaims", "lock_key"]

_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5}


def lock_key(signature: str) -> int:
    """The signed 64-bit advisory-lock key of ``signature``."""
    digest = hashlib.blake2b(signature.encode(), digest_size=8, person=b"consist-sf").digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class PgClaim:
    """A held claim on one signature; :meth:`release` lets the next waiter in."""

    signature: str
    waited: bool  # another holder had it first: its result may now be stored
    _owner: PgSignatureClaims | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the claim back (idempotent; never raises: a lost session released it)."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._release(self.signature)


class PgSignatureClaims:
    """Claims on signatures of one PostgreSQL store.

    Parameters
    ----------
    url:
        The store's ``postgresql://`` / ``postgresql+psycopg://`` URL.
    timeout_s:
        How long a waiter waits for another holder (None: as long as it takes).
    """

    def __init__(self, url: str, timeout_s: float | None = None) -> None:
        check_url(url)
        self.url = url
        self.timeout_s = timeout_s
        self._box: list[Any] = [None]  # the claims session (closed when this is collected)
        weakref.finalize(self, _close_session, self._box)
        self._session_lock = threading.Lock()  # one statement at a time on the session
        self._held: dict[str, list[Any]] = {}  # signature -> [lock, users]
        self._guard = threading.Lock()
        _ALL.add(self)

    def claim(self, signature: str) -> PgClaim:
        """Wait for and take the claim on ``signature``.

        Raises
        ------
        SingleFlightTimeout
            If another holder keeps it longer than ``timeout_s``.
        ConnectionError
            If the server cannot be reached.
        """
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        local = self._local_lock(signature)
        waited = not local.acquire(blocking=False)
        if waited and not local.acquire(timeout=-1 if deadline is None else self._left(deadline)):
            self._drop_local(signature)
            raise self._timeout(signature)
        try:
            key = lock_key(signature)
            delay = 0.005
            while not self._try_lock(key):
                waited = True
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._timeout(signature)
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        except BaseException:
            local.release()
            self._drop_local(signature)
            raise
        return PgClaim(signature, waited, self)

    def close(self) -> None:
        """Close the claims session (its claims are released by the server)."""
        with self._session_lock:
            _close_session(self._box)

    # -- internals ----------------------------------------------------------------

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.0, deadline - time.monotonic())

    def _timeout(self, signature: str) -> SingleFlightTimeout:
        return SingleFlightTimeout(
            f"another process has been computing signature {signature} for more than "
            f"single_flight_timeout={self.timeout_s:g} s (advisory lock {lock_key(signature)} "
            f"on {redact(self.url)}); raise single_flight_timeout, wait for it, or stop "
            "that process"
        )

    def _local_lock(self, signature: str) -> threading.Lock:
        """This process's lock for ``signature`` (counted: forgotten when unused)."""
        with self._guard:
            entry = self._held.get(signature)
            if entry is None:
                entry = self._held[signature] = [threading.Lock(), 0]
            entry[1] += 1
            return entry[0]

    def _drop_local(self, signature: str) -> None:
        with self._guard:
            entry = self._held.get(signature)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._held[signature]

    def _connect(self) -> Any:
        psycopg, _ = _require_driver()
        dsn = "postgresql://" + self.url.split("://", 1)[1]
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=30, **_KEEPALIVE)
        except psycopg.OperationalError as exc:
            raise ConnectionError(
                f"cannot connect to the PostgreSQL store db_url={redact(self.url)!r} for a "
                f"single-flight claim: {exc}"
            ) from exc

    def _try_lock(self, key: int) -> bool:
        with self._session_lock:
            session = self._box[0]
            if session is None or session.closed or session.broken:
                session = self._box[0] = self._connect()
            row = session.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
        return bool(row[0])

    def _release(self, signature: str) -> None:
        try:
            with self._session_lock:
                session = self._box[0]
                if session is not None and not session.closed and not session.broken:
                    with contextlib.suppress(Exception):  # a lost session released it already
                        session.execute("SELECT pg_advisory_unlock(%s)", [lock_key(signature)])
        finally:
            entry = self._held.get(signature)
            if entry is not None and entry[0].locked():
                entry[0].release()
            self._drop_local(signature)


def _close_session(box: list[Any]) -> None:
    session, box[0] = box[0], None
    if session is not None:  # a forked child's box is emptied (see below)
        with contextlib.suppress(Exception):
            session.close()


_ALL: weakref.WeakSet[PgSignatureClaims] = weakref.WeakSet()
_INHERITED: list[Any] = []  # claims sessions a forked child inherited: kept, never used


def _after_fork_in_child() -> None:
    # The parent's session (and its locks) stay the parent's: closing it here
    # would end it for the parent too. The child opens its own when it claims.
    for claims in list(_ALL):
        if claims._box[0] is not None:
            _INHERITED.append(claims._box[0])
        claims._box[0] = None
        claims._session_lock = threading.Lock()
        claims._guard = threading.Lock()
        claims._held = {}


os.register_at_fork(after_in_child=_after_fork_in_child)
