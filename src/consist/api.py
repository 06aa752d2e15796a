"""Module-level helpers bound to the current tracker.

``consist.run`` / ``consist.trace`` / ``consist.output_path`` ... act on the
tracker that is executing a step, else the one set with :func:`use_tracker`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from consist.core.run import context

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from consist.core.tracker import Tracker
    from consist.core.workflow.scenario import ScenarioContext
    from consist.models.artifact import Artifact
    from consist.models.results import RunResult


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
    to ``run`` win. ``name_template`` (placeholders as for
    ``tracker.scenario(name_template=...)``) names the step when no ``name``
    is given: it beats the scenario's template, and outside a scenario
    ``{scenario}`` renders empty. Unknown keywords raise TypeError at
    decoration time.
    """
    from consist.core.run.runner import step_decorator

    return step_decorator(**kwargs)


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


def load(artifact: Artifact, *, tracker: Tracker | None = None, **kwargs: Any) -> Any:
    """Load an artifact by its driver: a DuckDB relation for parquet/csv/json.

    When the file is gone but the artifact's rows were ingested
    (``Tracker.ingest``), the relation holds those rows from
    ``global_tables``, without the provenance columns unless
    ``include_provenance=True``.

    Parameters
    ----------
    artifact : Artifact
        The artifact to load.
    tracker : Tracker, optional
        The tracker resolving the artifact's path (default: the current one).
    **kwargs : Any
        ``columns``: a list of column names to keep, in that order.
        ``include_provenance``: append the provenance columns to ingested
        rows. Any other keyword is an option of DuckDB's reader for the
        driver (``read_parquet``, ``read_csv`` such as ``delimiter=``,
        ``header=``, ``dtype=``; ``read_json``).

    Returns
    -------
    duckdb.DuckDBPyRelation
        A lazy relation over the file (or the ingested rows).

    Raises
    ------
    FileNotFoundError
        If the artifact's file is not available locally and its rows were
        not ingested.
    KeyError
        If ``columns`` names a column the data does not have.
    TypeError
        If ``columns`` is not a list of names, or the reader does not accept
        an option.
    ValueError
        If no loader exists for the driver in this version, the reader
        cannot read the file with the given options, or reader options are
        given while the rows come from the database (the file is gone).
    """
    tracker = tracker or context.current()
    if tracker is not None:
        return tracker.load(artifact, **kwargs)
    from consist.core.hot.loading import load_relation

    return load_relation(artifact, **kwargs)


def load_df(artifact: Artifact, *, tracker: Tracker | None = None, **kwargs: Any) -> Any:
    """Load a parquet/csv/json artifact as a pandas DataFrame.

    When the file is gone but the artifact's rows were ingested, they are
    read from ``global_tables`` (provenance columns only with
    ``include_provenance=True``).

    Parameters
    ----------
    artifact : Artifact
        The artifact to load.
    tracker : Tracker, optional
        The tracker resolving the artifact's path (default: the current one).
    **kwargs : Any
        ``columns``: a list of column names to keep, in that order (any
        driver). ``include_provenance``: append the provenance columns to
        ingested rows. Any other keyword goes to ``pandas.read_parquet`` /
        ``read_csv`` / ``read_json``.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileNotFoundError
        If the artifact's file is not available locally and its rows were
        not ingested.
    KeyError
        If ``columns`` names a column the data does not have.
    TypeError
        If ``columns`` is not a list of names (pandas raises its own
        TypeError for an option its reader does not take).
    ValueError
        If the driver is not tabular, or reader options are given while the
        rows come from the database (the file is gone).
    """
    tracker = tracker or context.current()
    if tracker is not None:
        return tracker.load_df(artifact, **kwargs)
    from consist.core.hot.loading import load_dataframe

    return load_dataframe(artifact, **kwargs)


def scenario(name: str, **kwargs: Any) -> ScenarioContext:
    """``Tracker.scenario`` on the current tracker (a header run with linked steps).

    Use as ``with consist.scenario("baseline", config={...}) as sc: ...``;
    every keyword of :meth:`Tracker.scenario` is accepted.
    """
    return context.require_current("consist.scenario").scenario(name, **kwargs)
