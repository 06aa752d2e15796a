"""ScenarioContext: a scenario header run with its steps, coupler and defaults.

A scenario ("baseline", "high_growth") groups the runs of a workflow under
one **header run** whose id is the scenario name::

    with tracker.scenario("baseline", config={"growth": 0.02}) as sc:
        sc.add_input("data/households.csv", key="households")
        for year in [2020, 2030, 2040]:
            sc.run(simulate, inputs={"households": "households"},
                   outputs=["households"], year=year)

How it works
------------
* On entry the header run (model ``"scenario"``, tags + ``"scenario_header"``)
  is begun and then **suspended**: the tracker allows one active run, so the
  header's :class:`~consist.core.run.active_run.ActiveRun` is kept aside while
  steps run. It is restored and ended on exit: ``completed``, or ``failed``
  when the block raised (the exception propagates) or required outputs are
  missing (:class:`MissingOutputsError`).
* Steps (:meth:`ScenarioContext.run`, :meth:`~ScenarioContext.trace`,
  :meth:`~ScenarioContext.step`, :meth:`~ScenarioContext.sweep`) are ordinary
  ``Tracker.run`` / ``Tracker.trace`` runs with ``parent_run_id`` set to the
  header. The header's config is stored on the header only; steps never
  inherit it, so it never changes their cache identity.
* **Re-entering a scenario.** Recorded runs are never overwritten, but a
  scenario is meant to be executed again (and then be all cache hits). A
  second ``tracker.scenario("baseline")`` therefore *re-opens* the existing
  header in place: same run id and ``created_at``, earlier user metadata and
  scenario inputs kept, ``meta["scenario_executions"]`` incremented, status
  back to ``running`` and then ``completed``/``failed`` again. Config, tags,
  description and facet are those of the latest execution. Steps of every
  execution share ``parent_run_id=<name>`` (a cache hit is a new run, so the
  header lists one child per step per execution). Re-opening is refused
  when the id belongs to a run that is not a scenario header, when the model
  differs, or when the header is ``running`` in a live process on this host.
  The header itself never consults the cache (``cache_mode="overwrite"``):
  a header is a grouping record, not a result.
* The **coupler** (:class:`~consist.core.workflow.coupler.Coupler`) maps keys to
  artifacts: scenario inputs and, after each step, the step's outputs under
  their output keys (a later step producing the same key replaces the entry).
  A step input given as a string resolves through the coupler first, then as
  an existing path, else raises ``ValueError`` naming the key and the
  coupler's keys.

A ScenarioContext is not thread-safe; use one per thread of control.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from consist.core.run.active_run import ActiveRun
from consist.core.run.artifacts import ArtifactRequest
from consist.core.run.runner import ConsistRunError, step_defaults
from consist.core.run.step_names import check_name_template, render_step_name
from consist.core.validation import validate_config, validate_model, validate_run_id, validate_tags
from consist.core.workflow.coupler import Coupler
from consist.models.artifact import Artifact
from consist.models.records import ConsistRecord
from consist.models.results import RunResult
from consist.models.run import Run, utc_now
from consist.options import CacheOptions

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.tracker import Tracker
    from consist.core.workflow.sweep import SweepResults

HEADER_TAG = "scenario_header"
# Header options the scenario sets itself.
_HEADER_RESERVED = {
    "run_id": "the scenario name is the header's run id",
    "cache_mode": "a scenario header never consults the cache",
    "cache_options": "a scenario header never consults the cache",
    "inputs": "record scenario inputs with sc.add_input(path, key=...)",
}
# Metadata a (re-)begun header recomputes: not carried over from an earlier execution.
_SYSTEM_META = frozenset(
    {
        "error",
        "error_traceback",
        "host",
        "pid",
        "stage",
        "phase",
        "artifact_dir",
        "code_identity",
        "code_identity_mode",
        "code_identity_extra_deps",
        "hash_inputs",
        "cache_version",
        "cache_epoch",
        "cache_disabled",
        "cache_miss_explanation",
        "cache_hit",
        "cache_source",
        "cache_hydration",
        "facet_schema_version",
        "facet_index",
        "scenario_previous_status",
        "scenario_recovered_stale",
    }
)


class MissingOutputsError(RuntimeError):
    """A scenario exited without producing the outputs it declared as required.

    Attributes
    ----------
    scenario:
        The scenario name.
    missing:
        Required keys absent from the coupler, in declaration order.
    available:
        The coupler's keys at exit.
    """

    def __init__(self, scenario: str, missing: list[str], available: list[str]) -> None:
        super().__init__(
            f"scenario {scenario!r} did not produce required output(s) {missing}; the "
            f"coupler has {available}. Produce them in a step (e.g. outputs={missing!r}) "
            "or drop them from require_outputs/declare_outputs"
        )
        self.scenario = scenario
        self.missing = missing
        self.available = available


@dataclass
class ScenarioStep:
    """One step recorded by a ScenarioContext during the current execution.

    Attributes
    ----------
    name:
        Step name (for sweeps: ``"<name>[<index>]"``).
    run_id:
        The step's run (None if it failed before a run existed).
    kind:
        ``"run"``, ``"trace"`` or ``"sweep"``.
    status:
        ``"completed"`` or ``"failed"``.
    cache_hit:
        Whether the step reused an earlier identical run.
    """

    name: str
    run_id: str | None
    kind: str
    status: str
    cache_hit: bool = False


class ScenarioContext:
    """A grouped workflow: a header run plus steps linked to it by ``parent_run_id``.

    Create it with :meth:`Tracker.scenario` (or ``consist.scenario``) and use
    it as a context manager; the header run exists from ``__enter__`` to
    ``__exit__``. See the module docstring for the lifecycle and for what
    happens when a scenario is executed again.

    Parameters
    ----------
    tracker:
        The tracker that records the header and the steps.
    name:
        Scenario name: the header's run id.
    config:
        Scenario-level config, stored on the header only (never inherited by
        steps).
    tags:
        Header tags; ``"scenario_header"`` is appended.
    model:
        The header's model name.
    step_cache_hydration:
        Default ``cache_hydration`` of every step (see
        :class:`~consist.options.CacheOptions`), unless the step sets it (as
        a keyword, in ``cache_options`` or with ``define_step``).
    name_template:
        Step name used by :meth:`run` (and :meth:`sweep`) when no explicit
        ``name`` is given, e.g. ``"{scenario}_{name}_{year}"``. Placeholders:
        ``{scenario}`` (scenario name), ``{name}`` (the ``define_step`` name
        or the function's ``__name__``), ``{year}``, ``{iteration}``,
        ``{stage}``, ``{phase}`` (the step's values). A placeholder whose
        value is None renders empty, and separators (``_ - .`` and spaces)
        left at either end are stripped. The rendered name is used exactly as
        ``name=`` would be, so it also becomes the model name, which is part
        of the cache identity: include ``{scenario}`` only if the scenarios
        must not share cached results.
    cache_epoch:
        Default ``cache_epoch`` of every step, unless the step sets it.
    coupler:
        The coupler to use (default: a new, empty one).
    require_outputs:
        Keys that must be in the coupler when the scenario exits (see
        :meth:`declare_outputs`).
    **header_kwargs:
        Further ``begin_run`` arguments for the header (``description``,
        ``facet``, ``facet_from``, ``year``, ``stage``, ``artifact_dir`` ...);
        anything else becomes header metadata.

    Raises
    ------
    TypeError, ValueError
        For invalid arguments, before anything is written.
    """

    def __init__(
        self,
        tracker: Tracker,
        name: str,
        *,
        config: Any = None,
        tags: list[str] | None = None,
        model: str = "scenario",
        step_cache_hydration: str | None = None,
        name_template: str | None = None,
        cache_epoch: int | None = None,
        coupler: Coupler | None = None,
        require_outputs: Iterable[str] | None = None,
        **header_kwargs: Any,
    ) -> None:
        self.tracker = tracker
        self.name = validate_run_id(name, param="name")
        self.config = validate_config(config)
        self.tags = validate_tags(tags)
        if HEADER_TAG not in self.tags:
            self.tags.append(HEADER_TAG)
        self.model = validate_model(model)
        try:
            CacheOptions(cache_hydration=step_cache_hydration, cache_epoch=cache_epoch)
        except ValueError as exc:
            raise ValueError(f"invalid step_cache_hydration/cache_epoch: {exc}") from exc
        self.step_cache_hydration = step_cache_hydration
        self.cache_epoch = cache_epoch
        self.name_template = _check_template(name_template, "name_template")
        if coupler is not None and not isinstance(coupler, Coupler):
            raise TypeError(f"coupler must be a Coupler, got {type(coupler).__name__}")
        self.coupler = coupler if coupler is not None else Coupler()
        for key, why in _HEADER_RESERVED.items():
            if key in header_kwargs:
                raise ValueError(f"scenario() does not accept {key}=...: {why}")
        self.header_kwargs = header_kwargs
        self._required: list[str] = []
        if require_outputs is not None:
            self.declare_outputs(require_outputs)
        self._header: ActiveRun | None = None
        self._run: Run | None = None
        self.steps: list[ScenarioStep] = []

    def __repr__(self) -> str:
        state = "open" if self._header is not None else "closed"
        return f"<ScenarioContext {self.name!r} ({state}), coupler keys={self.coupler.keys()}>"

    # -- properties -------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The header's run id (the scenario name)."""
        return self.name

    @property
    def header(self) -> Run | None:
        """The header run: live while open, as ended after exit, None before entry."""
        return self._header.run if self._header is not None else self._run

    @property
    def is_open(self) -> bool:
        """Whether the scenario block is executing."""
        return self._header is not None

    @property
    def required_outputs(self) -> list[str]:
        """Keys that must be in the coupler at exit, in declaration order."""
        return list(self._required)

    # -- enter / exit -------------------------------------------------------------------

    def __enter__(self) -> ScenarioContext:
        if self._header is not None:
            raise RuntimeError(f"scenario {self.name!r} is already open")
        lifecycle = self.tracker.lifecycle
        previous = self._previous_header()
        request = lifecycle.prepare_begin(
            self.name,
            self.model,
            config=self.config,
            tags=list(self.tags),
            cache_mode="overwrite",
            # An existing header has been checked above and is re-opened on purpose.
            run_id_is_new=previous is not None,
            **self.header_kwargs,
        )
        run = request.run
        if previous is None:
            run.meta["scenario_executions"] = 1
        else:
            old = previous.run
            carried = {k: v for k, v in old.meta.items() if k not in _SYSTEM_META}
            meta = {**carried, **run.meta}
            meta["scenario_executions"] = int(old.meta.get("scenario_executions", 1)) + 1
            if old.status != "completed":
                meta["scenario_previous_status"] = old.status
            if old.status == "running":
                meta["scenario_recovered_stale"] = True
            run.meta = meta
            run.created_at = old.created_at
        run.meta["scenario_started_at"] = utc_now().isoformat()
        lifecycle.begin(request)
        header = lifecycle.require_active("scenario")
        if previous is not None:
            for art in previous.inputs:
                if not header.has_artifact(art.id, "input"):
                    header.record.inputs.append(art)
            for art in previous.outputs:
                if not header.has_artifact(art.id, "output"):
                    header.record.outputs.append(art)
        # Suspend the header: steps need the tracker's single active-run slot.
        lifecycle.suspend()
        self._header = header
        self._run = header.run
        self.steps = []
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        header = self._header
        if header is None:
            return False
        lifecycle = self.tracker.lifecycle
        problem: BaseException | None = None
        stray = lifecycle.active
        if stray is not None and stray is not header:
            problem = RuntimeError(
                f"run {stray.run.id!r} was still active when scenario {self.name!r} exited; "
                "end every run begun inside the scenario (end_run) before leaving it"
            )
            lifecycle.end("failed", error=problem)
        if exc is None and problem is None:
            missing = self.missing_outputs()
            if missing:
                problem = MissingOutputsError(self.name, missing, self.coupler.keys())
        error = exc if exc is not None else problem
        meta = header.run.meta
        meta["scenario_steps"] = len(self.steps)
        meta["scenario_cache_hits"] = sum(1 for s in self.steps if s.cache_hit)
        meta["scenario_failed_steps"] = sum(1 for s in self.steps if s.status == "failed")
        if self._required:
            meta["scenario_required_outputs"] = list(self._required)
        self._header = None
        lifecycle.resume(header)  # restore the suspended header
        self._run = lifecycle.end("failed" if error is not None else "completed", error=error)
        if exc is None and problem is not None:
            raise problem
        return False

    # -- steps ---------------------------------------------------------------------------

    def run(
        self,
        fn: Callable[..., Any] | None = None,
        name: str | None = None,
        *,
        name_template: str | None = None,
        **kwargs: Any,
    ) -> RunResult:
        """``Tracker.run`` as a step of this scenario.

        Takes every parameter of :meth:`Tracker.run`; ``parent_run_id`` is
        set to the header (passing another one raises). Scenario defaults
        (``step_cache_hydration``, ``cache_epoch``) fill what the step leaves
        unset; without ``name``, ``name_template`` (this call's, else the
        function's ``define_step`` one, else the scenario's) names the step.
        String inputs resolve through the coupler (see the class docs), and
        the step's outputs are registered in the coupler under their keys.

        Returns
        -------
        RunResult
            As ``Tracker.run``.

        Raises
        ------
        RuntimeError
            Outside the ``with`` block, or while another run is active.
        ValueError
            For a string input that is neither a coupler key nor a path, or
            any argument ``Tracker.run`` rejects.
        ConsistRunError
            When the function raises (the step is recorded as failed).
        """
        self._require_open("run")
        template = (
            _check_template(name_template, "name_template")
            or step_defaults(fn).get("name_template")  # define_step's, then the scenario's
            or self.name_template
        )
        kwargs = self._step_kwargs(kwargs, fn)
        if name is None and template is not None and fn is not None:
            name = self._render(template, fn, kwargs)
        label = name or str(step_defaults(fn).get("name") or getattr(fn, "__name__", "step"))
        try:
            result = self.tracker.run(fn, name, parent_run_id=self.run_id, **kwargs)
        except ConsistRunError as exc:
            self.steps.append(ScenarioStep(label, exc.run_id, "run", "failed"))
            raise
        if fn is None:  # a container step: named after its image unless named
            label = name or result.run.model_name
        self.steps.append(ScenarioStep(label, result.run_id, "run", "completed", result.cache_hit))
        self.coupler.update(result.outputs)
        return result

    @contextmanager
    def trace(self, name: str, **kwargs: Any) -> Iterator[Any]:
        """``Tracker.trace`` as a step of this scenario (the block always executes).

        Takes every parameter of :meth:`Tracker.trace`; ``parent_run_id``,
        defaults and string inputs behave as in :meth:`run`. On exit the
        run's outputs (logged in the block, ``output_paths``, or handed back
        by a cache hit) are registered in the coupler.

        Yields
        ------
        Tracker
            The tracker (``tracker.is_cached`` tells whether this is a hit).
        """
        self._require_open("trace")
        kwargs = self._step_kwargs(kwargs, None)
        tracker = self.tracker
        run_id: str | None = None
        cache_hit = False
        try:
            with tracker.trace(name, parent_run_id=self.run_id, **kwargs) as inner:
                active = tracker.lifecycle.require_active("trace")
                run_id, cache_hit = active.run.id, active.cache_hit
                yield inner
        except BaseException:
            self.steps.append(ScenarioStep(name, run_id, "trace", "failed", cache_hit))
            raise
        self.steps.append(ScenarioStep(name, run_id, "trace", "completed", cache_hit))
        record: ConsistRecord | None = tracker.lifecycle.last_record
        if record is not None and record.run.id == run_id:
            self.coupler.update({a.key: a for a in record.outputs})

    def step(self, name: str, **kwargs: Any) -> Any:
        """A named inline step: same as :meth:`trace` (``with sc.step("init"): ...``)."""
        return self.trace(name, **kwargs)

    def sweep(
        self,
        fn: Callable[..., Any],
        configs: Iterable[Any],
        *,
        max_workers: int | None = None,
        executor: str = "processes",
        client: Any = None,
        name: str | None = None,
        name_template: str | None = None,
        **run_kwargs: Any,
    ) -> SweepResults:
        """Run ``fn`` once per config as child runs of this scenario, in parallel.

        See :meth:`Tracker.sweep` for the execution model and for
        ``max_workers``, ``executor`` (``"processes"`` or ``"dask"``) and
        ``client`` (a ``distributed.Client`` for Dask). Scenario defaults
        and string-input resolution apply as in :meth:`run` (inputs are
        resolved once, in this process). The outputs of each completed
        config ``i`` are registered in the coupler under
        ``"<name>/<i>/<key>"`` (``name`` defaults to the function name).

        Returns
        -------
        SweepResults
            One row per config, in input order.

        Raises
        ------
        TypeError, ValueError
            As :meth:`Tracker.sweep`, before any worker starts or anything
            is written.
        """
        self._require_open("sweep")
        template = (
            _check_template(name_template, "name_template")
            or step_defaults(fn).get("name_template")  # define_step's, then the scenario's
            or self.name_template
        )
        run_kwargs = self._step_kwargs(run_kwargs, fn)
        if name is None and template is not None and fn is not None:
            name = self._render(template, fn, run_kwargs)
        if name is not None:
            run_kwargs["name"] = name
        label = name or str(step_defaults(fn).get("name") or getattr(fn, "__name__", "sweep"))
        results = self.tracker.sweep(
            fn,
            configs,
            max_workers=max_workers,
            executor=executor,
            client=client,
            parent_run_id=self.run_id,
            **run_kwargs,
        )
        for row in results:
            self.steps.append(
                ScenarioStep(
                    f"{label}[{row.index}]", row.run_id, "sweep", row.status, row.cache_hit
                )
            )
            if row.ok:
                self.coupler.namespace(f"{label}/{row.index}").update(row.outputs)
        return results

    # -- scenario-level records ---------------------------------------------------------------

    def add_input(
        self,
        path_or_artifact: str | os.PathLike[str] | Artifact,
        key: str | None = None,
        **meta: Any,
    ) -> Artifact:
        """Record a scenario-level input on the header run and put it in the coupler.

        Parameters
        ----------
        path_or_artifact:
            A file/directory path or an existing Artifact.
        key:
            Coupler and input key (default: the Artifact's key, or the file
            stem of a path).
        **meta:
            Artifact metadata.

        Returns
        -------
        Artifact
            The logged input. The header keeps one input per key: adding a
            key again (for example on a later execution) replaces the entry
            in the header's snapshot.

        Raises
        ------
        RuntimeError
            Outside the ``with`` block, or inside a step.
        FileNotFoundError
            If the path does not exist.
        """
        self._require_open("add_input")
        ref: Any = path_or_artifact
        if isinstance(ref, Artifact):
            key = key or ref.key
        elif isinstance(ref, str | os.PathLike):
            path = os.path.abspath(os.fspath(ref))
            key = key or os.path.splitext(os.path.basename(path.rstrip(os.sep)))[0]
        else:
            raise TypeError(
                f"add_input expects a path or an Artifact, got {type(ref).__name__}: {ref!r}"
            )
        lifecycle = self.tracker.lifecycle
        with self._header_resumed("add_input") as header:
            if not isinstance(ref, Artifact):
                # Same file as an earlier execution's input: reuse its record
                # (re-verified against the bytes) instead of adding a twin.
                for earlier in reversed(header.record.inputs):
                    local = earlier.abs_path or self.tracker.artifacts.local_path(earlier)
                    if earlier.key == key and local == path:
                        ref = earlier
                        break
            request = ArtifactRequest(ref=ref, key=key, direction="input", meta=meta or None)
            artifact = lifecycle.log_artifacts([request], "add_input", flush=False)[0]
            header.record.inputs[:] = [
                a for a in header.record.inputs if a.key != key or a.id == artifact.id
            ]
            lifecycle.flush()
        self.coupler.set(key, artifact)
        return artifact

    def log_meta(self, **kwargs: Any) -> None:
        """Merge metadata into the header run (see ``Tracker.log_meta``).

        Raises
        ------
        RuntimeError
            Outside the ``with`` block, or inside a step.
        """
        self._require_open("log_meta")
        with self._header_resumed("log_meta"):
            self.tracker.lifecycle.log_meta(**kwargs)

    def declare_outputs(self, *keys: str | Iterable[str]) -> None:
        """Declare coupler keys that must exist when the scenario exits.

        Accepts keys and/or lists of keys (``declare_outputs("a", "b")`` or
        ``declare_outputs(["a", "b"])``). On a normal exit every declared key
        must be in the coupler (step outputs are registered automatically;
        ``add_input`` and ``coupler.set`` entries count too); otherwise the
        header is marked failed and :class:`MissingOutputsError` names the
        missing keys.

        Raises
        ------
        TypeError
            If a key is not a string.
        """
        flat: list[Any] = []
        for entry in keys:
            if isinstance(entry, str):
                flat.append(entry)
            elif isinstance(entry, Iterable):
                flat.extend(entry)
            else:
                raise TypeError(f"output keys must be strings, got {type(entry).__name__}")
        for key in flat:
            if not isinstance(key, str) or not key.strip():
                raise TypeError(f"output keys must be non-empty strings, got {key!r}")
            if key not in self._required:
                self._required.append(key)

    def missing_outputs(self) -> list[str]:
        """Declared output keys not (yet) in the coupler."""
        return [k for k in self._required if k not in self.coupler]

    # -- helpers ------------------------------------------------------------------------

    def _require_open(self, what: str) -> None:
        if self._header is None:
            raise RuntimeError(
                f"sc.{what}() needs an open scenario: call it inside "
                f"'with tracker.scenario({self.name!r}) as sc:'"
            )

    @contextmanager
    def _header_resumed(self, what: str) -> Iterator[ActiveRun]:
        """Make the suspended header the active run for a moment."""
        lifecycle = self.tracker.lifecycle
        header = self._header
        assert header is not None
        if lifecycle.active is not None:
            raise RuntimeError(
                f"sc.{what}() cannot be called while run {lifecycle.active.run.id!r} is "
                "active; call it between steps"
            )
        lifecycle.resume(header)
        try:
            yield header
        finally:
            lifecycle.suspend()

    def _previous_header(self) -> ConsistRecord | None:
        """The recorded header to re-open, None for a first execution.

        Raises
        ------
        ValueError
            If the id is taken by a run that is not a scenario header, or by
            a header of another model.
        RuntimeError
            If the header is running in a live process on this host.
        """
        record = self.tracker.get_run_record(self.name, allow_missing=True)
        if record is None:
            run = self.tracker.get_run(self.name)
            if run is None:
                return None
            record = ConsistRecord(run=run)
        run = record.run
        if HEADER_TAG not in run.tags:
            raise ValueError(
                f"scenario name {self.name!r} is already the id of a run that is not a "
                f"scenario header (model {run.model_name!r}); choose another scenario name"
            )
        if run.model_name != self.model:
            raise ValueError(
                f"scenario {self.name!r} was recorded with model {run.model_name!r}; pass "
                f"model={run.model_name!r} or choose another scenario name"
            )
        if run.status == "running":
            host, pid = run.meta.get("host"), run.meta.get("pid")
            if host == socket.gethostname() and isinstance(pid, int) and _alive(pid):
                raise RuntimeError(
                    f"scenario {self.name!r} is already running (pid {pid} on {host}); "
                    "wait for it to finish or use another scenario name"
                )
            if host != socket.gethostname():
                warnings.warn(
                    f"scenario {self.name!r} is recorded as running on host {host!r}; "
                    "re-opening it here",
                    UserWarning,
                    stacklevel=3,
                )
        return record

    def _step_kwargs(self, kwargs: dict[str, Any], fn: Callable[..., Any] | None) -> dict[str, Any]:
        """Link to the header, resolve string inputs, apply scenario defaults."""
        kwargs = dict(kwargs)
        parent = kwargs.pop("parent_run_id", None)
        if parent is not None and parent != self.run_id:
            raise ValueError(
                f"parent_run_id={parent!r}: steps of scenario {self.name!r} are children of "
                "its header; omit parent_run_id (or use tracker.run outside the scenario)"
            )
        for param in ("inputs", "depends_on"):
            if kwargs.get(param) is not None:
                kwargs[param] = self._resolve_refs(kwargs[param], param)
        defaults = step_defaults(fn)
        options = kwargs.get("cache_options")
        explicit = set(getattr(options, "model_fields_set", ()) or ())
        for field, value in (
            ("cache_hydration", self.step_cache_hydration),
            ("cache_epoch", self.cache_epoch),
        ):
            if value is None or kwargs.get(field) is not None:
                continue
            if field in explicit or defaults.get(field) is not None:
                continue
            kwargs[field] = value
        return kwargs

    def _resolve_refs(self, value: Any, param: str) -> Any:
        if isinstance(value, Mapping):
            return {k: self._resolve_ref(v, f"{param}[{k!r}]") for k, v in value.items()}
        if isinstance(value, str):
            # A single string: depends_on accepts one path; inputs rejects it downstream.
            return self._resolve_ref(value, param) if param == "depends_on" else value
        if isinstance(value, bytes | os.PathLike) or not isinstance(value, Iterable):
            return value
        return [self._resolve_ref(v, f"{param}[{i}]") for i, v in enumerate(value)]

    def _resolve_ref(self, ref: Any, where: str) -> Any:
        """A string is a coupler key, else an existing path, else an error."""
        if not isinstance(ref, str):
            return ref
        if ref.strip():
            artifact = self.coupler.get(ref)
            if artifact is not None:
                return artifact
        if ref and os.path.exists(ref):
            return ref
        raise ValueError(
            f"{where}={ref!r} is neither a coupler key nor an existing path; coupler keys: "
            f"{self.coupler.keys()}. Produce it in an earlier step (outputs=[{ref!r}]), add "
            f"it with sc.add_input(path, key={ref!r}), or pass a path that exists"
        )

    def _render(self, template: str, fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> str:
        return render_step_name(template, fn, step_defaults(fn), kwargs, scenario=self.name)


def _check_template(template: Any, param: str) -> str | None:
    """A step name template may use only the documented placeholders."""
    return check_name_template(template, param)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
