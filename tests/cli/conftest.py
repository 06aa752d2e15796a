"""A real project store for the command-line tests, and ways to run the command.

``project`` builds, once per test, a model repository (committed code,
untracked data and logs) whose run directory and DuckDB store live inside
it, and records a small but complete history through the public API:

* ``prepare`` (model ``households``): reads ``data/households.csv``, writes a
  ``persons`` parquet; executed with ``scale=1``, then hit, then executed with
  ``scale=2`` (a miss whose explanation names ``scale``);
* ``broken``: a step that raises (a failed run);
* scenario ``baseline`` with steps ``demand_2030`` and ``demand_2040``, each
  consuming the ``persons`` table (lineage: csv -> persons -> demand).

``cli(*args)`` runs the command in-process through typer's ``CliRunner``;
``run_consist(*args)`` runs ``python -m consist`` in a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from _support import make_model_project
from consist import Tracker
from consist.cli.commands import build_app


def prepare(households: pd.DataFrame, scale: int = 1) -> pd.DataFrame:
    """Persons per household, scaled."""
    return households.assign(persons=households["size"] * scale)


def demand(persons: pd.DataFrame, year: int) -> pd.DataFrame:
    """Trips per household for a year."""
    return persons.assign(trips=persons["persons"] * (year - 2000) // 10)


def broken(scale: int = 1) -> None:
    """A step that fails."""
    raise RuntimeError("solver diverged")


@dataclass
class Project:
    """The project built by the ``project`` fixture and what it recorded."""

    root: Path
    db_path: Path
    run_dir: Path
    runs: dict[str, str] = field(default_factory=dict)  # label -> run id

    def args(self) -> list[str]:
        """The store options that point a command at this project."""
        return ["--db-path", str(self.db_path), "--run-dir", str(self.run_dir)]


def build_project(root: Path) -> Project:
    """Record the history described in the module docstring under ``root``."""
    repo = make_model_project(root)
    tracker = Tracker(repo / "runs", db_path=repo / "provenance.duckdb", project_root=repo)
    project = Project(root=repo, db_path=repo / "provenance.duckdb", run_dir=repo / "runs")
    households = repo / "data" / "households.csv"
    first = tracker.run(
        fn=prepare,
        name="households",
        config={"scale": 1},
        inputs={"households": households},
        outputs=["persons"],
        tags=["base"],
    )
    hit = tracker.run(
        fn=prepare,
        name="households",
        config={"scale": 1},
        inputs={"households": households},
        outputs=["persons"],
        tags=["base"],
    )
    assert hit.cache_hit
    scaled = tracker.run(
        fn=prepare,
        name="households",
        config={"scale": 2},
        inputs={"households": households},
        outputs=["persons"],
        tags=["scaled"],
    )
    with pytest.raises(Exception, match="solver diverged"):
        tracker.run(fn=broken, name="broken", config={"scale": 3})
    failed = tracker.find_latest_run(model="broken")
    persons = first.outputs["persons"]
    with tracker.scenario("baseline", config={"policy": "none"}) as sc:
        d2030 = sc.run(
            fn=demand,
            name="demand_2030",
            year=2030,
            config={"year": 2030},
            inputs={"persons": persons},
            outputs=["trips"],
        )
        d2040 = sc.run(
            fn=demand,
            name="demand_2040",
            year=2040,
            config={"year": 2040},
            inputs={"persons": d2030.outputs["trips"]},
            outputs=["trips"],
        )
    project.runs.update(
        first=first.run.id,
        hit=hit.run.id,
        scaled=scaled.run.id,
        failed=failed.id,
        scenario="baseline",
        d2030=d2030.run.id,
        d2040=d2040.run.id,
    )
    tracker.close()
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A fresh project store (see the module docstring)."""
    return build_project(tmp_path / "model")


@dataclass
class Outcome:
    """What a command printed and how it exited."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.stdout)


@pytest.fixture
def cli() -> Callable[..., Outcome]:
    """Run ``consist ARGS`` in-process (typer's CliRunner)."""
    runner = CliRunner()
    app = build_app()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Outcome:
        # A wide terminal, as on a workstation; CliRunner's default is 80 columns.
        full_env = {"COLUMNS": "160", "CONSIST_DB": "", "CONSIST_DB_URL": "", **(env or {})}
        result = runner.invoke(app, list(args), env=full_env, catch_exceptions=False)
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def run_consist(tmp_path: Path) -> Callable[..., Outcome]:
    """Run ``python -m consist ARGS`` in a real subprocess (cwd: a scratch folder)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)

    def invoke(*args: str, env: dict[str, str] | None = None, cwd_: Path | None = None) -> Outcome:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CONSIST_")}
        full_env.update({"COLUMNS": "200", **(env or {})})
        proc = subprocess.run(
            [sys.executable, "-m", "consist", *args],
            cwd=cwd_ or cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    return invoke
