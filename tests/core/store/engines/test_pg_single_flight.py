"""Single-flight claims on PostgreSQL: advisory locks, released when their holder dies."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from consist.core.store.engines.pg_claims import PgSignatureClaims, lock_key
from consist.core.store.single_flight import SingleFlightTimeout

_TIMEOUT = 120
SIG = "blake3:" + "ab" * 32


def test_a_held_signature_makes_others_wait_and_time_out(pg_url: str) -> None:
    holder, other = PgSignatureClaims(pg_url), PgSignatureClaims(pg_url, timeout_s=0.3)
    try:
        claim = holder.claim(SIG)
        assert not claim.waited
        started = time.monotonic()
        with pytest.raises(SingleFlightTimeout, match=r"single_flight_timeout=0\.3"):
            other.claim(SIG)
        assert time.monotonic() - started >= 0.3
        other.claim("blake3:another").release()  # other signatures are free
        claim.release()
        claim.release()  # idempotent
        again = other.claim(SIG)
        assert not again.waited
        again.release()
    finally:
        holder.close()
        other.close()


def test_threads_of_one_process_take_turns(pg_url: str) -> None:
    claims = PgSignatureClaims(pg_url)
    first = claims.claim(SIG)
    got: list[bool] = []

    def waiter() -> None:
        claim = claims.claim(SIG)
        got.append(claim.waited)
        claim.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    assert got == []  # still waiting: one session, but one holder
    first.release()
    thread.join(10)
    assert got == [True]
    assert claims._held == {}  # nothing kept per signature once released
    claims.close()


def _hold_once(url: str, log: str, barrier: object) -> bool:
    claims = PgSignatureClaims(url)
    barrier.wait(timeout=_TIMEOUT)  # type: ignore[attr-defined]
    claim = claims.claim(SIG)
    with open(log, "a") as f:
        f.write(f"in {time.monotonic()}\n")
    time.sleep(0.3)
    with open(log, "a") as f:
        f.write(f"out {time.monotonic()}\n")
    claim.release()
    claims.close()
    return claim.waited


def test_four_processes_hold_one_signature_one_at_a_time(pg_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        barrier = manager.Barrier(4)
        jobs = [pool.apply_async(_hold_once, (pg_url, str(log), barrier)) for _ in range(4)]
        waited = [job.get(_TIMEOUT) for job in jobs]
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["in", "out"] * 4  # never two holders at once
    assert sum(waited) >= 1  # released together, they found it held


_HOLDER = """
import sys, time
from consist.core.store.engines.pg_claims import PgSignatureClaims
claim = PgSignatureClaims(sys.argv[1]).claim(sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_releases_its_claim(pg_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), pg_url, SIG],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        claims = PgSignatureClaims(pg_url, timeout_s=0.3)
        with pytest.raises(SingleFlightTimeout):
            claims.claim(SIG)
        holder.kill()  # SIGKILL: no cleanup in the holder
        holder.wait(10)
        claims.timeout_s = 10
        claim = claims.claim(SIG)  # the dead holder's lock went with its session
        claim.release()
        claims.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_lock_keys_are_stable_signed_64_bit() -> None:
    key = lock_key(SIG)
    assert key == lock_key(SIG) != lock_key(SIG + "0")
    assert -(2**63) <= key < 2**63


def test_an_unreachable_server_is_a_connection_error() -> None:
    claims = PgSignatureClaims("postgresql://postgres@127.0.0.1:1/db")
    with pytest.raises(ConnectionError, match="db_url"):
        claims.claim(SIG)
    assert claims._held == {}
