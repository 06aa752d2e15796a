"""Sweeps on a Dask cluster: ``Tracker.sweep(fn, configs, executor="dask", client=...)``.

The same sweep as :func:`consist.core.workflow.sweep.run_sweep`, with the
configs sent as tasks to a ``distributed.Client`` instead of a local process
pool. Each task runs ``tracker.run(fn, config=cfg, **run_kwargs)`` on a Dask
worker, on a Tracker opened on the same ``run_dir`` and store with the same
options the process pool uses (:func:`~consist.core.workflow.sweep.worker_tracker_spec`).
That Tracker is opened once per worker process and worker thread and kept in
:data:`_TRACKERS` (keyed by a digest of the tracker class and options, so a
later sweep with the same tracker reuses it); a tracker that could not be
opened is not kept, so each task retries and reports the failure on its row.

Every worker must reach the store (the DuckDB file at the same path, or the
PostgreSQL server of ``db_url``) and the run directory at the same paths
(one machine, or a shared file system), and must be able to import the step
function by name (``client.upload_file("steps.py")`` or the workers'
``PYTHONPATH``); a worker that cannot reports it on each row (the step and
its arguments travel pickled and are loaded inside the task). Rows come back
as :class:`~consist.core.workflow.sweep.SweepResult` in input order; a
failing config, a worker that dies (as ``KilledWorker``,
once Dask's own retries are spent: ``distributed.scheduler.allowed-failures``,
which also governs the tasks that were queued on the dead worker) or a result
that cannot be sent back is reported on its row without losing its siblings.
A config whose worker died mid-run leaves that run as the store's crash
handling finds it.

Container steps (``fn=None`` with ``ExecutionOptions(executor="container")``)
run the same way; the workers need the container engine (and its settings,
e.g. ``CONTAINERS_CONF``, in their environment when they start).

``max_workers`` is honoured as the number of configs in flight at once (a
new task is submitted when one finishes); None submits every config and lets
the cluster's threads bound the concurrency.

``dask`` and ``distributed`` are imported only when a Dask sweep is asked for
(``pip install 'consist[dask]'``).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from consist.core.workflow.sweep import (
    SweepResult,
    SweepResults,
    check_max_workers,
    format_traceback,
    lost_row,
    open_worker_tracker,
    recorded_config,
    run_config,
    worker_tracker_spec,
)

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.tracker import Tracker

SWEEP_EXECUTORS = ("processes", "dask")
_STEP_EXECUTORS = ("python", "container")

# Worker side: (digest of tracker class + options, thread id) -> open_worker_tracker()'s dict.
_TRACKERS: dict[tuple[str, int], dict[str, Any]] = {}


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "executor='dask' needs dask and distributed: pip install 'consist[dask]'"
        ) from exc
    return distributed


def check_executor(executor: Any, client: Any, max_workers: Any) -> Any:
    """Validate the executor arguments of a sweep, before anything runs.

    Parameters
    ----------
    executor:
        ``"processes"`` (a local spawn process pool) or ``"dask"``.
    client:
        A ``distributed.Client`` for ``executor="dask"`` (None: the active
        client, ``distributed.get_client()``); must be None for processes.
    max_workers:
        A positive int or None.

    Returns
    -------
    distributed.Client or None
        The client a Dask sweep submits to (None for processes).

    Raises
    ------
    ValueError
        For an unknown ``executor``, a ``client`` with ``executor="processes"``,
        ``executor="dask"`` without a client when none is active, a client that
        is closed, or a bad ``max_workers``.
    TypeError
        If ``client`` is not a ``distributed.Client``.
    ImportError
        For ``executor="dask"`` without the ``dask`` extra installed.
    """
    if executor in _STEP_EXECUTORS:
        raise ValueError(
            f"sweep(executor={executor!r}): executor= of sweep chooses where the configs run "
            f"({' or '.join(map(repr, SWEEP_EXECUTORS))}); give the step's own executor as "
            f"execution_options=ExecutionOptions(executor={executor!r}, ...)"
        )
    if not isinstance(executor, str) or executor not in SWEEP_EXECUTORS:
        raise ValueError(
            f"unknown sweep executor={executor!r}; use 'processes' (a local process pool) "
            "or 'dask' (with client=distributed.Client(...))"
        )
    check_max_workers(max_workers)
    if executor == "processes":
        if client is not None:
            raise ValueError(
                "client= is used only with executor='dask'; pass executor='dask' to run the "
                "sweep on that Dask cluster, or drop client"
            )
        return None
    distributed = _import_distributed()
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError(
                "executor='dask' needs client=distributed.Client(...) (none is active); "
                "e.g. client=distributed.Client(distributed.LocalCluster())"
            ) from None
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    if client.status != "running":
        raise ValueError(
            f"client is {client.status!r}, not running; give an open distributed.Client"
        )
    return client


def run_dask_sweep(
    tracker: Tracker,
    fn: Callable[..., Any] | None,
    configs: list[Any],
    run_kwargs: dict[str, Any],
    *,
    client: Any,
    max_workers: int | None = None,
) -> SweepResults:
    """Run ``fn`` once per config as tasks of a Dask cluster.

    Arguments are expected to be validated (see ``Tracker.sweep`` and
    :func:`check_executor`). The parent tracker commits its queued writes
    and releases the database file before the first task is submitted.

    Returns
    -------
    SweepResults
        One row per config, in input order.
    """
    check_max_workers(max_workers)
    results = SweepResults()
    if not configs:
        return results
    distributed = _import_distributed()
    tracker_class, options = worker_tracker_spec(tracker)
    token = hashlib.sha256(pickle.dumps((tracker_class, options))).hexdigest()
    # Sent as bytes and unpickled inside the task, so that a worker that cannot
    # import fn (or a class the arguments refer to) fails that row instead of
    # failing to deserialize the task (which Dask does not report to the client).
    shared = pickle.dumps((tracker_class, options, fn, run_kwargs))
    tracker.close()  # commit queued writes and hand the database file to the workers
    prefix = f"consist-sweep-{uuid.uuid4().hex[:12]}"
    index_of: dict[str, int] = {}
    rows: list[SweepResult | None] = [None] * len(configs)
    pending = iter(enumerate(configs))
    submitted: list[Any] = []

    def submit_next() -> Any:
        entry = next(pending, None)
        if entry is None:
            return None
        i, config = entry
        future = client.submit(
            _run_dask_task,
            token,
            shared,
            i,
            pickle.dumps(config),
            recorded_config(config),
            key=f"{prefix}-{i}",
            pure=False,
        )
        index_of[future.key] = i
        submitted.append(future)
        return future

    first = [submit_next() for _ in range(min(max_workers or len(configs), len(configs)))]
    try:
        # loop=: the client need not be the default one
        finished = distributed.as_completed(first, loop=client.loop)
        for future in finished:
            i = index_of[future.key]
            try:
                rows[i] = future.result()
            except Exception as exc:  # KilledWorker, a result that could not be sent back
                rows[i] = lost_row(i, configs[i], exc)
            future.release()
            following = submit_next()
            if following is not None:
                finished.add(following)
    except BaseException:
        client.cancel(submitted)
        raise
    results.extend(row for row in rows if row is not None)
    return results


def _run_dask_task(
    token: str, shared: bytes, index: int, given_bytes: bytes, plain: dict[str, Any]
) -> SweepResult:
    """One config on a Dask worker (module-level so that workers import it by name).

    ``shared`` is the pickled (tracker class, tracker options, fn, run kwargs),
    ``given_bytes`` the pickled config and ``plain`` the config as recorded.
    """
    try:
        tracker_class, options, fn, run_kwargs = pickle.loads(shared)
        given = pickle.loads(given_bytes)
    except Exception as exc:
        return SweepResult(
            index=index,
            config=plain,
            status="failed",
            error=f"the worker could not load the step: {type(exc).__name__}: {exc} "
            "(make its module importable on the workers, e.g. "
            "client.upload_file('steps.py') or install it there)",
            error_traceback=format_traceback(exc),
        )
    key = (token, threading.get_ident())
    worker = _TRACKERS.get(key)
    if worker is None:
        worker = open_worker_tracker(tracker_class, options)
        if "tracker" in worker:  # a failure is retried by the next task
            _TRACKERS[key] = worker
    return run_config(worker, index, fn, given, run_kwargs)
