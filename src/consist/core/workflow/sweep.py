"""Parameter sweeps: many configs of one step function on a local process pool.

:func:`run_sweep` runs ``tracker.run(fn, config=cfg, **run_kwargs)`` for each
config in a pool of ``spawn``-started worker processes. Each worker opens its
own :class:`~consist.core.tracker.Tracker` on the same ``run_dir`` and store
once (a DuckDB ``db_path`` is built for several processes on one machine:
one writer at a time, connections held briefly, a flock turn queue; a
PostgreSQL ``db_url`` takes every worker's transactions at once), then runs
configs until the queue is empty. Every config is an ordinary run,
so each is cached independently and a rerun of the sweep is served from the
cache. Results come back in input order, one :class:`SweepResult` per config;
a failing config is reported on its row without losing its siblings.

Config values bind to the step's parameters exactly as in ``Tracker.run``
(see :mod:`consist.core.run.binding`): a pydantic config travels to the worker as
the model itself, so a ``config`` parameter annotated with its class receives
the model and fields bind by name. The binding is checked in this process for
every distinct config shape before any worker starts.

Entry points: ``Tracker.sweep(...)`` and ``ScenarioContext.sweep(...)``.
With ``executor="dask"`` the same rows are computed on a Dask cluster
instead (:mod:`consist.core.workflow.dask_sweep`, which shares the worker
side of this module: :func:`worker_tracker_spec`, :func:`open_worker_tracker`
and :func:`run_config`).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consist.core.validation import validate_config
from consist.models.artifact import Artifact
from consist.models.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.tracker import Tracker

SWEEP_STATUSES = ("completed", "failed")
# Arguments a sweep sets itself (per config) and therefore refuses in run_kwargs.
_RESERVED = {
    "config": "configs come from the configs argument; pass one dict per run there",
    "run_id": "every config is its own run; run ids are generated per config",
    "fn": "pass the step function as the first argument of sweep()",
}
_TRACEBACK_CHARS = 8000


@dataclass
class SweepResult:
    """The outcome of one config of a sweep.

    Attributes
    ----------
    index:
        Position of the config in the ``configs`` argument.
    config:
        The config as recorded (a plain dict).
    status:
        ``"completed"`` or ``"failed"``.
    run_id:
        The run recorded for this config (also for a failed one, when the
        failure happened after the run began; None when the worker died or
        the arguments were rejected before a run existed).
    cache_hit:
        True when the step was not executed because an identical completed
        run existed.
    outputs:
        Output artifacts by key (empty for a failure).
    run:
        The run record (None for a failure).
    error:
        ``"ExceptionType: message"`` of the failure (None on success).
    error_traceback:
        The traceback text of the failure, truncated to 8000 characters.
    duration_s:
        Wall time spent in the worker on this config.
    """

    index: int
    config: dict[str, Any]
    status: str
    run_id: str | None = None
    cache_hit: bool = False
    outputs: dict[str, Artifact] = field(default_factory=dict)
    run: Run | None = None
    error: str | None = None
    error_traceback: str | None = None
    duration_s: float | None = None

    @property
    def ok(self) -> bool:
        """True when the config completed (executed or served from the cache)."""
        return self.status == "completed"

    def output(self, key: str) -> Artifact:
        """The output artifact ``key``.

        Raises
        ------
        RuntimeError
            If this config failed (the message carries its error).
        KeyError
            If the run has no such output (listing the keys).
        """
        if not self.ok:
            raise RuntimeError(f"sweep config #{self.index} failed: {self.error}")
        try:
            return self.outputs[key]
        except KeyError:
            raise KeyError(f"no output {key!r}; outputs are {sorted(self.outputs)}") from None


class SweepError(RuntimeError):
    """Raised by :meth:`SweepResults.raise_for_failures` when configs failed.

    Attributes
    ----------
    failures:
        The failed rows.
    """

    def __init__(self, failures: list[SweepResult]) -> None:
        lines = [f"#{r.index} (run {r.run_id}): {r.error}" for r in failures[:10]]
        more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
        super().__init__(f"{len(failures)} sweep config(s) failed:\n  " + "\n  ".join(lines) + more)
        self.failures = failures


class SweepResults(list[SweepResult]):
    """The rows of a sweep, in the order of its ``configs`` (a ``list``)."""

    @property
    def completed(self) -> list[SweepResult]:
        """Rows that completed (executed or served from the cache)."""
        return [r for r in self if r.ok]

    @property
    def failed(self) -> list[SweepResult]:
        """Rows that failed."""
        return [r for r in self if not r.ok]

    @property
    def cache_hits(self) -> int:
        """How many rows were served from the cache."""
        return sum(1 for r in self if r.ok and r.cache_hit)

    def raise_for_failures(self) -> SweepResults:
        """Raise :class:`SweepError` listing the failed rows; return self if none failed."""
        failed = self.failed
        if failed:
            raise SweepError(failed)
        return self


# --------------------------------------------------------------------------- #
# Parent side
# --------------------------------------------------------------------------- #


def prepare_configs(configs: Any) -> list[Any]:
    """Validate the ``configs`` argument of a sweep.

    Returns
    -------
    list
        One entry per config: the validated plain dict, or the pydantic model
        itself (so that the worker binds it as ``Tracker.run`` would).

    Raises
    ------
    TypeError, ValueError
        Naming ``configs[i]`` when an entry is not a valid config (or a
        pydantic config that cannot be sent to the workers).
    """
    if configs is None or isinstance(configs, str | bytes | Mapping):
        raise TypeError(
            "configs must be a list of config dicts (one per run), e.g. "
            "configs=[{'rate': 0.1}, {'rate': 0.2}]"
        )
    if not isinstance(configs, Iterable):
        raise TypeError(f"configs must be a list of config dicts, got {type(configs).__name__}")
    out = []
    for i, config in enumerate(configs):
        if config is None:
            raise TypeError(f"configs[{i}] is None; give a dict (use {{}} for an empty config)")
        try:
            plain = validate_config(config)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"configs[{i}]: {exc}") from exc
        if _is_model(config):
            try:
                pickle.dumps(config)
            except Exception as exc:
                raise TypeError(
                    f"configs[{i}]: the {type(config).__name__} model cannot be sent to worker "
                    f"processes ({exc}); define its class at module level of an importable "
                    "module, or pass config.model_dump()"
                ) from exc
            out.append(config)
        else:
            out.append(plain)
    return out


def recorded_config(config: Any) -> dict[str, Any]:
    """The plain dict a run records for one prepared config."""
    return validate_config(config) if _is_model(config) else config


def _is_model(config: Any) -> bool:
    return hasattr(config, "model_dump") and callable(config.model_dump)


def check_importable(fn: Any) -> None:
    """The step function must be importable by name in a fresh worker process.

    Raises
    ------
    TypeError
        For a non-callable, a lambda or a function defined inside another
        function, or anything pickle cannot send by reference.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    target = getattr(fn, "func", fn)  # functools.partial
    qualname = getattr(target, "__qualname__", "") or ""
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise TypeError(
            f"sweep runs fn in worker processes that import it by name, but {qualname!r} "
            "is a lambda or is defined inside a function; define it at module level of an "
            "importable module"
        )
    try:
        pickle.dumps(fn)
    except Exception as exc:
        if "not the same object as" in str(exc):
            # The module was imported again after fn was taken from it (Dask's
            # Client.upload_file reloads an uploaded module in this process too).
            module = getattr(target, "__module__", "?")
            raise TypeError(
                f"sweep cannot send {qualname!r}: module {module!r} was imported again "
                f"after this function was taken from it ({exc}); take the function from "
                "the module after reloading it (with Dask, import it after "
                "client.upload_file(...))"
            ) from exc
        raise TypeError(
            f"sweep cannot send {qualname or fn!r} to worker processes ({exc}); use a "
            "module-level function (in a script, guard the entry point with "
            "'if __name__ == \"__main__\":')"
        ) from exc


