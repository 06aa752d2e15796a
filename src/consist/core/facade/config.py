"""Config adapters on the Tracker: prepare, apply and fold model configuration trees.

Mixed into :class:`~consist.core.tracker.Tracker`. The protocol and records
live in :mod:`consist.core.run.config_plan`; the adapters in
:mod:`consist.integrations` (ActivitySim, BEAM).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consist.core.run.artifacts import ArtifactRequest
from consist.core.run.config_plan import (
    ConfigAdapter,
    ConfigAdapterOptions,
    ConfigContribution,
    ConfigPlan,
    resolve_config_dirs,
)
from consist.models.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from consist.core.run.lifecycle import RunLifecycle

_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
BUNDLE_DIRNAME = "config_bundle"


def _check_adapter(adapter: Any) -> ConfigAdapter:
    if not isinstance(adapter, ConfigAdapter):
        raise TypeError(
            f"adapter must be a config adapter (an object with name, root_dirs and plan()), "
            f"got {type(adapter).__name__}; e.g. consist.integrations.activitysim."
            "ActivitySimConfigAdapter(root_dirs=[...])"
        )
    return adapter


def _options(
    options: ConfigAdapterOptions | None, *, strict: bool, ingest: bool, profile_schema: bool
) -> ConfigAdapterOptions:
    if options is None:
        return ConfigAdapterOptions(strict=strict, ingest=ingest, profile_schema=profile_schema)
    if not isinstance(options, ConfigAdapterOptions):
        raise TypeError(f"options must be a ConfigAdapterOptions, got {type(options).__name__}")
    return options


def _validate_plan(plan: ConfigPlan) -> None:
    """Check what applying ``plan`` would write (names, rows), before anything is written."""
    if not isinstance(plan, ConfigPlan):
        raise TypeError(f"plan must be a ConfigPlan (from prepare_config), got {plan!r}")
    names = {f.name for f in plan.files}
    for table in plan.tables:
        if not _TABLE_NAME.match(table.name):
            raise ValueError(
                f"config table {table.name!r} of adapter {plan.adapter!r}: table names are "
                "lower-case letters, digits and '_', starting with a letter"
            )
        if table.source not in names:
            raise ValueError(
                f"config table {table.name!r} comes from {table.source!r}, which is not a "
                "file of the plan"
            )
        if not all(isinstance(row, dict) for row in table.rows):
            raise ValueError(f"config table {table.name!r}: rows must be dicts")


class TrackerConfigPlans:
    """Config adapter methods of the Tracker."""

    lifecycle: RunLifecycle
    log_artifacts: Callable[..., Any]
    ingest: Callable[..., Any]

    def prepare_config(
        self,
        adapter: ConfigAdapter,
        config_dirs: Iterable[str | Path] | None,
        *,
        strict: bool = False,
        options: ConfigAdapterOptions | None = None,
        validate_only: bool = False,
        facet_spec: dict[str, Any] | None = None,
        facet_schema_name: str | None = None,
        facet_schema_version: str | int | None = None,
        facet_index: bool | None = None,
    ) -> ConfigPlan:
        """Resolve a config tree into a plan without logging or ingesting anything.

        Parameters
        ----------
        adapter : ConfigAdapter
            The model's adapter (e.g. ``ActivitySimConfigAdapter``).
        config_dirs : Iterable[str | Path] | None
            Ordered config directories (overriding first); None uses the
            adapter's ``root_dirs``.
        strict : bool
            A referenced file that no directory holds is an error.
        options : ConfigAdapterOptions | None
            Shared options (override ``strict``).
        validate_only : bool
            Only validate (the plan is returned all the same; nothing is
            written either way).
        facet_spec, facet_schema_name, facet_schema_version, facet_index
            Not supported by this version's adapters: the plan's resolved
            values are the facet. Passing any raises ``ValueError``.

        Returns
        -------
        ConfigPlan

        Raises
        ------
        TypeError
            If ``adapter`` is not a config adapter.
        ValueError
            If no config directory is given or known, a file cannot be
            parsed, or a facet option is given.
        FileNotFoundError
            For a missing directory, or (strict) a missing referenced file.
        """
        for name, value in (
            ("facet_spec", facet_spec),
            ("facet_schema_name", facet_schema_name),
            ("facet_schema_version", facet_schema_version),
            ("facet_index", facet_index),
        ):
            if value is not None:
                raise ValueError(
                    f"prepare_config({name}=...) is not supported in this version: the plan's "
                    "resolved values become the run's facet as they are; drop the argument"
                )
        adapter = _check_adapter(adapter)
        dirs = resolve_config_dirs(adapter, None if config_dirs is None else list(config_dirs))
        opts = _options(options, strict=strict, ingest=True, profile_schema=False)
        plan = adapter.plan(dirs, opts)
        _validate_plan(plan)
        del validate_only  # prepare_config writes nothing in any case
        return plan

    def identity_from_config_plan(self, plan: ConfigPlan) -> str:
        """The identity digest of a plan (stable over whitespace and comments).

        Raises
        ------
        TypeError
            If ``plan`` is not a ConfigPlan.
        """
        if not isinstance(plan, ConfigPlan):
            raise TypeError(f"plan must be a ConfigPlan, got {type(plan).__name__}")
        return plan.identity

    def apply_config_plan(
        self,
        plan: ConfigPlan,
        *,
        run: Run | None = None,
        ingest: bool = True,
        profile_schema: bool = False,
        adapter: ConfigAdapter | None = None,
        options: ConfigAdapterOptions | None = None,
    ) -> ConfigContribution:
        """Attach a plan to the active run: config files as inputs, the bundle, the tables.

        The files are logged as inputs with ``meta["config_role"] = "config"``
        (and ``config_adapter``, ``config_file_role``); logged after the run
        began, they do not change its identity (the plan's digests did).
        With ``adapter``, the effective tree is written to
        ``<artifact_dir>/config_bundle`` and logged as an input directory
        with ``meta["config_role"] = "bundle"`` (see ``get_config_bundle``).
        With ``ingest``, every table of the plan goes into
        ``global_tables.<table name>``, tagged with the run.

        Parameters
        ----------
        plan : ConfigPlan
            From :meth:`prepare_config`.
        run : Run | None
            Must be the active run when given.
        ingest, profile_schema : bool
            Ingest the plan's tables; profile their schemas.
        adapter : ConfigAdapter | None
            Writes the bundle (its ``materialize``); None: no bundle.
        options : ConfigAdapterOptions | None
            Shared options (override ``ingest`` / ``profile_schema``).

        Returns
        -------
        ConfigContribution

        Raises
        ------
        RuntimeError
            If no run is active.
        ValueError
            If ``run`` is not the active run, or the plan is malformed.
        """
        _validate_plan(plan)
        opts = _options(options, strict=False, ingest=ingest, profile_schema=profile_schema)
        active = self.lifecycle.require_active("apply_config_plan")
        if run is not None and run.id != active.run.id:
            raise ValueError(
                f"apply_config_plan(run={run.id!r}): the active run is {active.run.id!r}; "
                "a plan attaches to the active run only"
            )
        if adapter is not None:
            adapter = _check_adapter(adapter)
            if adapter.name != plan.adapter:
                raise ValueError(
                    f"adapter {adapter.name!r} did not make this plan (made by {plan.adapter!r})"
                )
        active.run.meta["config_adapter"] = plan.adapter
        active.run.meta["config_identity"] = plan.identity
        resolved = getattr(adapter, "resolved_identity", None)
        if resolved is not None:  # an override run (see run_with_config_overrides)
            digest = (active.run.meta.get("hash_inputs") or {}).get(resolved["label"])
            active.run.meta["resolved_config_identity"] = {**resolved, "digest": digest}
        meta = {"config_role": "config", "config_adapter": plan.adapter}
        requests = [
            ArtifactRequest(
                ref=f.path,
                key=f.name,
                direction="input",
                meta={**meta, "config_file_role": f.role, "config_digest": f.digest},
            )
            for f in plan.files
            if f.path.is_file()
        ]
        requests.extend(_layer_requests(plan, adapter, meta))
        bundle = None
        if adapter is not None and hasattr(adapter, "materialize"):
            target = Path(active.artifact_dir) / BUNDLE_DIRNAME
            adapter.materialize(plan, target)
            requests.append(
                ArtifactRequest(
                    ref=target,
                    key=f"{plan.adapter}_config_bundle",
                    direction="input",
                    meta={"config_role": "bundle", "config_adapter": plan.adapter},
                )
            )
        logged = self.lifecycle.log_artifacts(requests, "apply_config_plan")
        if adapter is not None and hasattr(adapter, "materialize"):
            bundle = logged[-1]
            logged = logged[:-1]
        tables: dict[str, int] = {}
        if opts.ingest:
            by_name = {a.key: a for a in logged}
            for table in plan.tables:
                if not table.rows or table.source not in by_name:
                    continue
                result = self.ingest(
                    by_name[table.source],
                    data=_frame(table.rows),
                    table=table.name,
                    profile_schema=opts.profile_schema,
                )
                tables[table.name] = tables.get(table.name, 0) + int(result.rows)
        return ConfigContribution(
            identity=plan.identity, artifacts=logged, bundle=bundle, tables=tables
        )

    def run_with_config_overrides(
        self,
        *,
        adapter: ConfigAdapter,
        base_run_id: str | None = None,
        base_config_dirs: Iterable[str | Path] | None = None,
        base_primary_config: str | Path | None = None,
        overrides: dict[str, Any],
        output_dir: str | Path,
        fn: Callable[..., Any],
        name: str,
        model: str | None = None,
        config: Any = None,
        outputs: list[str] | None = None,
        execution_options: Any = None,
        strict: bool = True,
        identity_inputs: list[Any] | None = None,
        resolved_config_identity: str = "auto",
        identity_label: str = "activitysim_config",
        override_runtime_kwargs: dict[str, Any] | None = None,
        **run_kwargs: Any,
    ) -> Any:
        """Run ``fn`` on a base configuration with overrides applied.

        The base is a recorded run's config bundle (``base_run_id``) or
        config directories (``base_config_dirs``, optionally with
        ``base_primary_config`` for adapters that take one). The effective
        tree with ``overrides`` applied is written to ``output_dir`` by the
        adapter's ``materialize`` and the step runs as
        ``run(adapter=<adapter on output_dir>)``. An adapter with its own
        ``run_with_config_overrides`` gets the call instead.

        Parameters
        ----------
        adapter : ConfigAdapter
            The model's adapter (with ``materialize``).
        base_run_id, base_config_dirs
            Exactly one: the run whose bundle is the base, or the directories.
        base_primary_config : str | Path | None
            Only with ``base_config_dirs``.
        overrides : dict
            Selectors to values, in the adapter's form (ActivitySim:
            ``"coefficients.<name>"``, ``"constants.<NAME>"``,
            ``"settings.<key>"``; BEAM: dotted keys).
        output_dir : str | Path
            Where the effective tree is written (must not exist, or be empty).
        fn, name, model, config, outputs, execution_options, **run_kwargs
            As for :meth:`run`.
        strict : bool
            Resolve the base strictly (a missing referenced file is an error).
        identity_inputs : list | None
            Extra hash-only inputs, added to the resolved config identity.
        resolved_config_identity : {"auto", "off"}
            ``"auto"`` also hashes the resolved tree as identity input
            ``identity_label``; ``"off"`` keeps only ``identity_inputs``.
            The run's ``meta["resolved_config_identity"]`` records mode,
            adapter, label, path and digest.
        override_runtime_kwargs : dict | None
            Runtime keyword arguments for ``fn`` (not part of identity).

        Returns
        -------
        RunResult

        Raises
        ------
        ValueError
            Both or neither base selector, ``base_primary_config`` without
            ``base_config_dirs``, a bad ``resolved_config_identity``, a base
            run without a bundle of this adapter, or a non-empty
            ``output_dir`` - all before anything is written.
        KeyError
            For an override selector the base configuration does not have.
        """
        if (base_run_id is None) == (base_config_dirs is None):
            raise ValueError(
                "run_with_config_overrides needs exactly one base: base_run_id='<run id>' "
                "(a recorded run's config bundle) or base_config_dirs=[...]"
            )
        if base_primary_config is not None and base_config_dirs is None:
            raise ValueError("base_primary_config applies only with base_config_dirs")
        if resolved_config_identity not in ("auto", "off"):
            raise ValueError(
                f"resolved_config_identity={resolved_config_identity!r}: use 'auto' or 'off'"
            )
        if not isinstance(overrides, dict):
            raise TypeError(f"overrides must be a dict of selector -> value, got {overrides!r}")
        adapter = _check_adapter(adapter)
        forward = getattr(adapter, "run_with_config_overrides", None)
        if callable(forward):
            return forward(
                tracker=self,
                base_run_id=base_run_id,
                base_config_dirs=base_config_dirs,
                base_primary_config=base_primary_config,
                overrides=overrides,
                output_dir=output_dir,
                fn=fn,
                name=name,
                model=model,
                config=config,
                outputs=outputs,
                execution_options=execution_options,
                strict=strict,
                identity_inputs=identity_inputs,
                resolved_config_identity=resolved_config_identity,
                identity_label=identity_label,
                override_runtime_kwargs=override_runtime_kwargs,
                **run_kwargs,
            )
        if not hasattr(adapter, "materialize"):
            raise ValueError(
                f"adapter {adapter.name!r} cannot write an override tree (it has no materialize)"
            )
        out = Path(output_dir).expanduser().resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"output_dir={str(out)!r} exists and is not an empty directory")
        if base_run_id is not None:
            bundle = self.get_config_bundle(base_run_id, adapter=adapter.name)  # type: ignore[attr-defined]
            dirs: list[str | Path] = [bundle]
            adapter = _within(adapter)  # the bundle holds the primary config by name
        else:
            dirs = list(base_config_dirs or [])
            adapter = _with_primary_config(adapter, base_primary_config)
        plan = self.prepare_config(adapter, dirs, strict=strict)
        # Written beside output_dir and renamed into place: a bad override
        # selector (KeyError from the adapter) leaves nothing behind.
        staging = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            adapter.materialize(plan, staging, overrides)
            if out.exists():
                out.rmdir()  # empty (checked above)
            os.replace(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        extra = list(identity_inputs or [])
        if resolved_config_identity == "auto":
            extra.append((identity_label, out))
        wrapped = _OverrideAdapter(
            _within(adapter),
            out,
            {
                "mode": resolved_config_identity,
                "adapter": adapter.name,
                "label": identity_label if resolved_config_identity == "auto" else None,
                "path": str(out),
            },
        )
        if override_runtime_kwargs is not None:
            if "runtime_kwargs" in run_kwargs:
                raise ValueError("pass override_runtime_kwargs or runtime_kwargs, not both")
            run_kwargs["runtime_kwargs"] = override_runtime_kwargs
        return self.run(  # type: ignore[attr-defined]
            fn=fn,
            name=name,
            model=model,
            config=config,
            outputs=outputs,
            execution_options=execution_options,
            adapter=wrapped,
            identity_inputs=extra or None,
            **run_kwargs,
        )

    def canonicalize_config(
        self,
        adapter: ConfigAdapter,
        config_dirs: Iterable[str | Path] | None,
        *,
        run: Run | None = None,
        run_id: str | None = None,
        strict: bool = False,
        ingest: bool = True,
        profile_schema: bool = False,
        options: ConfigAdapterOptions | None = None,
    ) -> ConfigContribution:
        """:meth:`prepare_config` then :meth:`apply_config_plan` on the active run.

        Raises
        ------
        RuntimeError
            If no run is active.
        ValueError
            If ``run`` / ``run_id`` is not the active run (checked before
            anything is resolved), or as :meth:`prepare_config` raises.
        """
        active = self.lifecycle.require_active("canonicalize_config")
        if run_id is not None and run_id != active.run.id:
            raise ValueError(
                f"canonicalize_config(run_id={run_id!r}): the active run is {active.run.id!r}"
            )
        plan = self.prepare_config(adapter, config_dirs, strict=strict, options=options)
        return self.apply_config_plan(
            plan,
            run=run,
            ingest=ingest,
            profile_schema=profile_schema,
            adapter=adapter,
            options=options,
        )


class _OverrideAdapter:
    """An adapter pointed at a materialized override tree (run_with_config_overrides)."""

    def __init__(self, base: Any, root: Path, resolved_identity: dict[str, Any]) -> None:
        self.base = base
        self.name = base.name
        self.root_dirs = [root]
        self.resolved_identity = resolved_identity

    def plan(self, config_dirs: Any, options: ConfigAdapterOptions) -> ConfigPlan:
        return self.base.plan(config_dirs, options)

    def materialize(self, plan: ConfigPlan, output_dir: Path, overrides: Any = None) -> Path:
        return self.base.materialize(plan, output_dir, overrides)


def _with_primary_config(adapter: Any, primary: str | Path | None) -> Any:
    """A copy of ``adapter`` with ``primary_config`` set (adapters that take one)."""
    if primary is None:
        return adapter
    if not hasattr(adapter, "primary_config"):
        raise ValueError(
            f"base_primary_config: adapter {adapter.name!r} takes no primary config; drop it"
        )
    import copy

    clone = copy.copy(adapter)
    clone.primary_config = Path(primary)
    return clone


def _layer_requests(plan: ConfigPlan, adapter: Any, meta: dict[str, Any]) -> list[ArtifactRequest]:
    """Inputs for the layers a merged file was read from besides its first.

    An adapter that merges files (ActivitySim's ``inherit_settings``) says so
    through ``sources(plan)``; each further layer is logged as an input keyed
    ``"<name>@<n>"`` (``meta["config_role"] = "config_layer"``), so the run
    records every file it read.
    """
    sources = getattr(adapter, "sources", None)
    if adapter is None or not callable(sources):
        return []
    roles = {f.name: f.role for f in plan.files}
    requests = []
    for name, paths in sources(plan).items():
        for n, path in enumerate(paths[1:], start=2):
            requests.append(
                ArtifactRequest(
                    ref=Path(path),
                    key=f"{name}@{n}",
                    direction="input",
                    meta={
                        **meta,
                        "config_role": "config_layer",
                        "config_file_role": roles.get(name),
                    },
                )
            )
    return requests


def _within(adapter: Any) -> Any:
    """``adapter`` with a primary config named relative to its tree (a bundle holds it by name)."""
    primary = getattr(adapter, "primary_config", None)
    if primary is None or not Path(primary).is_absolute():
        return adapter
    return _with_primary_config(adapter, Path(primary).name)


def _frame(rows: list[dict[str, Any]]) -> Any:
    """Rows as a DataFrame with one type per column (mixed or empty columns become text)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in frame.columns:
        kinds = {type(v) for v in frame[column] if v is not None and v == v}
        if not kinds:  # all empty: text, so later files' values fit the column
            frame[column] = frame[column].astype("string")
        elif len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame
