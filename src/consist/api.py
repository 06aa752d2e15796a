"""Module-level helpers bound to the current tracker.

``consist.run`` / ``consist.trace`` / ``consist.output_path`` ... act on the
tracker that is executing a step, else the one set with :func:`use_tracker`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from consist.core.run import context

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from consist.core.tracker import Tracker
    from consist.core.workflow.scenario import ScenarioContext
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
    to ``run`` win. ``name_template`` (placeholders as for
    ``tracker.scenario(name_template=...)``) names the step when no ``name``
    is given: it beats the scenario's template, and outside a scenario
    ``{scenario}`` renders empty. Unknown keywords raise TypeError at
    decoration time.
    """
    from consist.core.run.runner import STEP_ATTR, validate_step_metadata
    from consist.core.run.step_names import check_name_template

    template = check_name_template(kwargs.pop("name_template", None))
    metadata = validate_step_metadata(kwargs)
    if template is not None:
        metadata["name_template"] = template

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


def _column_list(columns: Any) -> list[str] | None:
    """``columns=`` as a list of column names (None when not given)."""
    if columns is None:
        return None
    if isinstance(columns, str | Mapping):
        raise TypeError(
            "columns must be a list of column names, e.g. columns=['a', 'b'] "
            "(to set CSV column types, pass dtype={'a': 'VARCHAR'})"
        )
    try:
        names = list(columns)
    except TypeError:
        raise TypeError("columns must be a list of column names") from None
    if not names or not all(isinstance(c, str) and c for c in names):
        raise ValueError(f"columns must be a non-empty list of column names, got {columns!r}")
    return names


def _check_columns(wanted: list[str], available: list[str], artifact: Artifact) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KeyError(
            f"columns {missing} are not in artifact {artifact.key!r} (it has {available})"
        )


def _no_reader_options(options: dict[str, Any], artifact: Artifact) -> None:
    """Reader options cannot apply to rows read back from the store: refuse them."""
    if options:
        raise ValueError(
            f"artifact {artifact.key!r}: its file is missing, so its ingested rows are read "
            f"from the database, where the file-reader option(s) {sorted(options)} cannot "
            "apply; pass only columns= / include_provenance=, or restore the file"
        )


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
    from consist.core.drivers import tabular
    from consist.core.hot.ingest import read_ingested

    tracker = tracker or context.current()
    include_provenance = bool(kwargs.pop("include_provenance", False))
    columns = _column_list(kwargs.pop("columns", None))
    if not _duck:
        import duckdb

        _duck.append(duckdb.connect())
    try:
        path = _artifact_path(artifact, tracker)
    except FileNotFoundError:
        rows = read_ingested(
            artifact, tracker, include_provenance=include_provenance, columns=columns
        )
        if rows is None:
            raise
        _no_reader_options(kwargs, artifact)
        return _duck[0].from_arrow(rows)
    if artifact.driver not in tabular.TABULAR_DRIVERS:
        raise ValueError(
            f"no loader for driver {artifact.driver!r} in this version; use artifact.path"
        )
    import duckdb

    try:
        relation = tabular.load_relation(path, artifact.driver, _duck[0], **kwargs)
    except duckdb.Error as exc:
        if not kwargs:
            raise
        raise ValueError(
            f"could not read artifact {artifact.key!r} ({artifact.driver}) with option(s) "
            f"{sorted(kwargs)}: {exc}"
        ) from exc
    if columns is None:
        return relation
    _check_columns(columns, list(relation.columns), artifact)
    return relation.select(*(duckdb.ColumnExpression(c) for c in columns))


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
    from consist.core.drivers import tabular
    from consist.core.hot.ingest import read_ingested

    tracker = tracker or context.current()
    include_provenance = bool(kwargs.pop("include_provenance", False))
    columns = _column_list(kwargs.pop("columns", None))
    try:
        path = _artifact_path(artifact, tracker)
    except FileNotFoundError:
        rows = read_ingested(
            artifact, tracker, include_provenance=include_provenance, columns=columns
        )
        if rows is None:
            raise
        _no_reader_options(kwargs, artifact)
        return rows.to_pandas()
    if columns is not None and artifact.driver == "parquet" and os.path.isfile(path):
        import pyarrow.parquet as pq

        # Check against the file's schema (metadata only), then read just those columns.
        _check_columns(columns, list(pq.read_schema(path).names), artifact)
        return tabular.load_dataframe(path, "parquet", columns=columns, **kwargs)
    frame = tabular.load_dataframe(path, artifact.driver, **kwargs)
    if columns is None:
        return frame
    _check_columns(columns, [str(c) for c in frame.columns], artifact)
    return frame[columns]


def scenario(name: str, **kwargs: Any) -> ScenarioContext:
    """``Tracker.scenario`` on the current tracker (a header run with linked steps).

    Use as ``with consist.scenario("baseline", config={...}) as sc: ...``;
    every keyword of :meth:`Tracker.scenario` is accepted.
    """
    return context.require_current("consist.scenario").scenario(name, **kwargs)