def is_container_step(run_kwargs: Mapping[str, Any]) -> bool:
    """Whether ``run_kwargs`` declare a container step (``fn`` is then None)."""
    options = run_kwargs.get("execution_options")
    executor = getattr(options, "executor", None) or run_kwargs.get("executor")
    return executor == "container"


def check_run_kwargs(run_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse the arguments a sweep sets per config, and unpicklable values.

    Raises
    ------
    ValueError
        For ``config``, ``run_id`` or ``fn``.
    TypeError
        If a value cannot be sent to the worker processes.
    """
    for key, why in _RESERVED.items():
        if key in run_kwargs:
            raise ValueError(f"sweep() does not accept {key}=...: {why}")
    for key, value in run_kwargs.items():
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise TypeError(
                f"sweep argument {key}={value!r} cannot be sent to worker processes ({exc}); "
                "pass plain data, paths or Artifacts"
            ) from exc
    return dict(run_kwargs)


def worker_options(tracker: Tracker) -> dict[str, Any]:
    """Keyword arguments that open an equivalent Tracker in a worker process.

    The store is the parent's: ``db_path`` with its file timings for DuckDB,
    or the full ``db_url`` (password included, as configured) for
    PostgreSQL. Hooks and registered schemas stay in the parent process
    (workers do not fire ``on_run_*`` hooks).

    Raises
    ------
    TypeError
        If the tracker's ``run_subdir_fn`` cannot be sent to a worker.
    """
    config = tracker.config
    options: dict[str, Any] = {
        "run_dir": str(tracker.run_dir),
        "mounts": {name: str(root) for name, root in config.mounts.items()},
        "project_root": str(tracker.project_root),
        "hashing_strategy": config.hashing_strategy,
        "allow_external_paths": config.allow_external_paths,
        "stat_cache_min_bytes": config.stat_cache_min_bytes,
        "code_identity_source_suffixes": config.code_identity_source_suffixes,
        "single_flight": config.single_flight,
        "single_flight_timeout": config.single_flight_timeout,
        "blob_store": config.blob_store,
        "blob_store_options": config.blob_store_options,
    }
    if config.db_url is not None:
        # The URL as configured (with its password): tracker.db_path is the
        # redacted form, for messages only. The DuckDB file timings are
        # refused with db_url, so they are left out.
        options["db_url"] = config.db_url
    else:
        options["db_path"] = tracker.db_path
        options["lock_timeout_s"] = config.lock_timeout_s
        options["idle_release_s"] = config.idle_release_s
        options["max_hold_s"] = config.max_hold_s
    subdir_fn = tracker.lifecycle.run_subdir_fn
    if subdir_fn is not None:
        try:
            pickle.dumps(subdir_fn)
        except Exception as exc:
            raise TypeError(
                "the tracker's run_subdir_fn cannot be sent to sweep workers "
                f"({exc}); use a module-level function"
            ) from exc
        options["run_subdir_fn"] = subdir_fn
    return options


def check_max_workers(max_workers: Any) -> None:
    """Refuse a ``max_workers`` that is not a positive int or None.

    Raises
    ------
    ValueError
        Naming ``max_workers``.
    """
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        raise ValueError(f"max_workers must be a positive int or None, got {max_workers!r}")


def worker_tracker_spec(tracker: Tracker) -> tuple[type, dict[str, Any]]:
    """The tracker class and keyword arguments a worker opens its Tracker with.

    The class is the tracker's own, or its nearest base a worker process can
    import by name; the options are :func:`worker_options`.

    Raises
    ------
    TypeError
        As :func:`worker_options`.
    """
    return _importable_class(type(tracker)), worker_options(tracker)


def lost_row(index: int, given: Any, exc: BaseException) -> SweepResult:
    """A failed row for a config whose result never came back from its worker."""
    return SweepResult(
        index=index,
        config=recorded_config(given),
        status="failed",
        error=f"{type(exc).__name__}: {exc}",
        error_traceback=format_traceback(exc),
    )


def run_sweep(
    tracker: Tracker,
    fn: Callable[..., Any],
    configs: list[Any],
    run_kwargs: dict[str, Any],
    *,
    max_workers: int | None = None,
) -> SweepResults:
    """Run ``fn`` once per config on a spawn-started process pool.

    Arguments are expected to be validated (see ``Tracker.sweep``). The
    parent tracker commits its queued writes and releases the database file
    before the workers start.

    Returns
    -------
    SweepResults
        One row per config, in input order.
    """
    check_max_workers(max_workers)
    results = SweepResults()
    if not configs:
        return results
    tracker_class, options = worker_tracker_spec(tracker)
    workers = min(max_workers or _available_cpus(), len(configs))
    tracker.close()  # commit queued writes and hand the database file to the workers
    context = multiprocessing.get_context("spawn")
    rows: list[SweepResult | None] = [None] * len(configs)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(tracker_class, options),
    )
    try:
        futures = [
            pool.submit(_run_config, i, fn, config, run_kwargs) for i, config in enumerate(configs)
        ]
        for i, future in enumerate(futures):
            try:
                rows[i] = future.result()
            except BrokenProcessPool as exc:
                rows[i] = SweepResult(
                    index=i,
                    config=recorded_config(configs[i]),
                    status="failed",
                    error=f"BrokenProcessPool: a worker process died before this config "
                    f"finished ({exc})",
                )
            except Exception as exc:  # e.g. a result that could not be sent back
                rows[i] = lost_row(i, configs[i], exc)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    results.extend(row for row in rows if row is not None)
    return results


def validate_step_arguments(
    tracker: Tracker,
    fn: Callable[..., Any],
    run_kwargs: Mapping[str, Any],
    configs: Iterable[Any] = (),
) -> Any:
    """Validate a sweep's arguments exactly as ``tracker.run`` would, writing nothing.

    The step is validated once per distinct config shape (type and keys), so
    that a parameter supplied by the configs binds, and one that no config
    supplies is refused before any worker starts.

    Parameters
    ----------
    tracker, fn, run_kwargs:
        As given to ``Tracker.sweep``.
    configs:
        The prepared configs (:func:`prepare_configs`).

    Returns
    -------
    StepSpec
        The last validated declaration (discarded by the caller).

    Raises
    ------
    TypeError, ValueError
        Naming the offending parameter (and the config it was checked with).
    """
    spec = None
    shapes: set[tuple[Any, ...]] = set()
    for i, config in enumerate(configs):
        keys = recorded_config(config).keys()
        shape = (type(config), *sorted(keys))
        if shape in shapes:
            continue
        shapes.add(shape)
        try:
            spec = tracker.validate_step(fn, config=config, **run_kwargs)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{exc} (checked with configs[{i}])") from exc
    if spec is None:
        spec = tracker.validate_step(fn, **run_kwargs)
    return spec


# --------------------------------------------------------------------------- #
# Worker side (module-level so that spawn-started workers can import it)
# --------------------------------------------------------------------------- #

_WORKER: dict[str, Any] = {}


def _importable_class(cls: type) -> type:
    """``cls``, or its nearest base a spawned worker can import by name.

    The worker receives the tracker's class from the parent (so this module
    never imports the facade that imports it); a subclass defined in
    ``__main__`` or inside a function cannot be unpickled there.
    """
    for candidate in cls.__mro__:
        if candidate.__module__ != "__main__" and "<locals>" not in candidate.__qualname__:
            return candidate
    return cls


def open_worker_tracker(tracker_class: type, options: dict[str, Any]) -> dict[str, Any]:
    """Open a worker's tracker; a failure is kept to be reported on every row.

    Returns
    -------
    dict
        ``{"tracker": Tracker}``, or ``{"init_error": str, "init_traceback": str}``
        when the tracker could not be opened.
    """
    try:
        return {"tracker": tracker_class(**options)}
    except BaseException as exc:  # reported per row instead of killing the worker
        return {
            "init_error": f"{type(exc).__name__}: {exc}",
            "init_traceback": format_traceback(exc),
        }


def _init_worker(tracker_class: type, options: dict[str, Any]) -> None:
    """Open this worker's tracker once (a failure is reported on every row)."""
    _WORKER.update(open_worker_tracker(tracker_class, options))


