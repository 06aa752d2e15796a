"""Scenario workflows of the Tracker: ``scenario`` (header + steps) and ``sweep``.

Mixed into :class:`~consist.core.tracker.Tracker`. The machinery lives in
:mod:`consist.core.workflow.scenario` (ScenarioContext), :mod:`consist.core.workflow.coupler`
(Coupler), :mod:`consist.core.workflow.sweep` (process-pool sweeps) and
:mod:`consist.core.workflow.dask_sweep` (sweeps on a Dask cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

# The workflow machinery loads on first use: a Tracker that never opens a
# scenario or a sweep does not import it.
if TYPE_CHECKING:  # pragma: no cover
    from consist.core.workflow.coupler import Coupler
    from consist.core.workflow.scenario import ScenarioContext
    from consist.core.workflow.sweep import SweepResults


class TrackerScenarios:
    """Scenario workflows of the Tracker."""

    def scenario(
        self,
        name: str,
        config: Any = None,
        tags: list[str] | None = None,
        model: str = "scenario",
        step_cache_hydration: str | None = None,
        name_template: str | None = None,
        cache_epoch: int | None = None,
        coupler: Coupler | None = None,
        require_outputs: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> ScenarioContext:
        """Create a ScenarioContext to manage a grouped workflow of steps.

        The context acts as a "header" run: steps run inside it
        (``sc.run(...)``, ``sc.trace(...)``, ``sc.step(...)``,
        ``sc.sweep(...)``) are linked to the header via ``parent_run_id``
        without manual threading. The header run is started on entry, then
        suspended (so steps can run), and restored and completed on exit; it
        is marked failed when the block raises (the exception propagates) or
        when required outputs are missing.

        Executing a scenario again re-opens the same header run in place
        (same id, earlier metadata and inputs kept,
        ``meta["scenario_executions"]`` counts executions); with unchanged
        code, configs and inputs every step of the new execution is a cache
        hit. See :mod:`consist.core.workflow.scenario` for the details.

        Parameters
        ----------
        name : str
            The name of the scenario. This will become the Run ID.
        config : Optional[Dict[str, Any]]
            Scenario-level configuration. Stored on the header run but NOT
            automatically inherited by steps.
        tags : Optional[List[str]]
            Tags for the scenario. ``"scenario_header"`` is automatically
            appended.
        model : str, default "scenario"
            The model name for the header run.
        step_cache_hydration : Optional[str]
            Default cache hydration policy (``CacheOptions.cache_hydration``)
            for all scenario steps unless overridden in a specific
            ``scenario.trace(...)`` or ``scenario.run(...)`` (or by the step
            function's ``define_step``).
        name_template : Optional[str]
            Step name template applied when ``scenario.run()`` is called
            without an explicit name and no step-level template is provided,
            e.g. ``"{scenario}_{name}_{year}"``. Placeholders: ``{scenario}``,
            ``{name}`` (function / ``define_step`` name), ``{year}``,
            ``{iteration}``, ``{stage}``, ``{phase}``. The rendered name acts
            as ``name=`` (it also becomes the model name, part of the cache
            identity).
        cache_epoch : Optional[int]
            Scenario-level cache epoch for all steps in this scenario, unless
            a step sets its own.
        coupler : Optional[Coupler]
            Optional Coupler instance to use for the scenario (default: a new
            one). Step outputs are registered in it by key after each step.
        require_outputs : Optional[Iterable[str]]
            Declare required outputs at scenario creation time: coupler keys
            that must exist when the scenario exits (more can be added with
            ``sc.declare_outputs(...)``).
        **kwargs : Any
            Additional metadata or arguments for the header run (including
            ``facet_from``, ``facet``, ``description``, ``year``, ``stage``).

        Returns
        -------
        ScenarioContext
            A context manager object that provides ``.run()``, ``.trace()``,
            ``.step()``, ``.sweep()``, ``.add_input()`` and ``.coupler``.

        Raises
        ------
        TypeError, ValueError
            For invalid arguments (naming them), before anything is written.
            On entry: ``ValueError`` if ``name`` is the id of a run that is
            not a scenario header; ``RuntimeError`` if another run is active
            or the scenario is running in another live process.
        MissingOutputsError
            On exit, when required outputs are missing (a ``RuntimeError``).

        Example
        -------
        >>> with tracker.scenario("baseline", config={"mode": "test"}) as sc:  # doctest: +SKIP
        ...     sc.add_input("data.csv", key="data")
        ...     with sc.step("init"):
        ...         ...
        """
        from consist.core.workflow.scenario import ScenarioContext

        return ScenarioContext(
            self,  # type: ignore[arg-type]
            name,
            config=config,
            tags=tags,
            model=model,
            step_cache_hydration=step_cache_hydration,
            name_template=name_template,
            cache_epoch=cache_epoch,
            coupler=coupler,
            require_outputs=require_outputs,
            **kwargs,
        )

    def sweep(
        self,
        fn: Callable[..., Any],
        configs: Iterable[Any],
        *,
        max_workers: int | None = None,
        executor: str = "processes",
        client: Any = None,
        **run_kwargs: Any,
    ) -> SweepResults:
        """Run ``fn`` once per config, in parallel on a local process pool or a Dask cluster.

        Each config becomes ``tracker.run(fn, config=cfg, **run_kwargs)`` in
        a worker process, so each is recorded and cached independently: a
        rerun of the same sweep is served from the cache, and only changed
        configs execute. With ``executor="processes"`` workers are started
        with the ``spawn`` method; with ``executor="dask"`` each config is a
        task of ``client``'s cluster. Either way each worker process opens
        its own Tracker on this tracker's ``run_dir`` and store (``db_path``,
        or ``db_url`` for a PostgreSQL store) once, with the same options;
        hooks registered on this tracker do not fire in them. Use
        ``ScenarioContext.sweep`` (or ``parent_run_id=``) to make the runs
        children of a scenario.

        Parameters
        ----------
        fn : Callable
            The step function. It must be importable by the workers: a
            module-level function of an importable module (not a lambda or a
            nested function; in a script, guard the entry point with
            ``if __name__ == "__main__":``). None for a container step
            (``execution_options=ExecutionOptions(executor="container", ...)``:
            each config reaches its container as ``/consist/config.json`` and
            ``{config:KEY}`` in the command).
        configs : Iterable[dict | pydantic model]
            One config per run.
        max_workers : Optional[int]
            Processes: worker processes (default: the CPUs this process may
            use, at most one per config). Dask: the most configs in flight
            at once (default: all submitted; the cluster's threads bound
            the concurrency).
        executor : str, default "processes"
            Where the configs run: ``"processes"`` (a local spawn process
            pool) or ``"dask"`` (tasks of a ``distributed.Client``; every
            worker must reach ``run_dir`` and the store at the same paths
            and import ``fn`` by name, e.g. after
            ``client.upload_file("steps.py")``; needs
            ``pip install 'consist[dask]'``).
        client : Optional[distributed.Client]
            The Dask client for ``executor="dask"`` (default: the active
            one, ``distributed.get_client()``). Not accepted with
            ``executor="processes"``.
        **run_kwargs : Any
            Any other parameter of :meth:`run` (``inputs``, ``outputs``,
            ``year``, ``tags``, ``cache_options``, ``runtime_kwargs``,
            ``parent_run_id`` ...), applied to every config. Values must be
            picklable. ``config``/``run_id`` are not accepted.

        Returns
        -------
        SweepResults
            A list of :class:`~consist.core.workflow.sweep.SweepResult`, one per
            config in input order: ``status`` (``"completed"``/``"failed"``),
            ``run_id``, ``cache_hit``, ``outputs``, ``error``. A failing
            config does not stop its siblings;
            ``results.raise_for_failures()`` raises if any failed.

        Raises
        ------
        TypeError, ValueError
            For an unimportable ``fn``, invalid configs or arguments (naming
            them), an unknown ``executor``, ``client`` with
            ``executor="processes"``, or ``executor="dask"`` without a
            client when none is active; before any worker starts or
            anything is written.
        ImportError
            For ``executor="dask"`` without the ``dask`` extra.
        """
        from consist.core.workflow.dask_sweep import check_executor, run_dask_sweep
        from consist.core.workflow.sweep import (
            check_importable,
            check_run_kwargs,
            is_container_step,
            prepare_configs,
            run_sweep,
            validate_step_arguments,
        )

        client = check_executor(executor, client, max_workers)
        if fn is not None or not is_container_step(run_kwargs):
            check_importable(fn)
        prepared = prepare_configs(configs)
        kwargs = check_run_kwargs(run_kwargs)
        validate_step_arguments(self, fn, kwargs, prepared)  # type: ignore[arg-type]
        if executor == "dask":
            return run_dask_sweep(
                self,  # type: ignore[arg-type]
                fn,
                prepared,
                kwargs,
                client=client,
                max_workers=max_workers,
            )
        return run_sweep(self, fn, prepared, kwargs, max_workers=max_workers)  # type: ignore[arg-type]
