"""A container step: engine and image digest before the run, the container during it.

:class:`ContainerStep` is what :class:`~consist.core.run.runner.StepRunner`
runs instead of a function when ``executor="container"``. Order matters for
the invariants: :meth:`ContainerStep.prepare` (engine present, options it can
honour, the image's digest) runs before anything is written, so a missing
engine or image leaves no run behind; :meth:`ContainerStep.identity` is what
joins the run's code identity; :meth:`ContainerStep.execute` runs only on a
miss.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consist.core.containers.engines import ContainerEngine, select_engine
from consist.core.containers.plan import LOG_FILES, LOG_KEYS, ContainerPlan
from consist.core.run.errors import ConsistRunError
from consist.models.artifact import Artifact
from consist.models.container import ContainerSpec
from consist.options import ExecutionOptions

__all__ = [
    "ContainerOutcome",
    "ContainerRunError",
    "ContainerStep",
    "default_step_name",
    "plan_container_step",
]


class ContainerRunError(ConsistRunError):
    """The container exited non-zero; the run was recorded as failed.

    Attributes
    ----------
    run_id:
        The failed run.
    exit_code:
        The container's exit code.
    stdout_path, stderr_path:
        The captured logs (also logged as the run's ``container_stdout`` /
        ``container_stderr`` outputs).
    """

    def __init__(self, message: str, run_id: str, exit_code: int, stdout: Path, stderr: Path):
        super().__init__(message, run_id)
        self.exit_code = exit_code
        self.stdout_path = stdout
        self.stderr_path = stderr


@dataclass
class ContainerOutcome:
    """How one container run ended."""

    exit_code: int
    stdout: Path
    stderr: Path
    seconds: float


class ContainerStep:
    """A validated container step (see :class:`~consist.models.container.ContainerSpec`).

    Parameters
    ----------
    spec:
        The container definition.
    output_paths:
        The step's ``output_paths`` as given (relative entries live under the
        run's output directory).

    Raises
    ------
    ValueError
        For output paths the container could not write (see
        :class:`~consist.core.containers.plan.ContainerPlan`).
    """

    def __init__(self, spec: ContainerSpec, output_paths: Mapping[str, Any] | None) -> None:
        self.spec = spec
        self.plan = ContainerPlan(spec, dict(output_paths or {}))
        self.engine: ContainerEngine | None = None
        self.image_id: str | None = None

    def prepare(self) -> None:
        """Find the engine, check it can honour the spec, digest the image (writes nothing)."""
        engine = select_engine(self.spec)
        engine.check(self.spec)
        self.image_id = engine.image_id(self.spec.image)
        self.engine = engine

    def host_output_paths(self, output_dir: Path) -> dict[str, Path]:
        """Where each ``output_paths`` entry lands on the host."""
        return self.plan.host_output_paths(output_dir)

    def use_config(self, config: Mapping[str, Any]) -> None:
        """The run's recorded config: mounted as JSON and usable as ``{config:KEY}``."""
        self.plan.config = dict(config)

    def identity(self, inputs: Sequence[Artifact]) -> dict[str, Any]:
        """The container's part of the run identity (needs :meth:`prepare` first)."""
        assert self.image_id is not None, "prepare() first"
        return self.plan.identity(inputs, self.image_id)

    def execute(self, output_dir: Path, run_id: str, output_paths: Mapping[str, Path]) -> Any:
        """Run the container once; its logs go to ``output_dir``.

        Returns
        -------
        ContainerOutcome
        """
        assert self.engine is not None, "prepare() first"
        output_dir.mkdir(parents=True, exist_ok=True)
        for path in output_paths.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        stdout, stderr = (output_dir / LOG_FILES[s] for s in ("stdout", "stderr"))
        with tempfile.TemporaryDirectory(prefix="consist-container-") as scratch:
            config_file = Path(scratch) / "config.json"
            config_file.write_text(json.dumps(dict(self.plan.config), indent=2, sort_keys=True))
            invocation = self.plan.invocation(output_dir, _container_name(run_id), config_file)
            started = time.perf_counter()
            code = self.engine.run(invocation, stdout, stderr)
        return ContainerOutcome(code, stdout, stderr, time.perf_counter() - started)

    def record(self, outcome: ContainerOutcome) -> dict[str, Any]:
        """What the run's ``meta["container"]`` keeps of this execution."""
        return {
            "engine": self.engine.name if self.engine else None,
            "image": self.spec.image,
            "image_id": self.image_id,
            "command": list(self.plan.argv() or ()) or None,
            "exit_code": outcome.exit_code,
            "seconds": round(outcome.seconds, 3),
        }

    def failure(self, outcome: ContainerOutcome, name: str, run_id: str) -> ContainerRunError:
        """The error raised for a non-zero exit, naming the code and the log."""
        tail = _last_lines(outcome.stderr)
        return ContainerRunError(
            f"container step {name!r} (run {run_id}) exited with code {outcome.exit_code}; "
            f"stderr: {outcome.stderr}" + (f"\n{tail}" if tail else ""),
            run_id,
            outcome.exit_code,
            outcome.stdout,
            outcome.stderr,
        )


LOG_OUTPUT_KEYS = (LOG_KEYS["stdout"], LOG_KEYS["stderr"])


def default_step_name(spec: ContainerSpec) -> str:
    """A run name from the image: ``"localhost/beam:0.9"`` -> ``"beam"``."""
    repo = spec.image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", repo) or "container"


def _container_name(run_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)[-60:].lstrip("-_.")
    return f"consist-{safe}-{uuid.uuid4().hex[:8]}"


def _last_lines(path: Path, count: int = 5) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-count:])


def plan_container_step(
    fn: Callable[..., Any] | None, execution: ExecutionOptions, merged: Mapping[str, Any], what: str
) -> ContainerStep | None:
    """The planned container of an ``executor="container"`` step (None for functions).

    Options that only mean something to a Python function are refused rather
    than ignored.
    """
    if execution.executor != "container":
        return None
    assert execution.container is not None  # ExecutionOptions enforces it
    if what != "run":
        raise ValueError(f"executor='container' is for run(); {what}() executes its own block")
    if fn is not None:
        raise ValueError(
            "fn must be None with executor='container' (the container runs instead of a "
            "function); drop fn or use executor='python'"
        )
    refused = {
        "outputs": merged.get("outputs") is not None,
        "runtime_kwargs": bool(execution.runtime_kwargs),
        "inject_context": execution.inject_context is not False,
        "input_binding": execution.input_binding is not None,
        "load_inputs": execution.load_inputs is not None,
    }
    for option, given in refused.items():
        if given:
            raise ValueError(
                f"{option}= has no meaning for executor='container' (it concerns a Python "
                "function); declare files the container writes with output_paths and pass "
                "settings through container.environment or container.command"
            )
    return ContainerStep(execution.container, merged.get("output_paths"))
