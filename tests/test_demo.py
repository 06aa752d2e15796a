"""The demo as a newcomer runs it (README's first command), then the commands it suggests."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
    env["COLUMNS"] = "200"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_demo_runs_hits_on_the_second_time_and_its_suggested_commands_work(
    tmp_path: Path,
) -> None:
    first = _run([sys.executable, str(DEMO)], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Lineage of report" in first.stdout
    assert "cache hit" not in first.stdout.split("Scenario")[0]

    second = _run([sys.executable, str(DEMO)], tmp_path)
    assert second.returncode == 0, second.stderr
    steps = second.stdout.split("Scenario")[0]
    assert steps.count("cache hit") == 3, steps
    assert "execution #2" in second.stdout

    suggested = second.stdout.split("Next, from a terminal:")[1].strip().splitlines()
    assert len(suggested) == 2
    outputs = []
    for line in suggested:
        args = shlex.split(line)
        assert args[1] in ("runs", "lineage")
        if not os.path.isabs(args[0]) and args[0] != "consist":
            args[0] = str(tmp_path / args[0])
        if args[0] == "consist":  # not installed next to this Python: use the module
            args = [sys.executable, "-m", "consist", *args[1:]]
        done = _run(args, tmp_path)
        assert done.returncode == 0, (line, done.stderr)
        outputs.append(done.stdout)
    runs_out, lineage_out = outputs
    assert "generate_households" in runs_out and "report" in runs_out
    assert "summary" in lineage_out and "households" in lineage_out
