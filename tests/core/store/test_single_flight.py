"""Single-flight: workers reaching one signature at once compute it once (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from consist import Tracker
from consist.core.store import single_flight
from consist.core.store.single_flight import (
    SHARED_LOCK_FILE,
    SignatureClaims,
    SingleFlightTimeout,
)


def _lock_files_left(folder: Path) -> list[str]:
    """Per-signature lock files left in a claims folder (the shared file stays)."""
    return sorted(p.name for p in folder.iterdir() if p.name != SHARED_LOCK_FILE)


@pytest.fixture(params=["shared_file", "file_per_signature"])
def lock_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both kinds of claim: OFD byte locks on one file (Linux) and flock per file."""
    if request.param == "shared_file":
        if single_flight._OFD_SETLK is None:
            pytest.fail("this platform has no F_OFD_SETLK; CI runs on Linux")
    else:
        monkeypatch.setattr(single_flight, "_OFD_SETLK", None)
    return request.param


STEP = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    def slow_step(seconds: float, log: str) -> Path:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(seconds)
        out = Path(log).with_name(f"result_{os.getpid()}.txt")
        out.write_text("computed once\\n")
        return out
    """
)

WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from consist import Tracker
    from steps import slow_step
    root = Path(sys.argv[1])
    while not (root / "go").exists():
        time.sleep(0.01)
    tracker = Tracker(run_dir=root / "runs", db_path=root / "p.duckdb", **eval(sys.argv[3]))
    result = tracker.run(
        slow_step, name="slow", outputs=["out"],
        config={"log": str(root / "executions.log")},
        runtime_kwargs={"seconds": float(sys.argv[2])},  # how long, not what: not hashed
    )
    print(result.cache_hit, result.outputs["out"].hash, result.outputs["out"].abs_path)
    tracker.close()
    """
)


def _project(tmp_path: Path) -> Path:
    (tmp_path / "steps.py").write_text(STEP)
    (tmp_path / "worker.py").write_text(WORKER)
    return tmp_path


def _start(root: Path, seconds: float, options: str = "{}") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(root / "worker.py"), str(root), str(seconds), options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _executions(root: Path) -> list[str]:
    log = root / "executions.log"
    return log.read_text().split() if log.exists() else []


@pytest.mark.slow
def test_four_processes_on_one_signature_compute_it_once(tmp_path: Path) -> None:
    root = _project(tmp_path)
    workers = [_start(root, 1.5) for _ in range(4)]
    time.sleep(1.0)  # all four import consist and wait for the go
    (root / "go").touch()
    outs = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outs]
    rows = [o[0].split() for o in outs]
    assert len(_executions(root)) == 1  # the function ran once
    assert sorted(r[0] for r in rows) == ["False", "True", "True", "True"]
    assert len({r[1] for r in rows}) == 1  # every worker got the same output
    assert all(Path(r[2]).read_text() == "computed once\n" for r in rows)
    assert _lock_files_left(root / "p.duckdb.claims") == []  # nothing per signature left


@pytest.mark.slow
def test_a_killed_holder_lets_the_next_worker_compute(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "go").touch()
    holder = _start(root, 60)
    deadline = time.monotonic() + 60
    while not _executions(root):  # the holder is inside the step, holding the claim
        assert holder.poll() is None, holder.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    waiter = _start(root, 0.2)
    time.sleep(1.0)
    assert waiter.poll() is None, waiter.communicate()  # waiting on the claim, not computing
    assert len(_executions(root)) == 1
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err[-2000:]
    cache_hit, _, path = out.split()
    assert cache_hit == "False"  # nobody finished: the waiter computed it
    assert len(_executions(root)) == 2
    assert Path(path).read_text() == "computed once\n"


@pytest.mark.slow
def test_a_waiter_times_out_with_a_clear_error_and_records_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "go").touch()
    holder = _start(root, 8)
    while not _executions(root):
        assert holder.poll() is None, holder.communicate()[1][-2000:]
        time.sleep(0.05)
    waiter = _start(root, 0.2, "{'single_flight_timeout': 0.5}")
    _, err = waiter.communicate(timeout=120)
    assert waiter.returncode != 0
    assert "SingleFlightTimeout" in err and "single_flight_timeout=0.5" in err
    holder.communicate(timeout=120)
    assert holder.returncode == 0
    tracker = Tracker(run_dir=root / "runs", db_path=root / "p.duckdb")
    assert [r.status for r in tracker.find_runs(model="slow")] == ["completed"]


