"""Module-level helpers bound to the current tracker.

``consist.run`` / ``consist.trace`` / ``consist.output_path`` ... act on the
tracker that is executing a step, else the one set with :func:`use_tracker`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from consist.core import context

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from consist.core.scenario import ScenarioContext
    from consist.core.tracker import Tracker
    from consist.models.artifact import Artifact
    from consist.models.results import RunResult

_duck: list[Any] = []


def use_tracker(tracker: Tracker | None) -> Any:
    """Make ``tracker`` the default for the module-level helpers.

    Usable as a plain call or as a context manager (restoring the previous
    default on exit).
    """
    previous = context.current()
    context.set_default(tracker)
    return _Restore(previous)


class _Restore:
    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __enter__(self) -> Any:
        return context.current()

    def __exit__(self, *exc: Any) -> None:
        context.set_default(self.previous)


def current_tracker() -> Tracker | None:
    """The tracker the helpers act on, or None."""
    return context.current()


def output_path(key: str, ext: str = "parquet") -> Path:
    """A managed output path for the active run (see ``Tracker.output_path``)."""
    return context.require_current("consist.output_path").output_path(key, ext)


def define_step(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach ``run()`` defaults (outputs, tags, cache_mode, inject_context ...) to a function.

    ``Tracker.run`` (and ``ScenarioContext.run``) read them; arguments given
    to ``run`` win. Unknown keywords raise TypeError at decoration time.
    """
    from consist.core.runner import STEP_ATTR, validate_step_metadata

    metadata = validate_step_metadata(kwargs)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, STEP_ATTR, {**(getattr(fn, STEP_ATTR, None) or {}), **metadata})
        return fn

    return decorate


@contextmanager
def capture_outputs(
    directory: str | os.PathLike[str], pattern: str = "*", recursive: bool = False
) -> Iterator[Any]:
    """Log files created or modified in ``directory`` (see ``Tracker.capture_outputs``)."""
    tracker = context.require_current("consist.capture_outputs")
    with tracker.capture_outputs(directory, pattern, recursive) as capture:
        yield capture


def run(fn: Callable[..., Any] | None = None, name: str | None = None, **kwargs: Any) -> RunResult:
    """``Tracker.run`` on the current tracker."""
    return context.require_current("consist.run").run(fn, name, **kwargs)


@contextmanager
def trace(name: str, **kwargs: Any) -> Iterator[Any]:
    """``Tracker.trace`` on the current tracker."""
    with context.require_current("consist.trace").trace(name, **kwargs) as tracker:
        yield tracker


def _artifact_path(artifact: Artifact, tracker: Tracker | None) -> str:
    from consist.models.artifact import Artifact as ArtifactType

    if not isinstance(artifact, ArtifactType):
        raise TypeError(f"expected an Artifact, got {type(artifact).__name__}")
    path = artifact.abs_path
    if path is None and tracker is not None:
        path = tracker.artifacts.local_path(artifact)
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(
            f"artifact {artifact.key!r} is not available locally ({artifact.uri})"
        )
    return path


def load(artifact: Artifact, *, tracker: Tracker | None = None, **kwargs: Any) -> Any:
    """Load an artifact by its driver: a DuckDB relation for parquet/csv/json.

    When the file is gone but the artifact's rows were ingested
    (``Tracker.ingest``), the relation holds those rows from
    ``global_tables``, without the provenance columns unless
    ``include_provenance=True``.

    Raises
    ------
    FileNotFoundError
        If the artifact's file is not available locally and its rows were
        not ingested.
    ValueError
        If no loader exists for the driver in this version.
    """
    from consist.core.drivers import tabular
    from consist.core.ingest import read_ingested

    tracker = tracker or context.current()
    include_provenance = bool(kwargs.pop("include_provenance", False))
    if not _duck:
        import duckdb

        _duck.append(duckdb.connect())
    try:
        path = _artifact_path(artifact, tracker)
    except FileNotFoundError:
        rows = read_ingested(artifact, tracker, include_provenance=include_provenance)
        if rows is None:
            raise
        return _duck[0].from_arrow(rows)
    if artifact.driver in tabular.TABULAR_DRIVERS:
        return tabular.load_relation(path, artifact.driver, _duck[0])
    raise ValueError(f"no loader for driver {artifact.driver!r} in this version; use artifact.path")


def load_df(artifact: Artifact, *, tracker: Tracker | None = None, **kwargs: Any) -> Any:
    """Load a parquet/csv/json artifact as a pandas DataFrame.

    When the file is gone but the artifact's rows were ingested, they are
    read from ``global_tables`` (``columns=`` is honoured, other reader
    options apply to files only; provenance columns only with
    ``include_provenance=True``).

    Raises
    ------
    FileNotFoundError
        If the artifact's file is not available locally and its rows were
        not ingested.
    ValueError
        If the driver is not tabular.
    """
    from consist.core.drivers import tabular
    from consist.core.ingest import read_ingested

    tracker = tracker or context.current()
    include_provenance = bool(kwargs.pop("include_provenance", False))
    try:
        path = _artifact_path(artifact, tracker)
    except FileNotFoundError:
        rows = read_ingested(
            artifact,
            tracker,
            include_provenance=include_provenance,
            columns=kwargs.get("columns"),
        )
        if rows is None:
            raise
        return rows.to_pandas()
    return tabular.load_dataframe(path, artifact.driver, **kwargs)


def scenario(name: str, **kwargs: Any) -> ScenarioContext:
    """``Tracker.scenario`` on the current tracker (a header run with linked steps).

    Use as ``with consist.scenario("baseline", config={...}) as sc: ...``;
    every keyword of :meth:`Tracker.scenario` is accepted.
    """
    return context.require_current("consist.scenario").scenario(name, **kwargs)