def _run_config(
    index: int, fn: Callable[..., Any], given: Any, run_kwargs: dict[str, Any]
) -> SweepResult:
    return run_config(_WORKER, index, fn, given, run_kwargs)


def run_config(
    worker: Mapping[str, Any],
    index: int,
    fn: Callable[..., Any],
    given: Any,
    run_kwargs: dict[str, Any],
) -> SweepResult:
    """Run one config on a worker's tracker and describe the outcome as a row.

    Parameters
    ----------
    worker:
        What :func:`open_worker_tracker` returned in this worker.
    index, fn, given, run_kwargs:
        The config's position, the step, the prepared config and the
        arguments of ``tracker.run``.

    Returns
    -------
    SweepResult
        ``completed`` (executed or a cache hit) or ``failed`` with the error;
        never raises for a failing step.
    """
    started = time.perf_counter()
    config = recorded_config(given)
    tracker = worker.get("tracker")
    if tracker is None:
        return SweepResult(
            index=index,
            config=config,
            status="failed",
            error="the worker could not open the tracker: "
            + str(worker.get("init_error", "unknown error")),
            error_traceback=worker.get("init_traceback"),
        )
    from consist.core.run.runner import ConsistRunError

    try:
        result = tracker.run(fn, config=given, **run_kwargs)
    except ConsistRunError as exc:
        cause = exc.__cause__ or exc
        return SweepResult(
            index=index,
            config=config,
            status="failed",
            run_id=exc.run_id,
            error=f"{type(cause).__name__}: {cause}",
            error_traceback=format_traceback(cause),
            duration_s=time.perf_counter() - started,
        )
    except (Exception, SystemExit) as exc:
        active = tracker.lifecycle.active
        run_id = active.run.id if active is not None else None
        if active is not None:  # e.g. output logging failed after the step returned
            tracker.lifecycle.end("failed", error=exc)
        return SweepResult(
            index=index,
            config=config,
            status="failed",
            run_id=run_id,
            error=f"{type(exc).__name__}: {exc}",
            error_traceback=format_traceback(exc),
            duration_s=time.perf_counter() - started,
        )
    finally:
        # Commit this config's writes and give the database file back at once,
        # so that siblings and the parent see it without waiting.
        tracker.close()
    return SweepResult(
        index=index,
        config=config,
        status="completed",
        run_id=result.run_id,
        cache_hit=result.cache_hit,
        outputs=dict(result.outputs),
        run=result.run,
        duration_s=time.perf_counter() - started,
    )


def _available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def format_traceback(exc: BaseException) -> str:
    """The traceback text of ``exc``, its last 8000 characters."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text[-_TRACEBACK_CHARS:]