def test_without_single_flight_both_compute(tmp_path: Path) -> None:
    root = _project(tmp_path)
    workers = [_start(root, 1.0, "{'single_flight': False}") for _ in range(2)]
    time.sleep(0.8)
    (root / "go").touch()
    outs = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outs]
    assert len(_executions(root)) == 2
    assert not (root / "p.duckdb.claims").exists()


def test_a_claim_waits_for_its_holder_and_then_reports_it_waited(
    tmp_path: Path, lock_kind: str
) -> None:
    claims = SignatureClaims(tmp_path / "claims")
    first = claims.claim("blake3:abc")
    assert not first.waited
    got: list = []
    thread = threading.Thread(target=lambda: got.append(claims.claim("blake3:abc")))
    thread.start()
    time.sleep(0.3)
    assert not got  # still waiting
    other = claims.claim("blake3:def")  # another signature is not held up
    other.release()
    first.release()
    thread.join(10)
    assert got and got[0].waited
    got[0].release()
    assert _lock_files_left(tmp_path / "claims") == []
    if lock_kind == "shared_file":  # one file for every signature, never removed
        assert [p.name for p in (tmp_path / "claims").iterdir()] == [SHARED_LOCK_FILE]


def test_a_claim_times_out_naming_the_option(tmp_path: Path, lock_kind: str) -> None:
    held = SignatureClaims(tmp_path / "claims").claim("blake3:abc")
    with pytest.raises(SingleFlightTimeout, match=r"single_flight_timeout=0\.2"):
        SignatureClaims(tmp_path / "claims", timeout_s=0.2).claim("blake3:abc")
    held.release()


def test_lock_file_names_stay_in_their_folder(tmp_path: Path) -> None:
    claims = SignatureClaims(tmp_path / "claims")
    path = claims.path_for("blake3:../../etc/passwd")
    assert path.parent == tmp_path / "claims"
    assert "/" not in path.name and path.resolve().parent == (tmp_path / "claims").resolve()


def _write_result(n: int) -> Path:
    out = Path(os.environ["SINGLE_FLIGHT_OUT"]) / f"result_{n}.txt"
    with open(out.with_suffix(".count"), "a") as f:
        f.write("x")
    out.write_text(f"{n}\n")
    return out


def test_a_result_finished_between_the_lookup_and_the_claim_is_a_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SINGLE_FLIGHT_OUT", str(tmp_path))
    late = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    other = Tracker(run_dir=tmp_path / "runs", db_path=tmp_path / "p.duckdb")
    assert late.lifecycle.claims is not None
    claim = late.lifecycle.claims.claim

    def other_finishes_first(signature: str) -> object:
        # ``late`` looked the signature up and missed; before it takes the
        # claim, another worker computes and commits the same step.
        done = other.run(_write_result, name="step", config={"n": 1}, outputs=["out"])
        assert not done.cache_hit
        return claim(signature)

    monkeypatch.setattr(late.lifecycle.claims, "claim", other_finishes_first)
    result = late.run(_write_result, name="step", config={"n": 1}, outputs=["out"])
    assert result.cache_hit  # looked again after the claim
    assert (tmp_path / "result_1.count").read_text() == "x"  # computed once
    late.close()
    other.close()


_HOLD_AND_DIE = """
import sys, time
from pathlib import Path
from consist.core.store import single_flight
if sys.argv[2] == "file_per_signature":
    single_flight._OFD_SETLK = None
claim = single_flight.SignatureClaims(Path(sys.argv[1])).claim("blake3:shared")
print("held", flush=True)
time.sleep(60)
"""


def test_a_byte_claim_of_a_killed_process_is_released_and_other_bytes_stay_free(
    tmp_path: Path, lock_kind: str
) -> None:
    folder = tmp_path / "claims"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_AND_DIE, str(folder), lock_kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        claims = SignatureClaims(folder, timeout_s=0.3)
        with pytest.raises(SingleFlightTimeout):
            claims.claim("blake3:shared")
        other = claims.claim("blake3:another")  # a different signature is free
        assert not other.waited
        other.release()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        taken = SignatureClaims(folder, timeout_s=5).claim("blake3:shared")
        assert taken.waited is False
        taken.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
