"""Config adapters on the Tracker: prepare, apply and fold model configuration trees.

Mixed into :class:`~consist.core.tracker.Tracker`. The protocol and records
live in :mod:`consist.core.run.config_plan`; the adapters in
:mod:`consist.integrations` (ActivitySim, BEAM).
"""

from __future__ import annotations

import re
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


def _frame(rows: list[dict[str, Any]]) -> Any:
    """Rows as a DataFrame with one type per column (mixed columns become text)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column in frame.columns:
        kinds = {type(v) for v in frame[column] if v is not None and v == v}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame
